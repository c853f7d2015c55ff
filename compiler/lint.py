"""The linter: known design pitfalls, each a rule with a code, a one-line why and a fix.

Silence a rule on one line with a comment: `# dlc: ignore DL101` (or `# dlc: ignore` for all).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from .diagnostics import Diagnostic
from .losses import LOSSES
from .ops import REGISTRY
from .optimizers import OPTIMIZERS

DEEP = 4  # hidden layers with saturating activations from which vanishing gradients bite


@dataclass(frozen=True)
class Rule:
    code: str
    title: str
    why: str
    check: Callable


RULES: dict[str, Rule] = {}


def rule(code, title, why):
    def wrap(fn):
        RULES[code] = Rule(code, title, why, fn)
        return fn
    return wrap


def _reads(graph, node, producers):
    """The node whose value `node` reads (its first input), skipping dropout; None for the model's input."""
    n = producers.get(node.inputs[0])
    while n is not None and REGISTRY[n.op].drops:
        n = producers.get(n.inputs[0])
    return n


def _activations_after(graph) -> dict:
    """For each node, the first nonlinear activation its value meets (along its first reader) before
    the next dense/conv, or None: one pass from the end, so a 100,000-layer spec lints in linear time."""
    consumers = graph.consumers()
    out: dict = {}
    for n in reversed(graph.nodes):
        c = consumers[n.name][0] if consumers[n.name] else None
        if c is None or REGISTRY[c.op].weight_layer:
            out[n.name] = None
        elif REGISTRY[c.op].nonlinear:
            out[n.name] = c
        else:
            out[n.name] = out[c.name]
    return out


@rule("DL101", "batchnorm after a nonlinearity",
      "BN normalizes the pre-activations; after the nonlinearity it re-shifts the activation's output")
def _bn_after_nonlinearity(spec):
    producers = spec.graph.producers()
    for n in spec.graph.nodes:
        prev = _reads(spec.graph, n, producers)
        if REGISTRY[n.op].normalizes and prev is not None and REGISTRY[prev.op].nonlinear:
            yield n.span, f"batchnorm follows {prev.op}", "put batchnorm before the activation: dense 128 batchnorm relu"


@rule("DL102", "zero or constant weight init",
      "every unit of the layer computes the same thing and gets the same gradient: symmetry is never broken")
def _constant_init(spec):
    for n in spec.graph.nodes:
        w = n.params.get("weight")
        if w is not None and w.init.is_constant():
            yield n.span, f"{n.name} weights start constant ({w.init.name})", "use he_normal (relu) or xavier_uniform (tanh)"


@rule("DL103", "sigmoid/tanh in a deep stack",
      "saturating activations shrink gradients layer by layer; deep sigmoid stacks stop learning")
def _deep_saturating(spec):
    nodes = spec.graph.nodes
    linear = [i for i, n in enumerate(nodes) if REGISTRY[n.op].weight_layer]
    hidden = linear[:-1]
    after = _activations_after(spec.graph)
    sat = [(i, a) for i in hidden if (a := after[nodes[i].name]) is not None and REGISTRY[a.op].saturating]
    has_bn = any(REGISTRY[n.op].normalizes for n in nodes)
    if len(sat) >= DEEP and not has_bn:
        i, a = sat[0]
        yield a.span, f"{len(sat)} hidden layers use {a.op}", "use relu (or add batchnorm) in deep stacks"


@rule("DL104", "init does not match the activation",
      "he init keeps relu activations' variance; xavier keeps tanh/sigmoid's; the other way round they shrink or grow")
def _init_mismatch(spec):
    after = _activations_after(spec.graph)
    for n in spec.graph.nodes:
        w = n.params.get("weight")
        if w is None or w.init.auto:
            continue
        act = after[n.name]
        if act is None:
            continue
        family = REGISTRY[act.op].init_family
        if w.init.name.startswith("xavier") and family == "he":
            yield n.span, f"{w.init.name} init before {act.op}", "use he_normal or he_uniform before relu-like activations"
        elif w.init.name.startswith("he") and REGISTRY[act.op].saturating:
            yield n.span, f"{w.init.name} init before {act.op}", "use xavier_uniform or xavier_normal before tanh/sigmoid"


@rule("DL105", "output activation does not match the loss",
      "the loss assumes a particular output: probabilities over classes, one probability, or raw values")
def _output_vs_loss(spec):
    found = LOSSES[spec.loss].check_output(spec.graph.output_activation, spec.graph.output_shape[0])
    if found:
        yield spec.graph.nodes[-1].span, *found


