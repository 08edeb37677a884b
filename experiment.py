"""One experiment, as the CLI runs it: build, train, prune, symbolic, write, plot, exit code.

`run_experiment` reads like the experiment; each phase is a function below. Every file goes
through the `RunFolder`; the model, data and config come from the caller (pykan_mit.py). On
several processes (``group``, distributed.py) ``data`` is this rank's shard: training and the
metrics are global, the later phases see `distributed.global_view`, and only rank 0 writes.
"""

import copy
import sys
import time

import numpy as np
import torch

import class_formulas
import classes
import distributed
import resume as resume_mod
import starts
import structures
import training
import units
from arrays import rmse, to_numpy
from datasets import Data
from errors import ConfigError, UserError
from run_folder import RunFolder
from simple_kan import SimpleKAN, load_model

SAMPLE_ROWS = 2000  # training rows kept in samples.npz for re-plotting
EXIT_OK, EXIT_NON_FINITE, EXIT_INTERRUPTED = 0, 1, 130
EXIT_PEER_LOST = 3  # several processes: another one failed; this one stopped
FINISHED = ("completed", "early_stopping")  # stops after which the later phases run


class History:
    """history.json: the per-step RMSEs of every training phase, one after the other, the grid
    and pruning events, and the phases' step ranges."""

    KEYS = ("step", "train_rmse", "test_rmse", "val_rmse", "train_loss", "test_loss", "val_loss")

    def __init__(self, first: training.TrainResult, name: str = "train"):
        self.record = {**first.history, "events": list(first.events), "phases": []}
        self.record["phases"].append({"name": name, "start": 0, "end": first.steps})

    @property
    def steps(self) -> int:
        return len(self.record["step"])

    def add_event(self, event: dict) -> None:
        self.record["events"].append(event)

    def append(self, result: training.TrainResult, name: str, start: int) -> None:
        for key in self.KEYS:
            if key in self.record and key in result.history:
                self.record[key] = self.record[key] + result.history[key]
        self.record["phases"].append({"name": name, "start": start, "end": start + result.steps})


def build_model(cfg: dict, data: Data, device, dtype, start: int = 0) -> SimpleKAN:
    torch.manual_seed(starts.start_seed(cfg, start))
    return SimpleKAN(
        cfg["layer_dims"],
        grid_size=cfg["grid_size"],
        spline_degree=cfg["spline_degree"],
        grid_range=data.input_range,
        base_activation=cfg["base_activation"],
        dtype=dtype,
        device=device,
        mult_arity=cfg["mult_arity"],
        input_names=data.input_names or None,
    )


def initial_model(cfg: dict, data: Data, device, dtype) -> SimpleKAN:
    """The model training starts from: a fresh one (`build_model`), or with ``init_from`` the
    trained model of that run folder, checked against the data's inputs and outputs (before any
    run folder exists: a problem raises UserError with one line)."""
    if cfg["init_from"] is None:
        return build_model(cfg, data, device, dtype)
    try:
        model, _ = load_model(cfg["init_from"], device)
    except UserError as error:
        raise ConfigError(f"init_from: {error}") from None
    n_in, n_out = model.node_counts[0], model.node_counts[-1]
    want_in, want_out = data.x_train.shape[1], data.y_train.shape[1]
    if (n_in, n_out) != (want_in, want_out):
        raise ConfigError(
            f"init_from {cfg['init_from']}: its model maps {n_in} inputs to {n_out} outputs, "
            f"the data have {want_in} and {want_out}"
        )
    return model.to(dtype=dtype).train()


def start_run(run: RunFolder, cfg: dict, model: SimpleKAN, data: Data, config_path, device):
    run.backup_sources(config_path)
    run.write_config(cfg, model.architecture())
    run.log(f"{cfg['project_name']}: {data.description}")
    run.log(
        f"model {cfg['layer_dims']}, grid {cfg['grid_size']}, degree {cfg['spline_degree']}, "
        f"{model.num_parameters} parameters, {cfg['optimizer']}, {device} {cfg['dtype']}"
    )
    run.log(f"run folder: {run.path}")


