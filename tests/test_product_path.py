"""The product path: every model taken at its best validation epoch, patient schedules, and a shipped student
never worse than its scratch twin on validation; `kerasdistill init` writes the job a bare run runs."""

import json
import os
import types

import numpy as np
import pytest
import yaml

from kerasdistill import cli, config, files, models, pipeline, schedules
from kerasdistill.backend import keras
from kerasdistill.callbacks import BackupAndRestore, BestEpoch
from kerasdistill.losses import CrossEntropy


class Scores(keras.callbacks.Callback):
    """Replays a fixed validation accuracy per epoch and records the weights each epoch ended with."""

    def __init__(self, scores):
        super().__init__()
        self.scores, self.weights = scores, []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_accuracy"] = self.scores[epoch]
        self.weights.append(self.model.get_weights())


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="scores")], name="tiny")
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=CrossEntropy())
    return model


def fit_with(model, scores, *callbacks):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, 32)
    replay = Scores(scores)
    history = model.fit(x, y, epochs=len(scores), batch_size=8, verbose=0, callbacks=[replay, *callbacks])
    return replay, history


def test_best_epoch_restores_the_best_weights_and_stops_after_its_patience():
    model = tiny_model()
    best = BestEpoch(patience=2)
    replay, history = fit_with(model, [0.5, 0.7, 0.6, 0.7, 0.65, 0.9], best)
    # Epoch 2 is the best; 3 and 4 do not beat it (a tie keeps the earlier epoch): stopped after epoch 4.
    assert (best.best_epoch, best.best, best.stopped_epoch) == (2, 0.7, 4)
    assert len(history.history["loss"]) == 4
    for kept, expected in zip(model.get_weights(), replay.weights[1]):
        np.testing.assert_array_equal(kept, expected)


def test_best_epoch_keeps_the_starting_weights_when_no_epoch_beats_the_baseline():
    model = tiny_model()
    start = model.get_weights()
    best = BestEpoch(baseline=0.8)
    fit_with(model, [0.5, 0.7, 0.6], best)
    assert best.best_epoch == 0 and best.best == 0.8
    for kept, expected in zip(model.get_weights(), start):
        np.testing.assert_array_equal(kept, expected)


def test_best_epoch_survives_a_killed_training(tmp_path):
    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    backup = tmp_path / "backup"
    model = tiny_model()
    first = BestEpoch(patience=5, backup_dir=backup)
    with pytest.raises(KeyboardInterrupt):
        fit_with(model, [0.5, 0.9, 0.6, 0.6, 0.6], first, BackupAndRestore(backup), Kill())
    best_weights = first.weights
    # A new process: the same training resumes after epoch 3 and still knows epoch 2 was the best.
    model = tiny_model(seed=1)
    second = BestEpoch(patience=5, backup_dir=backup)
    fit_with(model, [0.5, 0.9, 0.6, 0.6, 0.6], second, BackupAndRestore(backup))
    assert second.best_epoch == 2
    for kept, expected in zip(model.get_weights(), best_weights):
        np.testing.assert_array_equal(kept, expected)
    assert not backup.exists(), "the backups are removed once training completes"


def test_the_cosine_schedule_warms_up_then_decays_to_zero_at_the_budget():
    rate = schedules.learning_rate(1e-3, "cosine", epochs=10, steps_per_epoch=20)
    values = [float(keras.ops.convert_to_numpy(rate(step))) for step in (0, 10, 50, 120, 199, 200)]
    assert values[0] == 0.0 and values[1] == pytest.approx(1e-3)
    assert values[1] > values[2] > values[3] > values[4] > 0 and values[5] == pytest.approx(0.0, abs=1e-9)
    assert schedules.learning_rate(1e-3, "constant", epochs=10, steps_per_epoch=20) == 1e-3


def test_init_writes_the_job_a_bare_run_runs(tmp_path):
    path = tmp_path / "pipeline.yaml"
    assert cli.main(["init", str(path)]) == 0
    written = config.validate(yaml.safe_load(path.read_text()))
    bare = config.validate(cli._run_config(cli.build_parser().parse_args(["run"])))
    assert written == bare
    assert bare["data"]["labeled_size"] == 500 and 0 < bare["data"]["validation_size"] < 1
    # Any other source keeps every label, unless asked.
    folder = config.validate({"data": {"source": "image_folder", "path": str(tmp_path)}})
    assert folder["data"]["labeled_size"] is None


