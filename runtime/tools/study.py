"""A search's study on an Optuna storage: samplers, pruner, the storage and its checks, what a study
searches (its signature), and each trial's place in the search (slots, re-runs of interrupted trials).
Bookkeeping only: runtime/tools/search.py runs the trials."""

from __future__ import annotations

from typing import Any

import time

from dlc.compiler.diagnostics import Diagnostic, DLError
from dlc.compiler.search_space import Dimension
from dlc.compiler.spec import Spec, key_changes, settings_key


from dlc.compiler.search_space import SAMPLERS  # noqa: E402,F401  (the one list: the CLI's choices too)


STUDY_FILE = "study.db"


WORKERS_SUFFIX = ".workers"  # the companion study that numbers a study's workers


MAX_SEED = 2 ** 32 - 1


def load_optuna() -> Any:
    try:
        import optuna
    except ImportError:  # pragma: no cover - optuna is a dependency; a broken install is named
        raise DLError(Diagnostic("error", "dlc search needs optuna, which is not installed",
                                 hint='pip install "optuna>=4"')) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # dlc prints its own table; failed trials are rows
    return optuna


def make_sampler(name: str, seed: int):
    optuna = load_optuna()
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "genetic":
        return optuna.samplers.NSGAIISampler(seed=seed)  # a genetic algorithm (one objective here)

    base: Any = optuna.samplers.BaseSampler  # optuna is loaded on first use, so its class is a value here

    class RandomPerTrial(base):
        """Optuna's RandomSampler seeded by (seed, the trial's place in the search): a trial's values
        depend on nothing else, so parallel processes, shared studies and a resumed search sample what
        one process would."""

        def __init__(self):
            self._current = (None, None)

        def infer_relative_search_space(self, study, trial):
            return {}

        def sample_relative(self, study, trial, search_space):
            return {}

        def sample_independent(self, study, trial, param_name, param_distribution):
            if self._current[0] != trial.number:
                slot = trial.user_attrs.get("slot", trial.number)  # its place in the search
                rng_seed = (seed * 1_000_003 + slot) % 2 ** 32
                self._current = (trial.number, optuna.samplers.RandomSampler(seed=rng_seed))
            return self._current[1].sample_independent(study, trial, param_name, param_distribution)

    return RandomPerTrial()


def make_pruner(prune: bool):
    optuna = load_optuna()
    if not prune:
        return optuna.pruners.NopPruner()
    # a trial behind the median of the earlier trials at the same epoch stops, once 5 trials have
    # finished, from its third epoch on
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=3)


def open_storage(url: str):
    optuna = load_optuna()
    if url.startswith("sqlite"):  # several processes write one file: wait for its lock, not fail
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 60}})
    return url


def worker_seed(seed: int, worker: int) -> int:
    """The sampler seed of a worker: the search's seed for the first, distinct ones after it (TPE and
    NSGA-II seeded alike in two processes propose the same values, trial for trial)."""
    return seed if worker == 0 else (seed * 1_000_003 + 7919 * worker) % 2 ** 32


def check_storage_url(url: str) -> None:
    """A storage every worker process, a later resume and other machines can reach: not an in-memory
    SQLite database (sqlite://, sqlite:///:memory:), which each process would make anew and empty."""
    if url.split("?")[0] in ("sqlite://", "sqlite:///", "sqlite:///:memory:") or ":memory:" in url:
        raise DLError(Diagnostic("error", f"--storage {url} is an in-memory database: the search's worker "
                                          "processes and a later resume would each see an empty one",
                                 hint="give a file, e.g. --storage sqlite:///study.db (or leave --storage out: "
                                      "RUN/study.db)"))


def search_signature(nominal: Spec, dims: list[Dimension]) -> dict:
    """What a study searches: each range as written, and the fixed part of the spec (`nominal`: the spec
    with every range at its middle value, as compiler.spec.settings_key reads it)."""
    return {"ranges": {d.key: d.range.text for d in dims}, "fixed": settings_key(nominal)}