def prune_and_finetune(
    cfg, model, data, run, history: History, progress, view=None, group=None, stop=None
):
    """Prune weak edges and nodes (and, with prune_inputs, inputs), then fine-tune the smaller
    model; returns (model, data and view with the inputs it kept, report, fine-tuning result).
    Scores come from ``view`` (default ``data``), fine-tuning runs on ``data``."""
    view, group = view or data, group or distributed.SINGLE
    model, report = model.prune(view.x_train, cfg["prune_threshold"], cfg["prune_inputs"])
    unused, dropped = report["unused_inputs"], report["dropped_inputs"]
    run.log(
        f"pruned {report['dims_before']} -> {report['dims_after']} "
        f"({report['edges_before']} -> {report['edges_after']} edges)"
        + (f"; inputs feeding nothing: {', '.join(unused)}" if unused else "")
        + (f"; inputs dropped: {', '.join(dropped)}" if dropped else "")
    )
    if dropped:
        columns = [data.input_names.index(n) for n in model.input_names]
        data, view = data.select_inputs(columns), view.select_inputs(columns)
    start = history.steps
    history.add_event({"step": start, "kind": "prune", **report})
    fine = training.train(
        cfg,
        model,
        data,
        num_steps=cfg["prune_finetune_steps"],
        first_step=start,
        refine=False,
        regularize=False,
        log=run.log,
        progress=progress,
        label="finetune",
        stop=stop,
        group=group,
    )
    history.append(fine, "prune_finetune", start)
    return model, data, view, report, fine


def measure(cfg, model, data: Data, history: History, stopped: str, device, group=None) -> dict:
    group = group or distributed.SINGLE
    if cfg["task"] == "classification":
        return measure_classes(cfg, model, data, history, stopped, device)
    if group.active or not torch.is_tensor(data.x_train):  # several ranks, or rows on disk
        train_rmse = distributed.split_rmse(group, model, data.x_train, data.y_train)
        test_rmse = distributed.split_rmse(group, model, data.x_test, data.y_test)
    else:
        with torch.no_grad():
            train_rmse = rmse(model(data.x_train), data.y_train)
            test_rmse = rmse(model(data.x_test), data.y_test)
    metrics = {
        "project_name": cfg["project_name"],
        "train_rmse": train_rmse,
        "test_rmse": test_rmse,
        **_run_facts(
            cfg,
            model,
            history,
            stopped,
            device,
            group.shard(len(data.x_train)).total,
            group.shard(len(data.x_test)).total,
        ),
    }
    if group.active:
        metrics["processes"] = group.world
    if data.x_val is not None:
        metrics["val_rmse"] = distributed.split_rmse(group, model, data.x_val, data.y_val)
    return metrics


def measure_classes(cfg, model, data: Data, history: History, stopped: str, device) -> dict:
    """metrics.json of a classification: accuracy, log-loss and the rows of every class, for
    each split (classes.py)."""
    names = list(data.output_names)
    metrics = {"project_name": cfg["project_name"], "task": "classification", "classes": names}
    splits = {"train": (data.x_train, data.y_train), "test": (data.x_test, data.y_test)}
    if data.x_val is not None:
        splits["val"] = (data.x_val, data.y_val)
    counts = {}
    with torch.no_grad():
        for split, (x, y) in splits.items():
            for key, value in classes.classification_metrics(model(x), y).items():
                metrics[f"{split}_{key}"] = value
            counts[split] = classes.class_counts(y, names)
    metrics["class_counts"] = counts
    metrics.update(
        _run_facts(cfg, model, history, stopped, device, len(data.x_train), len(data.x_test))
    )
    return metrics


