"""estimators.py: KANRegressor passes scikit-learn's estimator checks, and works in a Pipeline
and GridSearchCV over grid_size."""

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from errors import ConfigError  # noqa: E402
from estimators import KANClassifier, KANRegressor  # noqa: E402

# Few LBFGS steps on a small network keep the ~50 checks at about 10 s.
QUICK = {"hidden_dims": (3,), "grid_size": 3, "num_steps": 6, "optimizer": "lbfgs"}
QUICK["learning_rate"] = 1
# Skipped by scikit-learn itself when an optional package or setting is absent here.
ENVIRONMENTAL = {"check_array_api_input", "check_regressor_data_not_an_array"}
ENVIRONMENTAL |= {"check_classifier_data_not_an_array"}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_check_estimator_passes():
    results = check_estimator(KANRegressor(**QUICK), on_fail=None)
    failed = [
        (r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"
    ]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert failed == []
    assert skipped <= ENVIRONMENTAL
    assert len(results) > 40


def regression_data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (n, 2)) * [1, 10]
    return x, np.sin(x[:, 0]) + (x[:, 1] / 10) ** 2


def test_grid_search_over_grid_size_picks_the_best_cross_validated_pipeline():
    """GridSearchCV's choice and scores equal cross_val_score run by hand per grid size."""
    x, y = regression_data()
    pipe = make_pipeline(StandardScaler(), KANRegressor(**{**QUICK, "num_steps": 10}))
    folds = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, {"kanregressor__grid_size": [1, 3, 6]}, cv=folds).fit(x, y)
    by_hand = [
        cross_val_score(pipe.set_params(kanregressor__grid_size=g), x, y, cv=folds).mean()
        for g in (1, 3, 6)
    ]
    assert np.allclose(search.cv_results_["mean_test_score"], by_hand)
    best = (1, 3, 6)[int(np.argmax(by_hand))]
    assert search.best_params_ == {"kanregressor__grid_size": best}
    assert search.best_estimator_[-1].model_.grid_sizes[0] >= best
    assert search.score(x, y) > 0.9


def test_params_are_the_config_keys_and_checked_by_its_rules():
    est = KANRegressor(**QUICK).set_params(num_steps=3, knot_placement="density")
    assert est.get_params()["num_steps"] == 3 and est.get_params()["grid_size"] == 3
    x, y = regression_data(40)
    with pytest.raises(ConfigError, match="^fit: learning_rate must be") as caught:
        est.set_params(learning_rate=-1).fit(x, y)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match="^KANRegressor: spline_degree must be"):
        KANRegressor(**QUICK, spline_degree=9).fit(x, y)


def test_fit_leaves_torchs_random_state_alone_and_two_outputs_work():
    x, y = regression_data(60)
    state = torch.get_rng_state()
    est = KANRegressor(**QUICK).fit(x, np.column_stack([y, -y]))
    assert torch.equal(torch.get_rng_state(), state)
    assert est.predict(x).shape == (60, 2)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
def test_classifier_check_estimator_passes():
    results = check_estimator(KANClassifier(**QUICK), on_fail=None)
    failed = [
        (r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"
    ]
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert failed == []
    assert skipped <= ENVIRONMENTAL
    assert len(results) > 40


def test_classifier_text_labels_probabilities_and_grid_search():
    """Three text classes separated by x1: predict_proba rows sum to 1, predict is the argmax
    class, and GridSearchCV over grid_size runs."""
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (150, 2))
    y = np.array(["low", "mid", "top"])[np.digitize(x[:, 0], [-1 / 3, 1 / 3])]
    est = KANClassifier(hidden_dims=(3,), grid_size=4, num_steps=200, learning_rate=0.02)
    est.fit(x, y)
    assert list(est.classes_) == ["low", "mid", "top"]
    proba = est.predict_proba(x)
    assert proba.shape == (150, 3) and np.allclose(proba.sum(axis=1), 1)
    assert np.array_equal(est.predict(x), est.classes_[proba.argmax(axis=1)])
    assert est.score(x, y) > 0.9
    search = GridSearchCV(est, {"grid_size": [2, 4]}, cv=KFold(2, shuffle=True, random_state=0))
    assert search.fit(x, y).best_params_["grid_size"] in (2, 4)
