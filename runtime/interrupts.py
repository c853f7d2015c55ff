"""Ctrl-C that is never lost. Python raises KeyboardInterrupt wherever the main thread happens to be --
also inside a garbage-collection callback or a __del__ (SQLAlchemy's, Optuna's), where the interpreter
prints "Exception ignored" and goes on: the user pressed Ctrl-C and the run kept going. Inside
`remembered()` an interrupt still raises at once, and is also remembered until `check()` -- called at the
loop's safe points (each epoch's end, between trials) -- raises it there if it was swallowed."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

_pending = False  # a SIGINT arrived and no KeyboardInterrupt has been taken out of a check() since


def _interrupt(signum, frame) -> None:
    global _pending
    _pending = True
    raise KeyboardInterrupt


@contextmanager
def sigint_handled_by(handler):
    """SIGINT handled by `handler` (a function, or signal.SIG_IGN) within the block, the previous handler
    back after it. Only the main thread may set one: elsewhere the block runs with SIGINT as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def remembered():
    """Within the block, SIGINT raises KeyboardInterrupt and is remembered for `check()`. A no-op off the
    main thread, and where someone else already handles SIGINT (an outer block, a pool worker's flag)."""
    global _pending
    if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    _pending = False
    try:
        with sigint_handled_by(_interrupt):
            yield
    finally:
        _pending = False


def check() -> None:
    """KeyboardInterrupt here if a Ctrl-C arrived that no one has acted on (one swallowed where it landed)."""
    global _pending
    if _pending:
        _pending = False
        raise KeyboardInterrupt


def taken() -> None:
    """The KeyboardInterrupt was caught and acted on: a later check() must not raise it again."""
    global _pending
    _pending = False
