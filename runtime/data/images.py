"""Image files as a data set: a folder with one sub-folder per class (`data "photos/"`), or a CSV that
lists `path,label` rows, read through Pillow (a dependency of dlc, as of matplotlib).

- Listing: which files, their labels and class names (image_listing.py).
- Decoding: the EXIF orientation is applied (a phone's portrait photo stands up; Keras and
  torchvision do not do this), then the image is converted to `channels` (1: Pillow's "L" luminance,
  3: "RGB"; transparency is dropped) and brought to `size` by `fit`: `stretch` resizes to HxW
  ignoring the aspect, `crop` scales the shorter side and cuts the centre (Pillow's ImageOps.fit),
  `pad` scales the longer side and pads with black (ImageOps.pad); resampling is Pillow's bilinear,
  which averages when shrinking. An animated GIF or WebP gives its first frame.
- Refused unread: an image whose header says more than MAX_PIXELS pixels (a decompression bomb).
- Cache: decoded images are written once into the decoded-image cache (`image_cache.py`: verified by
  a digest before each use), named by a hash of the listing (paths, sizes, modification times) and the
  decoding settings, and read back memory-mapped: a second run (or epoch, or eval) decodes nothing.
"""

from __future__ import annotations

import hashlib
import mmap
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlc.compiler.memory import fmt_bytes
from dlc.runtime.data import image_cache
from dlc.runtime.data.files import DataError
from dlc.runtime.data.image_listing import Listing, _is_dir, _shown, listing, refuse_empty_classes

MAX_PIXELS = 64 * 1024 * 1024  # per image, from its header: more is refused as a decompression bomb
HEADER_LIMIT = 100_000  # dlc check reads every image's header up to this many images, then a sample of this many


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise DataError('reading image files needs Pillow, which is not installed: pip install pillow') \
            from None
    return Image, ImageOps


# ---- headers (dlc check) and decoding ------------------------------------------------------------------
def _open(path: Path, root: Path):
    """An opened (not yet decoded) image, or DataError naming the file."""
    Image, _ = _pil()
    try:
        im = Image.open(path)
    except Image.DecompressionBombError as e:
        raise DataError(f"{_shown(path, root)}: {_bomb(str(e))}") from None
    except Image.UnidentifiedImageError:
        raise DataError(f"{_shown(path, root)} is not an image Pillow can read (its name says "
                        f"{path.suffix.lower()[1:].upper()})") from None
    except OSError as e:
        raise DataError(f"cannot read {_shown(path, root)}: {e.strerror or e}") from None
    w, h = im.size
    if w * h > MAX_PIXELS:
        im.close()
        raise DataError(f"{_shown(path, root)} is {w:,}x{h:,} pixels; dlc decodes images of at most "
                        f"{MAX_PIXELS // 2**20} M pixels (a decompression bomb?)")
    return im


def _bomb(message: str) -> str:
    import re
    m = re.search(r"\((\d+) pixels\)", message)
    size = f"{int(m.group(1)):,} pixels" if m else "too many pixels"
    return f"{size}; dlc decodes images of at most {MAX_PIXELS // 2**20} M pixels (a decompression bomb?)"


@dataclass
class Survey:
    """What `dlc check` says of an image source from its listing and a sample of headers."""

    listing: Listing
    sizes: Counter  # (w, h) -> count among the sampled headers
    modes: Counter
    sampled: int
    sample_shape: tuple | None = None  # (C, H, W) as decoded, and the training batch: what is resident
    batch: int | None = None

    def lines(self) -> list[str]:
        counts = np.bincount(self.listing.labels, minlength=len(self.listing.classes))
        shown = ", ".join(f"{c} {n:,}" for c, n in zip(self.listing.classes[:12], counts[:12]))
        more = f", ... ({len(self.listing.classes)} classes)" if len(self.listing.classes) > 12 else ""
        sizes = ", ".join(f"{w}x{h} ({n:,})" for (w, h), n in self.sizes.most_common(4))
        n = len(self.listing.files)
        read = (f"all {self.sampled:,}" if self.sampled == n else f"{self.sampled:,}") + " headers" + (
            f" (a sample: more than {HEADER_LIMIT:,} images)" if n > HEADER_LIMIT else "")
        out = [f"images: {n:,} in {len(self.listing.classes)} classes ({shown}{more}); "
               f"sizes in {read}: {sizes}{' ...' if len(self.sizes) > 4 else ''}; "
               f"modes: {', '.join(f'{m} ({n:,})' for m, n in self.modes.most_common())}"]
        if self.listing.skipped:
            out.append(f"skipped (skip_bad): {len(self.listing.skipped)} file(s), first "
                       f"{_shown(self.listing.skipped[0][0], self.listing.root)}")
        if self.sample_shape is not None:
            per = int(np.prod(self.sample_shape))
            batch = min(self.batch or len(self.listing.files), len(self.listing.files))
            out.append(f"data in memory: one batch at a time ({fmt_bytes(batch * per * 4)} float32 per batch of "
                       f"{batch}, and the next one read ahead); the decoded images stay on disk in the cache "
                       f"({fmt_bytes(len(self.listing.files) * per)} uint8)")
        return out


