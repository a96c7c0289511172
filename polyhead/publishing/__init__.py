"""Publishing: the generated model card (`model_card`) and the one-commit upload to the Hub (`upload`)."""
