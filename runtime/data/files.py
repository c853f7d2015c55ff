"""Reading user data files safely: .npz (x and y), .csv (a label column), MNIST-format IDX.

Every malformed file is a `DataError` that names the file (and, for a CSV, the row and column
of the bad cell); pickles are never loaded. `peek` reads only what `dlc check` needs -- array
headers, a CSV's header and first rows, IDX headers -- without loading the inputs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import csv
import gzip
import io
import math
import os
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from dlc.compiler.files import not_regular
from dlc.compiler.lazy_numpy import lazy_numpy

if TYPE_CHECKING:
    import numpy as np
else:
    np = lazy_numpy(__name__)

IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CSV_SAMPLE_ROWS = 100


class DataError(Exception):
    """A data set that cannot be read or does not fit; the CLI reports it at the data line."""


class CompressedNpz(DataError):
    """An .npz past the memory limit whose x is deflated: it cannot be memory-mapped."""


def resolve_path(written: str, base_dir: Path | None) -> Path:
    """A data path as written in a spec: absolute, ~, or relative to the spec's folder (the
    current folder for a spec that is not a file)."""
    try:
        path = Path(written).expanduser()
    except RuntimeError:  # ~nosuchuser/...
        raise DataError(f"cannot resolve {written}: no such user's home folder") from None
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    return path


def _dims(shape) -> str:
    return "x".join(map(str, shape))


def reshape_refusal(reshape, per_sample: int, name: str) -> tuple[str, str]:
    """(message, hint) for reshape= whose size differs from the samples' (check time and run time alike)."""
    return (f"reshape={_dims(reshape)} needs {math.prod(reshape)} values per sample; {name} has {per_sample}",
            "write the input's shape, e.g. reshape=1x28x28")


def shape_refusal(got, want, name: str) -> tuple[str, str]:
    """(message, hint) for samples that do not fit the input layer; flat images get the reshape= fix."""
    hint = "change the input line or the data"
    if len(got) == 1 and len(want) == 3 and got[0] == math.prod(want):
        hint = f"the samples are flat: add reshape={_dims(want)} to the data line"
    elif str(name).lower().endswith(".csv") and len(got) == 1 and got[0] + 1 == math.prod(want):
        hint = (f"the CSV's last column was read as the label (the default), leaving {got[0]} features: a file "
                "without a label column needs a model input of its width; label=COLUMN names another")
    return f"{name} samples are {_dims(got)} but the model's input is {_dims(want)}", hint


def check_file(path: Path, what: str = "data file") -> Path:
    try:
        os.stat(path)
    except FileNotFoundError:
        raise DataError(f"no such {what}: {path}") from None
    except OSError as e:  # a name too long, a loop of links, a component that is a file ...
        raise DataError(f"cannot open the {what} {path}: {e.strerror or e}") from None
    kind = not_regular(path)
    if kind == "a folder":
        raise DataError(f"{path} is a folder; the {what} must be a file (.npz, .csv or IDX)")
    if kind:
        raise DataError(f"{path} is {kind}, not a regular file; the {what} must be a file (.npz, .csv or IDX)")
    if path.suffix == ".npy":
        raise DataError(f"{path} is a single .npy array; dlc reads inputs and labels from one .npz",
                        )
    return path


# ---- .npz --------------------------------------------------------------------------------------

def read_npz(path: Path, need_labels: bool = True, limit: int | None | str = "default"):
    """(x, y or None) from an .npz holding arrays 'x' and 'y'."""
    from dlc.compiler.diagnostics import DLError
    from dlc.runtime.run_folder import load_npz

    try:
        arrays = load_npz(path, text=True, limit=limit)
    except DLError as e:
        raise DataError(e.diagnostics[0].message) from None
    if "x" not in arrays or (need_labels and "y" not in arrays):
        held = ", ".join(arrays) or "no arrays"
        raise DataError(f"{path} must hold arrays 'x'" + (" and 'y'" if need_labels else "") + f"; it holds {held}")
    for k in ("x", "y"):
        if k in arrays and arrays[k].ndim == 0:
            raise DataError(f"{path}: '{k}' is a single number (0-d array); it must hold one row per sample")
    if "lengths" in arrays:  # series of different lengths: NaN after each one's steps (runtime/data/series.py)
        arrays["x"] = series_with_lengths(arrays["x"], arrays["lengths"], path.name)
    return arrays["x"], arrays.get("y")


