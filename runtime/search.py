"""`dlc search spec.dl --trials N`: random search over the ranges written in the spec.

Each trial writes a value where each range is written (log-uniform ranges are sampled in
log space), compiles that spec and trains it with the spec's seed on one shared data split,
so trials differ only in their hyper-parameters. Trials run in parallel processes, one
BLAS thread each. Coarse to fine: of the N trials, the last M (`--fine M`, default N // 4)
sample ranges narrowed around the best coarse trial (a quarter of the width; choices fixed
to the best). Trials are ranked by validation accuracy (classification) or validation loss
(regression). Ctrl-C keeps the finished trials and writes them.

The folder it writes:

    RUN/results.csv   one row per trial, best first (also results.json)
    RUN/best.dl       the best trial's spec, ready for dlc train
    RUN/search.png    the validation score against each searched value, coarse and fine trials
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.overrides import apply_overrides
from dlc.compiler.search_space import Dimension, dimensions, format_value, nominal_spec, substitute
from dlc.compiler.spec import Spec, compile
from dlc.runtime import run_folder as rf
from dlc.runtime.data import Splits, prepare


@dataclass
class Trial:
    index: int
    stage: str  # coarse | fine
    values: dict[str, object]
    text: str
    status: str = "pending"  # ok | diverged | invalid | interrupted
    val_loss: float | None = None
    val_acc: float | None = None
    train_loss: float | None = None
    train_acc: float | None = None
    epochs: int | None = None
    seconds: float | None = None
    message: str = ""

    def score(self, classify: bool) -> float:
        """Lower is better; failed trials last."""
        if self.status != "ok" or self.val_loss is None:
            return math.inf
        if classify and self.val_acc is not None:
            return -self.val_acc + 1e-6 * self.val_loss  # ties broken by the loss
        return self.val_loss


@dataclass
class SearchResult:
    spec_name: str
    keys: list[str]
    trials: list[Trial]
    classify: bool
    out_dir: Path
    fine_ranges: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    jobs: int = 1
    interrupted: bool = False

    @property
    def best(self) -> Trial | None:
        ok = [t for t in self.trials if t.status == "ok"]
        return self.trials[0] if ok else None

    def render(self, top: int = 20) -> str:
        cols = ["rank", "trial", "stage", *self.keys]
        cols += ["val acc%", "val loss", "train acc%"] if self.classify else ["val loss", "train loss"]
        cols += ["epochs", "s", "status"]
        rows = []
        for rank, t in enumerate(self.trials[:top], 1):
            row = [str(rank), str(t.index), t.stage, *(format_value(t.values[k]) for k in self.keys)]
            f = lambda v, pct=False: "-" if v is None else (f"{100 * v:.2f}" if pct else f"{v:.4f}")  # noqa: E731
            row += [f(t.val_acc, True), f(t.val_loss), f(t.train_acc, True)] if self.classify else \
                [f(t.val_loss), f(t.train_loss)]
            row += ["-" if t.epochs is None else str(t.epochs), "-" if t.seconds is None else f"{t.seconds:.1f}",
                    t.status]
            rows.append(row)
        widths = [max(len(r[i]) for r in [cols, *rows]) for i in range(len(cols))]
        fmt = lambda r: "  ".join(v.rjust(w) for v, w in zip(r, widths))  # noqa: E731
        lines = [fmt(cols), "  ".join("-" * w for w in widths), *map(fmt, rows)]
        if len(self.trials) > top:
            lines.append(f"... {len(self.trials) - top} more in {self.out_dir / 'results.csv'}")
        for k, r in self.fine_ranges.items():
            lines.append(f"fine stage: {k} in {r}")
        failed = [t for t in self.trials if t.status != "ok"]
        for t in failed[:5]:
            lines.append(f"trial {t.index} {t.status}: {t.message}")
        lines.append(f"{len(self.trials)} trials in {self.seconds:.1f} s on {self.jobs} process(es)"
                     + (" (interrupted: the finished trials are kept)" if self.interrupted else ""))
        if self.best is not None:
            lines.append(f"best spec: {self.out_dir / 'best.dl'}  (dlc train {self.out_dir / 'best.dl'})")
        return "\n".join(lines)


# ---- one trial (runs in a worker process) --------------------------------------
_SPLITS: Splits | None = None
_LIMITS = None


def _worker_init(splits: Splits | None, threads: int | None) -> None:
    global _SPLITS, _LIMITS
    _SPLITS = splits
    if threads:
        from threadpoolctl import threadpool_limits
        _LIMITS = threadpool_limits(threads)  # parallel trials, not parallel BLAS inside each


def _run_trial(text: str, filename: str) -> dict:
    from dlc.runtime.trainer import TrainingDiverged, train

    try:
        spec = compile(text, filename, lint=False)
    except DLError as e:
        return {"status": "invalid", "message": e.format().splitlines()[0]}
    try:
        r = train(spec, write=False, progress=False, splits=_SPLITS)
    except TrainingDiverged as e:
        return {"status": "diverged", "message": str(e)}
    except DLError as e:
        return {"status": "invalid", "message": e.format().splitlines()[0]}
    if r.interrupted:
        return {"status": "interrupted", "message": "stopped by Ctrl-C"}
    m = r.metrics
    return {"status": "ok", "val_loss": m["validation"]["loss"], "val_acc": m["validation"]["accuracy"],
            "train_loss": m["train"]["loss"], "train_acc": m["train"]["accuracy"], "epochs": m["epochs_run"],
            "seconds": m["seconds"]}


# ---- the search ------------------------------------------------------------------
def _check_searchable(spec: Spec, dims: list[Dimension]) -> None:
    if not dims:
        raise DLError(Diagnostic("error", "the spec has no ranges to search", None,
                                 "write a range where a value goes, e.g. optimizer adam lr=loguniform(1e-4, 1e-1) "
                                 "or dense 64 relu dropout=choice(0.2, 0.5)"), spec.source)
    if not spec["train"]["validation"]:
        tr = spec.settings.get("train")
        raise DLError(Diagnostic("error", "search ranks trials on the validation split, and this spec has none",
                                 tr.span if tr is not None else None,
                                 "add validation=0.2 to the train line (the test split stays unseen)"), spec.source)


def _sample(dims: list[Dimension], rng, n: int) -> list[dict[Dimension, object]]:
    return [{d: d.range.sample(rng) for d in dims} for _ in range(n)]


def search(spec: Spec, trials: int, fine: int | None = None, jobs: int | None = None, seed: int | None = None,
           out: str | Path | None = None, progress: bool = True) -> SearchResult:
    """`trials` in all; the last `fine` of them (default trials // 4) in the narrowed ranges."""
    if trials < 1:
        raise DLError(Diagnostic("error", f"--trials must be at least 1, got {trials}"))
    fine = trials // 4 if fine is None else fine
    if not 0 <= fine < trials:
        raise DLError(Diagnostic("error", f"--fine {fine}: must be from 0 to {trials - 1} (trials - 1)",
                                 hint="the fine trials are part of --trials; the rest are the coarse stage"))
    dims = dimensions(spec)
    _check_searchable(spec, dims)
    t0 = time.perf_counter()
    rng = np.random.default_rng(spec["train"]["seed"] if seed is None else seed)
    # One split for every trial, unless a range changes the data itself.
    splits = None if any(d.key.startswith("data.") for d in dims) else prepare(nominal_spec(spec))
    jobs = max(1, min(jobs or os.cpu_count() or 1, trials))
    classify = spec.task == "classification"
    keys = [d.key for d in dims]
    done: list[Trial] = []
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=trials, desc=f"search {spec.name}", unit="trial", dynamic_ncols=True)

    def trial_text(config) -> str:
        text = substitute(spec.source.text, config)
        # parallel trials run with one BLAS thread each; the spec says so, so that best.dl reproduces its trial
        return apply_overrides(text, spec.source.filename, ["train.threads=1"]) if jobs > 1 else text

    def run(configs, stage):
        batch = [Trial(len(done) + i + 1, stage, {d.key: v for d, v in c.items()}, trial_text(c))
                 for i, c in enumerate(configs)]
        done.extend(batch)
        for i, r in _map(batch, spec.source.filename, splits, jobs):
            for k, v in r.items():
                setattr(batch[i], k, v)
            if bar is not None:
                best = min(done, key=lambda t: t.score(classify))
                if best.status == "ok":
                    metric = f"acc {100 * best.val_acc:.2f}%" if classify else f"loss {best.val_loss:.4g}"
                    bar.set_postfix_str(f"best val {metric} (trial {best.index})", refresh=False)
                bar.update(1)

    fine_ranges, interrupted = {}, False
    try:
        run(_sample(dims, rng, trials - fine), "coarse")
        ok = [t for t in done if t.status == "ok"]
        if fine and ok:
            best = min(ok, key=lambda t: t.score(classify))
            narrow = [d.narrowed(best.values[d.key]) for d in dims]
            fine_ranges = {d.key: d.range.text for d in narrow}
            # the narrowed dimensions keep the originals' places in the text
            run([{orig: v for orig, v in zip(dims, c.values())} for c in _sample(narrow, rng, fine)], "fine")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    done = [t for t in done if t.status != "pending"]
    done.sort(key=lambda t: (t.score(classify), t.index))
    out_dir = Path(out) if out else rf.default_run_dir(f"{spec.name}-search")
    result = SearchResult(spec.name, keys, done, classify, out_dir, fine_ranges,
                          round(time.perf_counter() - t0, 2), jobs, interrupted)
    _write(result, spec)
    if result.best is not None:
        save_plot(out_dir / "search.png", result, dims)
    return result


