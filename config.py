"""The run configuration: defaults → JSON file → `--set key=value` overrides, validated.

`load_config` resolves the three levels in that order and returns a new dict holding every key of
`DEFAULTS`, checked and normalised: ints given for float keys become floats, `input_range` becomes
one [lo, hi] pair per input, and `target_function` is null when the data come from `data_file`.
Anything wrong raises `ConfigError` with one line naming where (file or `--set` argument), the
key, what it must be and the value found.
"""

import copy
import difflib
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from classes import check_task
from errors import ConfigError, DataError
from json_files import MAX_NESTING, check_nesting, read_json_object
from json_files import show as _show
from knots import KNOT_PLACEMENTS
from layer_kernels import BASE_ACTIVATIONS
from nodes import parse_levels
from optimizers import OPTIMIZERS
from runtime import DEVICES, DTYPES
from schedule import UPDATE_STRATEGIES
from targets import FUNCTIONS, compile_target

TASKS = ("regression", "classification")

FUNCTION_NAMES = tuple(FUNCTIONS)
# grid_range_update_every when null: an LBFGS step costs about lbfgs_max_iter Adam steps
RANGE_EVERY, RANGE_EVERY_LBFGS = 100, 5

# Keys whose `--set` value stays text when it happens to read as a JSON number or boolean.
_TEXT_KEYS = ("project_name", "target_function", "data_file", "init_from")


class _Invalid(Exception):
    """A value breaks its key's rule; the message says what the value must be."""

    def __init__(self, message: str, quote_value: bool = True):
        super().__init__(message)
        self.quote_value = quote_value


