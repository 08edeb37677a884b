"""Formula discovery on ten physics laws in physical units: is the law read back exactly?

    ./run_benchmarks.sh formulas [--laws NAME ...] [--seeds S ...] [--config FILE]
                                 [--timeout SECONDS] [--jobs N] [--out DIR]

Each law is sampled for each seed (1000 training and 1000 test rows, uniform in the law's
ranges) into ``<out>/formula_laws_data/<law>_seed<s>.csv`` whose header names the columns
(inputs, then the output). Every file is trained by the training command itself, one
subprocess per run (``pykan_mit.py --config CONFIG --set data_file=... --set layer_dims=...``),
with one config unchanged between the laws (default ``configs/formula_discovery.input``). The
network's widths follow one rule: the config's ``layer_dims`` with its first entry replaced by
the law's number of inputs and its last by 1 (the hidden widths are the config's). The harness
also sets ``test_size=1000`` (the file's test rows), ``seed=s`` and ``plots=false``.

Scoring does not use the pipeline's code: the run folder's formula text is parsed with sympy,
the column names as its symbols, and is *recovered* when (a) ``sympy.simplify(formula -
truth) == 0`` or (b) its relative RMSE, ``RMSE(formula - truth) / RMS(truth)`` on 2000 fresh
points from the same ranges, is at most 1e-6. A formula in other symbols, one that does not
parse, or a run with no formula (the reason is recorded) is not recovered.

Writes ``<out>/formula_laws.md`` (the table, also printed, and one summary line per seed,
"recovered k/10 for seed s") and ``<out>/formula_laws.json``; the run folders stay under
``<out>/formula_laws_runs/``.
"""

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import sympy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from run_folder import CONFIG_FILE, FORMULA_TEXT_FILE, METRICS_FILE  # noqa: E402

DEFAULT_CONFIG = ROOT / "configs" / "formula_discovery.input"
TRAIN_ROWS = TEST_ROWS = 1000
FRESH_POINTS = 2000
TOLERANCE = 1e-6  # relative RMSE at or below which a formula counts as the law
SIMPLIFY_BELOW = 1e-3  # sympy.simplify is tried only on formulas this close (it can be slow)
PI = math.pi


def law(name: str, text: str, columns: str, ranges: list[tuple[float, float]]) -> dict:
    """A law ``OUTPUT = EXPRESSION`` over ``columns`` (inputs then the output) with one
    [lo, hi] per input."""
    names = columns.split(",")
    output, expression = (part.strip() for part in text.split("=", 1))
    assert names[-1] == output and len(ranges) == len(names) - 1, name
    return {"name": name, "law": text, "inputs": names[:-1], "output": output, "ranges": ranges,
            "truth": expression}  # fmt: skip


LAWS = [
    law("kinetic", "E = m*v**2/2", "m,v,E", [(1, 10), (-3, 3)]),
    law("coulomb", "F = q1*q2/r**2", "q1,q2,r,F", [(-1, 1), (-1, 1), (1, 2)]),
    law("gas", "P = n*T/V", "n,T,V,P", [(0.5, 2), (200, 400), (1, 3)]),
    law("pendulum", "T = 2*pi*sqrt(L/g)", "L,g,T", [(0.1, 2), (9, 10)]),
    law("damped", "y = exp(-t/tau)*cos(w*t)", "t,tau,w,y", [(0, 5), (1, 3), (1, 2)]),
    law("relativistic", "m = m0/sqrt(1 - v**2)", "m0,v,m", [(1, 2), (0, 0.9)]),
    law("projectile", "R = v**2*sin(2*theta)/g", "v,theta,g,R", [(1, 10), (0, PI / 2), (9, 10)]),
    law("logistic", "N = K/(1 + exp(-r*t))", "K,r,t,N", [(1, 100), (0.5, 2), (-3, 3)]),
    law("additive", "y = sin(a) + b**2 + exp(c)", "a,b,c,y", [(-2, 2)] * 3),
    law("planck", "u = x**3/(exp(x) - 1)", "x,u", [(0.1, 5)]),
]
BY_NAME = {spec["name"]: spec for spec in LAWS}


# ---------------------------------------------------------------------------------------------
# The laws as sympy expressions, sampling


def symbols(spec: dict) -> dict[str, sympy.Symbol]:
    return {name: sympy.Symbol(name) for name in spec["inputs"]}


def truth(spec: dict) -> sympy.Expr:
    return sympy.parse_expr(spec["truth"], local_dict=symbols(spec))


