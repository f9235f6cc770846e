"""The bad-input matrix: each mistake a user can make, its exception, and a message
that names the problem and the fix. tests/README.md lists the same cases."""

import os
import re
import types

import numpy as np
import pytest

import kerasdistill as kd
from kerasdistill import config, data, distribute, files, models, pipeline, runs, transfer
from kerasdistill.backend import keras
from kerasdistill.export import evaluate_tflite, optimize, to_tflite

X = np.zeros((8, 28, 28, 1), np.float32)
Y = np.arange(8, dtype=np.int32) % 10


@pytest.fixture(scope="module")
def m(trained_teacher, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    student = models.build("convnet_student", (28, 28, 1), 10)
    compiled = kd.Distiller(trained_teacher, student)
    compiled.compile(optimizer="adam")
    return types.SimpleNamespace(teacher=trained_teacher, student=student, compiled=compiled, folder=folder)


def write(folder, name, content):
    path = os.path.join(folder, name)
    with open(path, "wb" if isinstance(content, bytes) else "w") as handle:
        handle.write(content)
    return path


def subclassed_student():
    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(10)

        def call(self, x):
            return self.dense(keras.ops.reshape(x, (-1, 784)))

    model = Tiny()
    model(X[:1])
    return model


def zip_without_config(folder):
    import zipfile

    path = os.path.join(folder, "weights_only.keras")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", "{}")
    return path


def m_tflite(m):
    path = os.path.join(m.folder, "eval.tflite")
    if not os.path.exists(path):
        to_tflite(m.student, path)
    return path


def frozen(model):
    model.trainable = False
    return model


def two_inputs():
    a, b = keras.Input((28, 28, 1)), keras.Input((28, 28, 1))
    return keras.Model([a, b], keras.layers.Dense(10)(keras.layers.Flatten()(keras.layers.Add()([a, b]))))


def sigmoid_student():
    inputs = keras.Input((28, 28, 1))
    return keras.Model(inputs, keras.layers.Dense(10, activation="sigmoid")(keras.layers.Flatten()(inputs)))


def rms_model():
    inputs = keras.Input((8,))
    return keras.Model(inputs, keras.layers.Dense(4)(keras.layers.RMSNormalization()(inputs)))


# (id, what the user does, exception type, the problem, the fix)
CASES = [
    ("teacher_not_a_model", lambda m: kd.Distiller("teacher.keras", m.student), TypeError, "must be a keras.Model", "load_model"),
    ("student_not_built", lambda m: kd.Distiller(m.teacher, keras.Sequential([keras.layers.Dense(10)])), ValueError, "is not built", "keras.Input"),
    ("teacher_is_student", lambda m: kd.Distiller(m.student, m.student), ValueError, "same model object", "clone_model"),
    ("input_shape_mismatch", lambda m: kd.Distiller(m.teacher, models.build("convnet_student", (32, 32, 3), 10)), ValueError, r"inputs of shape \(28, 28, 1\)", "Resizing"),
    ("class_count_mismatch", lambda m: kd.Distiller(m.teacher, models.build("convnet_student", (28, 28, 1), 7)), ValueError, "outputs 10 class scores but the student outputs 7", r"Dense\(10\)"),
    ("probabilities_declared_logits", lambda m: kd.Distiller(keras.Sequential([m.teacher, keras.layers.Softmax()]), m.student, teacher_outputs="logits"), ValueError, "sum to 1", "teacher_outputs='probabilities'"),
    ("alpha_out_of_range", lambda m: kd.Distiller(m.teacher, m.student).compile(optimizer="adam", alpha=1.5), ValueError, r"must be in \[0, 1\]", "0.1"),
    ("temperature_not_positive", lambda m: kd.Distiller(m.teacher, m.student).compile(optimizer="adam", temperature=0), ValueError, r"temperature must be a number in \(0, 100\]", "typical values"),
    ("compile_without_optimizer", lambda m: kd.Distiller(m.teacher, m.student).compile(), ValueError, "needs an optimizer", "Adam"),
    ("compile_with_loss", lambda m: kd.Distiller(m.teacher, m.student).compile(optimizer="adam", loss="mse"), ValueError, "instead of loss=", "distillation_loss_fn="),
    ("fit_before_compile", lambda m: kd.Distiller(m.teacher, m.student).fit(X, Y), ValueError, "before fit", "distiller.compile"),
    ("unknown_loss", lambda m: kd.losses.get("fitnet"), ValueError, "Unknown distillation loss 'fitnet'", "Known losses:.*hint"),
    ("hint_layer_not_found", lambda m: kd.Distiller(m.teacher, m.student).compile(optimizer="adam", distillation_loss_fn=kd.losses.Hint(pairs=[("conv1", "conv7")])), ValueError, "has no layer named 'conv7'", "Its layers: image"),
    ("hint_on_subclassed_student", lambda m: kd.Distiller(m.teacher, subclassed_student()).compile(optimizer="adam", distillation_loss_fn=kd.losses.Hint(pairs=[("conv1", "dense")])), ValueError, "subclassed model", "functional or Sequential"),
    ("feature_loss_with_two_teachers", lambda m: kd.Distiller([m.teacher, m.teacher], m.student).compile(optimizer="adam", distillation_loss_fn=kd.losses.Hint(pairs=[("conv1", "conv1")])), ValueError, "has 2 teachers", "Use one teacher"),
    ("teacher_weights_wrong_length", lambda m: kd.Distiller([m.teacher, m.teacher], m.student, teacher_weights=[1]), ValueError, "teacher_weights needs one number per teacher", r"\(2\)"),
    ("input_dtype_not_numeric", lambda m: m.compiled.fit(np.full((8, 28, 28, 1), "a"), Y, verbose=0), TypeError, "dtype <U1", "astype"),
    ("input_shape_wrong_in_fit", lambda m: m.compiled.fit(np.zeros((8, 28, 28), np.float32), Y, verbose=0), ValueError, r"shape \(28, 28\) per sample but the models take \(28, 28, 1\)", r"x\[\.\.\., None\]"),
    ("labels_out_of_range", lambda m: m.compiled.fit(X, Y + 5, verbose=0), ValueError, r"class indices in \[0, 10\).*range over \[5, 12\]", "Re-encode"),
    ("one_hot_of_the_wrong_width", lambda m: m.compiled.fit(X, np.eye(5, dtype=np.float32)[Y % 5], verbose=0), ValueError, r"neither a class index.*one-hot row", "to_categorical"),
    ("empty_dataset", lambda m: m.compiled.fit(data.to_dataset(X[:0], Y[:0]), verbose=0), ValueError, "dataset is empty", "pipeline"),
    ("empty_arrays", lambda m: m.compiled.fit(X[:0], Y[:0], verbose=0), ValueError, "inputs are empty", "at least one batch"),
    ("unknown_backbone", lambda m: transfer.load_backbone("resnet9", (96, 96, 3)), ValueError, "Unknown backbone 'resnet9'", "Known backbones: mobilenet_v2"),
    ("missing_weights_file", lambda m: transfer.load_backbone("mobilenet_v2", (96, 96, 3), alpha=0.35, download=False), FileNotFoundError, "not found", "Copy the file"),
    ("corrupt_weights_file", lambda m: transfer.load_backbone("mobilenet_v2", (96, 96, 3), weights=write(m.folder, "bad.weights.h5", b"junk")), ValueError, "does not fit backbone", "no-top weights"),
    ("qat_unsupported_layer", lambda m: optimize.quantize_aware(rms_model(), (np.zeros((8, 8), np.float32), Y), epochs=1), ValueError, "cannot be carried over to tf_keras.*rms_normalization", "post-training quantization"),
    ("qat_subclassed_model", lambda m: optimize.quantize_aware(subclassed_student(), (X, Y), epochs=1), ValueError, "subclassed model", "functional API"),
    ("int8_without_calibration", lambda m: to_tflite(m.student, os.path.join(m.folder, "a.tflite"), quantization="int8"), ValueError, "needs representative_data", "'dynamic'"),
    ("calibration_wrong_shape", lambda m: to_tflite(m.student, os.path.join(m.folder, "b.tflite"), quantization="int8", representative_data=np.zeros((4, 32, 32, 3), np.float32)), ValueError, r"samples of shape \(32, 32, 3\), but the model takes \(28, 28, 1\)", "shaped like the model's input"),
    ("corrupt_tflite", lambda m: evaluate_tflite(write(m.folder, "c.tflite", b"garbage" * 9), (X, Y)), ValueError, "not a valid .tflite model", "export it again"),
    ("tflite_exists", lambda m: to_tflite(m.student, write(m.folder, "d.tflite", b"keep"), overwrite=False), FileExistsError, "already exists", "overwrite=True"),
    ("malformed_yaml", lambda m: config.load(write(m.folder, "bad.yaml", "training:\n  epochs: [1\n")), ValueError, "not valid YAML at line", "Fix the syntax"),
    ("config_unknown_key", lambda m: config.validate({"training": {"epoch": 3}}), ValueError, "Unknown key.*training.epoch", "allowed keys in 'training': epochs"),
    ("config_wrong_type", lambda m: config.validate({"training": {"epochs": "ten"}}), ValueError, "training.epochs must be a whole number", "'ten'"),
    ("config_unknown_method", lambda m: config.validate({"distillation": {"losses": ["fitnets"]}}), ValueError, "distillation.losses: Unknown distillation loss", "Known losses"),
    ("config_missing_file", lambda m: config.validate({"teacher": {"model": "nowhere/teacher.keras"}}), FileNotFoundError, "teacher.model names the file", "saved .keras model"),
    ("output_not_writable", lambda m: files.check_writable_folder("/proc/kerasdistill-out"), PermissionError, "Cannot create the output folder", "Choose another folder"),
    ("corrupt_keras_file", lambda m: files.load_model(write(m.folder, "e.keras", b"PK-not-a-zip")), ValueError, "not a .keras model file", r"model.save\('name.keras'\)"),
    ("unknown_strategy", lambda m: distribute.make_strategy("horovod"), ValueError, "Unknown strategy 'horovod'", "none, mirrored, multi_worker"),
    ("multi_worker_without_tf_config", lambda m: distribute.make_strategy("multi_worker"), ValueError, "TF_CONFIG", "mirrored"),
    ("multi_worker_run_without_name", lambda m: pipeline.run({"training": {"strategy": "multi_worker"}}, output=str(m.folder)), ValueError, "multi_worker run needs --name", "the same on every worker"),
    ("tune_with_multi_worker", lambda m: config.validate({"tune": {"enabled": True}, "training": {"strategy": "multi_worker"}}), ValueError, "runs in one process", "none or mirrored"),
    ("unknown_precision", lambda m: distribute.set_precision("float8"), ValueError, "Unknown precision policy 'float8'", "mixed_bfloat16"),
    ("cache_exists", lambda m: kd.cache_teacher_outputs(m.teacher, (X, Y), path=m.folder), FileExistsError, "cache already exists", "overwrite=True"),
    ("string_labels", lambda m: m.compiled.fit(X, np.array(["cat", "dog"] * 4), verbose=0), TypeError, "labels have dtype <U3", "np.unique"),
    ("non_trainable_student", lambda m: kd.Distiller(m.teacher, frozen(models.build("convnet_student", (28, 28, 1), 10))), ValueError, "has no trainable weights", "trainable = True"),
    ("teacher_with_two_inputs", lambda m: kd.Distiller(two_inputs(), m.student), ValueError, "takes 2 inputs", "Wrap it in a model with one input"),
    ("sigmoid_student", lambda m: kd.Distiller(m.teacher, sigmoid_student()), ValueError, "ends in a sigmoid", "Dense layer \\(logits\\) or a softmax"),
    ("export_whole_distiller", lambda m: to_tflite(m.compiled, os.path.join(m.folder, "d.tflite")), ValueError, "whole Distiller", "distiller.student"),
    ("tflite_path_is_a_folder", lambda m: to_tflite(m.student, str(m.folder)), IsADirectoryError, "is a folder", "path of the .tflite file"),
    ("keras_path_is_a_folder", lambda m: files.load_model(str(m.folder)), IsADirectoryError, "is a folder, not a model file", "saved .keras model inside it"),
    ("hidden_run_name", lambda m: runs.prepare_run_folder(str(m.folder), ".resume"), ValueError, "not starting with '.'", "Pick another --name"),
    ("seed_too_large", lambda m: config.validate({"training": {"seed": 2**32}}), ValueError, "training.seed must be", "<= 4294967295"),
    ("image_size_too_small", lambda m: config.validate({"data": {"image_size": [1, 1]}}), ValueError, "each at least 8", r"e.g. \[96, 96\]"),
    ("ragged_inputs", lambda m: m.compiled.fit([np.zeros((28, 28, 1)), np.zeros((20, 20, 1))], Y[:2], verbose=0), ValueError, "arrays of different shapes", "Resize or pad them to one shape"),
    ("keras_zip_without_config", lambda m: files.load_model(zip_without_config(m.folder)), ValueError, "not a loadable Keras model", "config.json"),
    ("evaluate_labels_beyond_classes", lambda m: evaluate_tflite(m_tflite(m), (X, Y + 10)), ValueError, r"labels range over \[10, 17\] but .* outputs 10", "0..9"),
    ("npz_path_is_a_folder", lambda m: data.load_arrays(str(m.folder)), IsADirectoryError, "is a folder", "path of an .npz file"),
    ("hint_layer_missing_in_a_run", lambda m: pipeline.run({"distillation": {"losses": [{"name": "hint", "config": {"pairs": [["relu2", "conv9"]]}}]}}, output=str(m.folder / "hint")), ValueError, "names student layer\\(s\\) conv9", "Its layers: .*relu1"),
    ("classifier_without_class_names", lambda m: to_tflite(m.student, os.path.join(m.folder, "c.tflite"), target="classifier"), ValueError, "needs class_names: 10 names", "folder names"),
    ("classifier_wrong_normalization", lambda m: to_tflite(m.student, os.path.join(m.folder, "c.tflite"), quantization="int8", representative_data=np.linspace(0, 1, 8 * 784).reshape(8, 28, 28, 1).astype("float32"), target="classifier", class_names=list("abcdefghij")), ValueError, r"calibration data spans \[0, 1\]", r"\(0, 255\) for \[0, 1\]"),
    ("npz_missing_arrays", lambda m: data.load_npz_splits(np.savez(os.path.join(m.folder, "f.npz"), x=X) or os.path.join(m.folder, "f.npz")), ValueError, "lacks arrays x_train", "must hold x_train, y_train, x_test, y_test"),
]


@pytest.mark.parametrize("case_id, action, error, problem, fix", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_the_problem_and_the_fix(m, monkeypatch, case_id, action, error, problem, fix):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(error) as raised:
        action(m)
    message = str(raised.value)
    assert re.search(problem, message), f"{case_id}: the problem is not named in: {message}"
    assert re.search(fix, message), f"{case_id}: the fix is not named in: {message}"


def test_the_matrix_has_30_cases_and_tests_readme_lists_each():
    assert len(CASES) >= 30
    with open(os.path.join(os.path.dirname(__file__), "README.md"), encoding="utf-8") as handle:
        readme = handle.read()
    missing = [case[0] for case in CASES if f"`{case[0]}`" not in readme]
    assert not missing, f"tests/README.md does not list {missing}"