def _run_facts(cfg, model, history: History, stopped: str, device, n_train, n_test) -> dict:
    """What metrics.json says of the network and the run, whatever the task."""
    return {
        "num_parameters": model.num_parameters,
        "layer_dims": model.layer_dims,
        "grid_sizes": model.grid_sizes,
        "spline_degree": model.spline_degree,
        "steps": history.steps,
        "stopped": stopped,
        "refinements": [e for e in history.record["events"] if e["kind"] == "refine"],
        "training_points": n_train,
        "test_points": n_test,
        "device": str(device),
        "dtype": cfg["dtype"],
    }


FORMULA_SLACK = 10.0  # a formula is presented only within this factor of the network's test RMSE


def fit_formula(cfg, model, data: Data, run: RunFolder, metrics: dict):
    """Symbolic formulas for the trained model (symbolic.py); written to the run folder and
    summarised in ``metrics``. Returns the `symbolic.SymbolicResult`, or None when the network
    itself does not explain the test data (then there is no law to read off it).

    A formula is presented as found only when every edge has a symbolic fit and the composed
    formula's test RMSE is within FORMULA_SLACK of the network's; otherwise metrics say "no
    formula" with the reason, and the best partial form when there is one."""
    import formula_units  # sympy takes a while to import: only runs that fit formulas pay
    import symbolic

    if cfg["task"] == "classification":  # one formula per class logit, its own rules
        return class_formulas.fit_class_formulas(
            cfg, model, data, run, metrics, _no_formula, _unfit_note
        )
    with torch.no_grad():
        explained = _explained_variance(model(data.x_test), data.y_test)
    if explained < cfg["symbolic_r2_threshold"]:
        return _no_formula(
            run,
            metrics,
            f"no formula: the network explains only R^2 = {explained:.3g} of the test data "
            "(noise, or a relation this network cannot represent)",
        )
    run.log("fitting symbolic functions to every edge ...")
    view, x, y, origins = model, data.x_train, data.y_train, None
    if model.has_units:  # fit in the network's coordinates, then map back (units.py)
        view = copy.copy(model)
        view.has_units = False
        x = model.net_inputs(x)
        y = (y - model.out_shift) / model.out_scale
        origins = (model.in_shift / model.in_scale).tolist()
    result = symbolic.symbolify(
        view,
        x,
        y,
        library=cfg["symbolic_library"],
        r2_threshold=cfg["symbolic_r2_threshold"],
        finetune_steps=cfg["symbolic_finetune_steps"],
        standardized=model.has_units,
        origins=origins,
    )
    run.write_symbolic(result.to_dict())
    if not result.ok:
        _no_formula(run, metrics, _unfit_note(result))
        return result
    if model.has_units:
        result = formula_units.in_data_units(result, model, data.x_train, data.y_train)
    pred = symbolic.evaluate_formula(result.exprs, to_numpy(data.x_test), model.input_names)
    result.test_rmse = rmse(pred, to_numpy(data.y_test))
    network = metrics["test_rmse"]
    formulas = result.formulas
    shown = formulas if len(formulas) > 1 else formulas[0]
    if not result.test_rmse <= FORMULA_SLACK * network + 1e-12 * _spread(data.y_test):
        _no_formula(
            run,
            metrics,
            f"no formula: the composed formula misses the test data (RMSE "
            f"{result.test_rmse:.3e}, the network's {network:.3e})",
            partial=shown,
        )
        return None
    metrics["formula"] = shown
    metrics["formula_test_rmse"] = result.test_rmse
    run.write_formulas(formulas, result.latex)
    for k, f in enumerate(formulas):
        run.log(f"formula y{k + 1} = {f}")
    run.log(f"formula test_rmse {result.test_rmse:.4e}")
    return result


def _unfit_note(result) -> str:
    where = ", ".join(f"layer {la + 1} edge {i + 1}->{j + 1}" for la, j, i in result.unfit_edges)
    return f"no formula: edges not symbolic: {where}"