@rule("DL106", "dropout on the output layer",
      "dropping outputs makes the prediction itself random in training and biases the loss")
def _output_dropout(spec):
    nodes = spec.graph.nodes
    last_linear = max((i for i, n in enumerate(nodes) if REGISTRY[n.op].weight_layer), default=-1)
    for n in nodes[last_linear + 1:]:
        if REGISTRY[n.op].drops:
            yield n.span, "dropout after the output layer", "remove dropout= from the last layer"


@rule("DL107", "bias before batchnorm",
      "batchnorm subtracts the mean, so the bias cancels out; beta does its job")
def _bias_before_bn(spec):
    consumers = spec.graph.consumers()
    for n in spec.graph.nodes:
        readers = consumers[n.name]
        if REGISTRY[n.op].weight_layer and "bias" in n.params and readers and REGISTRY[readers[0].op].normalizes:
            yield n.span, f"{n.name} has a bias and feeds batchnorm", "drop bias=true (dlc removes it by default)"


@rule("DL108", "learning rate far outside the usual range",
      "too high diverges or oscillates; too low barely moves")
def _lr_range(spec):
    opt = spec["optimizer"]
    lr = opt.get("lr")
    lo, hi = OPTIMIZERS[opt.kind].lr_range  # the usual range, declared by each optimizer
    if isinstance(lr, (int, float)) and (lr > 10 * hi or lr < lo / 10):
        span = opt.spans.get("lr") or opt.span
        yield span, f"lr={lr:g} is far outside {opt.kind}'s usual range {lo:g} to {hi:g}", \
            f"start near {'0.01' if opt.kind in ('sgd', 'adagrad') else '1e-3'}"


@rule("DL109", "a layer too narrow to learn",
      "a hidden layer narrower than the output, or a dropout rate of 0.9 or more, starves the layers after it")
def _cannot_train(spec):
    nodes = spec.graph.nodes
    out = spec.graph.output_shape[0]
    linear = [n for n in nodes if n.op == "dense"]
    for n in linear[:-1]:
        if n.out_shape[0] < min(out, 2):
            yield n.span, f"{n.name} has {n.out_shape[0]} unit(s), fewer than the {out} outputs", "widen it"
    for n in nodes:
        if REGISTRY[n.op].drops and isinstance(n.attrs.get("p"), float) and n.attrs["p"] >= 0.9:
            yield n.span, f"dropout p={n.attrs['p']:g} keeps under 10 % of the units", "p is the drop probability; use 0.5 or keep=0.9"


@rule("DL110", "a gradient-free optimizer on a large net",
      "the genetic algorithm searches weight space by trial: its chance of improving by mutation falls "
      "as the weights grow, and each generation costs a forward pass per individual")
def _search_in_weight_space(spec):
    opt = spec["optimizer"]
    rule = OPTIMIZERS[opt.kind]
    n = spec.graph.param_count
    if rule.max_weights is not None and n > rule.max_weights:
        yield opt.span, f"{opt.kind} on {n:,} weights (more than {rule.max_weights:,})", \
            "use adam (or sgd) for nets this size; keep genetic for tiny nets"


DEEP_RESIDUAL = 8  # residual blocks without normalization from which the sums' growth bites


@rule("DL111", "a deep residual stack without normalization",
      "each x + f(x) adds the body's variance to its input's: over many blocks the activations and "
      "gradients grow geometrically unless the bodies start near zero or are normalized")
def _deep_unnormalized_residuals(spec):
    producers = spec.graph.producers()
    layers = spec.graph.layers
    residuals = {lay.group for lay in layers if lay.word == "residual" and lay.group}
    normalized = set()  # residual scopes whose body holds a batchnorm (one pass over the names)
    for m in spec.graph.nodes:
        if REGISTRY[m.op].normalizes:
            parts = m.name.split(".")
            for i in range(1, len(parts)):
                if ".".join(parts[:i]) in residuals and parts[i] != "shortcut":
                    normalized.add(".".join(parts[:i]))
    full_scale = []
    for n in spec.graph.nodes:
        group = layers[n.layer].group
        if n.op != "add" or layers[n.layer].word != "residual" or group in normalized:
            continue
        scope = group + "."
        last = producers.get(n.inputs[0])  # the body's last weight layer, looked for inside the body only
        while last is not None and last.name.startswith(scope) and not REGISTRY[last.op].weight_layer:
            last = producers.get(last.inputs[0])
        if last is None or not last.name.startswith(scope):
            continue
        w = last.params.get("weight") if last is not None else None
        if w is not None and w.init.scale(w.fan_in, w.fan_out) * w.fan_in ** 0.5 >= 0.5:
            full_scale.append(n)
    if len(full_scale) >= DEEP_RESIDUAL:
        yield layers[full_scale[0].layer].span, \
            f"{len(full_scale)} residual blocks without batchnorm add their bodies at full scale", \
            "start each body's last layer near zero (e.g. init=normal(std=0.01)) or put batchnorm in the bodies"


