"""``./run_pykan_mit.sh --nproc N``: N training processes on this machine, one owner of their
signals and exit code.

Each process is ``pykan_mit.py`` with the environment torchrun gives its workers (RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), so the training code is the
same as under ``torchrun --standalone --nproc_per_node=N`` (the multi-node launch stays
torchrun's). What this adds is what a terminal user expects of one command:

- The processes run in their own session: a Ctrl-C (SIGINT), SIGTERM or SIGHUP reaches this
  launcher alone, which passes each signal on to every process exactly once, so the ranks see
  one request, agree on the step to stop after, and rank 0 completes the run folder (a second
  signal still ends them at once).
- A process that fails ends the others: they notice the lost peer in their next collective
  (exit 3, rank 0 completing the run folder); one still running GRACE_S later is sent SIGTERM,
  then SIGKILL.
- The exit code is rank 0's unless rank 0 succeeded and another failed; rank 0 killed by a
  signal (and so unable to say why) gets one line here. Nothing else is printed.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "pykan_mit.py"
GRACE_S = 30.0  # a process still running this long after another failed is terminated
POLL_S = 0.1
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def free_port() -> int:
    """A TCP port free on this machine now (the rendezvous of the process group)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rank_environment(rank: int, world: int, port: int, environ=os.environ) -> dict:
    """The environment of process ``rank`` of ``world`` (what torchrun sets for its workers)."""
    ranks = {"RANK": rank, "LOCAL_RANK": rank, "GROUP_RANK": 0, "ROLE_RANK": rank}
    sizes = {"WORLD_SIZE": world, "LOCAL_WORLD_SIZE": world, "ROLE_WORLD_SIZE": world}
    master = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    return {**environ, **{key: str(value) for key, value in {**ranks, **sizes, **master}.items()}}


def exit_code(codes: list[int]) -> int:
    """The launch's exit code from the processes' (rank order; negative: killed by a signal)."""
    shell = [128 - code if code < 0 else code for code in codes]
    if shell[0] != 0:
        return shell[0]
    return next((code for code in shell if code != 0), 0)


def launch(world: int, args: list[str], python: str = sys.executable) -> int:
    """Run ``world`` training processes with ``args``; returns the exit code (module
    docstring)."""
    port = free_port()
    procs = [
        subprocess.Popen(
            [python, str(SCRIPT), *args],
            env=rank_environment(rank, world, port),
            start_new_session=True,  # terminal signals reach only this launcher
        )
        for rank in range(world)
    ]

    def forward(signum, frame) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        _wait(procs)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    codes = [proc.returncode for proc in procs]
    if codes[0] < 0:  # rank 0 says what went wrong, unless it was killed
        name = signal.Signals(-codes[0]).name
        print(f"error: training process 0 was ended by {name}", file=sys.stderr)
    return exit_code(codes)


def _wait(procs: list[subprocess.Popen]) -> None:
    """Until every process ended; after a failure, the survivors get GRACE_S to notice, then
    SIGTERM, then GRACE_S more before SIGKILL."""
    failed_at = None
    terminated = False
    while any(proc.poll() is None for proc in procs):
        if failed_at is None and any(proc.returncode not in (None, 0) for proc in procs):
            failed_at = time.monotonic()
        if failed_at is not None:
            waited = time.monotonic() - failed_at
            for proc in procs:
                if proc.poll() is None and waited > 2 * GRACE_S:
                    proc.kill()
                elif proc.poll() is None and waited > GRACE_S and not terminated:
                    proc.terminate()
            terminated = terminated or waited > GRACE_S
        time.sleep(POLL_S)


def main(argv=None) -> int:
    """``launcher.py N pykan_mit.py-arguments ...``."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or not argv[0].isdigit() or int(argv[0]) < 1:
        print(f"error: --nproc needs a number of processes >= 1, got {argv[:1]}", file=sys.stderr)
        return 2
    return launch(int(argv[0]), argv[1:])


if __name__ == "__main__":
    sys.exit(main())
