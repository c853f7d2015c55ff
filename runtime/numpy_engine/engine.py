"""The NumPy engine: the reference. The IR interpreted by runtime/numpy_engine/network.py, the
registry's optimizer rules applied in place (optimizers.py), the losses' NumPy formulas."""

from __future__ import annotations

import math

import numpy as np

from dlc.compiler.spec import Spec
from dlc.runtime.engine import Engine, check_pcg64_state, noise_seed
from dlc.runtime.losses import loss_and_grad
from dlc.runtime.numpy_engine.network import Network
from dlc.runtime.numpy_engine.optimizers import Optimizer, Regularizer, clip_gradients
from dlc.runtime.scores import is_fused, outputs_upto


class NumpyEngine(Engine):
    """Forward, loss, backward, penalties, clipping, update, on NumPy arrays that are the weights.

    `regularize=False` leaves out l1/l2 and max-norm (dlc diagnose checks the bare loss)."""

    name = "numpy"

    def __init__(self, spec: Spec, values: dict[str, np.ndarray], regularize: bool = True):
        self.spec = spec
        self.values = values
        self.net = Network(spec.graph, values)
        self.fused = is_fused(spec)
        self.upto = outputs_upto(spec)
        self.opt_set = spec["optimizer"]
        self.opt = Optimizer(self.opt_set.kind_name, self.opt_set.values, values)
        r = spec["regularize"]
        self.reg = (Regularizer(spec.graph, r["l1"], r["l2"], r.get("max_norm")) if regularize
                    else Regularizer(spec.graph, 0.0, 0.0, None))
        self.noise_rng = np.random.default_rng(noise_seed(spec))
        self.param_names = [p.name for p in spec.graph.trained_params()]
        self.weight_names = [p.name for p in spec.graph.trained_params() if p.role == "weight"]

    # ---- training ------------------------------------------------------------------------------
    def step(self, xb, yb, lr):
        loss, out, _ = self.step_with_gradients(xb, yb, lr)
        return loss, out

    def step_with_gradients(self, xb, yb, lr) -> tuple[float, np.ndarray, dict]:
        """`step`, also returning the gradients it applied (what dlc diagnose inspects)."""
        if not self.opt.rule.uses_gradients:
            return self._evolve(xb, yb, lr)
        out = self.net.forward(xb, training=True, rng=self.noise_rng, upto=self.upto)
        loss, dout = loss_and_grad(self.spec.loss, out, yb, self.fused, self.class_weight)
        grads = self.net.backward(dout)
        loss += self.reg.penalty_and_grads(self.values, grads)
        if math.isfinite(loss):
            clip_gradients(grads, self.opt_set.get("clip_norm"), self.opt_set.get("clip_value"))
            before = {k: self.values[k].copy() for k in self.weight_names} if self.stats is not None else None
            self.opt.step(grads, lr, self.reg.decayed)
            self.reg.constrain(self.values)
            if before is not None:
                for k, w0 in before.items():
                    self._record(k, float(np.linalg.norm(grads[k])), float(np.linalg.norm(self.values[k] - w0)),
                                 float(np.linalg.norm(w0)))
        return loss, out, grads

    def _evolve(self, xb, yb, lr) -> tuple[float, np.ndarray, dict]:
        """A generation of a gradient-free optimizer: fitness is the batch loss (with penalties) of a set
        of trainable weights, written into the model; the model keeps the best set."""
        rng = self.noise_rng

        def fitness(candidate) -> float:
            for n, v in candidate.items():
                self.values[n][...] = v
            out = self.net.forward(xb, training=True, rng=rng, upto=self.upto, keep=False)
            loss, _ = loss_and_grad(self.spec.loss, out, yb, self.fused, self.class_weight)
            return loss + self.reg.penalty(self.values)

        loss = self.opt.evolve(fitness, rng, lr, self.param_names)
        self.reg.constrain(self.values)
        out = self.net.forward(xb, training=False, upto=self.upto, keep=False)
        return loss, out, {}

    def training_loss(self, x, y):
        out = self.net.forward(x, training=True, rng=np.random.default_rng(0), upto=self.upto, keep=False)
        return loss_and_grad(self.spec.loss, out, y, self.fused, self.class_weight)[0]

    def input_gradient(self, x, y):
        out = self.net.forward(x, training=False, upto=self.upto)
        _, dout = loss_and_grad(self.spec.loss, out, y, self.fused, self.class_weight)
        return self.net.input_gradient(dout)

    def trace(self, x):
        return self.net.trace(x, training=True, rng=np.random.default_rng(0))

    def reseed_noise(self, seed):
        self.noise_rng = np.random.default_rng(seed)

    def outputs(self, x):
        with np.errstate(over="ignore", invalid="ignore"):
            return self.net.predict(x, None, self.upto)

    # ---- state in and out ----------------------------------------------------------------------
    def weights(self):
        return {k: v.copy() for k, v in self.values.items()}

    def load_weights(self, values):
        for k, v in values.items():
            self.values[k][...] = v

    def optimizer_state(self):
        return {k: np.array(v, copy=True) for k, v in self.opt.state_dict().items()}

    def load_optimizer_state(self, arrays):
        self.opt.load_state(arrays)

    def noise_state(self):
        return self.noise_rng.bit_generator.state

    def load_noise_state(self, state):
        check_pcg64_state(state)
        self.noise_rng.bit_generator.state = state
