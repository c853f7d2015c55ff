"""How long the language server takes to check a spec again after an edit: dlc/editor.analyse (what
`dlc lsp` runs on every change, after its 0.15 s debounce) on a 1,000-line spec (bench/gen_large_spec.py),
with one line changed per run; the median and the slowest of RUNS, in milliseconds.

    python bench/lsp_recheck.py [LINES=1000] [RUNS=20]
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen_large_spec import large_spec  # noqa: E402

from dlc.editor import analyse  # noqa: E402


def main(lines: int = 1000, runs: int = 20) -> None:
    text = large_spec(lines)
    analyse(text, "/tmp/big.dl")  # warm: imports, the grammar
    times = []
    for k in range(runs):
        edited = text.replace("dense 32 relu", f"dense {33 + k % 5} relu", 1)
        t0 = time.perf_counter()
        a = analyse(edited, "/tmp/big.dl")
        times.append(1e3 * (time.perf_counter() - t0))
    print(f"{lines}-line spec, {len(a.hints)} hints, {len(a.diagnostics)} diagnostics: re-check median "
          f"{statistics.median(times):.0f} ms, slowest {max(times):.0f} ms ({runs} edits)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
