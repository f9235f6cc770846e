"""Defects an adversarial trial found in runs, caches, saved students, clean, export and the CLI."""

import json
import os

import numpy as np
import pytest

from kerasdistill import cache, cli, files, model_specs, pipeline, runs, sources
from kerasdistill import config as config_lib
from kerasdistill.backend import UnsupportedBackendError, keras
from kerasdistill.callbacks import BackupAndRestore, BestEpoch
from kerasdistill.export import to_tflite


def _tiny(scale=1 / 255.0, offset=0.0, seed=1):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((28, 28, 1))
    hidden = keras.layers.Flatten()(keras.layers.Rescaling(scale, offset)(inputs))
    hidden = keras.layers.Dense(8, activation="relu")(hidden)
    return keras.Model(inputs, keras.layers.Dense(10)(hidden))


def _config():
    return config_lib.validate({"training": {"epochs": 1}})


# 1. The test images in the transfer set.


def test_transfer_set_holding_test_or_validation_images_is_refused(tmp_path, digits):
    rng = np.random.default_rng(0)
    unlabeled = np.concatenate(
        [rng.uniform(0, 255, (5, 28, 28, 1)), digits.test.x[:3], digits.val.x[:2].astype(np.float64)]
    ).astype(np.float32)
    np.savez(tmp_path / "more.npz", x=unlabeled)
    settings = config_lib.validate({"data": {"unlabeled_path": str(tmp_path / "more.npz")}})
    # Streamed (an uncompressed .npz), the file is read once by the check that follows the cheaper ones.
    with pytest.raises(ValueError) as caught:
        sources.check_streams(sources.load_data(settings["data"], seed=0))
    message = str(caught.value)
    assert "3 of the 1000 test images" in message and "2 of the 500 validation images" in message
    assert "unlabeled folder" in message
    # Unlabeled images of other pictures pass; so do duplicates inside the user's own training images.
    runs.check_transfer_set(digits._replace(unlabeled=unlabeled[:5]))
    np.savez(tmp_path / "more.npz", x=unlabeled[:5])
    assert len(sources.load_data(settings["data"], seed=0).unlabeled) == 3000 + 5
    # Compressed, it is read whole and checked as it loads.
    np.savez_compressed(tmp_path / "packed.npz", x=unlabeled)
    with pytest.raises(ValueError, match="3 of the 1000 test images"):
        sources.load_data(config_lib.validate({"data": {"unlabeled_path": str(tmp_path / "packed.npz")}})["data"], seed=0)


# 2. A teacher-output cache of another teacher with the same weights.


def test_cache_refuses_teacher_of_other_architecture_with_same_weights(tmp_path, digits):
    teacher = _tiny()
    other = _tiny(1 / 127.5, -1.0)
    other.set_weights(teacher.get_weights())
    x, y = digits.train.x[:32], digits.train.y[:32]
    cache.cache_teacher_outputs(teacher, (x, y), path=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="architecture, weights or output kinds differ"):
        cache.load_cached_teacher_outputs(str(tmp_path / "cache"), teacher=other)
    # The same teacher saved and loaded again, or built again under other automatic names, still matches.
    files.save_model(teacher, str(tmp_path / "teacher.keras"))
    cache.load_cached_teacher_outputs(str(tmp_path / "cache"), teacher=files.load_model(str(tmp_path / "teacher.keras")))
    rebuilt = _tiny()
    assert rebuilt.name != teacher.name
    cache.load_cached_teacher_outputs(str(tmp_path / "cache"), teacher=rebuilt)


# 3. A trained .keras student reported as "student (scratch)".


def test_saved_student_starts_from_fresh_weights_each_time(tmp_path):
    trained = _tiny()
    trained.set_weights([np.full_like(weight, 0.5) for weight in trained.get_weights()])
    path = str(tmp_path / "student.keras")
    files.save_model(trained, path)

    def build():
        keras.utils.set_random_seed(3)
        return model_specs.build_model(path, (28, 28, 1), 10, role="student")

    first, second = build(), build()
    assert [layer.name for layer in first.layers] == [layer.name for layer in trained.layers]
    for fresh, again in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(fresh, again)  # both students start alike
    assert not np.allclose(first.get_weights()[0], trained.get_weights()[0]), "the saved (trained) weights were kept"
    # A saved teacher is used as it is.
    teacher = model_specs.build_model(path, (28, 28, 1), 10, role="teacher")
    np.testing.assert_array_equal(teacher.get_weights()[0], trained.get_weights()[0])


# 4. clean --remove deleting the results a failed --overwrite run replaced.


def _finished_run(folder):
    os.makedirs(folder)
    for name, text in (("report.json", '{"old": true}'), ("splits.json", "{}"), ("student.keras", "old")):
        (folder / name).write_text(text)


