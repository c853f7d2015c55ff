"""Wall time of `dlc check` (new process each) on specs that used to run away: huge layers, deep and
nested repeats, thousands of errors, a large spec with scattered syntax errors.

    python bench/check_limits.py
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAD = "model m {\n input 64\n"
TAIL = " dense 10 softmax\n}\ndata digits\n"
CASES = {
    "dense 100000000 (refused: memory)": HEAD + " dense 100000000\n" + TAIL,
    "input 1x100000x100000 (refused: memory)": "model m {\n input 1x100000x100000\n flatten\n" + TAIL.replace(
        "data digits\n", ""),
    "dense 1e300 (refused: too large)": HEAD + " dense 1e300\n" + TAIL,
    "repeat 1000^3 (refused: expansion)": HEAD + " repeat 1000 { repeat 1000 { repeat 1000 { dense 10 } } }\n" + TAIL,
    "repeat 100000 { dense 10 relu } (checked)": HEAD + " repeat 100000 { dense 10 relu }\n" + TAIL,
    "10,000 bad keys on one line": HEAD + " dense 10 " + " ".join(f"k{i}=1" for i in range(10000)) + "\n" + TAIL,
    "300 unknown statements (50 shown)": HEAD + TAIL + "".join(f"bogus{i} 1\n" for i in range(300)),
    "100,000 lines, 25 syntax errors": HEAD + "".join(" dense 10 = =\n" if i % 4000 == 0 else " dense 10 relu\n"
                                                       for i in range(1, 100001)) + TAIL,
}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in CASES.items():
            path = Path(tmp) / "s.dl"
            path.write_text(text)
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-m", "dlc", "check", str(path)], capture_output=True, text=True)
            dt = time.perf_counter() - t0
            print(f"{name:45s} exit {p.returncode}  {dt:6.2f} s  output {len(p.stdout) + len(p.stderr):>10,} bytes")


if __name__ == "__main__":
    main()
