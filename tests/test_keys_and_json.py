"""Range keys name layers (dense1.dropout) and work with --set, --vary and search; machine-readable errors."""

import json

import pytest

import dlc
from dlc.cli import main

from conftest import ROOT  # noqa: E402

IRIS = ROOT / "specs/iris_search.dl"


def test_range_keys_name_layers_and_set_takes_them(capsys):
    spec = dlc.compile_file(IRIS)
    assert [k for k, _ in spec.ranges] == ["dense1.dropout", "optimizer.lr", "regularize.l2"]
    fixed = dlc.compile_file(IRIS, overrides=["dense1.dropout=0.3", "optimizer.lr=0.01", "regularize.l2=1e-4"])
    assert fixed.ranges == [] and fixed.graph.node("dropout1").attrs["p"] == 0.3
    assert "dense 32 relu dropout=0.3" in fixed.source.text


@pytest.mark.parametrize("item, line, node, attr, value", [
    ("dense2.units=5", "dense 5 relu", "dense2", "units", 5),
    ("input.dropout=0.1", "input 4 dropout=0.1", "dropout1", "p", pytest.approx(0.1)),
    ("dense3.leaky_relu.alpha=0.2", "dense 8 leaky_relu alpha=0.2", "leaky_relu1", "alpha", 0.2),
    ("dropout2.p=0.4", "dropout 0.4", "dropout2", "p", 0.4),
])
def test_set_a_layer_key(item, line, node, attr, value):
    text = ("model m {\n input 4\n dense 16 relu dropout=0.5\n dense 8 relu\n dense 8 leaky_relu\n dropout 0.2\n"
            " dense 3 softmax\n}\ndata iris\n")
    spec = dlc.compile(text, overrides=[item])
    assert line in spec.source.text
    assert spec.graph.node(node).attrs[attr] == value


def test_a_layer_inside_repeat_cannot_be_set_alone(capsys):
    text = "model m {\n input 4\n repeat 2 { dense 8 relu }\n dense 3 softmax\n}\ndata iris\n"
    with pytest.raises(dlc.DLError, match=r"--set dense1.units=4: dense1 is on line 3 inside a repeat"):
        dlc.compile(text, overrides=["dense1.units=4"])


def test_vary_takes_layer_keys_and_names_itself_in_errors(tmp_path, capsys):
    assert main(["train", str(IRIS), "--vary", "dense1.dropout=0,0.5", "--set", "train.epochs=2",
                 "--set", "optimizer.lr=0.01", "--set", "regularize.l2=0", "-q", "-o", str(tmp_path / "v")]) == 0
    out = capsys.readouterr().out
    assert "dropout=0" in out and "dropout=0.5" in out
    assert main(["train", str(IRIS), "--vary", "model.activaton=relu", "-q"]) == 2
    assert "error: --vary model.activaton=relu: unknown model key 'activaton'" in capsys.readouterr().err


def test_search_results_use_the_layer_keys(tmp_path):
    from dlc.runtime.tools.search import search
    result = search(dlc.compile_file(IRIS, overrides=["train.epochs=2"]), 2, fine=0, jobs=1,
                    out=tmp_path / "s", progress=False)
    header = (tmp_path / "s" / "results.csv").read_text().splitlines()[0]
    assert "dense1.dropout" in header.split(",") and result.keys[0] == "dense1.dropout"


def test_check_json_gives_errors_as_json(capsys):
    bad = str(ROOT / "specs/bad/typo_activation.dl")
    assert main(["check", "--json", bad]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["file"] == bad
    assert report["errors"] == [{"severity": "error", "message": "unknown activation 'rleu'", "code": None,
                                 "hint": "did you mean 'relu' or 'rrelu' or 'prelu'?", "file": bad,
                                 "line": 4, "col": 14}]


def test_dropout_out_of_range_hint_says_what_dropout_is(capsys):
    with pytest.raises(dlc.DLError) as e:
        dlc.compile("model m {\n input 4\n dense 8 relu dropout=1.5\n dense 3 softmax\n}\n")
    d = e.value.diagnostics[0]
    assert d.message == "dropout=1.5 is out of range: dropout must be in [0, 1)"
    assert d.hint == "the probability of dropping a unit, from 0 up to (not including) 1; keep=0.8 is dropout=0.2"
