"""Atomic file writes: a file is either its old self or complete, never half-written.

A write that fails (disk full, folder not writable, file-size limit) raises `WriteError` naming
the file and the reason; the file keeps its previous content and no temporary file is left.
A process that must end on the spot (a second SIGTERM, stop_signals.py) first calls
`remove_unfinished`, which removes the temporary files of the writes in progress.
"""

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from errors import UserError, WriteError

_writing: set[Path] = set()  # the targets of the writes in progress (their temporary files)


def write_failure(path: str | os.PathLike, error: OSError) -> WriteError:
    """The one-line `WriteError` for an OSError met writing ``path``."""
    reason = error.strerror or str(error) or type(error).__name__
    return WriteError(f"cannot write {path}: {reason}; the files written before are intact")


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place
    (an OSError on the way becomes a `WriteError`)."""
    path = Path(path)
    _writing.add(path)  # before the temporary file exists: `remove_unfinished` finds it
    try:
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path), dir=path.parent)
        os.close(fd)
    except OSError as error:
        _writing.discard(path)
        raise write_failure(path, error) from None
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(error, OSError):
            raise write_failure(path, error) from None
        raise
    finally:
        _writing.discard(path)


def _temporary_prefix(path: Path) -> str:
    return f".{path.name}."


def remove_unfinished() -> None:
    """Remove the temporary files of the writes in progress (their targets keep their previous
    content), for a process about to end without unwinding (`os._exit`)."""
    for path in list(_writing):
        try:
            left = [p for p in path.parent.iterdir() if p.name.startswith(_temporary_prefix(path))]
            for tmp in left:
                tmp.unlink()
        except OSError:
            pass


def rename(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move the complete file ``source`` to ``target`` in one step (an OSError becomes a
    `WriteError`)."""
    try:
        os.replace(source, target)
    except OSError as error:
        raise write_failure(target, error) from None


def write_text(path: str | os.PathLike, text: str) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def save_npz(path: str | os.PathLike, arrays: dict) -> None:
    """numpy arrays by name into one .npz file."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)

    atomic_write(path, write)


def save_tensors(path: str | os.PathLike, obj) -> None:
    """torch.save of plain containers of tensors/numbers/strings (loadable with weights_only)."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_json_object(path: str | os.PathLike, what: str = "JSON") -> dict:
    """The JSON object in ``path``; a missing, unreadable or non-object file is a UserError."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not a readable {what} ({exc})") from None
    if not isinstance(document, dict):
        raise UserError(f"{path}: the {what} must be a JSON object")
    return document


PDF_METADATA = {"Creator": "pykan_mit", "CreationDate": None}  # no date: reruns give equal files
PDF_DPI = 200  # of the rasterized parts of a page (3-D surfaces)


def save_pdf(path: str | os.PathLike, figures) -> None:
    """matplotlib figures as the pages of one PDF, each drawn (taken from the iterable) as it
    is written."""
    from matplotlib.backends.backend_pdf import PdfPages

    def write(tmp: str) -> None:
        with PdfPages(tmp, metadata=PDF_METADATA) as pdf:
            for fig in figures:
                pdf.savefig(fig, dpi=PDF_DPI)

    atomic_write(path, write)
