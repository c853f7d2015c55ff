"""The PyTorch engine (optional: pip install ".[torch]"): the IR lowered to torch, trained by the same loop."""
