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


def test_classification_with_symbolic_is_one_line_error(write_file, capsys):
    data = write_file("0,1,a\n1,0,b\n2,2,a\n")
    args = ["--set", "task=classification", "--set", "target_function=null", "--set"]
    args += [f"data_file={data}", "--set", "layer_dims=[2,2]", "--set", "symbolic=true", "--check"]
    code = pykan_mit.main(args)
    err = capsys.readouterr().err
    assert code == 2 and "symbolic" in err and len(err.strip().splitlines()) == 1
