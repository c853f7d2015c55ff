"""What training a spec will allocate, known before anything is: parameters, optimizer state and
gradients, and the activations of one batch. `dlc check` shows it; `check` and `train` refuse a
spec whose estimate exceeds the memory limit (--max-memory, default half the physical memory).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from .ir import DTYPE_BYTES
from .diagnostics import Diagnostic, DLError

BYTES = DTYPE_BYTES["float32"]  # parameters, buffers and optimizer state
DEFAULT_FRACTION = 0.5


@dataclass
class MemoryEstimate:
    params: int  # bytes of the parameters and buffers
    training: int  # parameters + gradients + scratch + optimizer state
    activations: int  # bytes of one batch's forward values and their gradients
    batch: int | None
    largest_node: str | None  # the node with the most activation memory

    @property
    def total(self) -> int:
        return self.training + self.activations


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_limit() -> int | None:
    mem = physical_memory()
    return int(mem * DEFAULT_FRACTION) if mem else None


def parse_size(text: str) -> int:
    """'8G', '512M', '2.5GB', '1000000' -> bytes; ValueError when it is not a size."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)[iI]?[bB]?\s*", text)
    if not m:
        raise ValueError(text)
    scale = {"": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


def fmt_bytes(n: int) -> str:
    for unit, size in (("TB", 2 ** 40), ("GB", 2 ** 30), ("MB", 2 ** 20), ("kB", 2 ** 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


def estimate(graph, batch, optimizer: str, samples: int | None = None, hp: dict | None = None) -> MemoryEstimate:
    params = sum(p.size for p in graph.params())
    trained = sum(p.size for p in graph.trained_params())
    buffers = sum(math.prod(b.shape) for b in graph.buffers())
    from .optimizers import OPTIMIZERS
    # arrays kept per trained parameter: the value, its gradient, a scratch buffer, the optimizer's state
    # (a frozen one: its value, and the gradient computed through it)
    per_param = 3 + OPTIMIZERS[optimizer].state_copies(hp or {})
    b = samples if batch == "all" else batch
    per_sample = (math.prod(graph.input_shape) * DTYPE_BYTES[graph.input_dtype]
                  + sum(math.prod(n.out_shape) * DTYPE_BYTES[n.dtype] for n in graph.nodes))  # bytes
    largest = max(graph.nodes, key=lambda n: math.prod(n.out_shape), default=None)
    activations = 2 * per_sample * b if isinstance(b, int) else 0
    state = trained * per_param + (params - trained) * 2 + buffers
    return MemoryEstimate((params + buffers) * BYTES, state * BYTES, activations,
                          b if isinstance(b, int) else None, largest.name if largest else None)


def check_limit(spec, limit: int | None) -> None:
    """Refuse, at the line that costs most, a spec whose training would not fit in `limit` bytes."""
    if limit is None:
        return
    est = spec.memory
    if est.total <= limit:
        return
    g = spec.graph
    if est.training >= est.activations:
        node = max(g.nodes, key=lambda n: sum(p.size for p in n.params.values()))
        what = (f"its parameters need {fmt_bytes(est.training)} to train ({fmt_bytes(est.params)} of weights; "
                f"{node.name} alone holds {sum(p.size for p in node.params.values()):,})")
        hint = "make the layer smaller"
    else:
        node = g.node(est.largest_node)
        what = (f"one batch of {est.batch} needs {fmt_bytes(est.activations)} of activations "
                f"({node.name}'s output is {'x'.join(map(str, node.out_shape))} per sample)")
        hint = "lower train batch=, or make the input or the layer smaller"
    raise DLError(Diagnostic("error", f"too large to train: {what}; the limit is {fmt_bytes(limit)}", node.span,
                             hint + " (or raise the limit with --max-memory)"), spec.source)
