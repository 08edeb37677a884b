"""The run folder: a unique timestamped directory, its log, and every file written into it.

All writes of a run go through here (atomically, via fileio), so a distributed run only has to
let one process own a `RunFolder`.
"""

import os
import shutil
import time
from pathlib import Path

import fileio
from errors import UserError

PROJECT_DIR = Path(__file__).resolve().parent
BACKUP_PATTERNS = ("*.py", "*.sh", "*.input", "requirements*.txt")


class RunFolder:
    def __init__(self, path: Path):
        self.path = path
        self._log = open(path / "run.log", "a", encoding="utf-8", buffering=1)
        self._echo = None  # optional writer used instead of print (e.g. tqdm.write)

    @classmethod
    def create(cls, explicit: str | None = None, base: Path | None = None) -> "RunFolder":
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
            return cls(path)
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
            return cls(path)
        raise UserError(f"{base}: no free run folder name for {stamp}")

    def log(self, message: str) -> None:
        """Print a line and append it to run.log."""
        (self._echo or print)(message)
        self._log.write(message + "\n")

    def close(self) -> None:
        self._log.close()

    def file(self, name: str) -> Path:
        return self.path / name

    def write_json(self, name: str, obj) -> None:
        fileio.write_json(self.path / name, obj)

    def write_text(self, name: str, text: str) -> None:
        fileio.write_text(self.path / name, text)

    def write_npz(self, name: str, arrays: dict) -> None:
        fileio.save_npz(self.path / name, arrays)

    def backup_sources(self, config_path: str | None) -> None:
        """Copy the code, scripts, default config and requirements used into src_backup/, plus
        the config file given (if any) under its own name."""
        backup = self.path / "src_backup"
        backup.mkdir(exist_ok=True)
        for pattern in BACKUP_PATTERNS:
            for src in sorted(PROJECT_DIR.glob(pattern)):
                shutil.copy2(src, backup / src.name)
        if config_path is not None and os.path.isfile(config_path):
            shutil.copy2(config_path, backup / ("config_used_" + Path(config_path).name))
