"""Exporters: one task as a standard `XxxForSequenceClassification` checkpoint (`task_checkpoint`), the shared
encoder alone as a standard `AutoModel` folder to fine-tune from (`encoder`), and the multitask model as an ONNX graph
(`onnx`)."""
