"""Issue 23's defects of tuning, the teacher-output cache and the run's checks: each test failed on b0fb0e1."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import kerasdistill as kd
from kerasdistill import augment, config, data, models, pipeline
from kerasdistill.backend import keras
from kerasdistill.tuning import tune


def student_fn():
    return models.build("convnet_student", (28, 28, 1), 10)


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))


def few_labels(digits, labeled=64, unlabeled=256):
    return (digits.train.x[:labeled], digits.train.y[:labeled]), digits.train.x[labeled : labeled + unlabeled]


def write_npz(path, y_train, y_test, count=60):
    rng = np.random.default_rng(0)
    np.savez(
        path,
        x_train=rng.uniform(0, 1, (count, 28, 28)).astype("float32"), y_train=np.asarray(y_train),
        x_test=rng.uniform(0, 1, (20, 28, 28)).astype("float32"), y_test=np.asarray(y_test),
    )  # fmt: skip
    return str(path)


QUICK = {
    "training": {"epochs": 1, "batch_size": 16},
    "export": {"quantizations": ["float32"], "targets": ["plain"]},
    "report": {"plots": False},
}


def run_config(**sections):
    return {**QUICK, **sections}


# 12. tune with a transfer set


def test_tune_refuses_a_transfer_set_as_scratch_data_before_any_trial_trains(digits, tmp_path):
    labeled, unlabeled = few_labels(digits)
    mixed = data.transfer_set(labeled, unlabeled, batch_size=32)
    val = data.to_dataset(*digits.val, batch_size=64)
    with pytest.raises(ValueError, match=r"train_data holds batches whose targets are \{labeled, labels\}.*scratch_data="):
        tune(keras.Sequential(), student_fn, mixed, val, max_trials=1, epochs=1, directory=str(tmp_path / "search"))
    assert not (tmp_path / "search").exists(), "no trial may train before the refusal"


def test_tune_with_a_transfer_set_fits_its_scratch_baseline_on_the_labeled_data(digits, trained_teacher, tmp_path):
    labeled, unlabeled = few_labels(digits)
    mixed = data.transfer_set(labeled, unlabeled, batch_size=32)
    steps = int(mixed.cardinality())
    result = tune(
        trained_teacher, student_fn, mixed.repeat(), data.to_dataset(*digits.val, batch_size=100),
        temperature=[4.0], alpha=[0.5], max_trials=1, epochs=1, steps_per_epoch=steps, directory=str(tmp_path),
        scratch_data=data.to_dataset(*labeled, batch_size=32, shuffle=True).repeat(),
    )  # fmt: skip
    assert [row["trial"] for row in result.trials][-1] == "scratch"
    assert len(result.trials) == 2 and 0 < result.scratch_accuracy <= 1


def test_tune_returns_the_scratch_student_at_the_epoch_it_scored(digits, tmp_path):
    # A learning rate this high makes the scratch student's validation accuracy fall after its first epoch
    # (0.295, 0.275, 0.23), and an untrained teacher's trial (0.095) cannot beat it.
    keras.utils.set_random_seed(0)
    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    x_val, y_val = digits.val.x[:200], digits.val.y[:200]
    result = tune(
        teacher, student_fn, data.to_dataset(digits.train.x[:256], digits.train.y[:256], batch_size=64),
        data.to_dataset(x_val, y_val, batch_size=100), temperature=[4.0], alpha=[0.0], max_trials=1, epochs=3,
        learning_rate=0.02, directory=str(tmp_path),
    )  # fmt: skip
    curve = result.history["val_accuracy"]
    assert result.best["method"] == "labels only"
    assert int(np.argmax(curve)) < len(curve) - 1, f"the test needs a best epoch before the last: {curve}"
    assert result.scratch_accuracy == pytest.approx(max(curve))
    assert accuracy(result.student, x_val, y_val) == pytest.approx(result.scratch_accuracy, abs=1e-6)


@pytest.mark.slow
def test_a_search_with_a_transfer_set_keeps_labels_only_as_what_it_is(digits, tmp_path):
    # Tuning's own scratch baseline (tune.epochs differs from training.epochs) trains beside a transfer set:
    # it crashed with a structure error after every trial. An untrained saved teacher teaches noise, so the
    # search keeps the labels-only student, which the report and the export name as such.
    keras.utils.set_random_seed(0)
    teacher = str(tmp_path / "untrained.keras")
    models.build("convnet_teacher", (28, 28, 1), 10).save(teacher)
    report = pipeline.run(
        run_config(
            data={"labeled_size": 300},
            teacher={"model": teacher},
            training={"epochs": 2, "batch_size": 64},
            tune={"enabled": True, "max_trials": 1, "epochs": 1, "temperature": [4.0], "alpha": [0.0], "methods": ["soft_target_kl"]},
        ),
        output=str(tmp_path / "out"), name="tuned", verbose=False,
    )  # fmt: skip
    assert report["tuning"]["best"]["method"] == "labels only"
    labels = [row["model"] for row in report["models"]]
    assert labels == ["teacher", "student (scratch)", "student (labels only)"]
    assert "student (distilled)" not in json.dumps(report["export"]["models"])
    # The run ships the better of its scratch student and the search's labels-only one (never "distilled").
    assert report["shipped"]["label"] in ("student (scratch)", "student (labels only)")
    assert report["export"]["models"][0]["model"] == report["shipped"]["label"]
    assert report["verdict"].startswith("No distillation setting the search tried beat")
    assert "The distilled student" not in pipeline.report_lib.summary(report)


# Transfer-set batches and teacher views


@pytest.mark.parametrize("share, missing", [(0.2, "no labeled rows"), (0.8, "no unlabeled rows")])
def test_a_batch_size_and_labeled_share_that_round_to_an_empty_part_are_refused(share, missing):
    transfer = {"data": {"labeled_size": 100}, "training": {"batch_size": 2}, "distillation": {"labeled_share": share}}
    with pytest.raises(ValueError, match=rf"training.batch_size and distillation.labeled_share.*batch_size 2 with labeled_share {share}.*{missing}"):
        config.validate(transfer)
    # Without a transfer set the share is unused.
    config.validate({"data": {"labeled_size": None}, "training": {"batch_size": 2}, "distillation": {"labeled_share": share}})


def test_teacher_views_are_bounded_in_configs_and_in_the_cache(trained_teacher):
    with pytest.raises(ValueError, match="distillation.teacher_views must be <= 32"):
        config.validate({"distillation": {"teacher_views": 1000, "augmentation": ["flip"]}})
    x = np.zeros((8, 28, 28, 1), "float32")
    with pytest.raises(ValueError, match=r"views is .* a whole number in \[1, 32\]"):
        kd.cache_teacher_outputs(trained_teacher, x, augmentation=augment.build(["translate"], seed=1), views=33)


def test_every_cached_view_is_a_new_augmentation(digits, trained_teacher):
    x = digits.train.x[:16]
    cached = kd.cache_teacher_outputs(trained_teacher, x, batch_size=16, augmentation=augment.build(["translate"], seed=2), views=4)
    images = np.concatenate([batch[0].numpy() for batch in cached]).reshape(4, 16, -1)
    assert all(not np.allclose(images[i], images[j]) for i in range(4) for j in range(i))


# Classes and model widths, checked before anything trains


def test_a_one_class_training_split_is_refused_before_anything_trains(tmp_path):
    path = write_npz(tmp_path / "one.npz", np.zeros(60, int), np.zeros(20, int))
    with pytest.raises(ValueError, match=r"training split's labels hold 1 class \(0\).*at least two classes"):
        pipeline.run(run_config(data={"source": "npz", "path": path, "validation_size": 10}), output=str(tmp_path / "out"), name="one", verbose=False)
    assert not list((tmp_path / "out").rglob("*.keras")), "no model may train before the refusal"


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_a_saved_model_of_another_class_count_is_refused_before_anything_trains(tmp_path, role):
    model = str(tmp_path / f"{role}.keras")
    models.build(f"convnet_{role}", (28, 28, 1), 10).save(model)
    path = write_npz(tmp_path / "three.npz", np.arange(60) % 3, np.arange(20) % 3)
    with pytest.raises(ValueError, match=rf"{role}.model .* outputs 10 class scores but the data has 3 classes"):
        pipeline.run(
            run_config(data={"source": "npz", "path": path, "validation_size": 10}, **{role: {"model": model}}),
            output=str(tmp_path / "out"), name="width", verbose=False,
        )  # fmt: skip
    assert not list((tmp_path / "out").rglob("*.keras")), "no model may train before the refusal"


@pytest.mark.parametrize(
    "section, message",
    [
        ({"teacher": {"fine_tune_layers": 10}}, "teacher.fine_tune_layers set for teacher.model 'convnet_teacher', which is not a backbone"),
        ({"student": {"backbone_size": 96}}, "student.backbone_size set for student.model 'convnet_student', which is not a backbone"),
    ],
)
def test_backbone_settings_on_a_model_that_is_no_backbone_are_refused(section, message):
    with pytest.raises(ValueError, match=message):
        config.validate(section)


def test_fine_tune_layers_above_the_backbones_depth_are_refused_before_anything_trains(tmp_path):
    path = write_npz(tmp_path / "three.npz", np.arange(60) % 3, np.arange(20) % 3)
    teacher = {"model": "backbone:mobilenet_v2", "weights": None, "backbone_size": 32, "fine_tune_layers": 1000}
    with pytest.raises(ValueError, match="teacher.fine_tune_layers is 1000 but backbone mobilenet_v2 has 154 layers"):
        pipeline.run(run_config(data={"source": "npz", "path": path, "validation_size": 10}, teacher=teacher), output=str(tmp_path / "out"), name="deep", verbose=False)


# The teacher-output cache records its teacher


def test_a_cache_of_another_teacher_is_refused_naming_it(digits, trained_teacher, tmp_path):
    x, y = digits.train.x[:64], digits.train.y[:64]
    path = str(tmp_path / "cache")
    kd.cache_teacher_outputs(trained_teacher, (x, y), path=path)
    # The same teacher, loaded again from a file, is the same teacher.
    saved = str(tmp_path / "teacher.keras")
    trained_teacher.save(saved)
    reloaded = keras.models.load_model(saved)
    assert len(list(kd.load_cached_teacher_outputs(path, teacher=reloaded))) == 2
    keras.utils.set_random_seed(3)
    other = models.build("convnet_teacher", (28, 28, 1), 10)  # the same width, other weights
    with pytest.raises(ValueError, match=rf"holds the outputs of another teacher: it was written with {trained_teacher.name}"):
        kd.load_cached_teacher_outputs(path, teacher=other)
    os.remove(os.path.join(path, "teacher.json"))
    with pytest.raises(ValueError, match="records no readable teacher fingerprint"):
        kd.load_cached_teacher_outputs(path, teacher=trained_teacher)


# Keras backends other than TensorFlow


NOT_TENSORFLOW = textwrap.dedent(
    """
    import sys
    import numpy as np
    import kerasdistill as kd
    from kerasdistill import models, pipeline

    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    for name, call in [
        ("cache", lambda: kd.cache_teacher_outputs(teacher, np.zeros((4, 28, 28, 1), "float32"))),
        ("run", lambda: pipeline.run({"training": {"epochs": 1}}, output=sys.argv[1], verbose=False)),
    ]:
        try:
            call()
            print(name, "no error")
        except RuntimeError as error:
            print(name, "RuntimeError", error)
    """
)


def test_the_tensorflow_only_parts_say_so_at_once_on_jax(tmp_path):
    pytest.importorskip("jax")
    environment = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, "-c", NOT_TENSORFLOW, str(tmp_path / "out")], capture_output=True, text=True, env=environment, timeout=300,
    )  # fmt: skip
    lines = [line for line in result.stdout.splitlines() if line.startswith(("cache ", "run "))]
    assert len(lines) == 2, result.stdout + result.stderr[-3000:]
    assert all("RuntimeError" in line and "TensorFlow backend only" in line and "'jax'" in line for line in lines), lines
    assert not (tmp_path / "out").exists(), "nothing is written before the refusal"


# Downloaded weights


def test_a_downloaded_weights_file_that_does_not_match_its_published_hash_is_refused_and_removed(tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    from kerasdistill import transfer

    targets = []

    def damaged_download(url, target, *args, **kwargs):
        targets.append(target)
        with open(target, "wb") as handle:
            handle.write(b"not the published weights")

    monkeypatch.setenv(transfer.WEIGHTS_DIR_ENV, str(tmp_path / "none"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr(file_utils, "urlretrieve", damaged_download)
    with pytest.raises(ValueError, match=r"does not match the published hash of efficientnetb0_notop.h5 \(50bc09e7"):
        transfer.find_imagenet_weights("efficientnet_b0", download=True)
    assert len(targets) == 1 and targets[0].startswith(str(tmp_path / "keras" / "models")), targets
    assert not os.listdir(tmp_path / "keras" / "models"), "the damaged file is not left for the next lookup"
