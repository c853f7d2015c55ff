"""Figures written into run folders: the loss and accuracy curves, and the helpers other plots use."""

from __future__ import annotations

import io
import math
from pathlib import Path

from .files import atomic_write_bytes


def new_figure(figsize):
    """A matplotlib Figure drawn by the Agg canvas: no pyplot (its import and global state cost
    about 0.2 s at start-up), no screen needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(path: Path, fig, tight: bool = True) -> None:
    """Write a matplotlib figure as PNG, atomically; laid out by tight_layout (0.3 s: it measures every
    tick label) unless `tight` is False (the figure set its margins)."""
    if tight:
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    atomic_write_bytes(path, buf.getvalue())


def save_curves(path: Path, histories: dict[str, list[dict]], title: str = "") -> None:
    """Loss and accuracy per epoch; several runs side by side share the axes."""
    has_acc = any(r.get("accuracy") is not None for h in histories.values() for r in h)
    fig = new_figure((11 if has_acc else 6, 4.5))
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)
    for label, h in histories.items():
        ep = [r["epoch"] for r in h]
        line, = axes[0][0].plot(ep, [_plottable(r["loss"]) for r in h], label=f"{label} train")
        if any(r.get("val_loss") is not None for r in h):
            axes[0][0].plot(ep, [_plottable(r.get("val_loss")) for r in h], "--", color=line.get_color(),
                            label=f"{label} validation")
        if has_acc:
            axes[0][1].plot(ep, [r.get("accuracy") for r in h], color=line.get_color(), label=f"{label} train")
            if any(r.get("val_accuracy") is not None for r in h):
                axes[0][1].plot(ep, [r.get("val_accuracy") for r in h], "--", color=line.get_color(),
                                label=f"{label} validation")
    title_lines = 0
    if title:  # the whole title, wrapped above the plots (a comparison of long names is not cut)
        import textwrap
        wrapped = textwrap.wrap(title, 90)
        title_lines = len(wrapped)
        fig.suptitle("\n".join(wrapped), fontsize=10)
    axes[0][0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[0][0].set_yscale("log")
    axes[0][0].legend(fontsize=8)
    if has_acc:
        axes[0][1].set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        axes[0][1].legend(fontsize=8)
    # fixed margins in inches (tick labels here are short: epochs, losses, accuracies), not tight_layout
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=1.0 / width, right=1 - 0.2 / width, bottom=0.55 / height, wspace=0.25,
                        top=1 - (0.4 + 0.18 * title_lines) / height)
    save_figure(path, fig, tight=False)


def _plottable(v):
    return v if v is None or math.isfinite(v) else None