def series_with_lengths(x: np.ndarray, steps, name: str) -> np.ndarray:
    """An .npz's x (N, C, L) with its `lengths`: NaN after each series's steps (x's values there ignored)."""
    steps = np.asarray(steps)
    if x.ndim != 3:
        raise DataError(f"{name}: 'lengths' goes with sequences, x of N x C x L, not {'x'.join(map(str, x.shape))}")
    if steps.shape != (len(x),) or steps.dtype.kind not in "iu":
        raise DataError(f"{name}: 'lengths' must hold one whole number per series ({len(x)}), "
                        f"got {steps.dtype} of shape {steps.shape}")
    bad = (steps < 1) | (steps > x.shape[2])
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(f"{name}: series {k} has length {int(steps[k])}; lengths run from 1 to {x.shape[2]}, "
                        "the steps x holds")
    x = x.astype(np.float32, copy=True)
    x[np.broadcast_to(np.arange(x.shape[2])[None, None, :] >= steps[:, None, None], x.shape)] = np.nan
    return x


def _npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """{array name: (shape, dtype str)} from the .npy headers inside the zip, without the data."""
    from dlc.compiler.diagnostics import DLError
    from dlc.runtime.run_folder import npz_headers

    try:
        return {k: (shape, dtype.str) for k, (shape, dtype) in npz_headers(path, str(path)).items()}
    except DLError as e:
        raise DataError(e.diagnostics[0].message) from None


# ---- .csv --------------------------------------------------------------------------------------

def _csv_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    """(line number, cells) of the non-empty rows; a file that is not UTF-8 is refused by line."""
    raw, whole = (path.read_bytes(), True) if limit is None else _head_lines(path, limit + 1)
    if not whole:  # only complete lines: a character or a row cut at the end of the read is not read
        raw = raw[:raw.rfind(b"\n") + 1]
    text = utf8_text(path, raw, "the CSV")
    rows = []
    try:
        for row in csv.reader(io.StringIO(text, newline="")):
            if row and any(c.strip() for c in row):
                rows.append(row)
                if limit is not None and len(rows) >= limit:
                    break
    except csv.Error as e:
        raise DataError(f"{path}: not a valid CSV file ({e})") from None
    return rows


