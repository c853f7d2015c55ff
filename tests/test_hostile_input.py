"""Hostile and careless input: every class of it is a located refusal (exit 2), never a crash,
a hang, a write outside the run folder or a silently inexact result."""

import random

import pytest

from dlc.cli import main
from dlc.grammar.parser import MAX_NAME, MAX_NESTING

SPIRAL = "data spiral n=60\ntrain epochs=1 batch=16 seed=0\n"


def _write(tmp_path, text, name="s.dl"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ---- spec text: nesting, names, many statements on one line ----------------------------------

def _nested(kind: str, depth: int) -> str:
    """One construct nested `depth` deep around a dense line."""
    opening, closing = {
        "residual": ("residual {\n", "}\n"),
        "parallel": ("parallel add {\nbranch { }\nbranch {\n", "}\n}\n"),
        "repeat": ("repeat 1 {\n", "}\n"),
        "unknown": ("foo {\n", "}\n"),
        "choice": ("choice(", ")"),
    }[kind]
    if kind == "choice":
        return f"model m {{\n input 2\n dense 3 dropout={opening * depth}0.1{closing * depth}\n}}\n{SPIRAL}"
    return f"model m {{\n input 2\n{opening * depth}dense 2\n{closing * depth}dense 3 softmax\n}}\n{SPIRAL}"


@pytest.mark.parametrize("kind, depth", [("residual", 328), ("parallel", 246), ("repeat", 990),
                                         ("unknown", 992), ("choice", 493)])
@pytest.mark.parametrize("command", ["check", "train"])
def test_deep_nesting_is_a_located_refusal(tmp_path, capsys, kind, depth, command):
    spec = _write(tmp_path, _nested(kind, depth))
    args = [command, str(spec)] + (["-q", "-o", str(tmp_path / "run")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    what = "parentheses" if kind == "choice" else "braces"
    assert f"error: {what} nested more than {MAX_NESTING} deep (blocks, groups, repeats and calls together)" in err
    assert "hint: flatten the nesting" in err
    assert not (tmp_path / "run").exists()


def test_random_nesting_of_every_construct_never_crashes(tmp_path, capsys):
    rng = random.Random(21)
    words = [("residual {", "}"), ("parallel concat {\nbranch { }\nbranch {", "}\n}"), ("repeat 2 {", "}"),
             ("residual project {", "} relu"), ("bogus {", "}")]
    for case in range(40):
        depth = rng.randint(1, 60)
        chain = [rng.choice(words) for _ in range(depth)]
        text = ("model m {\n input 4\n" + "\n".join(o for o, _ in chain) + "\ndense 4\n"
                + "\n".join(c for _, c in reversed(chain)) + "\ndense 3 softmax\n}\n" + SPIRAL)
        spec = _write(tmp_path, text, f"n{case}.dl")
        code = main(["check", str(spec)])
        err = capsys.readouterr().err
        assert "internal error" not in err
        assert code == (0 if not err else 2), err
        if sum(o.count("{") - o.count("}") for o, _ in chain) + 1 > MAX_NESTING:
            assert f"nested more than {MAX_NESTING} deep" in err


def test_nesting_just_under_the_limit_trains_and_exports(tmp_path, capsys):
    spec = _write(tmp_path, _nested("residual", MAX_NESTING - 1))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "m.onnx")]) == 0
    assert "max abs difference" in capsys.readouterr().out


def test_a_name_too_long_is_refused_before_it_is_copied_into_every_use(tmp_path, capsys):
    name = "b" * 100_000
    spec = _write(tmp_path, f"block {name}(c) {{\n dense c relu\n}}\nmodel m {{\n input 2\n"
                            f" repeat 100 {{ {name} 4 }}\n dense 3 softmax\n}}\n{SPIRAL}")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"s.dl:1:7: error: a name of 100,000 characters; names are at most {MAX_NAME}" in err
    ok = _write(tmp_path, f"block {'b' * MAX_NAME}(c) {{\n dense c relu\n}}\nmodel m {{\n input 2\n"
                          f" {'b' * MAX_NAME} 4\n dense 3 softmax\n}}\n{SPIRAL}", "ok.dl")
    assert main(["check", str(ok)]) == 0