def _suggestion(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


# ---------------------------------------------------------------------------------------------
# Rules for single keys: each returns the normalised value or raises _Invalid.


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(low: int, high: int | None = None, nullable: bool = False) -> Callable:
    requirement = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    requirement = "null or " + requirement if nullable else requirement

    def check(value: object) -> int | None:
        if value is None and nullable:
            return None
        if not _is_int(value) or value < low or (high is not None and value > high):
            if isinstance(value, float) and value.is_integer():
                raise _Invalid(f"must be {requirement} (write {int(value)}, not {value})", False)
            raise _Invalid(f"must be {requirement}")
        return value

    return check


def _number(
    low: float, high: float = math.inf, open_low: bool = False, open_high: bool = False
) -> Callable:
    if high == math.inf:
        requirement = f"a number {'>' if open_low else '>='} {low:g}"
    else:
        requirement = f"a number in {'(' if open_low else '['}{low:g}, {high:g}"
        requirement += ")" if open_high else "]"

    def check(value: object) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _Invalid(f"must be {requirement}")
        number = float(value)
        if not math.isfinite(number):
            raise _Invalid("must be a finite number")
        above = number > low if open_low else number >= low
        below = number < high if open_high else number <= high
        if not (above and below):
            raise _Invalid(f"must be {requirement}")
        return number

    return check


def _choice(*options: str) -> Callable:
    def check(value: object) -> str:
        if not isinstance(value, str) or value not in options:
            raise _Invalid("must be one of " + ", ".join(json.dumps(o) for o in options))
        return value

    return check


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _project_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("must be a non-empty string")
    return value


def _data_file(value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _Invalid("must be null or the path of a .csv or .npz file")
    return value


def _run_dir(value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise _Invalid("must be null or the path of a run folder")
    return value


def _width(value: object) -> bool:
    """n >= 1, or a KAN 2.0 pair [n_add, n_mult] of integers >= 0 with at least one node."""
    if _is_int(value):
        return value >= 1
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(_is_int(v) and v >= 0 for v in value)
        and sum(value) >= 1
    )


def _layer_dims(value: object) -> list:
    if (
        not isinstance(value, list)
        or len(value) < 2
        or not all(_width(width) for width in value)
        or not (_is_int(value[0]) and _is_int(value[-1]))
    ):
        raise _Invalid(
            "must be a list [n_in, ..., n_out] of at least 2 widths: positive integers, hidden "
            "ones also [n_add, n_mult] pairs (multiplication nodes)"
        )
    return [list(w) if isinstance(w, list) else w for w in value]


def _mult_arity(value: object) -> int | list:
    if _is_int(value) and value >= 2:
        return value
    if isinstance(value, list) and all(
        (_is_int(v) and v >= 2) or (isinstance(v, list) and all(_is_int(a) and a >= 2 for a in v))
        for v in value
    ):
        return [list(v) if isinstance(v, list) else v for v in value]
    raise _Invalid(
        "must be an integer >= 2 (factors of every multiplication node) or one entry per "
        "level: an integer >= 2 or a list of the arities of that level's multiplication nodes"
    )


def _target_function(value: object) -> str | list[str] | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(text, str) for text in value):
        return list(value)
    raise _Invalid("must be an expression string, a list of them (one per output) or null")


def _pair(value: object) -> list[float] | None:
    """[lo, hi] as floats when value is a valid pair, else None."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        return None
    lo, hi = float(value[0]), float(value[1])
    return [lo, hi] if math.isfinite(lo) and math.isfinite(hi) and lo < hi else None


def _input_range(value: object) -> list:
    """One pair [lo, hi] stays one pair here; the number of pairs is checked against layer_dims."""
    single = _pair(value)
    if single is not None:
        return single
    pairs = [_pair(item) for item in value] if isinstance(value, list) and value else [None]
    if any(pair is None for pair in pairs):
        raise _Invalid(
            "must be a pair [lo, hi] with lo < hi, or a list of such pairs, one per input"
        )
    return pairs


def _grid_schedule(value: object) -> list[int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or not all(_is_int(size) and size >= 1 for size in value)
        or any(a >= b for a, b in zip(value, value[1:], strict=False))
    ):
        raise _Invalid("must be null or a non-empty list of strictly increasing positive integers")
    return list(value)


def _symbolic_library(value: object) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(n, str) for n in value):
        raise _Invalid("must be null (all functions) or a non-empty list of function names")
    # symbolic_library owns the names; imported here only when a config names functions (it
    # brings sympy, half a second to import)
    from symbolic_library import LIBRARY

    known = list(LIBRARY)
    for name in value:
        if name not in known:
            raise _Invalid(
                f"has unknown function '{name}'{_suggestion(name, known)} "
                f"(known: {', '.join(known)})",
                False,
            )
    return list(value)


@dataclass(frozen=True)
class Key:
    """One config key: its default, the rule that checks and normalises a value (raising
    `_Invalid`), and the help text of the README's table."""

    default: object
    rule: Callable[[object], object]
    help: str


KEYS: dict[str, Key] = {
    "project_name": Key(
        "KAN_from_Scratch", _project_name, "Name shown in the log and plot titles."
    ),
    "layer_dims": Key(
        [2, 4, 8, 4, 1],
        _layer_dims,
        "Layer widths [n_in, h1, ..., n_out]; n_in and n_out must match the data. A hidden "
        "width is n (addition nodes) or [n_add, n_mult] (KAN 2.0 multiplication nodes).",
    ),
    "mult_arity": Key(
        2,
        _mult_arity,
        "Factors of each multiplication node: an integer, or one entry per level of layer_dims "
        "(an integer or a list, one arity per multiplication node of that level).",
    ),
    "grid_size": Key(10, _integer(1), "Initial number of grid intervals G per edge."),
    "spline_degree": Key(3, _integer(1, 5), "B-spline degree k (1 to 5)."),
    "learning_rate": Key(
        0.001,
        _number(0, open_low=True),
        "Optimizer step size (for lbfgs: the initial step of the line search; 1 as in the KAN "
        "paper).",
    ),
    "num_steps": Key(10000, _integer(0), "Number of optimizer steps."),
    "dataset_size": Key(
        10000, _integer(1), "Training points sampled from target_function (ignored for data_file)."
    ),
    "test_size": Key(
        1000, _integer(1), "Held-out test points (or data_file rows), never trained on."
    ),
    "target_function": Key(
        "exp(sin(pi*x1) + x2**2)",
        _target_function,
        "Expression in x1..xn (a list of them, one per output, when n_out > 1); numbers, "
        "+ - * / **, pi, e and " + " ".join(FUNCTION_NAMES) + ". Null when data_file is used.",
    ),
    "data_file": Key(
        None,
        _data_file,
        "CSV (inputs first, last n_out columns targets, header optional) or .npz with arrays x "
        "and y; replaces target_function.",
    ),
    "task": Key(
        "regression",
        _choice(*TASKS),
        '"regression" or "classification": the data_file\'s last column (y for .npz) holds '
        "class labels (integers or text), one network output per class (n_out = the number of "
        "classes), cross-entropy loss; needs data_file.",
    ),
    "input_range": Key(
        [-1, 1],
        _input_range,
        "Sampling range: one pair [lo, hi] for all inputs, or one pair per input.",
    ),
    "standardize": Key(
        False,
        _boolean,
        "Train with inputs mapped to [-1, 1], outputs to mean 0 / std 1; model, predictions, "
        "history and formula stay in the data's units.",
    ),
    "seed": Key(
        0, _integer(0), "Random seed: same seed, config and machine give identical results."
    ),
    "starts": Key(
        1,
        _integer(1),
        "Initialisations tried (seed + 7919*k, same data): each trains start_steps steps; the "
        "lowest validation (else training) RMSE is trained in full.",
    ),
    "structure_search": Key(
        False,
        _boolean,
        "Train the sum [n, 1] and the product of one-input factors (one multiplication node) "
        "before layer_dims, then the product of factors of inputs and of the pairs the trained "
        "network shows to enter as x_i*x_j; keep the simplest within structure_tolerance "
        "(see How it works).",
    ),
    "structure_tolerance": Key(
        1e-3,
        _number(0, open_low=True),
        "A structure is kept when its validation (else training) RMSE / std is at most this.",
    ),
    "start_steps": Key(
        None,
        _integer(1, nullable=True),
        "Steps of each trial start when starts > 1; null = a tenth of num_steps, at least 50.",
    ),
    "device": Key("auto", _choice(*DEVICES), '"auto" (CUDA when available), "cpu" or "cuda".'),
    "dtype": Key("float32", _choice(*DTYPES), '"float32" or "float64".'),
    "optimizer": Key("adam", _choice(*OPTIMIZERS), '"adam" or "lbfgs".'),
    "batch_size": Key(
        None, _integer(1, nullable=True), "Points per optimizer step; null = full batch."
    ),
    "update_strategy": Key(
        "adaptive",
        _choice(*UPDATE_STRATEGIES),
        'Grid refinement trigger: "adaptive" (loss plateau), "fixed" (every '
        'fixed_update_interval steps) or "none".',
    ),
    "fixed_update_interval": Key(1000, _integer(1), 'Steps between refinements under "fixed".'),
    "max_grid_size": Key(
        100, _integer(1), "Refinement adds no knots beyond this many grid intervals."
    ),
    "adaptive_k": Key(5, _integer(1), "Knots added per input of every layer at each refinement."),
    "grid_schedule": Key(
        None,
        _grid_schedule,
        "Instead of adaptive_k: grid sizes, one per refinement event, e.g. [3, 5, 10, 20, 50] "
        "(sizes not above the current one are skipped); null = use adaptive_k.",
    ),
    "knot_placement": Key(
        "error",
        _choice(*KNOT_PLACEMENTS),
        'Where refinement puts new knots: "error" (where the fit needs resolution), "density" '
        '(data quantiles) or "uniform".',
    ),
    "use_regularization": Key(
        False, _boolean, "Add the L1 + entropy sparsity penalty (paper section 2.5.1)."
    ),
    "l1_weight": Key(0.0, _number(0), "Weight of the L1 term of the sparsity penalty."),
    "entropy_weight": Key(0.0, _number(0), "Weight of the entropy term of the sparsity penalty."),
    "smoothness_weight": Key(
        0.0,
        _number(0),
        "Weight of a roughness penalty on every spline's coefficients (squared 4th differences "
        "for cubics): pins the parts of a spline no training point constrains; 0 = off.",
    ),
    "early_stopping_patience": Key(
        None,
        _integer(1, nullable=True),
        "Stop when validation RMSE has not improved for this many steps and keep the best "
        "model; null = off.",
    ),
    "validation_fraction": Key(
        0.1,
        _number(0, 1, open_low=True, open_high=True),
        "Fraction of the training points held out for early stopping.",
    ),
    "prune": Key(False, _boolean, "After training, remove weak edges and nodes, then fine-tune."),
    "prune_threshold": Key(
        0.01,
        _number(0),
        "Edges and hidden nodes whose attribution (share of the output they carry, 0..1) is "
        "below this are pruned.",
    ),
    "prune_inputs": Key(
        False,
        _boolean,
        "Pruning also removes inputs whose attribution is below prune_threshold; the smaller "
        "model, its formula and predict then take only the inputs kept.",
    ),
    "symbolic": Key(
        False, _boolean, "Fit a symbolic function to every surviving edge and write the formula."
    ),
    "init_from": Key(
        None,
        _run_dir,
        "Start from the trained model of this run folder (its widths, grids and weights) "
        "instead of a fresh one; its inputs and outputs must match layer_dims; null = fresh.",
    ),
    # developer keys (tuning knobs; DEVELOPER_KEYS below starts here)
    "adaptive_patience": Key(
        200,
        _integer(1),
        "Steps the training loss may go without a relative improvement of adaptive_threshold "
        "before an adaptive refinement.",
    ),
    "adaptive_threshold": Key(
        0.01,
        _number(0, 1, open_low=True, open_high=True),
        "Relative loss improvement that counts as progress for the plateau detector.",
    ),
    "base_activation": Key(
        "silu",
        _choice(*BASE_ACTIVATIONS),
        'Base branch b(x) of every edge: "silu", "identity", "tanh" or "none".',
    ),
    "log_interval": Key(500, _integer(1), "Steps between log lines."),
    "checkpoint_interval": Key(
        None,
        _integer(1, nullable=True),
        "Steps between checkpoints in the run folder (the model, and the state --resume "
        "continues from); null = only at clean stops.",
    ),
    "plots": Key(True, _boolean, "Write the PDF plots."),
    "progress_bar": Key(True, _boolean, "Show a progress bar (only on a terminal)."),
    "grid_range_update_every": Key(
        None,
        _integer(0, nullable=True),
        "Steps between grid-range updates from the samples reaching each layer; 0 = never; "
        f"null = {RANGE_EVERY_LBFGS} with lbfgs (each step is lbfgs_max_iter evaluations), "
        f"else {RANGE_EVERY}.",
    ),
    "grid_range_update_until": Key(1000, _integer(0), "No grid-range updates after this step."),
    "grid_eps": Key(
        1.0,
        _number(0, 1),
        "Knot placement at range updates: 1 = uniform over the data range, 0 = at data "
        "quantiles, in between = a blend.",
    ),
    "prune_finetune_steps": Key(500, _integer(0), "Fine-tuning steps after pruning."),
    "symbolic_library": Key(
        None,
        _symbolic_library,
        "Names of the functions symbolic fitting may use; null = all.",
    ),
    "symbolic_r2_threshold": Key(
        0.99,
        _number(0, 1, open_low=True),
        "An edge is replaced by a symbolic function only when its fit reaches this R^2.",
    ),
    "symbolic_finetune_steps": Key(
        1000,
        _integer(0),
        "Fine-tuning steps of the affine parameters after symbolic fitting.",
    ),
    "lbfgs_max_iter": Key(20, _integer(1), "Inner iterations per LBFGS step."),
}
DEFAULTS: dict = {name: key.default for name, key in KEYS.items()}
# Keys beyond the product table: tuning knobs, documented in the README with their defaults.
DEVELOPER_KEYS = tuple(KEYS)[tuple(KEYS).index("adaptive_patience") :]


# ---------------------------------------------------------------------------------------------
# Resolution


def _unknown_key(key: str, where: str) -> ConfigError:
    return ConfigError(f"{where}: unknown key '{key}'{_suggestion(key, DEFAULTS)}")


def _resolve(given: dict, origins: dict[str, str], fallback: str) -> dict:
    """Check `given` (the keys a user set, each from origins[key]) and fill in the defaults."""
    for key in given:
        if key not in DEFAULTS:
            raise _unknown_key(key, origins.get(key, fallback))

    def where(*keys: str) -> str:
        """The origin of the first of `keys` a user set (the defaults when none was)."""
        return next((origins[key] for key in keys if key in origins), fallback)

    cfg = copy.deepcopy({**DEFAULTS, **given})
    for key, spec in KEYS.items():
        try:
            cfg[key] = spec.rule(cfg[key])
        except _Invalid as problem:
            found = f", got {_show(cfg[key])}" if problem.quote_value else ""
            raise ConfigError(f"{where(key)}: {key} {problem}{found}") from None

    try:
        parse_levels(cfg["layer_dims"], cfg["mult_arity"])
    except ValueError as problem:
        raise ConfigError(f"{where('mult_arity', 'layer_dims')}: layer_dims: {problem}") from None
    n_in, n_out = cfg["layer_dims"][0], cfg["layer_dims"][-1]
    explicit_target = given.get("target_function") is not None
    check_task(cfg, where)
    if cfg["data_file"] is not None:
        if explicit_target:
            places = " and ".join(dict.fromkeys([where("data_file"), where("target_function")]))
            raise ConfigError(
                f"{places}: two data sources, data_file "
                f"{_show(cfg['data_file'])} and target_function {_show(cfg['target_function'])}: "
                "set one of them to null"
            )
        cfg["target_function"] = None
    elif cfg["target_function"] is None:
        raise ConfigError(
            f"{where('target_function')}: no data source: set target_function (an expression in "
            f"x1..x{n_in}) or data_file"
        )
    else:
        where_target = where("target_function", "layer_dims")
        _check_target(cfg["target_function"], n_in, n_out, where_target)

    n_pairs = len(cfg["input_range"])
    if isinstance(cfg["input_range"][0], float):
        cfg["input_range"] = [list(cfg["input_range"]) for _ in range(n_in)]
    elif n_pairs != n_in:
        raise ConfigError(
            f"{where('input_range', 'layer_dims')}: input_range has {n_pairs} "
            f"pair{'s' * (n_pairs != 1)}, but layer_dims {_show(cfg['layer_dims'])} has {n_in} "
            "inputs (give one pair per input, or a single pair for all)"
        )
    _settle_null_defaults(cfg)
    if cfg["max_grid_size"] < cfg["grid_size"]:
        raise ConfigError(
            f"{where('max_grid_size', 'grid_size')}: max_grid_size ({cfg['max_grid_size']}) "
            f"must be >= grid_size ({cfg['grid_size']})"
        )
    return cfg


def _check_target(target_function: str | list[str], n_in: int, n_out: int, where: str) -> None:
    if isinstance(target_function, str) and n_out != 1:
        raise ConfigError(
            f"{where}: target_function is one expression but layer_dims has {n_out} outputs "
            f"(give a list of {n_out} expressions)"
        )
    if isinstance(target_function, list) and len(target_function) != n_out:
        raise ConfigError(
            f"{where}: target_function has {len(target_function)} expressions but layer_dims "
            f"has {n_out} outputs"
        )
    try:
        compile_target(target_function, n_in)
    except DataError as error:
        raise ConfigError(f"{where}: {error}") from None


def validate_config(cfg: dict, source: str) -> dict:
    """Check a whole config (e.g. one loaded from a run folder) and return it resolved.

    Keys it lacks take their defaults; `source` names it in error messages.
    """
    return _resolve(cfg, dict.fromkeys(cfg, source), source)


def _parse_override(argument: str) -> tuple[str, object]:
    """`key=value` → (key, value); the value is JSON when it parses as JSON, else plain text."""
    key, equals, text = argument.partition("=")
    key = key.strip()
    if not equals or not key:
        raise ConfigError(f"--set {argument}: expected key=value")
    if key not in DEFAULTS:
        raise _unknown_key(key, f"--set {argument}")
    try:
        value = json.loads(text)
    except ValueError:
        return key, text
    except RecursionError:
        value = [[]] * (MAX_NESTING + 1)
    check_nesting(value, f"--set {argument[:60]}")
    if key in _TEXT_KEYS and isinstance(value, int | float):
        return key, text
    return key, value


def load_config(path: str | None, overrides: Iterable[str] = ()) -> dict:
    """Resolve defaults → JSON file at `path` (None: none) → `--set key=value` overrides."""
    given: dict = {}
    origins: dict[str, str] = {}
    if path is not None:
        given.update(read_json_object(path))
        origins.update(dict.fromkeys(given, str(path)))
    for argument in overrides:
        key, value = _parse_override(argument)
        given[key] = value
        origins[key] = f"--set {argument}"
    return _resolve(given, origins, str(path) if path is not None else "defaults")


def help_table(keys: Iterable[str] = DEFAULTS) -> str:
    """A Markdown table of keys, defaults and meanings (for the README)."""
    rows = ["| key | default | meaning |", "|---|---|---|"]
    rows += [f"| `{key}` | `{json.dumps(KEYS[key].default)}` | {KEYS[key].help} |" for key in keys]
    return "\n".join(rows)


def check_keys(given: dict, where: str) -> dict:
    """Every key with its default, and the keys in ``given`` checked by their own rules, for
    callers that bring their own model and data (`fitting.fit`): no data source, layer_dims or
    cross-key checks. Unknown keys and bad values raise `ConfigError` naming ``where``."""
    for key in given:
        if key not in DEFAULTS:
            raise _unknown_key(key, where)
    cfg = copy.deepcopy({**DEFAULTS, **given})
    for key in given:
        try:
            cfg[key] = KEYS[key].rule(cfg[key])
        except _Invalid as problem:
            found = f", got {_show(cfg[key])}" if problem.quote_value else ""
            raise ConfigError(f"{where}: {key} {problem}{found}") from None
    _settle_null_defaults(cfg)
    return cfg


def _settle_null_defaults(cfg: dict) -> None:
    """Keys whose null default depends on other keys get their value (same for the CLI and
    `fitting.fit`, so both train alike)."""
    if cfg["grid_range_update_every"] is None:
        lbfgs = cfg["optimizer"] == "lbfgs"
        cfg["grid_range_update_every"] = RANGE_EVERY_LBFGS if lbfgs else RANGE_EVERY
