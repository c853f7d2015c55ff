"""`dlc export`: a run folder -> a verified ONNX file.

The model is checked with onnx.checker (full_check), run through onnxruntime on real inputs from
the run's data and compared with the NumPy runtime; a model that disagrees is not written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dlc.version import __version__
from dlc.compiler.losses import LOSSES
from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.runtime import run_folder as rf
from dlc.runtime.tools.onnx_runner import OnnxModel
from dlc.runtime.runs import check_finite_outputs, load_run
from dlc.runtime.inference import Model

ATOL = 1e-5
RTOL = 1e-5


@dataclass
class ExportReport:
    path: Path | None
    max_abs_diff: float
    samples: int
    folded_bn: int
    onnx_nodes: int
    size_bytes: int
    real: bool = True  # compared on the run's own data (else on standard-normal inputs: the spec has none)
    text: str = ""  # a text model: what the file takes, and how it was checked


def has_data(spec) -> bool:
    """Whether the spec names its data (a run dlc import wrote from a foreign model has no data line)."""
    data = spec.settings.get("data")
    return data is not None and data.written


def noise_inputs(spec, n: int) -> np.ndarray:
    """n seeded standard-normal inputs of the model's input shape: what a model is compared on without data
    (token ids: n texts of L ids drawn uniformly from the embedding's vocabulary, the padding and unknown ids aside)."""
    if spec.graph.input_dtype == "int64":
        from dlc.runtime.data.text import ids_reader
        vocab = ids_reader(spec.graph)["vocab"]
        return np.random.default_rng(0).integers(2, vocab, (n,) + tuple(spec.graph.input_shape)).astype(np.float32)
    return np.random.default_rng(0).normal(0, 1, (n,) + tuple(spec.graph.input_shape)).astype(np.float32)


def real_inputs(model: Model, n: int = 256) -> np.ndarray:
    """Raw inputs from the run's own data (test split first), as a deployed model would receive them; a run
    whose spec has no data line: seeded standard-normal inputs."""
    from dlc.runtime.data.splits import prepare
    if not has_data(model.spec):
        return noise_inputs(model.spec, n)
    splits = prepare(model.spec, encoder=model.encoder)
    x = np.concatenate([splits.x_test[:n], splits.x_val[:n], splits.x_train[:n]])[:n]  # (a lazy split: n rows)
    return splits.preprocess.invert(x)


def string_in(model: Model) -> bool:
    """Whether the exported model takes raw text: a word or character tokenizer runs in the graph."""
    from dlc.compiler.onnx_text import IN_GRAPH
    return model.encoder is not None and model.encoder.kind in IN_GRAPH


def build(model: Model, keep_bn: bool = False):
    from dlc.compiler.onnx_export import graph_to_onnx
    spec = model.spec
    metadata = {"dlc_version": __version__, "spec": spec.source.text, "classes": model.classes,
                "task": spec.task, "loss": spec.loss, "preprocessing": "included: x * mul + add",
                "batchnorm": "kept" if keep_bn else "folded"}
    text = None
    if model.encoder is not None:
        enc = model.encoder
        metadata.update(tokens=enc.kind, length=str(enc.length),
                        input="texts (strings, [N]): the tokenizer runs in the graph, each text on its own"
                        if string_in(model) else
                        f"token ids (N, L), int64, one length per batch (0 pads, 1 unknown): the {enc.kind} "
                        "tokenizer is the .tokenizer.json file beside the model (Hugging Face tokenizers)")
        if string_in(model):
            text = {"kind": enc.kind, "vocab": enc.vocab, "length": enc.length}
    return graph_to_onnx(spec.graph, model.values, preprocess=model.preprocess, keep_bn=keep_bn,
                         label=LOSSES[spec.loss].labels == "index", metadata=metadata, text=text)


def verification_texts(model: Model) -> list[str]:
    """Every test text of the run's data, and three a deployed model must answer as dlc does: one with
    no known word, one with no token at all, one longer than input L tokens."""
    from dlc.runtime.data.splits import prepare
    texts = list(prepare(model.spec, encoder=model.encoder, keep_texts=True).texts[2]) if has_data(model.spec) else []
    longest = " ".join((texts or ["a long text"]) * (model.encoder.length + 1))
    return texts + ["zxqv qqzx vvxz", "", "!!! ... ???", longest]


def compare_texts(model: Model, onnx_model, texts: list[str]) -> float:
    """The string-in model run in onnxruntime on the texts (each on its own) against dlc on the same texts:
    the same class for every one and outputs within the tolerance, or nothing is written."""
    ref = model.predict_proba(model.encoder.encode(texts))
    got = OnnxModel(onnx_model).run_texts(texts)["output"]
    diff = _agreement(ref, got, "the run's texts", "the string-in ONNX model", "report this as a bug")
    if model.spec.task == "classification" and not np.array_equal(got.argmax(axis=1), ref.argmax(axis=1)):
        k = int(np.argmax(got.argmax(axis=1) != ref.argmax(axis=1)))
        raise DLError(Diagnostic("error", f"the string-in ONNX model's class for text {k} ({texts[k][:60]!r}) differs "
                                          "from dlc's; nothing written", hint="report this as a bug"))
    return diff


def compare(model: Model, onnx_model, x_raw: np.ndarray) -> float:
    ref = model.predict_proba(x_raw)
    got = OnnxModel(onnx_model).run(x_raw)["output"]
    return _agreement(ref, got, "the run's own data", "the ONNX model",
                      "rerun with --keep-bn to rule out batchnorm folding, and report this as a bug")


def _agreement(ref: np.ndarray, got: np.ndarray, where: str, what: str, hint: str) -> float:
    """The largest difference between dlc's outputs and onnxruntime's (`what`'s) on `where`; refused (nothing is
    written) when their shapes differ, either is not finite, or they differ past the tolerance."""
    if ref.shape != got.shape:
        raise DLError(Diagnostic("error", f"{what}'s output is {got.shape}, the NumPy runtime's {ref.shape}; "
                                          "nothing written", hint="report this as a bug"))
    check_finite_outputs(ref, where, "nothing written")
    check_finite_outputs(got, f"{where} (in onnxruntime)", "nothing written")
    diff = float(np.max(np.abs(got - ref))) if ref.size else 0.0
    if ref.size and not np.all(np.abs(got - ref) <= ATOL + RTOL * np.abs(ref)):
        raise DLError(Diagnostic("error", f"{what} disagrees with the NumPy runtime: max abs difference "
                                          f"{diff:.3g} (tolerance {ATOL:g} + {RTOL:g}*|x|); nothing written", hint=hint))
    return diff


def node_count(graph) -> int:
    """The nodes of a graph, those inside a Loop's body (a string-in text model's) counted too."""
    return sum(1 + sum(node_count(a.g) for a in n.attribute if a.HasField("g")) for n in graph.node)


def tokenizer_path(model_path: Path) -> Path:
    """Where a subword model's tokenizer is written: beside it, m.onnx -> m.tokenizer.json."""
    return model_path.with_suffix(".tokenizer.json")


def export_run(run_dir: str | Path, out: str | Path, keep_bn: bool = False, samples: int = 256) -> ExportReport:
    if samples < 1:
        raise DLError(Diagnostic("error", f"--samples {samples}: the export is verified on at least 1 real input",
                                 hint="leave --samples out (256 inputs), or give a positive number"))
    model = load_run(run_dir)
    onnx_model = build(model, keep_bn)
    if string_in(model):  # every test text, each run alone as a deployed model gets it
        texts = verification_texts(model)
        diff, checked = compare_texts(model, onnx_model, texts), len(texts)
    else:
        x = real_inputs(model, samples)
        diff, checked = compare(model, onnx_model, x), len(x)
    data = onnx_model.SerializeToString()
    rf.atomic_write_bytes(Path(out), data)
    if model.encoder is not None and not string_in(model):  # ids in: the subword tokenizer goes beside it
        rf.atomic_write_text(tokenizer_path(Path(out)), model.encoder.subword.to_str())
    folded = 0 if keep_bn else sum(1 for n in model.spec.graph.nodes if n.op == "batchnorm") - \
        sum(1 for n in onnx_model.graph.node if n.op_type == "BatchNormalization")
    text = ""
    if string_in(model):
        text = (f"texts (strings) in, the {model.encoder.kind} tokenizer in the graph: each of the {checked:,} "
                f"texts (the test split, and one of unknown words, an empty one, one past {model.encoder.length} "
                "tokens) run alone gives dlc's class")
    elif model.encoder is not None:
        text = (f"token ids in (N, L, int64); the {model.encoder.kind} tokenizer: {tokenizer_path(Path(out))} "
                "(Hugging Face tokenizers' Tokenizer.from_file)")
    return ExportReport(Path(out), diff, checked, folded, node_count(onnx_model.graph), len(data), has_data(model.spec),
                        text)
