"""What pruning saves: the same digits search (specs/digits_search.dl, same seed, one process) with
and without --prune; wall time, trials pruned and the best validation accuracy of each.

    python bench/search_pruning.py [TRIALS=40] [JOBS=1]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dlc  # noqa: E402
from dlc.runtime.tools.search import search  # noqa: E402


def main(trials: int = 40, jobs: int = 1) -> None:
    spec = dlc.compile_file(ROOT / "specs/digits_search.dl")
    rows = {}
    for prune in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            r = search(spec, int(trials), jobs=int(jobs), seed=0, out=tmp, progress=False, prune=prune)
            wall = time.perf_counter() - t0
        pruned = sum(t.status == "pruned" for t in r.trials)
        epochs = sum(t.epochs or 0 for t in r.trials)
        rows[prune] = wall
        print(f"{'with' if prune else 'without'} pruning: {len(r.trials)} trials in {wall:.1f} s, {pruned} pruned, "
              f"{epochs} epochs trained; best validation accuracy {100 * r.best.val_acc:.2f}% (trial {r.best.index})",
              flush=True)
    print(f"pruning saved {100 * (1 - rows[True] / rows[False]):.0f}% of the wall time")


if __name__ == "__main__":
    main(*sys.argv[1:])
