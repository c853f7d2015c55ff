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


from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.search_space import Dimension, dimensions, format_value, nominal_spec
from dlc.compiler.spec import Spec, compile, portable_text
from dlc.runtime import run_folder as rf
from dlc.runtime.data.splits import prepare
from dlc.runtime.tools import search_workers as workers
from dlc.runtime.tools.search_trials import SearchConfig, score, trial_text, trial_values, work, work_in_pool
from dlc.runtime.tools.study import (MAX_SEED, SAMPLERS, STUDY_FILE, check_same_search,
                                      check_storage_url, load_optuna, open_study, requeue_unfinished, search_signature, slot_of)


@dataclass
class Trial:
    index: int
    stage: str  # coarse | fine (random search), tpe | genetic
    values: dict[str, object]
    text: str
    status: str = "pending"  # ok | pruned | diverged | invalid
    val_loss: float | None = None
    val_acc: float | None = None
    train_loss: float | None = None
    train_acc: float | None = None
    epochs: int | None = None
    seconds: float | None = None
    message: str = ""

    def score(self, classify: bool) -> float:
        """Lower is better; pruned trials after the finished ones, failed trials last."""
        if self.status == "pruned":
            return 1e9 if self.val_loss is None else 1e6 + score(classify, self.val_loss, self.val_acc)
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
    storage: str = ""
    study: str = ""

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


def search(spec: Spec, trials: int, fine: int | None = None, jobs: int | None = None, seed: int | None = None,
           out: str | Path | None = None, progress: bool = True, sampler: str = "random", prune: bool = False,
           storage: str | None = None, study: str | None = None) -> SearchResult:
    """`trials` in all in the study; with the random sampler the last `fine` of them (default trials // 4)
    sample the ranges narrowed around the best coarse trial. The study lives in `storage` (default
    RUN/study.db); running the same search again, or another `dlc search` on the same storage and
    study, works on the same trials."""
    if trials < 1:
        raise DLError(Diagnostic("error", f"--trials must be at least 1, got {trials}"))
    if sampler not in SAMPLERS:
        raise DLError(Diagnostic("error", f"unknown sampler '{sampler}'", hint="expected one of: " + ", ".join(SAMPLERS)))
    if sampler != "random" and fine:
        raise DLError(Diagnostic("error", f"--fine is random search's second stage; the {sampler} sampler "
                                          "narrows the ranges by itself", hint="drop --fine, or use --sampler random"))
    fine = (trials // 4 if sampler == "random" else 0) if fine is None else fine
    if not 0 <= fine < trials:
        raise DLError(Diagnostic("error", f"--fine {fine}: must be from 0 to {trials - 1} (trials - 1)",
                                 hint="the fine trials are part of --trials; the rest are the coarse stage"))
    seed = spec["train"]["seed"] if seed is None else seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise DLError(Diagnostic("error", f"--seed {seed}: a seed is a whole number from 0 to {MAX_SEED:,}"))
    if storage is not None:
        check_storage_url(storage)
    dims = dimensions(spec)
    _check_searchable(spec, dims)
    optuna = load_optuna()
    t0 = time.perf_counter()
    # the default folder is the search's own, so that running the same command again resumes it
    out_dir = Path(out) if out else Path("runs") / rf.folder_name(f"{spec.name}-search")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / STUDY_FILE).exists() and storage is None:
        # the folder of a search holds its study; any other folder's files (results.csv, best.dl) are not ours
        raise DLError(Diagnostic("error", f"{out_dir} is not empty and holds no search (no {STUDY_FILE})",
                                 hint="give the search a new folder with -o, or the folder of the search to resume"))
    rf.make_dir(out_dir)
    url = storage or f"sqlite:///{(out_dir / STUDY_FILE).resolve()}"
    name = study or spec.name
    keys = [d.key for d in dims]
    try:
        return _search(spec, dims, keys, trials, fine, jobs, seed, out_dir, url, name, storage is None, progress,
                       sampler, prune, t0)
    except Exception as e:  # optuna's storage errors and sqlalchemy's: a foreign table, a read-only file, a lost server
        if not isinstance(e, optuna.exceptions.StorageInternalError) and type(e).__module__.split(".")[0] != "sqlalchemy":
            raise
        first = (str(e).splitlines() or [e.__class__.__name__])[0][:300]
        raise DLError(Diagnostic("error", f"the study storage {url} failed: {first}",
                                 hint="is it a database optuna made, and writable? give the search its own -o "
                                      "folder or --storage")) from None


