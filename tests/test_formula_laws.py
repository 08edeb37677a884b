"""The formulas benchmark's own pieces: the sampled files and the scorer (independent of the
training pipeline, so it must judge formula texts right on its own)."""

import csv
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import formula_laws  # noqa: E402

KINETIC = formula_laws.BY_NAME["kinetic"]


def test_there_are_the_ten_laws_of_the_table():
    assert len(formula_laws.LAWS) == 10 == len(formula_laws.BY_NAME)
    assert {spec["law"] for spec in formula_laws.LAWS} >= {"E = m*v**2/2", "F = q1*q2/r**2"}


@pytest.mark.parametrize("spec", formula_laws.LAWS, ids=lambda spec: spec["name"])
def test_the_sampled_file_has_the_header_rows_and_ranges_of_its_law(spec, tmp_path):
    path = formula_laws.write_law_csv(spec, 1, tmp_path / "law.csv")
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == [*spec["inputs"], spec["output"]]
    values = np.array(rows[1:], dtype=np.float64)
    assert values.shape == (2000, len(spec["inputs"]) + 1)
    for column, (lo, hi) in enumerate(spec["ranges"]):
        seen = values[:, column]
        assert lo <= seen.min() and seen.max() <= hi
        # uniform: the sample spans its range (2000 points leave gaps of ~1/2000 at the ends)
        assert seen.min() - lo < 0.01 * (hi - lo) and hi - seen.max() < 0.01 * (hi - lo)
    # the output column is the law, recomputed here with math on a few rows
    if spec["name"] == "pendulum":
        length, g, period = values[:5].T
        np.testing.assert_allclose(period, 2 * math.pi * np.sqrt(length / g), rtol=1e-14)


def test_the_same_seed_gives_the_same_file_and_another_seed_another(tmp_path):
    a = formula_laws.write_law_csv(KINETIC, 0, tmp_path / "a.csv").read_text()
    b = formula_laws.write_law_csv(KINETIC, 0, tmp_path / "b.csv").read_text()
    c = formula_laws.write_law_csv(KINETIC, 1, tmp_path / "c.csv").read_text()
    assert a == b and a != c


@pytest.mark.parametrize("text", ["m*v**2/2", "0.5*m*v**2", "v*(m*v)/2", "m*v**2/2 + 1e-9"])
def test_the_law_or_a_formula_equal_to_it_within_1e_6_is_recovered(text):
    got = formula_laws.score(KINETIC, text)
    assert got["recovered"], got
    assert got["rel_error"] < 1e-6


def test_an_exact_formula_is_found_exact_by_sympy():
    assert formula_laws.score(KINETIC, "m*v*v*0.5")["exact"]
    assert not formula_laws.score(KINETIC, "m*v**2/2 + 1e-9")["exact"]


@pytest.mark.parametrize("text", ["0.49*m*v**2", "m*v**2/2 + 1e-3", "m*v", "v**2/2"])
def test_a_formula_off_the_law_is_not_recovered(text):
    got = formula_laws.score(KINETIC, text)
    assert not got["recovered"] and got["reason"] == "relative error"
    assert got["rel_error"] > 1e-6


def test_the_relative_error_is_rmse_over_rms_of_the_truth():
    # 0.49 m v^2 = 0.98 * truth: relative RMSE 0.02 exactly
    assert formula_laws.score(KINETIC, "0.49*m*v**2")["rel_error"] == pytest.approx(0.02)


def test_a_formula_in_other_names_is_not_recovered_and_says_why():
    got = formula_laws.score(KINETIC, "x1*x2**2/2")
    assert not got["recovered"]
    assert got["reason"] == "symbols x1, x2 are not the inputs"


@pytest.mark.parametrize("text", ["m*v**2/(", "m v ^^ 2", "lambda: 0", "", None, "1/0*m", "m*nan"])
def test_unparsable_or_empty_or_infinite_formulas_are_not_recovered_without_crashing(text):
    got = formula_laws.score(KINETIC, text)
    assert not got["recovered"] and got["reason"]


def test_the_width_rule_keeps_the_configs_hidden_widths(tmp_path):
    path = tmp_path / "c.input"
    path.write_text('{"layer_dims": [2, 7, 3, 1]}')
    assert formula_laws.network_dims(path, 4) == [4, 7, 3, 1]
    assert formula_laws.network_dims(formula_laws.DEFAULT_CONFIG, 3)[0] == 3


def test_a_run_past_its_timeout_is_no_formula_with_the_reason(tmp_path):
    record = formula_laws.run_law(KINETIC, 0, formula_laws.DEFAULT_CONFIG, tmp_path, 0.01)
    assert record["formula"] is None and not record["recovered"]
    assert record["reason"] == "timed out after 0.01 s"


def test_a_failing_run_is_no_formula_with_its_error_line(tmp_path):
    bad = tmp_path / "bad.input"
    bad.write_text('{"layer_dims": [2, 3, 1], "no_such_key": 1}')
    record = formula_laws.run_law(KINETIC, 0, bad, tmp_path, 120)
    assert record["formula"] is None and not record["recovered"]
    assert record["reason"].startswith("exit 2: error: ") and "no_such_key" in record["reason"]
    table = formula_laws.table([record])
    assert "no formula (exit 2: error: " in table and "| E = m*v**2/2 | 0 |" in table
    assert formula_laws.summary([record], [0]) == ["recovered 0/1 for seed 0"]
