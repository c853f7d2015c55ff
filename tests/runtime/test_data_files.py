"""Data files read with care: headers checked before reading, nothing inflated past its header or the
memory limit, no device or FIFO read, keys checked against the source, and CSV columns named."""

import random

import numpy as np
import pytest
from helpers import npz_with_header

import dlc
from dlc.cli import main


def _data_spec(source, extra=""):
    """A spec reading `source` (+ `extra` on its data line) into a 2-feature, 2-class model."""
    return (f"model m {{\n input 2\n dense 2 softmax\n}}\ndata \"{source}\"{extra}\n"
            "train epochs=1 seed=0\n")


def _zeros_npz(path, rows):
    """An honest .npz of `rows` x 2 float32 zeros, written by streaming (it deflates ~1000:1)."""
    import io
    import zipfile

    import numpy as np
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (rows, 2)})
        with z.open("x.npy", "w", force_zip64=True) as f:
            f.write(header.getvalue())
            block = bytes(1 << 22)
            left = rows * 8
            while left:
                f.write(block[:min(left, len(block))])
                left -= min(left, len(block))
        y = io.BytesIO()
        np.save(y, np.zeros(rows, np.int8))
        z.writestr("y.npy", y.getvalue())


@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("case, message", [
    ("no_samples", "no_samples.npz holds no samples ('x' is 0x2)"),
    ("y_claims_1e12", "y_claims_1e12.npz is damaged: array 'y' claims 1000000000000 (8,000,000,000,000 bytes) "
                      "but holds 80 bytes"),
    ("x_claims_1e12", "x_claims_1e12.npz is damaged: array 'x' claims 1000000000000x2 (8,000,000,000,000 bytes) "
                      "but holds 80 bytes"),
])
def test_npz_headers_are_checked_against_the_data_before_reading(spec_file, tmp_path, capsys, command, case, message):
    import numpy as np
    x, y = np.zeros((10, 2), np.float32), np.zeros(10, np.int64)
    claims = {"no_samples": {}, "y_claims_1e12": {"y": (10 ** 12,)}, "x_claims_1e12": {"x": (10 ** 12, 2)}}[case]
    arrays = {"x": np.zeros((0, 2), np.float32), "y": np.zeros(0, np.int64)} if case == "no_samples" else \
        {"x": x, "y": y}
    npz_with_header(tmp_path / f"{case}.npz", arrays, claims)
    spec = spec_file(_data_spec(f"{case}.npz"))
    args = [command, str(spec)] + (["-q", "-o", str(tmp_path / "run")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:6: error: {tmp_path / case}" in err and message in err, err


@pytest.mark.slow
def test_an_npz_that_inflates_past_the_memory_limit_is_refused_unread(spec_file, tmp_path, capsys):
    _zeros_npz(tmp_path / "bomb.npz", 25_000_000)  # 200 MB of zeros in a file of ~200 kB
    assert (tmp_path / "bomb.npz").stat().st_size < 1_000_000
    spec = spec_file(_data_spec("bomb.npz", " test=0"))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run"), "--max-memory", "100M"]) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:6: error: {tmp_path / 'bomb.npz'} holds 215 MB once read; the limit is 100 MB" in err


def test_a_gzipped_idx_file_is_never_inflated_past_its_header(spec_file, tmp_path, capsys):
    import gzip
    import struct
    with gzip.open(tmp_path / "img-idx3-ubyte.gz", "wb") as f:  # says 10 images of 2 values; inflates to 64 MB
        f.write(bytes([0, 0, 8, 2]) + struct.pack(">2I", 10, 2) + bytes(1 << 26))
    with gzip.open(tmp_path / "lab-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + bytes(10))
    spec = spec_file(_data_spec("img-idx3-ubyte.gz", ' labels="lab-idx1-ubyte.gz"'))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'img-idx3-ubyte.gz'}: IDX header says 10x2 (20 values) but the file holds more" in err
    with gzip.open(tmp_path / "big-idx3-ubyte.gz", "wb") as f:  # claims 4 G values: refused before reading
        f.write(bytes([0, 0, 8, 2]) + struct.pack(">2I", 2 ** 31, 2))
    spec = spec_file(_data_spec("big-idx3-ubyte.gz", ' labels="lab-idx1-ubyte.gz"'))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run2"), "--max-memory", "1G"]) == 2
    assert "big-idx3-ubyte.gz holds 4 GB once read; the limit is 1 GB" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("make, message", [
    (lambda p: __import__("os").mkfifo(p / "fifo.csv"), "fifo.csv is a FIFO (named pipe), not a regular file"),
    (lambda p: (p / "zero.csv").symlink_to("/dev/zero"), "zero.csv is a character device, not a regular file"),
    (lambda p: (p / "random.npz").symlink_to("/dev/urandom"), "random.npz is a character device, not a regular file"),
])
def test_data_that_is_not_a_regular_file_is_refused_without_reading(spec_file, tmp_path, capsys, command, make, message):
    make(tmp_path)
    name = message.split(" ")[0]
    spec = spec_file(_data_spec(name))
    args = [command, str(spec)] + (["-q", "-o", str(tmp_path / "run")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:6: error: {tmp_path / name} is {message.split(' is ', 1)[1]}" in err


@pytest.mark.parametrize("source, message", [
    ("~nosuchuser_dlc/x.csv", "cannot resolve ~nosuchuser_dlc/x.csv: no such user's home folder"),
    ("a" * 300 + ".csv", "cannot open the data file "),
])
def test_data_paths_that_cannot_be_opened_are_located(spec_file, tmp_path, capsys, source, message):
    spec = spec_file(_data_spec(source))
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:6: error: {message}" in err and "File name too long" in err or "no such user" in err


def test_a_csv_peek_does_not_cut_a_character_or_a_long_header(spec_file, tmp_path, capsys):
    # byte 1,048,575 begins a two-byte character; the header alone is longer than 1 MiB
    names = [f"f{i}" for i in range(200_000)]
    header = ",".join(names) + ",label\n"
    assert len(header) > 1 << 20
    (tmp_path / "wide.csv").write_text(header + ",".join(["0"] * 200_000) + ",a\n")
    spec = spec_file("model m {\n input 200000\n dense 2 softmax\n}\ndata \"wide.csv\" label=label\n", "w.dl")
    assert main(["check", str(spec)]) == 0, capsys.readouterr().err
    text = "a,label\n" + "1,y\n" * 262_140 + "1,yy\n" + "1,"
    assert len(text.encode()) == 1_048_575
    (tmp_path / "utf8.csv").write_text(text + "é\n")
    spec = spec_file("model m {\n input 1\n dense 3 softmax\n}\ndata \"utf8.csv\"\n", "u.dl")
    code = main(["check", str(spec)])
    assert "not UTF-8" not in capsys.readouterr().err
    assert code == 0


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_a_data_record_naming_a_device_or_fifo_is_refused_without_reading(spec_file, tmp_path, capsys, target):
    import json
    import os

    import numpy as np
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(60, 2)).astype("float32"),
             y=np.arange(60) % 3)
    spec = spec_file("model m {\n input 2\n dense 3 softmax\n}\ndata \"d.npz\"\ntrain epochs=1 seed=0\n")
    run = tmp_path / "run"
    assert main(["train", str(spec), "-q", "-o", str(run)]) == 0
    if target == "fifo":
        os.mkfifo(tmp_path / "fifo")
        target = str(tmp_path / "fifo")
    record = json.loads((run / "data.json").read_text())
    record["files"][str(tmp_path / "d.npz")]["path"] = target
    (run / "data.json").write_text(json.dumps(record))
    assert main(["eval", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"{target} is " in err and ", not a regular file" in err


def test_random_lies_about_file_type_and_size_are_located_refusals(spec_file, tmp_path, capsys):
    """A generated family: data files whose .npy headers claim random shapes and dtypes, truncated or
    padded members, and paths that are folders, FIFOs, devices, empty or random bytes; every case is
    accepted when the file is honest and fits, and otherwise an error at the data line (exit 2)."""
    import os
    rng = random.Random(7)
    for case in range(40):
        d = tmp_path / f"c{case}"
        d.mkdir()
        kind = rng.choice(["header", "header", "bytes", "empty", "fifo", "dir", "device"])
        path = d / "d.npz"
        x, y = np.zeros((12, 2), np.float32), np.arange(12) % 3
        honest = False
        if kind == "header":
            claims = {rng.choice(["x", "y"]): tuple(rng.choice([0, 1, 12, 13, 10 ** 9, 10 ** 12])
                                                    for _ in range(rng.randint(1, 3)))}
            honest = all(shape == {"x": x, "y": y}[k].shape for k, shape in claims.items())
            npz_with_header(path, {"x": x, "y": y}, claims)
        elif kind == "bytes":
            path.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(1, 400))))
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        else:
            path.symlink_to(rng.choice(["/dev/zero", "/dev/urandom", "/dev/null"]))
        spec = spec_file(_data_spec("d.npz"), folder=d)
        for command in ("check", "train"):
            args = [command, str(spec)] + (["-q", "-o", str(d / "run")] if command == "train" else [])
            code = main(args)
            err = capsys.readouterr().err
            assert "internal error" not in err, (case, kind, err)
            if honest:
                assert code == 0, (case, err)
            else:
                assert code == 2 and "s.dl:5:6: error: " in err, (case, kind, err)


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.normal(size=(60, 2)).astype("float32"), y=np.arange(60) % 3)
    return tmp_path / "d.npz"