def test_long_names_inside_strings_and_comments_are_not_names(tmp_path, capsys):
    spec = _write(tmp_path, f"# {'c' * 500}\nmodel m {{\n input 2\n dense 3 softmax\n}}\n"
                            f"data \"{'d' * 200}.npz\"\n")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "no such data file" in err and "names are at most" not in err


@pytest.mark.parametrize("statement, count", [("relu", 40_000), ("branch { }", 30_000)])
def test_many_statements_on_one_line_are_checked(tmp_path, capsys, statement, count):
    # the builder used to re-split the rest of the line for each statement: quadratic in the line
    body = "; ".join([statement] * count)
    if statement == "relu":
        text = f"model m {{\n input 2\n dense 3\n {body}\n dense 3 softmax\n}}\n{SPIRAL}"
    else:
        text = f"model m {{\n input 2\n parallel concat {{ {body} }}\n dense 3 softmax\n}}\n{SPIRAL}"
    assert main(["check", str(_write(tmp_path, text))]) == 0
    assert "ok, " in capsys.readouterr().out


# ---- the run folder: nothing written outside it, nothing of the user's deleted ----------------

def _spiral_spec(tmp_path, name="s.dl", model="m"):
    return _write(tmp_path, f"model {model} {{\n input 2\n dense 8 relu\n dense 3 softmax\n}}\n{SPIRAL}", name)