def law_values(spec: dict, x: np.ndarray) -> np.ndarray:
    """The law at the points x (N, n_inputs), evaluated in numpy."""
    fn = sympy.lambdify(list(symbols(spec).values()), truth(spec), "numpy")
    return np.broadcast_to(np.asarray(fn(*x.T), dtype=np.float64), (len(x),))


def sample_points(spec: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    lo, hi = np.array(spec["ranges"], dtype=np.float64).T
    return lo + (hi - lo) * rng.random((n, len(lo)))


def _rng(spec: dict, seed: int, stream: int) -> np.random.Generator:
    """Independent streams per (law, seed): 0 the data file, 1 the fresh scoring points."""
    return np.random.default_rng([seed, LAWS.index(spec), stream])


def write_law_csv(spec: dict, seed: int, path: Path) -> Path:
    """TRAIN_ROWS + TEST_ROWS rows of the law, header = the column names."""
    x = sample_points(spec, TRAIN_ROWS + TEST_ROWS, _rng(spec, seed, 0))
    y = law_values(spec, x)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*spec["inputs"], spec["output"]])
        writer.writerows([*map(repr, row), repr(v)] for row, v in zip(x.tolist(), y.tolist()))
    return path


# ---------------------------------------------------------------------------------------------
# Scoring


def score(spec: dict, formula: str | None, seed: int = 0) -> dict:
    """Whether ``formula`` (text in the column names) is the law: ``{"recovered", "exact",
    "rel_error", "reason"}``; never raises for a bad formula."""
    result = {"recovered": False, "exact": False, "rel_error": None, "reason": ""}
    if not formula or not formula.strip():
        return {**result, "reason": "no formula"}
    names = symbols(spec)
    try:
        expr = sympy.parse_expr(formula, local_dict=dict(names))
    except Exception as error:  # noqa: BLE001 - sympy raises many kinds for bad text
        return {**result, "reason": f"cannot parse: {type(error).__name__}"}
    if not isinstance(expr, sympy.Expr):
        return {**result, "reason": "not an expression"}
    unknown = sorted(s.name for s in expr.free_symbols if s.name not in names)
    if unknown:
        return {**result, "reason": f"symbols {', '.join(unknown)} are not the inputs"}
    x = sample_points(spec, FRESH_POINTS, _rng(spec, seed, 1))
    want = law_values(spec, x)
    try:
        fn = sympy.lambdify(list(names.values()), expr, "numpy")
        with np.errstate(all="ignore"):
            got = np.broadcast_to(np.asarray(fn(*x.T), dtype=np.float64), want.shape)
    except Exception as error:  # noqa: BLE001
        return {**result, "reason": f"cannot evaluate: {type(error).__name__}"}
    rel = float(np.sqrt(np.mean((got - want) ** 2)) / np.sqrt(np.mean(want**2)))
    result["rel_error"] = rel if math.isfinite(rel) else None
    if result["rel_error"] is not None and rel <= SIMPLIFY_BELOW:
        result["exact"] = bool(sympy.simplify(expr - truth(spec)) == 0)
    result["recovered"] = result["exact"] or (result["rel_error"] is not None and rel <= TOLERANCE)
    if not result["recovered"]:
        result["reason"] = "not finite" if result["rel_error"] is None else "relative error"
    return result


# ---------------------------------------------------------------------------------------------
# Running the pipeline


def network_dims(config_path: Path, n_in: int) -> list[int]:
    """The width rule: the config's layer_dims, first entry n_in, last 1."""
    import config  # its defaults: a config file may leave layer_dims out

    given = json.loads(Path(config_path).read_text(encoding="utf-8"))
    dims = list(given.get("layer_dims", config.DEFAULTS["layer_dims"]))
    return [n_in, *dims[1:-1], 1]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def run_law(spec: dict, seed: int, config_path: Path, out: Path, timeout: float) -> dict:
    """Train one law's file and read back its formula and network; the scored record."""
    data = write_law_csv(spec, seed, out / "formula_laws_data" / f"{spec['name']}_seed{seed}.csv")
    run_dir = out / "formula_laws_runs" / f"{spec['name']}_seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # --dir must not exist: a rerun starts afresh
    dims = network_dims(config_path, len(spec["inputs"]))
    sets = [f"data_file={data}", f"layer_dims={json.dumps(dims)}", f"test_size={TEST_ROWS}",
            f"seed={seed}", "plots=false"]  # fmt: skip
    command = [sys.executable, str(ROOT / "pykan_mit.py"), "--config", str(config_path)]
    command += ["--dir", str(run_dir)] + [a for s in sets for a in ("--set", s)]
    record = {"law": spec["name"], "seed": seed, "truth": spec["law"], "dims_requested": dims}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
        failure = None if done.returncode == 0 else _last_line(done.stderr, done.returncode)
    except subprocess.TimeoutExpired:
        failure = f"timed out after {timeout:g} s"
    record["wall_s"] = round(time.perf_counter() - started, 1)
    metrics = _read_json(run_dir / METRICS_FILE)
    record.update(_network(metrics, _read_json(run_dir / CONFIG_FILE)))
    formula = _formula(run_dir, metrics)
    record["formula"] = formula
    record.update(score(spec, formula, seed))
    if formula is None:
        record["reason"] = failure or metrics.get("formula_note") or "no formula in the run folder"
    return record