@pytest.mark.parametrize("key, value", [("n", "1000"), ("noise", "5.0"), ("classes", "3")])
def test_a_key_a_file_source_does_not_use_is_a_located_error(spec_file, tmp_path, capsys, npz, key, value):
    spec = spec_file('model m {\n input 2\n dense 3 softmax\n}\ndata "d.npz"\n')
    assert main(["check", str(spec), "--set", f"data.{key}={value}"]) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:14: error: the file d.npz does not use {key}=" in err
    assert f"hint: {key}= is for the synthetic sets that take it (" in err


@pytest.mark.parametrize("data, key, message", [
    ("xor", "classes=3", "the built-in set xor does not use classes="),
    ("digits", "n=100", "the built-in set digits does not use n="),
    ("spiral", "label=y", "the built-in set spiral does not use label="),
    ('"d.npz"', "labels=\"l.idx\"", "the file d.npz does not use labels="),
])
def test_keys_are_checked_against_the_source(spec_file, tmp_path, capsys, npz, data, key, message):
    out = "10" if data == "digits" else "2" if data == "xor" else "3"
    inp = "64" if data == "digits" else "2"
    spec = spec_file(f"model m {{\n input {inp}\n dense {out} softmax\n}}\ndata {data} {key}\n")
    assert main(["check", str(spec)]) == 2
    assert f"error: {message}" in capsys.readouterr().err


