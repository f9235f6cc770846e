"""Automatic tuning against scratch, and the classification metrics of the reports."""

import numpy as np
import pytest

from kerasdistill import data, metrics, models
from kerasdistill.backend import keras
from kerasdistill.tuning import tune


def test_classification_report_equals_a_hand_count():
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    report = metrics.classification_report(y_true, y_pred)
    assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    precision = [1 / 2, 2 / 3, 1.0]
    recall = [1 / 2, 1.0, 1 / 2]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    assert report["precision_macro"] == pytest.approx(np.mean(precision))
    assert report["recall_macro"] == pytest.approx(np.mean(recall))
    assert report["f1_macro"] == pytest.approx(np.mean(f1))
    scores = np.eye(3)[y_pred] * 5.0
    assert metrics.classification_report(np.eye(3)[y_true], scores) == report


# A whole search: in the long layer (`-m slow`).
@pytest.mark.slow
def test_a_tiny_search_runs_end_to_end_and_reports_scratch(digits, trained_teacher, tmp_path):
    # Seeded: the trials drawn (and the students' initial weights) must not
    # depend on which tests ran before. Unseeded, some orders drew three DKD
    # trials, which reach only 0.63-0.74 after one epoch (soft_target_kl: 0.86-0.90).
    keras.utils.set_random_seed(0)
    train = data.to_dataset(*digits.train, batch_size=64)
    val = data.to_dataset(*digits.val, batch_size=64)

    def student_fn():
        return models.build("convnet_student", (28, 28, 1), 10)

    result = tune(
        trained_teacher, student_fn, train, val,
        temperature=[2.0, 8.0], alpha=(0.0, 0.5), methods=["soft_target_kl", "dkd"],
        max_trials=3, epochs=1, directory=str(tmp_path),
    )  # fmt: skip
    trials, scratch = result.trials[:-1], result.trials[-1]
    assert len(trials) == 3 and scratch["trial"] == "scratch"
    assert all(t["temperature"] in (2.0, 8.0) and 0.0 <= t["alpha"] <= 0.5 for t in trials)
    best = max(trials, key=lambda t: t["val_accuracy"])
    assert result.best_accuracy == best["val_accuracy"] > 0.8
    # The baseline is a trained student (one epoch on the labels: about 0.9), not a placeholder.
    assert result.scratch_accuracy == scratch["val_accuracy"] > 0.8
    # The returned student is the one that scored best on validation, measured
    # here on its predictions: the best trial's, or scratch's when no trial beat it.
    won = best["val_accuracy"] > scratch["val_accuracy"]
    predicted = np.argmax(result.student.predict(digits.val.x, verbose=0), axis=-1)
    winner = max(best["val_accuracy"], scratch["val_accuracy"])
    assert np.mean(predicted == digits.val.y) == pytest.approx(winner, abs=1e-6)
    configuration = {"method": best["method"], "temperature": best["temperature"], "alpha": best["alpha"]}
    assert result.best == (configuration if won else {"method": "labels only", "temperature": None, "alpha": 1.0})
    # The verdict quotes the table's two accuracies and says who won.
    assert f"{best['val_accuracy']:.4f} vs {scratch['val_accuracy']:.4f}" in result.verdict
    assert ("no trial beat the scratch student" in result.verdict) == (not won)
    assert "scratch" in result.table()


# A whole search: in the long layer (`-m slow`).
@pytest.mark.slow
def test_a_search_that_loses_to_scratch_returns_the_scratch_student(digits, tmp_path):
    # An untrained teacher teaches noise: no trial can beat the labels alone.
    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    train = data.to_dataset(*digits.train, batch_size=64)
    val = data.to_dataset(*digits.val, batch_size=64)
    result = tune(
        teacher, lambda: models.build("convnet_student", (28, 28, 1), 10), train, val,
        temperature=[4.0], alpha=(0.0, 0.1), max_trials=2, epochs=1, directory=str(tmp_path),
    )  # fmt: skip
    assert result.gain < 0 and "no trial beat the scratch student" in result.verdict
    assert result.best == {"method": "labels only", "temperature": None, "alpha": 1.0}
    predicted = np.argmax(result.student.predict(digits.val.x, verbose=0), axis=-1)
    assert np.mean(predicted == digits.val.y) == pytest.approx(result.scratch_accuracy, abs=1e-6)


@pytest.mark.parametrize(
    "space, message",
    [
        ({"alpha": (0.2, 1.5)}, r"alpha as a range is \(low, high\).*in \[0, 1\]"),
        ({"alpha": [-0.1, 0.5]}, r"Every alpha must be in \[0, 1\]"),
        ({"temperature": [0.0, 4.0]}, r"Every temperature must be in \(0, 100\]"),
        ({"temperature": (4.0, 2.0)}, "low < high"),
        ({"temperature": []}, "non-empty list"),
        ({"methods": []}, "methods must be a non-empty list"),
        ({"methods": ["hint"]}, "Bad arguments for loss 'hint'|compares layer pairs"),
        ({"max_trials": 0}, "max_trials and epochs must be whole numbers >= 1"),
    ],
)
def test_bad_search_spaces_are_refused(trained_teacher, space, message):
    with pytest.raises(ValueError, match=message):
        tune(trained_teacher, lambda: None, None, None, **space)
