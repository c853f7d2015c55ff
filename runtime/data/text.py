"""Reading texts: a CSV, TSV or JSONL file with a text column and a label column
(`data "reviews.csv" text=review label=sentiment`), or a folder with one sub-folder of .txt files per
class (Keras's `text_dataset_from_directory` layout). Bad input is refused with the file, the row and the
column: a missing column, an empty text, bytes that are not UTF-8, a text past MAX_TEXT_BYTES."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from dlc.runtime.data.files import DataError, utf8_text

MAX_TEXT_BYTES = 1 << 20  # one text (a cell, a line's field, a .txt file): 1 MB; a longer one is refused
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
TEXT_SUFFIXES = (*TABLE_SUFFIXES, ".jsonl")


@dataclass
class Texts:
    texts: list[str]
    labels: list[str] | None  # None: texts without labels (predict)
    name: str


def is_text_folder(path: Path) -> bool:
    """A folder whose sub-folders hold .txt files (and no images)."""
    try:
        return path.is_dir() and any(f.suffix.lower() == ".txt" for d in path.iterdir() if d.is_dir()
                                     for f in d.iterdir())
    except OSError:
        return False


def read_texts(path: Path, text: str | None, label: str | None, need_labels: bool = True) -> Texts:
    """The texts (and labels) of a text source: a CSV/TSV/JSONL file (`text` names the column; default
    `text`) or a folder of class folders of .txt files."""
    if path.is_dir():
        return _read_folder(path, need_labels)
    suffix = path.suffix.lower()
    if suffix not in TEXT_SUFFIXES:
        raise DataError(f"{path}: texts are read from .csv, .tsv or .jsonl files, or a folder of class folders "
                        f"of .txt files; got {suffix or 'a file without a suffix'}")
    content = utf8_text(path, path.read_bytes())
    rows = _jsonl_rows(path, content) if suffix == ".jsonl" else _table_rows(path, content, TABLE_SUFFIXES[suffix])
    return _columns(path, rows, text or "text", label, need_labels)


def _table_rows(path: Path, content: str, delimiter: str) -> list[tuple[int, dict]]:
    csv.field_size_limit(MAX_TEXT_BYTES + 1)  # a longer field: refused below with its line
    reader = csv.reader(io.StringIO(content, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path} is empty")
        rows = []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(f"{path}:{reader.line_num}: {len(row)} fields, but the header has {len(header)}")
            rows.append((reader.line_num, dict(zip(header, row))))
        return rows
    except csv.Error as e:
        raise DataError(f"{path}:{reader.line_num}: {e} (a text longer than {csv.field_size_limit():,} "
                        "characters, or an unclosed quote)") from None


def _jsonl_rows(path: Path, content: str) -> list[tuple[int, dict]]:
    rows = []
    for k, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{k}: not a JSON object ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{k}: each line must be a JSON object, e.g. {{\"text\": \"...\", \"label\": \"...\"}}")
        rows.append((k, {key: ("" if v is None else v if isinstance(v, str) else json.dumps(v))
                         for key, v in row.items()}))
    if not rows:
        raise DataError(f"{path} is empty")
    return rows


def _columns(path: Path, rows, text: str, label: str | None, need_labels: bool) -> Texts:
    from dlc.compiler.diagnostics import did_you_mean
    if not rows:
        raise DataError(f"{path} holds no texts: a header and no rows")
    names = list(rows[0][1])
    if label is not None and label not in names and not need_labels:
        label = None  # texts to predict for: a file without the label column is fine
    for what, column in (("text", text), ("label", label)):
        if column is not None and column not in names:
            guess = did_you_mean(column, names)
            raise DataError(f"{path} has no {what} column '{column}'" + (f"; {guess}" if guess else
                                                                         f"; its columns are: {', '.join(names)}"))
    if label is None and need_labels:
        label = "label" if "label" in names else None
        if label is None:
            raise DataError(f"{path} has no column 'label'; name the label column: label=COLUMN "
                            f"(its columns are: {', '.join(names)})")
    texts, labels = [], []
    for line, row in rows:
        if text not in row or label is not None and label not in row:
            raise DataError(f"{path}:{line}: no '{text if text not in row else label}' field")
        value = row[text]
        _check_text(value, f"{path}:{line}, column '{text}'")
        texts.append(value)
        if label is not None:
            if not row[label].strip():
                raise DataError(f"{path}:{line}: an empty label (column '{label}')")
            labels.append(row[label].strip())
    return Texts(texts, labels if label is not None else None, path.name)


def _check_text(value: str, where: str) -> None:
    if not value.strip():
        raise DataError(f"{where}: an empty text", )
    if len(value) > MAX_TEXT_BYTES or len(value.encode("utf-8")) > MAX_TEXT_BYTES:
        raise DataError(f"{where}: a text of {len(value.encode('utf-8')):,} bytes; dlc reads texts of up to "
                        f"{MAX_TEXT_BYTES:,} bytes (split it, or keep its first part)")


def _text_files(path: Path):
    """(class name, file) of each .txt file in a folder's class folders, in order (hidden ones left out)."""
    for name in sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith(".")):
        for f in sorted((path / name).iterdir()):
            if f.suffix.lower() == ".txt" and not f.name.startswith("."):
                yield name, f