@rule("DL112", "a block that is never used",
      "its lines are not part of the model, and are checked only when a model line uses the block")
def _unused_block(spec):
    used = {layer.word for layer in spec.graph.layers}
    for name, span in spec.blocks.items():
        if name not in used:
            yield span, f"block {name} is never used", f"use it as a line of the model ({name} ...) or delete it"


_IGNORE = re.compile(r"#.*\bdlc:\s*ignore\b([A-Z0-9, ]*)")


def _silenced(spec, span, code) -> bool:
    if span is None:
        return False
    m = _IGNORE.search(spec.source.line_text(span.line))
    if not m:
        return False
    codes = {c.strip() for c in m.group(1).replace(",", " ").split() if c.strip()}
    return not codes or code in codes


def lint(spec) -> list[Diagnostic]:
    out, seen = [], set()
    for r in RULES.values():
        for span, message, fix in r.check(spec):
            # a line inside a block used several times (or a repeat) is warned about once
            if not _silenced(spec, span, r.code) and (span, r.code, message) not in seen:
                seen.add((span, r.code, message))
                out.append(Diagnostic("warning", f"{message}: {r.why}", span, fix, r.code))
    return sorted(out, key=lambda d: (d.span.line if d.span else 0, d.span.col if d.span else 0, d.code))


@rule("DL117", "a recurrent layer without gradient clipping",
      "gradients through many steps can explode (Pascanu et al. 2013): one large step undoes the training; "
      "clipping their norm bounds the step")
def _recurrent_unclipped(spec):
    from .optimizers import OPTIMIZERS
    opt = spec["optimizer"]
    if not OPTIMIZERS[opt.kind_name].uses_gradients or opt.get("clip_norm") or opt.get("clip_value"):
        return
    first = next((n for n in spec.graph.nodes if REGISTRY[n.op].recurrent), None)
    if first is not None:
        yield first.span, f"{first.op} without gradient clipping", "add clip_norm=1 to the optimizer line"


@rule("DL114", "nothing left to train",
      "every parameter is frozen: training would only move batchnorm statistics that are frozen too")
def _all_frozen(spec):
    params = spec.graph.params()
    if params and not spec.graph.trained_params():
        yield spec.graph.nodes[0].span, "every line is frozen", "remove `frozen` from the lines to train (the head)"


@rule("DL115", "augmentation with per-feature standardize",
      "standardize divides each pixel by its own training std: a pixel that is nearly constant in the "
      "training data (a border, always 0) is divided by almost nothing, so an image that a flip, shift, "
      "rotation, cutout, brightness or noise moves onto it gets huge inputs (on 8x8 digits: 92 % -> 10 % "
      "after 3 epochs)")
def _augment_standardize(spec):
    data, aug = spec.settings.get("data"), spec.settings["augment"]
    if data is not None and data.get("standardize") is True and aug.written \
            and any(v is not False and v != 0 for v in aug.values.values()):
        yield data.spans.get("standardize", data.span), "augment with per-pixel standardize", \
            "scale the data instead (scale=1/255 for 8-bit images), or center it"


@rule("DL116", "8-bit inputs (0..255) trained unscaled",
      "inputs in the hundreds make the first layer's pre-activations ~100x larger than its init assumes: "
      "saturated units, huge gradients and a learning rate that is wrong by that factor (MNIST MLP, 3 epochs: "
      "82.8 % unscaled vs 90.6 % with scale=1/255)")
def _raw_pixels(spec):
    return ()  # it needs the data file's element type: the runtime reports it (raw_inputs_warning)


