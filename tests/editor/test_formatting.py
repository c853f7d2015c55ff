"""dlc fmt and the language server's formatting (dlc/formatting.py): the canonical layout, idempotent on
every spec in specs/, the same network after as before, comments kept; and the quick fixes
(dlc/quick_fixes.py) that diagnostics offer, applied to the text."""

from __future__ import annotations


import pytest

import dlc
from dlc.cli import main
from dlc.compiler.diagnostics import DLError
from dlc.formatting import format_spec
from dlc.quick_fixes import fixes
from conftest import ROOT

SPECS = ROOT / "specs"
PARSING = [p for p in sorted(SPECS.rglob("*.dl")) if p.name not in ("syntax_error.dl", "unclosed_block.dl")]


def _comments(text: str) -> list[str]:
    return [line[line.index("#"):] for line in text.splitlines() if "#" in line]


def _network(text: str):
    spec = dlc.compile(text)
    return ([(n.name, n.op, n.out_shape, {k: p.shape for k, p in n.params.items()}) for n in spec.graph.nodes],
            spec.settings)


@pytest.mark.parametrize("path", PARSING, ids=[str(p.relative_to(SPECS)) for p in PARSING])
def test_formatting_every_spec_is_idempotent_and_keeps_its_comments(path):
    text = path.read_text()
    once = format_spec(text)
    assert format_spec(once) == once
    assert _comments(once) == _comments(text)


@pytest.mark.parametrize("name", ["resnet_digits", "inception_digits", "all_ops", "digits_mlp", "lenet"])
def test_a_formatted_spec_is_the_same_network(name):
    text = (SPECS / f"{name}.dl").read_text()
    assert _network(format_spec(text)) == _network(text)


def test_the_canonical_layout():
    messy = ("# a spec\n\n\nmodel   m{\n  input 64   # in\n dense 32 relu  batchnorm dropout = 0.2 init=he_normal\n"
             "      residual{\n dense 32 leaky_relu alpha=0.2 batchnorm\n}dropout=0.1 relu\n"
             "  repeat 2 {dense 32 relu;dense 32}\n\n\n\n   dense 10 softmax\n}\n"
             "schedule multistep milestones=( 30,60 ) gamma=0.1\n\n\n")
    assert format_spec(messy) == (
        "# a spec\n\nmodel m {\n    input 64   # in\n    dense 32 init=he_normal batchnorm relu dropout=0.2\n"
        "    residual {\n        dense 32 batchnorm leaky_relu alpha=0.2\n    } relu dropout=0.1\n"
        "    repeat 2 { dense 32 relu; dense 32 }\n\n    dense 10 softmax\n}\n"
        "schedule multistep milestones=(30, 60) gamma=0.1\n")


def test_a_spec_with_a_syntax_error_is_not_formatted():
    with pytest.raises(DLError, match="s.dl:2:"):
        format_spec("model m {\n    dense = 3\n}\n", "s.dl")


