"""Each lint rule has a spec that triggers it and one that does not."""

import pytest

import dlc
from dlc.compiler.lint import RULES


def spec(body, tail=""):
    return "model m {\n" + body + "\n}\n" + tail


def codes(text):
    return [w.code for w in dlc.compile(text).warnings]


CASES = {  # rule: (a spec that triggers it, a spec that does not)
    "DL101": (spec("input 8\ndense 4\nrelu\nbatchnorm\ndense 2 softmax"), spec("input 8\ndense 4 relu batchnorm\ndense 2 softmax")),
    "DL102": (spec("input 8\ndense 4 relu init=zeros\ndense 2 softmax"), spec("input 8\ndense 4 relu init=he_normal\ndense 2 softmax")),
    "DL103": (spec("input 8\nrepeat 4 { dense 8 sigmoid }\ndense 2 softmax"), spec("input 8\nrepeat 3 { dense 8 sigmoid }\ndense 2 softmax")),
    "DL104": (spec("input 8\ndense 4 relu init=xavier_uniform\ndense 2 softmax"), spec("input 8\ndense 4 tanh init=xavier_uniform\ndense 2 softmax")),
    "DL105": (spec("input 8\ndense 4 relu\ndense 2 softmax", "loss mse"), spec("input 8\ndense 4 relu\ndense 2 softmax", "loss cross_entropy")),
    "DL106": (spec("input 8\ndense 4 relu\ndense 2 softmax dropout=0.5"), spec("input 8\ndense 4 relu dropout=0.5\ndense 2 softmax")),
    "DL107": (spec("input 8\ndense 4 bias=true batchnorm relu\ndense 2 softmax"), spec("input 8\ndense 4 batchnorm relu\ndense 2 softmax")),
    "DL108": (spec("input 8\ndense 2 softmax", "optimizer adam lr=10"), spec("input 8\ndense 2 softmax", "optimizer adam lr=1e-3")),
    "DL109": (spec("input 8\ndense 1 relu\ndense 2 softmax"), spec("input 8\ndense 4 relu\ndense 2 softmax")),
    "DL111": ("block u(c) {\n residual { dense c relu; dense c } relu\n}\n" + spec("input 8\nrepeat 8 { u 8 }\ndense 2 softmax"),
              "block u(c) {\n residual { dense c relu; dense c init=normal(std=0.01) } relu\n}\n"
              + spec("input 8\nrepeat 8 { u 8 }\ndense 2 softmax")),
    "DL112": ("block u(c) {\n dense c relu\n}\n" + spec("input 8\ndense 2 softmax"),
              "block u(c) {\n dense c relu\n}\n" + spec("input 8\nu 4\ndense 2 softmax")),
    "DL114": (spec("input 8\ndense 4 relu frozen\ndense 2 softmax frozen"), spec("input 8\ndense 4 relu frozen\ndense 2 softmax")),
    "DL115": (spec("input 1x8x8\nflatten\ndense 10 softmax", "data digits standardize\naugment flip_x"),
              spec("input 1x8x8\nflatten\ndense 10 softmax", "data digits scale=1/16\naugment flip_x")),
    "DL117": (spec("input 2x16\nlstm 8\ndense 2 softmax", "optimizer adam"),
              spec("input 2x16\nlstm 8\ndense 2 softmax", "optimizer adam clip_norm=1")),
    "DL118": (spec("input 8 tokens\nembedding 8 vocab=20\nattention heads=2\nglobalavgpool\ndense 2 softmax"),
              spec("input 8 tokens\nembedding 8 vocab=20\nresidual { layernorm; attention heads=2 }\nglobalavgpool\n"
                   "dense 2 softmax")),
    "DL110": (spec("input 64\ndense 200 relu\ndense 10 softmax", "optimizer genetic"),
              spec("input 64\ndense 32 relu\ndense 10 softmax", "optimizer genetic")),
}


DATA_RULES = {"DL113", "DL116", "DL119", "DL120"}  # rules on the data, not the spec: tests/runtime/test_class_weight.py,
# test_data_input.py, test_text_data.py


def test_every_rule_has_cases():
    assert set(CASES) | DATA_RULES == set(RULES)


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_triggers_and_does_not(code):
    bad, good = CASES[code]
    assert code in codes(bad)
    assert code not in codes(good)


def test_rule_silenced_on_its_line():
    assert "DL102" not in codes(spec("input 8\ndense 4 relu init=zeros   # dlc: ignore DL102\ndense 2 softmax"))
    assert "DL102" in codes(spec("input 8\ndense 4 relu init=zeros   # dlc: ignore DL101\ndense 2 softmax"))
    assert codes(spec("input 8\ndense 4 relu init=zeros   # dlc: ignore\ndense 2 softmax")) == []


def test_warning_is_located_with_why_and_fix():
    spec = dlc.compile("model m {\n input 8\n dense 4\n relu\n batchnorm\n dense 2 softmax\n}\n", "w.dl")
    text = spec.warnings[0].format(spec.source)
    assert text.startswith("w.dl:5:2: warning: [DL101] batchnorm follows relu: BN normalizes")
    assert "hint: put batchnorm before the activation" in text


def test_a_line_of_a_block_used_many_times_is_warned_about_once():
    text = ("block b(c) {\n    residual { dense c tanh init=he_normal }\n}\n"
            "model m {\n    input 8\n    repeat 5 { b 8 }\n    dense 2 softmax\n}\n")
    assert codes(text).count("DL104") == 1