_SURVEYS: dict = {}  # (folder, options) -> (its folders' modification times, Survey): the language server's re-checks


def _folder_times(path: Path):
    """The modification times of a folder and of the folders in it: they change when a file is added,
    removed or renamed in them (not when one is rewritten in place)."""
    try:
        return (path.stat().st_mtime_ns,) + tuple(sorted((e.name, e.stat().st_mtime_ns) for e in os.scandir(path)
                                                         if _is_dir(e)))
    except OSError:
        return None


def survey(path: Path, options: dict) -> Survey:
    """The listing and every image's header (a sample of HEADER_LIMIT past that many, spread over the set);
    a bad header is refused by name.
    A folder whose folders have not changed since the last survey in this process is not listed again
    (26,000 files take 0.3 s to list: too long for a re-check on every edit)."""
    key = (str(path), repr(sorted(options.items())))
    times = _folder_times(path) if path.is_dir() else None
    if times is not None and key in _SURVEYS and _SURVEYS[key][0] == times:
        return _SURVEYS[key][1]
    found_survey = _survey(path, options)
    if times is not None:
        if len(_SURVEYS) > 8:
            _SURVEYS.clear()
        _SURVEYS[key] = (times, found_survey)
    return found_survey


def _survey(path: Path, options: dict) -> Survey:
    found = listing(path, options)
    picks = np.unique(np.linspace(0, len(found.files) - 1, min(HEADER_LIMIT, len(found.files))).astype(int))
    sizes: Counter[tuple[int, int]] = Counter()
    modes: Counter[str] = Counter()
    bad: list = []
    for i in picks:
        try:
            im = _open(found.files[i], found.root)
        except DataError as e:
            if not options.get("skip_bad"):
                raise
            found.skipped.append((found.files[i], str(e)))
            bad.append(i)
            continue
        with im:
            sizes[im.size] += 1
            modes[im.mode] += 1
    if bad:  # left out, as training will leave them out
        keep = np.ones(len(found.files), bool)
        keep[bad] = False
        found.files = [f for f, k in zip(found.files, keep) if k]
        found.labels = found.labels[keep]
        refuse_empty_classes(found)
    return Survey(found, sizes, modes, len(picks) - len(bad))


def _deep_to_8_bits(im, path: Path, root: Path):
    """A 16-bit grey image (Pillow's I;16 modes, or I holding 0..65535) scaled to 8 bits (v / 257,
    rounded: 65535 -> 255), as Pillow's convert("L") would clip every value past 255 to white."""
    if not (im.mode.startswith("I;16") or im.mode == "I"):
        return im
    Image, _ = _pil()
    a = np.asarray(im)
    if a.size and (a.min() < 0 or a.max() > 65535):
        raise DataError(f"{_shown(path, root)} holds 32-bit grey values ({a.min()}..{a.max()}); dlc reads 8- and 16-bit "
                        "images: save it as a 16-bit PNG")
    return Image.fromarray(np.rint(a.astype(np.float64) / 257).astype(np.uint8), "L")


