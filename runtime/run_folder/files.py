"""Run-folder files: their names, atomic writes, reading npz/JSON back within size limits, CSV, folder names."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.files import not_regular
SPEC = "spec.dl"
WEIGHTS = "weights.npz"
PREPROCESS = "preprocess.npz"
DATA = "data.json"
CHECKPOINT = "checkpoint.npz"
HISTORY = "history.csv"
METRICS = "metrics.json"
CURVES = "curves.png"
LOCK = ".lock"
MANIFEST = ".dlc-run.json"
CONFUSION = "confusion.png"  # written by dlc eval
NETWORK = "network.svg"  # the picture of the network (compiler/picture.py)
TENSORBOARD = "tensorboard"  # a folder: train log=tensorboard's event files (runtime/live_view.py)
VOCAB = "vocab.json"  # a text run's tokenizer settings and vocabulary (runtime/data/tokenize.py)
TOKENIZER = "tokenizer.json"  # a subword tokenizer, as Hugging Face tokenizers saves it
RUN_FILES = (SPEC, WEIGHTS, PREPROCESS, DATA, CHECKPOINT, HISTORY, METRICS, CURVES, CONFUSION, NETWORK,
             TENSORBOARD, VOCAB, TOKENIZER)  # the run's


def _error(message: str, hint: str | None = None) -> DLError:
    return DLError(Diagnostic("error", message, None, hint))


def _os_error(path: Path, e: OSError, doing: str = "write") -> DLError:
    reason = e.strerror or e.__class__.__name__
    hint = {"EACCES": "pick a folder you can write with -o", "EROFS": "pick a writable folder with -o",
            "ENOSPC": "free some disk space, or write the run elsewhere with -o",
            "EFBIG": "the file is larger than this process may write (ulimit -f); raise the limit"}
    import errno
    return _error(f"cannot {doing} {path}: {reason}", hint.get(errno.errorcode.get(e.errno or 0, ""), None))


_UMASK: int | None = None


def _file_mode() -> int:
    """0o666 less the user's umask: what open() would give a new file."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def make_dir(path: Path) -> Path:
    """Create a run folder (and parents), or refuse clearly when the path is a file or not writable."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise _error(f"{path} is a file, not a folder", "give -o a folder name that is not taken by a file")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise _error(f"cannot create {path}: {parent} is a file", "give -o a path under a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _os_error(path, e, "create") from None
    return path


def atomic_write_bytes(path: Path, data: bytes, mode: int | None = None) -> None:
    """Write `path` whole or not at all (a temporary file renamed over it), with `mode` (default: what
    open() would give a new file); a failure is a DLError naming the file."""
    path = Path(path)
    make_dir(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _file_mode() if mode is None else mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise _os_error(path, e) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


OWNED_IN_FOLDER = {TENSORBOARD: "events.out.tfevents."}  # a run's folder: the names of the files dlc writes in it


def remove(run_dir: Path, names) -> None:
    """Delete these files of the folder where they exist (a link is removed, never followed); of a
    folder among them, only the files dlc writes there (OWNED_IN_FOLDER), then the folder if that left it
    empty: a file of the user's put inside stays. A failure is a DLError naming the file."""
    for name in names:
        path = Path(run_dir) / name
        try:
            if path.is_dir() and not path.is_symlink():
                prefix = OWNED_IN_FOLDER.get(name)
                for entry in os.scandir(path):
                    if prefix is not None and entry.name.startswith(prefix) and not entry.is_dir(follow_symlinks=False):
                        os.unlink(entry.path)
                if not any(os.scandir(path)):
                    os.rmdir(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as e:
            raise _os_error(path, e, "remove") from None


def atomic_write_text(path: Path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode(), mode)


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # (the stub reads a dict of arrays as allow_pickle=)
    return buf.getvalue()


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write_bytes(path, npz_bytes(arrays))


def npz_headers(path: Path, label: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} from the .npy headers inside an .npz, reading no data. Each header
    must agree with its member's size in the zip directory (which bounds what unzipping yields), so
    a header that claims 10^12 values, or a member that inflates past its header, is refused here."""
    out = {}
    _check_regular(path, label)  # a FIFO would block zipfile; a link to /dev/zero would be read forever
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                with z.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    reader = {(1, 0): np.lib.format.read_array_header_1_0,
                              (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if reader is None:
                        raise _error(f"{label}: unsupported .npy version {version} in '{info.filename}'")
                    shape, _, dtype = reader(f)
                    start = f.tell()
                if dtype.hasobject:
                    raise _error(f"{label} holds pickled (object) arrays: dlc never loads pickles",
                                 "save plain numeric arrays (np.savez(path, x=x.astype('float32'), ...))")
                nbytes = math.prod(shape) * dtype.itemsize
                if info.file_size - start != nbytes:
                    raise _error(f"{label} is damaged: array '{name}' claims {'x'.join(map(str, shape)) or 'one value'} "
                                 f"({nbytes:,} bytes) but holds {max(0, info.file_size - start):,} bytes",
                                 "it may be truncated or altered; write it again")
                out[name] = (tuple(shape), dtype)
    except DLError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, ValueError, zlib_error()) as e:
        raise _error(f"{label} is not a readable .npz file: {e.__class__.__name__}: {e}",
                     "it may be truncated or not an .npz file; write it again") from None
    return out


def check_size(label: str, nbytes: int, limit: int | None | str = "default") -> None:
    """Refuse reading `nbytes` into memory when it exceeds `limit` ("default": half the physical memory,
    as --max-memory's default; None: no limit)."""
    if isinstance(limit, str):  # "default"
        from dlc.compiler.memory import default_limit
        limit = default_limit()
    if limit is not None and nbytes > limit:
        from dlc.compiler.memory import fmt_bytes
        raise _error(f"{label} holds {fmt_bytes(nbytes)} once read; the limit is {fmt_bytes(limit)}",
                     "raise the limit with --max-memory, or use a smaller file")


def load_npz(path: Path, what: str = "", finite: bool = False, text: bool = False,
             limit: int | None | str = "default") -> dict[str, np.ndarray]:
    """Every array of an .npz, or a `DLError` naming the file: missing, not a zip, truncated,
    headers that disagree with the data, more bytes than `limit` (default: half the physical
    memory; None: no limit), pickled (object) arrays (never loaded), arrays that are not numbers
    (text=True also takes strings: a data set's class names), or -- with finite=True -- NaN/inf values."""
    path = Path(path)
    label = f"{path}" + (f" ({what})" if what else "")
    if path.is_dir():
        raise _error(f"{label} is a folder, not an .npz file")
    if not path.exists():
        raise _error(f"no such file: {label}")
    _check_regular(path, label)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as e:
        raise _os_error(path, e, "read") from None
    if magic.startswith(b"\x93NUMPY"):
        raise _error(f"{label} is a single .npy array, not an .npz archive",
                     "save the arrays with np.savez(path, name=array, ...)")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise _error(f"{label} is not a readable .npz file: BadZipFile: not a zip archive",
                     "it may be damaged or another kind of file; write it again")
    heads = npz_headers(path, label)
    check_size(label, sum(math.prod(s) * d.itemsize for s, d in heads.values()), limit)
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower() or "object" in str(e).lower():
            raise _error(f"{label} holds pickled (object) arrays: dlc never loads pickles",
                         "save plain numeric arrays (np.savez(path, x=x.astype('float32'), ...))") from None
        raise _error(f"{label} is not a readable .npz file ({e})") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, zlib_error()) as e:
        raise _error(f"{label} is not a readable .npz file: {e.__class__.__name__}: {e}",
                     "it may be truncated or not an .npz file; write it again") from None
    for k, v in out.items():
        if v.dtype.kind not in ("biufUS" if text else "biuf"):
            raise _error(f"{label}: array '{k}' has dtype {v.dtype}; only {'numeric or string' if text else 'numeric'} "
                         "arrays are read")
        if finite and v.dtype.kind == "f" and not np.all(np.isfinite(v)):
            bad = int(np.size(v) - np.count_nonzero(np.isfinite(v)))
            raise _error(f"{label}: array '{k}' holds {bad} NaN or inf value(s)",
                         "the run diverged or the file was damaged; retrain or restore the file")
    return out


def zlib_error():
    import zlib
    return zlib.error


def _check_regular(path: Path, label: str) -> None:
    kind = not_regular(path)
    if kind:
        raise _error(f"{label} is {kind}, not a regular file", "dlc reads only regular files")


def load_json(path: Path, what: str = "") -> dict:
    label = f"{path}" + (f" ({what})" if what else "")
    _check_regular(path, label)
    try:
        obj = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise _error(f"no such file: {label}") from None
    except RecursionError:
        raise _error(f"{label} is damaged: its JSON is nested too deeply", "restore the file or train the run again") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise _error(f"{label} is damaged: {e.__class__.__name__}: {e}",
                     "restore the file or train the run again") from None
    if not isinstance(obj, dict):
        raise _error(f"{label} is damaged: expected a JSON object")
    return obj


def save_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def file_sha256(path: Path) -> str:
    _check_regular(path, str(path))
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def preprocess_arrays(preprocess, classes: list[str]) -> dict[str, np.ndarray]:
    """preprocess.npz: the input map (mul, add) and the class names, which predict and export print,
    kept here rather than only in metrics.json, whose copy is for people and is checked against it."""
    return {"mul": preprocess.mul, "add": preprocess.add, "classes": np.array(classes, dtype=str)}


HISTORY_FIELDS = ["epoch", "lr", "loss", "accuracy", "val_loss", "val_accuracy", "seconds"]


def save_csv(path: Path, rows: list[dict], fields: list[str]) -> None:
    """A CSV with a header of `fields`; missing and None values are empty cells."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for row in rows:
        w.writerow({k: ("" if row.get(k) is None else row[k]) for k in fields})
    atomic_write_text(path, buf.getvalue())


def save_history(path: Path, history: list[dict]) -> None:
    save_csv(path, history, HISTORY_FIELDS)


MAX_FOLDER_NAME = 100  # characters of a folder name dlc derives (file systems allow 255 bytes)


def folder_name(label: str) -> str:
    """A folder name made from a label (a model name, a spec's file name, `lr=0.1,act=relu`) that stays
    inside its parent: letters, digits and _ . + - only (`=` becomes -, everything else _), no leading
    dot (so never `.` or `..`), shortened with a hash of the whole label when long."""
    name = re.sub(r"[^A-Za-z0-9_.+-]+", "_", label.replace("=", "-")).lstrip(".") or "run"
    if len(name) > MAX_FOLDER_NAME:
        digest = hashlib.sha256(label.encode()).hexdigest()[:8]
        name = f"{name[:MAX_FOLDER_NAME - 9]}-{digest}"
    return name


def default_run_dir(name: str, root: Path = Path("runs")) -> Path:
    """runs/NAME, or runs/NAME-2, -3 ... when taken: a new run never overwrites an old one."""
    name = folder_name(name)
    path = root / name
    k = 2
    while path.exists():
        path = root / f"{name}-{k}"
        k += 1
    return path
