"""Text models (input L tokens -> embedding -> ...) on both engines: a padded batch gives each text what it
gives alone, at its own length; the gradients through the padding and causal masks are the loss's; the
torch engine steps as the NumPy engine does on padded batches of token ids."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.runtime.numpy_engine.network import Network
from dlc.runtime.weights import init_params
from helpers import assert_finite_differences

VOCAB = 13
# each body with the token counts of its texts
BODIES = {
    "transformer": ("embedding 8 vocab=13\nposition\nresidual { layernorm; attention heads=2 }\n"
                    "residual { layernorm; dense 12 gelu; dense 8 }\nlayernorm\nglobalavgpool\ndense 3 softmax",
                    [7, 2, 5, 1, 7, 4]),
    "causal_sinusoidal": ("embedding 6 vocab=13\nposition sinusoidal\nattention heads=3 causal\nglobalmaxpool\n"
                          "dense 3 softmax", [6, 3, 1, 6, 2]),
    "kim_cnn": ("embedding 5 vocab=13\nparallel concat {\nbranch { conv1d 4 kernel=3 pad=same relu; globalmaxpool }\n"
                "branch { conv1d 4 kernel=2 pad=same relu; globalmaxpool }\n}\ndense 3 softmax", [8, 3, 1, 6]),
    "bag_lstm": ("embedding 4 vocab=13\nlstm 5 sequences\nglobalavgpool\ndense 3 softmax", [5, 2, 5, 1]),
}


def _spec(body: str, steps: int) -> dlc.Spec:
    return dlc.compile(f"model m {{\ninput {steps} tokens\n{body}\n}}\n", "m.dl", lint=False)


def _texts(rng, lengths) -> list[np.ndarray]:
    return [rng.integers(2, VOCAB, n).astype(np.float64) for n in lengths]


def _padded(texts: list[np.ndarray]) -> np.ndarray:
    x = np.full((len(texts), 1, max(len(t) for t in texts)), np.nan)
    for k, t in enumerate(texts):
        x[k, 0, :len(t)] = t
    return x


def _body(name: str):
    """(its body, its texts' lengths, its spec over the longest, its float64 initial values)."""
    body, lengths = BODIES[name]
    spec = _spec(body, max(lengths))
    return body, lengths, spec, init_params(spec.graph, 0, dtype=np.float64)


@pytest.mark.parametrize("name", BODIES)
def test_a_padded_batch_gives_each_text_what_it_gives_alone(name):
    rng = np.random.default_rng(0)
    body, lengths, spec, values = _body(name)
    texts = _texts(rng, lengths)
    batch = Network(spec.graph, values).forward(_padded(texts))
    for k, t in enumerate(texts):
        if "position1.weight" in values:  # a learned table of another length: its first steps
            values_k = dict(values, **{"position1.weight": values["position1.weight"][:, :len(t)]})
        else:
            values_k = values
        alone = Network(_spec(body, len(t)).graph, values_k).forward(t[None, None, :])
        np.testing.assert_allclose(batch[k], alone[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", BODIES)
def test_gradients_through_the_masks_match_finite_differences(name):
    rng = np.random.default_rng(1)
    body, lengths, spec, values = _body(name)
    net = Network(spec.graph, values)
    x = _padded(_texts(rng, lengths))
    weights = rng.normal(0, 1, (len(lengths), 3))

    def loss():
        return float((net.forward(x, training=True, keep=False) * weights).sum())

    net.forward(x, training=True)
    grads = net.backward(weights)
    assert not np.any(grads["embedding1.weight"][0]), "the padding id's row got a gradient"
    assert_finite_differences(loss, grads, values, rng)


@pytest.mark.parametrize("name", BODIES)
def test_the_torch_engine_steps_as_numpy_on_padded_token_batches(name):
    torch = pytest.importorskip("torch")
    from engine_parity import rel
    from dlc.runtime.numpy_engine.engine import NumpyEngine
    from dlc.runtime.torch_engine.engine import TorchEngine
    body, lengths = BODIES[name]
    spec = dlc.compile(f"model m {{\ninput {max(lengths)} tokens\n{body}\n}}\noptimizer adam lr=1e-2\n", "m.dl",
                       lint=False)
    values = init_params(spec.graph, 0, dtype=np.float64)
    ne = NumpyEngine(spec, {k: v.copy() for k, v in values.items()})
    te = TorchEngine(spec, {k: v.copy() for k, v in values.items()}, dtype=torch.float64, device=torch.device("cpu"))
    rng = np.random.default_rng(2)
    for _ in range(3):
        x = _padded(_texts(rng, rng.permutation(lengths)))
        y = rng.integers(0, 3, len(lengths))
        (ln, on), (lt, ot) = ne.step(x, y, 1e-2), te.step(x, y, 1e-2)
        assert rel(ln, lt) <= 1e-9 and rel(on, ot) <= 1e-9
    w_np, w_t = ne.weights(), te.weights()
    assert max(rel(w_np[k], w_t[k]) for k in w_np) <= 1e-9


def test_token_ids_outside_the_vocabulary_are_refused_by_the_kernel():
    spec = _spec("embedding 4 vocab=5\nglobalavgpool\ndense 2 softmax", 3)
    net = Network(spec.graph, init_params(spec.graph, 0))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 5\)"):
        net.forward(np.array([[[1.0, 7.0, 2.0]]], np.float32))