def check_same_search(st, name: str, url: str, signature: dict) -> None:
    """Refuse a study that holds another search: other ranges, or another fixed part."""
    known = st.user_attrs.get("signature")
    if known is None:
        keys = st.user_attrs.get("keys")  # a study made before signatures were recorded
        if keys is not None and keys != list(signature["ranges"]):
            raise DLError(Diagnostic("error", f"study '{name}' in {url} searches {', '.join(keys)}, not "
                                              f"{', '.join(signature['ranges'])}",
                                     hint="give this search its own --study NAME (or its own -o folder)"))
        return
    ranges = key_changes(known.get("ranges", {}), signature["ranges"])
    fixed = None if ranges else key_changes(known.get("fixed", {}), signature["fixed"])
    if ranges or fixed:
        what = f"other ranges: {ranges}" if ranges else f"another spec: {fixed}"
        raise DLError(Diagnostic("error", f"study '{name}' in {url} holds another search ({what})",
                                 hint="give this search its own --study NAME (or its own -o folder), or search "
                                      "the same spec and ranges to join or resume it"))


def open_study(optuna, name: str, url: str):
    """Create the study or join it. Processes starting together race to create its tables and its
    record: the loser of the race tries again and joins."""
    for attempt in range(5):
        try:
            return optuna.create_study(study_name=name, storage=open_storage(url), direction="minimize",
                                       load_if_exists=True)
        except Exception as e:  # a URL optuna cannot open: named, not a traceback
            error = e
            if url.split(":", 1)[0] not in ("sqlite", "postgresql", "mysql") and "://" in url:
                break  # not a database optuna knows: trying again will not help
            time.sleep(0.2 * (attempt + 1))
    raise DLError(Diagnostic("error", f"cannot open the study storage {url}: {str(error).splitlines()[0]}",
                             hint="a URL optuna accepts, e.g. sqlite:///study.db or postgresql://user@host/db"))


def requeue_unfinished(st) -> None:
    """Trials an earlier, interrupted run of this search left running or stopped by Ctrl-C are run
    again with the same values and stage; the study remembers which records were replaced."""
    optuna = load_optuna()
    replaced = set(st.user_attrs.get("replaced", []))
    for t in st.get_trials(deepcopy=False):
        running = t.state == optuna.trial.TrialState.RUNNING
        if t.number in replaced or not (running or t.user_attrs.get("status") == "interrupted"):
            continue
        if running:
            try:
                st._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                # a worker of the interrupted run ended it after the listing: redo it only if it was stopped
                if st._storage.get_trial(t._trial_id).user_attrs.get("status") != "interrupted":
                    continue
        replaced.add(t.number)
        fixed = {k: v for k, v in t.user_attrs.items() if k.startswith("fixed:")}
        st.enqueue_trial(t.params, user_attrs={**fixed, "stage": t.user_attrs.get("stage", "coarse"),
                                               "replaces": t.number})
    st.set_user_attr("replaced", sorted(replaced))


def slot_of(trials, t) -> int:
    """A trial's place in the search (0-based): its own, or for a re-run of an interrupted trial the
    place of the trial it replaces (which may itself have been a re-run)."""
    seen = set()
    while "replaces" in t.user_attrs and t.number not in seen:
        seen.add(t.number)
        n = t.user_attrs["replaces"]
        if not isinstance(n, int) or not 0 <= n < len(trials):
            return n if isinstance(n, int) else t.number
        t = trials[n]
    return t.user_attrs.get("slot", t.number)


def new_trial_slot(study, number: int) -> int:
    """A new trial's place in the search: its number, less the records before it that hold no place of
    their own -- re-runs of interrupted trials (which take the place of the trial they replace) and
    surplus records -- so a resumed search runs, and samples, what an uninterrupted one would."""
    before = [t for t in study.get_trials(deepcopy=False) if t.number < number]
    return number - sum(1 for t in before if "replaces" in t.user_attrs or t.user_attrs.get("surplus"))
