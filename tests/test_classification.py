"""task "classification": labelled files, the cross-entropy loss, metrics.json against
scikit-learn's metrics, the class plots, run_predict's classes and probabilities, errors."""

import json

import numpy as np
import pytest
import torch

import classes
import predict
import pykan_mit
from errors import DataError

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def test_cross_entropy_equals_torch_reference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (50,), generator=g)
    onehot = torch.nn.functional.one_hot(labels, 4).double()
    want = torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(classes.cross_entropy(logits, onehot), want, rtol=1e-12)


def test_labels_text_and_integers_sorted_and_one_hot(write_file):
    path = write_file("a,b,label\n0,1,cat\n1,0,dog\n2,2,cat\n3,1,ant\n")
    x, y, names, header = classes.read_labelled_file(path, 2, 3)
    assert names == ["ant", "cat", "dog"] and header == ["a", "b", "label"]
    assert np.array_equal(y.argmax(axis=1), [1, 2, 1, 0]) and np.array_equal(y.sum(axis=1), [1] * 4)
    assert np.array_equal(x[:, 0], [0, 1, 2, 3])
    assert classes.class_names(np.array(["10", "2", "1.0"], dtype=object)) == ["1", "2", "10"]


@pytest.mark.parametrize(
    "text, words",
    [
        ("0,1,a\n1,0,b\n", ["2 classes", "3 outputs"]),
        ("0,1,a\n1,x,b\n", ["line 2, column 2", "'x' is not a number"]),
        ("0,1,a\n1,0\n", ["line 2", "2 columns, expected 3"]),
        ("0,1,a\n1,0, \n", ["line 2", "label", "empty"]),
    ],
)
def test_bad_labelled_files_are_one_line_errors(write_file, text, words):
    with pytest.raises(DataError) as error:
        classes.read_labelled_file(write_file(text), 2, 3)
    assert all(w in str(error.value) for w in words) and "\n" not in str(error.value)


def moons_csv(path, n=240, seed=0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, np.pi, n)
    label = rng.integers(0, 2, n)
    x = np.where(
        label[:, None] == 0, np.c_[np.cos(t), np.sin(t)], np.c_[1 - np.cos(t), 0.5 - np.sin(t)]
    )
    x = x + rng.normal(0, 0.08, x.shape)
    names = np.array(["red", "blue"])[label]
    path.write_text(
        "u,v,colour\n" + "".join(f"{a!r},{b!r},{c}\n" for (a, b), c in zip(x.tolist(), names))
    )
    return str(path)


