"""`augment ...`: random changes to each training batch, never to validation, test, eval or export.

Each operation works on raw inputs (before the data line's scale/center/standardize, which is applied
after it, as it is to every input), vectorised over the batch; in this order:

    flip_x, flip_y   x[..., ::-1] (columns) / x[..., ::-1, :] (rows), each image with probability 1/2
    crop=P, shift=F  a translation by (dy, dx), each uniform over the whole numbers in [-m, m] where
                     m = P for crop (torchvision's RandomCrop(padding=P)) plus round(F * H) (rows) and
                     round(F * W) (columns) for shift (Keras' RandomTranslation); uncovered pixels get
                     the fill
    rotate=D         a rotation about the centre by an angle uniform in [-D, D] degrees, bilinear
                     interpolation, the fill outside
    brightness=B     x + b * R, b uniform in [-B, B] per image
    contrast=C       (x - mean) * c + mean, c uniform in [1 - C, 1 + C] per image, mean per image and channel
    cutout=P         a P x P square at a uniform random centre (it may reach past the border) set to the fill
    noise=S          x + e, e ~ N(0, (S * R)^2) per value

R is the training split's value range (max - min); the fill is each channel's training mean (0 after
center or standardize; torchvision fills 0, i.e. black). After brightness, contrast and noise the
values are clipped to the training split's [min, max], so the net never sees values the data cannot
hold.

The random draws come from a generator seeded by (train seed, epoch), drawn batch after batch in
order: a run is reproducible, and a resumed run (which restarts at an epoch boundary) draws exactly
what the uninterrupted one drew.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

STREAM = 0xA09  # keeps augmentation's draws apart from every other generator seeded by the train seed


def augmenting(values: dict) -> bool:
    """Does an augment line (its keys, defaults included) change anything?"""
    return any(bool(v) for v in values.values())


@dataclass
class Augment:
    values: dict  # the augment line's keys
    low: float  # the training split's raw minimum and maximum
    high: float
    fill: Any  # (C, 1, 1): each channel's raw training mean (images), or () for vectors

    @classmethod
    def fit(cls, values: dict, x_raw_chunks) -> "Augment":
        """Statistics of the raw training split, read chunk by chunk (never the whole set at once)."""
        low, high, count = np.inf, -np.inf, 0
        sums: Any = None
        for chunk in x_raw_chunks:
            chunk = np.asarray(chunk, np.float64)
            low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
            if chunk.ndim == 4:  # per channel
                s, count = chunk.sum(axis=(0, 2, 3)), count + chunk.shape[0] * chunk.shape[2] * chunk.shape[3]
            else:
                s, count = np.array(chunk.sum()), count + chunk.size
            sums = s if sums is None else sums + s
        mean = sums / max(count, 1)
        fill = mean.reshape(-1, 1, 1).astype(np.float32) if mean.ndim == 1 else np.float32(0)
        return cls(dict(values), low, high, fill)

    def rng(self, seed: int, epoch: int) -> np.random.Generator:
        return np.random.default_rng([int(seed), STREAM, int(epoch)])

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """An augmented copy of the raw batch x (N, ...), float32."""
        v = self.values
        x = np.array(x, np.float32, copy=True)
        n = len(x)
        span = self.high - self.low
        if x.ndim == 4:
            h, w = x.shape[2:]
            if v.get("flip_x"):
                flip = rng.random(n) < 0.5
                x[flip] = x[flip][..., ::-1]
            if v.get("flip_y"):
                flip = rng.random(n) < 0.5
                x[flip] = x[flip][..., ::-1, :]
            crop, shift = int(v.get("crop") or 0), float(v.get("shift") or 0)
            my, mx = crop + round(shift * h), crop + round(shift * w)
            if my or mx:
                x = self._translate(x, rng.integers(-my, my + 1, n), rng.integers(-mx, mx + 1, n))
            if v.get("rotate"):
                x = self._rotate(x, np.deg2rad(rng.uniform(-v["rotate"], v["rotate"], n)))
        clip = False
        if v.get("brightness"):
            x += (rng.uniform(-v["brightness"], v["brightness"], n) * span).astype(np.float32).reshape((n,) + (1,) * (x.ndim - 1))
            clip = True
        if v.get("contrast"):
            axes = tuple(range(2, x.ndim)) if x.ndim == 4 else tuple(range(1, x.ndim))
            mean = x.mean(axis=axes, keepdims=True)
            c = rng.uniform(1 - v["contrast"], 1 + v["contrast"], n).astype(np.float32).reshape((n,) + (1,) * (x.ndim - 1))
            x = (x - mean) * c + mean
            clip = True
        if x.ndim == 4 and v.get("cutout"):
            x = self._cutout(x, int(v["cutout"]), rng)
        if v.get("noise"):
            x += rng.normal(0, v["noise"] * span, x.shape).astype(np.float32)
            clip = True
        if clip:
            np.clip(x, self.low, self.high, out=x)
        return x

    def _translate(self, x, dy, dx):
        """out[i, :, r, c] = x[i, :, r - dy_i, c - dx_i], the fill where that is outside."""
        n, ch, h, w = x.shape
        my, mx = int(np.abs(dy).max()), int(np.abs(dx).max())
        padded = np.empty((n, ch, h + 2 * my, w + 2 * mx), np.float32)
        padded[...] = self.fill
        padded[:, :, my:my + h, mx:mx + w] = x
        rows = np.arange(h)[None, :] + my - dy[:, None]  # (N, H)
        cols = np.arange(w)[None, :] + mx - dx[:, None]  # (N, W)
        return padded[np.arange(n)[:, None, None, None], np.arange(ch)[None, :, None, None],
                      rows[:, None, :, None], cols[:, None, None, :]]

    def _rotate(self, x, theta):
        """Bilinear sampling of x rotated by theta about the image centre; the fill outside."""
        n, ch, h, w = x.shape
        cy, cx = (h - 1) / 2, (w - 1) / 2
        r, c = np.meshgrid(np.arange(h) - cy, np.arange(w) - cx, indexing="ij")
        cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
        src_r = cos * r[None] - sin * c[None] + cy  # the source of each output pixel: rotate back
        src_c = sin * r[None] + cos * c[None] + cx
        r0, c0 = np.floor(src_r).astype(np.int64), np.floor(src_c).astype(np.int64)
        fr, fc = (src_r - r0).astype(np.float32), (src_c - c0).astype(np.float32)
        fill = np.asarray(self.fill, np.float32).reshape(1, -1, 1, 1)
        out = np.zeros_like(x)
        batch = np.arange(n)[:, None, None]
        for dr, dc, weight in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
            rr, cc = r0 + dr, c0 + dc
            inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            values = x[batch, :, np.clip(rr, 0, h - 1), np.clip(cc, 0, w - 1)]  # (N, H, W, C)
            values = np.moveaxis(values, -1, 1)
            out += weight[:, None] * np.where(inside[:, None], values, fill)
        return out

    def _cutout(self, x, size, rng):
        n, ch, h, w = x.shape
        cy, cx = rng.integers(0, h, n), rng.integers(0, w, n)
        top, left = cy - size // 2, cx - size // 2
        rows = np.arange(h)[None, :]
        cols = np.arange(w)[None, :]
        in_r = (rows >= top[:, None]) & (rows < top[:, None] + size)  # (N, H)
        in_c = (cols >= left[:, None]) & (cols < left[:, None] + size)  # (N, W)
        mask = in_r[:, None, :, None] & in_c[:, None, None, :]
        return np.where(mask, self.fill, x).astype(np.float32)


def raw_chunks(x_pre: np.ndarray, invert, size: int = 4096):
    """The raw training inputs, `size` samples at a time (x_pre preprocessed; invert undoes that)."""
    for i in range(0, len(x_pre), size):
        yield invert(np.asarray(x_pre[i:i + size]))
