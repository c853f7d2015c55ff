"""The run folder: everything a training run leaves behind, each file written atomically.

    spec.dl           the spec as trained (with --set overrides applied)
    weights.npz       the trained model: one array per parameter and batchnorm statistic (dense1.weight ...)
    preprocess.npz    mul, add: the input map x * mul + add fitted on the training split
    data.json         where a data file was read from (absolute path) and its sha256
    checkpoint.npz    the last completed epoch, as one file: weights, optimizer state, best weights,
                      early-stopping counters, both random-generator states, history (--resume reads it)
    history.csv       one row per epoch: epoch, lr, loss, accuracy, val_loss, val_accuracy, seconds
    metrics.json      final train / validation / test metrics, classes, task, timing, BLAS threads
    curves.png        loss and accuracy curves
    confusion.png     the confusion matrix of the last split dlc eval reported
    .lock             held by the dlc process writing the folder
    .dlc-run.json     the manifest: the folder is a dlc run, and the files the run owns

A folder is a run's when dlc created its manifest; dlc deletes or replaces only the files the
manifest names, never a file by its name alone, and never follows a symbolic link to write.
A new run goes into a folder that does not exist or is empty, or over an earlier run with
`overwrite` (files of the user's beside it are kept; one that takes a run file's name is refused).

Every write goes to a temporary file in the folder, is fsynced and renamed over the old file,
so a file is always either the old or the new version. Files get the user's umask, as any
file the user creates. An OS failure (read-only folder, full disk) is a `DLError` naming the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import stat
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
RUN_FILES = (SPEC, WEIGHTS, PREPROCESS, DATA, CHECKPOINT, HISTORY, METRICS, CURVES, CONFUSION)  # the run's files


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    make_dir(path.parent)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _file_mode())
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


def remove_stale_temp_files(run_dir: Path) -> None:
    """Temporary files a killed writer of the run left behind (only called with the folder's lock held):
    `.NAME.XXXX.tmp` for the run's own file names, in a folder the manifest says is a run's."""
    if not is_run(run_dir):
        return
    remove(run_dir, [p.name for name in RUN_FILES for p in Path(run_dir).glob(f".{name}.*.tmp")])


def remove(run_dir: Path, names) -> None:
    """Delete these files of the folder where they exist; a failure is a DLError naming the file."""
    for name in names:
        path = Path(run_dir) / name
        try:
            path.unlink(missing_ok=True)
        except OSError as e:
            raise _os_error(path, e, "remove") from None


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    atomic_write_bytes(path, npz_bytes(arrays))


def npz_headers(path: Path, label: str) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{array name: (shape, dtype)} from the .npy headers inside an .npz, reading no data. Each header
    must agree with its member's size in the zip directory (which bounds what unzipping yields), so
    a header that claims 10^12 values, or a member that inflates past its header, is refused here."""
    out = {}
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
    if limit == "default":
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


# ---- the checkpoint: one file per completed epoch ----------------------------------------------

def save_checkpoint(run_dir: Path, groups: dict[str, dict[str, np.ndarray]], state: dict) -> None:
    """Write the epoch's whole training state as one .npz: `groups` {"weights": {...}, "optimizer": {...},
    "best": {...}} become arrays "group/name", `state` (JSON) the uint8 array "state"."""
    arrays = {f"{g}/{k}": v for g, d in groups.items() for k, v in d.items()}
    arrays["state"] = np.frombuffer(json.dumps(state, default=_json_default).encode(), np.uint8)
    save_npz(Path(run_dir) / CHECKPOINT, arrays)


def checkpoint_damaged(path: Path, why: str) -> DLError:
    """The refusal of a checkpoint that cannot be resumed from, naming the file and what is wrong."""
    return _error(f"{path} (the training checkpoint) is damaged: {why}", "restore it, or train again without --resume")


def load_checkpoint(run_dir: Path) -> tuple[dict[str, dict[str, np.ndarray]], dict] | None:
    """(groups, state) of the last completed epoch, None when no epoch completed; a damaged
    checkpoint is a `DLError` naming the file."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    arrays = load_npz(path, "the training checkpoint")

    def damaged(why):
        return checkpoint_damaged(path, why)

    if "state" not in arrays or arrays["state"].dtype != np.uint8:
        raise damaged("it has no training state")
    try:
        state = json.loads(arrays.pop("state").tobytes().decode())
    except RecursionError:
        raise damaged("the training state's JSON is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise damaged(f"the training state is not JSON ({e})") from None
    groups: dict[str, dict[str, np.ndarray]] = {"weights": {}, "optimizer": {}, "best": {}}
    for key, v in arrays.items():
        g, _, name = key.partition("/")
        if g not in groups or not name:
            raise damaged(f"unexpected array '{key}'")
        groups[g][name] = v
    return groups, state


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


# ---- the manifest: which folder is a run's, which files are the run's --------------------------

def _manifest(run_dir: Path) -> dict | None:
    path = Path(run_dir) / MANIFEST
    if os.path.islink(path) or not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None  # not a manifest dlc wrote: the folder is not a run's
    return obj if isinstance(obj, dict) and isinstance(obj.get("files"), list) else None


def is_run(run_dir: Path) -> bool:
    return _manifest(run_dir) is not None


def _foreign(run_dir: Path, owned: set[str]) -> list[str]:
    """The folder's entries that are not the run's: not in the manifest, not its lock or temp files."""
    out = []
    for entry in sorted(os.listdir(run_dir)):
        if entry in (LOCK, MANIFEST) or entry in owned:
            continue
        if owned and entry.endswith(".tmp") and any(entry.startswith(f".{n}.") for n in RUN_FILES):
            continue
        out.append(entry)
    return out


def _listed(names: list[str], shown: int = 5) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def claim(run_dir: Path, model: str, overwrite: bool = False) -> None:
    """Make `run_dir` (which exists, lock held) the folder of a new run: refuse a folder that holds an
    earlier run or files of the user's unless `overwrite`; then delete the earlier run's files (only
    those its manifest names) and write this run's manifest. Nothing is deleted from a folder dlc did
    not create as a run, and a file of the user's that takes a run file's name is never replaced."""
    run_dir = Path(run_dir)
    manifest = _manifest(run_dir)
    owned = set(manifest["files"]) & set(RUN_FILES) if manifest else set()
    present = {n for n in owned if os.path.lexists(run_dir / n)}
    foreign = _foreign(run_dir, owned)
    if not overwrite and present:
        earlier = manifest.get("model") if isinstance(manifest.get("model"), str) else "another model"
        raise _error(f"{run_dir} holds a run of {earlier}; dlc does not overwrite a run",
                     f"continue it with dlc train {run_dir} --resume, write this run to a new folder with -o, "
                     "or replace it with --overwrite")
    if not overwrite and foreign:
        raise _error(f"{run_dir} is not empty ({_listed(foreign)}) and is not a dlc run folder",
                     "write the run to a new folder with -o, or beside these files with --overwrite")
    taken = [n for n in foreign if n in RUN_FILES]
    if taken:
        raise _error(f"{run_dir} holds {_listed(taken)}, which dlc did not write; a run would replace "
                     f"{'it' if len(taken) == 1 else 'them'}", "move the file(s) away, or write the run to a new "
                                                                  "folder with -o")
    remove(run_dir, sorted(present))
    remove_stale_temp_files(run_dir)
    save_json(run_dir / MANIFEST, {"dlc": "run folder", "files": list(RUN_FILES), "model": model})


# ---- the lock: one writer per run folder -------------------------------------------------------

class RunLock:
    """An exclusive, non-blocking lock on RUN/.lock, held while a dlc process writes the folder.
    The OS releases it when the process ends, however it ends."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # not a POSIX system: no lock
            return self
        try:  # never through a link: a planted .lock -> ~/file would be truncated
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, _file_mode())
        except OSError as e:
            if os.path.islink(self.path):
                raise _error(f"{self.path} is a symbolic link; dlc does not follow links in a run folder",
                             "remove the link, or write the run to another folder with -o") from None
            raise _os_error(self.path, e, "create") from None
        if not stat.S_ISREG(os.fstat(self.fd).st_mode):
            os.close(self.fd)
            self.fd = None
            raise _error(f"{self.path} is not a regular file", "remove it, or write the run to another folder with -o")
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                owner = os.pread(self.fd, 32, 0).decode(errors="replace").strip()
            except OSError:
                owner = ""
            os.close(self.fd)
            self.fd = None
            raise _error(f"{self.path.parent} is in use by another dlc process"
                         + (f" (pid {owner})" if owner else ""),
                         "wait for it to finish, or write this run to another folder with -o") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


# ---- plots -------------------------------------------------------------------------------------

def new_figure(figsize):
    """A matplotlib Figure drawn by the Agg canvas: no pyplot (its import and global state cost
    about 0.2 s at start-up), no screen needed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(path: Path, fig) -> None:
    """Write a matplotlib figure as PNG, atomically."""
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
    if title:  # the whole title, wrapped above the plots (a comparison of long names is not cut)
        import textwrap
        fig.suptitle("\n".join(textwrap.wrap(title, 90)), fontsize=10)
    axes[0][0].set(xlabel="epoch", ylabel="loss", title="loss")
    axes[0][0].set_yscale("log")
    axes[0][0].legend(fontsize=8)
    if has_acc:
        axes[0][1].set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        axes[0][1].legend(fontsize=8)
    save_figure(path, fig)


def _plottable(v):
    return v if v is None or math.isfinite(v) else None


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
