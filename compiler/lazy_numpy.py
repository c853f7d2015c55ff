"""`np` for the modules `dlc check` imports. NumPy takes about 0.1 s to import and
checking a spec never computes anything, so it is loaded on first use:

    from ..lazy_numpy import lazy_numpy
    np = lazy_numpy(__name__)

The first attribute read imports NumPy and rebinds `np` in every module that asked,
so hot paths afterwards use the real module with no indirection.
(`importlib.util.LazyLoader` does not defer `import numpy`: NumPy's import reads
its own `__spec__`, which loads it at once.)
"""

from __future__ import annotations

import sys

_modules: list[str] = []


class _LazyNumpy:
    def __getattr__(self, name: str):
        import numpy

        for module in _modules:
            if getattr(sys.modules.get(module), "np", None) is self:
                setattr(sys.modules[module], "np", numpy)
        return getattr(numpy, name)


_proxy = _LazyNumpy()


def lazy_numpy(module: str) -> _LazyNumpy:
    _modules.append(module)
    return _proxy
