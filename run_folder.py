"""The run folder: its layout (every file name is a constant here), its log, and every write.

A run folder is a directory holding what one training run produced. Everything written into it
goes through `RunFolder` (or `write_model_files` for a model saved outside a run), atomically
via fileio, so a file is either complete or absent, and a distributed run only has to let one
process own a `RunFolder`. Reading a whole run back is `saved_run.read_run`; this module knows
the layout, not the model.
"""

import os
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import fileio
from errors import UserError
from model_integrity import CHECKSUM_KEY

PROJECT_DIR = Path(__file__).resolve().parent
BACKUP_PATTERNS = ("*.py", "*.sh", "*.input", "requirements*.txt")

LOG_FILE = "run.log"
BACKUP_DIR = "src_backup"
MODEL_FILE = "pykan_mit_model.pth"
RESUME_FILE = "resume_state.pth"  # the checkpoint `--resume` continues from (resume.py)
RESUME_SUM_FILE = "resume_state.sha256"  # the SHA-256 of its bytes, written after it
STAGED_MODEL_FILE = "pykan_mit_model.next.pth"  # a new model file until its config is written
CONFIG_FILE = "pykan_mit_config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.json"
SAMPLES_FILE = "samples.npz"
SYMBOLIC_FILE = "symbolic.json"
FORMULA_TEXT_FILE = "formula.txt"
FORMULA_LATEX_FILE = "formula.tex"
LOSS_PLOT_FILE = "mse_loss_plot.pdf"
ACTIVATIONS_PLOT_FILE = "layer_{n}_activations.pdf"  # n = 1 .. number of layers
COMPARISON_PLOT_FILE = "3d_comparison_with_info.pdf"
NETWORK_PLOT_FILE = "network_diagram.pdf"
IMPORTANCE_PLOT_FILE = "input_importance.pdf"
CONFUSION_PLOT_FILE = "confusion_matrix.pdf"  # classification
REGIONS_PLOT_FILE = "decision_regions.pdf"  # classification with two inputs


def activations_plot_file(layer: int) -> str:
    """The activation pages of layer ``layer`` (1-based: layer 1 is fed by the inputs)."""
    return ACTIVATIONS_PLOT_FILE.format(n=layer)


def saved_config(config: dict, architecture: dict) -> dict:
    """What pykan_mit_config.json holds: the resolved config plus a "model" block with the
    final architecture (layer dims, grid sizes, degree, dtype, input range trained on)."""
    return {**config, "model": dict(architecture)}


def write_model_files(run_dir, checkpoint: dict, config: dict, architecture: dict) -> None:
    """Write the model file (plain tensors and strings: ``torch.load(weights_only=True)``) and
    the config beside it into ``run_dir``; the config's "model" block repeats the model file's
    checksum (model_integrity.py), so a model file and a config that do not belong together
    are refused on load.

    The pair stays consistent whenever the writing stops (a crash, a full disk, a second
    SIGTERM): the new model is written as STAGED_MODEL_FILE, then the config naming its
    checksum, then the staged file is renamed to MODEL_FILE. Stopped before the config, the
    folder holds the old pair (and a staged file nothing names); stopped after, the config names
    the staged model, which `simple_kan.load_model` then loads; each file is whole (fileio)."""
    run_dir = Path(run_dir)
    staged = run_dir / STAGED_MODEL_FILE
    fileio.save_tensors(staged, checkpoint)
    block = dict(architecture)
    if CHECKSUM_KEY in checkpoint:
        block[CHECKSUM_KEY] = checkpoint[CHECKSUM_KEY]
    fileio.write_json(run_dir / CONFIG_FILE, saved_config(config, block))
    fileio.rename(staged, run_dir / MODEL_FILE)


def staged_model(model_file: Path) -> Path | None:
    """The staged replacement beside a run folder's model file, when there is one."""
    staged = Path(model_file).with_name(STAGED_MODEL_FILE)
    return staged if Path(model_file).name == MODEL_FILE and staged.is_file() else None


def model_paths(path) -> tuple[Path, Path]:
    """(model file, config file) of a run folder, or of a model file's own folder."""
    path = Path(path)
    if path.is_dir():
        return path / MODEL_FILE, path / CONFIG_FILE
    if path.is_file():
        return path, path.parent / CONFIG_FILE
    raise UserError(f"run folder or model file not found: {path}")


def read_document(run_dir, name: str) -> dict | None:
    """The JSON object in ``run_dir/name``; None when there is no such file."""
    path = Path(run_dir) / name
    return fileio.read_json_object(path) if path.is_file() else None


