"""The weight-init scheme registry: each scheme declares its distribution, keys and scale formula.
Biases start at zero.

fan_in = inputs per unit (dense: in; conv: C*kh*kw); fan_out = outputs per input
(dense: out; conv: O*kh*kw). Normals are plain (not truncated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from .attrs import Attr
from .ops.base import registrar


class InitScheme:
    """A weight-init scheme: its distribution (constant, normal or uniform), its keys, and its scale
    (the constant, the normal's std or the uniform's limit) as a formula of fan_in and fan_out."""

    name: ClassVar[str]
    distribution: ClassVar[str]
    attrs: ClassVar[dict[str, Attr]] = {}
    formula: ClassVar[str]

    def scale(self, fan_in: int, fan_out: int, args: dict) -> float:
        raise NotImplementedError


INITS: dict[str, InitScheme] = {}
register = registrar(INITS, "init scheme")


def _scheme(name: str, distribution: str, formula: str, scale, attrs: dict | None = None):
    cls = type(name, (InitScheme,), {"name": name, "distribution": distribution, "formula": formula,
                                     "attrs": attrs or {}, "scale": lambda self, fi, fo, a: scale(fi, fo, a)})
    return register(cls)


_scheme("zeros", "constant", "0", lambda fi, fo, a: 0.0)
_scheme("ones", "constant", "1", lambda fi, fo, a: 1.0)
_scheme("constant", "constant", "value", lambda fi, fo, a: a["value"], {"value": Attr("float", 0.0)})
_scheme("normal", "normal", "std", lambda fi, fo, a: a["std"], {"std": Attr("float", 0.01, min=0)})
_scheme("uniform", "uniform", "limit", lambda fi, fo, a: a["limit"], {"limit": Attr("float", 0.05, min=0)})
_scheme("xavier_normal", "normal", "sqrt(2/(fan_in+fan_out))", lambda fi, fo, a: math.sqrt(2 / (fi + fo)))
_scheme("xavier_uniform", "uniform", "sqrt(6/(fan_in+fan_out))", lambda fi, fo, a: math.sqrt(6 / (fi + fo)))
_scheme("he_normal", "normal", "sqrt(2/fan_in)", lambda fi, fo, a: math.sqrt(2 / fi))
_scheme("he_uniform", "uniform", "sqrt(6/fan_in)", lambda fi, fo, a: math.sqrt(6 / fi))
_scheme("lecun_normal", "normal", "sqrt(1/fan_in)", lambda fi, fo, a: math.sqrt(1 / fi))
_scheme("lecun_uniform", "uniform", "sqrt(3/fan_in)", lambda fi, fo, a: math.sqrt(3 / fi))
# an embedding table: N(0, std) with row 0 -- the padding id's -- zero (torch's padding_idx)
_scheme("padded_normal", "padded_normal", "std; row 0 (the padding id) 0", lambda fi, fo, a: a["std"],
        {"std": Attr("float", 1.0, min=0)})
# an orthogonal matrix (QR of a normal one; rows or columns orthonormal), times gain: a recurrent weight's default
_scheme("orthogonal", "orthogonal", "gain", lambda fi, fo, a: a["gain"], {"gain": Attr("float", 1.0, min=0)})
# an LSTM's bias (gates i, f, g, o): 1 on the forget gate, 0 elsewhere (Jozefowicz et al. 2015; Keras)
_scheme("unit_forget", "unit_forget", "1", lambda fi, fo, a: 1.0)

# The init chosen when the spec names none, by the activation that follows the layer.
AUTO_BY_FAMILY = {"he": "he_normal", "xavier": "xavier_uniform", "lecun": "lecun_normal"}


@dataclass(frozen=True)
class InitSpec:
    name: str
    args: dict = field(default_factory=dict)
    auto: bool = False  # chosen by dlc, not written in the spec

    def scale(self, fan_in: int, fan_out: int) -> float:
        return INITS[self.name].scale(max(fan_in, 1), max(fan_out, 1), self.args)

    def describe(self, fan_in: int, fan_out: int) -> str:
        dist, formula = INITS[self.name].distribution, INITS[self.name].formula
        s = self.scale(fan_in, fan_out)
        if dist == "orthogonal":
            return f"{self.name} (gain {s:g})" + (" (auto)" if self.auto else "")
        if dist == "unit_forget":
            return "unit_forget (forget gate 1, others 0)" + (" (auto)" if self.auto else "")
        if dist == "padded_normal":
            return f"padded_normal N(0, {s:g}), row 0 zero" + (" (auto)" if self.auto else "")
        if dist == "constant":
            text = f"{self.name} = {s:g}"
        else:
            concrete = formula.replace("fan_in", str(fan_in)).replace("fan_out", str(fan_out))
            if formula in ("std", "limit"):
                concrete = f"{s:g}"
            else:
                concrete = f"{concrete}={s:.3g}"
            text = f"{self.name} N(0, {concrete})" if dist == "normal" else f"{self.name} U(±{concrete})"
        return text + (" (auto)" if self.auto else "")

    def is_constant(self) -> bool:
        return INITS[self.name].distribution == "constant"


def fixed(role_init: str) -> InitSpec:
    """ParamSpec.init strings other than 'auto': zeros, ones, constant:V."""
    if role_init.startswith("constant:"):
        return InitSpec("constant", {"value": float(role_init.split(":", 1)[1])})
    return InitSpec(role_init, {k: a.default for k, a in INITS[role_init].attrs.items()})  # orthogonal: gain 1