def folder_fingerprint(path: Path) -> str:
    """The sha256 of a folder of texts: each .txt file's path under it and its bytes (what a run records, and
    a resume or eval compares)."""
    import hashlib
    h = hashlib.sha256()
    for _, f in _text_files(path):
        h.update(str(f.relative_to(path)).encode("utf-8", "surrogateescape") + b"\0")
        h.update(f.read_bytes() if f.is_file() else b"")
        h.update(b"\0")
    return h.hexdigest()


def _read_folder(path: Path, need_labels: bool) -> Texts:
    texts, labels = [], []
    for name, f in _text_files(path):
        if not f.is_file():
            raise DataError(f"{f} is not a regular file")
        if f.stat().st_size > MAX_TEXT_BYTES:
            raise DataError(f"{f}: a text of {f.stat().st_size:,} bytes; dlc reads texts of up to "
                            f"{MAX_TEXT_BYTES:,} bytes")
        value = utf8_text(f, f.read_bytes())
        _check_text(value, str(f))
        texts.append(value)
        labels.append(name)
    if not texts:
        raise DataError(f"{path}: no .txt files in its class folders (write one folder per class, each holding "
                        ".txt files)")
    return Texts(texts, labels if need_labels or labels else None, path.name)


def load_texts(source: str, options: dict, base_dir: Path | None, files: dict | None, need_labels: bool = True):
    """A data line's texts as a Dataset: x an object array of the texts, y class indices (or None)."""
    import numpy as np

    from dlc.runtime.data.datasets import Dataset, _file_entry
    from dlc.runtime.data.labels import class_labels
    path = _file_entry(source, base_dir, files, allow_folder=True)
    if path.is_dir() and files and source in files:  # a run's folder of texts: the same files as it trained on
        now = folder_fingerprint(path)
        if now != files[source]["sha256"]:
            raise DataError(f"{path} changed since this run was trained (its .txt files: sha256 "
                            f"{files[source]['sha256'][:12]}... then, {now[:12]}... now)")
    found = read_texts(path, options.get("text"), options.get("label"), need_labels)
    x = np.empty(len(found.texts), object)
    x[:] = found.texts
    if found.labels is None:
        return Dataset(x, None, "classification", [], found.name)
    y, classes = class_labels(found.name, np.array(found.labels))
    return Dataset(x, y, "classification", classes, found.name)


def ids_reader(graph) -> dict:
    """The attributes of the op that reads the token ids (the embedding), search ranges at their nominal
    values: its `vocab` caps the tokenizer's."""
    from dlc.compiler.attrs import resolve
    from dlc.compiler.ops import REGISTRY
    return {k: resolve(v) for k, v in next(n.attrs for n in graph.nodes if REGISTRY[n.op].reads == "int64").items()}
