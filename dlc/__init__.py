"""dlc: a declarative model-spec compiler for neural networks.

    import dlc
    spec = dlc.compile_file("specs/digits_mlp.dl")
    run = dlc.train(spec, out="runs/digits")
    dlc.export(run, "digits.onnx")
"""

__version__ = "0.1.0"


from dlc.compiler.diagnostics import DLError  # noqa: E402
from dlc.compiler.spec import Spec, compile, compile_file  # noqa: E402

__all__ = ["DLError", "Spec", "compile", "compile_file", "__version__"]
