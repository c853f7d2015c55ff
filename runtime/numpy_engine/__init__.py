"""The NumPy engine: the IR interpreter (forward/backward), the optimizers applied in place, the losses."""
