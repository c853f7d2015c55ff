"""Writes the fine-tuning pair's data from scikit-learn's digits (8x8 images):

    digits04.npz   every image of the digits 0-4 (the base run's data)
    digits59.npz   every image of the digits 5-9, labeled by name: "digit5" ... "digit9" (the specs keep 10 % for
                   training and validation and test on the other 90 %: a small subset to learn from)

    python specs/experiments/finetune/make_data.py
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

here = Path(__file__).resolve().parent
d = load_digits()
x, y = d.images.astype(np.float32)[:, None], d.target
low = y < 5
np.savez_compressed(here / "digits04.npz", x=x[low], y=y[low])
np.savez_compressed(here / "digits59.npz", x=x[~low], y=np.char.add("digit", y[~low].astype(str)))
print(f"digits04.npz: {low.sum()} images; digits59.npz: {(~low).sum()} images")
