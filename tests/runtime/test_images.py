"""Image files as data: a folder of class folders (1,797 real handwritten-digit scans written as PNG
files) trains, evaluates, exports with ONNX parity and predicts from files, class names intact; check
lists the folder; each bad file is refused by name (or left out and counted with skip_bad); decoded
images are cached; fit, channels and CSV lists."""

from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import dlc
from dlc.cli import main

from conftest import ROOT

pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

sys.path.insert(0, str(ROOT / "specs" / "images"))
from make_digit_pngs import write_digit_pngs  # noqa: E402

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

CNN = """model digits_cnn {{
    input {input}
    conv 8 kernel=3 pad=same batchnorm relu
    maxpool 2
    flatten
    dense 10 softmax
}}
data "{data}" test=0.2 scale=1/255{extra}
optimizer adam lr=3e-3
train epochs={epochs} batch=64 seed=0
"""


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """1,797 PNG files in 10 class folders named zero ... nine."""
    return write_digit_pngs(tmp_path_factory.mktemp("pngs") / "digits", names=NAMES)


def _spec(tmp_path, data, epochs=3, extra="", input="1x16x16", name="s.dl"):
    path = tmp_path / name
    path.write_text(CNN.format(data=data, epochs=epochs, extra=extra, input=input))
    return path


def test_check_lists_the_folder(digits, tmp_path, capsys):
    assert main(["check", str(_spec(tmp_path, digits))]) == 0
    out = capsys.readouterr().out
    assert ("images: 1,797 in 10 classes (eight 174, five 182, four 181, nine 180, one 182, seven 179, six 181, "
            "three 183, two 177, zero 178); sizes in all 1,797 headers: 16x16 (1,797); modes: L (1,797)") in out


