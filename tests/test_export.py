"""Export to TFLite, measured on the file through the LiteRT interpreter."""

import os
import types

import numpy as np
import pytest
import tensorflow as tf

from kerasdistill import export, transfer
from kerasdistill.backend import keras
from kerasdistill.export.bridge import max_output_difference
from kerasdistill.export.tflite import calibration_samples

from conftest import cli_in_process


@pytest.fixture(scope="module")
def student(trained_student):
    return trained_student


@pytest.fixture(scope="module")
def exported(student, digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tflite")
    return {
        q: export.to_tflite(
            student, folder / f"student_{q}.tflite", quantization=q, representative_data=digits.train.x
        )
        for q in export.QUANTIZATIONS
    }


def keras_accuracy(model, x, y):
    return float(np.mean(np.argmax(model(x, training=False), -1) == y))


def test_float32_file_matches_the_keras_model(exported, student, digits):
    report = export.evaluate_tflite(exported["float32"].path, digits.test, keras_model=student)
    assert report["max_abs_diff"] <= 1e-4
    assert report["agreement"] == 1.0
    assert report["accuracy"] == pytest.approx(keras_accuracy(student, *digits.test))


def test_quantized_files_are_small_and_keep_accuracy(exported, student, digits):
    sizes = {q: result.size_bytes for q, result in exported.items()}
    assert all(os.path.getsize(result.path) == result.size_bytes for result in exported.values())
    assert sizes["int8"] <= 0.30 * sizes["float32"], sizes
    assert sizes["float16"] <= 0.55 * sizes["float32"], sizes
    assert sizes["dynamic"] <= 0.35 * sizes["float32"], sizes
    float_accuracy = keras_accuracy(student, *digits.test)
    int8 = export.evaluate_tflite(exported["int8"].path, digits.test, keras_model=student)
    assert int8["accuracy"] >= float_accuracy - 0.01
    assert int8["agreement"] >= 0.98
    assert int8["latency_ms"] > 0
    # Weight-only int4 (AI Edge Quantizer): smaller than int8, float input and output, the accuracy kept.
    assert sizes["int4"] <= 0.75 * sizes["int8"], sizes
    int4 = export.evaluate_tflite(exported["int4"].path, digits.test, keras_model=student)
    assert int4["accuracy"] >= float_accuracy - 0.02 and int4["agreement"] >= 0.97
    assert exported["int4"].inputs[0].dtype == "float32"


def test_int4_files_are_plain_files_and_say_so_up_front(student, digits, tmp_path):
    with pytest.raises(ValueError, match="int4.*plain files"):
        export.to_tflite(student, tmp_path / "app.tflite", quantization="int4", target="classifier", class_names=[str(i) for i in range(10)])
    from kerasdistill import config

    with pytest.raises(ValueError, match="int4 .* classifier"):
        config.validate({"export": {"quantizations": ["int4"]}})
    assert config.validate({"export": {"quantizations": ["int4"], "targets": ["plain"]}})["export"]["quantizations"] == ["int4"]
    assert not list(tmp_path.iterdir())


def test_int8_file_takes_and_gives_int8_with_its_own_scales(exported):
    result = exported["int8"]
    (image,), (logits,) = result.inputs, result.outputs
    assert (image.dtype, logits.dtype) == ("int8", "int8")
    assert image.shape == (-1, 28, 28, 1)
    assert image.scale == pytest.approx(1.0)  # raw pixels 0..255 map onto int8 one to one
    assert image.zero_point == -128
    assert logits.scale > 0
    for q in ("float32", "float16", "dynamic"):
        assert exported[q].inputs[0].dtype == "float32" and exported[q].inputs[0].scale is None


def test_compare_gives_one_row_per_model(exported, student, digits):
    paths = [exported[q].path for q in ("float32", "int8")]
    result = export.compare(student, paths, data_from_dataset(digits), latency_runs=5)
    assert [row["model"] for row in result["rows"]] == ["keras (student)", "student_float32.tflite", "student_int8.tflite"]
    assert "latency (ms/image)" in result["table"]
    assert result["rows"][1]["agreement"] == 1.0


def data_from_dataset(digits):
    return tf.data.Dataset.from_tensor_slices(digits.test).batch(100)


def test_representative_data_as_a_dataset_and_bounded(student, digits, tmp_path):
    dataset = tf.data.Dataset.from_tensor_slices(digits.train).batch(32)
    samples = calibration_samples(dataset, (28, 28, 1), "float32", limit=50)
    assert len(samples) == 50 and samples[0].shape == (1, 28, 28, 1)
    result = export.to_tflite(student, tmp_path / "s.tflite", "int8", representative_data=dataset, calibration_steps=50)
    assert result.inputs[0].dtype == "int8"


def test_int8_without_calibration_data_says_what_to_do(student, tmp_path):
    with pytest.raises(ValueError, match="needs representative_data.*'dynamic' or 'float16'"):
        export.to_tflite(student, tmp_path / "s.tflite", "int8")
    assert not (tmp_path / "s.tflite").exists()


def test_calibration_data_of_the_wrong_shape_or_type_is_refused(student, digits, tmp_path):
    with pytest.raises(ValueError, match=r"samples of shape \(32, 32, 3\), but the model takes \(28, 28, 1\)"):
        export.to_tflite(student, tmp_path / "s.tflite", "int8", representative_data=np.zeros((4, 32, 32, 3)))
    with pytest.raises(ValueError, match="must be numeric"):
        export.to_tflite(student, tmp_path / "s.tflite", "int8", representative_data=np.full((2, 28, 28, 1), "a"))
    with pytest.raises(TypeError, match="numpy array, a stream, an \\(x, y\\) tuple or a tf.data.Dataset"):
        export.to_tflite(student, tmp_path / "s.tflite", "int8", representative_data=[1, 2])
    with pytest.raises(ValueError, match="quantization must be one of"):
        export.to_tflite(student, tmp_path / "s.tflite", "int2")


def test_a_failed_conversion_leaves_the_existing_file_and_names_the_op(student, tmp_path, monkeypatch):
    target = tmp_path / "student.tflite"
    export.to_tflite(student, target)
    before = target.read_bytes()

    class FailingConverter:
        optimizations = []
        target_spec = tf.lite.TFLiteConverter.from_keras_model(student).target_spec

        def convert(self):
            raise RuntimeError("'tfl.sin' op is neither a custom op nor a flex op")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_keras_model", lambda model: FailingConverter())
    with pytest.raises(ValueError, match=r"conversion \(int8\) failed. Ops involved: tfl.sin.*'dynamic'"):
        export.to_tflite(student, target, "int8", representative_data=np.zeros((2, 28, 28, 1)))
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ["student.tflite"]


def test_overwrite_false_refuses_an_existing_file(student, exported):
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export.to_tflite(student, exported["float32"].path, overwrite=False)


def test_corrupt_or_missing_tflite_is_refused_clearly(exported, digits, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(open(exported["int8"].path, "rb").read()[:200])
    with pytest.raises(ValueError, match="not a valid .tflite model.*export it again"):
        export.evaluate_tflite(broken, digits.test)
    with pytest.raises(FileNotFoundError, match="No .tflite file"):
        export.TFLiteModel(tmp_path / "none.tflite")


def test_to_tf_keras_keeps_the_function(student, digits):
    import tf_keras

    legacy = export.to_tf_keras(student)
    assert isinstance(legacy, tf_keras.Model)
    assert max_output_difference(student, legacy, digits.test.x[:64]) < 1e-5


def test_to_tf_keras_names_layers_it_cannot_carry_over():
    backbone = transfer.load_backbone("mobilenet_v2", (32, 32, 3), weights=None, alpha=0.35)
    with pytest.raises(ValueError, match=r"'image_preprocessing(_\d+)?' \(ImagePreprocessing\)"):
        export.to_tf_keras(backbone)

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed model"):
        export.to_tf_keras(Subclassed())


def test_distillation_aware_qat_int8_keeps_ptq_accuracy(student, exported, trained_teacher, digits, tmp_path):
    qat = export.quantize_aware(student, digits.train, teacher=trained_teacher)
    result = export.to_tflite(qat, tmp_path / "qat.tflite", "int8", representative_data=digits.train.x)
    qat_accuracy = export.evaluate_tflite(result.path, digits.test)["accuracy"]
    ptq_accuracy = export.evaluate_tflite(exported["int8"].path, digits.test)["accuracy"]
    assert result.inputs[0].dtype == "int8"
    # Both sit within a few test images of the float model; measured figures
    # over seeds are in benchmarks/quantization.py.
    assert qat_accuracy >= ptq_accuracy - 0.01, (qat_accuracy, ptq_accuracy)


def test_qat_learns_from_the_teacher_not_only_from_the_labels(student, trained_teacher, digits):
    # A teacher whose classes are rolled by one: with alpha=0 the QAT student
    # must follow it (class k answered as k + 1), which the labels never say.
    roll = keras.layers.Dense(10, use_bias=False, trainable=False, name="roll")
    rolled = keras.Model(trained_teacher.inputs, roll(trained_teacher.outputs[0]))
    roll.set_weights([np.roll(np.eye(10, dtype=np.float32), 1, axis=1)])
    qat = export.quantize_aware(student, digits.train, teacher=rolled, alpha=0.0, epochs=2)
    predicted = np.argmax(np.asarray(qat(digits.test.x, training=False)), -1)
    assert np.mean(predicted == (digits.test.y + 1) % 10) > 0.6
    assert np.mean(predicted == digits.test.y) < 0.2


def test_pruning_reaches_the_target_sparsity_and_compresses(student, exported, digits, tmp_path):
    pruned = export.prune(student, digits.train, target_sparsity=0.6, epochs=2)
    assert pruned.sparsity == pytest.approx(0.6, abs=0.02)
    result = export.to_tflite(pruned.model, tmp_path / "pruned.tflite")
    assert export.gzip_size(result.path) < 0.75 * export.gzip_size(exported["float32"].path)
    assert export.evaluate_tflite(result.path, digits.test)["accuracy"] > 0.9
    with pytest.raises(ValueError, match=r"target_sparsity must be in \(0, 1\)"):
        export.prune(student, digits.train, target_sparsity=1.0)
    assert "TF_USE_LEGACY_KERAS" not in os.environ, "importing tfmot must not switch later processes to tf_keras"


def run(capsys, *args):
    """`kerasdistill ARGS` in this process, its results named as a subprocess' are."""
    status, out, err = cli_in_process(capsys, *args)
    return types.SimpleNamespace(returncode=status, stdout=out, stderr=err)


def test_cli_export_then_evaluate(student, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    student.save(tmp_path / "student.keras")
    result = run(capsys, "export", "student.keras", "--calibration-data", "embedded")
    assert result.returncode == 0, result.stderr.split("kerasdistill export: error:")[-1][:700]
    path = tmp_path / "export" / "student_int8.tflite"
    assert path.stat().st_size > 1000 and "int8" in result.stdout and "zero_point=-128" in result.stdout

    again = run(capsys, "export", "student.keras", "--calibration-data", "embedded")
    assert again.returncode == 2 and "--overwrite" in again.stderr

    no_data = run(capsys, "export", "student.keras", "--output", "x.tflite")
    assert no_data.returncode == 2 and "needs calibration images: --calibration-data" in no_data.stderr

    report = run(capsys, "evaluate", str(path), "--keras-model", "student.keras")
    assert report.returncode == 0, report.stderr[-3000:]
    assert "accuracy 0.9" in report.stdout and "agreement with the Keras model" in report.stdout

    (tmp_path / "bad.tflite").write_bytes(b"not a model")
    bad = run(capsys, "evaluate", "bad.tflite")
    assert bad.returncode == 2 and "not a valid .tflite model" in bad.stderr
