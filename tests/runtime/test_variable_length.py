"""Variable-length sequences (input CxL variable) on the NumPy engine: a padded batch gives each series
what it gives alone at its own length, and the gradients through the masks are the loss's."""

from __future__ import annotations

import numpy as np
import pytest

import dlc
from dlc.runtime.numpy_engine.network import Network
from dlc.runtime.weights import init_params
from helpers import assert_finite_differences

# each body with the lengths of its series: the pool's input ceil(l / 2) is even, so each series alone
# (the reference, a fixed length) is tiled by its window; the other ops take a series of one step
BODIES = {
    "conv_norm_pools": ("conv1d 6 kernel=3 pad=same batchnorm relu\nlayernorm\nconv1d 5 kernel=2 stride=2 pad=causal\n"
                        "maxpool 2\ndense 4 tanh\nglobalavgpool\ndense 3 softmax", [12, 4, 7, 3, 11, 8]),
    "residual_maxpool": ("conv1d 4 kernel=3 dilation=2 pad=causal relu\nresidual { conv1d 4 kernel=3 pad=same relu }\n"
                         "globalmaxpool\ndense 3 softmax", [9, 4, 7, 1, 9, 6]),
    "bilstm_gru": ("lstm 5 sequences bidirectional\ngru 4\ndense 3 softmax", [9, 4, 7, 1, 9, 6]),
    "gru_sequences_bilstm_last": ("gru 4 sequences\nbatchnorm\nlstm 3 bidirectional\ndense 3 softmax",
                                  [9, 4, 7, 1, 9, 6]),
}


def _spec(body: str, steps: str) -> dlc.Spec:
    return dlc.compile(f"model m {{\ninput 3x{steps}\n{body}\n}}\n", "m.dl")


def _variable(name: str):
    """(the body's series lengths, its spec over the longest, variable, its float64 initial values)."""
    body, lengths = BODIES[name]
    spec = _spec(body, f"{max(lengths)} variable")
    return lengths, spec, init_params(spec.graph, 0, dtype=np.float64)


def _padded(series: list[np.ndarray]) -> np.ndarray:
    x = np.full((len(series), 3, max(s.shape[1] for s in series)), np.nan)
    for k, s in enumerate(series):
        x[k, :, :s.shape[1]] = s
    return x


@pytest.mark.parametrize("name", BODIES)
def test_a_padded_batch_gives_each_series_what_it_gives_alone(name):
    rng = np.random.default_rng(0)
    lengths, spec, values = _variable(name)
    for key, v in values.items():  # running statistics that are not the identity
        if key.endswith("running_mean"):
            v[...] = rng.normal(0, 0.3, v.shape)
    series = [rng.normal(0, 1, (3, n)) for n in lengths]
    batch = Network(spec.graph, values).forward(_padded(series))
    for k, s in enumerate(series):
        alone = Network(_spec(BODIES[name][0], str(s.shape[1])).graph, values).forward(s[None])
        np.testing.assert_allclose(batch[k], alone[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", BODIES)
def test_gradients_through_the_masks_match_finite_differences(name):
    rng = np.random.default_rng(1)
    lengths, spec, values = _variable(name)
    net = Network(spec.graph, values)
    x = _padded([rng.normal(0, 1, (3, n)) for n in lengths])
    weights = rng.normal(0, 1, (len(lengths), 3))

    def loss():
        return float((net.forward(x, training=True, keep=False) * weights).sum())

    net.forward(x, training=True)
    grads = net.backward(weights)
    assert_finite_differences(loss, grads, values, rng)


def test_the_valid_steps_of_each_value_follow_its_ops_shape_rule():
    from dlc.compiler.time_axis import shortest, step_lengths
    spec = _spec("conv1d 4 kernel=5 stride=2\nmaxpool 2\nglobalavgpool\ndense 2 softmax", "20 variable")
    tables = step_lengths(spec.graph)
    assert tables["conv1d1"][:9] == [0, 0, 0, 0, 1, 1, 2, 2, 3]  # (l - 5) // 2 + 1 from 5 steps on
    assert tables["maxpool1"][:9] == [0, 0, 0, 0, 0, 0, 1, 1, 1]  # the last partial window left out
    assert shortest(spec.graph) == 7


@pytest.mark.parametrize("name", BODIES)
def test_the_torch_engine_steps_a_padded_batch_as_numpy_does_in_float64(name):
    torch = pytest.importorskip("torch")
    from dlc.runtime.numpy_engine.engine import NumpyEngine
    from dlc.runtime.torch_engine.engine import TorchEngine
    rng = np.random.default_rng(2)
    body, lengths = BODIES[name]
    spec = dlc.compile(f"model m {{\ninput 3x{max(lengths)} variable\n{body}\n}}\n"
                       "optimizer adam lr=0.01\ntrain batch=6\n", "m.dl")
    values = init_params(spec.graph, 0, dtype=np.float64)
    ne = NumpyEngine(spec, {k: v.copy() for k, v in values.items()})
    te = TorchEngine(spec, {k: v.copy() for k, v in values.items()}, dtype=torch.float64, device=torch.device("cpu"))
    for _ in range(3):
        x = _padded([rng.normal(0, 1, (3, n)) for n in rng.permutation(lengths)])
        y = rng.integers(0, 3, len(lengths))
        (ln, on), (lt, ot) = ne.step(x, y, 0.01), te.step(x, y, 0.01)
        np.testing.assert_allclose(lt, ln, rtol=1e-9)
        np.testing.assert_allclose(ot, on, rtol=1e-9, atol=1e-12)
    w_np, w_t = ne.weights(), te.weights()
    for k in w_np:
        np.testing.assert_allclose(w_t[k], w_np[k], rtol=1e-9, atol=1e-12, err_msg=k)
