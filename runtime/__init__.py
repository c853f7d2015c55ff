"""The dlc runtime: data, the NumPy interpreter and trainer, onnxruntime inference."""
