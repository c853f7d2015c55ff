"""What every check of dlc diagnose stands on: a verdict (`Check`), a freshly initialised model on the
engine and device the spec names, the training batches as the trainer would shuffle them, and how the
report names a layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlc.compiler.spec import Spec
from dlc.runtime.data.splits import Splits
from dlc.runtime.engine import Engine, make_engine
from dlc.runtime.weights import init_params

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    name: str
    verdict: str
    finding: str
    fix: str = ""
    details: list[str] = field(default_factory=list)


# ---- helpers -----------------------------------------------------------------
def fresh_model(spec: Spec, splits: Splits, regularize: bool) -> Engine:
    """A newly initialised model (the spec's seed, as train starts) with its optimizer, on the engine and
    device the spec names (a device this machine lacks is refused there, as train refuses it)."""
    values = init_params(spec.graph, spec["train"]["seed"])
    return make_engine(spec, values, regularize=regularize)


def layer_label(node) -> str:
    """A node as the report names it: its name and the spec line it comes from (`relu3 (line 8)`)."""
    return f"{node.name} (line {node.span.line})" if node.span is not None else node.name


def weight_params(spec: Spec):
    """(layer label, param) for every weight (not bias, not batchnorm) in graph order."""
    for node in spec.graph.nodes:
        for p in node.params.values():
            if p.role == "weight":
                yield layer_label(node), p


def training_batches(spec: Spec, splits: Splits):
    """Endless shuffled training batches of the spec's size, shuffled as the trainer shuffles them (the
    engine's noise generator is seeded as the trainer's)."""
    n = len(splits.x_train)
    tr = spec["train"]
    batch = n if tr["batch"] == "all" else min(tr["batch"], n)
    order_rng = np.random.default_rng([tr["seed"], 1])

    def batches():
        while True:
            order = order_rng.permutation(n)
            for i in range(0, n - batch + 1, batch):
                idx = order[i:i + batch]
                yield splits.x_train[idx], splits.y_train[idx]

    return batches()
