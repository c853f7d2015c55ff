"""The `dlc check` summary: one row per spec line, with the ops it lowered to.

Lines inside a residual, parallel, branch or block use are indented under it; such a line's row
gives the totals of everything inside it (parameters, FLOPs) and the shape that leaves it."""

from __future__ import annotations

from .ops import fmt_shape
from .ops.base import fmt_value
from .spec import Spec


def _num(n: int) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return str(n)


def rows(spec: Spec) -> list[dict]:
    g = spec.graph
    by_name = {n.name: n for n in g.nodes}
    out = []
    for layer in g.layers:
        nodes = [by_name[name] for name in layer.nodes]
        inside = [by_name[name] for lay in g.layers[layer.index:layer.index + layer.inner + 1] for name in lay.nodes]
        inits = [_init_text(spec, w) for n in nodes if (w := n.params.get("weight")) is not None]
        shape, dtype = _leaving(layer, g, by_name)
        out.append({
            "line": layer.span.line,
            "layer": layer.text,
            "depth": layer.depth,
            "inner": layer.inner,  # how many rows after this one are inside it
            "ops": [n.op for n in nodes],
            "nodes": layer.nodes,
            "output": list(shape),
            "dtype": dtype,  # int64: token ids (the input line of input L tokens)
            "params": sum(p.size for n in inside for p in n.params.values()),
            "init": inits[0] if inits and not layer.inner else "",
            "flops": sum(n.flops for n in nodes) if not layer.inner else sum(n.flops for n in inside),
        })
    return out


def _init_text(spec: Spec, weight) -> str:
    """What a weight starts from: `loaded` from `init from`'s run, or its init formula; `, frozen` when
    training keeps it."""
    loaded = spec.init_report is not None and weight.name in spec.init_report.loaded
    text = "loaded" if loaded else weight.init.describe(weight.fan_in, weight.fan_out)
    return text + (", frozen" if weight.frozen else "")


def _counts(spec: Spec) -> str:
    """', T trainable, F frozen' when any parameter is frozen (Keras's summary says both)."""
    frozen = sum(p.size for p in spec.graph.params() if p.frozen)
    if not frozen:
        return ""
    return f" ({spec.graph.param_count - frozen:,} trainable, {frozen:,} frozen)"


def _leaving(layer, g, by_name) -> tuple[tuple[int, ...], str]:
    """The shape and element type of the value that leaves a line (for a line that holds lines: what leaves
    them all)."""
    if layer.output in by_name:
        return by_name[layer.output].out_shape, by_name[layer.output].dtype
    return g.input_shape, g.input_dtype


def augment_text(spec: Spec) -> str:
    """The augment line's operations in the order they are applied, e.g. `flip_x crop=4 rotate=10`."""
    parts = []
    for key, value in spec["augment"].values.items():
        if value is True:
            parts.append(key)
        elif value:
            parts.append(f"{key}={value:g}" if isinstance(value, (int, float)) else f"{key}={_plain(value)}")
    return " ".join(parts)


def to_json(spec: Spec) -> dict:
    r = rows(spec)
    return {
        "model": spec.name,
        "input": list(spec.graph.input_shape),
        "input_dtype": spec.graph.input_dtype,  # int64: token ids (input L tokens, as 1 x L)
        "variable": spec.graph.variable,
        "output": list(spec.graph.output_shape),
        "layers": r,
        "params": spec.graph.param_count,
        "frozen_params": sum(p.size for p in spec.graph.params() if p.frozen),
        "flops_per_sample": sum(n.flops for n in spec.graph.nodes),
        "loss": spec.loss,
        "optimizer": {"name": spec["optimizer"].kind, **{k: _plain(v) for k, v in spec["optimizer"].values.items()}},
        "data": spec.settings["data"].kind if "data" in spec.settings else None,
        "search_ranges": {k: v.text for k, v in spec.ranges},
        "augment": {k: _plain(v) for k, v in spec["augment"].values.items() if v},
        "memory_bytes": _memory_json(spec),
        "warnings": [d.to_json(spec.source) for d in spec.warnings],
    }


def _memory_json(spec: Spec) -> dict:
    m = spec.memory
    return {"parameters": m.params, "training_state": m.training, "activations_per_batch": m.activations,
            "batch": m.batch}


def _memory_line(spec: Spec) -> str:
    from .memory import fmt_bytes
    m = spec.memory
    line = f"memory: parameters {fmt_bytes(m.params)}, training state {fmt_bytes(m.training)}"
    if m.batch:
        line += f", activations {fmt_bytes(m.activations)} per batch of {m.batch}"
    return line


def _plain(v):
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(getattr(v, "text", v))


def render(spec: Spec) -> str:
    r = rows(spec)
    head = ["line", "layer", "lowered to", "output", "params", "init", "FLOPs"]
    table = [[str(x["line"]), "  " * x["depth"] + x["layer"],
              " > ".join(x["ops"]) or (f"{x['inner']} line(s)" if x["inner"] else "-"),
              fmt_value(tuple(x["output"]), x["dtype"]),
              f"{x['params']:,}", x["init"], _num(x["flops"])] for x in r]
    widths = [max(len(h), *(len(row[i]) for row in table)) if table else len(h) for i, h in enumerate(head)]
    right = {0, 4, 6}

    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    g = spec.graph
    shown = (f"{g.input_shape[1]} tokens" if g.input_dtype == "int64" else
             fmt_shape(g.input_shape) + (" variable" if g.variable else ""))
    out = [f"model {spec.name}: input {shown} -> output {fmt_shape(g.output_shape)}",
           line(head), line(["-" * w for w in widths])]
    out += [line(row) for row in table]
    total_flops = sum(n.flops for n in spec.graph.nodes)
    out.append(f"total: {spec.graph.param_count:,} parameters{_counts(spec)}, {_num(total_flops)} FLOPs per sample "
               f"(forward), {len(spec.graph.nodes)} ops")
    opt = spec["optimizer"]
    train = spec["train"]
    data = spec.settings.get("data")
    weights = spec["loss"].get("class_weight")
    weighted = "" if weights is None else (
        " class_weight=balanced (n/(K·n_c) from the training split)" if weights == "balanced"
        else " class_weight=(" + ", ".join(f"{w:g}" for w in weights) + ")")
    engine = f", engine {train['engine']}" + (f" on {train['device']}" if train.get("device") else "") \
        if train.get("engine") else ""
    out.append(f"training: loss {spec.loss}{weighted}, optimizer {opt.kind} lr={_plain(opt.get('lr'))}, "
               f"epochs={_plain(train['epochs'])} batch={_plain(train['batch'])}, "
               f"data {data.kind if data else '(none: add a data line to train)'}{engine}")
    augment = augment_text(spec)
    if augment:
        out.append(f"augment (training batches only, seeded by the train seed): {augment}")
    if spec.init_report is not None:
        out += spec.init_report.lines()
    if spec.data_report is not None:
        out += spec.data_report.lines()
    out.append(_memory_line(spec))
    if spec.ranges:
        out.append("search ranges: " + ", ".join(f"{k}={v.text}" for k, v in spec.ranges))
    return "\n".join(out)