def test_failed_overwrite_after_training_puts_the_old_results_back(tmp_path):
    _finished_run(tmp_path / "r")
    with pytest.raises(RuntimeError, match="crash"):
        with runs.RunState(_config(), tmp_path, "r", overwrite=True, verbose=False) as state:
            (tmp_path / "r" / "splits.json").write_text("{}")  # this run's partial results
            (tmp_path / "r" / "teacher.keras").write_text("new")
            files.write_bytes(os.path.join(state.resume, "teacher.keras"), b"stage")  # training started
            raise RuntimeError("crash")
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == {"old": True}
    assert sorted(os.listdir(tmp_path / "r")) == ["report.json", "splits.json", "student.keras"]
    # The failed run can resume (its stage is kept), and moves the old results aside again.
    with runs.RunState(_config(), tmp_path, "r", verbose=False) as state:
        assert state.resumed and os.listdir(state.folder) == []
        assert os.path.isfile(os.path.join(state.resume, runs.REPLACED, "report.json"))
        (tmp_path / "r" / "report.json").write_text('{"new": true}')
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == {"new": True}
    assert not os.path.exists(tmp_path / ".resume")


def _abandoned_overwrite(tmp_path, key):
    """The state a killed (never exited) --overwrite run leaves: the old results under `replaced`."""
    state = tmp_path / ".resume" / key
    _finished_run(state / runs.REPLACED)
    (state / "run.json").write_text('{"name": "r", "replaces": true}')
    (state / "teacher.keras").write_text("stage")
    return state


def test_clean_puts_replaced_results_back_over_partial_ones_and_never_deletes_them(tmp_path):
    _abandoned_overwrite(tmp_path, "a")
    os.makedirs(tmp_path / "r")
    (tmp_path / "r" / "splits.json").write_text("{}")  # the killed run's partial results
    removed = runs.remove_abandoned(str(tmp_path))
    assert [entry["name"] for entry in removed] == ["r"] and "kept" not in removed[0]
    assert json.loads((tmp_path / "r" / "report.json").read_text()) == {"old": True}
    assert not os.path.exists(tmp_path / ".resume")
    # A finished run in the folder stays, and so do the results the state holds.
    state = _abandoned_overwrite(tmp_path / "other", "b")
    _finished_run(tmp_path / "other" / "r")
    (kept,) = runs.remove_abandoned(str(tmp_path / "other"))
    assert kept["kept"] == str(state / runs.REPLACED) and os.path.isfile(state / runs.REPLACED / "report.json")


# 5. A plain int8 file calibrated on data of another scale.


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "student.keras")
    files.save_model(_tiny(), path)
    return path


def test_export_plain_int8_warns_on_calibration_of_another_scale(tmp_path, saved_model, capsys, digits):
    np.savez(tmp_path / "cal01.npz", x=digits.train.x[:50] / 255.0)
    output = str(tmp_path / "s_int8.tflite")
    assert cli.main(["export", saved_model, "--calibration-data", str(tmp_path / "cal01.npz"), "--output", output]) == 0
    err = capsys.readouterr().err
    assert "spans [0, 1], not the 0-255 pixels" in err
    np.savez(tmp_path / "cal255.npz", x=digits.train.x[:50])
    args = ["export", saved_model, "--calibration-data", str(tmp_path / "cal255.npz"), "--output", output, "--overwrite"]
    assert cli.main(args) == 0
    assert "Warning" not in capsys.readouterr().err


# Poorer defects.


def test_overwrite_refuses_a_folder_that_holds_no_run(tmp_path):
    os.makedirs(tmp_path / "mydocs")
    (tmp_path / "mydocs" / "thesis.txt").write_text("years of work")
    with pytest.raises(FileExistsError, match="holds no run.*thesis.txt"):
        with runs.RunState(_config(), tmp_path, "mydocs", overwrite=True, verbose=False):
            pass
    assert (tmp_path / "mydocs" / "thesis.txt").read_text() == "years of work"
    assert not os.path.exists(tmp_path / ".resume")


def test_evaluate_outside_a_run_says_which_data_it_measured(tmp_path, saved_model, capsys):
    path = str(tmp_path / "moved.tflite")
    to_tflite(files.load_model(saved_model), path)
    assert cli.main(["evaluate", path]) == 0
    assert "not in a run folder" in capsys.readouterr().err


def test_cli_prints_backend_refusals_as_other_errors(monkeypatch, capsys):
    def refuse(*args, **kwargs):
        raise UnsupportedBackendError("The kerasdistill run pipeline works on Keras' TensorFlow backend only")

    monkeypatch.setattr(pipeline, "run", refuse)
    assert cli.main(["run", "--output", "unused"]) == 2
    assert "kerasdistill run: error: The kerasdistill run pipeline" in capsys.readouterr().err