@pytest.fixture(scope="module")
def grey_folder(digits, tmp_path_factory):
    """360 real grey digit images in 3 class folders, as a user's small folder."""
    folder = tmp_path_factory.mktemp("grey")
    for label in range(3):
        os.makedirs(folder / f"class_{label}")
        for index, image in enumerate(digits.train.x[digits.train.y == label][:120]):
            keras.utils.save_img(folder / f"class_{label}" / f"{index:03d}.png", image, scale=False)
    return folder


def test_a_small_grey_folder_with_inits_config_ships_the_better_student(grey_folder, tmp_path):
    path = tmp_path / "pipeline.yaml"
    assert cli.main(["init", str(path)]) == 0
    written = yaml.safe_load(path.read_text())
    written["data"].update(source="image_folder", path=str(grey_folder))
    path.write_text(yaml.safe_dump(written))
    assert cli.main(["run", "--config", str(path), "--output", str(tmp_path / "out"), "--name", "grey", "--quiet"]) == 0
    report = json.loads((tmp_path / "out" / "grey" / "report.json").read_text())
    shipped = report["shipped"]
    assert shipped["validation"][shipped["label"]] == max(shipped["validation"].values())
    rows = {row["model"]: row for row in report["models"]}
    assert all(1 <= row["best_epoch"] <= written["training"]["epochs"] for row in rows.values())
    # The exported files are the shipped student's.
    keras_row = next(row for row in report["export"]["models"] if row["model"] == shipped["label"])
    assert keras_row["accuracy"] == pytest.approx(rows[shipped["label"]]["test_accuracy"])


@pytest.mark.slow
def test_a_run_whose_distilled_student_is_worse_ships_its_scratch_twin(tmp_path):
    # An untrained teacher teaches noise: its student must not be what the run exports.
    keras.utils.set_random_seed(3)
    teacher = files.save_model(models.build("convnet_teacher", (28, 28, 1), 10), str(tmp_path / "noise.keras"))
    settings = {
        "teacher": {"model": teacher},
        "distillation": {"alpha": 0.0, "temperature": 4.0},  # fixed: no settings search
        "training": {"epochs": 3},
        "export": {"quantizations": ["float32"], "targets": ["plain"]},
        "report": {"plots": False},
    }
    report = pipeline.run(settings, output=str(tmp_path / "out"), name="noise", verbose=False)
    shipped = report["shipped"]
    assert shipped["label"] == "student (scratch)", shipped
    assert "stronger teacher" in shipped["reason"]
    scratch_row = next(row for row in report["models"] if row["model"] == "student (scratch)")
    exported = next(row for row in report["export"]["models"] if row["model"].endswith(".tflite"))
    assert exported["accuracy"] == pytest.approx(scratch_row["test_accuracy"], abs=0.002)


def test_a_tie_on_validation_ships_the_distilled_student_only_when_the_teacher_leads():
    teacher, scratch, student = object(), object(), object()
    state = types.SimpleNamespace(say=lambda *_: None)
    rows = [{"model": "teacher"}, {"model": "student (scratch)"}, {"model": "student (distilled)"}]
    trained = [("teacher", teacher, {}, ""), ("scratch", scratch, {}, ""), ("distilled", student, {}, "")]
    cases = [  # validation accuracy of teacher, scratch, distilled -> the shipped student
        ((0.95, 0.90, 0.90), "student (distilled)"),  # a tie, and the teacher leads: what it teaches is worth more
        ((0.90, 0.90, 0.90), "student (scratch)"),  # a tie with a teacher that does not lead: no teacher needed
        ((0.80, 0.90, 0.91), "student (distilled)"),  # higher is higher
        ((0.99, 0.91, 0.90), "student (scratch)"),
    ]
    for scores, expected in cases:
        validation = dict(zip(("teacher", "scratch", "distilled"), scores))
        shipped = pipeline.choose_student(state, trained, rows, validation)
        assert shipped["label"] == expected, (scores, shipped["reason"])
        assert shipped["model"] is (student if expected.endswith("(distilled)") else scratch)
