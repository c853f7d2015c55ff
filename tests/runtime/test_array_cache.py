"""Built-in sets and their splits are cached as verified arrays (issue 26, item 2): a second run imports
no scikit-learn and gets the same numbers; a damaged entry is a miss, computed again."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from dlc.runtime.data import array_cache

SPEC = "model m {\n input 64\n dense 16 relu\n dense 10 softmax\n}\ndata digits test=0.2\ntrain epochs=1 seed=0\n"
CHECK = ("import sys\nfrom dlc.cli import main\ncode = main(['train', sys.argv[1], '-q', '-o', sys.argv[2]])\n"
         "print('sklearn' in sys.modules, code)\n")


def _run(tmp_path, name, env):
    done = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "s.dl"), str(tmp_path / name)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()[-2] == "True", json.loads((tmp_path / name / "metrics.json").read_text())


def test_a_second_run_imports_no_scikit_learn_and_gets_the_same_numbers(tmp_path):
    (tmp_path / "s.dl").write_text(SPEC)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=os.pathsep.join(sys.path))
    first_imported, first = _run(tmp_path, "a", env)
    again_imported, again = _run(tmp_path, "b", env)
    assert first_imported and not again_imported
    assert first["test"] == again["test"] and first["samples"] == again["samples"]
    weights = [np.load(tmp_path / r / "weights.npz") for r in ("a", "b")]
    assert all(np.array_equal(weights[0][k], weights[1][k]) for k in weights[0].files)


@pytest.mark.parametrize("damage", ["bytes", "digest", "link", "fifo", "pickle", "missing digest"])
def test_a_damaged_entry_is_a_miss(tmp_path, monkeypatch, damage):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    array_cache.save("e", {"x": np.arange(5)})
    assert array_cache.load("e")["x"].tolist() == [0, 1, 2, 3, 4]
    npz = array_cache.folder() / "e.npz"
    if damage == "bytes":
        data = bytearray(npz.read_bytes())
        data[-30] ^= 1
        npz.write_bytes(bytes(data))
    elif damage == "digest":
        (npz.parent / "e.sha256").write_text("0" * 64)
    elif damage == "link":
        (npz.parent / "other.npz").write_bytes(npz.read_bytes())
        npz.unlink()
        npz.symlink_to(npz.parent / "other.npz")
    elif damage == "fifo":
        npz.unlink()
        os.mkfifo(npz)
    elif damage == "pickle":
        import hashlib
        import io
        buf = io.BytesIO()
        np.savez(buf, x=np.array([object()], dtype=object))
        npz.write_bytes(buf.getvalue())
        (npz.parent / "e.sha256").write_text(hashlib.sha256(buf.getvalue()).hexdigest())
    else:
        (npz.parent / "e.sha256").unlink()
    assert array_cache.load("e") is None


def test_the_split_is_scikit_learns(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    from sklearn.model_selection import train_test_split

    from dlc.runtime.data.splits import split_rows
    y = np.random.default_rng(0).integers(0, 4, 101)
    for attempt in range(2):  # computed, then read back from the cache
        first, second = split_rows(y, 0.2, 7, True)
        a, b = train_test_split(np.arange(101), test_size=0.2, random_state=7, stratify=y)
        assert np.array_equal(first, a) and np.array_equal(second, b)
