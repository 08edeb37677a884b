"""A saved run read back from its folder alone: the model, its config, and what the run wrote
about itself (metrics, history, samples, symbolic result). Nothing in the folder is imported
or executed (see `simple_kan.load_model`)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import run_folder
import simple_kan
from errors import UserError
from symbolic import SymbolicResult

SAMPLE_ARRAYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass
class SavedRun:
    """model: in eval mode on the device asked for; config: the saved config (with its "model"
    block); metrics and history: {} when the file is absent; samples: the arrays of
    `SAMPLE_ARRAYS` (and any others saved); symbolic: None when the run has no symbolic.json."""

    model: simple_kan.SimpleKAN
    config: dict
    metrics: dict
    history: dict
    samples: dict[str, np.ndarray]
    symbolic: SymbolicResult | None


def _read_samples(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UserError(f"no {path.name} in {path.parent}: the plots need the saved samples")
    try:
        with np.load(path, allow_pickle=False) as data:
            samples = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [k for k in SAMPLE_ARRAYS if k not in samples]
    if missing:
        raise UserError(f"{path}: missing array{'s' * (len(missing) > 1)} {', '.join(missing)}")
    return samples


def _read_symbolic(run_dir: Path) -> SymbolicResult | None:
    document = run_folder.read_document(run_dir, run_folder.SYMBOLIC_FILE)
    if document is None:
        return None
    try:
        return SymbolicResult.from_dict(document)
    except ValueError as exc:
        path = run_dir / run_folder.SYMBOLIC_FILE
        raise UserError(f"{path}: not a symbolic result ({exc})") from None


def read_run(run_dir, device="cpu") -> SavedRun:
    """Everything a run folder holds about its run; a missing folder, model or samples file, or
    an unreadable file, is a UserError naming it."""
    run_dir = Path(run_dir)
    model, config = simple_kan.load_model(run_dir, device)
    samples = _read_samples(run_dir / run_folder.SAMPLES_FILE)
    history = run_folder.read_document(run_dir, run_folder.HISTORY_FILE) or {}
    metrics = run_folder.read_document(run_dir, run_folder.METRICS_FILE) or {}
    return SavedRun(model, config, metrics, history, samples, _read_symbolic(run_dir))
