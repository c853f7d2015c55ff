"""`dlc check SPEC --augment-preview out.png`: what the net sees. A grid of training images: each row
one image, its first column as stored, the others as the spec's augment line changes it in the first
epochs' batches (the same generator as training: the train seed, epochs 0, 1, ...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError

ROWS, COLUMNS = 6, 8


def write_preview(spec, path) -> Path:
    from dlc.runtime.data.augment import augmenting
    from dlc.runtime.data.splits import prepare
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise DLError(Diagnostic("error", f"--augment-preview {path}: the preview is a .png picture",
                                 hint=f"e.g. --augment-preview {path.with_suffix('.png')}"))
    aug = spec["augment"]
    if not augmenting(aug.values):
        raise DLError(Diagnostic("error", "--augment-preview: the spec has no augment line, so the net sees the "
                                          "images as stored", hint="add e.g. augment flip_x crop=4 rotate=10"))
    if len(spec.graph.input_shape) != 3:
        raise DLError(Diagnostic("error", f"--augment-preview draws images; the model's input is "
                                          f"{'x'.join(map(str, spec.graph.input_shape))}"))
    splits = prepare(spec)
    augment = splits.augment
    assert augment is not None, "a spec without an augment line is refused above"
    raw = splits.preprocess.invert(splits.x_train[:ROWS])
    views = [raw] + [augment(raw, augment.rng(spec["train"]["seed"], k)) for k in range(COLUMNS - 1)]
    from dlc.runtime.run_folder import new_figure, save_figure
    fig = new_figure((COLUMNS * 1.2, len(raw) * 1.2 + 0.4))
    axes = fig.subplots(len(raw), COLUMNS, squeeze=False)
    low, high = augment.low, augment.high
    for r in range(len(raw)):
        for c, view in enumerate(views):
            img = (view[r] - low) / ((high - low) or 1)
            ax = axes[r][c]
            if img.shape[0] == 1:
                ax.imshow(img[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:
                ax.imshow(np.clip(np.moveaxis(img[:3], 0, -1), 0, 1), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title("stored" if c == 0 else f"draw {c}", fontsize=8)
    from dlc.compiler.summary import augment_text
    fig.suptitle(f"augment {augment_text(spec)}", fontsize=9)
    save_figure(path, fig)
    return path
