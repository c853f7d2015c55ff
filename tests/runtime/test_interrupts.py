"""Ctrl-C that lands where Python swallows it (a __del__ or garbage-collection callback prints
"Exception ignored" and goes on) still stops a run at its next safe point."""

import signal

import pytest

from dlc.runtime import interrupts


class _CleansUpOnCtrlC:
    """An object whose clean-up is running when the user presses Ctrl-C (as SQLAlchemy's did in a search)."""

    def __del__(self):
        signal.raise_signal(signal.SIGINT)  # the handler runs here, inside __del__: its exception is ignored


def _swallowed_interrupt():
    obj = _CleansUpOnCtrlC()
    del obj


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_interrupt_swallowed_in_a_clean_up_is_raised_at_the_next_check():
    with interrupts.remembered():
        _swallowed_interrupt()  # no KeyboardInterrupt gets out of here
        with pytest.raises(KeyboardInterrupt):
            interrupts.check()


def test_an_interrupt_acted_on_is_not_raised_again():
    with interrupts.remembered():
        try:
            signal.raise_signal(signal.SIGINT)
        except KeyboardInterrupt:
            interrupts.taken()
        interrupts.check()  # nothing pending: returns


def test_sigint_is_handled_as_before_outside_the_block():
    with interrupts.remembered():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_training_run_stops_after_the_epoch_in_which_ctrl_c_was_swallowed(tmp_path):
    from dlc.compiler.spec import compile
    from dlc.runtime.trainer import train
    text = "model m {\n input 2\n dense 8 relu\n dense 3 softmax\n}\ndata spiral n=60\ntrain epochs=5 batch=16 seed=0\n"
    spec = compile(text, "m.dl")
    epochs = []

    def on_epoch(row):
        epochs.append(row["epoch"])
        if row["epoch"] == 2:
            _swallowed_interrupt()

    result = train(spec, tmp_path / "run", progress=False, on_epoch=on_epoch)
    assert (result.interrupted, epochs) == (True, [1, 2])
