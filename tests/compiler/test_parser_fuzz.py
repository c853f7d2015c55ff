"""Random and mutated specs: every outcome is a compiled spec or a located DLError, never a crash."""


from hypothesis import HealthCheck, given, settings, strategies as st

import dlc
from dlc.compiler.diagnostics import DLError

from conftest import ROOT  # noqa: E402
CORPUS = [p.read_text() for p in sorted(ROOT.glob("specs/**/*.dl"))]

WORDS = ["model", "input", "dense", "conv", "maxpool", "avgpool", "flatten", "batchnorm", "dropout", "lrn", "maxout",
         "relu", "sigmoid", "tanh", "softmax", "prelu", "elu", "repeat", "init", "he_normal", "data", "digits",
         "loss", "cross_entropy", "optimizer", "adam", "sgd", "train", "epochs", "kernel", "stride", "pad", "same",
         "choice", "loguniform", "keep", "x", "m"]
TOKENS = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(["{", "}", "(", ")", "=", ",", "\n", ";", "#", '"', "  ", "1x28x28", "0x0", "-1", "1e-3", "1.5"]),
    st.integers(-3, 300).map(str),
    st.text(alphabet="abcxyz_0123456789.=-+{}()#\n\t@", max_size=4),
)


def outcome_is_clean(text):
    try:
        spec = dlc.compile(text, "fuzz.dl")
    except DLError as e:
        assert e.diagnostics, "a DLError without diagnostics"
        for d in e.diagnostics:
            assert d.message
            if d.span is not None:
                assert d.span.line >= 1 and d.span.col >= 1
        e.format()  # formatting never fails
        return
    assert spec.graph is not None and spec.graph.nodes


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(TOKENS, max_size=40).map(" ".join))
def test_random_token_soup(text):
    outcome_is_clean(text)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(CORPUS), st.data())
def test_mutated_real_specs(text, data):
    for _ in range(data.draw(st.integers(1, 4))):
        if not text:
            break
        i = data.draw(st.integers(0, len(text) - 1))
        j = data.draw(st.integers(i, min(len(text), i + 8)))
        op = data.draw(st.sampled_from(["delete", "insert", "replace", "duplicate"]))
        tok = data.draw(TOKENS)
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + tok + text[i:]
        elif op == "replace":
            text = text[:i] + tok + text[j:]
        else:
            text = text[:j] + text[i:j] + text[j:]
    outcome_is_clean(text)