def test_a_folder_of_pngs_trains_evaluates_exports_and_predicts_with_its_class_names(digits, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(_spec(tmp_path, digits, epochs=6)), "-o", str(run), "-q"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["classes"] == sorted(NAMES)  # the folders' names, sorted
    assert sum(metrics["samples"].values()) == 1797 and metrics["skipped_files"] == 0
    assert metrics["test"]["accuracy"] > 0.9
    assert main(["eval", str(run), "--split", "test"]) == 0
    assert main(["export", str(run), "-o", str(tmp_path / "m.onnx")]) == 0
    assert "max abs difference" in capsys.readouterr().out
    import onnx
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert json.loads(meta["classes"]) == sorted(NAMES)
    r = dlc.predict(str(tmp_path / "m.onnx"), str(digits / "seven"))
    assert len(r["files"]) == 179 and r["files"][0] == str(digits / "seven" / "0007.png")
    assert np.mean(r["class_name"] == "seven") > 0.85
    capsys.readouterr()
    assert main(["predict", str(run), str(digits / "three" / "0003.png")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "file\tclass\tprobability" and out[1].startswith(f"{digits / 'three' / '0003.png'}\t")


def test_decoded_images_are_cached_and_not_decoded_again(digits, tmp_path, monkeypatch):
    from dlc.runtime.data import images
    from dlc.runtime.data.datasets import load
    first = load(str(digits), {}, "classification", 0, input_shape=(1, 16, 16))

    def no_decoding(*a, **k):
        raise AssertionError("decoded again")
    monkeypatch.setattr(images, "_decode_one", no_decoding)
    again = load(str(digits), {}, "classification", 0, input_shape=(1, 16, 16))
    assert np.array_equal(first.x, again.x) and np.array_equal(first.y, again.y)
    assert first.x.shape == (1797, 1, 16, 16)
    from sklearn.datasets import load_digits
    index = int(Path(first.files[0]).stem)  # eight/0008.png: the folders are sorted by name
    scan = np.clip(load_digits().images[index] * 255 / 16, 0, 255)
    small = np.asarray(Image.fromarray(first.x[0, 0].astype(np.uint8)).resize((8, 8), Image.BILINEAR), np.float32)
    assert np.corrcoef(small.ravel(), scan.ravel())[0, 1] > 0.95  # the file's pixels are its scan's


# ---- bad files -----------------------------------------------------------------------------------------
def _folder(tmp_path, classes=("cat", "dog"), n=3):
    root = tmp_path / "photos"
    rng = np.random.default_rng(0)
    for c in classes:
        (root / c).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8), "RGB").save(root / c / f"{i}.png")
    return root


def _bomb_png(path: Path, side: int = 50_000):
    """A PNG whose header says side x side pixels (the data is a few bytes)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def _truncate(path: Path):
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8), "RGB").save(path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


BAD = {
    "a truncated image": (lambda r: _truncate(r / "cat" / "9.png"),
                          "photos/cat/9.png is damaged: image file is truncated"),
    "a file that is not an image": (lambda r: (r / "dog" / "notes.txt").write_text("hi"),
                                    "photos/dog/notes.txt is not an image file (.png, .jpg, .jpeg, .bmp, .gif, "
                                    ".webp); remove it, or write skip_bad on the data line to leave such files out"),
    "text named .png": (lambda r: (r / "dog" / "fake.png").write_text("not a picture"),
                        "photos/dog/fake.png is not an image Pillow can read (its name says PNG)"),
    "an empty class folder": (lambda r: (r / "emu").mkdir(), "photos/emu/ holds no images: an empty class"),
    "a link out of the folder": (lambda r: (r / "cat" / "x.png").symlink_to(r.parent / "outside.png"),
                                 "photos/cat/x.png is a link out of photos/ (to "),
    "a decompression bomb": (lambda r: _bomb_png(r / "dog" / "big.png"),
                             "photos/dog/big.png: 2,500,000,000 pixels; dlc decodes images of at most 64 M pixels "
                             "(a decompression bomb?)"),
    "a linked folder": (lambda r: (r / "cat" / "more").symlink_to(r / "dog"),
                        "photos/cat/more is a link to a folder; dlc reads the folders inside the data folder itself"),
    "a loose file": (lambda r: _truncate(r / "loose.png"),
                     "photos/loose.png is not in a class folder: each class is a sub-folder of photos/"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
@pytest.mark.parametrize("command", ["check", "train"])
def test_each_bad_file_is_a_located_refusal_naming_it(tmp_path, capsys, case, command):
    root = _folder(tmp_path)
    Image.new("RGB", (12, 12)).save(tmp_path / "outside.png")
    make, message = BAD[case]
    make(root)
    spec = _spec(tmp_path, "photos/", input="3x12x12").read_text().replace("dense 10", "dense 2")
    path = tmp_path / "s.dl"
    path.write_text(spec)
    args = ["train", str(path), "-o", str(tmp_path / "run"), "-q"] if command == "train" else ["check", str(path)]
    if case in ("a truncated image",) and command == "check":  # check reads headers only: the header is whole
        assert main(args) == 0
        return
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{path}:8:6: error: " in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists() or command == "train"


def test_skip_bad_leaves_bad_files_out_and_counts_them(tmp_path, capsys):
    root = _folder(tmp_path, n=6)
    _truncate(root / "cat" / "9.png")
    (root / "dog" / "notes.txt").write_text("hi")
    (root / "dog" / "fake.png").write_text("no")
    path = tmp_path / "s.dl"
    path.write_text(_spec(tmp_path, "photos/", input="3x12x12", extra=" skip_bad").read_text()
                    .replace("dense 10", "dense 2"))
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "images: 13 in 2 classes (cat 7, dog 6)" in out  # the header that cannot be read is left out
    assert "skipped (skip_bad): 2 file(s), first photos/dog/notes.txt" in out
    assert main(["train", str(path), "-o", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "note: skip_bad: 3 image file(s) left out" in err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["skipped_files"] == 3 and sum(metrics["samples"].values()) == 12


# ---- decoding ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fit, expect", [
    ("stretch", lambda a: np.all(a > 200)),  # the whole white 20x10 image fills 8x8
    ("pad", lambda a: np.all(a[:, :2] == 0) and np.all(a[:, 3:5] > 200)),  # black bars left and right
    ("crop", lambda a: np.all(a > 200)),  # the centre 10x10, scaled
])
def test_fit_keeps_or_ignores_the_aspect(tmp_path, fit, expect):
    from dlc.runtime.data.image_listing import Listing
    from dlc.runtime.data.images import decode
    path = tmp_path / "tall.png"
    Image.new("L", (10, 20), 255).save(path)  # 10 wide, 20 high
    out = np.zeros((1, 1, 8, 8), np.uint8)
    decode(Listing(tmp_path, [path], np.zeros(1, np.int64), ["a"]), 1, (8, 8), fit, False, out)
    assert expect(out[0, 0])


def test_channels_convert_colour_and_grey(tmp_path):
    from dlc.runtime.data.image_listing import Listing
    from dlc.runtime.data.images import decode
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "red.png")
    Image.new("L", (4, 4), 100).save(tmp_path / "grey.png")
    files = Listing(tmp_path, [tmp_path / "red.png", tmp_path / "grey.png"], np.zeros(2, np.int64), ["a"])
    grey = np.zeros((2, 1, 4, 4), np.uint8)
    decode(files, 1, (4, 4), "stretch", False, grey)
    assert grey[0, 0, 0, 0] == 76 and grey[1, 0, 0, 0] == 100  # Pillow's L = 0.299 R + 0.587 G + 0.114 B
    colour = np.zeros((2, 3, 4, 4), np.uint8)
    decode(files, 3, (4, 4), "stretch", False, colour)
    assert list(colour[0, :, 0, 0]) == [255, 0, 0] and list(colour[1, :, 0, 0]) == [100, 100, 100]


def test_a_csv_list_of_image_paths(tmp_path, capsys):
    root = _folder(tmp_path, n=4)
    rows = ["path,animal"] + [f"photos/{c}/{i}.png,{c}" for c in ("cat", "dog") for i in range(4)]
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    path = tmp_path / "s.dl"
    path.write_text(_spec(tmp_path, "list.csv", input="3x12x12", extra=" label=animal").read_text()
                    .replace("dense 10", "dense 2"))
    assert main(["check", str(path)]) == 0
    assert "images: 8 in 2 classes (cat 4, dog 4)" in capsys.readouterr().out
    assert root.exists()


def test_image_keys_on_a_npz_source_are_refused(tmp_path, capsys):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)), y=np.arange(4) % 2)
    path = tmp_path / "s.dl"
    path.write_text('model m {\n    input 2\n    dense 2 softmax\n}\ndata "d.npz" size=8x8\n')
    assert main(["check", str(path)]) == 2
    assert f"{path}:5:14: error: the file d.npz does not use size=" in capsys.readouterr().err


def test_one_image_file_is_no_training_set(tmp_path, capsys):
    Image.new("L", (16, 16)).save(tmp_path / "one.png")
    path = _spec(tmp_path, "one.png")
    assert main(["check", str(path)]) == 2
    assert (f"{path}:8:6: error: one.png is one image; a data set to train on is a folder with one sub-folder per "
            "class") in capsys.readouterr().err


def test_ctrl_c_mid_epoch_on_a_lazy_augmented_folder_then_resume_is_bit_identical(digits, tmp_path, monkeypatch):
    from dlc.runtime import run_folder as rf
    from dlc.runtime.numpy_engine.engine import NumpyEngine
    from dlc.runtime.trainer import train
    spec = _spec(tmp_path, digits, epochs=3, extra="\naugment crop=1 rotate=10 noise=0.02")
    full = train(dlc.compile_file(spec), out=tmp_path / "full", progress=False)
    real = NumpyEngine.step
    calls = {"n": 0}

    def interrupting(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 30:  # epoch 2 of 3, mid-way (21 steps per epoch)
            raise KeyboardInterrupt
        return real(self, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(NumpyEngine, "step", interrupting)
        assert train(dlc.compile_file(spec), out=tmp_path / "part", progress=False).interrupted
    resumed = train(dlc.compile_file(spec), out=tmp_path / "part", resume=True, progress=False)
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    a, b = rf.load_npz(full.run_dir / "weights.npz"), rf.load_npz(resumed.run_dir / "weights.npz")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    import threading
    assert not [t for t in threading.enumerate() if t.name == "dlc-prefetch"]  # no reader left behind


def test_the_torch_engine_trains_from_the_folder_with_augmentation(digits, tmp_path):
    pytest.importorskip("torch")
    spec = _spec(tmp_path, digits, epochs=2, extra="\naugment crop=1 rotate=10")
    run = tmp_path / "run"
    assert main(["train", str(spec), "-o", str(run), "-q", "--engine", "torch"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["engine"] == "torch" and metrics["classes"] == sorted(NAMES)
    assert metrics["test"]["accuracy"] > 0.5


def test_a_folder_that_cannot_be_listed_is_refused_not_skipped(tmp_path, capsys, monkeypatch):
    import os
    root = _folder(tmp_path)
    real = os.scandir

    def denied(path="."):
        if Path(path) == root / "dog":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)
    monkeypatch.setattr(os, "scandir", denied)
    path = tmp_path / "s.dl"
    path.write_text(_spec(tmp_path, "photos/", input="3x12x12").read_text().replace("dense 10", "dense 2"))
    assert main(["check", str(path)]) == 2
    assert f"{path}:8:6: error: cannot list photos/dog: Permission denied" in capsys.readouterr().err


def test_a_run_reads_its_folder_again_and_refuses_it_once_changed(tmp_path, capsys):
    root = _folder(tmp_path, n=6)
    (root / "dog" / "notes.txt").write_text("hi")
    path = tmp_path / "s.dl"
    path.write_text(_spec(tmp_path, "photos/", input="3x12x12", extra=" skip_bad").read_text()
                    .replace("dense 10", "dense 2"))
    run = tmp_path / "run"
    assert main(["train", str(path), "-o", str(run), "-q"]) == 0
    assert main(["eval", str(run)]) == 0  # the same listing (skip_bad as trained)
    Image.new("RGB", (12, 12)).save(root / "cat" / "new.png")
    capsys.readouterr()
    assert main(["eval", str(run)]) == 2
    assert f"{root} changed since this run was trained (its listing of names, sizes and modification times" \
        in capsys.readouterr().err


def test_the_cache_keeps_the_recently_used_sets_within_its_limit(tmp_path):
    import os
    from dlc.runtime.data.image_cache import prune
    for k, name in enumerate(["old", "mid", "new"]):
        (tmp_path / f"{name}.npy").write_bytes(b"x" * 1000)
        (tmp_path / f"{name}.kept.npy").write_bytes(b"k")
        os.utime(tmp_path / f"{name}.npy", ns=(10**18 + k * 10**9, 10**18 + k * 10**9))
    assert prune(tmp_path, keep=tmp_path / "old.npy", limit=2000) == [tmp_path / "mid.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.kept.npy", "new.npy", "old.kept.npy", "old.npy"]
    assert prune(tmp_path, limit=1000) == [tmp_path / "old.npy"]


def test_a_survey_is_reused_until_a_folder_changes(tmp_path):
    from dlc.runtime.data.images import survey
    root = _folder(tmp_path, n=2)
    first = survey(root, {})
    assert survey(root, {}) is first  # (the language server re-checks on every edit)
    Image.new("RGB", (12, 12)).save(root / "dog" / "9.png")
    again = survey(root, {})
    assert again is not first and len(again.listing.files) == 5


# ---- what hostile and careless folders must not break (issue 31: 4, 5, 7, 8; issue 26: 4) --------------
def _train_spec(tmp_path, extra="", classes=2, input="3x12x12"):
    path = tmp_path / "s.dl"
    path.write_text(_spec(tmp_path, "photos/", input=input, extra=extra, epochs=1).read_text()
                    .replace("dense 10", f"dense {classes}"))
    return path


@pytest.mark.parametrize("command", ["check", "train"])
def test_skip_bad_does_not_train_a_class_whose_only_file_is_bad(tmp_path, capsys, command):
    root = _folder(tmp_path)
    (root / "emu").mkdir()
    (root / "emu" / "bad.png").write_text("not a picture")
    path = _train_spec(tmp_path, " skip_bad", classes=3)
    args = ["check", str(path)] if command == "check" else ["train", str(path), "-o", str(tmp_path / "run"), "-q"]
    assert main(args) == 2
    assert "photos/emu/ holds no image that can be read (skip_bad left out its file(s)): an empty class" \
        in capsys.readouterr().err


def test_check_reads_every_header_so_a_bad_file_among_many_is_found_before_training(tmp_path, capsys):
    root = _folder(tmp_path, n=100)
    (root / "dog" / "50b.png").write_text("not a png")  # between the headers a sample of 64 would read
    assert main(["check", str(_train_spec(tmp_path))]) == 2
    assert "photos/dog/50b.png is not an image Pillow can read (its name says PNG)" in capsys.readouterr().err
    (root / "dog" / "50b.png").unlink()
    assert main(["check", str(_train_spec(tmp_path))]) == 0
    assert "sizes in all 200 headers: 12x12 (200)" in capsys.readouterr().out


def test_16_bit_grey_images_are_scaled_to_8_bits_not_clipped(tmp_path):
    from dlc.runtime.data.images import _decode_one
    values = np.array([[0, 1000, 34000, 65535]] * 4, np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    out = _decode_one(tmp_path / "deep.png", tmp_path, 1, (4, 4), "stretch")
    assert out[0, 0].tolist() == [0, 4, 132, 255]  # v / 257, rounded (convert("L") gave 0, 255, 255, 255)


@pytest.mark.parametrize("command", ["check", "train", "train skip_bad", "predict"])
def test_a_loop_of_links_is_refused_by_name_or_skipped(tmp_path, capsys, command):
    import os
    root = _folder(tmp_path)
    path = _train_spec(tmp_path, " skip_bad" if "skip_bad" in command else "")
    run = tmp_path / "run"
    if command == "predict":  # a run trained on the folder as it was; then the links appear
        assert main(["train", str(path), "-o", str(run), "-q"]) == 0
    os.symlink("loop2.png", root / "cat" / "loop1.png")
    os.symlink("loop1.png", root / "cat" / "loop2.png")
    message = "cat/loop1.png is a link that leads to no file (a loop of links)"
    args = {"check": ["check", str(path)], "predict": ["predict", str(run), str(root / "cat")]}.get(
        command, ["train", str(path), "-o", str(run), "-q"])
    if "skip_bad" in command:
        assert main(args) == 0
        assert json.loads((run / "metrics.json").read_text())["skipped_files"] == 2
        return
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_a_file_name_that_is_not_utf_8_trains(tmp_path):
    import os
    root = _folder(tmp_path)
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes: a surrogate in Python's str
    Image.new("RGB", (12, 12)).save(os.fsencode(root / "cat") + b"/caf\xe9.png")
    assert (root / "cat" / name).exists()
    path = _train_spec(tmp_path)
    assert main(["check", str(path)]) == 0
    assert main(["train", str(path), "-o", str(tmp_path / "run"), "-q"]) == 0
    assert main(["eval", str(tmp_path / "run")]) == 0


def test_grey_values_past_16_bits_are_refused_by_name(tmp_path):
    from dlc.runtime.data.files import DataError
    from dlc.runtime.data.images import _deep_to_8_bits
    im = Image.fromarray(np.array([[0, 70000]], np.int32), "I")
    with pytest.raises(DataError, match=r"^photos/a.png holds 32-bit grey values \(0..70000\); dlc reads 8- and "
                                        r"16-bit images: save it as a 16-bit PNG$"):
        _deep_to_8_bits(im, tmp_path / "photos" / "a.png", tmp_path / "photos")
