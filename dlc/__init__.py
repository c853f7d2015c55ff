"""dlc: a declarative model-spec compiler for neural networks.

    import dlc
    spec = dlc.compile_file("specs/digits_mlp.dl")
    print(dlc.diagnose(spec).render())
    run = dlc.train(spec, out="runs/digits")
    dlc.export(run, "digits.onnx")

Also dlc.evaluate, dlc.predict, dlc.compare and dlc.search (see dlc/api.py). They load NumPy
and the runtime on first use, so `import dlc` stays light.
"""

from dlc.version import __version__  # noqa: F401  (its own module: see dlc/version.py)


def _map_source_checkout() -> None:
    """Imported from a source checkout (e.g. `python -m pytest` at the root puts it on sys.path
    ahead of the installed package): find dlc.compiler, dlc.grammar and dlc.runtime in the sibling
    folders, the same mapping pyproject.toml's package-dir declares for installs."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    root = here.parent
    if not (here / "compiler").is_dir() and (root / "compiler" / "ops").is_dir() and (root / "pyproject.toml").is_file():
        __path__.append(str(root))  # noqa: F821  (the package's own __path__)


_map_source_checkout()


def _blas_threads_sleep_when_idle() -> None:
    """OpenBLAS's threads spin about 2^28 cycles waiting for the next call before they sleep. On a
    machine whose cores are busy with other work, the spinning threads take the cores from the thread
    that has work: a conv net trained 44x slower beside two busy processes (bench/contention.py).
    Spinning 2^4 cycles instead costs about 5 % on an idle machine. Set before NumPy loads (it reads
    the variable once); a value the user set is kept."""
    import os
    import sys
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")


_blas_threads_sleep_when_idle()

from dlc.compiler.diagnostics import DLError  # noqa: E402
from dlc.compiler.spec import Spec, compile, compile_file  # noqa: E402

_API = ("check", "fmt", "train", "evaluate", "export", "import_onnx", "serving_cost", "predict", "diagnose", "compare", "search")

__all__ = ["DLError", "Spec", "compile", "compile_file", "__version__", *_API]


def __getattr__(name):
    if name in _API:
        from dlc import api
        return getattr(api, name)
    raise AttributeError(f"module 'dlc' has no attribute {name!r}")
