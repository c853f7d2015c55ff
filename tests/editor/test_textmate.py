"""The highlighting VS Code shows: every spec tokenized by VS Code's own engine (vscode-textmate +
vscode-oniguruma under Node, dev-only: `npm ci --prefix tests/textmate`) with the grammar dlc writes
(issue 31, item 18): block uses, range functions, keys named like statements and numbers written
`.5` / `2.` get their scope; no registry word and no number is left unscoped in any spec."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT

HERE = ROOT / "tests" / "textmate"
GRAMMAR = ROOT / "editors" / "vscode" / "syntaxes" / "dl.tmLanguage.json"
NODE = shutil.which("node")

SAMPLE = """block basic(c, stride=1) {
    dense c relu
}
model m {
    input 64
    basic 16
    repeat 2 { basic 8 }
    dense 10 softmax dropout=.5 init=normal
}
init from "base"
optimizer adam lr=loguniform(1e-4, 1e-1) beta1=uniform(0.8, 0.99) eps=2.
train epochs=randint(3, 9) batch=choice(32, 64)
"""


def _tokens(*files: Path) -> dict[str, list[list[list[str]]]]:
    if NODE is None:
        pytest.skip("node is not installed")
    if not (HERE / "node_modules" / "vscode-textmate").is_dir():
        pytest.skip("VS Code's tokenizer is not installed: npm ci --prefix tests/textmate")
    done = subprocess.run([NODE, str(HERE / "tokenize.js"), str(GRAMMAR), *map(str, files)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return {f: lines for f, lines in json.loads(done.stdout)}


def _scope(lines, line: int, text: str) -> list[str]:
    found = [tok[1:] for tok in lines[line] if tok[0] == text]
    assert found, (text, lines[line])
    return found[0]


def test_the_items_that_were_left_unscoped_or_mis_scoped(tmp_path):
    path = tmp_path / "sample.dl"
    path.write_text(SAMPLE)
    lines = _tokens(path)[str(path)]
    assert _scope(lines, 5, "basic") == ["entity.name.function.call.dl"]  # a block use
    assert [t[1:] for t in lines[6] if t[0] == "basic"] == [["entity.name.function.call.dl"]]  # inside repeat { }
    assert _scope(lines, 10, "loguniform") == ["support.function.range.dl"]
    assert _scope(lines, 10, "uniform") == ["support.function.range.dl"]  # not the init scheme of that name
    assert _scope(lines, 11, "randint") == ["support.function.range.dl"]
    assert _scope(lines, 11, "choice") == ["support.function.range.dl"]
    assert _scope(lines, 7, "init") == ["variable.parameter.dl"]  # a key, not the statement
    assert _scope(lines, 9, "init") == ["keyword.other.statement.dl"]
    assert _scope(lines, 7, ".5") == ["constant.numeric.dl"]  # whole
    assert _scope(lines, 10, "2.") == ["constant.numeric.dl"]
    assert _scope(lines, 7, "dense") == ["support.function.layer.dl"]


def test_every_spec_has_its_words_and_numbers_scoped():
    from dlc.compiler.ops import REGISTRY
    from dlc.compiler.statements import STATEMENTS
    specs = sorted(p for p in (ROOT / "specs").rglob("*.dl"))
    assert len(specs) > 20
    words = set(REGISTRY.names()) | set(STATEMENTS)
    for file, lines in _tokens(*specs).items():
        for n, line in enumerate(lines):
            for text, *scopes in line:
                if scopes:
                    continue
                for word in re.findall(r"[A-Za-z_]\w*", text):
                    assert word not in words, (file, n + 1, text)  # a registry word left plain
                assert not re.search(r"(?<![\w.])[.]?[0-9]", text), (file, n + 1, text)  # a number left plain
