"""The built-in data sets as the language knows them: names, sample shapes, task, classes.

This is what `check` needs to tell whether a model fits `data digits`; the runtime
(runtime/data/datasets.py) adds a loader to each entry. A data source that is quoted, or is not a
built-in name and looks like a path, is a file; the runtime checks files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath


@dataclass(frozen=True)
class BuiltinSet:
    name: str
    features: tuple[int, ...]  # per-sample shape as loaded
    task: str  # classification | regression
    classes: int  # 0 for regression
    doc: str
    image_shape: tuple[int, ...] | None = None  # the samples as images (CxHxW), when they are
    options: tuple[str, ...] = ()  # the generator keys it takes (n, noise, classes: synthetic sets only)
    official_split: tuple[int, int] | None = None  # (train, test) series of an archive set, kept as published
    class_names: tuple[str, ...] = ()  # the archive's own class labels, in sorted order
    variable: bool = False  # series of different lengths, up to features[1] steps (input CxL variable)


BUILTIN_SETS: dict[str, BuiltinSet] = {d.name: d for d in [
    BuiltinSet("spiral", (2,), "classification", 3, "3 interleaved spirals in 2-D (cs231n)",
               options=("n", "noise", "classes")),
    BuiltinSet("xor", (2,), "classification", 2, "the XOR quadrants with noise", options=("n", "noise")),
    BuiltinSet("moons", (2,), "classification", 2, "two interleaved half circles",
               options=("n", "noise")),
    BuiltinSet("blobs", (2,), "classification", 3, "Gaussian blobs",
               options=("n", "noise", "classes")),
    BuiltinSet("sine", (1,), "regression", 0, "y = sin(x) + noise on [-pi, pi]", options=("n", "noise")),
    BuiltinSet("digits", (64,), "classification", 10, "scikit-learn's 8x8 handwritten digits (1,797)",
               image_shape=(1, 8, 8)),
    BuiltinSet("iris", (4,), "classification", 3, "scikit-learn's iris (150)"),
    BuiltinSet("wine", (13,), "classification", 3, "scikit-learn's wine (178)"),
    BuiltinSet("breast_cancer", (30,), "classification", 2, "scikit-learn's breast cancer (569)"),
    BuiltinSet("diabetes", (10,), "regression", 0, "scikit-learn's diabetes regression (442)"),
    # the UCR/UEA time-series archive's sets that ship inside sktime's wheel (pip install "dlc[series]"),
    # with the archive's own train/test split; series are channels x length
    BuiltinSet("gunpoint", (1, 150), "classification", 2, "UCR GunPoint: hand motion, gun drawn or pointed "
               "(50 train / 150 test series of 150 steps)", official_split=(50, 150), class_names=("1", "2")),
    BuiltinSet("italy_power", (1, 24), "classification", 2, "UCR ItalyPowerDemand: a day's electricity demand, "
               "winter or summer (67 / 1,029 series of 24 hours)", official_split=(67, 1029), class_names=("1", "2")),
    BuiltinSet("basic_motions", (6, 100), "classification", 4, "UEA BasicMotions: a smart watch's accelerometer "
               "and gyroscope, 6 channels (40 / 40 series of 100 steps)", official_split=(40, 40),
               class_names=("badminton", "running", "standing", "walking")),
    BuiltinSet("japanese_vowels", (12, 29), "classification", 9, "UEA JapaneseVowels: nine speakers saying "
               "/ae/, 12 cepstral coefficients, 7 to 29 frames (270 / 370 series)", official_split=(270, 370),
               class_names=tuple("123456789"), variable=True),
]}
ARCHIVE_NAMES = {"gunpoint": "GunPoint", "italy_power": "ItalyPowerDemand", "basic_motions": "BasicMotions",
                 "japanese_vowels": "JapaneseVowels"}


def is_file_source(data) -> bool:
    """Does the data statement name a file (quoted, or not a built-in set and path-like)?"""
    src = data.kind
    return data.quoted or (src not in BUILTIN_SETS and any(c in src for c in "./\\"))


GENERATOR_KEYS = ("n", "noise", "classes")  # what a synthetic set is generated with


def source_keys(data) -> tuple[str, ...]:
    """The source-specific data keys this data line's source uses: a synthetic set's generator keys,
    a CSV file's label column, an IDX file's labels file; the other data keys (test, standardize ...)
    apply to every source."""
    if not is_file_source(data):
        info = BUILTIN_SETS.get(data.kind)
        return info.options if info else GENERATOR_KEYS
    if data.kind.endswith(("/", "\\")):  # a folder of images
        return IMAGE_KEYS
    return {".csv": ("label",) + IMAGE_KEYS, ".npz": (), ".json": IMAGE_KEYS}.get(
        PurePath(data.kind).suffix.lower(), ("labels",) + IMAGE_KEYS)  # no suffix: IDX, or a folder of images


IMAGE_KEYS = ("size", "channels", "fit", "skip_bad")  # an image folder's, or a CSV list of image files
