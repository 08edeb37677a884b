"""Resuming a stopped run: what a checkpoint holds, how it is written and how it is read back.

A checkpoint (run_folder.RESUME_FILE, written atomically every ``checkpoint_interval`` steps and
at every clean stop of the training phase: its last step, early stopping, SIGTERM, SIGHUP,
Ctrl-C) is one file of tensors only, loadable with ``torch.load(weights_only=True)``:

- ``model/<name>``: the model's tensors, in the coordinates training runs in (standardised with
  ``standardize``); its format, architecture and checksum sit in the JSON part, and on reading
  the model part goes through `model_integrity.check` like any model file;
- ``state/<n>``: the other tensors of the loop's state (`training._TrainingRun.export_state`:
  losses so far, Adam moments or LBFGS's curvature pairs, the best-state tracker's states, the
  sampler's order and generators, the RNG states);
- ``json``: a UTF-8 JSON document (as uint8) with the plain values: the resolved config, the
  step, the trial start, a checksum of the training data, and the loop's state with each
  tensor replaced by ``{"$t": n}`` (tuples and non-text keys spelled out, see `encode`);
- ``sha256``: the SHA-256 of all the others (as uint8 hex).

Beside it, run_folder.RESUME_SUM_FILE holds the SHA-256 of the file's bytes (written after it):
a changed byte anywhere in the file, even one torch would read past, is refused.

`read` checks all of it before anything is written; every problem is one `UserError` line.
"""

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

import config
import fileio
import model_integrity
from errors import ConfigError, UserError
from run_folder import RESUME_FILE, RESUME_SUM_FILE, RunFolder
from simple_kan import SimpleKAN

FORMAT = "pykan_mit-resume-1"
RESUMABLE_KEYS = (  # what --set may change on --resume: the run's later course, not its past
    "num_steps",
    "log_interval",
    "checkpoint_interval",
    "progress_bar",
    "plots",
    "project_name",
    "prune",
    "prune_threshold",
    "prune_inputs",
    "prune_finetune_steps",
    "symbolic",
    "symbolic_library",
    "symbolic_r2_threshold",
    "symbolic_finetune_steps",
)


def encode(value, tensors: dict) -> object:
    """``value`` (dicts, lists, tuples, numbers, text, None, tensors) as JSON, each tensor put
    into ``tensors`` under a number (a tensor met twice is stored once)."""
    if isinstance(value, torch.Tensor):
        key = id(value)
        if key not in tensors:
            tensors[key] = (str(len(tensors)), value.detach().cpu())
        return {"$t": tensors[key][0]}
    if isinstance(value, tuple):
        return {"$tuple": [encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: encode(v, tensors) for k, v in value.items()}
        return {"$items": [[encode(k, tensors), encode(v, tensors)] for k, v in value.items()]}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"cannot encode a {type(value).__name__} in a checkpoint")