def _map(batch: list[Trial], filename: str, splits, jobs: int):
    """Yield (position in batch, result) as trials finish."""
    if jobs == 1:
        _worker_init(splits, None)
        for i, t in enumerate(batch):
            yield i, _run_trial(t.text, filename)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a fresh interpreter per worker, no inherited BLAS thread pools or locks
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(splits, 1)) as pool:
        futures = {pool.submit(_run_trial, t.text, filename): i for i, t in enumerate(batch)}
        try:
            for f in as_completed(futures):
                yield futures[f], f.result()
        finally:
            for f in futures:
                f.cancel()  # after Ctrl-C: trials not started yet never start


def save_plot(path: Path, result: SearchResult, dims: list[Dimension]) -> None:
    """One panel per dimension: validation score against the sampled value (log axis for loguniform)."""
    ok = [t for t in result.trials if t.status == "ok"]
    score = (lambda t: 100 * t.val_acc) if result.classify else (lambda t: t.val_loss)  # noqa: E731
    label = "validation accuracy %" if result.classify else "validation loss"
    fig = rf.new_figure((4 * len(dims), 3.5))
    axes = fig.subplots(1, len(dims), squeeze=False)
    for ax, d in zip(axes[0], dims):
        for stage, marker in (("coarse", "o"), ("fine", "^")):
            pts = [(t.values[d.key], score(t)) for t in ok if t.stage == stage]
            if pts:
                xs, ys = zip(*pts)
                numeric = all(isinstance(x, (int, float)) for x in xs)
                ax.scatter(xs if numeric else [str(x) for x in xs], ys, marker=marker, label=stage, alpha=0.8)
        if d.range.kind == "loguniform":
            ax.set_xscale("log")
        if result.best is not None and d.range.kind != "choice":
            ax.axvline(result.best.values[d.key], color="tab:red", ls=":", lw=1)  # the best trial
        ax.set(xlabel=d.key, ylabel=label)
        ax.legend(fontsize=8)
    fig.suptitle(f"{result.spec_name}: {len(result.trials)} trials")
    rf.save_figure(path, fig)


