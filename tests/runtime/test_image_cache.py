"""The decoded-image cache is verified before use: an entry with other bytes, another dtype, a lying
header, a link, a FIFO, a pickle, a mask that drops rows ... is a miss, decoded again and written over --
the images trained on are always the folder's (issue 31, item 1)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from dlc.runtime.data import image_cache  # noqa: E402
from dlc.runtime.data.datasets import load  # noqa: E402


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8), "L").save(root / c / f"{i}.png")
    return root


def _load(root):
    data = load(str(root), {}, "classification", 0, input_shape=(1, 6, 6))
    return np.asarray(data.x).copy(), np.asarray(data.y).copy()


def _entry(tmp_path) -> Path:
    (npy,) = [p for p in (tmp_path / "cache" / "dlc" / "images").glob("*.npy") if not p.name.startswith(".")]
    return npy


def _save_like(path: Path, array: np.ndarray):
    with open(path, "wb") as f:  # np.save would add .npy to a path without it; this writes in place
        np.save(f, array, allow_pickle=True)


def _fifo(npy: Path):
    npy.unlink()
    os.mkfifo(npy)


TAMPER = {
    "pixels inverted": lambda npy, x: _save_like(npy, 255 - x),
    "pixels zeroed": lambda npy, x: _save_like(npy, np.zeros_like(x)),
    "float64 of the same shape": lambda npy, x: _save_like(npy, x.astype(np.float64)),
    "a link to another .npy": lambda npy, x: (_save_like(npy.with_name("other.npy"), np.zeros_like(x)),
                                              npy.unlink(), npy.symlink_to(npy.with_name("other.npy"))),
    "a link to /dev/zero": lambda npy, x: (npy.unlink(), npy.symlink_to("/dev/zero")),
    "truncated": lambda npy, x: npy.write_bytes(npy.read_bytes()[:100]),
    "empty": lambda npy, x: npy.write_bytes(b""),
    "a lying header": lambda npy, x: npy.write_bytes(npy.read_bytes()[:-10]),
    "pickled": lambda npy, x: _save_like(npy, np.array([object()] * len(x), dtype=object)),
    "a FIFO": lambda npy, x: _fifo(npy),
    "the mask drops rows": lambda npy, x: npy.with_suffix(".json").write_text(json.dumps(
        {**json.loads(npy.with_suffix(".json").read_text()), "dropped": [0, 1]})),
    "the record removed": lambda npy, x: npy.with_suffix(".json").unlink(),
}


@pytest.mark.parametrize("case", list(TAMPER), ids=list(TAMPER))
def test_a_damaged_entry_is_decoded_again_and_replaced(folder, tmp_path, case):
    x, y = _load(folder)
    npy = _entry(tmp_path)
    TAMPER[case](npy, x)
    again, y_again = _load(folder)
    assert np.array_equal(again, x) and np.array_equal(y_again, y)
    assert image_cache.read(npy.parent, npy.stem, x.shape, False) is not None  # the new entry verifies


def test_a_verified_entry_is_read_without_decoding(folder, tmp_path, monkeypatch):
    from dlc.runtime.data import images
    x, _ = _load(folder)

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")
    monkeypatch.setattr(images, "_decode_one", no_decoding)
    assert np.array_equal(_load(folder)[0], x)


@pytest.mark.parametrize("suffix", [".npy", ".json"])
def test_a_folder_in_place_of_an_entry_is_refused_by_name(folder, tmp_path, suffix):
    _load(folder)
    path = _entry(tmp_path).with_suffix(suffix)
    path.unlink()
    path.mkdir()
    from dlc.runtime.data.files import DataError
    with pytest.raises(DataError, match=f"the image cache holds a folder {path}, where dlc keeps a decoded set"):
        _load(folder)
