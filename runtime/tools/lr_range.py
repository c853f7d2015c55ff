"""dlc diagnose's learning-rate range test (Leslie Smith's): one step per learning rate, growing
geometrically over a fresh init, the smoothed loss against the rate (lr_range.png), and the verdict on
the spec's rate."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dlc.compiler.spec import Spec
from dlc.runtime.data.splits import Splits
from dlc.runtime.tools.diagnose_probe import FAIL, OK, WARN, Check, fresh_model, training_batches


LR_TEST = (1e-6, 10.0, 120)  # from, to, steps


def lr_range_test(spec: Spec, splits: Splits) -> dict:
    """Leslie Smith's test: one step per learning rate, growing geometrically; stops when the loss explodes."""
    lr_from, lr_to, steps = LR_TEST
    step = fresh_model(spec, splits, regularize=True)
    batches = training_batches(spec, splits)
    factor = (lr_to / lr_from) ** (1 / (steps - 1))
    lrs, smooth, avg, best = [], [], 0.0, math.inf
    diverged_at = None  # the rate at which the loss stopped being finite
    for i in range(steps):
        lr = lr_from * factor ** i
        xb, yb = next(batches)
        loss, _ = step.step(xb, yb, lr)
        if not math.isfinite(loss):
            diverged_at = lr
            break
        avg = 0.9 * avg + 0.1 * loss
        value = avg / (1 - 0.9 ** (i + 1))
        lrs.append(lr)
        smooth.append(value)
        best = min(best, value)
        if value > 4 * best:
            break
    k = int(np.argmin(smooth)) if smooth else 0
    blowup = next((lr for i, (lr, v) in enumerate(zip(lrs, smooth)) if i > k and v > 2 * best), diverged_at)
    return {"lr": lrs, "loss": smooth, "min_loss_lr": lrs[k] if lrs else None,
            "suggested_lr": lrs[k] / 10 if lrs else None, "blowup_lr": blowup,  # None: no blow-up in the sweep
            "start_loss": smooth[0] if smooth else None}


def check_lr(curve: dict, lr: float) -> Check:
    if not curve["lr"]:
        return Check("lr range test", FAIL, "the loss is not finite even at lr=1e-6", "check the data and the init")
    sug, at_min, blow = curve["suggested_lr"], curve["min_loss_lr"], curve["blowup_lr"]
    drop = curve["start_loss"] - min(curve["loss"])
    where = f"blows up from {blow:.1e}" if blow is not None else f"no blow-up up to {curve['lr'][-1]:.1e}"
    finding = f"lowest loss at lr {at_min:.1e}, {where}; suggested lr {sug:.1e}, the spec's {lr:g}"
    if drop <= 0.02 * curve["start_loss"]:
        return Check("lr range test", FAIL, finding + "; the loss hardly falls at any rate",
                     "the net does not learn at any learning rate: check the init and the data")
    if blow is not None and lr >= blow:
        return Check("lr range test", FAIL, finding + ": the spec's lr is where the loss explodes",
                     f"use lr={sug:.1g}")
    if lr > at_min:
        return Check("lr range test", WARN, finding + ": past the loss minimum", f"try lr={sug:.1g}")
    if lr < sug / 100:
        return Check("lr range test", WARN, finding + ": far below the useful range, training will crawl",
                     f"try lr={sug:.1g}")
    return Check("lr range test", OK, finding)


def save_lr_plot(path: Path, curve: dict, lr: float, title: str) -> None:
    from dlc.runtime.run_folder import new_figure, save_figure

    fig = new_figure((6, 4))
    ax = fig.subplots()
    ax.plot(curve["lr"], curve["loss"], label="smoothed training loss")
    ax.set_xscale("log")
    ax.axvline(lr, color="tab:red", ls="--", label=f"spec lr {lr:g}")
    if curve.get("suggested_lr"):
        ax.axvline(curve["suggested_lr"], color="tab:green", ls=":", label=f"suggested {curve['suggested_lr']:.1e}")
    ax.set(xlabel="learning rate", ylabel="loss", title=f"{title}: learning-rate range test")
    ax.legend(fontsize=8)
    save_figure(path, fig)