class RunFolder:
    """An existing run folder. ``echo`` shows each log line (default print; e.g. tqdm.write
    beside a progress bar; None: the log file only)."""

    def __init__(self, path, echo: Callable[[str], None] | None = print):
        self.path = Path(path)
        self.echo = echo
        self._log = None

    @classmethod
    def create(
        cls,
        explicit: str | None = None,
        base: Path | None = None,
        echo: Callable[[str], None] | None = print,
    ) -> "RunFolder":
        """``explicit``: the user's --dir (must not exist, or be empty). Otherwise a new
        ``<base>/<YYYYmmdd-HHMMSS>`` under the project's ``data/``, with ``-2``, ``-3``… appended
        when that name is taken (two runs in the same second get different folders)."""
        if explicit is not None:
            path = Path(explicit)
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise UserError(f"--dir {explicit}: already exists and is not an empty folder")
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise UserError(f"--dir {explicit}: cannot create it ({exc.strerror})") from None
            return cls(path, echo)
        base = base or PROJECT_DIR / "data"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        try:
            base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{base}: cannot create the runs folder ({exc.strerror})") from None
        for n in range(1, 10000):
            path = base / (stamp if n == 1 else f"{stamp}-{n}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return cls(path, echo)
        raise UserError(f"{base}: no free run folder name for {stamp}")

    def log(self, message: str) -> None:
        """Show a line (through ``echo``) and append it to run.log (the one file written in
        place: a failed append is a `WriteError`, the lines before stay)."""
        if self.echo is not None:
            self.echo(message)
        try:
            if self._log is None:
                self._log = open(self.path / LOG_FILE, "a", encoding="utf-8", buffering=1)
            self._log.write(message + "\n")
        except OSError as error:
            raise fileio.write_failure(self.path / LOG_FILE, error) from None

    def close(self) -> None:
        if self._log is not None:
            log, self._log = self._log, None
            try:
                log.close()
            except OSError:
                pass  # closing after a failed write: the error was reported then

    def backup_sources(self, config_path: str | None) -> None:
        """Copy the code, scripts, default config and requirements used into src_backup/, plus
        the config file given (if any) under its own name."""
        backup = self.path / BACKUP_DIR
        target = backup
        try:
            backup.mkdir(exist_ok=True)
            for pattern in BACKUP_PATTERNS:
                for src in sorted(PROJECT_DIR.glob(pattern)):
                    target = backup / src.name
                    shutil.copy2(src, target)
            if config_path is not None and os.path.isfile(config_path):
                target = backup / ("config_used_" + Path(config_path).name)
                shutil.copy2(config_path, target)
        except OSError as error:
            raise fileio.write_failure(target, error) from None

    def write_config(self, config: dict, architecture: dict) -> None:
        fileio.write_json(self.path / CONFIG_FILE, saved_config(config, architecture))

    def write_model(self, checkpoint: dict, config: dict, architecture: dict) -> None:
        """The model file and the config beside it (also used for checkpoints)."""
        write_model_files(self.path, checkpoint, config, architecture)

    def write_resume(self, tensors: dict) -> None:
        """The checkpoint training resumes from (name → tensor, see resume.py), then the
        SHA-256 of the file's bytes beside it."""
        path = self.path / RESUME_FILE
        fileio.save_tensors(path, tensors)
        fileio.write_text(self.path / RESUME_SUM_FILE, f"{fileio.file_sha256(path)}  {path.name}\n")

    def write_metrics(self, metrics: dict) -> None:
        fileio.write_json(self.path / METRICS_FILE, metrics)

    def write_history(self, history: dict) -> None:
        fileio.write_json(self.path / HISTORY_FILE, history)

    def write_samples(self, samples: dict) -> None:
        """The arrays re-plotting needs (x_train, y_train, x_test, y_test)."""
        fileio.save_npz(self.path / SAMPLES_FILE, samples)

    def write_symbolic(self, document: dict) -> None:
        fileio.write_json(self.path / SYMBOLIC_FILE, document)

    def write_formulas(self, formulas: list[str], latex: list[str]) -> None:
        """formula.txt (one sympy-parsable line per output) and formula.tex."""
        fileio.write_text(self.path / FORMULA_TEXT_FILE, "\n".join(formulas) + "\n")
        fileio.write_text(
            self.path / FORMULA_LATEX_FILE, "\n".join(f"$${t}$$" for t in latex) + "\n"
        )

    def write_pdf(self, name: str, figures: Iterable) -> Path:
        """The figures as the pages of one PDF (each drawn as it is needed); returns its path."""
        path = self.path / name
        fileio.save_pdf(path, figures)
        return path
