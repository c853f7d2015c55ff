"""Image folders: how fast dlc decodes them, how fast it trains from the decoded-image cache against the
same images as an .npz in memory, and how much memory a run takes on a folder larger than its
--max-memory.

    python bench/image_data.py [decode|epochs|memory|all] [WORKDIR=/tmp/dlc-bench-images]

decode  images/s decoding a folder of 5,000 RGB PNGs (128x128 -> 64x64), cold cache, 1 thread and the
        default pool.
epochs  the same 6,000 3x32x32 images from the folder (cached, read lazily a batch at a time with a
        prefetch thread) and from an .npz (in memory): seconds per epoch, median of epochs 2-6, both
        with threads=1.
memory  `dlc train --max-memory 400M` on a folder whose decoded images take 3x that (26,000 RGB
        128x128 images, 1.28 GB): the peak resident memory of the run (getrusage), and of the same run
        on 500 of them, against the limit.

The images are scikit-learn's digit scans, upsampled and tinted at random (real strokes, coloured).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_folder(out: Path, n: int, side: int) -> Path:
    """n RGB PNGs of side x side in 10 class folders (digit scans, tinted)."""
    from PIL import Image
    from sklearn.datasets import load_digits
    if out.exists() and sum(1 for _ in out.rglob("*.png")) == n:
        return out
    shutil.rmtree(out, ignore_errors=True)
    d = load_digits()
    rng = np.random.default_rng(0)
    for i in range(n):
        k = i % len(d.images)
        grey = np.clip(d.images[k] * 16, 0, 255).astype(np.uint8)
        img = Image.fromarray(grey, "L").resize((side, side), Image.BICUBIC)
        tint = rng.uniform(0.4, 1.0, 3)
        rgb = (np.asarray(img, np.float32)[..., None] * tint).astype(np.uint8)
        folder = out / str(d.target[k])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb, "RGB").save(folder / f"{i:06d}.png")
    return out


def _env(cache: Path) -> dict:
    return dict(os.environ, XDG_CACHE_HOME=str(cache))


def decode(work: Path) -> None:
    from dlc.runtime.data import image_listing, images
    folder = make_folder(work / "decode", 5000, 128)
    found = image_listing.list_folder(folder)
    for workers in (1, None):
        out = np.empty((len(found.files), 3, 64, 64), np.uint8)
        t0 = time.perf_counter()
        images.decode(found, 3, (64, 64), "stretch", False, out, workers=workers)
        dt = time.perf_counter() - t0
        print(f"decode: {len(found.files):,} PNGs 128x128 -> 3x64x64, {workers or min(8, os.cpu_count())} "
              f"thread(s): {len(found.files) / dt:,.0f} images/s")


SPEC = """model m {{
    input 3x32x32
    conv 16 kernel=3 pad=same batchnorm relu
    maxpool 2
    conv 32 kernel=3 pad=same batchnorm relu
    maxpool 2
    flatten
    dense 10 softmax
}}
data "{data}" test=0.1 scale=1/255
train epochs=6 batch=64 seed=0 threads=1 validation=0
"""


def _epoch_seconds(run: Path) -> float:
    import csv
    with open(run / "history.csv") as f:
        rows = list(csv.DictReader(f))
    return statistics.median(float(r["seconds"]) for r in rows[1:])


def epochs(work: Path) -> None:
    folder = make_folder(work / "epochs", 6000, 32)
    cache = work / "cache"
    from dlc.runtime.data.datasets import load
    os.environ["XDG_CACHE_HOME"] = str(cache)
    ds = load(str(folder), {}, "classification", 0, input_shape=(3, 32, 32))
    np.savez(work / "same.npz", x=ds.x.astype(np.uint8), y=ds.y)
    results = {}
    for label, data in (("folder (cached, lazy)", folder), ("npz (in memory)", work / "same.npz")):
        spec = work / f"{label.split()[0]}.dl"
        spec.write_text(SPEC.format(data=data))
        subprocess.run([sys.executable, "-m", "dlc", "train", str(spec), "-o", str(work / "run"), "--overwrite", "-q"],
                       check=True, env=_env(cache), capture_output=True)  # (the first: fills the cache)
        times = []
        for _ in range(3):
            subprocess.run([sys.executable, "-m", "dlc", "train", str(spec), "-o", str(work / "run"), "--overwrite",
                            "-q"], check=True, env=_env(cache), capture_output=True)
            times.append(_epoch_seconds(work / "run"))
        results[label] = min(times)
        print(f"epochs: {label}: {min(times):.3f} s per epoch ({1 / min(times):.2f} epochs/s; 5,400 images)")
    a, b = results["folder (cached, lazy)"], results["npz (in memory)"]
    print(f"epochs: the folder takes {100 * (a / b - 1):+.1f} % of the in-memory epoch time")


MEM_SPEC = """model m {{
    input 3x128x128
    avgpool 4
    conv 8 kernel=3 pad=same batchnorm relu
    maxpool 2
    flatten
    dense 10 softmax
}}
data "{data}" test=0.1 scale=1/255
train epochs=1 batch=64 seed=0 threads=1 validation=0
"""


def _peak_rss(spec: Path, work: Path, limit: str) -> float:
    code = ("import resource, sys; from dlc.cli import main; rc = main(sys.argv[1:]); "
            "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "train", str(spec), "-o", str(work / "memrun"), "--overwrite", "-q",
                        "--max-memory", limit], env=_env(work / "memcache"), capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr)
    return int(r.stdout.split("peak")[-1]) / 1024  # kB -> MB


def memory(work: Path) -> None:
    big = make_folder(work / "memory", 26000, 128)
    small = work / "memory-small"
    if not small.exists():
        for f in sorted(big.rglob("*.png"))[::52]:
            (small / f.parent.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, small / f.parent.name / f.name)
    decoded = 26000 * 3 * 128 * 128 / 2**20
    for label, folder in (("26,000 images", big), ("500 images", small)):
        spec = work / "mem.dl"
        spec.write_text(MEM_SPEC.format(data=folder))
        _peak_rss(spec, work, "400M")  # the first run decodes into the cache
        peak = _peak_rss(spec, work, "400M")
        print(f"memory: --max-memory 400M, {label} ({decoded if label.startswith('26') else decoded * 500 / 26000:,.0f} "
              f"MB decoded): peak RSS {peak:,.0f} MB")


def main(what: str = "all", work: str = "/tmp/dlc-bench-images") -> None:
    w = Path(work)
    w.mkdir(parents=True, exist_ok=True)
    for name, fn in (("decode", decode), ("epochs", epochs), ("memory", memory)):
        if what in (name, "all"):
            fn(w)


if __name__ == "__main__":
    main(*sys.argv[1:])
