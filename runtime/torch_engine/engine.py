"""The torch engine: the spec's graph lowered to torch (net.py), trained by runtime/trainer.py's loop.

Everything follows the NumPy engine's conventions (docs/conventions.md), so that both give the same
numbers up to rounding: the optimizer rules are the registry's own (compiler/optimizers.py, run on
torch tensors), l1/l2 added to the gradients of the weights only, clipping by value then by global
norm, max-norm after the update, weights starting from dlc's own init (the same seed gives the same
starting weights on both engines). Dropout and rrelu noise come from a torch generator seeded from
the spec's seed; its state is checkpointed, so resume is exact on the same device.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.optimizers import OPTIMIZERS, ArrayOps
from dlc.compiler.spec import Spec
from dlc.runtime.engine import Engine, noise_seed
from dlc.runtime.regularize import Regularizer
from dlc.runtime.scores import is_fused, outputs_upto
from dlc.runtime.torch_engine import import_torch

if TYPE_CHECKING:
    import torch
else:
    torch = import_torch()

from dlc.runtime.torch_engine.losses import LOSS_LOWERINGS  # noqa: E402 (needs torch)
from dlc.runtime.torch_engine.net import LoweredNet, torch_name  # noqa: E402

TORCH_OPS = ArrayOps(multiply=torch.mul, divide=torch.div, sqrt=torch.sqrt, zeros_like=torch.zeros_like,
                     copy=torch.clone)

EVAL_BATCH = 1024


def _refuse(spec: Spec, message: str, span=None, hint: str | None = None) -> DLError:
    return DLError(Diagnostic("error", message, span, hint), spec.source)


def resolve_device(spec: Spec):
    """train device=... (None: CUDA when there is a GPU, else Apple's MPS, else the CPU) -> torch.device;
    a device that is not a torch device, or is not on this machine, is a located refusal."""
    tr = spec["train"]
    asked = tr.get("device")
    span = spec["train"].spans.get("device") or spec["train"].span
    if asked is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", asked):
        raise _refuse(spec, f"unknown device '{asked}'", span, "expected cpu, cuda, cuda:N or mps")
    if asked.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(asked.partition(":")[2] or 0)
        if count == 0:
            raise _refuse(spec, f"device {asked}: this machine has no CUDA GPU that torch can use", span,
                          "train on device=cpu, or install a CUDA build of torch on a machine with a GPU")
        if index >= count:
            raise _refuse(spec, f"device {asked}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}",
                          span)
    if asked == "mps" and not (getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()):
        raise _refuse(spec, "device mps: Apple's Metal backend is not available here", span, "train on device=cpu")
    return torch.device(asked)


def generator_seed(spec: Spec) -> int:
    """The torch noise generator's seed, derived from the spec's seed as NumPy's generator is."""
    return int(np.random.SeedSequence(noise_seed(spec)).generate_state(1, np.uint64)[0] >> 1)


class _Flat:
    """Parameters updated together: their tensors become views into one flat tensor, so an optimizer
    rule runs once over all of them (the rules are elementwise). Two groups: the weights that decay
    (adamw's decoupled decay) and the rest."""

    def __init__(self, params: list[tuple[str, "torch.Tensor"]], decayed: bool):
        self.names = [n for n, _ in params]
        self.decayed = decayed
        self.shapes = [tuple(p.shape) for _, p in params]
        self.sizes = [p.numel() for _, p in params]
        self.values = torch.cat([p.detach().flatten() for _, p in params]) if params else torch.empty(0)
        offset = 0
        for (_, p), k in zip(params, self.sizes):
            p.data = self.values[offset:offset + k].view(p.shape)  # the parameter now lives in the flat tensor
            offset += k
        self.tmp = torch.empty_like(self.values)
        self.state: dict[str, "torch.Tensor"] = {}

    def gather(self, grads: dict) -> "torch.Tensor":
        return torch.cat([grads[n].flatten() for n in self.names])

    def split(self, flat):
        offset = 0
        for name, shape, k in zip(self.names, self.shapes, self.sizes):
            yield name, flat[offset:offset + k].view(shape)
            offset += k


class TorchEngine(Engine):
    name = "torch"

    @classmethod
    def check(cls, spec: Spec) -> None:
        resolve_device(spec)

    def __init__(self, spec: Spec, values: dict[str, np.ndarray], regularize: bool = True,
                 dtype=None, device=None):
        opt = spec["optimizer"]
        self.rule = OPTIMIZERS[opt.kind_name]
        if not self.rule.uses_gradients:
            raise _refuse(spec, f"optimizer {opt.kind} runs on the numpy engine only", opt.kind_span or opt.span,
                          "train it with engine=numpy (the default), or pick a gradient optimizer (adam, sgd ...)")
        self.spec = spec
        self.device = device if device is not None else resolve_device(spec)
        from dlc.runtime.torch_engine import distributed
        self.group = None
        if distributed.launched():  # torchrun: one process of several
            self.device = distributed.local_device(self.device)
            self.group = distributed.Group(self.device)
        if spec["train"].get("threads"):
            torch.set_num_threads(spec["train"]["threads"])
        self.dtype = dtype or torch.float32
        self.names = list(values)  # parameters and buffers, in init order
        self.net = LoweredNet(spec.graph, values, self.dtype, self.device)
        self.generator = torch.Generator(device=self.device)
        self.rank = self.group.rank if self.group else 0
        self.generator.manual_seed(generator_seed(spec) + self.rank)  # each process draws its own noise
        self.net.generator = self.generator
        self.model: Any = self.net  # what runs the training forward: DDP's wrapper under torchrun
        if self.group:
            self.net.moments = self.group.moments
            self.model = self.group.wrap(self.net)
        self.fused = is_fused(spec)
        self.upto = outputs_upto(spec)
        self.loss_fn = LOSS_LOWERINGS[spec.loss]
        self.hp = opt.values
        self.clip = (opt.get("clip_norm"), opt.get("clip_value"))
        r = spec["regularize"]
        self.reg = (Regularizer(spec.graph, r["l1"], r["l2"], r.get("max_norm")) if regularize
                    else Regularizer(spec.graph, 0.0, 0.0, None))
        tensors: dict[str, torch.Tensor] = dict(self.net.named_parameters())
        tensors.update(dict(self.net.named_buffers()))
        self.tensors = {n: tensors[torch_name(n)] for n in self.names}
        self.params = [(p.name, self.tensors[p.name]) for p in spec.graph.trained_params()]
        self.weight_names = [p.name for p in spec.graph.trained_params() if p.role == "weight"]
        self.groups = [_Flat([(n, t) for n, t in self.params if (n in self.reg.decayed) == decayed], decayed)
                       for decayed in (True, False)]
        self.groups = [g for g in self.groups if g.names]
        self.t = 0
        self._class_weight = None

    # ---- training ------------------------------------------------------------------------------
    def _x(self, x: np.ndarray):
        return torch.as_tensor(np.asarray(x), device=self.device).to(self.dtype)

    def _y(self, y: np.ndarray):
        """Class indices as int64 (what gather and one_hot take), targets in the model's dtype."""
        y = np.asarray(y)
        return torch.as_tensor(y, device=self.device).to(torch.int64 if y.dtype.kind in "iub" else self.dtype)

    def forward_loss(self, xb, yb):
        """Training-mode forward and the loss, as a tensor (what step and the tests differentiate)."""
        self.net.train()
        out = self.model(self._x(xb), self.upto)
        return out, self.loss_fn(out, self._y(yb), self.fused, self._class_weight)

    def set_class_weight(self, weights):
        super().set_class_weight(weights)
        self._class_weight = None if weights is None else torch.as_tensor(weights, dtype=self.dtype, device=self.device)

    def step(self, xb, yb, lr):
        value, out, _ = self._step(xb, yb, lr, False)
        return value, out

    def step_with_gradients(self, xb, yb, lr):
        return self._step(xb, yb, lr, True)

    def _step(self, xb, yb, lr, want_grads: bool):
        """step; with `want_grads`, also the gradients applied (penalties added, clipped) as NumPy arrays."""
        for _, p in self.params:
            p.grad = None
        n = len(xb)
        if self.group:  # this process's slice of the global batch, its loss weighted by its share
            start, count = self.group.share(n)
            out, loss = self.forward_loss(xb[start:start + count], yb[start:start + count])
            if count == 0:
                loss = out.sum() * 0.0  # no samples here: still part of every collective
            # DDP averages the gradients over the processes: each contributes size * share of them
            (loss * (count / n * self.group.size)).backward()
            loss = self.group.total(loss.detach() * (count / n))
            out = self.group.gather_rows(out.detach(), n)
        else:
            out, loss = self.forward_loss(xb, yb)
            loss.backward()
        with torch.no_grad():
            grads = {name: (p.grad if p.grad is not None else torch.zeros_like(p)) for name, p in self.params}
            total = loss.detach() + self._penalty_and_grads(grads)
            value = float(total)
            applied = grads
            if math.isfinite(value):
                before = ({n: self.tensors[n].detach().clone() for n in self.weight_names}
                          if self.stats is not None else None)
                flat_grads = [g.gather(grads) for g in self.groups]
                self._clip(flat_grads)
                if before is not None or want_grads:  # the gradients clipped: views into the flat tensors, which
                    # the rules read and never write, made anew each step
                    applied = {n: part for group, g in zip(self.groups, flat_grads) for n, part in group.split(g)}
                self.t += 1
                for group, g in zip(self.groups, flat_grads):  # one update per group: a few kernels, not one per tensor
                    self.rule.update(group.values, g, group.state, group.tmp, lr, self.hp, self.t, group.decayed,
                                     TORCH_OPS)
                self._constrain()
                if before is not None:
                    for name, w0 in before.items():
                        self._record(name, float(torch.linalg.norm(applied[name])),
                                     float(torch.linalg.norm(self.tensors[name].detach() - w0)), float(torch.linalg.norm(w0)))
            as_numpy = {n: g.detach().cpu().numpy() for n, g in applied.items()} if want_grads else None
        return value, out.detach().cpu().numpy(), as_numpy

    def _seeded_noise(self):
        """A generator seeded 0 for one pass (training_loss, trace), the engine's own left untouched."""
        g = torch.Generator(device=self.device)
        g.manual_seed(0)
        return g

    def training_loss(self, x, y):
        own, self.net.generator = self.net.generator, self._seeded_noise()
        try:
            self.net.train()
            with torch.no_grad():
                out = self.net(self._x(x), self.upto)
                return float(self.loss_fn(out, self._y(y), self.fused, self._class_weight))
        finally:
            self.net.generator = own

    def input_gradient(self, x, y):
        self.net.eval()
        xt = self._x(x).requires_grad_(True)
        loss = self.loss_fn(self.net(xt, self.upto), self._y(y), self.fused, self._class_weight)
        (grad,) = torch.autograd.grad(loss, xt)
        return grad.detach().cpu().numpy()

    def trace(self, x):
        own, self.net.generator = self.net.generator, self._seeded_noise()
        try:
            self.net.train()
            with torch.no_grad():
                for node, out in self.net.trace(self._x(x)):
                    yield node, out.cpu().numpy()
        finally:
            self.net.generator = own

    def reseed_noise(self, seed):
        self.generator.manual_seed(seed)

    def _penalty_and_grads(self, grads):
        total = torch.zeros((), dtype=self.dtype, device=self.device)
        for name, l1, l2 in self.reg.terms:
            w, g = self.tensors[name].detach(), grads[name]
            if l2:
                total = total + 0.5 * l2 * torch.sum(w * w)
                g.add_(w, alpha=l2)
            if l1:
                total = total + l1 * torch.sum(torch.abs(w))
                g.add_(torch.sign(w), alpha=l1)
        return total

    def _clip(self, gs):
        """Every entry to [-clip_value, clip_value], then the global norm to clip_norm (as NumPy's)."""
        clip_norm, clip_value = self.clip
        if not clip_norm and not clip_value:
            return
        if clip_value:
            for g in gs:
                g.clamp_(-clip_value, clip_value)
        if clip_norm:
            norm = math.sqrt(sum(float(torch.sum(g * g)) for g in gs))
            if norm > clip_norm:
                scale = clip_norm / (norm + 1e-12)
                for g in gs:
                    g.mul_(scale)

    def _constrain(self):
        for name, limit, axes in self.reg.max_norm:
            w = self.tensors[name].detach()
            norms = torch.sqrt(torch.sum(w * w, dim=axes, keepdim=True))
            w.mul_(torch.clamp(limit / torch.clamp(norms, min=1e-12), max=1.0))

    def outputs(self, x):
        self.net.eval()
        outs = []
        with torch.no_grad():
            for i in range(0, len(x), EVAL_BATCH):
                outs.append(self.net(self._x(x[i:i + EVAL_BATCH]), self.upto).cpu().numpy())
        if outs:
            return np.concatenate(outs)
        node = self.spec.graph.nodes[self.upto - 1] if self.upto else None
        shape = node.out_shape if node is not None else self.spec.graph.output_shape
        return np.zeros((0,) + tuple(shape), np.float32)

    # ---- state in and out ----------------------------------------------------------------------
    def weights(self):
        return {n: self.tensors[n].detach().cpu().numpy().copy() for n in self.names}

    def load_weights(self, values):
        with torch.no_grad():
            for n, v in values.items():
                self.tensors[n].copy_(torch.as_tensor(np.asarray(v), dtype=self.dtype))

    def optimizer_state(self):
        flat = {}
        for group in self.groups:
            for role, buf in group.state.items():
                for name, part in group.split(buf):
                    flat[f"{name}.{role}"] = part.detach().cpu().numpy().copy()
        return dict(flat, __t__=np.array(self.t))

    def load_optimizer_state(self, arrays):
        self.t = int(arrays.get("__t__", 0))
        for group in self.groups:
            roles = {key.rsplit(".", 1)[1] for key in arrays if key != "__t__" and key.rsplit(".", 1)[0] in group.names}
            group.state = {role: torch.cat([torch.as_tensor(np.asarray(arrays[f"{n}.{role}"]), dtype=self.dtype,
                                                            device=self.device).flatten() for n in group.names])
                           for role in sorted(roles)}

    def noise_state(self):
        """Every process's noise generator (one per process under torchrun), as hex strings by rank."""
        mine = self.generator.get_state().numpy().tobytes().hex()
        states = self.group.gather_strings(mine) if self.group else [mine]
        return {"torch_generators": states, "device": self.device.type}

    def load_noise_state(self, state):
        if not isinstance(state, dict) or not isinstance(state.get("torch_generators"), list) \
                or not all(isinstance(s, str) for s in state["torch_generators"]) or not state["torch_generators"]:
            raise ValueError("not the torch generators' states")
        states = state["torch_generators"]
        raw = [bytes.fromhex(s) for s in states]
        want = self.generator.get_state().numel()
        if any(len(r) != want for r in raw) and state.get("device") == self.device.type:
            raise ValueError(f"a generator state is not {want} bytes")
        size = self.group.size if self.group else 1
        if state.get("device") != self.device.type or len(states) != size:
            # another kind of device, or another number of processes: the noise goes on from a new seed
            # derived from the saved ones (docs/engines.md: exact resume needs the same device and world size)
            self.generator.manual_seed((generator_seed(self.spec) + len(states) * 7919 + self.rank) % 2 ** 63)
            return
        try:
            self.generator.set_state(torch.frombuffer(bytearray(raw[self.rank]), dtype=torch.uint8))
        except RuntimeError as e:  # the right length, not a state torch can take ("Invalid mt19937 state")
            raise ValueError(f"torch refuses the generator state: {e}") from None

    def close(self):
        if self.group:
            # the DDP wrapper goes before its process group: a reducer outliving the group aborts the
            # process at exit ("terminate called without an active exception")
            self.model = self.net
            import gc
            gc.collect()
            self.group.close()
            self.group = None

    def describe(self):
        return {"engine": "torch", "device": str(self.device), "world_size": self.group.size if self.group else 1,
                "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
