"""Fuzz `dlc check`'s entry point (dlc.cli.main) with generated and mutated specs.

    python bench/fuzz_check.py [CASES=100000] [SEED=0] [JOBS=2] [TIMEOUT=30]

Each case is a spec file run through `dlc check`, with a per-case timeout. Outcomes:
accepted (exit 0/1), located error (exit 2 with `file:line:col: error:` or a file-level `error:`),
crash (any other exit, an uncaught exception, an error without a message) and timeout.
Generators: random bytes; token soup from the language's own words; line deletions, duplications
and swaps of every spec in specs/; numbers swapped for huge, negative, zero, NaN and 1e309 values;
unicode; long names; deep `repeat` nesting; blocks using blocks (and themselves) inside residual and
parallel groups; every construct nested up to 1,000 deep (the limit is 32) and choice(choice(...));
thousands of ';'-separated statements on one line. Crashing cases are written to fuzz-crashes/.
Done when it reports 0 crashes and 0 timeouts.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS = [p.read_text() for p in sorted(ROOT.glob("specs/**/*.dl"))]
NUMBERS = ["0", "-1", "-0", "1e309", "-1e309", "1e300", "1e-400", "99999999999999999999", "2147483648",
           "4294967296", "0.5", "1.5", "nan", "inf", "3.", ".5", "1e", "0x10", "1_000", "00", "-0.0", "7"]
UNICODE = ["é", "∞", "\u200b", "\ufeff", "𝟙", "ß", "\x00", "\t", "\r", "\r\n", "日本", "\u202e"]


def _words() -> list[str]:
    from dlc.compiler.attrs import RANGE_KINDS
    from dlc.compiler.inits import INITS
    from dlc.compiler.ops import REGISTRY
    from dlc.compiler.statements import DATA, LOSSES, OPTIMIZERS, SCHEDULES, STATEMENTS, TRAIN
    from dlc.runtime.data.datasets import CATALOG
    words = {"model", "input", "init", "repeat", "batchnorm", "same", "valid", "true", "false", "all",
             "block", "residual", "parallel", "branch", "project", "identity"}
    words |= set(REGISTRY.names()) | set(STATEMENTS) | set(INITS) | set(CATALOG) | set(RANGE_KINDS)
    words |= set(LOSSES) | set(OPTIMIZERS) | set(SCHEDULES) | set(DATA) | set(TRAIN)
    for op in REGISTRY:
        words |= set(op.attrs)
    for attrs in list(OPTIMIZERS.values()) + list(SCHEDULES.values()):
        words |= set(attrs)
    return sorted(words)


def token_soup(rng: random.Random, words) -> str:
    parts = []
    for _ in range(rng.randint(1, 60)):
        r = rng.random()
        if r < 0.5:
            parts.append(rng.choice(words))
        elif r < 0.7:
            parts.append(rng.choice(["{", "}", "(", ")", "=", ",", "\n", ";", "#", '"', "  ", "x", "1x28x28", "0x0"]))
        elif r < 0.9:
            parts.append(rng.choice(NUMBERS))
        else:
            parts.append(rng.choice(UNICODE))
    return " ".join(parts)


def mutate_lines(rng: random.Random, text: str) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 4)):
        if not lines:
            break
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        kind = rng.random()
        if kind < 0.3:
            del lines[i]
        elif kind < 0.6:
            lines.insert(j, lines[i])
        else:
            lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def mutate_numbers(rng: random.Random, text: str) -> str:
    nums = list(re.finditer(r"(?<![A-Za-z_])\d+(\.\d+)?(e-?\d+)?", text))
    for m in rng.sample(nums, min(len(nums), rng.randint(1, 3))) if nums else []:
        text = text[:m.start()] + rng.choice(NUMBERS) + text[m.end():]
        break  # one at a time: offsets of later matches moved
    return text


def insert_noise(rng: random.Random, text: str) -> str:
    i = rng.randrange(len(text) + 1)
    r = rng.random()
    if r < 0.4:
        noise = rng.choice(UNICODE)
    elif r < 0.7:
        noise = "n" * rng.choice([100, 1000, 20000])  # a long name
    else:
        noise = rng.choice(["{", "}", "(", ")", "=", "\"", "'", "#", ";", "\n", "repeat 3 {", "x"])
    return text[:i] + noise + text[i:]


def deep_repeat(rng: random.Random) -> str:
    depth = rng.randint(1, 14)
    counts = [rng.choice([0, 1, 2, 10, 100, 1000, 100000, 99999999999]) for _ in range(depth)]
    body = "dense 4 relu"
    for c in counts:
        body = f"repeat {c} {{ {body} }}"
    return f"model m {{\n input 8\n {body}\n dense 3 softmax\n}}\ndata iris\n"


def nested_blocks(rng: random.Random) -> str:
    """Blocks that use blocks (sometimes themselves, or a missing one), residual and parallel groups
    nested in one another and in repeats, with random values for the parameters."""
    n = rng.randint(1, 6)
    defs = []
    for k in range(n):
        inner = rng.choice([f"b{rng.randrange(n + 1)} c" for _ in range(2)] + ["dense c relu", "conv c kernel=3 pad=same",
                            "flatten", "globalavgpool", "residual { dense c }", "residual project { conv c stride=s }"])
        group = rng.choice(["residual {{ {} }} relu", "residual project {{ {} }}", "parallel concat {{ branch {{ {} }}; branch {{ }} }}",
                            "parallel add {{ branch {{ {} }}; branch {{ {} }} }}", "repeat 2 {{ {} }}", "{}"])
        defs.append(f"block b{k}(c, s=1) {{\n {group.format(inner, inner)}\n}}")
    uses = " ".join(f"b{rng.randrange(n)} {rng.choice(NUMBERS)}" + rng.choice(["", " s=2", " c=0", " d=1"]) + "\n"
                    for _ in range(rng.randint(1, 4)))
    shape = rng.choice(["8", "1x8x8", "3x5x5"])
    return "\n".join(defs) + f"\nmodel m {{\n input {shape}\n {uses} flatten\n dense 3 softmax\n}}\ndata iris\n"


NESTING = [("residual {\n", "}\n"), ("residual project {\n", "} relu\n"),
           ("parallel concat {\nbranch { }\nbranch {\n", "}\n}\n"), ("parallel add {\nbranch {\n", "}\nbranch { }\n}\n"),
           ("repeat 1 {\n", "}\n"), ("foo {\n", "}\n"), ("branch {\n", "}\n")]


def deep_nesting(rng: random.Random) -> str:
    """Every construct nested in one another, from a few levels to far past the limit (32): groups,
    repeats, unknown words with braces, a block used inside the nest, and choice(choice(...)) values."""
    depth = rng.choice([rng.randint(1, 40), rng.randint(100, 1000)])
    chain = [rng.choice(NESTING) for _ in range(depth)]
    inner = rng.choice(["dense 4", "b1 4", "conv 4 kernel=3 pad=same", "dense 4 dropout=" +
                        "choice(" * rng.randint(1, 600) + "0.1" + ")" * rng.randint(0, 600)])
    block = "block b1(c) {\n residual { dense c }\n}\n" if rng.random() < 0.5 else ""
    return (block + "model m {\n input " + rng.choice(["4", "1x4x4"]) + "\n" + "".join(o for o, _ in chain) + inner
            + "\n" + "".join(c for _, c in reversed(chain)) + "dense 3 softmax\n}\ndata iris\n")


def one_line(rng: random.Random) -> str:
    """Thousands of statements on one line, separated by ';' (linear work per statement)."""
    n = rng.choice([10, 300, 3000])
    stmt = rng.choice(["relu", "dense 4 relu", "branch { }", "batchnorm", "dropout 0.1", ";", "residual { dense 4 }"])
    body = "; ".join([stmt] * n)
    if stmt == "branch { }":
        body = f"parallel concat {{ {body} }}"
    return f"model m {{\n input 4\n {body}\n dense 3 softmax\n}}\ndata iris\n"


def case(rng: random.Random, words) -> bytes:
    r = rng.random()
    if r < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    if r < 0.3:
        text = token_soup(rng, words)
    elif r < 0.5:
        text = mutate_lines(rng, rng.choice(CORPUS))
    elif r < 0.65:
        text = mutate_numbers(rng, rng.choice(CORPUS))
    elif r < 0.8:
        text = insert_noise(rng, rng.choice(CORPUS))
    elif r < 0.87:
        text = nested_blocks(rng)
    elif r < 0.92:
        text = deep_repeat(rng)
    elif r < 0.99:
        text = deep_nesting(rng)
    else:
        text = one_line(rng)
    return text.encode("utf-8", "surrogatepass")


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def run_case(data: bytes, path: Path, timeout: float) -> str:
    """accepted | located | crash | timeout"""
    from dlc.cli import main
    path.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", str(path)])
    except _Timeout:
        return "timeout"
    except BaseException:  # noqa: BLE001 -- anything escaping main is a crash
        return "crash"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    if code in (0, 1):
        return "accepted"
    text = err.getvalue()
    if code == 2 and ("error:" in text) and "internal error" not in text and "Traceback" not in text:
        return "located"
    return "crash"


def worker(args) -> tuple[Counter, list[bytes]]:
    seed, n, timeout = args
    rng = random.Random(seed)
    words = _words()
    counts, crashes = Counter(), []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.dl"
        for _ in range(n):
            data = case(rng, words)
            outcome = run_case(data, path, timeout)
            counts[outcome] += 1
            if outcome in ("crash", "timeout") and len(crashes) < 20:
                crashes.append(data)
    return counts, crashes


def fuzz(cases: int, seed: int = 0, jobs: int = 2, timeout: float = 30.0) -> tuple[Counter, list[bytes]]:
    chunk = 500
    tasks = [(seed * 1_000_003 + i, min(chunk, cases - i * chunk), timeout) for i in range((cases + chunk - 1) // chunk)]
    total, crashes = Counter(), []
    if jobs == 1:
        results = map(worker, tasks)
    else:
        import multiprocessing
        pool = multiprocessing.get_context("spawn").Pool(jobs)
        results = pool.imap_unordered(worker, tasks)
    for counts, found in results:
        total.update(counts)
        crashes.extend(found)
    return total, crashes


def main(cases: int = 100_000, seed: int = 0, jobs: int = 2, timeout: float = 30.0) -> int:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    t0 = time.perf_counter()
    total, crashes = fuzz(cases, seed, jobs, timeout)
    dt = time.perf_counter() - t0
    print(f"{cases:,} cases in {dt:.0f} s: " + ", ".join(f"{k} {total[k]:,}" for k in
                                                           ("accepted", "located", "crash", "timeout")))
    if crashes:
        out = Path("fuzz-crashes")
        out.mkdir(exist_ok=True)
        for i, data in enumerate(crashes):
            (out / f"case{i}.dl").write_bytes(data)
        print(f"{len(crashes)} crashing case(s) written to {out}/")
    return 1 if total["crash"] or total["timeout"] else 0


if __name__ == "__main__":
    args = [float(a) if "." in a else int(a) for a in sys.argv[1:]]
    raise SystemExit(main(*args))
