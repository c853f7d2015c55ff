"""editors/vscode/extension.js, the VS Code extension, run by Node on a stub of VS Code's API
(tests/vscode_stub/vscode) against a real `dlc lsp`: what a VS Code user would see -- the diagnostics,
hover, inlay hints, quick fixes, the outline and formatting -- arrives through the extension's own
LSP client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytest.importorskip("pygls")
STUB = ROOT / "tests" / "vscode_stub"
NODE = shutil.which("node")


def _drive(spec: Path) -> dict:
    if NODE is None:
        pytest.skip("node is not installed")
    env = dict(os.environ, NODE_PATH=str(STUB), DLC_COMMAND=json.dumps([sys.executable, "-m", "dlc", "lsp"]))
    done = subprocess.run([NODE, str(STUB / "drive.js"), str(spec)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_extension_shows_an_error_and_its_quick_fixes(tmp_path):
    spec = tmp_path / "typo.dl"
    spec.write_text("model m {\n    input 64\n    dense 32 rleu\n    dense 10 softmax\n}\ndata digits\n")
    seen = _drive(spec)
    (d,) = seen["diagnostics"]
    assert d[:3] == [2, 13, 0] and d[4].startswith("unknown activation 'rleu'")
    assert seen["actions"][0] == ["replace 'rleu' with 'relu'", True, ["relu"]]
    assert seen["hover"] == "**dense** (layer): fully connected: y = x W + b, W stored (in, out); over a sequence CxL, at every step (UNITSxL)"


def test_the_extension_shows_the_shapes_outline_and_formatting_of_resnet_digits(tmp_path):
    spec = tmp_path / "resnet_digits.dl"
    spec.write_text((ROOT / "specs" / "resnet_digits.dl").read_text().replace("batchnorm relu", "relu batchnorm"))  # unformatted
    seen = _drive(spec)
    assert seen["diagnostics"] == []
    rows = spec.read_text().splitlines()
    first_conv = next(k for k, r in enumerate(rows) if r.strip().startswith("conv 16 kernel=3"))
    assert [first_conv, "→ 16x8x8 · 176 params"] in seen["hints"]
    assert seen["symbols"] == ["basic", "resnet_digits", "data", "loss", "optimizer", "regularize", "schedule", "train"]
    (formatted,) = seen["formatted"]
    assert "    conv 16 kernel=3 pad=same batchnorm relu\n" in formatted


def test_the_textmate_grammar_names_every_registered_word():
    from dlc.textmate import text
    path = ROOT / "editors" / "vscode" / "syntaxes" / "dl.tmLanguage.json"
    assert path.read_text() == text(), "run: python -m dlc.textmate > editors/vscode/syntaxes/dl.tmLanguage.json"
    import re
    for pattern in json.loads(path.read_text())["patterns"]:
        re.compile(pattern["match"])  # (Oniguruma reads these the same: no look-behind or named groups)
    manifest = json.loads((ROOT / "editors" / "vscode" / "package.json").read_text())
    assert manifest["main"] == "./extension.js" and "dependencies" not in manifest  # nothing to install or build
    assert (ROOT / "editors" / "vscode" / manifest["contributes"]["grammars"][0]["path"]).resolve() == path
