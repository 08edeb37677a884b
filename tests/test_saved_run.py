"""saved_run.py: a run folder read back as one object."""

import re

import numpy as np
import pytest
from plot_cases import SYMBOLIC_DOCUMENT, make_history, write_run

import run_folder
import saved_run
from errors import UserError
from symbolic_fit import Fit


def test_read_run_gives_the_saved_run(tmp_path):
    model, config, samples = write_run(tmp_path, symbolic=SYMBOLIC_DOCUMENT)
    run = saved_run.read_run(tmp_path)
    assert run.model.layer_dims == model.layer_dims and run.config["layer_dims"] == [2, 3, 1]
    assert run.history == make_history() and run.metrics["project_name"] == "test_run"
    np.testing.assert_array_equal(run.samples["x_test"], samples["x_test"])
    assert run.symbolic.layer_fits == [{(0, 0): Fit("x", 1.0, 0.0, 1.0, 0.0, 1.0)}]
    assert run.symbolic.formulas == ["x1*x2"] and run.symbolic.ok
    (tmp_path / run_folder.SYMBOLIC_FILE).unlink()
    assert saved_run.read_run(tmp_path).symbolic is None


@pytest.mark.parametrize("function", ["no_such_function", 3])
def test_a_malformed_symbolic_json_is_a_user_error_naming_it(tmp_path, function):
    edge = dict(SYMBOLIC_DOCUMENT["edges"][0], function=function)
    write_run(tmp_path, symbolic=dict(SYMBOLIC_DOCUMENT, edges=[edge]))
    with pytest.raises(UserError, match=re.escape(run_folder.SYMBOLIC_FILE)):
        saved_run.read_run(tmp_path)
