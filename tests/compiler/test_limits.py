"""Limits: refuse before allocating, bounded work for any spec, a safe grammar cache, quiet pipes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dlc
from dlc.cli import main
from dlc.compiler.diagnostics import DLError

from conftest import ROOT  # noqa: E402

ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))


def _spec(tmp_path, body, extra="data digits\n", input_="64"):
    p = tmp_path / "s.dl"
    p.write_text(f"model m {{\n input {input_}\n {body}\n dense 10 softmax\n}}\n{extra}")
    return p


@pytest.mark.parametrize("body, input_, message, line", [
    ("dense 100000000", "64", "too large to train: its parameters need ", 3),
    ("conv 100000 kernel=99 pad=same\n flatten", "1x100x100", "too large to train: one batch of 32 needs ", 3),
    ("flatten", "1x100000x100000", "too large to train: one batch of 32 needs ", 3),
])
@pytest.mark.parametrize("command", ["check", "train"])
def test_a_spec_too_large_for_memory_is_refused_before_allocating(tmp_path, capsys, body, input_, message, line,
                                                                  command):
    spec = _spec(tmp_path, body, extra="", input_=input_)
    args = [command, str(spec)] + (["-q", "-o", str(tmp_path / "run")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"{spec}:{line}:2: error: {message}" in err and "; the limit is " in err
    assert "(or raise the limit with --max-memory)" in err


def test_max_memory_option_and_check_shows_memory(capsys):
    assert main(["check", str(ROOT / "specs/lenet.dl")]) == 0
    out = capsys.readouterr().out
    assert "memory: parameters 1.65 MB, training state 8.22 MB, activations 19.2 MB per batch of 64" in out
    assert main(["check", str(ROOT / "specs/lenet.dl"), "--max-memory", "10M"]) == 2
    assert "; the limit is 10 MB" in capsys.readouterr().err
    assert main(["check", str(ROOT / "specs/lenet.dl"), "--max-memory", "0"]) == 0
    with pytest.raises(SystemExit):
        main(["check", str(ROOT / "specs/lenet.dl"), "--max-memory", "lots"])
    assert "'lots' is not a size; write e.g. 8G, 512M or 0 for no limit" in capsys.readouterr().err


@pytest.mark.parametrize("setting, message", [
    ("train epochs=1e300", "epochs=1e300 is too large: at most 2,147,483,647"),
    ("train batch=0", "batch=0 is out of range: batch must be >= 1"),
    ("train seed=4294967296", "seed=4294967296 is too large: at most 4,294,967,295"),
    ("train epochs=2.5", "epochs expects a whole number, got 2.5"),
])
def test_absurd_counts_are_located_errors(tmp_path, capsys, setting, message):
    spec = _spec(tmp_path, "dense 8 relu", extra=f"data digits\n{setting}\n")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith(f"{spec}:7:")


def test_dense_1e300_is_a_located_error(tmp_path, capsys):
    spec = _spec(tmp_path, "dense 1e300")
    assert main(["check", str(spec)]) == 2
    assert f"{spec}:3:8: error: units=1e300 is too large: at most 2,147,483,647" in capsys.readouterr().err


def test_repeat_that_expands_without_bound_is_refused_at_once(tmp_path, capsys):
    spec = _spec(tmp_path, "repeat 1000 { repeat 1000 { repeat 1000 { dense 10 } } }")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{spec}:3:9: error: repeat 1000 expands to more than 200,000 layers")
    assert err.count("error:") == 1


def test_an_error_inside_repeat_is_reported_once(tmp_path, capsys):
    spec = _spec(tmp_path, "repeat 100 { repeat 100 { dense 10 foo=1 } }")
    assert main(["check", str(spec)]) == 2
    assert capsys.readouterr().err.count("unknown key 'foo' for dense") == 1


def test_many_errors_are_capped(tmp_path, capsys):
    p = tmp_path / "s.dl"
    p.write_text("model m {\n input 64\n dense 10 softmax\n}\n" + "".join(f"bogus{i} 1\n" for i in range(300)))
    assert main(["check", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("error: unknown statement") == 50
    assert err.rstrip().endswith("... and 250 more error(s)")


def test_a_long_line_is_shown_as_a_window_around_the_column(tmp_path, capsys):
    spec = _spec(tmp_path, "dense 10" + " " * 3000 + "bogus=1 " + "l2=0.1 " * 500)
    assert main(["check", str(spec)]) == 2
    lines = capsys.readouterr().err.splitlines()
    shown, caret = lines[1], lines[2]
    assert len(shown) < 120 and shown.strip().startswith("...") and shown.endswith("...")
    assert shown[caret.index("^"):].startswith("bogus=1") and caret.strip() == "^^^^^"


def test_a_spec_file_over_the_size_limit_is_refused_unread(tmp_path, capsys):
    p = tmp_path / "huge.dl"
    with open(p, "wb") as f:
        f.truncate(11_000_000)
    assert main(["check", str(p)]) == 2
    assert f"{p}: error: {p} is 11,000,000 bytes; a spec is at most 10,000,000" in capsys.readouterr().err


def test_a_spec_that_is_not_utf8_or_a_folder(tmp_path, capsys):
    p = tmp_path / "latin.dl"
    p.write_bytes(b"model m {\n input 4 # caf\xe9\n}\n")
    assert main(["check", str(p)]) == 2
    assert f"{p} is not UTF-8 text (byte 0xe9 at offset 24)" in capsys.readouterr().err
    assert main(["check", str(tmp_path)]) == 2
    assert f"{tmp_path} is a folder, not a spec" in capsys.readouterr().err


@pytest.mark.slow
def test_a_100000_layer_spec_checks(tmp_path):
    spec = _spec(tmp_path, "repeat 100000 { dense 10 relu }")
    p = subprocess.run([sys.executable, "-m", "dlc", "check", str(spec)], capture_output=True, text=True, env=ENV,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-2].startswith("memory: ")
    assert f"{spec}: ok, 0 warning(s)" in p.stdout


def test_syntax_errors_of_a_large_spec_are_found_in_one_pass(tmp_path, capsys):
    body = "".join((" dense 10 relu\n" if i % 4000 else " dense 10 = =\n") for i in range(1, 300_001))
    p = tmp_path / "big.dl"
    p.write_text("model m {\n input 64\n" + body + "}\n")
    assert main(["check", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("error: unexpected '='") == 20  # 75 bad lines, found in one pass, the first 20 shown
    assert "note: stopped after 20 syntax error(s); fix these first" in err


def test_the_grammar_cache_is_never_read_from_a_shared_folder(tmp_path, monkeypatch):
    from dlc.grammar import parser
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    good = parser._cache_file()
    assert good and Path(good).parent == tmp_path / "dlc" and oct((tmp_path / "dlc").stat().st_mode & 0o777) == "0o700"
    os.chmod(tmp_path / "dlc", 0o777)  # a folder others can write: a planted pickle could run code
    assert parser._cache_file() is False
    os.chmod(tmp_path / "dlc", 0o700)
    Path(good).write_bytes(b"planted")
    os.chmod(good, 0o666)
    assert parser._cache_file() is False
    os.chmod(good, 0o600)
    assert parser._cache_file() == good
    shared = tmp_path / "shared"  # a parent others can write: they could swap the cache folder
    (shared / "cache").mkdir(parents=True)
    os.chmod(shared, 0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(shared / "cache"))
    assert parser._cache_file() is False
    os.chmod(shared, 0o1777)  # sticky, but another user's: they may still swap what is in it
    if os.getuid() == 0:
        os.chown(shared, 65534, 65534)
    assert parser._cache_file() is False
    os.chmod(shared, 0o755)
    os.chown(shared, os.getuid(), os.getgid())
    assert parser._cache_file() == str(shared / "cache" / "dlc" / Path(good).name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    (tmp_path / "file").write_text("")
    assert parser._cache_file() is False  # no writable cache folder: no cache, and no temp-folder fallback


def test_a_closed_pipe_ends_quietly(tmp_path):
    spec = _spec(tmp_path, "repeat 2000 { dense 10 relu }")
    p = subprocess.run(f"{sys.executable} -m dlc check {spec} | head -1", shell=True, capture_output=True,
                       text=True, env=ENV, executable="/bin/bash")
    assert p.stdout.startswith("model m:") and p.stderr == ""


def test_compile_api_refuses_too_large_too():
    with pytest.raises(DLError, match="too large to train"):
        dlc.compile("model m {\n input 64\n dense 100000000\n dense 10 softmax\n}\n")


@pytest.mark.parametrize("body, input_, message", [
    ("conv 4 kernel=3 pad=1e300\n flatten", "1x8x8", "pad=1e300 is too large: at most 2,147,483,647"),
    ("conv 4 kernel=99999999999x3\n flatten", "1x8x8", "kernel=99999999999x3 is too large: at most 2,147,483,647 each"),
    ("flatten", "1x99999999999x3", "input 1x99999999999x3: expected N features, CxL (a sequence) or CxHxW (an image) with every size from 1 to 2,147,483,647"),
])
def test_huge_sizes_anywhere_are_located_errors(tmp_path, capsys, body, input_, message):
    spec = _spec(tmp_path, body, extra="", input_=input_)
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert message in err and "internal error" not in err