def _explained_variance(pred: torch.Tensor, y: torch.Tensor) -> float:
    """The smallest R^2 over the outputs (1 - MSE / variance; a constant output counts as 1)."""
    var = y.var(dim=0, unbiased=False)
    mse = ((pred - y) ** 2).mean(dim=0)
    r2 = torch.where(var > 0, 1 - mse / torch.where(var > 0, var, 1.0), 1.0)
    return float(r2.min())


def _spread(y) -> float:
    return float(np.ptp(to_numpy(y))) if len(y) else 0.0


def _no_formula(run: RunFolder, metrics: dict, note: str, partial=None) -> None:
    metrics["formula"] = None
    metrics["formula_note"] = note
    if partial is not None:
        metrics["formula_partial"] = partial
    run.log(note + (f"; best partial form: {partial}" if partial is not None else ""))


def write_results(run: RunFolder, cfg, model, data: Data, history: History, metrics, started):
    run.write_model(model.checkpoint(), cfg, model.architecture())
    samples = {
        "x_train": to_numpy(data.x_train[:SAMPLE_ROWS]),
        "y_train": to_numpy(data.y_train[:SAMPLE_ROWS]),
        "x_test": to_numpy(data.x_test),
        "y_test": to_numpy(data.y_test),
    }
    run.write_samples(samples)
    run.write_history(history.record)
    metrics["wall_time_s"] = round(time.perf_counter() - started, 3)
    run.write_metrics(metrics)
    if "train_rmse" in metrics:
        scores = f"train_rmse {metrics['train_rmse']:.4e}  test_rmse {metrics['test_rmse']:.4e}"
    else:
        scores = f"train_accuracy {metrics['train_accuracy']:.4f}  " + (
            f"test_accuracy {metrics['test_accuracy']:.4f}"
            if metrics["test_accuracy"] is not None
            else ""
        )
    run.log(
        f"done: {scores}  "
        f"dims {model.layer_dims}  grid {model.grid_sizes}  {metrics['wall_time_s']:.1f} s"
    )
    return samples


def draw_plots(run: RunFolder, cfg, model, data: Data, history: History, metrics, samples, formula):
    import plots  # matplotlib: only runs that plot pay for its import

    t0 = time.perf_counter()
    failures = plots.plot_all(
        run, model, data.x_train, history.record, metrics, cfg, samples, formula
    )
    for failure in failures:
        run.log(f"warning: {failure}")
    run.log(f"plots written in {time.perf_counter() - t0:.1f} s")


def _first_model(cfg, data: Data, model, run: RunFolder, config_path, device, dtype):
    """The model training starts from (given, or built from the best of cfg["starts"]) and
    the index of that start; the run folder gets its config and first log lines."""
    model = build_model(cfg, data, device, dtype) if model is None else model
    start_run(run, cfg, model, data, config_path, device)
    start = 0
    if cfg["init_from"] is None:
        start = starts.best_start(
            cfg, data, lambda k: build_model(cfg, data, device, dtype, k), run.log
        )
    if start:
        model = build_model(cfg, data, device, dtype, start)
    return model, start


def _add_choices(metrics, cfg, importance, start, prune_report, searched) -> None:
    """What the run chose on its way: input importance, the start, pruning, the structure."""
    metrics["input_importance"] = importance
    if cfg["starts"] > 1:
        metrics["start_seed"] = starts.start_seed(cfg, start)
    if prune_report is not None:
        metrics["prune"] = prune_report
    if searched is not None:
        metrics["structure"] = searched.name
        metrics["structure_search"] = searched.report


def _searching(cfg, model, group, run: RunFolder) -> bool:
    """Whether this run searches the network's structure (structures.py)."""
    if not cfg["structure_search"] or model is not None or cfg["init_from"] is not None:
        return False
    if group.active:
        run.log("structure_search: off (it runs in one process)")
        return False
    return True


