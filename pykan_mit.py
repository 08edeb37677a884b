"""Train a KAN from a JSON config: config → data → train (→ prune → symbolic) → run folder → plots.

    python pykan_mit.py [--config FILE] [--dir DIR] [--set key=value ...]

User mistakes end with one line on stderr ("error: …") and exit code 2, before anything is
written. Exit codes: 0 done, 1 training stopped on a non-finite loss, 2 bad input, 130 Ctrl-C,
143 SIGTERM, 129 SIGHUP (the run folder is still complete; see stop_signals.py).
"""

import sys
from pathlib import Path

import cli
import config as config_mod
import datasets
import memory_estimate
from experiment import initial_model, run_experiment
from progress import ProgressBar
from run_folder import PROJECT_DIR, RunFolder
from runtime import kernel_threads, resolve_device, torch_dtype
from stop_signals import StopSignals

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
    return p.parse_args(argv)


def default_config_path() -> str:
    here = Path(DEFAULT_CONFIG)
    return str(here if here.is_file() else PROJECT_DIR / DEFAULT_CONFIG)


def train_from_args(argv: list[str]) -> int:
    """Everything that can be a user mistake happens before the run folder exists."""
    args = parse_args(argv)
    config_path = args.config or default_config_path()
    cfg = config_mod.load_config(config_path, args.set)
    device, dtype = resolve_device(cfg["device"]), torch_dtype(cfg["dtype"])
    if cfg["data_file"] is None:  # the data's size is known before any work
        memory_estimate.check(cfg)
    bar = ProgressBar() if ProgressBar.wanted(cfg["progress_bar"]) else None
    with kernel_threads(device):
        data = datasets.make_data(cfg, device, dtype, progress=bar)
        if cfg["data_file"] is not None:
            memory_estimate.check(cfg, len(data.x_train), len(data.x_test))
        model = initial_model(cfg, data, device, dtype)
        run = RunFolder.create(args.dir, echo=bar.write if bar else print)
        try:
            with StopSignals() as stop:
                return run_experiment(cfg, data, run, config_path, device, dtype, bar, stop, model)
        finally:
            run.close()


def main(argv=None) -> int:
    return cli.run(train_from_args, argv)


if __name__ == "__main__":
    sys.exit(main())