def _last_line(stderr: str, code: int) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    return f"exit {code}: {lines[-1] if lines else 'no message'}"


def _formula(run_dir: Path, metrics: dict) -> str | None:
    path = run_dir / FORMULA_TEXT_FILE
    if path.is_file():
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if lines:
            return lines[0]
    formula = metrics.get("formula")
    return formula[0] if isinstance(formula, list) else formula


def _network(metrics: dict, saved: dict) -> dict:
    """The network the formula came from and, where the run reports them, the unpruned one's
    dims and test RMSE."""
    prune = metrics.get("prune") or {}
    model = saved.get("model") or {}
    return {
        "network": metrics.get("layer_dims") or model.get("layer_dims"),
        "unpruned_network": prune.get("dims_before"),
        "test_rmse": metrics.get("test_rmse"),
        "formula_test_rmse": metrics.get("formula_test_rmse"),
        "unpruned_test_rmse": metrics.get("unpruned_test_rmse", prune.get("test_rmse_before")),
    }


# ---------------------------------------------------------------------------------------------
# Report


def _num(value) -> str:
    return "–" if value is None else f"{value:.2e}"


def table(records: list[dict]) -> str:
    head = (
        "| law | seed | formula returned | rel. error | recovered | network | unpruned "
        "(test RMSE) | wall s |\n|---|---|---|---|---|---|---|---|"
    )
    rows = [head]
    for r in records:
        reason = r["reason"].removeprefix("no formula: ")
        formula = f"`{r['formula']}`" if r["formula"] else f"no formula ({reason})"
        got = "yes" + (" (exact)" if r["exact"] else "") if r["recovered"] else "no"
        unpruned = f"{r['unpruned_network'] or '–'} ({_num(r['unpruned_test_rmse'])})"
        rows.append(
            f"| {r['truth']} | {r['seed']} | {formula.replace('|', '/')} | "
            f"{_num(r['rel_error'])} | {got} | {r['network'] or '–'} | {unpruned} | "
            f"{r['wall_s']:.0f} |"
        )
    return "\n".join(rows)


def summary(records: list[dict], seeds: list[int]) -> list[str]:
    lines = []
    for seed in seeds:
        mine = [r for r in records if r["seed"] == seed]
        k = sum(r["recovered"] for r in mine)
        lines.append(f"recovered {k}/{len(mine)} for seed {seed}")
    return lines


def parse_args(argv):
    names = list(BY_NAME)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--laws", nargs="+", choices=names, metavar="NAME", help=", ".join(names))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="default: 0 1 2")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="the discovery config")
    p.add_argument("--timeout", type=float, default=240, help="seconds per run (default 240)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (default 1)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="results folder")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error("--jobs must be at least 1")
    if not Path(args.config).is_file():
        p.error(f"--config {args.config}: file not found")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    specs = [BY_NAME[n] for n in args.laws] if args.laws else LAWS
    jobs = [(spec, seed) for seed in args.seeds for spec in specs]
    config_path = Path(args.config).resolve()

    def one(job):
        record = run_law(job[0], job[1], config_path, out.resolve(), args.timeout)
        print(f"{record['law']} seed {record['seed']}: {record['formula']!r} "
              f"recovered={record['recovered']} ({record['wall_s']} s)", flush=True)  # fmt: skip
        return record

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        records = list(pool.map(one, jobs))
    lines = summary(records, args.seeds)
    text = table(records) + "\n\n" + "\n".join(lines) + "\n"
    (out / "formula_laws.md").write_text(text, encoding="utf-8")
    document = {"config": str(config_path), "seeds": args.seeds, "records": records}
    (out / "formula_laws.json").write_text(json.dumps(document, indent=1), encoding="utf-8")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
