"""Data files against the model, from their headers only: the runtime's half of `dlc check`.

The compiler checks a built-in set (compiler/catalog.py) and reads no files; this module opens a
spec's data file (npz headers and labels, CSV header and first rows, IDX headers) and refuses,
at the data line, what does not fit: a missing or unreadable file, samples that do not fit the
input (after reshape=), labels that do not fit the output.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dlc.compiler.catalog import is_file_source
from dlc.compiler.diagnostics import Diagnostics
from dlc.compiler.spec import Spec
from dlc.compiler.statements import CLASSIFICATION_LOSSES
from dlc.runtime.data.files import DataError, peek, reshape_refusal, resolve_path, shape_refusal
from dlc.runtime.data.datasets import Dataset, check_labels, targets_refusal
from dlc.runtime.data.labels import class_labels


def check_data_file(spec: Spec, run: Path | None = None) -> None:
    """What `check` can tell of a spec's data file from its headers: that it exists and is readable,
    that its samples fit the input (after reshape=) and its labels the output. The inputs are not
    read. Raises `DLError` located at the data line; a spec with a built-in set or no data passes. `run`: the
    run folder a resume continues (a text run's vocabulary is its own, never fitted again)."""
    data = spec.settings.get("data")
    if data is None or not data.written or not is_file_source(data):
        return
    diags = Diagnostics(spec.source)
    labels = _check(data, spec.graph, spec.loss, diags, spec.base_dir, spec.data_files, spec, run)
    diags.raise_if_errors()
    if getattr(spec, "data_dtype", None) == np.uint8:  # DL116: 8-bit inputs and no scaling
        from dlc.compiler.lint import raw_inputs_warning
        _add_warning(spec, raw_inputs_warning(spec, data.kind_name))
    if labels is not None:  # DL113: classes strongly imbalanced and the loss unweighted
        from dlc.runtime.class_weight import imbalance
        y, classes = labels
        _add_warning(spec, imbalance(spec, y, classes, what=f"{data.kind}"))


def _add_warning(spec: Spec, warning) -> None:
    if warning is not None:
        spec.warnings = sorted([*spec.warnings, warning], key=lambda d: (d.span.line if d.span else 0, d.code or ""))


def _check(data, graph, loss: str, diags: Diagnostics, base_dir: Path | None, data_files: dict | None, spec=None,
           run: Path | None = None):
    """-> (class indices, class names) when the file's labels were read, else None. An image folder or
    list: its listing and a sample of headers (spec.data_report)."""
    def error(message, hint=None):
        diags.error(message, data.kind_span, hint)
        return _Reported()

    try:
        def where(written):
            if data_files and written in data_files:
                return Path(data_files[written]["path"])
            return resolve_path(written, base_dir)

        source = where(data.kind)
        want = tuple(graph.input_shape)
        if graph.input_dtype == "int64":  # texts: read, split and tokenized as training will
            if spec is not None:
                from dlc.runtime.data.text_report import survey_texts
                spec.data_report = survey_texts(spec, run)
                for warning in spec.data_report.warnings:
                    _add_warning(spec, warning)
                return spec.data_report.labels
            return None
        from dlc.runtime.data import image_listing, images
        image_files = image_listing.is_image_source(source)
        if image_files:  # the listing and a sample of headers; the labels are the class folders
            if data.get("labels"):
                raise error(f"labels= names an IDX labels file; {data.kind} is a folder of images, whose "
                            "labels are its class folders", "remove labels=")
            channels, size = images.image_options(data.values, want, source)
            found = images.survey(source, data.values)
            found.sample_shape = shape = (channels,) + tuple(size)
            if spec is not None:
                batch = spec["train"]["batch"]
                found.batch = batch if isinstance(batch, int) else None
                spec.data_report = found
            labels = (found.listing.labels, found.listing.classes)
            if spec is not None:
                spec.data_dtype = np.dtype(np.uint8)  # decoded images are 0..255
        else:
            p = peek(source, data.values, where(data["labels"]) if data.get("labels") else None)
            shape = tuple(p.sample_shape)
            labels = p.labels
            if spec is not None and p.dtype is not None:
                spec.data_dtype = np.dtype(p.dtype).newbyteorder("=")
        if data.get("reshape"):
            reshape = tuple(data["reshape"])
            if math.prod(shape) != math.prod(reshape):
                raise error(*reshape_refusal(reshape, math.prod(shape), data.kind))
            shape = reshape
        elif len(shape) == 2 and len(want) == 3 and want[0] == 1:
            shape = (1,) + shape
        if shape != want:
            raise error(*shape_refusal(shape, want, data.kind))
        if image_files and loss not in CLASSIFICATION_LOSSES:
            raise error(f"{data.kind} is a classification set (one class per folder) but loss {loss} is for "
                        "regression", "use cross_entropy")
        if labels is not None and loss in CLASSIFICATION_LOSSES:
            y, classes = labels if image_files else class_labels(data.kind, labels)
            check_labels(graph.output_shape[0], loss, Dataset(None, y, "classification", classes, data.kind), error)
            return y, classes
        if labels is not None and not image_files:  # regression targets: as training will judge them
            written = spec is not None and spec.settings["loss"].written
            refusal = targets_refusal(data.kind, labels, graph.output_shape[0], loss, written)
            if refusal is not None:
                raise error(*refusal)
    except DataError as e:
        diags.error(str(e), data.kind_span)
    except _Reported:
        pass
    return None


class _Reported(Exception):
    """An error already added to the diagnostics."""