def _decode_one(path: Path, root: Path, channels: int, size: tuple[int, int], fit: str) -> np.ndarray:
    Image, ImageOps = _pil()
    with _open(path, root) as im:
        try:
            im.seek(0)
            im.load()
            im = ImageOps.exif_transpose(im)
            im = _deep_to_8_bits(im, path, root)
            im = im.convert("L" if channels == 1 else "RGB")
            h, w = size
            if fit == "crop":
                im = ImageOps.fit(im, (w, h), method=Image.BILINEAR)
            elif fit == "pad":
                im = ImageOps.pad(im, (w, h), method=Image.BILINEAR, color=0)
            else:
                im = im.resize((w, h), Image.BILINEAR)
        except (OSError, ValueError, SyntaxError) as e:  # truncated, corrupt data (Pillow's decoders raise these)
            raise DataError(f"{_shown(path, root)} is damaged: {e}") from None
        a = np.asarray(im, np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


def decode(found: Listing, channels: int, size: tuple[int, int], fit: str, skip_bad: bool,
           out: np.ndarray, workers: int | None = None) -> np.ndarray:
    """Decode every listed image into `out` (N, C, H, W) uint8 (a memory map, so a set larger than
    memory streams to disk), on a pool of threads (Pillow decodes without the GIL). -> a mask of the
    images decoded; a bad one raises DataError unless skip_bad (then it is False in the mask)."""
    ok = np.ones(len(found.files), bool)
    workers = workers or min(8, os.cpu_count() or 1)

    def one(i):
        try:
            out[i] = _decode_one(found.files[i], found.root, channels, size, fit)
        except DataError as e:
            if not skip_bad:
                raise
            ok[i] = False
            found.skipped.append((found.files[i], str(e)))

    step = max(1, (64 << 20) // max(1, int(np.prod(out.shape[1:]))))  # 64 MB of images, then flushed
    with ThreadPoolExecutor(workers) as pool:
        for start in range(0, len(found.files), step):
            for _ in pool.map(one, range(start, min(start + step, len(found.files)))):
                pass
            _write_back(out)
    return ok


def _write_back(out: np.ndarray) -> None:
    """Send the pages written into a memory map to its file and out of memory: a map otherwise keeps
    every page it touched resident (counted in the process's memory) until it is closed."""
    view = getattr(out, "_mmap", None)  # np.memmap's own map (a private attribute: looked up, not assumed)
    if isinstance(out, np.memmap) and view is not None and hasattr(view, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        out.flush()
        view.madvise(mmap.MADV_DONTNEED)


def image_options(options: dict, input_shape: tuple | None, path: Path | None = None) -> tuple[int, tuple[int, int]]:
    """(channels, (H, W)) for image files: the data line's channels= and size=, else the model input's."""
    image = tuple(input_shape) if input_shape is not None and len(input_shape) == 3 else None
    if image is None and options.get("size") is None and path is not None:
        what = f"{path.name} is a folder; dlc reads a folder as image files (one sub-folder per class)" \
            if path.is_dir() else f"{path.name} holds image files"
        raise DataError(f"{what}, but the model's input is {'x'.join(map(str, input_shape or ()))}, not an image: "
                        "name a data file (.npz, .csv or IDX), or give the images' size=HxW and reshape= to the input")
    channels = options.get("channels") or (image[0] if image and image[0] in (1, 3) else None)
    if channels is None:
        channels = 3
    if channels not in (1, 3):
        raise DataError(f"channels={channels}: image files are read as 1 (grey) or 3 (RGB) channels")
    size = options.get("size")
    if size is None:
        if image is None:
            raise DataError("image files need size=HxW: the model's input is not an image "
                            f"({'x'.join(map(str, input_shape)) if input_shape else 'unknown'})")
        size = image[1:]
    size = tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))
    if len(size) != 2:
        raise DataError(f"size={'x'.join(map(str, size))}: an image size is HxW (or one number for a square)")
    return channels, size


def fingerprint(path: Path, options: dict | None = None) -> str:
    """What a run records of an image folder or list: the sha256 of its listing."""
    return listing(path, options or {}).fingerprint()


def load_images(path: Path, options: dict, channels: int, size: tuple[int, int], need_labels: bool = True,
                recorded: str | None = None):
    """(x uint8 (N, C, H, W), memory-mapped from the cache; y (None for images without labels); class
    names; the listing; the rows of x that hold the listing's images) for an image folder, list or file:
    decoded once, then read from the cache. `recorded`: the listing's sha256 when a run was trained on
    it (a folder that changed since is refused before anything is decoded)."""
    from dlc.version import __version__
    fit = options.get("fit") or "stretch"
    skip_bad = bool(options.get("skip_bad"))
    found = listing(path, options, need_labels)
    sha256 = found.fingerprint()
    if recorded is not None and sha256 != recorded:
        raise DataError(f"{path} changed since this run was trained (its listing of names, sizes and modification "
                        f"times: sha256 {recorded[:12]}... then, {sha256[:12]}... now)")
    key = hashlib.sha256(f"{sha256}|{channels}|{size}|{fit}|{skip_bad}|{__version__}".encode()).hexdigest()[:24]
    shape = (len(found.files), channels) + tuple(size)
    folder = image_cache.cache_dir()
    if folder is None:
        x = np.empty(shape, np.uint8)
        return _kept(x, found, decode(found, channels, size, fit, skip_bad, x))
    hit = image_cache.read(folder, key, shape, skip_bad)
    if hit is None:
        hit = image_cache.write(folder, key, shape, lambda x: decode(found, channels, size, fit, skip_bad, x))
    x, ok = hit
    return _kept(x, found, ok)


def _kept(x, found: Listing, ok: np.ndarray):
    """(x as decoded -- every listed image, memory-mapped --, y, classes, the listing, the rows kept):
    a file that could not be decoded under skip_bad is left out by its row, not by copying x."""
    if not ok.all():
        noted = {f for f, _ in found.skipped}
        found.skipped += [(f, "cannot be decoded") for f, k in zip(found.files, ok) if not k and f not in noted]
        if not ok.any():
            raise DataError(f"no image of {found.root} could be read ({len(found.skipped)} skipped)")
    rows = np.flatnonzero(ok)
    files = [found.files[i] for i in rows]
    labels = found.labels[rows] if found.classes else None
    found.files = files
    if labels is not None:
        found.labels = labels
        refuse_empty_classes(found)
    return x, labels, found.classes, found, rows
