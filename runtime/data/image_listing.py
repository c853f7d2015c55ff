"""Which image files a folder or a CSV list holds, and their labels and class names (nothing decoded here).

Class names are the sub-folders' names, sorted (as Keras' image_dataset_from_directory and torchvision's
ImageFolder); each class folder is walked recursively; files are taken in sorted order. Hidden files
(`.DS_Store`) are passed over; any other file that is not .png/.jpg/.jpeg/.bmp/.gif/.webp, a file outside
a class folder, an empty class folder and a symbolic link out of the folder are refused by name -- or,
where the user wrote `skip_bad`, a bad file is left out and counted (an empty class is always refused:
it would change what the labels mean)."""

from __future__ import annotations

import csv
import errno
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlc.runtime.data.files import DataError


SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass
class Listing:
    """The image files of a folder or a CSV list, their labels and class names."""

    root: Path
    files: list[Path]
    labels: np.ndarray  # int64 class indices
    classes: list[str]
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (file, why), with skip_bad

    def fingerprint(self) -> str:
        """sha256 of the listing: each file's path under the root, size and modification time."""
        h = hashlib.sha256()
        for f, label in zip(self.files, self.labels):
            st = f.stat()
            name = f.relative_to(self.root) if f.is_relative_to(self.root) else f
            h.update(os.fsencode(name) + f"|{st.st_size}|{st.st_mtime_ns}|{int(label)}\n".encode())  # (any bytes)
        return h.hexdigest()


def _shown(path: Path, root: Path) -> str:
    """A file as the user knows it: under the folder the spec names."""
    try:
        return str(Path(root.name) / path.relative_to(root))
    except ValueError:
        return str(path)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def _entries(folder: Path) -> list:
    """The folder's entries by name; one that cannot be listed is refused (never read as empty)."""
    try:
        return sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        raise DataError(f"cannot list {folder}: {e.strerror or e}") from None


def _is_dir(entry: os.DirEntry) -> bool:
    """A folder (or a link to one); a link that leads nowhere (a loop) is not."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _not_an_image(path: Path, root: Path) -> str | None:
    """Why a listed file cannot be one of the images, or None."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError) as e:  # (a loop of links: RuntimeError before Python 3.13, then ELOOP)
            why: str | None = "a loop of links" if isinstance(e, RuntimeError) or e.errno == errno.ELOOP else e.strerror
            return f"{_shown(path, root)} is a link that leads to no file ({why})"
        if not _inside(path, root):
            return f"{_shown(path, root)} is a link out of {root.name}/ (to {target})"
    if path.suffix.lower() not in SUFFIXES:
        return f"{_shown(path, root)} is not an image file ({', '.join(SUFFIXES)})"
    if not path.is_file():
        return f"{_shown(path, root)} is not a regular file"
    return None


SKIP_HINT = "; remove it, or write skip_bad on the data line to leave such files out"


def list_folder(root: Path, skip_bad: bool = False) -> Listing:
    """One class per sub-folder (sorted names); every image file below it, in sorted order."""
    entries = _entries(root)
    classes, files, labels, skipped = [], [], [], []
    loose = [e for e in entries if not e.name.startswith(".") and not _is_dir(e)]
    for e in loose:
        if not skip_bad:
            raise DataError(f"{_shown(Path(e.path), root)} is not in a class folder: each class is a sub-folder of "
                            f"{root.name}/" + f" (move it into one, e.g. {root.name}/CLASS/{e.name})")
        skipped.append((Path(e.path), "not in a class folder"))
    folders = [e for e in entries if not e.name.startswith(".") and _is_dir(e)]
    if not folders:
        raise DataError(f"{root} holds no class folders: an image folder has one sub-folder per class "
                        f"({root.name}/cats/1.png, {root.name}/dogs/2.png ...)")
    for k, folder in enumerate(folders):
        here = Path(folder.path)
        if not _inside(here, root):
            raise DataError(f"{_shown(here, root)} is a link out of {root.name}/ (to {here.resolve()}): "
                            "dlc reads only what is inside the data folder")
        found = 0
        def unreadable(err: OSError):  # never skip a folder silently: its images would be missing
            raise DataError(f"cannot list {_shown(Path(err.filename or here), root)}: {err.strerror or err}")

        for dirpath, dirnames, names in os.walk(here, onerror=unreadable, followlinks=False):
            links = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]
            if links:  # os.walk would pass over a linked folder without a word
                raise DataError(f"{_shown(Path(dirpath) / links[0], root)} is a link to a folder; dlc reads the "
                                "folders inside the data folder itself: replace the link by the folder")
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(names):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                why = _not_an_image(path, root)
                if why:
                    if not skip_bad:
                        raise DataError(why + SKIP_HINT)
                    skipped.append((path, why.split(" is ", 1)[1] if " is " in why else why))
                    continue
                files.append(path)
                labels.append(k)
                found += 1
        if found == 0:
            raise DataError(f"{_shown(here, root)}/ holds no images: an empty class",
                            ) from None
        classes.append(folder.name)
    if len(classes) < 2:
        raise DataError(f"{root} has one class folder ({classes[0]}/): a classifier needs two or more")
    return Listing(root, files, np.array(labels, np.int64), classes, skipped)


