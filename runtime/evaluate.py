"""`dlc eval`: a run's metrics on its own splits (re-derived from the spec and seed) or on other data."""

from __future__ import annotations

from pathlib import Path

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.runtime.data import fit_input, prepare
from dlc.runtime.datasets import CATALOG, DataError, load
from dlc.runtime.runs import load_run


def load_inputs(spec, data: str):
    """Raw inputs (and labels) of DATA shaped for `spec`'s input layer: a built-in set name or a file."""
    d = spec.settings.get("data")
    options = dict(d.values) if d is not None else {}
    try:
        ds = load(data, options, spec.task, spec["train"]["seed"], Path.cwd())
    except DataError as e:
        raise DLError(Diagnostic("error", str(e))) from None
    info = CATALOG.get(data)
    x = fit_input(spec, ds.x, ds.name, info.image_shape if info else None, options.get("resize"))
    return x, ds


def evaluate_run(run: str, data: str | None = None, split: str = "all") -> dict:
    model = load_run(run)
    report = {"run": str(run), "splits": {}}
    if data is None:
        splits = prepare(model.spec)
        # the run's own preprocessing, not a refit
        pairs = {"train": (splits.x_train, splits.y_train), "validation": (splits.x_val, splits.y_val),
                 "test": (splits.x_test, splits.y_test)}
        for name, (x, y) in pairs.items():
            if split not in ("all", name) or len(x) == 0:
                continue
            r = model.evaluate(model.preprocess.apply(splits.preprocess.invert(x)), y)
            report["splits"][name] = dict(r, n=len(x))
    else:
        x, ds = load_inputs(model.spec, data)
        y = ds.y
        if model.spec.task == "classification" and model.classes and ds.classes != model.classes:
            index = {c: i for i, c in enumerate(model.classes)}
            unknown = sorted(set(ds.classes) - set(index))
            if unknown:
                raise DLError(Diagnostic("error", f"{data} has labels the model never saw: {', '.join(unknown[:10])}"))
            y = [index[ds.classes[i]] for i in y]
            import numpy as np
            y = np.asarray(y, dtype=np.int64)
        report["splits"][Path(data).name] = dict(model.evaluate(model.preprocess.apply(x), y), n=len(x))
    return report
