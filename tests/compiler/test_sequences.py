"""Sequences in the language: a CxL input, conv1d's shape rule for every padding, pooling over the steps,
and the refusals a sequence model meets."""

import pytest

import dlc
from dlc.compiler.diagnostics import DLError


def compile_model(body: str, data: str = "") -> dlc.Spec:
    return dlc.compile("model m {\n" + body + "\n}\n" + data)


@pytest.mark.parametrize("line, out", [
    ("conv1d 4 kernel=3", (4, 22)),
    ("conv1d 4 kernel=3 pad=1", (4, 24)),
    ("conv1d 4 kernel=3 pad=same", (4, 24)),
    ("conv1d 4 kernel=4 stride=2 pad=same", (4, 12)),
    ("conv1d 4 kernel=3 dilation=4 pad=causal", (4, 24)),
    ("conv1d 4 kernel=5 stride=3", (4, 7)),
])
def test_conv1d_infers_the_steps_for_every_padding(line, out):
    spec = compile_model(f"input 2x24\n{line}\nglobalavgpool\ndense 2 softmax")
    assert spec.graph.node("conv1d1").out_shape == out


def test_a_sequence_network_keeps_channels_by_length_through_pooling():
    spec = compile_model("input 3x32\nconv1d 8 kernel=3 pad=same batchnorm relu\nmaxpool 2\navgpool 2 stride=2\n"
                         "flatten\ndense 2 softmax")
    shapes = [n.out_shape for n in spec.graph.nodes]
    assert shapes == [(8, 32), (8, 32), (8, 32), (8, 16), (8, 8), (64,), (2,), (2,)]
    w = spec.graph.node("conv1d1").params["weight"]
    assert w.shape == (8, 3, 3) and "bias" not in spec.graph.node("conv1d1").params  # batchnorm's beta instead


def test_a_residual_over_a_sequence_projects_with_a_kernel_1_conv1d():
    spec = compile_model("input 4x16\nresidual project { conv1d 8 kernel=3 stride=2 pad=same relu }\n"
                         "globalmaxpool\ndense 2 softmax")
    shortcut = next(n for n in spec.graph.nodes if n.op == "conv1d" and n.attrs["kernel"] == 1)
    assert shortcut.attrs["stride"] == 2 and shortcut.out_shape == (8, 8)


@pytest.mark.parametrize("body, message", [
    ("input 2x8\nconv1d 4 kernel=9", "kernel 9 spans 9 steps, more than the input's 8"),
    ("input 2x8\nconv1d 4 kernel=3 dilation=4", "kernel 3 dilated by 4 spans 9 steps"),
    ("input 2x8\nconv1d 4 pad=full", "pad expects a number, 'same', 'valid' or 'causal', got 'full'"),
    ("input 2x8\nmaxpool 2x3", "maxpool over a sequence takes one kernel in steps, not 2x3"),
    ("input 2x8\nconv 4", "conv expects an image CxHxW, but its input is 2x8"),
    ("input 1x8x8\nconv1d 4", "conv1d expects a sequence CxL, but its input is 1x8x8"),
])
def test_sequence_mistakes_are_located_refusals(body, message):
    with pytest.raises(DLError) as e:
        compile_model(body + "\nflatten\ndense 2 softmax")
    assert message in e.value.format()


def test_dense_over_a_sequence_acts_at_every_step():
    spec = compile_model("input 3x8\ndense 5 relu\nglobalavgpool\ndense 2 softmax")
    node = spec.graph.node("dense1")
    assert (node.out_shape, node.params["weight"].shape, node.flops) == ((5, 8), (3, 5), 2 * 3 * 5 * 8)


def test_a_model_that_ends_in_a_sequence_is_told_to_reduce_over_the_steps():
    with pytest.raises(DLError) as e:
        compile_model("input 3x8\ndense 5 relu\ndense 2")
    assert "the model's output is a sequence 2x8; it must end in a feature vector" in e.value.format()
    assert "globalavgpool" in e.value.format()


def test_softmax_over_a_sequence_is_told_to_reduce_over_the_steps_not_to_flatten():
    with pytest.raises(DLError) as e:
        compile_model("input 3x8\ndense 2 softmax")
    assert "hint: reduce over the steps first: globalavgpool" in e.value.format()


def test_an_archive_set_keeps_its_own_test_split():
    with pytest.raises(DLError) as e:
        compile_model("input 1x150\nflatten\ndense 2 softmax", "data gunpoint test=0.3\n")
    text = e.value.format()
    assert "the built-in set gunpoint keeps the archive's own split (50 training, 150 test series)" in text
    assert "<spec>:6:15: error" in text  # at test=


