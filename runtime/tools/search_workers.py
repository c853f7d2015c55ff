"""dlc search's worker processes: the state a trial runner keeps (the shared splits, the stop flag),
and the pool that runs trials in parallel -- started with Ctrl-C ignored (its processes inherit that:
none dies mid-import with a traceback), told to stop by a SIGINT and an Event, and shut down on every
path out with Ctrl-C ignored while it waits (a shutdown cut short left idle workers and the interpreter
waiting for each other for ever)."""

from __future__ import annotations

import os
from contextlib import contextmanager

from dlc.runtime.interrupts import sigint_handled_by


_SPLITS = None  # the splits every trial of this process trains on
_LIMITS = None
_STOP = False  # a pool worker got SIGINT: stop at the next epoch's end, never inside a database write
_STOP_EVENT = None  # a pool worker: the parent's stop event (set on Ctrl-C), for a SIGINT that came while it started


def _stop_requested(signum, frame) -> None:
    global _STOP
    _STOP = True


@contextmanager
def stop_flag():
    """One search process (--jobs 1): within the block, Ctrl-C only sets the flag that check_stop() reads at
    the trial's next epoch end and between trials -- as in a pool worker -- so it never lands inside a
    database write (an interrupt raised inside SQLAlchemy's clean-up was swallowed, or left a write half
    done and the search waiting). Off the main thread, or outside the block, Ctrl-C is as before."""
    global _STOP
    _STOP = False
    try:
        with sigint_handled_by(_stop_requested):
            yield
    finally:
        _STOP = False


def check_stop() -> None:
    """KeyboardInterrupt once Ctrl-C reached this worker (or its parent's stop event is set)."""
    if _STOP or (_STOP_EVENT is not None and _STOP_EVENT.is_set()):
        raise KeyboardInterrupt


def init(splits, threads: int | None, pool_worker: bool = False, stop=None) -> None:
    """A process's start as a trial runner: the shared splits, BLAS threads, and in a pool Ctrl-C as a flag."""
    global _SPLITS, _LIMITS, _STOP_EVENT
    _SPLITS = splits
    _STOP_EVENT = stop
    if pool_worker:  # Ctrl-C sets a flag that the trial checks after each epoch, and the loop between trials
        import signal
        signal.signal(signal.SIGINT, _stop_requested)
    if threads:
        from threadpoolctl import threadpool_limits
        _LIMITS = threadpool_limits(threads)  # parallel trials, not parallel BLAS inside each


def shared_splits():
    return _SPLITS


def run_pool(target, cfg, splits, jobs: int, tick) -> None:
    """`target(cfg)` in `jobs` spawned processes until each returns; `tick()` every half second."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = stop = None
    try:
        with _sigint_ignored():
            # spawn: a fresh interpreter per worker, no inherited BLAS thread pools, locks or database connections
            context = multiprocessing.get_context("spawn")
            stop = context.Event()
            pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context,
                                       initializer=init, initargs=(splits, 1, True, stop))
            pending = {pool.submit(target, cfg) for _ in range(jobs)}  # (starts every worker)
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for f in finished:
                f.result()
            tick()
    except KeyboardInterrupt:
        # Ctrl-C reaches every process of the terminal's group; a SIGINT sent to this process alone
        # (kill -INT PID) is passed on, so each worker stops its trial at once and records it as
        # interrupted, instead of the pool finishing every trial first
        if pool is not None:
            _interrupt(pool, stop)
        raise
    finally:
        if pool is not None:
            _shut_down(pool)


@contextmanager
def _sigint_ignored():
    """SIGINT ignored in this process (its main thread) for the block: while the pool starts its processes
    -- they inherit that, so a Ctrl-C during their start (seconds of imports) cannot kill an interpreter
    mid-import with a traceback; each worker takes Ctrl-C from its initializer on, and the stop event tells
    it of one it missed -- and while the pool shuts down."""
    import signal
    with sigint_handled_by(signal.SIG_IGN):
        yield


def _shut_down(pool) -> None:
    """Wait for the workers to end -- an interrupted worker ends at its epoch's end -- on every path out.
    Ctrl-C is ignored meanwhile: a shutdown cut short by a second interrupt left idle workers waiting for
    work and the interpreter's exit waiting for them, for ever."""
    with _sigint_ignored():
        pool.shutdown(wait=True, cancel_futures=True)


def _interrupt(pool, stop) -> None:
    """Tell every worker to stop its trial: the event (seen by a worker still starting), then SIGINT."""
    import signal
    stop.set()
    for process in list(getattr(pool, "_processes", {}).values()):
        try:
            os.kill(process.pid, signal.SIGINT)
        except (OSError, AttributeError):
            pass  # already gone
