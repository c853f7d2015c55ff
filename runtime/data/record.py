"""Where a run's data came from: data.json in the run folder.

A data file named in a spec resolves against the spec's folder. The run folder keeps a copy of
the spec, so it records the resolved absolute path of each file (the data file and an IDX labels
file) with its sha256: `dlc eval`, `export` and `train --resume` read the same file from any
directory, and refuse it by name when its content changed since the run was trained.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from dlc.compiler.files import is_folder
from dlc.compiler.spec import Spec, absolute_data_name
from dlc.runtime import run_folder as rf
from dlc.runtime.data.datasets import CATALOG, resolve_path


def _files(spec: Spec) -> dict[str, str]:
    """{name as written in the spec: its option key} for each file the data line reads."""
    data = spec.settings.get("data")
    if data is None or data.kind in CATALOG:
        return {}
    out = {data.kind_name: "source"}
    if data.get("labels"):
        out[data["labels"]] = "labels"
    return out


def record(spec: Spec) -> dict | None:
    """The data record of a spec about to be trained, or None when it reads no file."""
    files = _files(spec)
    if not files:
        return None
    if spec.data_files:  # a resumed run: its recorded files stay as they are
        return {"files": spec.data_files}
    entries = {}
    for written in files:
        path = resolve_path(written, spec.base_dir)
        # keyed by the name the run's spec.dl gives the file (compiler.spec.portable_text writes it absolute)
        name = absolute_data_name(written, spec.base_dir) or written
        if is_folder(path) and spec.graph.input_dtype == "int64":  # a folder of texts: its files' names and bytes
            from dlc.runtime.data.text import folder_fingerprint
            entries[name] = {"path": str(path.resolve()), "sha256": folder_fingerprint(path)}
        elif is_folder(path):  # an image folder: the sha256 of its listing (names, sizes, modification times)
            from dlc.runtime.data.images import fingerprint
            entries[name] = {"path": str(path.resolve()), "sha256": fingerprint(path, spec["data"].values)}
        else:
            entries[name] = {"path": str(path.resolve()), "sha256": rf.file_sha256(path)}
    return {"files": entries}


def read(run_dir: Path) -> dict | None:
    """The recorded data files of a run folder {name as written: {path, sha256}}, or None."""
    path = Path(run_dir) / rf.DATA
    if not path.exists():
        return None
    files = rf.load_json(path, "the data record").get("files")
    if not isinstance(files, dict) or not all(isinstance(v, dict) and isinstance(v.get("path"), str)
                                              and isinstance(v.get("sha256"), str) for v in files.values()):
        from dlc.compiler.diagnostics import Diagnostic, DLError
        raise DLError(Diagnostic("error", f"{path} is damaged: expected "
                                          '{"files": {NAME: {"path": ..., "sha256": ...}}}'))
    return files


def load_for_run(spec: Spec, run_dir: Path) -> Spec:
    """The spec with its data files pinned to the run's recorded paths and fingerprints."""
    files = read(run_dir)
    return dataclasses.replace(spec, data_files=files) if files else spec