def test_dlc_fmt_rewrites_in_place_and_check_reports(tmp_path, capsys):
    path = tmp_path / "s.dl"
    path.write_text("model m {\ninput 64\ndense 10 softmax\n}\ndata digits\n")
    assert main(["fmt", "--check", str(path)]) == 1
    assert f"{path}: would be reformatted" in capsys.readouterr().out
    assert main(["fmt", str(path)]) == 0
    assert path.read_text() == "model m {\n    input 64\n    dense 10 softmax\n}\ndata digits\n"
    assert main(["fmt", "--check", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 of 1 spec(s) would be reformatted"


def test_dlc_fmt_refuses_what_does_not_parse_and_touches_nothing(tmp_path, capsys):
    path = tmp_path / "bad.dl"
    path.write_text("model m {\ndense = 3\n")
    assert main(["fmt", str(path)]) == 2
    assert f"{path}:2:7: error:" in capsys.readouterr().err
    assert path.read_text() == "model m {\ndense = 3\n"
    assert main(["fmt", str(tmp_path / "none.dl")]) == 2
    assert f"no such file: {tmp_path / 'none.dl'}" in capsys.readouterr().err


# ---- quick fixes -------------------------------------------------------------------------------------
def _apply(text: str, edits) -> str:
    """Apply LSP-style edits (0-based positions), last first."""
    rows = text.split("\n")
    offsets = [0]
    for r in rows:
        offsets.append(offsets[-1] + len(r) + 1)
    for (sl, sc), (el, ec), new in sorted(edits, key=lambda e: e[0], reverse=True):
        text = text[:offsets[sl] + sc] + new + text[offsets[el] + ec:]
    return text


def _diagnostics(text: str):
    try:
        return dlc.compile(text).warnings
    except DLError as e:
        return e.diagnostics


BASE = "model m {{\n    input 64\n{body}\n}}\ndata digits\noptimizer adam lr=0.01\n"


@pytest.mark.parametrize("body, code, title, fixed", [
    ("    dense 32 rleu\n    dense 10 softmax", None, "replace 'rleu' with 'relu'", "    dense 32 relu"),
    ("    dense 32 relu droput=0.2\n    dense 10 softmax", None, "replace 'droput' with 'dropout'",
     "    dense 32 relu dropout=0.2"),
    ("    dense 32 relu init=zeros\n    dense 10 softmax", "DL102",
     "remove init=zeros (dlc picks he or xavier by the activation)", "    dense 32 relu"),
    ("    dense 32 relu init=xavier_uniform\n    dense 10 softmax", "DL104", "use init=he_normal",
     "    dense 32 relu init=he_normal"),
    ("    dense 32 relu\n    dense 10 softmax dropout=0.3", "DL106", "remove dropout=0.3 from the output layer",
     "    dense 10 softmax"),
    ("    dense 32 bias=true batchnorm relu\n    dense 10 softmax", "DL107",
     "remove bias=true (batchnorm's beta does its job)", "    dense 32 batchnorm relu"),
])
def test_a_quick_fix_makes_the_diagnostic_go_away(body, code, title, fixed):
    text = BASE.format(body=body)
    d = next(d for d in _diagnostics(text) if d.code == code and (code or d.hint))
    fix = fixes(text, d)[0]
    assert fix.title == title and fix.preferred
    after = _apply(text, fix.edits)
    assert fixed in after.splitlines()
    assert not [x for x in _diagnostics(after) if x.code == code and x.message == d.message]


@pytest.mark.parametrize("body, fixed", [
    ("    dense 32 relu\n    batchnorm\n    dense 10 softmax", "    dense 32 batchnorm relu\n    dense 10 softmax"),
    ("    dense 32\n    relu\n    # why\n    batchnorm\n    dense 10 softmax",
     "    dense 32\n    batchnorm\n    # why\n    relu\n    dense 10 softmax"),
])
def test_the_batchnorm_fix_moves_it_before_the_activation(body, fixed):
    text = BASE.format(body=body)
    d = next(d for d in _diagnostics(text) if d.code == "DL101")
    after = _apply(text, fixes(text, d)[0].edits)
    assert after == BASE.format(body=fixed)
    assert not [x for x in _diagnostics(after) if x.code == "DL101"]


# ---- the project's own examples are formatted; --diff shows a change (issue 26, item 8) ----------------
def test_every_spec_in_specs_is_in_the_canonical_form(capsys):
    paths = [p for p in sorted(SPECS.rglob("*.dl")) if p.name not in ("syntax_error.dl", "unclosed_block.dl")]
    assert main(["fmt", "--check", *map(str, paths)]) == 0, capsys.readouterr().out


def test_every_spec_in_the_readme_and_docs_is_in_the_canonical_form():
    import re
    root = SPECS.parent
    blocks = 0
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        text = doc.read_text()
        for m in re.finditer(r"```([a-z]*)\n(.*?)```", text, re.S):
            if m.group(1) not in ("", "dl"):
                continue
            try:
                formatted = format_spec(m.group(2))
            except DLError:
                continue  # not a spec (shell sessions, tables)
            blocks += 1
            assert formatted == m.group(2), f"{doc.name}:{text[:m.start()].count(chr(10)) + 1} is not formatted"
    assert blocks >= 3


def test_dlc_fmt_diff_shows_the_change_and_touches_nothing(tmp_path, capsys):
    spec = tmp_path / "s.dl"
    text = "model m {\n  input 64\n  dense 10 softmax   batchnorm\n}\n"
    spec.write_text(text)
    assert main(["fmt", "--diff", str(spec)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"--- {spec}\n+++ {spec} (formatted)\n@@ ")
    assert "-  dense 10 softmax   batchnorm\n+    input 64\n+    dense 10 batchnorm softmax\n" in out
    assert spec.read_text() == text
