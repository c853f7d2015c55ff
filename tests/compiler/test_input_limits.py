"""Spec text at the grammar's limits: nesting, name lengths, statements per line, a spec that is not a
regular file -- each a located refusal, never a crash."""

import random

import pytest
from dlc.grammar.parser import MAX_NAME, MAX_NESTING
from helpers import SPIRAL_DATA

from dlc.cli import main


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
        return f"model m {{\n input 2\n dense 3 dropout={opening * depth}0.1{closing * depth}\n}}\n{SPIRAL_DATA}"
    return f"model m {{\n input 2\n{opening * depth}dense 2\n{closing * depth}dense 3 softmax\n}}\n{SPIRAL_DATA}"


@pytest.mark.parametrize("kind, depth", [("residual", 328), ("parallel", 246), ("repeat", 990),
                                         ("unknown", 992), ("choice", 493)])
@pytest.mark.parametrize("command", ["check", "train"])
def test_deep_nesting_is_a_located_refusal(spec_file, tmp_path, capsys, kind, depth, command):
    spec = spec_file(_nested(kind, depth))
    args = [command, str(spec)] + (["-q", "-o", str(tmp_path / "run")] if command == "train" else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    what = "parentheses" if kind == "choice" else "braces"
    assert f"error: {what} nested more than {MAX_NESTING} deep (blocks, groups, repeats and calls together)" in err
    assert "hint: flatten the nesting" in err
    assert not (tmp_path / "run").exists()


def test_random_nesting_of_every_construct_never_crashes(spec_file, tmp_path, capsys):
    rng = random.Random(21)
    words = [("residual {", "}"), ("parallel concat {\nbranch { }\nbranch {", "}\n}"), ("repeat 2 {", "}"),
             ("residual project {", "} relu"), ("bogus {", "}")]
    for case in range(40):
        depth = rng.randint(1, 60)
        chain = [rng.choice(words) for _ in range(depth)]
        text = ("model m {\n input 4\n" + "\n".join(o for o, _ in chain) + "\ndense 4\n"
                + "\n".join(c for _, c in reversed(chain)) + "\ndense 3 softmax\n}\n" + SPIRAL_DATA)
        spec = spec_file(text, f"n{case}.dl")
        code = main(["check", str(spec)])
        err = capsys.readouterr().err
        assert "internal error" not in err
        assert code == (0 if not err else 2), err
        if sum(o.count("{") - o.count("}") for o, _ in chain) + 1 > MAX_NESTING:
            assert f"nested more than {MAX_NESTING} deep" in err


def test_nesting_just_under_the_limit_trains_and_exports(spec_file, tmp_path, capsys):
    spec = spec_file(_nested("residual", MAX_NESTING - 1))
    assert main(["train", str(spec), "-q", "-o", str(tmp_path / "run")]) == 0
    assert main(["export", str(tmp_path / "run"), "-o", str(tmp_path / "m.onnx")]) == 0
    assert "max abs difference" in capsys.readouterr().out


def test_a_name_too_long_is_refused_before_it_is_copied_into_every_use(spec_file, tmp_path, capsys):
    name = "b" * 100_000
    spec = spec_file(f"block {name}(c) {{\n dense c relu\n}}\nmodel m {{\n input 2\n"
                            f" repeat 100 {{ {name} 4 }}\n dense 3 softmax\n}}\n{SPIRAL_DATA}")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"s.dl:1:7: error: a name of 100,000 characters; names are at most {MAX_NAME}" in err
    ok = spec_file(f"block {'b' * MAX_NAME}(c) {{\n dense c relu\n}}\nmodel m {{\n input 2\n"
                          f" {'b' * MAX_NAME} 4\n dense 3 softmax\n}}\n{SPIRAL_DATA}", "ok.dl")
    assert main(["check", str(ok)]) == 0


def test_long_names_inside_strings_and_comments_are_not_names(spec_file, tmp_path, capsys):
    spec = spec_file(f"# {'c' * 500}\nmodel m {{\n input 2\n dense 3 softmax\n}}\n"
                            f"data \"{'d' * 200}.npz\"\n")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "no such data file" in err and "names are at most" not in err


@pytest.mark.parametrize("statement, count", [("relu", 40_000), ("branch { }", 30_000)])
def test_many_statements_on_one_line_are_checked(spec_file, tmp_path, capsys, statement, count):
    # the builder used to re-split the rest of the line for each statement: quadratic in the line
    body = "; ".join([statement] * count)
    if statement == "relu":
        text = f"model m {{\n input 2\n dense 3\n {body}\n dense 3 softmax\n}}\n{SPIRAL_DATA}"
    else:
        text = f"model m {{\n input 2\n parallel concat {{ {body} }}\n dense 3 softmax\n}}\n{SPIRAL_DATA}"
    assert main(["check", str(spec_file(text))]) == 0
    assert "ok, " in capsys.readouterr().out


def test_a_spec_that_is_a_fifo_is_refused_without_reading(tmp_path, capsys):
    import os
    os.mkfifo(tmp_path / "spec.dl")
    assert main(["check", str(tmp_path / "spec.dl")]) == 2
    assert f"{tmp_path / 'spec.dl'}: error: {tmp_path / 'spec.dl'} is a FIFO (named pipe), not a spec file" \
        in capsys.readouterr().err