def utf8_text(path: Path, raw: bytes, what: str = "the file") -> str:
    """A file's bytes as text (a UTF-8 byte-order mark dropped); bytes that are not UTF-8 are refused by
    line, byte and offset."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); "
                        f"save {what} as UTF-8") from None


def _head_lines(path: Path, lines: int, chunk: int = 1 << 20) -> tuple[bytes, bool]:
    """(the file's first bytes holding at least `lines` complete lines, whether that is the whole
    file): read a MiB at a time, so a header of 200,000 columns is read whole, not cut."""
    parts: list[bytes] = []
    newlines = 0
    with open(path, "rb") as f:
        while newlines < lines:
            block = f.read(chunk)
            if not block:
                return b"".join(parts), True
            parts.append(block)
            newlines += block.count(b"\n")
    return b"".join(parts), False


def is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _csv_layout(path: Path, rows, label: str | None, n_features: int | None):
    """(has_header, column names, label column index or None)."""
    if not rows:
        raise DataError(f"{path} has no data rows")
    header = rows[0]
    has_header = any(not is_number(c) for c in header)
    names = [c.strip() for c in header] if has_header else [str(i) for i in range(len(header))]
    if label is None and n_features is not None and len(names) == n_features:
        return has_header, names, None  # only features: a file to predict on
    if label is None:
        return has_header, names, len(names) - 1
    if label in names:
        return has_header, names, names.index(label)
    if label.lstrip("-").isdigit() and -len(names) <= int(label) < len(names):
        return has_header, names, int(label) % len(names)
    if n_features is not None and len(names) == n_features:
        return has_header, names, None
    from dlc.compiler.diagnostics import did_you_mean
    guess = did_you_mean(label, names)
    shown = ", ".join(names[:8]) + (f", ... ({len(names)} columns)" if len(names) > 8 else "")
    raise DataError(f"{path} has no column '{label}'" + (f"; {guess}" if guess else f"; its columns are: {shown}"))


def read_csv(path: Path, label: str | None, n_features: int | None = None, limit: int | None = None):
    """(x float64 (N, F), labels as strings (N,) or None). A ragged row or a cell that is not a
    number is refused with its line and column. `limit` reads only the first rows (dlc check)."""
    rows = _csv_rows(path, limit)
    has_header, names, col = _csv_layout(path, rows, label, n_features)
    body = rows[1:] if has_header else rows
    if not body:
        raise DataError(f"{path} has a header but no data rows")
    width = len(names)
    first_line = 2 if has_header else 1
    for i, r in enumerate(body):
        if len(r) != width:
            raise DataError(f"{path}: row {first_line + i} has {len(r)} column(s), the header {width}")
    feat_cols = [j for j in range(width) if j != col]
    cells = [[r[j] for j in feat_cols] for r in body]
    try:
        x = np.array(cells, dtype=np.float64)
    except ValueError:
        for i, r in enumerate(cells):
            for j, v in enumerate(r):
                if not is_number(v):
                    raise DataError(f"{path}: row {first_line + i}, column '{names[feat_cols[j]]}': "
                                    f"'{v}' is not a number") from None
        raise
    y = None if col is None else np.array([r[col].strip() for r in body])
    return x, y


# ---- IDX ---------------------------------------------------------------------------------------

def _open_maybe_gzip(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _idx_header(path: Path, head: bytes) -> tuple[str, tuple[int, ...], int]:
    """(dtype, dims, data offset) of an IDX file's header."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtype = IDX_TYPES.get(head[2])
    if dtype is None:
        raise DataError(f"{path}: unknown IDX element type 0x{head[2]:02x}")
    ndim = head[3]
    if ndim == 0:
        raise DataError(f"{path}: the IDX header has 0 dimensions")
    if len(head) < 4 + 4 * ndim:
        raise DataError(f"{path}: the IDX header is truncated ({ndim} dimensions need {4 + 4 * ndim} bytes)")
    dims = struct.unpack(f">{ndim}I", head[4:4 + 4 * ndim])
    return dtype, dims, 4 + 4 * ndim


def read_idx(path: Path, limit: int | None | str = "default") -> np.ndarray:
    """An IDX array (gzipped or not). The header says how many bytes follow: more than `limit`
    (default: half the physical memory) is refused before reading, and no more than the header's
    count is ever decompressed (a gzip bomb is refused, not inflated)."""
    check_file(path, "IDX file")
    try:
        with _open_maybe_gzip(path) as f:
            head = f.read(4 + 4 * 255)
            dtype, dims, offset = _idx_header(path, head)
            count = math.prod(dims)
            itemsize = int(dtype[-1])
            _check_size(path, count * itemsize, limit)
            body = head[offset:]
            if len(body) <= count * itemsize:  # one byte past the header's count tells a file that holds more
                body += f.read(count * itemsize - len(body) + 1)
    except (OSError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path} cannot be read: {e.__class__.__name__}: {e}") from None
    if len(body) != count * itemsize:
        held = f"{len(body) // itemsize}" if len(body) < count * itemsize else "more"
        raise DataError(f"{path}: IDX header says {'x'.join(map(str, dims))} ({count} values) but the file "
                        f"holds {held}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _check_size(path: Path, nbytes: int, limit) -> None:
    from dlc.compiler.diagnostics import DLError
    from dlc.runtime.run_folder import check_size
    try:
        check_size(str(path), nbytes, limit)
    except DLError as e:
        raise DataError(e.diagnostics[0].message) from None



def _idx_peek(path: Path) -> tuple[str, tuple[int, ...]]:
    """(element dtype, dims) from an IDX file's header."""
    check_file(path, "IDX file")
    try:
        with _open_maybe_gzip(path) as f:
            head = f.read(4 + 4 * 255)
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path} cannot be read: {e.__class__.__name__}: {e}") from None
    dtype, dims, _ = _idx_header(path, head)
    return dtype, dims


