"""Wall time of `dlc check` on a generated N-layer spec, as a user sees it (new process
each run, grammar cache warm), plus the in-process compile time.

    python bench/check_time.py [N=1000] [RUNS=12]
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from gen_large_spec import large_spec  # noqa: E402


def main(n: int = 1000, runs: int = 12) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.dl"
        path.write_text(large_spec(n))
        cmd = [sys.executable, "-m", "dlc", "check", str(path)]
        subprocess.run(cmd, capture_output=True, check=True)  # warm the grammar cache
        walls = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            walls.append(time.perf_counter() - t)
        import dlc

        t = time.perf_counter()
        dlc.compile_file(path)
        inproc = time.perf_counter() - t
    walls.sort()
    print(f"dlc check, {n} layers: CLI wall median {statistics.median(walls):.3f} s "
          f"(min {walls[0]:.3f}, max {walls[-1]:.3f}, {runs} runs); in process {inproc:.3f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
