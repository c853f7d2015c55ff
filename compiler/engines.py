"""The engines by name, with what each can do: the one table the train line's `engine=` choices, the
CLI's `--engine`, the compiler's refusals (compiler/spec.py) and the runtime's import
(runtime/engine.py) read. The compiler imports no engine: `implementation` is imported when chosen."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineInfo:
    name: str
    implementation: str  # "module:class" of its runtime.engine.Engine subclass
    doc: str
    devices: bool = False  # takes train device= (cpu, cuda, cuda:N, mps)
    gradient_free: bool = False  # runs optimizers that use no gradients (optimizer genetic)
    distributed: bool = False  # runs under torchrun, one process per device


ENGINES: dict[str, EngineInfo] = {e.name: e for e in [
    EngineInfo("numpy", "dlc.runtime.numpy_engine.engine:NumpyEngine",
               "the reference: the IR interpreted with NumPy on the CPU (the default)", gradient_free=True),
    EngineInfo("torch", "dlc.runtime.torch_engine.engine:TorchEngine",
               "the IR lowered to PyTorch: GPUs and torchrun (pip install \"dlc[torch]\")", devices=True,
               distributed=True),
]}
DEFAULT_ENGINE = "numpy"


def engine_info(name: str | None) -> EngineInfo:
    return ENGINES[name or DEFAULT_ENGINE]


def able(capability: str) -> list[str]:
    """The engines that can do `capability` (a field of EngineInfo), by name."""
    return [e.name for e in ENGINES.values() if getattr(e, capability)]
