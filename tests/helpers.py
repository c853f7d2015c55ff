"""Spec texts and file builders several test files share (fixtures are in conftest.py)."""

from __future__ import annotations

import io
import zipfile

import numpy as np

NAME_TOO_LONG = "a" * 300  # past every file system's 255-byte name limit
SPIRAL_DATA = "data spiral n=60\ntrain epochs=1 batch=16 seed=0\n"  # data and train lines for a spiral model

# a small MLP on scikit-learn's digits, one epoch
DIGITS_MLP = """model m {
    input 64
    dense 16 relu
    dense 10 softmax
}
data digits test=0.2 standardize
optimizer adam lr=1e-3
train epochs=1 batch=64 seed=0
"""

# digits with two hidden layers, the second with dropout (what the hints and diagnose tests edit)
DIGITS_DROPOUT_MLP = """model m {
    input 64
    dense 32 relu
    dense 128 relu dropout=0.4
    dense 10 softmax
}
data digits standardize
optimizer adam lr=1e-3
train epochs=1 batch=64 seed=0
"""


def spiral_text(model: str = "m") -> str:
    """A model for the spiral set (2 features, 3 classes) with SPIRAL_DATA."""
    return f"model {model} {{\n input 2\n dense 8 relu\n dense 3 softmax\n}}\n{SPIRAL_DATA}"


def npz_with_header(path, arrays, claims):
    """An .npz whose .npy headers claim the shapes in `claims` over the data of `arrays`."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, a in arrays.items():
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(header, {"descr": a.dtype.str, "fortran_order": False,
                                                          "shape": claims.get(k, a.shape)})
            z.writestr(f"{k}.npy", header.getvalue() + a.tobytes())
