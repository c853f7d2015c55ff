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


# ---- tampered run folders: refused as damaged, never resumed inexactly ------------------------

RUN_SPEC = """model tamper {{
    input 2
    dense 8 relu batchnorm
    dense 3 softmax
}}
data spiral n=90
optimizer {optimizer}
train epochs=2 batch=30 seed=0 validation=0.2 early_stop=5
"""


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory):
    """A run trained for 2 epochs per optimizer (its checkpoint is what the cases tamper with)."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, optimizer in [("adam", "adam lr=0.01"), ("sgd", "sgd lr=0.1 momentum=0.9"),
                            ("genetic", "genetic population=6")]:
        spec = root / f"{name}.dl"
        spec.write_text(RUN_SPEC.format(optimizer=optimizer))
        assert main(["train", str(spec), "-q", "-o", str(root / name)]) == 0
        out[name] = root / name
    return out


def _copy_run(src, tmp_path):
    import shutil
    dst = tmp_path / "run"
    shutil.copytree(src, dst)
    return dst


def _tamper_checkpoint(run, change):
    """Rewrite run/checkpoint.npz with change(arrays, state) applied."""
    import json

    import numpy as np
    with np.load(run / "checkpoint.npz") as z:
        arrays = {k: z[k] for k in z.files}
    state = json.loads(arrays.pop("state").tobytes())
    state = change(arrays, state)
    text = state if isinstance(state, str) else json.dumps(state)
    arrays["state"] = np.frombuffer(text.encode(), np.uint8)
    np.savez(run / "checkpoint.npz", **arrays)


def _set(key, value):
    def change(arrays, state):
        state[key] = value
        return state
    return change


def _arrays(fn):
    def change(arrays, state):
        fn(arrays)
        return state
    return change


def _history(value):
    def change(arrays, state):
        state["history"] = [value] * len(state["history"])
        return state
    return change


def _rng(**inner):
    def change(arrays, state):
        state["shuffle_rng"]["state"].update(inner)
        return state
    return change


def _np():
    import numpy as np
    return np


TAMPERED = [
    ("adam", lambda a, s: [], "the training state is a JSON list, not an object"),
    ("adam", lambda a, s: None, "the training state is a JSON NoneType, not an object"),
    ("adam", lambda a, s: "[" * 100_000 + "]" * 100_000, "the training state's JSON is nested too deeply"),
    ("adam", _history(1), "history row 1 is not an epoch record"),
    ("adam", _history({}), "history row 1 is not an epoch record"),
    ("adam", _history("x"), "history row 1 is not an epoch record"),
    ("adam", _rng(state=2 ** 200), "a random-generator state is invalid ('state' is not a 128-bit number)"),
    ("adam", _rng(inc=-1), "a random-generator state is invalid ('inc' is not a 128-bit number)"),
    ("adam", _set("best", float("nan")), "'best' is not a finite number"),
    ("adam", _arrays(lambda a: a.update({"optimizer/__t__": _np().array([1, 2])})),
     "the optimizer's step count '__t__' is not a whole number >= 1"),
    ("adam", _arrays(lambda a: a.update({"optimizer/__t__": _np().array(float("nan"))})),
     "the optimizer's step count '__t__' is not a whole number >= 1"),
    ("adam", _arrays(lambda a: a.pop("optimizer/__t__")), "the optimizer state lacks __t__"),
    ("adam", _arrays(lambda a: a.pop("optimizer/dense1.weight.m")), "the optimizer state lacks dense1.weight.m"),
    ("adam", _arrays(lambda a: a.update({"optimizer/dense1.weight.v": a["optimizer/dense1.weight.v"] * _np().nan})),
     "optimizer array 'dense1.weight.v' holds NaN or inf"),
    ("adam", _arrays(lambda a: a.update({"weights/dense1.weight": a["weights/dense1.weight"].astype(int)})),
     "weights array 'dense1.weight' is int64, not float32"),
    ("adam", _arrays(lambda a: a.update({"weights/dense1.weight": a["weights/dense1.weight"] > 0})),
     "weights array 'dense1.weight' is bool, not float32"),
    ("adam", _arrays(lambda a: a.update({"weights/dense1.weight": a["weights/dense1.weight"].astype("float16")})),
     "weights array 'dense1.weight' is float16, not float32"),
    ("sgd", _arrays(lambda a: a.pop("optimizer/dense2.bias.momentum")), "the optimizer state lacks dense2.bias.momentum"),
    ("genetic", _arrays(lambda a: [a.pop(k) for k in list(a) if k.endswith(".population")]),
     "the optimizer state lacks dense1.weight.population"),
    ("genetic", _arrays(lambda a: a.update({"optimizer/dense1.weight.population":
                                            a["optimizer/dense1.weight.population"].astype(int)})),
     "optimizer array 'dense1.weight.population' is int64, not float32"),
    ("genetic", _arrays(lambda a: a.update({"optimizer/dense1.weight.population":
                                            a["optimizer/dense1.weight.population"] * _np().nan})),
     "optimizer array 'dense1.weight.population' holds NaN or inf"),
]


@pytest.mark.parametrize("run, change, message", TAMPERED, ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(TAMPERED)])
def test_a_tampered_checkpoint_is_refused_as_damaged(trained_runs, tmp_path, capsys, run, change, message):
    run_dir = _copy_run(trained_runs[run], tmp_path)
    _tamper_checkpoint(run_dir, change)
    assert main(["train", str(run_dir), "--resume", "-q", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: {run_dir / 'checkpoint.npz'} (the training checkpoint) is damaged: {message}" in err, err
    assert "learning rate" not in err


def test_random_tampering_of_every_checkpoint_field_is_refused(trained_runs, tmp_path, capsys):
    """A generated family: each array of the checkpoint replaced by a random wrong dtype, shape or value,
    or each state field by a random JSON value; every case is a refusal naming the checkpoint (exit 2)."""
    import json
    np = _np()
    rng = np.random.default_rng(21)
    src = trained_runs["adam"]
    with np.load(src / "checkpoint.npz") as z:
        names = [k for k in z.files if k != "state"]
    state = json.loads(np.load(src / "checkpoint.npz")["state"].tobytes())
    state_keys = list(state)
    junk = [None, -1, 2 ** 70, "x", [], {}, [1, "a"], {"state": 1}, 1.5, True]
    bad_arrays = [lambda a: a.astype(np.float64), lambda a: a.reshape(-1)[:1], lambda a: np.full_like(a, np.inf),
                  lambda a: a.astype(np.int32), lambda a: np.zeros((3, 3, 3), np.float32)]
    for case in range(30):
        run_dir = tmp_path / f"r{case}"
        import shutil
        shutil.copytree(src, run_dir)
        if case % 2:
            key = state_keys[rng.integers(len(state_keys))]
            value = junk[rng.integers(len(junk))]
            while value == state[key] and type(value) is type(state[key]):  # a change, not the value it holds
                value = junk[rng.integers(len(junk))]
            _tamper_checkpoint(run_dir, _set(key, value))
        else:
            name = names[rng.integers(len(names))]
            fn = bad_arrays[rng.integers(len(bad_arrays))]
            _tamper_checkpoint(run_dir, _arrays(lambda a: a.update({name: fn(a[name])})))
        code = main(["train", str(run_dir), "--resume", "-q", "--set", "train.epochs=3"])
        err = capsys.readouterr().err
        assert "internal error" not in err
        what = (key, value) if case % 2 else (name, fn)
        assert code == 2 and f"{run_dir / 'checkpoint.npz'} (the training checkpoint) is damaged" in err, (case, what, err)


@pytest.mark.parametrize("edit, message", [
    (("data spiral n=90", "data spiral n=91"), "changed since the run started: data.n (90 -> 91)\n"),
    (("seed=0", "seed=1"), "changed since the run started: train.seed (0 -> 1)\n"),
    (("adam lr=0.01", "sgd lr=0.01"), "optimizer (adam -> sgd)"),
    (("dense 8 relu batchnorm", "dense 8 tanh batchnorm"), "model tanh1 (absent -> tanh <- batchnorm1)"),
])
def test_resume_under_a_changed_spec_says_what_changed(trained_runs, tmp_path, capsys, edit, message):
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    spec = run_dir / "spec.dl"
    spec.write_text(spec.read_text().replace(*edit))
    assert main(["train", str(run_dir), "--resume", "-q", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert f"dlc: error: cannot resume {run_dir}: the spec changed since the run started: " in err
    assert message in err, err
    assert "hint: a resumed run continues the same training: only train.epochs, train.early_stop, " \
           "train.threads and train.device may change" in err


def test_a_changed_population_is_a_changed_spec_not_a_damaged_checkpoint(trained_runs, tmp_path, capsys):
    run_dir = _copy_run(trained_runs["genetic"], tmp_path)
    assert main(["train", str(run_dir), "--resume", "-q", "--set", "optimizer.population=8"]) == 2
    err = capsys.readouterr().err
    assert "the spec changed since the run started: optimizer.population (6 -> 8)" in err and "damaged" not in err


@pytest.mark.parametrize("file, what", [("weights.npz", "the trained weights"),
                                        ("preprocess.npz", "the input preprocessing"),
                                        ("checkpoint.npz", "the training checkpoint")])
def test_an_npy_header_claiming_1e12_floats_is_refused_before_allocating(trained_runs, tmp_path, capsys, file, what):
    np = _np()
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    with np.load(run_dir / file) as z:
        arrays = {k: z[k] for k in z.files}
    first = next(k for k in arrays if k != "state")
    _npz_with_header(run_dir / file, arrays, {first: (10 ** 12,)})
    command = ["train", str(run_dir), "--resume", "-q"] if file == "checkpoint.npz" else \
        ["eval", str(run_dir)]
    if file == "checkpoint.npz":
        (run_dir / "weights.npz").unlink()
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"{run_dir / file} ({what}) is damaged: array '{first}' claims 1000000000000 (" in err, err


@pytest.mark.parametrize("file", ["data.json", "metrics.json", ".dlc-run.json"])
def test_run_json_nested_1e5_deep_is_refused(trained_runs, tmp_path, capsys, file):
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    (run_dir / file).write_text("[" * 100_000 + "]" * 100_000)
    code = main(["eval", str(run_dir)])
    err = capsys.readouterr().err
    assert "internal error" not in err
    if file == ".dlc-run.json":  # only says whether dlc made the folder: eval does not need it
        assert code == 0
    else:
        assert code == 2 and f"{run_dir / file}" in err and "is damaged" in err


# ---- results that must never be silently wrong -------------------------------------------------

def test_edited_class_names_in_metrics_json_are_refused(trained_runs, tmp_path, capsys):
    import json
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["classes"] = list(reversed(metrics["classes"]))
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    for command in (["predict", str(run_dir), "spiral"], ["eval", str(run_dir)],
                    ["export", str(run_dir), "-o", str(tmp_path / "m.onnx")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert f"dlc: error: {run_dir / 'metrics.json'} is damaged: its class names differ from the run's " \
               "(0, 1, 2 in preprocess.npz)" in err


@pytest.mark.parametrize("command", ["predict", "eval", "export"])
def test_weights_that_overflow_in_use_are_refused_everywhere(trained_runs, tmp_path, capsys, command):
    np = _np()
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    with np.load(run_dir / "weights.npz") as z:
        w = {k: z[k] for k in z.files}
    w["dense2.weight"] = np.full_like(w["dense2.weight"], 3e38)  # finite, but the products overflow
    np.savez(run_dir / "weights.npz", **w)
    args = {"predict": ["predict", str(run_dir), "spiral"], "eval": ["eval", str(run_dir)],
            "export": ["export", str(run_dir), "-o", str(tmp_path / "m.onnx")]}[command]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "dlc: error: the model computes NaN or inf for " in err
    assert "hint: its weights overflow on these inputs: retrain the run" in err
    assert not (tmp_path / "m.onnx").exists()


def test_running_out_of_memory_with_the_check_off_is_a_clean_refusal(tmp_path, capsys, monkeypatch):
    from dlc.runtime import trainer
    spec = _spiral_spec(tmp_path)

    def exhausted(*a, **k):
        raise MemoryError()
    monkeypatch.setattr(trainer, "init_params", exhausted)  # what population=10000 of a 300k-weight net does
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run"), "--max-memory", "0"]) == 2
    err = capsys.readouterr().err
    assert "dlc: error: out of memory: the machine could not allocate what this needs" in err
    assert "internal error" not in err


@pytest.mark.parametrize("file", ["spec.dl", "checkpoint.npz", "weights.npz"])
def test_a_run_file_that_is_a_fifo_is_refused_without_reading(trained_runs, tmp_path, capsys, file):
    import os
    run_dir = _copy_run(trained_runs["adam"], tmp_path)
    (run_dir / file).unlink()
    os.mkfifo(run_dir / file)
    args = ["train", str(run_dir), "--resume", "-q", "--set", "train.epochs=3"] if file != "weights.npz" else \
        ["eval", str(run_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{run_dir / file}" in err and "is a FIFO (named pipe), not a" in err


@pytest.mark.parametrize("target", ["/dev/zero", "fifo"])
def test_a_data_record_naming_a_device_or_fifo_is_refused_without_reading(tmp_path, capsys, target):
    import json
    import os

    import numpy as np
    np.savez(tmp_path / "d.npz", x=np.random.default_rng(0).normal(size=(60, 2)).astype("float32"),
             y=np.arange(60) % 3)
    spec = _write(tmp_path, "model m {\n input 2\n dense 3 softmax\n}\ndata \"d.npz\"\ntrain epochs=1 seed=0\n")
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


def test_random_lies_about_file_type_and_size_are_located_refusals(tmp_path, capsys):
    """A generated family: data files whose .npy headers claim random shapes and dtypes, truncated or
    padded members, and paths that are folders, FIFOs, devices, empty or random bytes; every case is
    accepted when the file is honest and fits, and otherwise an error at the data line (exit 2)."""
    import os
    import random
    np = _np()
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
            _npz_with_header(path, {"x": x, "y": y}, claims)
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
        spec = _data_spec(d, "d.npz")
        for command in ("check", "train"):
            args = [command, str(spec)] + (["-q", "-o", str(d / "run")] if command == "train" else [])
            code = main(args)
            err = capsys.readouterr().err
            assert "internal error" not in err, (case, kind, err)
            if honest:
                assert code == 0, (case, err)
            else:
                assert code == 2 and "s.dl:5:6: error: " in err, (case, kind, err)
