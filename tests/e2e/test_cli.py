"""The command line: every path argument checked where it is typed, every option an API parameter, --json
errors, and a clean refusal when memory runs out."""

from __future__ import annotations

import json

import pytest
from conftest import ROOT  # noqa: E402
from helpers import DIGITS_MLP, NAME_TOO_LONG, spiral_text

from dlc.cli import main


def test_running_out_of_memory_with_the_check_off_is_a_clean_refusal(spec_file, tmp_path, capsys, monkeypatch):
    from dlc.runtime import trainer
    spec = spec_file(spiral_text())

    def exhausted(*a, **k):
        raise MemoryError()
    monkeypatch.setattr(trainer, "init_params", exhausted)  # what population=10000 of a 300k-weight net does
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run"), "--max-memory", "0"]) == 2
    err = capsys.readouterr().err
    assert "dlc: error: out of memory: the machine could not allocate what this needs" in err
    assert "internal error" not in err


def test_every_cli_option_has_its_api_parameter():
    """The CLI is a thin layer over dlc.api: an option the API lacks would make the two drift."""
    import inspect

    from dlc import api
    from dlc.cli_parser import build_parser
    renamed = {"set": "overrides", "output": "out", "specs": "specs", "spec": "spec", "run": "run",
               "model": "model_or_run", "quiet": "progress"}
    cli_only = {"func", "debug", "command", "json", "strict", "show", "vary", "resume_from", "help",
                "serving"}  # (check --serving: dlc.api.serving_cost of the checked spec)
    verbs = {"check": api.check, "train": api.train, "eval": api.evaluate, "export": api.export,
             "predict": api.predict, "diagnose": api.diagnose, "compare": api.compare, "search": api.search,
             "fmt": api.fmt, "import": api.import_onnx}
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        if name == "lsp":  # a server for editors, not a verb of the API
            continue
        params = set(inspect.signature(verbs[name]).parameters)
        for action in parser._actions:
            dest = renamed.get(action.dest, action.dest)
            if action.dest in cli_only or dest in params:
                continue
            if name == "export" and dest == "out":
                dest = "path"
            if name == "check" and dest == "specs":
                dest = "spec"
            assert dest in params, f"dlc {name} --{action.dest} has no parameter in dlc.api.{verbs[name].__name__}"


@pytest.mark.parametrize("args, argument", [
    (["train", "{spec}", "-o", NAME_TOO_LONG], "-o/--output"),
    (["train", "{spec}", "-o", f"x/{NAME_TOO_LONG}/y", "--resume"], "-o/--output"),
    (["train", NAME_TOO_LONG, "--resume"], "SPEC"),
    (["check", NAME_TOO_LONG + ".dl"], "SPEC"),
    (["eval", NAME_TOO_LONG], "RUN"),
    (["export", NAME_TOO_LONG, "-o", "m.onnx"], "RUN"),
    (["export", "run", "-o", NAME_TOO_LONG + ".onnx"], "-o/--output"),
    (["predict", "run", NAME_TOO_LONG], "DATA"),
    (["compare", "{spec}", "{spec}", "-o", NAME_TOO_LONG], "-o/--output"),
    (["diagnose", "{spec}", "-o", NAME_TOO_LONG], "-o/--output"),
    (["fmt", NAME_TOO_LONG + ".dl"], "SPEC"),
])
def test_a_name_past_the_file_system_s_limit_is_refused_at_its_argument(spec_file, tmp_path, capsys, monkeypatch,
                                                                          args, argument):
    spec = spec_file(DIGITS_MLP)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main([a.format(spec=spec) for a in args])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"error: argument {argument}: a name in this path is " in err
    assert "bytes ('aaaaaaaaaaaaaaaaaaaaaaaa...'); file names here are at most 255 bytes" in err


def test_a_path_past_the_system_s_length_is_refused_at_its_argument(capsys):
    path = "/".join(["b" * 200] * 25)  # every name fits; the whole is 5,024 bytes
    with pytest.raises(SystemExit) as e:
        main(["eval", path])
    assert e.value.code == 2
    assert "error: argument RUN: the path is 5,024 bytes; paths here are shorter than 4,096 bytes" in \
        capsys.readouterr().err


def test_check_json_gives_errors_as_json(capsys):
    bad = str(ROOT / "specs/bad/typo_activation.dl")
    assert main(["check", "--json", bad]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["file"] == bad
    assert report["errors"] == [{"severity": "error", "message": "unknown activation 'rleu'", "code": None,
                                 "hint": "did you mean 'relu' or 'rrelu' or 'prelu'?", "file": bad,
                                 "line": 4, "col": 14}]
