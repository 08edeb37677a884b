"""SIGTERM and SIGHUP handled like Ctrl-C: what a scheduler (SLURM, Kubernetes, ``timeout``)
sends at a time limit ends a run with a complete run folder instead of killing it mid-step.

`StopSignals` is a context manager around a run. The first SIGTERM or SIGHUP only records the
request: training finishes the step in progress, stops (``stopped: "terminated"``), and the run
folder is completed (model so far, metrics, history, plots); the exit code is then 128 + the
signal number (143 for SIGTERM, 129 for SIGHUP), as if the signal had ended the process.

A second signal ends at once and prints one line on stderr. In the command line's process
(``exit_at_once``) the handler itself ends the process (`exit_now`: no exception, so nothing
Python runs at that moment, a weakref callback or a finaliser included, can swallow it or print
a traceback; no interpreter finalisation under the kernels' worker threads). The files already
written stay whole: every write is atomic and the temporary file of a write in progress is
removed first (`fileio.remove_unfinished`). In library use (a notebook, tests) the process is
never ended: the second signal raises `SecondSignal` in the main thread, and one raised where
Python can only report it ("Exception ignored in …", e.g. inside a weakref callback) is not
reported but raised again at the next point where it can propagate.

A signal the caller ignores (``nohup`` ignores SIGHUP) stays ignored; on exit the previous
handlers (and ``sys.unraisablehook``) are restored, so in-process callers find nothing changed.
"""

import _thread
import os
import signal
import sys
import threading

import fileio

SIGNALS = (signal.SIGTERM, signal.SIGHUP)
EXIT_BASE = 128  # a process ended by signal n exits with 128 + n in the shells


class SecondSignal(SystemExit):
    """A second SIGTERM/SIGHUP: the run ends at once (files written so far stay whole)."""


def say(line: str) -> None:
    """``line`` on stderr straight to the file descriptor: safe inside a signal handler, where
    the interrupted code may be in the middle of writing to ``sys.stderr``."""
    try:
        os.write(sys.__stderr__.fileno() if sys.__stderr__ else 2, (line + "\n").encode())
    except (OSError, ValueError):
        pass


def exit_now(code: int) -> None:
    """End the process with ``code`` without interpreter finalisation (worker threads of the
    kernels may still be running, and finalising under them can abort the process), after
    removing the temporary file of any write in progress."""
    fileio.remove_unfinished()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # e.g. a reentrant flush: the handler interrupted a write to it
            pass
    os._exit(code)


class StopSignals:
    """``with StopSignals() as stop:`` … ``stop.requested`` (a training loop asks after every
    step); ``stop.signum`` the first signal received (None: none); `exit_code` 128 + it.
    ``exit_at_once``: a second signal ends the process on the spot (for the command line's own
    process only); otherwise it raises `SecondSignal`."""

    def __init__(self, signals=SIGNALS, exit_at_once: bool = False):
        self.signals = tuple(signals)
        self.exit_at_once = exit_at_once
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._previous_hook = None
        self._again: int | None = None  # the second signal
        self._in_hook, self._redeliver, self._helper = False, threading.Event(), None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    def exit_code(self) -> int:
        return EXIT_BASE + self.signum

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
            return
        if self._again is None:
            name = signal.Signals(signum).name
            say(f"{name} received again: stopped at once (the files written so far are whole)")
        self._again = signum
        if self.exit_at_once:
            exit_now(EXIT_BASE + signum)
        if self._in_hook:  # raised here it could not propagate either: deliver it again later
            self._redeliver.set()
            return
        raise SecondSignal(EXIT_BASE + signum)

    def _unraisable(self, info) -> None:
        """A `SecondSignal` raised where it cannot propagate (a weakref callback, a finaliser)
        is not reported: the helper thread delivers the signal to the main thread again, whose
        handler raises it anew where it runs next."""
        self._in_hook = True
        try:
            if isinstance(info.exc_value, SecondSignal) and self._again is not None:
                self._redeliver.set()
            else:
                self._previous_hook(info)
        finally:
            self._in_hook = False

    def _deliver_again(self) -> None:
        """The helper thread: each `_redeliver` sends the second signal to the main thread
        again (from here, so that the handler runs in the main thread's own code)."""
        while True:
            self._redeliver.wait()
            self._redeliver.clear()
            if self._helper is None:
                return
            _thread.interrupt_main(self._again)

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may set handlers: plain Python behaviour then
        for signum in self.signals:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        self._previous_hook, sys.unraisablehook = sys.unraisablehook, self._unraisable
        self._helper = threading.Thread(target=self._deliver_again, daemon=True)
        self._helper.start()
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        if self._previous_hook is not None:
            sys.unraisablehook, self._previous_hook = self._previous_hook, None
        if self._helper is not None:
            helper, self._helper = self._helper, None
            self._redeliver.set()
            helper.join()
