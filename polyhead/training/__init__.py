"""Training: arguments (`HfArgumentParser` dataclasses), task samplers, the multitask `Trainer` and the training
job (`trainer.run`), and growing a trained model (`grow`)."""
