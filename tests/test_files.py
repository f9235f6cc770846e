"""Artifacts are written whole or not at all."""

import os

import numpy as np
import pytest

from kerasdistill import files, models
from kerasdistill.backend import keras


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "report.json"
    files.write_json(target, {"version": 1})
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as temporary:
            with open(temporary, "w") as handle:
                handle.write('{"version": 2, "trunc')
            raise RuntimeError("killed mid-write")
    assert target.read_text().strip().endswith("}")
    assert '"version": 1' in target.read_text()
    assert os.listdir(tmp_path) == ["report.json"]


def test_overwrite_false_refuses_an_existing_file(tmp_path):
    target = tmp_path / "student.tflite"
    files.write_bytes(target, b"first")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        files.write_bytes(target, b"second", overwrite=False)
    assert target.read_bytes() == b"first"


def test_save_model_without_optimizer_is_smaller_and_loads(tmp_path):
    model = models.build("convnet_student", (28, 28, 1), 10)
    model.compile(optimizer="adam", loss="mse")
    images = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 1)).astype("float32")
    model.fit(images, np.zeros((4, 10)), verbose=0)
    full = files.save_model(model, tmp_path / "full.keras")
    bare = files.save_model(model, tmp_path / "bare.keras", include_optimizer=False)
    assert os.path.getsize(bare) < os.path.getsize(full)
    restored = keras.models.load_model(bare)
    assert restored.count_params() == model.count_params()
    np.testing.assert_allclose(restored(images), model(images), atol=1e-6)


def test_save_model_needs_a_keras_extension(tmp_path):
    with pytest.raises(ValueError, match=".keras"):
        files.save_model(models.mlp((4,), 2), tmp_path / "model.h5")
