"""Data read from disk a batch at a time (runtime/data/lazy.py): an .npz past --max-memory trains from a
memory map with the numbers of the in-memory run; what cannot be read that way is refused by name;
LazyInputs reads what fancy indexing would; Prefetch keeps order, raises where the item was, leaves no
thread behind."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from dlc.cli import main
from dlc.runtime.data.lazy import LazyInputs, Prefetch

SPEC = 'model m {{\n    input 50\n    dense 16 relu\n    dense 3 softmax\n}}\ndata "{name}" standardize\n' \
       'train epochs=2 batch=64 seed=0\n'


def _data(tmp_path, save=np.savez, bad_row=None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 50)).astype(np.float32)  # 4 MB
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    if bad_row is not None:
        x[bad_row, 3] = np.nan
    save(tmp_path / "big.npz", x=x, y=y)
    spec = tmp_path / "s.dl"
    spec.write_text(SPEC.format(name="big.npz"))
    return spec


def test_an_npz_past_the_memory_limit_trains_from_disk_with_the_same_numbers(tmp_path):
    spec = _data(tmp_path)
    assert main(["train", str(spec), "-o", str(tmp_path / "disk"), "-q", "--max-memory", "2M"]) == 0
    assert main(["train", str(spec), "-o", str(tmp_path / "memory"), "-q"]) == 0
    a, b = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("disk", "memory"))
    assert a["test"] == b["test"] and a["train"] == b["train"]
    assert (tmp_path / "disk" / "history.csv").read_text().split("seconds")[1].count("\n") == 3


@pytest.mark.parametrize("save, bad_row, message", [
    (np.savez_compressed, None, "big.npz holds 3.97 MB once read; the limit is 2 MB; its 'x' is compressed, so it "
                                "cannot be read from disk a batch at a time either: save it with np.savez (not "
                                "savez_compressed), or raise --max-memory"),
    (np.savez, 12345, "big.npz: inputs hold NaN or inf (first at sample 12345)"),
])
def test_what_cannot_be_read_from_disk_is_refused_by_name(tmp_path, capsys, save, bad_row, message):
    spec = _data(tmp_path, save, bad_row)
    assert main(["train", str(spec), "-o", str(tmp_path / "run"), "-q", "--max-memory", "2M"]) == 2
    err = capsys.readouterr().err
    assert f"{spec}:6:6: error: " in err and message in err


def test_lazy_rows_are_what_fancy_indexing_reads(tmp_path):
    x = np.random.default_rng(1).integers(0, 255, (300, 2, 5, 5), dtype=np.uint8)
    np.save(tmp_path / "a.npy", x)
    source = np.load(tmp_path / "a.npy", mmap_mode="r")
    rows = np.random.default_rng(2).permutation(300)[:120]
    lazy = LazyInputs(source, rows)
    pick = np.array([7, 3, 100, 3, 55])
    assert lazy.shape == (120, 2, 5, 5) and len(lazy) == 120
    assert np.array_equal(lazy[pick], x[rows[pick]].astype(np.float32))
    assert np.array_equal(lazy[10:20], x[rows[10:20]].astype(np.float32))
    assert np.array_equal(np.concatenate(list(lazy.chunks())), x[rows].astype(np.float32))


def test_prefetch_keeps_order_raises_in_place_and_stops():
    assert list(Prefetch(iter(range(50)))) == list(range(50))

    def failing():
        yield 1
        raise ValueError("bad batch")
    got = []
    with pytest.raises(ValueError, match="bad batch"):
        for item in Prefetch(failing()):
            got.append(item)
    assert got == [1]
    ahead = Prefetch(iter(range(10**6)))
    for item in ahead:
        if item == 3:
            break
    ahead.close()
    assert not [t for t in threading.enumerate() if t.name == "dlc-prefetch"]