def test_a_training_split_of_one_class_is_refused(spec_file, tmp_path, capsys):
    np.savez(tmp_path / "one.npz", x=np.random.default_rng(0).normal(size=(40, 2)).astype("float32"),
             y=np.zeros(40, np.int64))
    spec = spec_file('model m {\n input 2\n dense 2 softmax\n}\ndata "one.npz"\ntrain epochs=1\n')
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "s.dl:5:6: error: the training split holds one class only ('0', 28 samples): a classifier learns " \
           "nothing from it and would score 100 %" in err


def test_an_unknown_csv_label_column_gets_a_did_you_mean_not_every_column(spec_file, tmp_path, capsys):
    names = [f"pixel{i}" for i in range(784)] + ["digit"]
    (tmp_path / "wide.csv").write_text(",".join(names) + "\n" + ",".join(["0"] * 784) + ",1\n")
    spec = spec_file("model m {\n input 784\n dense 2 softmax\n}\ndata \"wide.csv\" label=digits\n")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "wide.csv has no column 'digits'; did you mean 'digit'?" in err and len(err) < 600


def test_given_data_takes_flat_samples_for_any_image_model_and_names_the_shape(spec_file, tmp_path, capsys):
    from sklearn.datasets import load_digits
    spec = spec_file("model m {\n input 1x8x8\n conv 4 kernel=3 relu\n flatten\n dense 10 softmax\n}\n"
                            "data digits\ntrain epochs=1 seed=0\n")
    run = tmp_path / "run"
    assert main(["train", str(spec), "-q", "-o", str(run)]) == 0
    d = load_digits()
    np.savez(tmp_path / "flat.npz", x=d.data[:20].astype("float32"), y=d.target[:20])
    assert main(["predict", str(run), str(tmp_path / "flat.npz")]) == 0
    assert dlc.predict(run, d.data[:3])["output"].shape == (3, 10)
    np.savez(tmp_path / "odd.npz", x=np.zeros((5, 3), "float32"))
    assert main(["predict", str(run), str(tmp_path / "odd.npz")]) == 2
    err = capsys.readouterr().err
    assert "odd.npz samples are 3 but the model's input is 1x8x8" in err
    assert "hint: give samples of 1x8x8 or flat ones of 64 values" in err and "data line" not in err


def test_a_headerless_csv_says_which_column_became_the_label(spec_file, tmp_path, capsys):
    rows = "\n".join(",".join(["0.5"] * 64) for _ in range(20)) + "\n"
    (tmp_path / "f.csv").write_text(rows)
    spec = spec_file('model m {\n input 64\n dense 2 softmax\n}\ndata "f.csv"\n')
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "f.csv samples are 63 but the model's input is 64" in err
    assert "hint: the CSV's last column was read as the label (the default), leaving 63 features" in err