def test_layernorm_normalizes_features_or_a_sequence_s_channels_and_refuses_images():
    spec = compile_model("input 4x10\nconv1d 8 kernel=3 pad=same relu\nlayernorm\nglobalavgpool\ndense 6 relu\n"
                         "layernorm eps=1e-3\ndense 2 softmax")
    assert spec.graph.node("layernorm1").params["gamma"].shape == (8,)
    assert spec.graph.node("layernorm2").attrs["eps"] == 1e-3
    with pytest.raises(DLError) as e:
        compile_model("input 1x8x8\nlayernorm\nflatten\ndense 2 softmax")
    assert "layernorm expects a feature vector or a sequence CxL, but its input is 1x8x8" in e.value.format()


def test_an_inline_layernorm_goes_after_the_activation_in_any_written_order():
    for line in ("dense 16 relu layernorm dropout=0.1", "dense 16 layernorm dropout=0.1 relu"):
        spec = compile_model(f"input 8\n{line}\ndense 2 softmax")
        assert [n.op for n in spec.graph.nodes] == ["dense", "relu", "layernorm", "dropout", "dense", "softmax"]
    from dlc.formatting import format_spec
    text = "model m {\n    input 8\n    dense 16 layernorm dropout=0.1 relu\n    dense 2 softmax\n}\n"
    assert "    dense 16 relu layernorm dropout=0.1\n" in format_spec(text, "s.dl")


def test_an_lstm_gives_its_last_step_or_every_step_and_starts_as_keras_does():
    last = compile_model("input 6x20\nlstm 8\ndense 2 softmax")
    assert last.graph.node("lstm1").out_shape == (8,)
    every = compile_model("input 6x20\nlstm 8 sequences\nlstm 4\ndense 2 softmax")
    assert every.graph.node("lstm1").out_shape == (8, 20) and every.graph.node("lstm2").out_shape == (4,)
    params = {p.role: p for p in last.graph.node("lstm1").params.values()}
    assert params["weight"].shape == (32, 6) and params["recurrent"].shape == (32, 8) and params["bias"].shape == (32,)
    assert [params[r].init.describe(params[r].fan_in, params[r].fan_out) for r in ("recurrent", "bias")] == \
        ["orthogonal (gain 1)", "unit_forget (forget gate 1, others 0)"]
    with pytest.raises(DLError) as e:
        compile_model("input 64\nlstm 8\ndense 2 softmax")
    assert "lstm expects a sequence CxL, but its input is 64" in e.value.format()


def test_a_gru_stacks_three_gates():
    spec = compile_model("input 3x9\ngru 5 sequences\ngru 4\ndense 2 softmax")
    params = {p.role: p.shape for p in spec.graph.node("gru1").params.values()}
    assert params == {"weight": (15, 3), "recurrent": (15, 5), "bias": (15,)}
    assert spec.graph.node("gru1").out_shape == (5, 9) and spec.graph.node("gru2").out_shape == (4,)


def test_a_bidirectional_layer_has_a_second_set_of_weights_and_twice_the_channels():
    spec = compile_model("input 3x9\nlstm 5 bidirectional sequences\ngru 4 bidirectional\ndense 2 softmax")
    assert spec.graph.node("lstm1").out_shape == (10, 9) and spec.graph.node("gru1").out_shape == (8,)
    roles = sorted(p.role for p in spec.graph.node("gru1").params.values())
    assert roles == ["bias", "bias_reverse", "recurrent", "recurrent_reverse", "weight", "weight_reverse"]
    assert spec.graph.node("gru1").params["weight_reverse"].shape == (12, 10)


def test_the_memory_estimate_counts_each_value_by_its_element_type():
    import dataclasses
    from dlc.compiler.memory import estimate
    graph = compile_model("input 3x8\nlstm 4\ndense 2 softmax").graph
    as_floats = estimate(graph, 16, "adam").activations
    as_ids = estimate(dataclasses.replace(graph, input_dtype="int64"), 16, "adam").activations
    assert as_ids - as_floats == 2 * 16 * 3 * 8 * (8 - 4)  # forward and backward, 16 samples of 3x8, 4 more bytes


def test_a_residual_body_that_changes_a_sequence_s_channels_names_the_conv1d_shortcut(tmp_path, capsys):
    """(an internal error before: the hint read a conv1d's stride as an image's pair)"""
    from dlc.cli import main
    spec = tmp_path / "r.dl"
    spec.write_text("model m {\n input 4x10\n residual { conv1d 8 kernel=3 stride=2 pad=same }\n globalavgpool\n"
                    " dense 2 softmax\n}\n")
    assert main(["check", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "the residual body changes the shape from 4x10 to 8x5" in err
    assert "(a kernel-1 conv1d with 8 filters and stride 2)" in err