def decode(value, tensors: dict) -> object:
    """The inverse of `encode` (``tensors``: number → tensor)."""
    if isinstance(value, list):
        return [decode(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "$t" in value:
        return tensors[value["$t"]]
    if "$tuple" in value:
        return tuple(decode(v, tensors) for v in value["$tuple"])
    if "$items" in value:
        return {decode(k, tensors): decode(v, tensors) for k, v in value["$items"]}
    return {k: decode(v, tensors) for k, v in value.items()}


def data_checksum(data) -> str | None:
    """SHA-256 of the training rows (None for rows on disk, which are not hashed)."""
    if not torch.is_tensor(data.x_train):
        return None
    return model_integrity.checksum({"x": data.x_train, "y": data.y_train})


def _text_tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8)


def pack(cfg: dict, model: SimpleKAN, state: dict, start: int, data_sha: str | None) -> dict:
    """The checkpoint's tensors (see the module doc)."""
    ckpt = model.checkpoint()
    found: dict = {}
    document = {
        "format": FORMAT,
        "config": cfg,
        "step": state["steps_done"],
        "start": start,
        "data_sha256": data_sha,
        "model": {k: v for k, v in ckpt.items() if k != "state_dict"},
        "training": encode(state, found),
    }
    tensors = {f"model/{k}": v for k, v in ckpt["state_dict"].items()}
    tensors.update({f"state/{name}": t for name, t in found.values()})
    tensors["json"] = _text_tensor(json.dumps(document))
    tensors["sha256"] = _text_tensor(model_integrity.checksum(tensors))
    return tensors


def write(run: RunFolder, cfg, model, state, start: int, data_sha) -> None:
    run.write_resume(pack(cfg, model, state, start, data_sha))


@dataclass
class ResumePoint:
    """A checkpoint read back: the folder, its config, the step it continues after, the model
    (in training coordinates), the loop's state, the trial start and the data checksum."""

    folder: Path
    config: dict
    step: int
    model: SimpleKAN
    training: dict
    start: int
    data_sha256: str | None


def _damaged(path: Path, what: str) -> UserError:
    return UserError(f"--resume: {path}: damaged checkpoint ({what}); nothing was written")


def _load(path: Path) -> dict:
    sums = path.parent / RESUME_SUM_FILE
    try:
        recorded = sums.read_text(encoding="utf-8").split()[0]
    except (OSError, UnicodeDecodeError, IndexError):
        raise _damaged(path, f"no readable {RESUME_SUM_FILE} beside it") from None
    try:
        found = fileio.file_sha256(path)
    except OSError as exc:
        raise _damaged(path, f"unreadable: {exc.strerror}") from None
    if found != recorded:
        raise _damaged(path, f"its bytes differ from the SHA-256 in {RESUME_SUM_FILE}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, flipped, or not a checkpoint at all
        raise _damaged(path, f"unreadable: {type(exc).__name__}") from None
    if not isinstance(tensors, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()
    ):
        raise _damaged(path, "not a dictionary of tensors")
    if "json" not in tensors or "sha256" not in tensors:
        raise _damaged(path, "no json or sha256 part")
    recorded = bytes(tensors.pop("sha256").tolist()).decode("ascii", "replace")
    if model_integrity.checksum(tensors) != recorded:
        raise _damaged(path, "checksum mismatch")
    return tensors


def read(folder) -> ResumePoint:
    """The checkpoint of run folder ``folder``, checked whole (see the module doc)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"--resume {folder}: no such run folder")
    path = folder / RESUME_FILE
    if not path.is_file():
        raise UserError(
            f"--resume {folder}: no checkpoint ({RESUME_FILE}) in it: it is written every "
            "checkpoint_interval steps and when training stops cleanly"
        )
    tensors = _load(path)
    try:
        document = json.loads(bytes(tensors.pop("json").tolist()).decode("utf-8"))
        if document.get("format") != FORMAT:
            raise _damaged(path, f"format {document.get('format')!r}, expected {FORMAT}")
        state_dict = {k[6:]: v for k, v in tensors.items() if k.startswith("model/")}
        ckpt = {**document["model"], "state_dict": state_dict}
        model_integrity.check(path, ckpt)
        model = SimpleKAN.from_checkpoint(ckpt)
        saved = {k[6:]: v for k, v in tensors.items() if k.startswith("state/")}
        training = decode(document["training"], saved)
        cfg = config.validate_config(document["config"], f"{path} (its config)")
        return ResumePoint(
            folder,
            cfg,
            int(document["step"]),
            model,
            training,
            int(document["start"]),
            document["data_sha256"],
        )
    except UserError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise _damaged(path, f"{type(exc).__name__}: {str(exc)[:120]}") from None


def resumed_config(point: ResumePoint, overrides: list[str]) -> dict:
    """The checkpoint's config with the ``--set`` overrides that may change on a resume
    (`RESUMABLE_KEYS`); any other key, or num_steps below the checkpoint's step, is refused."""
    given = config.load_config(None, overrides)  # the overrides' syntax and values, checked
    changed = {}
    for argument in overrides:
        key = argument.partition("=")[0].strip()
        if key not in RESUMABLE_KEYS:
            raise ConfigError(
                f"--set {argument}: --resume continues the saved run, so {key} cannot change "
                f"(only {', '.join(RESUMABLE_KEYS)} may)"
            )
        changed[key] = given[key]
    cfg = config.validate_config({**point.config, **changed}, f"--resume {point.folder}")
    if cfg["num_steps"] < point.step:
        raise ConfigError(
            f"--resume {point.folder}: num_steps {cfg['num_steps']} is below the checkpoint's "
            f"step {point.step} (set num_steps to {point.step} or more)"
        )
    return cfg


def check_data(point: ResumePoint, data) -> None:
    """Refuse training data other than those the checkpoint's run trained on."""
    found = data_checksum(data)
    if point.data_sha256 is not None and found is not None and found != point.data_sha256:
        raise UserError(
            f"--resume {point.folder}: the training data differ from those the run trained on "
            "(the data file changed?); nothing was written"
        )