# ---- peek: what `dlc check` can learn cheaply --------------------------------------------------

@dataclass
class Peek:
    sample_shape: tuple[int, ...]  # per-sample input shape as stored
    samples: int | None
    labels: Any = None  # the label array when it is small enough to read (npz y, IDX labels)
    dtype: Any = None  # the inputs' element type as stored (npz x, IDX), None for CSV


def peek(path: Path, options: dict, labels_path: Path | None = None) -> Peek:
    check_file(path)
    if path.suffix == ".npz":
        heads = _npz_headers(path)
        if "x" not in heads or "y" not in heads:
            raise DataError(f"{path} must hold arrays 'x' and 'y'; it holds {', '.join(heads) or 'no arrays'}")
        shape = heads["x"][0]
        if not shape:
            raise DataError(f"{path}: 'x' is a single number (0-d array); it must hold one row per sample")
        if shape[0] == 0:
            raise DataError(f"{path} holds no samples ('x' is {_dims(shape)})")
        y_shape, y_type = heads["y"]
        _check_size(path, math.prod(y_shape) * np.dtype(y_type).itemsize, "default")
        y = read_npz_labels(path)
        return Peek(shape[1:], shape[0], y, np.dtype(heads["x"][1]))
    if path.suffix == ".csv":
        x, _ = read_csv(path, options.get("label"), None, limit=CSV_SAMPLE_ROWS)
        return Peek(x.shape[1:], None)
    dtype, dims = _idx_peek(path)
    labels = None
    if labels_path is not None:
        labels = read_idx(check_file(labels_path, "labels file"))
    return Peek(tuple(dims[1:]), dims[0], labels, np.dtype(dtype))


def read_npz_labels(path: Path):
    try:
        with zipfile.ZipFile(path) as z, z.open("y.npy") as f:
            y = np.lib.format.read_array(f, allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: 'y' cannot be read ({e}); dlc never loads pickles") from None
    except (zipfile.BadZipFile, OSError, KeyError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npz file: {e.__class__.__name__}: {e}") from None
    return y


def npz_on_disk(path: Path):
    """The 'x' array of an .npz as a read-only memory map of the file, when the zip stores it as it is
    (np.savez; np.savez_compressed deflates it, and that cannot be read a batch at a time). For a data
    set larger than the memory limit: its rows are then read a batch at a time (runtime/data/lazy.py)."""
    import struct
    try:
        with zipfile.ZipFile(path) as z:
            info = z.getinfo("x.npy")
    except KeyError:
        raise DataError(f"{path} must hold an array 'x'") from None
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{path} is not a readable .npz file: {e}") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise CompressedNpz("its 'x' is compressed, so it cannot be read from disk a batch at a time either: "
                            "save it with np.savez (not savez_compressed), or raise --max-memory")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if len(local) != 30 or local[:4] != b"PK\x03\x04":
            raise DataError(f"{path} is damaged: no zip entry where its directory puts 'x.npy'")
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        try:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read_header(f)
        except ValueError as e:
            raise DataError(f"{path}: 'x' has a bad header ({e})") from None
        offset = f.tell()
    if dtype.hasobject or dtype.kind not in "fiub":
        raise DataError(f"{path}: inputs must be numeric, got {dtype}; dlc never loads pickles")
    if fortran or not shape:
        raise DataError(f"{path}: 'x' must be a C-ordered array with one row per sample")
    if offset + math.prod(shape) * dtype.itemsize > path.stat().st_size:
        raise DataError(f"{path} is truncated: 'x' says {_dims(shape)} {dtype} but the file is shorter")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape))
