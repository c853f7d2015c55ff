"""How long the language server takes to check a spec again after an edit: dlc/editor.analyse (what
`dlc lsp` runs on every change, after its 0.15 s debounce) on a 1,000-line spec (bench/gen_large_spec.py),
and on specs/inception_digits.dl, with one character changed per run; the median, the 95th percentile
and the slowest of RUNS, in milliseconds.

    python bench/lsp_recheck.py [LINES=1000] [RUNS=20]
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen_large_spec import large_spec  # noqa: E402

from dlc.editor import analyse  # noqa: E402


SPECS = Path(__file__).resolve().parent.parent / "specs"


def measure(label: str, text: str, path: str, old: str, runs: int) -> None:
    """Re-check `text` `runs` times, each with `old` changed by one character."""
    analyse(text, path)  # warm: imports, the grammar
    times = []
    for k in range(runs):
        new = old[:-1] + str((int(old[-1]) + 1 + k % 5) % 10)
        edited = text.replace(old, new, 1)
        t0 = time.perf_counter()
        a = analyse(edited, path)
        times.append(1e3 * (time.perf_counter() - t0))
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    print(f"{label}, {len(a.hints)} hints, {len(a.diagnostics)} diagnostics: re-check median "
          f"{statistics.median(times):.0f} ms, p95 {p95:.0f} ms, slowest {max(times):.0f} ms ({runs} edits)")


def main(lines: int = 1000, runs: int = 20) -> None:
    measure(f"{lines}-line spec", large_spec(lines), "/tmp/big.dl", "dense 32", runs)
    inception = SPECS / "inception_digits.dl"
    measure("specs/inception_digits.dl", inception.read_text(), str(inception), "dropout 0.3", runs)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
