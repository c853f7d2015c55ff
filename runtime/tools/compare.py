"""`dlc compare a.dl b.dl …` and `dlc train spec.dl --vary KEY=v1,v2`: several specs trained on
the same data split with the same seed, one table, the curves side by side in one PNG.

The folder it writes:

    RUN/LABEL/        a full run folder per spec (exportable like any other); the label made safe as a
                      folder name (lr=0.1,act=relu -> lr-0.1_act-relu)
    RUN/compare.png   loss and accuracy curves of every run on shared axes
    RUN/compare.csv   the table, one row per run (also compare.json)
"""

from __future__ import annotations

from typing import Any

import itertools
from dataclasses import dataclass, field
from pathlib import Path

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.overrides import Override
from dlc.compiler.spec import Spec, compile
from dlc.runtime import run_folder as rf
from dlc.runtime.data.splits import prepare
from dlc.runtime.trainer import TrainingDiverged, train

COLUMNS = ["run", "params", "epochs", "seconds", "train_loss", "train_acc", "val_loss", "val_acc", "gap",
           "test_loss", "test_acc", "test_f1", "test_mae", "status"]


@dataclass
class Comparison:
    out_dir: Path
    rows: list[dict]
    histories: dict[str, list[dict]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        """Ctrl-C stopped a run: the runs after it were not trained."""
        return any(r["status"] == "interrupted" for r in self.rows)

    def render(self) -> str:
        classify = any(r["train_acc"] is not None for r in self.rows)
        cols = ["run", "params", "epochs", "seconds", "train_loss", "val_loss", "test_loss"]
        cols += ["train_acc", "val_acc", "gap", "test_acc", "test_f1"] if classify else ["test_mae"]
        cols.append("status")
        pct = {"train_acc", "val_acc", "test_acc", "gap", "test_f1"}

        def cell(r, c):
            v = r.get(c)
            if v is None:
                return "-"
            if c in pct:
                return f"{100 * v:.2f}"
            if isinstance(v, float):
                return f"{v:.4f}" if c != "seconds" else f"{v:.1f}"
            return f"{v:,}" if isinstance(v, int) else str(v)

        table = [[c.replace("_acc", " acc%").replace("test_f1", "macro F1%").replace("_", " ").replace("gap", "gap pts")
                  for c in cols]]
        table += [[cell(r, c) for c in cols] for r in self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        lines = ["  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths)))
                 for row in table]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines += [f"note: {n}" for n in self.notes]
        lines.append(f"curves: {self.out_dir / 'compare.png'}   table: {self.out_dir / 'compare.csv'}")
        return "\n".join(lines)


def _labels(specs: list[Spec], labels: list[str] | None) -> list[tuple[str, str]]:
    """(label shown in the table, folder name inside RUN) of each run: distinct, and every folder
    stays inside RUN (never '..', '/', control characters or a name too long; see rf.folder_name)."""
    raw = labels or [s.name for s in specs]
    if len(set(raw)) < len(raw) and not labels:
        raw = [Path(s.source.filename).stem for s in specs]
    out: list[tuple[str, str]] = []
    seen: dict[str, int] = {}
    for r in raw:
        folder = rf.folder_name(r)
        seen[folder] = seen.get(folder, 0) + 1
        suffix = "" if seen[folder] == 1 else f"-{seen[folder]}"
        out.append((r + suffix, folder + suffix))
    return out


SHAPING_KEYS = ("reshape",)  # data keys that shape the samples for a model's input, not which samples or values


def _data_key(spec: Spec):
    d = spec.settings.get("data")
    return None if d is None else (d.kind, {k: v for k, v in d.values.items() if k not in SHAPING_KEYS})


def _shaping(spec: Spec):
    """What makes two specs' prepared samples differ on one data line: reshape=, and for texts the token
    ids (the input's length, the embedding's vocab)."""
    d = spec.settings.get("data")
    texts: tuple = ()
    if spec.graph.input_dtype == "int64":
        from dlc.runtime.data.text import ids_reader
        texts = (("length", spec.graph.input_shape[1]), ("vocab", ids_reader(spec.graph)["vocab"]))
    return (tuple((k, repr(d.values.get(k))) for k in SHAPING_KEYS) if d is not None else ()) + texts


def _same_data(specs: list[Spec]) -> None:
    first = specs[0]
    for s in specs[1:]:
        d = s.settings.get("data")
        if _data_key(s) != _data_key(first):
            raise DLError(Diagnostic(
                "error", f"{s.source.filename} trains on different data than {first.source.filename}: "
                         "a comparison needs the same data line", d.span if d else None,
                "make the data lines identical (the split and preprocessing come from them); only "
                f"{', '.join(k + '=' for k in SHAPING_KEYS)} may differ, to shape the samples for each model's "
                "input"), s.source)


def compare(specs: list[Spec], labels: list[str] | None = None, out: str | Path | None = None,
            progress: bool = True, overwrite: bool = False) -> Comparison:
    """Train every spec on the first spec's data split with the first spec's seed, each into a run
    folder RUN/LABEL. RUN must be new or empty, unless `overwrite` (which replaces earlier runs of the
    same labels there, as `train(overwrite=True)` does)."""
    if len(specs) < 2:
        raise DLError(Diagnostic("error", "compare needs at least two specs (or two values with --vary)"))
    specs = list(specs)  # seeds are replaced in this copy, not in the caller's list
    _same_data(specs)
    seed = specs[0]["train"]["seed"]
    notes = []
    for i, s in enumerate(specs):
        if s["train"]["seed"] != seed:
            notes.append(f"{s.source.filename}: seed {s['train']['seed']} replaced by {seed} (the first spec's)")
            specs[i] = compile(s.source.text, s.source.filename, overrides=[f"train.seed={seed}"])
        if s["train"]["validation"] != specs[0]["train"]["validation"]:
            notes.append(f"{s.source.filename}: validation={s['train']['validation']} ignored; every run uses the "
                         f"first spec's split (validation={specs[0]['train']['validation']})")
    names = _labels(specs, labels)
    out_dir = Path(out) if out else rf.default_run_dir("compare-" + "-vs-".join(f for _, f in names)[:80])
    if not overwrite and out_dir.is_dir() and any(out_dir.iterdir()):
        raise DLError(Diagnostic("error", f"{out_dir} is not empty; dlc does not overwrite earlier runs",
                                 hint="write the comparison to a new folder with -o, or replace the runs "
                                      "in it with --overwrite"))
    shared = {_shaping(specs[0]): prepare(specs[0])}
    comparison = Comparison(out_dir, [], {}, notes)
    for (name, folder), spec in zip(names, specs):
        if _shaping(spec) not in shared:  # the same rows and split, shaped for this model's input
            validation = specs[0]["train"]["validation"]
            shared[_shaping(spec)] = prepare(compile(spec.source.text, spec.source.filename,
                                                     overrides=[f"train.validation={validation}"]))
            notes.append(f"{spec.source.filename}: the same samples and split, shaped by its own data line "
                         f"({', '.join(f'{k}={v}' for k, v in _shaping(spec))})")
        splits = shared[_shaping(spec)]
        if progress:
            print(f"== {name}", flush=True)
        row: dict[str, Any] = {c: None for c in COLUMNS}
        row.update(run=name, params=spec.graph.param_count)
        try:
            r = train(spec, out=out_dir / folder, progress=progress, splits=splits, overwrite=overwrite)
        except TrainingDiverged as e:
            row.update(status="diverged", epochs=len(e.history))
            notes.append(f"{name}: {e}")
            comparison.rows.append(row)
            if e.history:  # its curves up to the divergence
                comparison.histories[name] = e.history
            continue
        m = r.metrics
        row.update(epochs=m["epochs_run"], seconds=m["seconds"], status="interrupted" if r.interrupted else "ok")
        for split, short in (("train", "train"), ("validation", "val"), ("test", "test")):
            res = m.get(split) or {}
            row[f"{short}_loss"], row[f"{short}_acc"] = res.get("loss"), res.get("accuracy")
        row["test_mae"] = (m.get("test") or {}).get("mae")
        row["test_f1"] = ((m.get("test_report") or {}).get("macro") or {}).get("f1")  # the macro-averaged F1
        if row["train_acc"] is not None and row["val_acc"] is not None:
            row["gap"] = row["train_acc"] - row["val_acc"]
        comparison.rows.append(row)
        comparison.histories[name] = r.history
        if r.interrupted:
            break
    out_dir.mkdir(parents=True, exist_ok=True)
    if comparison.histories:
        rf.save_curves(out_dir / "compare.png", comparison.histories, " vs ".join(comparison.histories))
    rf.save_csv(out_dir / "compare.csv", comparison.rows, COLUMNS)
    rf.save_json(out_dir / "compare.json", {"runs": comparison.rows, "notes": notes, "seed": seed})
    return comparison


def split_values(text: str) -> list[str]:
    """'a,b,choice(1, 2)' -> ['a', 'b', 'choice(1, 2)']: commas inside parentheses stay."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return [p for p in parts if p]


def variants(vary: list[str]) -> list[tuple[str, list[str]]]:
    """--vary KEY=v1,v2 (repeatable) -> [(label, overrides)] for every combination."""
    axes = []
    for item in vary:
        if "=" not in item:
            raise DLError(Diagnostic("error", f"--vary {item}: expected KEY=v1,v2,…",
                                     hint="e.g. --vary model.activation=sigmoid,relu"))
        key, values = item.split("=", 1)
        vals = split_values(values)
        if len(vals) < 1:
            raise DLError(Diagnostic("error", f"--vary {item}: no values"))
        axes.append([(key, v) for v in vals])
    out = []
    for combo in itertools.product(*axes):
        label = ",".join(f"{k.split('.')[-1]}={v}" for k, v in combo)
        items: list[str] = [Override(f"{k}={v}", "--vary") for k, v in combo]
        out.append((label, items))
    return out
