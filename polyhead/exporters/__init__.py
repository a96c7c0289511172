"""Exporters: one task as a standard `XxxForSequenceClassification` checkpoint (`task_checkpoint`) and the
multitask model as an ONNX graph (`onnx`)."""
