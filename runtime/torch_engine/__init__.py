"""The PyTorch engine (optional: pip install "dlc[torch]"): the IR lowered to torch and trained by the
same loop as the NumPy engine (runtime/trainer.py), for GPUs and many processes (torchrun).

    ops.py     each op's torch forward (autograd gives the backward), by op name
    losses.py  each loss's torch value, by loss name
    net.py     the graph as a torch module: parameters under their dlc names
    engine.py  the Engine: optimizer rules (compiler/optimizers.py) on torch tensors, l1/l2, clipping,
               max-norm, the noise generator, state in and out as NumPy arrays

Only this package imports torch, and only when the torch engine is chosen."""

INSTALL = 'pip install "dlc[torch]"  (on these machines: pip install torch==2.13.0)'


def import_torch():
    """torch, or the refusal a user can act on (exit 2) when it is not installed."""
    try:
        import torch
    except ImportError:
        from dlc.compiler.diagnostics import Diagnostic, DLError
        raise DLError(Diagnostic("error", "the torch engine needs PyTorch, which is not installed",
                                 hint=INSTALL)) from None
    return torch
