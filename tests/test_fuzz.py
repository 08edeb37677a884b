"""Property-based fuzzing of everything a user hands the project: config files, target
expressions, CSV files and model files. Every case ends in success or in one clean error line
(exit 2 at the command line): no traceback, no hang (each case is time-bounded), no half-written
file.

A fixed seed and few examples per kind in the suite; ``PYKAN_FUZZ_EXAMPLES=N`` runs N per kind,
and ``-s`` prints the tally (cases tried, accepted, refused) of each kind at the end.
"""

import contextlib
import json
import math
import os
import signal
import string
from collections import Counter
from pathlib import Path

import pytest
import torch

pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import cli  # noqa: E402
import config  # noqa: E402
import datasets  # noqa: E402
import memory_estimate  # noqa: E402
import model_integrity  # noqa: E402
import predict  # noqa: E402
import targets  # noqa: E402
from run_folder import MODEL_FILE  # noqa: E402
from simple_kan import SimpleKAN  # noqa: E402

EXAMPLES = int(os.environ.get("PYKAN_FUZZ_EXAMPLES", "25"))
CASE_SECONDS = 10.0  # a case running longer counts as a hang
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the fixed seed: the same cases on every run
    database=None,
    deadline=None,  # the hang limit is CASE_SECONDS, enforced by a timer
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TALLY: Counter = Counter()


@pytest.fixture(scope="module", autouse=True)
def report_tally():
    yield
    kinds = sorted({kind for kind, _ in TALLY})
    for kind in kinds:
        print(
            f"\nfuzz {kind}: {TALLY[kind, 'ok'] + TALLY[kind, 'refused']} cases, "
            f"{TALLY[kind, 'ok']} accepted, {TALLY[kind, 'refused']} refused with one line"
        )


class Hang(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float = CASE_SECONDS):
    def expired(signum, frame):
        raise Hang(f"case still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(kind: str, main, argv, capsys) -> int:
    """Run ``main`` as the command line does (`cli.run`): exit 0, or exit 2 with exactly one
    line ``error: ...`` on stderr; any other exception fails the case with its traceback."""
    capsys.readouterr()
    with time_limit():
        code = cli.run(main, argv)
    err = capsys.readouterr().err
    if code == 0:
        TALLY[kind, "ok"] += 1
    else:
        assert code == 2, code
        lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        TALLY[kind, "refused"] += 1
    return code


def no_temporary_files(folder: Path) -> None:
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------
# Config files

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 1, 2, -1, 10**6, 10**12])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(["x1", "sin(x1)", "auto", "float64", "adam", "lbfgs", "none", "ſɪɴ", ""])
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
KEY_NAMES = st.sampled_from(sorted(config.DEFAULTS)) | st.text(max_size=12)
CONFIG_VALUES = JSON_VALUES | st.sampled_from(
    [[2, 5, 1], [2, [1, 1], 1], [2, 100000, 100000, 1], [[-1, 1]], [1, 0], [0.5, 2], [2], []]
)


def deep(n: int) -> str:
    return "[" * n + "]" * n


CONFIG_TEXTS = (
    st.dictionaries(KEY_NAMES, CONFIG_VALUES, max_size=8).map(json.dumps)
    | JSON_VALUES.map(json.dumps)
    | st.integers(1, 200000).map(lambda n: '{"layer_dims": ' + deep(n) + "}")
    | st.text(max_size=200)
    | st.binary(max_size=200).map(lambda b: b.decode("latin-1"))
)


@FUZZ
@given(text=CONFIG_TEXTS)
def test_fuzz_config_files(text, tmp_path, capsys):
    path = tmp_path / "fuzz.input"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")

    def main(argv):
        cfg = config.load_config(argv[0])
        memory_estimate.check(cfg)  # what the command line does next, before any work

    outcome("config", main, [str(path)], capsys)


# ---------------------------------------------------------------------------------------------
# Target expressions