def _search(spec, dims, keys, trials, fine, jobs, seed, out_dir, url, name, own_storage, progress, sampler, prune,
            t0) -> SearchResult:
    optuna = load_optuna()
    st = open_study(optuna, name, url)
    nominal = nominal_spec(spec)
    signature = search_signature(nominal, dims)
    check_same_search(st, name, url, signature)
    if st.user_attrs.get("signature") is None:
        st.set_user_attr("signature", signature)
    st.set_user_attr("keys", keys)
    if own_storage:
        requeue_unfinished(st)  # only this folder's search uses its own study file
    # One split for every trial, unless a range changes the data itself (texts: the ids depend on the
    # input's length and the embedding's vocab, so each trial tokenizes its own)
    texts = nominal.graph.input_dtype == "int64"
    splits = None if texts or any(d.key.startswith("data.") for d in dims) else prepare(nominal)
    jobs = max(1, min(jobs or os.cpu_count() or 1, trials))
    classify = spec.task == "classification"
    cfg = SearchConfig(name, url, sampler, seed, prune, trials, trials - fine, spec.source.text,
                       spec.source.filename, dims, classify, jobs > 1)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=trials, desc=f"search {spec.name}", unit="trial", dynamic_ncols=True)
    interrupted = False
    try:
        if jobs == 1:
            workers.init(splits, None)
            with workers.stop_flag():  # Ctrl-C stops the trial at its epoch's end, never inside a database write
                work(cfg, on_trial=lambda: _progress(bar, st, cfg))
        else:
            workers.run_pool(work_in_pool, cfg, splits, jobs, lambda: _progress(bar, st, cfg))
        _wait_for_peers(st, cfg, lambda: _progress(bar, st, cfg))
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if bar is not None:
            _progress(bar, st, cfg)
            bar.close()
    done = _collect(st, cfg)
    fine_ranges = st.user_attrs.get("fine_ranges", {}) if fine else {}
    result = SearchResult(spec.name, keys, done, classify, out_dir, fine_ranges,
                          round(time.perf_counter() - t0, 2), jobs, interrupted)
    result.storage, result.study = url, name
    _write(result, spec)
    if result.best is not None:
        save_plot(out_dir / "search.png", result, dims)
    return result


def _wait_for_peers(st, cfg: SearchConfig, tick) -> None:
    """On a shared study, trials other processes are still running finish before the table is written:
    wait for them, as long as twice the longest finished trial took (a process that died leaves its
    trial running for ever; its row is then missing, and a later run on the study shows it)."""
    optuna = load_optuna()
    finished = [t for t in _collect(st, cfg) if t.seconds]
    limit = time.perf_counter() + max(10.0, 2 * max((t.seconds or 0.0 for t in finished), default=0.0))
    while time.perf_counter() < limit:
        running = [t for t in st.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                   if not t.user_attrs.get("surplus")]
        if not running:
            return
        tick()
        time.sleep(0.5)


def _progress(bar, st, cfg: SearchConfig) -> None:
    if bar is None:
        return
    done = _collect(st, cfg)
    bar.n = min(len(done), bar.total)
    best = done[0] if done and done[0].status == "ok" else None
    if best is not None:
        metric = f"acc {100 * (best.val_acc or 0.0):.2f}%" if cfg.classify else f"loss {best.val_loss:.4g}"
        bar.set_postfix_str(f"best val {metric} (trial {best.index})", refresh=False)
    bar.refresh()


def _collect(st, cfg: SearchConfig) -> list[Trial]:
    """The study's finished trials as rows, best first (surplus and replaced records left out)."""
    optuna = load_optuna()
    rows = []
    replaced = set(st.user_attrs.get("replaced", []))
    trials = st.get_trials(deepcopy=False)
    for t in trials:
        a = t.user_attrs
        if a.get("surplus") or t.number in replaced or t.state in (optuna.trial.TrialState.RUNNING,
                                                                   optuna.trial.TrialState.WAITING):
            continue
        if a.get("status") in (None, "interrupted"):
            continue
        values = trial_values(t, cfg.dims)
        rows.append(Trial(slot_of(trials, t) + 1, a.get("stage", "coarse"), values, trial_text(cfg, values),
                          a.get("status"), a.get("val_loss"), a.get("val_acc"), a.get("train_loss"),
                          a.get("train_acc"), a.get("epochs"), a.get("seconds"), a.get("message", "")))
    rows.sort(key=lambda t: (t.score(cfg.classify), t.index))
    return rows


def save_plot(path: Path, result: SearchResult, dims: list[Dimension]) -> None:
    """One panel per dimension: validation score against the sampled value (log axis for loguniform)."""
    ok = [t for t in result.trials if t.status == "ok"]
    score = (lambda t: 100 * t.val_acc) if result.classify else (lambda t: t.val_loss)  # noqa: E731
    label = "validation accuracy %" if result.classify else "validation loss"
    fig = rf.new_figure((4 * len(dims), 3.5))
    axes = fig.subplots(1, len(dims), squeeze=False)
    for ax, d in zip(axes[0], dims):
        for stage, marker in (("coarse", "o"), ("fine", "^"), ("tpe", "o"), ("genetic", "o")):
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
        rf.atomic_write_text(out / "best.dl", header + portable_text(compile(best.text, spec.source.filename,
                                                                            lint=False, max_memory=0)))