def _search(cfg, data: Data, run: RunFolder, config_path, device, dtype, train, scale):
    """The structure search (structures.py) after the run folder's first lines; ``scale``: the
    standardised coordinates (units.py) or None."""
    start_run(run, cfg, build_model(cfg, data, device, dtype), data, config_path, device)
    origins = None if scale is None else (scale.in_shift / scale.in_scale).tolist()
    return structures.search(
        cfg,
        data,
        lambda c, k: build_model(c, data, device, dtype, k),
        train,
        run.log,
        training.FINISHED,
        origins,
    )


def _starting_model(cfg, data: Data, model, run: RunFolder, config_path, device, dtype, resume):
    """`_first_model`, or the model of the checkpoint ``resume`` (a `resume.ResumePoint`)."""
    if resume is None:
        return _first_model(cfg, data, model, run, config_path, device, dtype)
    model = resume.model.to(device).train()
    start_run(run, cfg, model, data, None, device)
    run.log(f"resumed from {resume.folder} after step {resume.step}")
    return model, resume.start


def _checkpoints(cfg, run: RunFolder, raw: Data, scale, start: int):
    """The training loop's checkpoint callback: the state to resume from (resume.py) and, at
    each ``checkpoint_interval``, the model file (always in the data's units)."""
    data_sha = resume_mod.data_checksum(raw)

    def checkpoint(m, step, state, final):
        if state is not None:
            resume_mod.write(run, cfg, m, state, start, data_sha)
        if final:
            return
        if scale is not None:
            m = copy.deepcopy(m)
            units.adopt(m, raw, scale)
        run.write_model(m.checkpoint(), cfg, m.architecture())

    return checkpoint


def _first_training(
    cfg, data, raw, scale, run, config_path, device, dtype, model, group, resume, **loop
):
    """The first training phase: the structure search (structures.py) or one network, fresh
    or resumed; returns (cfg, model, start, result, search or None)."""
    if resume is None and _searching(cfg, model, group, run):

        def train(c, m, log=run.log):
            check = _checkpoints(c, run, raw, scale, 0)
            return training.train(c, m, data, log=log, checkpoint=check, group=group, **loop)

        searched = _search(cfg, data, run, config_path, device, dtype, train, scale)
        return searched.cfg, searched.model, searched.start, searched.result, searched
    model, start = _starting_model(cfg, data, model, run, config_path, device, dtype, resume)
    checkpoint = _checkpoints(cfg, run, raw, scale, start)
    result = training.train(
        cfg,
        model,
        data,
        log=run.log,
        checkpoint=checkpoint,
        group=group,
        resume=None if resume is None else resume.training,
        **loop,
    )
    return cfg, model, start, result, None


def _alone(run: RunFolder, group, whole: Data | None, message: str) -> Data:
    """After a rank was lost in training: rank 0 goes on alone on the whole data (returned);
    any other rank stops (`distributed.PeerLost`)."""
    if not group.is_root or whole is None:
        raise distributed.PeerLost(message)
    run.log(f"error: {message}; completing the run folder in this process")
    return whole


def _before_pruning(record: dict) -> float | None:
    """The test RMSE of the last step before pruning (None when not recorded)."""
    step = next((e["step"] for e in record.get("events", []) if e["kind"] == "prune"), None)
    steps, values = record.get("step", []), record.get("test_rmse", [])
    before = [v for s, v in zip(steps, values) if step is not None and s <= step]
    return before[-1] if before else None


def _units(cfg, data: Data, group, run: RunFolder):
    """The standardised coordinates training runs in (units.py), or None."""
    if not cfg["standardize"] or cfg["init_from"] is not None or cfg["task"] != "regression":
        return None
    if group.active or not torch.is_tensor(data.x_train):
        run.log("standardize: off (it needs the whole training set in one process)")
        return None
    return units.units_of(data, keep_origin=cfg["structure_search"])