def test_init_on_an_existing_file_names_the_flag(tmp_path, capsys):
    path = tmp_path / "pipeline.yaml"
    path.write_text("mine")
    assert cli.main(["init", str(path)]) == 2
    err = capsys.readouterr().err
    assert "--overwrite" in err and "overwrite=True" not in err
    assert path.read_text() == "mine"


@pytest.mark.parametrize("name", ["a\nb", "tab\there", "bell\x07"])
def test_run_name_with_control_characters_is_refused(name):
    with pytest.raises(ValueError, match="printable"):
        runs.check_run_name(name)


# A second trial: resumes, tuning schedules, saved models of another input, export targets.


def test_a_replaced_model_file_is_not_resumed_with_stages_of_the_old_one(tmp_path):
    student = tmp_path / "student.keras"
    student.write_bytes(b"first")
    settings = config_lib.validate({"student": {"model": str(student)}})
    key = runs.RunState(settings, str(tmp_path / "out"), "r", verbose=False).resume
    student.write_bytes(b"another architecture")
    assert runs.RunState(settings, str(tmp_path / "out"), "r", verbose=False).resume != key


def test_a_kill_between_the_end_of_training_and_the_backups_end_keeps_the_best_epoch(tmp_path):
    class KilledAtTheEnd(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            raise KeyboardInterrupt

    class Scores(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.weights = []

        def on_epoch_end(self, epoch, logs=None):
            logs["val_accuracy"] = [0.5, 0.9, 0.6][epoch]
            self.weights.append(self.model.get_weights())

    def model():
        keras.utils.set_random_seed(0)
        built = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="scores")], name="tiny")
        built.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
        return built

    x, y = np.random.default_rng(0).normal(size=(16, 4)).astype("float32"), np.arange(16) % 3
    backup = tmp_path / "backup"
    scores = Scores()
    first = BestEpoch(backup_dir=backup / "best", delete_on_success=False)
    with pytest.raises(KeyboardInterrupt):
        model().fit(x, y, epochs=3, verbose=0, callbacks=[scores, first, KilledAtTheEnd(), BackupAndRestore(backup)])
    resumed, second = model(), BestEpoch(backup_dir=backup / "best", delete_on_success=False)
    resumed.fit(x, y, epochs=3, verbose=0, callbacks=[second, BackupAndRestore(backup)])
    assert second.best_epoch == 2
    for kept, expected in zip(resumed.get_weights(), scores.weights[1]):
        np.testing.assert_array_equal(kept, expected)


def test_a_saved_model_of_another_input_size_is_refused_before_anything_trains(tmp_path):
    from kerasdistill import models

    teacher = files.save_model(models.build("convnet_teacher", (32, 32, 1), 10), str(tmp_path / "t32.keras"))
    settings = {"teacher": {"model": teacher}, "training": {"epochs": 1}}
    with pytest.raises(ValueError, match=r"takes inputs of shape \(32, 32, 1\) but the data's images are \(28, 28, 1\)"):
        pipeline.run(settings, output=str(tmp_path / "out"), name="r", verbose=False)
    assert not os.path.exists(tmp_path / "out" / "r")


def test_the_search_trains_on_the_runs_schedule(tmp_path, monkeypatch):
    seen = {}

    def search(*args, learning_rate, **kwargs):
        seen["learning_rate"] = learning_rate
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "tune", search)
    settings = {"tune": {"enabled": True, "max_trials": 1}, "training": {"epochs": 1}}
    monkeypatch.setattr(pipeline, "train_teacher", lambda state, inputs: (None, {}))
    monkeypatch.setattr(pipeline, "train_scratch", lambda state, inputs: (None, {"best_epoch": 1, "history": {}}))
    monkeypatch.setattr(pipeline, "validation_scores", lambda inputs, **models: {})
    monkeypatch.setattr(pipeline, "check_teacher", lambda *args: [])
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(settings, output=str(tmp_path / "out"), name="r", verbose=False)
    assert isinstance(seen["learning_rate"], keras.optimizers.schedules.LearningRateSchedule)


def test_export_never_writes_over_its_model_or_another_kind_of_file(saved_model, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    for output in (saved_model, str(notes)):
        assert cli.main(["export", saved_model, "--quantization", "float32", "--output", output, "--overwrite"]) == 2
        assert "must be a new .tflite file's path" in capsys.readouterr().err
    assert files.load_model(saved_model) is not None and notes.read_text() == "mine"


def test_labeled_size_all_in_a_config_keeps_every_label():
    assert config_lib.validate({"data": {"labeled_size": "all"}})["data"]["labeled_size"] is None
