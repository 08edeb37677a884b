"""SIGTERM and SIGHUP handled like Ctrl-C: what a scheduler (SLURM, Kubernetes, ``timeout``)
sends at a time limit ends a run with a complete run folder instead of killing it mid-step.

`StopSignals` is a context manager around a run. The first SIGTERM or SIGHUP only records the
request: training finishes the step in progress, stops (``stopped: "terminated"``), and the run
folder is completed (model so far, metrics, history, plots); the exit code is then 128 + the
signal number (143 for SIGTERM, 129 for SIGHUP), as if the signal had ended the process. A second
signal ends at once by raising SystemExit: the files already written stay whole, since every
write is atomic (fileio.py: a file is its old self or complete, and the temporary file of a write
cut short is removed). A signal the caller ignores (``nohup`` ignores SIGHUP) stays ignored; on
exit the previous handlers are restored, so in-process callers find nothing changed.
"""

import os
import signal
import sys
import threading

SIGNALS = (signal.SIGTERM, signal.SIGHUP)
EXIT_BASE = 128  # a process ended by signal n exits with 128 + n in the shells


class SecondSignal(SystemExit):
    """A second SIGTERM/SIGHUP: the run ends at once (files written so far stay whole)."""


def exit_now(code: int) -> None:
    """End the process with ``code`` without interpreter finalisation: worker threads of the
    kernels may still be running, and finalising under them can abort the process."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


class StopSignals:
    """``with StopSignals() as stop:`` … ``stop.requested`` (a training loop asks after every
    step); ``stop.signum`` the first signal received (None: none); `exit_code` 128 + it."""

    def __init__(self, signals=SIGNALS):
        self.signals = tuple(signals)
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

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
        raise SecondSignal(EXIT_BASE + signum)  # the second signal: stop now

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may set handlers: plain Python behaviour then
        for signum in self.signals:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_IGN:
                continue
            self._previous[signum] = previous
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