def test_a_symlinked_lock_is_refused_and_its_target_untouched(tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    assert main(["train", str(_spiral_spec(tmp_path)), "-q", "-o", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: {run / '.lock'} is a symbolic link; dlc does not follow links in a run folder" in err
    assert victim.read_text() == "precious\n"


def test_files_written_into_a_run_replace_planted_links_instead_of_following_them(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(_spiral_spec(tmp_path)), "-q", "-o", str(run)]) == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run / "history.csv").unlink()
    (run / "history.csv").symlink_to(victim)  # a link where the run writes: the write replaces the link
    assert main(["train", str(run), "--resume", "-q", "--set", "train.epochs=2"]) == 0
    assert victim.read_text() == "precious\n" and not (run / "history.csv").is_symlink()


@pytest.mark.parametrize("label", ["..", ".", "../escape", "a/b", "x" * 300, "\x1b[31mred", ""])
def test_run_folder_names_derived_from_labels_stay_inside_the_parent(tmp_path, label):
    from dlc.runtime.run_folder import MAX_FOLDER_NAME, folder_name
    name = folder_name(label)
    assert name and not name.startswith(".") and "/" not in name and len(name) <= MAX_FOLDER_NAME
    assert all(c.isalnum() or c in "_.+-" for c in name)
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


def test_compare_of_specs_whose_names_are_dots_writes_only_inside_its_folder(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    specs = [_spiral_spec(a, "...dl"), _spiral_spec(b, "...dl")]
    out = tmp_path / "out" / "inner"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "spec.dl").write_text("mine\n")
    assert main(["compare", *map(str, specs), "-o", str(out), "-q"]) == 0
    assert (tmp_path / "out" / "spec.dl").read_text() == "mine\n"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["inner", "spec.dl"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["run", "run-2"]


def test_output_in_a_folder_of_the_users_files_is_refused_and_deletes_nothing(tmp_path, capsys, monkeypatch):
    mine = {"data.json": "{}", "history.csv": "a,b\n1,2\n", "spec.dl": "# mine\n", "metrics.json": "{}",
            "weights.npz": "not really"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    spec = _spiral_spec(tmp_path, "train_me.dl")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "train_me.dl", "-q", "-o", "."]) == 2
    err = capsys.readouterr().err
    assert "dlc: error: . is not empty (data.json, history.csv, metrics.json, spec.dl, train_me.dl and 1 more) " \
           "and is not a dlc run folder" in err
    assert "hint: write the run to a new folder with -o, or beside these files with --overwrite" in err
    assert main(["train", "train_me.dl", "-q", "-o", ".", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "dlc: error: . holds data.json, history.csv, metrics.json, spec.dl, weights.npz, which dlc did not " \
           "write; a run would replace them" in err
    assert {n: (tmp_path / n).read_text() for n in mine} == mine and spec.exists()


def test_overwrite_writes_beside_the_users_files_and_keeps_them(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine\n")
    assert main(["train", str(_spiral_spec(tmp_path)), "-q", "-o", str(run)]) == 2
    assert "is not empty (notes.txt) and is not a dlc run folder" in capsys.readouterr().err
    assert main(["train", str(_spiral_spec(tmp_path)), "-q", "-o", str(run), "--overwrite"]) == 0
    assert (run / "notes.txt").read_text() == "mine\n" and (run / "weights.npz").exists()


def test_a_new_run_over_an_earlier_run_is_refused_unless_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(_spiral_spec(tmp_path)), "-q", "-o", str(run)]) == 0
    before = (run / "weights.npz").read_bytes()
    other = _spiral_spec(tmp_path, "other.dl", model="other")
    capsys.readouterr()
    assert main(["train", str(other), "-q", "-o", str(run)]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: {run} holds a run of m; dlc does not overwrite a run" in err
    assert f"hint: continue it with dlc train {run} --resume, write this run to a new folder with -o, or " \
           "replace it with --overwrite" in err
    assert (run / "weights.npz").read_bytes() == before
    assert main(["train", str(other), "-q", "-o", str(run), "--overwrite"]) == 0
    assert "model other" in (run / "spec.dl").read_text()


def test_compare_into_a_folder_that_is_not_empty_is_refused_unless_overwrite(tmp_path, capsys):
    specs = [str(_spiral_spec(tmp_path, "a.dl", "a")), str(_spiral_spec(tmp_path, "b.dl", "b"))]
    out = tmp_path / "cmp"
    assert main(["compare", *specs, "-o", str(out), "-q"]) == 0
    assert main(["compare", *specs, "-o", str(out), "-q"]) == 2
    assert f"dlc: error: {out} is not empty; dlc does not overwrite earlier runs" in capsys.readouterr().err
    assert main(["compare", *specs, "-o", str(out), "-q", "--overwrite"]) == 0


# ---- data files that lie about their size, are not files, or cannot be named -----------------

def _data_spec(tmp_path, source, extra=""):
    return _write(tmp_path, f"model m {{\n input 2\n dense 2 softmax\n}}\ndata \"{source}\"{extra}\n"
                            "train epochs=1 seed=0\n")


def _npz_with_header(path, arrays, claims):
    """An .npz whose .npy headers claim the shapes in `claims` over the data of `arrays`."""
    import io
    import zipfile

    import numpy as np
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, a in arrays.items():
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": a.dtype.str, "fortran_order": False,
                                                          "shape": claims.get(k, a.shape)})
            z.writestr(f"{k}.npy", header.getvalue() + a.tobytes())


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
def test_npz_headers_are_checked_against_the_data_before_reading(tmp_path, capsys, command, case, message):
    import numpy as np
    x, y = np.zeros((10, 2), np.float32), np.zeros(10, np.int64)
    claims = {"no_samples": {}, "y_claims_1e12": {"y": (10 ** 12,)}, "x_claims_1e12": {"x": (10 ** 12, 2)}}[case]
    arrays = {"x": np.zeros((0, 2), np.float32), "y": np.zeros(0, np.int64)} if case == "no_samples" else \
        {"x": x, "y": y}
    _npz_with_header(tmp_path / f"{case}.npz", arrays, claims)
    spec = _data_spec(tmp_path, f"{case}.npz")
    args = [command, str(spec)] + (["-q", "-o", str(tmp_path / "run")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:6: error: {tmp_path / case}" in err and message in err, err


@pytest.mark.slow
def test_an_npz_that_inflates_past_the_memory_limit_is_refused_unread(tmp_path, capsys):
    _zeros_npz(tmp_path / "bomb.npz", 25_000_000)  # 200 MB of zeros in a file of ~200 kB
    assert (tmp_path / "bomb.npz").stat().st_size < 1_000_000
    spec = _data_spec(tmp_path, "bomb.npz", " test=0")
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run"), "--max-memory", "100M"]) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:6: error: {tmp_path / 'bomb.npz'} holds 215 MB once read; the limit is 100 MB" in err


def test_a_gzipped_idx_file_is_never_inflated_past_its_header(tmp_path, capsys):
    import gzip
    import struct
    with gzip.open(tmp_path / "img-idx3-ubyte.gz", "wb") as f:  # says 10 images of 2 values; inflates to 64 MB
        f.write(bytes([0, 0, 8, 2]) + struct.pack(">2I", 10, 2) + bytes(1 << 26))
    with gzip.open(tmp_path / "lab-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + bytes(10))
    spec = _data_spec(tmp_path, "img-idx3-ubyte.gz", ' labels="lab-idx1-ubyte.gz"')
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'img-idx3-ubyte.gz'}: IDX header says 10x2 (20 values) but the file holds more" in err
    with gzip.open(tmp_path / "big-idx3-ubyte.gz", "wb") as f:  # claims 4 G values: refused before reading
        f.write(bytes([0, 0, 8, 2]) + struct.pack(">2I", 2 ** 31, 2))
    spec = _data_spec(tmp_path, "big-idx3-ubyte.gz", ' labels="lab-idx1-ubyte.gz"')
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run2"), "--max-memory", "1G"]) == 2
    assert "big-idx3-ubyte.gz holds 4 GB once read; the limit is 1 GB" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("make, message", [
    (lambda p: __import__("os").mkfifo(p / "fifo.csv"), "fifo.csv is a FIFO (named pipe), not a regular file"),
    (lambda p: (p / "zero.csv").symlink_to("/dev/zero"), "zero.csv is a character device, not a regular file"),
    (lambda p: (p / "random.npz").symlink_to("/dev/urandom"), "random.npz is a character device, not a regular file"),
])
def test_data_that_is_not_a_regular_file_is_refused_without_reading(tmp_path, capsys, command, make, message):
    make(tmp_path)
    name = message.split(" ")[0]
    spec = _data_spec(tmp_path, name)
    args = [command, str(spec)] + (["-q", "-o", str(tmp_path / "run")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:6: error: {tmp_path / name} is {message.split(' is ', 1)[1]}" in err


@pytest.mark.parametrize("source, message", [
    ("~nosuchuser_dlc/x.csv", "cannot resolve ~nosuchuser_dlc/x.csv: no such user's home folder"),
    ("a" * 300 + ".csv", "cannot open the data file "),
])
def test_data_paths_that_cannot_be_opened_are_located(tmp_path, capsys, source, message):
    spec = _data_spec(tmp_path, source)
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"s.dl:5:6: error: {message}" in err and "File name too long" in err or "no such user" in err


def test_a_spec_that_is_a_fifo_is_refused_without_reading(tmp_path, capsys):
    import os
    os.mkfifo(tmp_path / "spec.dl")
    assert main(["check", str(tmp_path / "spec.dl")]) == 2
    assert f"{tmp_path / 'spec.dl'}: error: {tmp_path / 'spec.dl'} is a FIFO (named pipe), not a spec file" \
        in capsys.readouterr().err


def test_a_csv_peek_does_not_cut_a_character_or_a_long_header(tmp_path, capsys):
    # byte 1,048,575 begins a two-byte character; the header alone is longer than 1 MiB
    names = [f"f{i}" for i in range(200_000)]
    header = ",".join(names) + ",label\n"
    assert len(header) > 1 << 20
    (tmp_path / "wide.csv").write_text(header + ",".join(["0"] * 200_000) + ",a\n")
    spec = _write(tmp_path, "model m {\n input 200000\n dense 2 softmax\n}\ndata \"wide.csv\" label=label\n", "w.dl")
    assert main(["check", str(spec)]) == 0, capsys.readouterr().err
    text = "a,label\n" + "1,y\n" * 262_140 + "1,yy\n" + "1,"
    assert len(text.encode()) == 1_048_575
    (tmp_path / "utf8.csv").write_text(text + "é\n")
    spec = _write(tmp_path, "model m {\n input 1\n dense 3 softmax\n}\ndata \"utf8.csv\"\n", "u.dl")
    code = main(["check", str(spec)])
    assert "not UTF-8" not in capsys.readouterr().err
    assert code == 0