def list_csv(path: Path, label: str | None, skip_bad: bool = False) -> Listing:
    """A CSV of `path,label` rows (a header row is optional; the label column by `label=`, default the
    last; the path column: the first whose cells are image files); paths relative to the CSV's folder."""
    from dlc.runtime.data.labels import class_labels
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if not rows:
        raise DataError(f"{path} is empty")
    header = None
    if not any(c.lower().endswith(SUFFIXES) for c in rows[0]):
        header, rows = rows[0], rows[1:]
    if not rows:
        raise DataError(f"{path} lists no images")
    col = next((i for i, c in enumerate(rows[0]) if c.lower().endswith(SUFFIXES)), None)
    if col is None:
        raise DataError(f"{path}: no column holds image file names ({', '.join(SUFFIXES)})")
    if label is None:
        lab = len(rows[0]) - 1
    elif header is not None and label in header:
        lab = header.index(label)
    elif label.isdigit():
        lab = int(label)
    else:
        raise DataError(f"{path} has no column '{label}'" + (f" (its columns: {', '.join(header)})" if header else ""))
    base = path.parent
    files, names, skipped = [], [], []
    for n, row in enumerate(rows, start=2 if header else 1):
        if len(row) <= max(col, lab):
            raise DataError(f"{path}:{n}: the row has {len(row)} cell(s); expected a path and a label")
        file = (base / row[col]).expanduser() if not Path(row[col]).is_absolute() else Path(row[col])
        why = None
        if not file.exists():
            why = f"{path.name}:{n}: no such image: {row[col]}"
        elif not _inside(file, base):
            why = f"{path.name}:{n}: {row[col]} is outside {base} (the list's folder)"
        elif file.suffix.lower() not in SUFFIXES:
            why = f"{path.name}:{n}: {row[col]} is not an image file ({', '.join(SUFFIXES)})"
        if why:
            if not skip_bad:
                raise DataError(why)
            skipped.append((file, why))
            continue
        files.append(file)
        names.append(row[lab].strip())
    y, classes = class_labels(path.name, np.array(names, dtype=str))
    return Listing(base, files, y, classes, skipped)


def list_unlabelled(path: Path, skip_bad: bool = False) -> Listing:
    """Images to predict: one image file, or a folder of image files (no class folders)."""
    if path.is_file():
        if path.suffix.lower() not in SUFFIXES:
            raise DataError(f"{path} is not an image file ({', '.join(SUFFIXES)})")
        return Listing(path.parent, [path], np.full(1, -1, np.int64), [])
    files, skipped = [], []
    for e in _entries(path):
        f = Path(e.path)
        if e.name.startswith("."):
            continue
        why = _not_an_image(f, path)
        if why:
            if not skip_bad:
                raise DataError(why + SKIP_HINT)
            skipped.append((f, why))
            continue
        files.append(f)
    if not files:
        raise DataError(f"{path} holds no image files")
    return Listing(path, files, np.full(len(files), -1, np.int64), [], skipped)


def has_class_folders(path: Path) -> bool:
    return any(_is_dir(e) and not e.name.startswith(".") for e in _entries(path))


def listing(path: Path, options: dict, need_labels: bool = True) -> Listing:
    """A folder of class folders; a CSV list; or, for predictions (need_labels False), one image file or
    a folder of image files."""
    skip_bad = bool(options.get("skip_bad"))
    if path.is_dir():
        if not need_labels and not has_class_folders(path):
            return list_unlabelled(path, skip_bad)
        return list_folder(path, skip_bad)
    if path.suffix.lower() in SUFFIXES:
        if need_labels:
            raise DataError(f"{path.name} is one image; a data set to train on is a folder with one sub-folder "
                            f"per class ({path.parent.name}/CLASS/{path.name} ...), or a CSV list of images")
        return list_unlabelled(path, skip_bad)
    return list_csv(path, options.get("label"), skip_bad)


def is_image_source(path: Path) -> bool:
    """A folder, an image file, or a CSV listing image files."""
    from dlc.compiler.files import is_folder
    return is_folder(path) or path.suffix.lower() in SUFFIXES or (path.suffix.lower() == ".csv" and is_image_list(path))


def is_image_list(path: Path) -> bool:
    """A CSV whose first data row names an image file (a feature table never does). Only a regular
    file is opened (a FIFO would block; dlc check refuses it by name)."""
    import stat
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
    except (OSError, ValueError):
        return False
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for k, row in enumerate(csv.reader(f)):
                if any(c.strip().lower().endswith(SUFFIXES) for c in row):
                    return True
                if k >= 1:
                    return False
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return False


def refuse_empty_classes(found: Listing) -> None:
    """An empty class, once skip_bad has left its bad files out, is refused: it would change what the
    labels mean (the model would have an output no example teaches)."""
    if not found.classes:
        return
    counts = np.bincount(found.labels, minlength=len(found.classes))
    if not counts.all():
        empty = found.classes[int(np.flatnonzero(counts == 0)[0])]
        raise DataError(f"{found.root.name}/{empty}/ holds no image that can be read (skip_bad left out its "
                        "file(s)): an empty class")
