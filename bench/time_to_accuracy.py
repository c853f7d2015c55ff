"""Time to accuracy on scikit-learn's digits: dlc (specs/digits_mlp.dl) against scikit-learn's
MLPClassifier (its defaults: one hidden layer of 100 relu units, adam, up to 200 iterations), on
the same split and the same standardized inputs, in one script.

    python bench/time_to_accuracy.py [RUNS=3] [SPEC=specs/digits_mlp.dl]

scikit-learn's wall time is its fit; dlc's is the shortest run of the spec (epochs 1, 2, 3, ...,
early stopping off) whose test accuracy reaches scikit-learn's, each run trained from scratch.
specs/digits_fast.dl is the same size of net as scikit-learn's (one hidden layer of 100).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dlc  # noqa: E402
from dlc.runtime.data.splits import prepare  # noqa: E402
from dlc.runtime.trainer import train  # noqa: E402


def sklearn_run(splits, seed: int) -> tuple[float, float]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(random_state=seed).fit(splits.x_train, splits.y_train)
    wall = time.perf_counter() - t0
    return wall, float((clf.predict(splits.x_test) == splits.y_test).mean())


def dlc_to(target: float, text: str, splits) -> tuple[float, float, int]:
    for epochs in range(1, 151):
        spec = dlc.compile(text, overrides=[f"train.epochs={epochs}", "train.early_stop=0"])
        t0 = time.perf_counter()
        r = train(spec, write=False, progress=False, splits=splits)
        wall = time.perf_counter() - t0
        if r.metrics["test"]["accuracy"] >= target:
            return wall, r.metrics["test"]["accuracy"], epochs
    return float("nan"), r.metrics["test"]["accuracy"], epochs


def main(runs: int = 3, spec_path: str = "specs/digits_mlp.dl") -> None:
    text = (ROOT / spec_path).read_text()
    spec = dlc.compile(text)
    splits = prepare(spec)
    ratios = []
    for _ in range(int(runs)):
        t_sk, acc_sk = sklearn_run(splits, 0)
        t_dlc, acc_dlc, epochs = dlc_to(acc_sk, text, splits)
        ratios.append(t_dlc / t_sk)
        print(f"scikit-learn MLPClassifier: {100 * acc_sk:.2f}% test in {t_sk:.2f} s; dlc {spec.name} reaches "
              f"{100 * acc_dlc:.2f}% in {epochs} epochs, {t_dlc:.2f} s: {t_dlc / t_sk:.2f}x its time", flush=True)
    print(f"median dlc/scikit-learn time to its accuracy: {statistics.median(ratios):.2f}x ({runs} runs)")


if __name__ == "__main__":
    main(*sys.argv[1:])
