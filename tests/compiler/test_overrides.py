"""--set, --vary and search keys: layer keys, block arguments, where a new statement goes, and errors on
a line --set rewrote."""

import pytest
from conftest import ROOT  # noqa: E402
from dlc.compiler.overrides import apply_overrides

import dlc
from dlc.cli import main


def test_a_range_in_a_positional_value_is_a_search_range(spec_file, tmp_path, capsys):
    from dlc.runtime.tools.search import search
    text = ("block b(c) {\n dense c relu\n}\nmodel m {\n input 2\n dense choice(4, 8) relu\n b choice(5, 6)\n"
            " dense 3 softmax\n}\ndata spiral n=90\ntrain epochs=1 batch=30 seed=0 validation=0.3\n")
    spec = dlc.compile(text, str(tmp_path / "s.dl"))
    assert [(k, r.text) for k, r in spec.ranges] == [("dense1.units", "choice(4, 8)"), ("b1.dense1.units",
                                                                                       "choice(5, 6)")]
    path = spec_file(text)
    assert main(["train", str(path), "-q", "-o", str(tmp_path / "run")]) == 2
    assert "error: dense1.units is a search range (choice(4, 8)); train needs one value" in capsys.readouterr().err
    result = search(spec, 4, fine=0, jobs=1, out=tmp_path / "s", progress=False)
    widths = {(dlc.compile(t.text).graph.node("dense1").attrs["units"],
               dlc.compile(t.text).graph.node("b1.dense1").attrs["units"]) for t in result.trials}
    assert all(t.status == "ok" for t in result.trials) and widths <= {(4, 5), (4, 6), (8, 5), (8, 6)}
    assert len(widths) > 1


def test_an_error_on_a_line_set_rewrote_names_set_and_what_the_file_says(spec_file, tmp_path, capsys):
    spec = spec_file("model m {\n input 2\n dense 3 softmax\n}\ndata spiral\noptimizer adam lr=0.01\n")
    assert main(["check", str(spec), "--set", "optimizer.lr=-1"]) == 2
    err = capsys.readouterr().err
    assert "s.dl:6:19: error: lr=-1 is out of range: lr must be > 0" in err
    assert "note: this line is as --set optimizer.lr=-1 made it; the file says: optimizer adam lr=0.01" in err


def test_set_reaches_block_arguments_and_lines_of_a_block_used_once(spec_file, tmp_path, capsys):
    from conftest import ROOT
    spec = dlc.compile_file(ROOT / "specs/resnet_digits.dl", overrides=["basic4.c=32", "basic3.c=32"])
    assert "basic 32 stride=2 shortcut=project" in spec.source.text  # set where it is written: the same value
    wide = dlc.compile_file(ROOT / "specs/resnet_digits.dl", overrides=["basic3.c=48", "basic4.c=48"])
    assert wide.graph.node("basic4.residual1.conv2").out_shape == (48, 4, 4)
    assert "basic 48 stride=2 shortcut=project" in wide.source.text and "    basic 48\n" in wide.source.text
    assert main(["check", str(ROOT / "specs/resnet_digits.dl"), "--set", "basic3.width=1"]) == 2
    err = capsys.readouterr().err
    assert "error: --set basic3.width=1: block basic has no parameter 'width'" in err
    assert "hint: its parameters: c, stride, shortcut" in err
    once = spec_file("block b(c) {\n dense c relu\n}\nmodel m {\n input 4\n b 8\n dense 3 softmax\n}\n"
                            "data iris\n")
    s = dlc.compile_file(once, overrides=["b1.dense1.dropout=0.3", "b1.c=16"])
    assert s.graph.node("b1.dense1").attrs["units"] == 16
    assert [n.attrs["p"] for n in s.graph.nodes if n.op == "dropout"] == [0.3]


def test_set_appends_a_statement_after_the_last_line():
    text = "model m {\n input 2\n dense 2 softmax\n}\n\n\n"
    assert apply_overrides(text, "x", ["regularize.l2=0.1"]) == \
        "model m {\n input 2\n dense 2 softmax\n}\nregularize l2=0.1\n\n\n"
    assert apply_overrides("model m {\n input 2\n dense 2 softmax\n}", "x", ["regularize.l2=0.1"]) == \
        "model m {\n input 2\n dense 2 softmax\n}\nregularize l2=0.1\n"


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
