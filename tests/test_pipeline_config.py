"""`kerasdistill run --config`: every section end to end on real images, and its data sources."""

import json
import os

import numpy as np
import pytest
import yaml

from kerasdistill import cli, config, data
from kerasdistill.backend import keras

from conftest import imagenet_weights_or_skip

CLASSES = 4


@pytest.fixture(scope="module")
def image_folder(digits, tmp_path_factory):
    """Real digit images written as PNG files, one folder per class (4 classes, 60 images each)."""
    folder = tmp_path_factory.mktemp("images")
    for label in range(CLASSES):
        os.makedirs(folder / f"digit_{label}")
        images = digits.train.x[digits.train.y == label][:60]
        for index, image in enumerate(images):
            keras.utils.save_img(folder / f"digit_{label}" / f"{index:03d}.png", image, scale=False)
    return folder


@pytest.mark.slow
def test_a_config_with_every_section_runs_end_to_end_and_writes_every_artifact(image_folder, tmp_path):
    pipeline = {
        "data": {"source": "image_folder", "path": str(image_folder), "image_size": [28, 28], "validation_size": 0.15, "test_fraction": 0.25},
        "teacher": {"model": "convnet_teacher"},
        "student": {"model": "convnet_student"},
        "distillation": {"losses": ["soft_target_kl", {"name": "dkd", "config": {"non_target_weight": 2.0}}], "alpha": 0.3, "temperature": 3.0},
        "training": {"epochs": 3, "batch_size": 32, "learning_rate": 0.002, "seed": 1, "strategy": "mirrored", "precision": "float32"},
        "tune": {"enabled": True, "max_trials": 2, "epochs": None, "temperature": [2.0, 6.0], "alpha": {"low": 0.1, "high": 0.9}, "methods": ["soft_target_kl", "dkd"]},
        "report": {"plots": True, "tensorboard": True},
        "export": {"quantizations": ["float32", "dynamic", "int8"]},
    }  # fmt: skip
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(pipeline))
    assert cli.main(["run", "--config", str(path), "--output", str(tmp_path / "out"), "--name", "e2e", "--quiet"]) == 0
    run = tmp_path / "out" / "e2e"
    names = set(os.listdir(run))
    assert {
        "teacher.keras", "student.keras", "student_scratch.keras", "student_float32.tflite", "student_dynamic.tflite",
        "student_int8.tflite", "report.json", "config.yaml", "training_curves.png", "accuracy_vs_size.png", "tuning.png", "tensorboard",
    } <= names  # fmt: skip
    report = json.loads((run / "report.json").read_text())
    # config.yaml repeats the run: with the settings the search chose, and no search.
    best = report["tuning"]["best"]
    expected = config.validate(pipeline)
    expected["tune"]["enabled"] = False
    expected["distillation"]["alpha"] = best["alpha"]
    if best["method"] != "labels only":
        expected["distillation"].update(losses=[best["method"]], temperature=best["temperature"])
    assert config.validate(yaml.safe_load((run / "config.yaml").read_text())) == expected
    # One scratch student: the table's is the search's baseline, scored with the weights it holds (its best
    # epoch, the one the table names), and every model has its curves.
    kept = next(row["best_epoch"] for row in report["models"] if row["model"] == "student (scratch)")
    scratch_curve = report["histories"]["scratch"]["val_accuracy"]
    assert report["tuning"]["trials"][-1]["val_accuracy"] == pytest.approx(scratch_curve[kept - 1]) == pytest.approx(max(scratch_curve))
    assert all(report["histories"][label].get("val_accuracy") for label in ("teacher", "scratch", "distilled"))
    assert report["tuning"]["verdict"].startswith("Tuning (validation split)")
    rows = {row["model"]: row for row in report["models"]}
    # 3 epochs on 180 images (chance 0.25): measured 0.83, and 0.68 once while another job shared the cores.
    assert rows["teacher"]["test_accuracy"] > 0.5
    for row in rows.values():
        assert 0 <= row["f1_macro"] <= 1 and 0 <= row["precision_macro"] <= 1 and 0 <= row["recall_macro"] <= 1
    for matrix in report["confusion_matrices"].values():
        assert np.array(matrix).shape == (CLASSES, CLASSES) and np.sum(matrix) == 60
    trials = report["tuning"]["trials"]
    assert len(trials) == 3 and trials[-1]["trial"] == "scratch"
    assert "scratch student" in report["tuning"]["verdict"]
    assert [r["model"] for r in report["export"]["models"]][1:] == [
        f"student_{q}{suffix}.tflite" for q in ("float32", "dynamic", "int8") for suffix in ("", "_classifier")
    ]
    for name in ("training_curves.png", "accuracy_vs_size.png", "tuning.png"):
        image = (run / name).read_bytes()
        assert image[:8] == b"\x89PNG\r\n\x1a\n" and len(image) > 10_000
        height, width = np.asarray(keras.utils.load_img(run / name)).shape[:2]
        assert height >= 300 and width >= 500
    events = [f for _, _, fs in os.walk(run / "tensorboard") for f in fs if f.startswith("events.out.tfevents")]
    assert len(events) >= 2
    assert not os.path.exists(tmp_path / "out" / ".resume")