TOKENS = (
    [f"x{i}" for i in range(0, 5)]
    + sorted(targets.FUNCTIONS)
    + ["pi", "e", "+", "-", "*", "/", "**", "(", ")", ",", " ", "1", "0", "2.5", "1e308"]
    + ["1e-320", "9", "//", "%", "@", "lambda", "__import__", "[", "]", "'", "=", "ꭓ1", "١"]
)
EXPRESSIONS = (
    st.lists(st.sampled_from(TOKENS), max_size=30).map("".join)
    | st.tuples(st.sampled_from(["sin(", "(", "-", "exp(", "abs("]), st.integers(1, 5000)).map(
        lambda t: t[0] * t[1] + "x1" + ")" * (t[1] if "(" in t[0] else 0)
    )
    | st.integers(1, 3000).map(lambda n: "**".join(["x1"] * n))
    | st.integers(1, 3000).map(lambda n: "+".join(["x1"] * n))
    | st.text(max_size=60)
)


@FUZZ
@given(text=EXPRESSIONS, n_in=st.integers(1, 3))
def test_fuzz_target_expressions(text, n_in, capsys):
    x = torch.rand(16, n_in, dtype=torch.float64) * 2 - 1

    def main(argv):
        y = targets.compile_target(text, n_in)(x)
        assert y.shape == (16, 1)

    outcome("expression", main, [], capsys)


# ---------------------------------------------------------------------------------------------
# CSV files

CELLS = (
    st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.integers(-(10**30), 10**30).map(str)
    | st.sampled_from(["", " ", "nan", "inf", "-inf", "1e400", "-1e-400", "x1", "y", "1,5"])
    | st.text(alphabet=string.printable + "éß€\ufeff", max_size=6)
)
NUMBERS = st.floats(-1e6, 1e6, allow_nan=False).map(repr) | st.integers(-99, 99).map(str)
ROWS = st.lists(st.lists(CELLS, min_size=0, max_size=5), max_size=12) | st.lists(
    st.lists(NUMBERS | CELLS, min_size=3, max_size=3) | st.lists(NUMBERS, min_size=3, max_size=3),
    min_size=1,
    max_size=12,
)


@st.composite
def csv_texts(draw) -> str:
    rows = draw(ROWS)
    sep = draw(st.sampled_from([",", ";", "\t", ", "]))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    text = end.join(sep.join(row) for row in rows)
    if draw(st.booleans()):
        text = "x1,x2,y" + end + text
    if draw(st.booleans()):
        text = "\ufeff" + text
    return text + draw(st.sampled_from(["", end, end * 3]))


@pytest.fixture(scope="module")
def fuzz_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fuzz") / "run"
    run.mkdir()
    torch.manual_seed(0)
    cfg = config.validate_config(dict(config.DEFAULTS, layer_dims=[2, 3, 1]), "fuzz")
    SimpleKAN([2, 3, 1], grid_size=4, noise_scale=0.5).save_model(run, cfg)
    return run


@FUZZ
@given(text=csv_texts() | st.binary(max_size=300).map(lambda b: b.decode("latin-1")))
def test_fuzz_csv_files(text, fuzz_run, tmp_path, capsys):
    folder = tmp_path / "csv"
    folder.mkdir(exist_ok=True)
    path, out = folder / "in.csv", folder / "out.csv"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    out.unlink(missing_ok=True)

    def training_data(argv):
        keys = {"layer_dims": [2, 3, 1], "data_file": argv[0], "target_function": None}
        cfg = config.validate_config(dict(config.DEFAULTS, test_size=1, **keys), "fuzz")
        data = datasets.make_data(cfg, "cpu", torch.float32)
        assert torch.isfinite(data.x_train).all() and torch.isfinite(data.y_train).all()

    outcome("csv (training data)", training_data, [str(path)], capsys)
    code = outcome(
        "csv (predict --out)",
        predict.main,
        [str(fuzz_run), "--csv", str(path), "--out", str(out)],
        capsys,
    )
    if code == 0:
        rows = out.read_text().splitlines()
        assert rows[0] == "x1,x2,y1" and all(len(r.split(",")) == 3 for r in rows)
    else:
        assert not out.exists()  # a refused file leaves no output, not even part of one
    no_temporary_files(folder)