def raw_inputs_warning(spec, what: str) -> Diagnostic | None:
    """DL116 for a data line that reads 8-bit inputs (`what`: whose) with no scale=, center or standardize."""
    data = spec.settings.get("data")
    if data is None or any(data.get(k) for k in ("scale", "center", "standardize")):
        return None
    r = RULES["DL116"]
    if _silenced(spec, data.span, r.code):
        return None
    return Diagnostic("warning", f"{what} holds 8-bit values (0..255) and the data line does not scale them: "
                                 f"{r.why}", data.kind_span or data.span, "add scale=1/255 to the data line", r.code)


@rule("DL118", "attention outside a residual path, or without layernorm",
      "a transformer layer is attention and a feed-forward net each inside x + f(layernorm(x)) (pre-LN, Xiong et "
      "al. 2020): without the residual path the signal and its gradient go through every softmax, without "
      "layernorm the scale of x + f(x) grows block after block")
def _attention_bare(spec):
    normed = any(n.op == "layernorm" for n in spec.graph.nodes)
    for n in spec.graph.nodes:
        if n.op == "attention":
            if not any(part.startswith("residual") for part in n.name.split(".")[:-1]):
                yield n.span, "attention outside a residual", "write it as residual { layernorm; attention heads=H }"
            elif not normed:
                yield n.span, "attention without layernorm", "put a layernorm first in its residual: residual { layernorm; attention ... }"


VOCAB_SLACK = 2  # the embedding's rows this many times the training text's distinct tokens: DL119
TRUNCATED = 0.5  # input L tokens cuts more than this fraction of the training texts: DL120


@rule("DL119", "an embedding vocabulary much larger than the training text has",
      "rows no training token maps to are never trained: parameters (and memory, and an exported file) for nothing")
def _vocab_slack(spec):
    return ()  # it needs the texts: the runtime reports it from the training split (text_warnings)


@rule("DL120", "input L tokens cuts most training texts",
      "a text keeps its first L tokens: what a review says at its end is never seen")
def _cut_texts(spec):
    return ()  # it needs the texts: text_warnings


def text_warnings(spec, rows: int, distinct: int, truncated: int, texts: int, length: int) -> list[Diagnostic]:
    """DL119 and DL120 from what the training split's texts hold."""
    out = []
    first = next((n for n in spec.graph.nodes if REGISTRY[n.op].reads == "int64"), None)
    if first is not None and rows > VOCAB_SLACK * (distinct + 2) and not _silenced(spec, first.span, "DL119"):
        out.append(Diagnostic("warning", f"embedding vocab={rows:,}, but the training texts hold {distinct:,} distinct "
                                         f"tokens, so {rows - distinct - 2:,} rows are unused: {RULES['DL119'].why}",
                              first.span, f"vocab={distinct + 2} keeps every training token", "DL119"))
    inp = spec.graph.layers[0] if spec.graph.layers else None
    if texts and truncated > TRUNCATED * texts and inp is not None and not _silenced(spec, inp.span, "DL120"):
        out.append(Diagnostic("warning", f"input {length} tokens cuts {truncated:,} of the {texts:,} training texts: "
                                         f"{RULES['DL120'].why}", inp.span,
                              "raise L (dlc check prints the 95th percentile of tokens per text)", "DL120"))
    return out


IMBALANCE_RATIO = 5  # the largest class this many times the smallest: "strongly imbalanced"


@rule("DL113", "strongly imbalanced classes and no class_weight",
      "the loss is dominated by the large classes: a model can score well by rarely predicting the small "
      "ones, whose recall stays low")
def _imbalanced(spec):
    return ()  # it needs the labels: the runtime reports it from the training split (imbalance_warning)


def imbalance_warning(spec, counts, classes, what: str = "the training split") -> Diagnostic | None:
    """DL113 for labels with `counts` samples per class (`what`: whose), when the loss is unweighted."""
    loss = spec["loss"]
    if "class_weight" not in LOSSES[loss.kind].attrs or loss.get("class_weight") is not None:
        return None
    present = [(c, n) for c, n in zip(classes, counts) if n > 0]
    if len(present) < 2:
        return None
    (small, n_small), (large, n_large) = min(present, key=lambda p: p[1]), max(present, key=lambda p: p[1])
    if n_large < IMBALANCE_RATIO * n_small:
        return None
    r = RULES["DL113"]
    span = loss.span if loss.written else (spec.settings["data"].span if "data" in spec.settings else None)
    if _silenced(spec, span, r.code):
        return None
    return Diagnostic("warning", f"{what} has {n_large} samples of class {large} and {n_small} of "
                                 f"class {small}: {r.why}", span,
                      f"weigh the loss: loss {loss.kind} class_weight=balanced", r.code)