def test_kerasdistill_init_writes_a_config_that_loads_to_the_defaults(tmp_path, capsys):
    path = tmp_path / "pipeline.yaml"
    assert cli.main(["init", str(path)]) == 0
    assert config.load(str(path)) == config.validate(config.defaults())
    assert cli.main(["init", str(path)]) == 2, "an existing config is not overwritten"
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "section, message",
    [
        ({"data": {"source": "npz"}}, "data.source is npz but data.path is missing"),
        ({"data": {"source": "tfds"}}, "data.source is tfds but data.name is missing"),
        ({"data": {"source": "csv"}}, "data.source is 'csv'; allowed values: embedded, npz, image_folder, tfds"),
        ({"teacher": {"model": "backbone:resnet9"}}, "unknown backbone 'backbone:resnet9'; known backbones: mobilenet_v2"),
        ({"student": {"model": "tiny"}}, "student.model is 'tiny': it must be a built-in model"),
        ({"training": {"precision": "half"}}, "training.precision is 'half'; allowed values: float32"),
        ({"tune": {"alpha": [0.5, 2.0]}}, r"Every tune.alpha must be in \[0, 1\]"),
        ({"tune": {"temperature": {"low": 5, "top": 9}}}, "tune.temperature as a range is {low: ..., high: ...}"),
        ({"export": {"quantizations": ["int2"]}}, "export.quantizations is 'int2'; allowed values: float32, float16, dynamic, int8, int4"),
        ({"report": {"plots": "yes"}}, "report.plots must be true or false"),
        ({"model": {}}, "Unknown config section"),
        (["data"], "A config is a mapping of sections"),
    ],
)
def test_each_malformed_config_gets_its_own_error(section, message):
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        config.validate(section)


def test_the_tfds_source_reads_a_prepared_dataset_and_never_downloads(tmp_path):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=40):
        splits = data.load_tfds("mnist", image_size=[32, 32], validation_size=0.25)
    assert splits.train.x.shape == (30, 32, 32, 1) and splits.test.x.shape == (40, 32, 32, 1)
    assert splits.num_classes == 10 and splits.train.x.dtype == np.float32
    with pytest.raises(FileNotFoundError, match="not prepared in .*Nothing is downloaded.*image_folder or npz"):
        data.load_tfds("mnist", data_dir=str(tmp_path))


def test_the_image_folder_source_uses_train_and_test_folders_when_present(digits, tmp_path):
    for split, images in (("train", digits.train), ("test", digits.test)):
        for label in range(2):
            os.makedirs(tmp_path / split / str(label))
            for index, image in enumerate(images.x[images.y == label][:12]):
                keras.utils.save_img(tmp_path / split / str(label) / f"{index}.png", image, scale=False)
    splits = data.load_image_folder(str(tmp_path), validation_size=4)
    assert splits.train.x.shape == (20, 28, 28, 3) and splits.val.x.shape[0] == 4 and splits.test.x.shape[0] == 24
    assert splits.num_classes == 2
    # The images are the real digits: the pixel values survive the PNG round trip.
    assert splits.test.x.max() > 200


def test_backbone_entries_build_a_frozen_teacher_and_a_trainable_student():
    from kerasdistill.model_specs import build_model

    weights = imagenet_weights_or_skip("mobilenet_v2", (96, 96, 3))
    teacher = build_model("backbone:mobilenet_v2", (32, 32, 3), 4, weights=weights, role="teacher")
    student = build_model("backbone:mobilenet_v3_small", (32, 32, 3), 4, weights=None, role="student")
    assert teacher.output_shape == student.output_shape == (None, 4)
    assert not teacher.get_layer("backbone").trainable_weights
    assert len(teacher.trainable_weights) == 2, "only the new head trains on the pretrained features"
    assert student.get_layer("backbone").trainable_weights
    # A random backbone is never frozen: its layers would not learn.
    random_teacher = build_model("backbone:mobilenet_v3_small", (32, 32, 3), 4, weights=None, role="teacher")
    assert random_teacher.get_layer("backbone").trainable_weights


def test_an_untrained_teacher_is_named_before_distilling(tmp_path):
    from kerasdistill import models, pipeline

    keras.utils.set_random_seed(0)
    untrained = tmp_path / "untrained.keras"
    models.build("convnet_teacher", (28, 28, 1), 10).save(untrained)
    settings = {
        "teacher": {"model": str(untrained)},
        "training": {"epochs": 1},
        "export": {"quantizations": ["float32"]},
        "report": {"plots": False},
    }
    report = pipeline.run(settings, output=str(tmp_path / "out"), name="chance", verbose=False)
    assert len(report["warnings"]) == 1 and "near chance on the validation split" in report["warnings"][0]
    assert json.loads((tmp_path / "out" / "chance" / "report.json").read_text())["warnings"] == report["warnings"]


def test_a_run_that_fails_before_any_epoch_leaves_nothing_behind(tmp_path):
    from kerasdistill import pipeline

    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not an npz file")
    with pytest.raises(ValueError):
        pipeline.run({"data": {"source": "npz", "path": str(broken)}}, output=str(tmp_path / "out"), name="r", verbose=False)
    assert os.listdir(tmp_path / "out") == [], "no empty run folder and no resume state"
