"""Train a KAN from a JSON config: config → data → train (→ prune → symbolic) → run folder → plots.

    python pykan_mit.py [--config FILE] [--dir DIR] [--set key=value ...]

User mistakes end with one line on stderr ("error: …") and exit code 2, before anything is
written. Exit codes: 0 done, 1 training stopped on a non-finite loss, 2 bad input, 130 Ctrl-C
(the run folder is still complete).
"""

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

import config as config_mod
import targets
import training
from adaptive_kan_layer import fused_cpu_kernels
from errors import UserError
from run_folder import PROJECT_DIR, RunFolder
from simple_kan import CONFIG_FILE, SimpleKAN, resolve_device

DEFAULT_CONFIG = "pykan_mit.input"
SAMPLE_ROWS = 2000  # training rows kept in samples.npz for re-plotting


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UserError(f"{message} (see --help)")


def parse_args(argv):
    p = _Parser(prog="pykan_mit.py", description="Train a Kolmogorov-Arnold Network.")
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


def main(argv=None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        config_path = args.config or default_config_path()
        cfg = config_mod.load_config(config_path, args.set)
        device, dtype = resolve_device(cfg["device"]), getattr(torch, cfg["dtype"])
        if device.type == "cpu" and fused_cpu_kernels():
            # the fused kernels spread over every core; torch's own thread pool would compete
            torch.set_num_threads(1)
        data = targets.make_data(cfg, device, dtype)
        run = RunFolder.create(args.dir)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return run_experiment(cfg, data, run, config_path, device, dtype)
    finally:
        run.close()


def run_experiment(cfg, data, run: RunFolder, config_path, device, dtype) -> int:
    started = time.perf_counter()
    torch.manual_seed(cfg["seed"])
    model = SimpleKAN(
        cfg["layer_dims"],
        grid_size=cfg["grid_size"],
        spline_degree=cfg["spline_degree"],
        grid_range=data.input_range,
        base_activation=cfg["base_activation"],
        dtype=dtype,
        device=device,
    )
    run.backup_sources(config_path)
    run.write_json(CONFIG_FILE, {**cfg, "model": model.architecture()})
    log = run.log
    log(f"{cfg['project_name']}: {data.description}")
    log(
        f"model {cfg['layer_dims']}, grid {cfg['grid_size']}, degree {cfg['spline_degree']}, "
        f"{model.num_parameters} parameters, {cfg['optimizer']}, {device} {cfg['dtype']}"
    )
    log(f"run folder: {run.path}")
    progress = cfg["progress_bar"] and sys.stderr.isatty()
    if progress:
        from tqdm import tqdm

        run._echo = tqdm.write

    def checkpoint(m, step):
        m.save_model(run.path, cfg, data.input_range.tolist())

    result = training.train(cfg, model, data, log=log, progress=progress, checkpoint=checkpoint)
    history = {**result.history, "events": list(result.events), "phases": []}
    history["phases"].append({"name": "train", "start": 0, "end": result.steps})
    prune_report = None
    stopped = result.stopped
    if cfg["prune"] and stopped in ("completed", "early_stopping"):
        model, prune_report = model.prune(data.x_train, cfg["prune_threshold"])
        log(
            f"pruned {prune_report['dims_before']} -> {prune_report['dims_after']} "
            f"({prune_report['edges_before']} -> {prune_report['edges_after']} edges)"
            + (
                f"; inputs feeding nothing: {', '.join(prune_report['unused_inputs'])}"
                if prune_report["unused_inputs"]
                else ""
            )
        )
        history["events"].append({"step": result.steps, "kind": "prune", **prune_report})
        fine = training.train(
            cfg,
            model,
            data,
            num_steps=cfg["prune_finetune_steps"],
            first_step=result.steps,
            refine=False,
            regularize=False,
            log=log,
            progress=progress,
            label="finetune",
        )
        _extend(history, fine.history)
        history["phases"].append(
            {"name": "prune_finetune", "start": result.steps, "end": result.steps + fine.steps}
        )
        stopped = fine.stopped if fine.stopped != "completed" else stopped

    with torch.no_grad():
        train_rmse = _rmse(model(data.x_train), data.y_train)
        test_rmse = _rmse(model(data.x_test), data.y_test)
    metrics = {
        "project_name": cfg["project_name"],
        "train_rmse": train_rmse,
        "test_rmse": test_rmse,
        "num_parameters": model.num_parameters,
        "layer_dims": model.layer_dims,
        "grid_sizes": model.grid_sizes,
        "spline_degree": model.spline_degree,
        "steps": len(history["step"]),
        "stopped": stopped,
        "refinements": [e for e in history["events"] if e["kind"] == "refine"],
        "training_points": len(data.x_train),
        "test_points": len(data.x_test),
        "device": str(device),
        "dtype": cfg["dtype"],
    }
    if data.x_val is not None:
        with torch.no_grad():
            metrics["val_rmse"] = _rmse(model(data.x_val), data.y_val)
    if prune_report is not None:
        metrics["prune"] = prune_report
    symbolic_result = None
    if cfg["symbolic"] and stopped in ("completed", "early_stopping"):
        try:
            symbolic_result = _symbolic(cfg, model, data, run, metrics)
        except KeyboardInterrupt:
            run.log("symbolic fitting interrupted; saving the network without a formula")
            stopped = "interrupted"

    model.save_model(run.path, cfg, data.input_range.tolist())
    x_np = data.x_train[:SAMPLE_ROWS].detach().cpu().double().numpy()
    samples = {
        "x_train": x_np,
        "y_train": data.y_train[:SAMPLE_ROWS].detach().cpu().double().numpy(),
        "x_test": data.x_test.detach().cpu().double().numpy(),
        "y_test": data.y_test.detach().cpu().double().numpy(),
    }
    run.write_npz("samples.npz", samples)
    run.write_json("history.json", history)
    metrics["wall_time_s"] = round(time.perf_counter() - started, 3)
    run.write_json("metrics.json", metrics)
    log(
        f"done: train_rmse {train_rmse:.4e}  test_rmse {test_rmse:.4e}  dims {model.layer_dims}  "
        f"grid {model.grid_sizes}  {metrics['wall_time_s']:.1f} s"
    )
    if cfg["plots"]:
        _plots(run, model, data, history, metrics, cfg, samples, symbolic_result)
    log(f"run folder: {run.path}")
    if stopped == "non_finite_loss":
        print(f"error: {result.message or 'non-finite loss'}", file=sys.stderr)
        return 1
    if stopped == "interrupted":
        return 130
    return 0


def _extend(history: dict, more: dict) -> None:
    for key in ("step", "train_rmse", "test_rmse", "val_rmse"):
        if key in history and key in more:
            history[key] = history[key] + more[key]


def _rmse(pred: torch.Tensor, y: torch.Tensor) -> float:
    return math.sqrt(float(torch.mean((pred - y) ** 2)))


def _symbolic(cfg, model, data, run: RunFolder, metrics: dict):
    import symbolic

    run.log("fitting symbolic functions to every edge ...")
    res = symbolic.symbolify(
        model,
        data.x_train,
        data.y_train,
        library=cfg["symbolic_library"],
        r2_threshold=cfg["symbolic_r2_threshold"],
        finetune_steps=cfg["symbolic_finetune_steps"],
    )
    edges = [
        {"layer": layer, "out": j, "in": i, **fit_dict(fit), "r2": res.edge_r2[layer][(j, i)]}
        for layer, fits in enumerate(res.layer_fits)
        for (j, i), fit in sorted(fits.items())
    ]
    sym = {"ok": res.ok, "formulas": res.formulas, "latex": res.latex, "edges": edges}
    sym["unfit_edges"] = [list(e) for e in res.unfit_edges]
    if res.ok:
        pred = symbolic.evaluate_formula(res.exprs, data.x_test.detach().cpu().double().numpy())
        y = data.y_test.detach().cpu().double().numpy()
        metrics["formula"] = res.formulas if len(res.formulas) > 1 else res.formulas[0]
        metrics["formula_test_rmse"] = float(np.sqrt(np.mean((pred - y) ** 2)))
        sym["formula_test_rmse"] = metrics["formula_test_rmse"]
        run.write_text("formula.txt", "\n".join(res.formulas) + "\n")
        run.write_text("formula.tex", "\n".join(f"$${t}$$" for t in res.latex) + "\n")
        for k, f in enumerate(res.formulas):
            run.log(f"formula y{k + 1} = {f}")
        run.log(f"formula test_rmse {metrics['formula_test_rmse']:.4e}")
    else:
        where = ", ".join(f"layer {la} edge x{i + 1}->{j + 1}" for la, j, i in res.unfit_edges)
        metrics["formula"] = None
        metrics["formula_note"] = f"no formula: edges not symbolic: {where}"
        run.log(metrics["formula_note"])
    run.write_json("symbolic.json", sym)
    return sym


def fit_dict(fit) -> dict:
    return {"function": fit.name, "a": fit.a, "b": fit.b, "c": fit.c, "d": fit.d}


def _plots(run, model, data, history, metrics, cfg, samples, symbolic_result) -> None:
    import plots

    t0 = time.perf_counter()
    config_saved = {**cfg, "model": model.architecture()}
    failures = plots.plot_all(
        run.path, model, data.x_train, history, metrics, config_saved, samples, symbolic_result
    )
    for failure in failures or []:
        run.log(f"warning: {failure}")
    run.log(f"plots written in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    sys.exit(main())