def run_experiment(
    cfg,
    data: Data,
    run: RunFolder,
    config_path,
    device,
    dtype,
    progress=None,
    stop=None,
    model=None,
    group=None,
    resume=None,
    whole=None,
):
    """The whole experiment into ``run``, from ``model`` (default: `build_model`, with
    cfg["starts"] trial starts) or, with ``resume`` (a `resume.ResumePoint`), from the state
    of that checkpoint; returns the exit code (0 done, 1 non-finite loss, 130 interrupted,
    128 + n after signal n of ``stop`` (a `stop_signals.StopSignals`): 143 SIGTERM, 129 SIGHUP;
    3 another rank lost during training; the run folder is complete in every case).

    ``whole``: with several ranks, the data before sharding; when a rank is lost during
    training, rank 0 completes the run folder alone from the last good state on it (the other
    survivors stop: `distributed.PeerLost`)."""
    group = group or distributed.SINGLE
    started = time.perf_counter()
    raw, scale = data, _units(cfg, data, group, run)
    if scale is not None:
        data, model = units.standardized(data, scale), None
    cfg, model, start, result, searched = _first_training(
        cfg,
        data,
        raw,
        scale,
        run,
        config_path,
        device,
        dtype,
        model,
        group,
        resume,
        progress=progress,
        stop=stop,
    )
    history = History(result)
    stopped, message = result.stopped, result.message
    if stopped == "peer_lost":
        data = _alone(run, group, whole, message)
    prune_report = None
    view = distributed.global_view(data, group, training.MAX_GRID_SAMPLES, cfg["seed"])
    importance = model.input_importance(view.x_train)
    run.log("input importance: " + ", ".join(f"{n} {v:.3g}" for n, v in importance.items()))
    if cfg["prune"] and stopped in FINISHED:
        model, data, view, prune_report, fine = prune_and_finetune(
            cfg, model, data, run, history, progress, view, group, stop
        )
        if fine.stopped == "peer_lost":  # only training is completed alone
            raise distributed.PeerLost(fine.message)
        if fine.stopped != "completed":
            stopped, message = fine.stopped, fine.message
    if scale is not None:  # the model, the history and what follows in the data's units
        data = units.adopt(model, raw, scale)
        history.record = units.raw_history(history.record, scale)
        view = distributed.global_view(data, group, training.MAX_GRID_SAMPLES, cfg["seed"])
    if prune_report is not None:
        prune_report["test_rmse_before"] = _before_pruning(history.record)
    metrics = measure(cfg, model, data, history, stopped, device, group)
    _add_choices(metrics, cfg, importance, start, prune_report, searched)
    formula = None
    stopping = stop is not None and stop.requested
    if cfg["symbolic"] and stopped in FINISHED and group.is_root and not stopping:  # rank 0 fits
        try:
            formula = fit_formula(cfg, model, view, run, metrics)
        except KeyboardInterrupt:
            run.log("symbolic fitting interrupted; saving the network without a formula")
            stopped = "interrupted"
    samples = write_results(run, cfg, model, view, history, metrics, started)
    if cfg["plots"] and group.is_root:
        draw_plots(run, cfg, model, view, history, metrics, samples, formula)
    run.log(f"run folder: {run.path}")
    return _exit_code(run, stopped, message, stop)


def _exit_code(run: RunFolder, stopped: str, message: str, stop) -> int:
    """The run's exit code (`run_experiment`), with the error line of a failed one."""
    if stopped == "non_finite_loss":
        print(f"error: {message or 'non-finite loss'}", file=sys.stderr)
        return EXIT_NON_FINITE
    if stopped == "peer_lost":
        print(
            f"error: {message}; the run folder holds the model so far: {run.path}", file=sys.stderr
        )
        return EXIT_PEER_LOST
    if stop is not None and stop.requested:
        return stop.exit_code()
    return EXIT_INTERRUPTED if stopped == "interrupted" else EXIT_OK