def _write(result: SearchResult, spec: Spec) -> None:
    out = result.out_dir
    out.mkdir(parents=True, exist_ok=True)
    fields = ["rank", "trial", "stage", *result.keys, "val_acc", "val_loss", "train_acc", "train_loss", "epochs",
              "seconds", "status", "message"]
    rows = [{"rank": rank, "trial": t.index, "stage": t.stage, **t.values, "val_acc": t.val_acc,
             "val_loss": t.val_loss, "train_acc": t.train_acc, "train_loss": t.train_loss, "epochs": t.epochs,
             "seconds": t.seconds, "status": t.status, "message": t.message}
            for rank, t in enumerate(result.trials, 1)]
    rf.save_csv(out / "results.csv", rows, fields)
    rf.save_json(out / "results.json", {"model": result.spec_name, "keys": result.keys, "trials": rows,
                                        "fine_ranges": result.fine_ranges, "seconds": result.seconds})
    best = result.best
    if best is not None:
        metric = f"validation accuracy {100 * best.val_acc:.2f}%" if result.classify and best.val_acc is not None \
            else f"validation loss {best.val_loss:.4g}"
        header = (f"# dlc search: best of {len(result.trials)} trials ({metric}), trial {best.index}, from "
                  f"{spec.source.filename}\n")
        rf.atomic_write_text(out / "best.dl", header + best.text)