def test_cli_run_metrics_plots_and_predict(tmp_path, capsys):
    data = moons_csv(tmp_path / "moons.csv")
    run = tmp_path / "run"
    args = ["--set", "task=classification", "--set", "target_function=null"]
    args += ["--set", f"data_file={data}", "--set", "layer_dims=[2,3,2]", "--set", "test_size=60"]
    args += ["--set", "num_steps=300", "--set", "learning_rate=0.02", "--set", "grid_size=5"]
    args += ["--set", "update_strategy=fixed", "--set", "fixed_update_interval=150"]
    args += ["--set", "progress_bar=false", "--set", "log_interval=1000", "--dir", str(run)]
    assert pykan_mit.main(args) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    history = json.loads((run / "history.json").read_text())
    assert metrics["classes"] == ["blue", "red"] and len(metrics["refinements"]) == 1
    samples = np.load(run / "samples.npz")
    logits = predict.predict(run, samples["x_test"])
    true = samples["y_test"].argmax(axis=1)
    prob = predict.softmax(logits)
    assert metrics["test_accuracy"] == pytest.approx(
        sklearn_metrics.accuracy_score(true, logits.argmax(1))
    )
    assert metrics["test_log_loss"] == pytest.approx(sklearn_metrics.log_loss(true, prob), rel=1e-3)
    assert metrics["test_accuracy"] > 0.9
    counts = metrics["class_counts"]
    assert sum(counts["train"].values()) + sum(counts["test"].values()) == 240
    assert counts["test"]["red"] == int((true == 1).sum())
    assert "train_loss" in history and "train_rmse" not in history
    assert history["test_loss"][-1] == pytest.approx(metrics["test_log_loss"], rel=1e-3)
    for name in ("confusion_matrix.pdf", "decision_regions.pdf", "mse_loss_plot.pdf"):
        assert (run / name).stat().st_size > 1000
    capsys.readouterr()
    assert predict.main([str(run), "0.0", "1.0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    p = [float(line.split(" = ")[1]) for line in lines[1:]]
    want = predict.softmax(predict.predict(run, [[0.0, 1.0]]))[0]
    assert lines[0] == f"class(0.0, 1.0) = {['blue', 'red'][int(want.argmax())]}"
    assert lines[1].startswith("p(blue) = ") and np.allclose(p, want, rtol=0, atol=0)


def test_classification_without_data_file_is_one_line_error(capsys):
    code = pykan_mit.main(["--set", "task=classification", "--check"])
    err = capsys.readouterr().err
    assert code == 2 and "set data_file" in err and len(err.strip().splitlines()) == 1


def linear_csv(path, n=1200, seed=1, margin=0.05, random_labels=False):
    """label = x1 + x2 > 0 on [-1, 1]^2, without the points closer than ``margin`` to the
    boundary (there a spline network and any formula may each lean to either side)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (3 * n, 2))
    x = x[np.abs(x.sum(axis=1)) > margin][:n]
    label = rng.integers(0, 2, n) if random_labels else (x.sum(axis=1) > 0).astype(int)
    path.write_text(
        "x1,x2,label\n" + "".join(f"{a!r},{b!r},{c}\n" for (a, b), c in zip(x.tolist(), label))
    )
    return str(path)


def classify(run, data, **keys):
    keys = {
        "task": "classification",
        "target_function": None,
        "data_file": data,
        "layer_dims": [2, 2],
        "grid_size": 3,
        "test_size": 400,
        "num_steps": 300,
        "learning_rate": 0.02,
        "dtype": "float64",
        "symbolic": True,
        "plots": False,
        "progress_bar": False,
        **keys,
    }
    args = ["--dir", str(run)]
    for key, value in keys.items():
        args += ["--set", f"{key}={json.dumps(value)}"]
    assert pykan_mit.main(args) == 0
    return json.loads((run / "metrics.json").read_text())


def test_classification_formulas_one_per_logit_classify_like_the_network(tmp_path):
    import sympy

    run = tmp_path / "run"
    metrics = classify(run, linear_csv(tmp_path / "linear.csv"))
    assert list(metrics["formulas"]) == ["0", "1"]
    lines = (run / "formula.txt").read_text().splitlines()
    assert [line.split(" = ")[0] for line in lines] == ["logit_0", "logit_1"]
    assert (run / "formula.tex").read_text().count("\\mathrm{logit}") == 2
    x1, x2 = sympy.symbols("x1 x2")
    exprs = [sympy.sympify(line.split(" = ", 1)[1]) for line in lines]
    assert [str(e) for e in exprs] == [str(sympy.sympify(f)) for f in metrics["formulas"].values()]
    samples = np.load(run / "samples.npz")
    x = samples["x_test"]
    logits = np.stack([sympy.lambdify((x1, x2), e, "numpy")(x[:, 0], x[:, 1]) for e in exprs], 1)
    network = predict.predict(run, x).argmax(axis=1)
    agreement = float((logits.argmax(axis=1) == network).mean())
    assert agreement >= 0.99 and metrics["formula_agreement"] == pytest.approx(agreement)
    truth = (x.sum(axis=1) > 0).astype(int)  # independent of the run: the rule itself
    assert float((logits.argmax(axis=1) == truth).mean()) >= 0.99
    assert metrics["formula_logit_r2"] >= 0.95 and metrics["formula_test_accuracy"] >= 0.99


def test_classification_formulas_that_miss_the_logits_are_no_formula(tmp_path, monkeypatch):
    """The same run under a logit R^2 no formula can reach: no formula, the partial forms by
    class, no formula files."""
    import class_formulas

    monkeypatch.setattr(class_formulas, "LOGIT_R2", 1.5)
    run = tmp_path / "run"
    metrics = classify(run, linear_csv(tmp_path / "linear.csv"))
    assert metrics["formulas"] is None and metrics["formula"] is None
    assert "reproduce its logits to R^2" in metrics["formula_note"]
    assert list(metrics["formula_partial"]) == ["0", "1"]
    assert not (run / "formula.txt").exists()


def test_a_classifier_no_better_than_the_majority_gets_no_formula(tmp_path):
    run = tmp_path / "run"
    data = linear_csv(tmp_path / "noise.csv", n=300, random_labels=True)
    metrics = classify(run, data, test_size=100, num_steps=20, learning_rate=0.001)
    assert metrics["formulas"] is None
    assert "no better than always answering the most frequent class" in metrics["formula_note"]
    assert not (run / "formula.txt").exists() and not (run / "symbolic.json").exists()
