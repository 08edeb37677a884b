"""Train a KAN from a JSON config: config → data → train (→ prune → symbolic) → run folder → plots.

    python pykan_mit.py [--config FILE] [--dir DIR] [--set key=value ...]
    python pykan_mit.py --resume RUN_DIR [--dir NEW_DIR] [--set num_steps=N ...]
    torchrun --nproc_per_node=N pykan_mit.py ...    (N processes; see README "Scaling out")

User mistakes end with one line on stderr ("error: …") and exit code 2, before anything is
written. Exit codes: 0 done, 1 training stopped on a non-finite loss, 2 bad input, 3 another
training process failed (torchrun), 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP (the run folder is still
complete; see stop_signals.py). Under torchrun every rank reads the config and the data (errors
are printed by rank 0 alone) before the process group starts; rank 0 alone writes the run folder.
``--check`` validates the config and the data and writes nothing.
"""

import functools
import sys
from pathlib import Path

import distributed

distributed.share_cores()  # before the kernel thread pools start: each rank its share

import cli  # noqa: E402
import config as config_mod  # noqa: E402
import data_store  # noqa: E402
import memory_estimate  # noqa: E402
import resume  # noqa: E402
from errors import UserError  # noqa: E402
from experiment import EXIT_PEER_LOST, initial_model, run_experiment  # noqa: E402
from progress import ProgressBar  # noqa: E402
from run_folder import PROJECT_DIR, RunFolder  # noqa: E402
from runtime import kernel_threads, resolve_device, torch_dtype  # noqa: E402
from stop_signals import StopSignals  # noqa: E402

DEFAULT_CONFIG = "pykan_mit.input"


def parse_args(argv):
    p = cli.ArgumentParser(prog="pykan_mit.py", description="Train a Kolmogorov-Arnold Network.")
    p.add_argument("--config", help=f"JSON config file (default: {DEFAULT_CONFIG})")
    p.add_argument("--dir", help="run folder to create (default: data/<YYYYmmdd-HHMMSS>)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (value as JSON, else a string); repeatable",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue RUN_DIR's run from its last checkpoint (into RUN_DIR, or into --dir)",
    )
    p.add_argument(
        "--check", action="store_true", help="check the config and the data, write nothing"
    )
    p.add_argument(
        "--convert",
        nargs=2,
        metavar=("CSV", "FOLDER"),
        help="write a memory-mapped data store FOLDER from CSV (for data_file), then exit",
    )
    return p.parse_args(argv)


def convert(source: str, target: str) -> int:
    from tqdm import tqdm

    quiet = not sys.stderr.isatty()  # a bar on a terminal only: none in a log file
    with tqdm(
        total=1, unit="B", unit_scale=True, desc="converting", leave=False, disable=quiet
    ) as bar:

        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        rows = data_store.convert_csv(source, target, progress)
    print(f"wrote {rows} rows to {target} (use it as data_file)")
    return 0


def default_config_path() -> str:
    here = Path(DEFAULT_CONFIG)
    return str(here if here.is_file() else PROJECT_DIR / DEFAULT_CONFIG)


def train_from_args(argv: list[str], exit_at_once: bool = False) -> int:
    """Everything that can be a user mistake happens before the run folder exists.
    ``exit_at_once``: see `main`."""
    args = parse_args(argv)
    if args.convert:
        return convert(*args.convert)
    point = None
    if args.resume is not None:
        if args.config is not None:
            raise UserError("--resume takes the run's own config: leave out --config")
        point = resume.read(args.resume)
        config_path, cfg = None, resume.resumed_config(point, args.set)
    else:
        config_path = args.config or default_config_path()
        cfg = config_mod.load_config(config_path, args.set)
    device, dtype = resolve_device(cfg["device"]), torch_dtype(cfg["dtype"])
    if cfg["data_file"] is None:  # the data's size is known before any work
        memory_estimate.check(cfg, device=device)
    bar = ProgressBar() if ProgressBar.wanted(cfg["progress_bar"]) else None
    with kernel_threads(device):
        data = data_store.make_data(cfg, device, dtype, progress=bar)
        if cfg["data_file"] is not None:
            memory_estimate.check(cfg, len(data.x_train), len(data.x_test), device=device)
        if args.check:
            print(f"config and data ok: {data.description}")
            return 0
        if point is not None:
            resume.check_data(point, data)
        model = initial_model(cfg, data, device, dtype) if point is None else None
        group = distributed.start(device)
        try:
            if point is not None and group.active:
                raise UserError("--resume runs in one process (not under torchrun)")
            whole, data = data, distributed.shard_data(data, group)
            stop = StopSignals(exit_at_once=exit_at_once)
            return _run_rank(
                cfg, data, model, args, config_path, device, dtype, group, bar, point, stop, whole
            )
        finally:
            distributed.finish(group)


def _run_rank(
    cfg, data, model, args, config_path, device, dtype, group, bar, point, stop, whole
) -> int:
    """This process's part of the run: rank 0 writes the run folder, the others nothing; a
    resumed run continues in its own folder unless --dir names a new one. ``whole``: the data
    before sharding (rank 0 completes the run folder on it when another rank is lost)."""
    root, echo = group.is_root, bar.write if bar else print
    if not root:
        run = distributed.SilentRunFolder()
    elif point is not None and args.dir is None:
        run = RunFolder(point.folder, echo=echo)
    else:
        run = RunFolder.create(args.dir, echo=echo)
    try:
        with stop:
            return run_experiment(
                cfg,
                data,
                run,
                config_path,
                device,
                dtype,
                progress=bar if root else None,
                stop=stop,
                model=model,
                group=group,
                resume=point,
                whole=whole,
            )
    except distributed.PeerLost as lost:  # the folder keeps what was written so far
        run.log(f"error: {lost}")
        line = f"{lost} (run folder: {run.path})" if root else f"rank {group.rank}: {lost}"
        print(f"error: {line}", file=sys.stderr)
        return EXIT_PEER_LOST
    finally:
        run.close()


def main(argv=None, exit_at_once: bool = False) -> int:
    """The command line (``argv``: default the process's arguments) → its exit code.
    ``exit_at_once`` (the command line's own process only, never in-process use): a second
    SIGTERM/SIGHUP ends the process on the spot; otherwise it raises
    `stop_signals.SecondSignal` (see stop_signals.py)."""
    return cli.run(functools.partial(train_from_args, exit_at_once=exit_at_once), argv)


if __name__ == "__main__":
    sys.exit(main(exit_at_once=True))