# ---------------------------------------------------------------------------------------------
# Damaged model files

POINT = ["0.1", "0.2"]


def prediction(capsys, run) -> str:
    capsys.readouterr()
    assert predict.main([str(run), *POINT]) == 0
    return capsys.readouterr().out


FLIPS = st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), min_size=1, max_size=4
)
TENSOR_NAMES = [f"layers.{i}.{name}" for i in range(2) for name in model_integrity.TENSORS]
EDITS = st.sampled_from(
    ["nan", "inf", "huge", "truncate", "grow", "double", "int", "reverse", "drop", "zero"]
)
ARCH_EDITS = st.tuples(
    st.sampled_from(
        [
            "layer_dims",
            "grid_sizes",
            "spline_degree",
            "dtype",
            "mult_arity",
            "input_range",
            "base_activation",
            "input_names",
        ]
    ),
    JSON_VALUES,
)


def edit_tensor(t: torch.Tensor, how: str):
    t = t.clone()
    if how in ("nan", "inf", "huge"):
        if not t.is_floating_point() or t.numel() == 0:
            return t
        t.view(-1)[0] = {"nan": math.nan, "inf": math.inf, "huge": 1e38}[how]
        return t
    return {
        "truncate": lambda: t.reshape(-1)[:-1].reshape(-1) if t.dim() == 1 else t[..., :-1],
        "grow": lambda: torch.cat([t, t[..., :1]], dim=-1),
        "double": lambda: t.double(),
        "int": lambda: t.to(torch.int32),
        "reverse": lambda: t.flip(-1),
        "zero": lambda: t * 0,
    }[how]()


@FUZZ
@given(
    flips=FLIPS,
    cut=st.none() | st.floats(0, 1),
    edits=st.lists(st.tuples(st.sampled_from(TENSOR_NAMES), EDITS), max_size=3),
    arch=st.none() | ARCH_EDITS,
    rehash=st.booleans(),
)
def test_fuzz_damaged_model_files(flips, cut, edits, arch, rehash, fuzz_run, tmp_path, capsys):
    run = tmp_path / "damaged"
    run.mkdir(exist_ok=True)
    for name in (MODEL_FILE, "pykan_mit_config.json"):
        (run / name).write_bytes((fuzz_run / name).read_bytes())
    expected = prediction(capsys, fuzz_run)
    path = run / MODEL_FILE
    if edits or arch:  # tensor edits, as torch would save them (checksum kept or recomputed)
        ckpt = torch.load(path, weights_only=True)
        for name, how in edits:
            if how == "drop":
                ckpt["state_dict"].pop(name, None)
            elif name in ckpt["state_dict"]:
                ckpt["state_dict"][name] = edit_tensor(ckpt["state_dict"][name], how)
        if arch:
            ckpt["architecture"][arch[0]] = arch[1]
        if rehash:
            ckpt["sha256"] = model_integrity.checksum(ckpt["state_dict"], ckpt["architecture"])
        torch.save(ckpt, path)
        changed = True
    else:  # byte flips and truncation of the file as written
        data = bytearray(path.read_bytes())
        for where, bit in flips:
            data[int(where * len(data))] ^= 1 << bit
        if cut is not None:
            data = data[: int(cut * len(data))]
        path.write_bytes(bytes(data))
        changed = False
    code = outcome("model file", predict.main, [str(run), *POINT], capsys)
    if code == 0 and not (changed and rehash):
        # accepted without a recomputed checksum: the answer is exactly the saved model's
        assert prediction(capsys, run) == expected
