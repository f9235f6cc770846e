"""App-ready classifier files: RGB in, probabilities out, TFLite metadata and labels,
loaded by MediaPipe Tasks' ImageClassifier as a phone app would."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import yaml

from kerasdistill import cli, config, data, export, sources
from kerasdistill.backend import keras
from kerasdistill.export.metadata import LABELS_FILE

from conftest import cli_in_process

DIGIT_NAMES = tuple("zero one two three four five six seven eight nine".split())
MEDIAPIPE_MISSING = (
    "MediaPipe Tasks is not installed here; the README's test command installs it "
    "(pip install --no-deps mediapipe==1.2.3 opencv-python-headless)"
)


@pytest.fixture(scope="module")
def app_files(trained_student, digits, tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    return {
        q: export.to_tflite(
            trained_student,
            folder / f"digits_{q}_classifier.tflite",
            quantization=q,
            representative_data=digits.train.x,
            target="classifier",
            class_names=DIGIT_NAMES,
            model_info={"name": "digits", "version": "7", "author": "tests", "license": "MIT"},
        )
        for q in ("float32", "int8")
    }


def rgb(images):
    """Grayscale images as the uint8 RGB frames a camera gives (R = G = B)."""
    images = np.asarray(images)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def keras_probabilities(model, images):
    return keras.ops.convert_to_numpy(export.classifier_model(model)(rgb(images).astype("float32"), training=False))


def mediapipe_scores(path, images):
    """Every image through MediaPipe Tasks' ImageClassifier: (top-1 names, scores by class index)."""
    mp = pytest.importorskip("mediapipe", reason=MEDIAPIPE_MISSING)
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=str(path)), max_results=-1)
    names, scores = [], []
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for image in rgb(images).astype(np.uint8):
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            categories = result.classifications[0].categories
            row = np.zeros(len(categories))
            for category in categories:
                row[category.index] = category.score
            names.append(categories[0].category_name)
            scores.append(row)
    return names, np.array(scores)


def assert_mediapipe_agrees(path, model, images, class_names, min_agreement, max_score_diff=None):
    names, scores = mediapipe_scores(path, images)
    reference = keras_probabilities(model, images)
    assert set(names) <= set(class_names)
    expected = [class_names[index] for index in reference.argmax(-1)]
    agreement = np.mean([a == b for a, b in zip(names, expected)])
    assert agreement >= min_agreement, f"{os.path.basename(path)}: top-1 agreement {agreement:.4f}"
    if max_score_diff is not None:
        assert np.abs(scores - reference).max() <= max_score_diff
    return agreement


def test_classifier_files_take_rgb_pixels_and_give_probabilities(app_files, trained_student, digits):
    (image,), (scores,) = app_files["float32"].inputs, app_files["float32"].outputs
    assert (image.dtype, image.shape[1:], scores.dtype) == ("float32", (28, 28, 3), "float32")
    (image,), (scores,) = app_files["int8"].inputs, app_files["int8"].outputs
    # uint8 pixels as they are (scale 1, zero point 0) and uint8 probabilities (1/256 steps).
    assert (image.dtype, image.scale, image.zero_point) == ("uint8", 1.0, 0)
    assert (scores.dtype, scores.scale, scores.zero_point) == ("uint8", 1 / 256, 0)
    for quantization, result in app_files.items():
        probabilities = export.TFLiteModel(result.path).predict(digits.test.x[:200])
        assert np.allclose(probabilities.sum(-1), 1.0, atol=0.03), quantization
        assert result.target == "classifier" and result.class_names == DIGIT_NAMES
    float_report = export.evaluate_tflite(app_files["float32"].path, digits.test, keras_model=trained_student)
    int8_report = export.evaluate_tflite(app_files["int8"].path, digits.test, keras_model=trained_student)
    assert float_report["agreement"] == 1.0 and float_report["max_abs_diff"] < 1e-4
    assert float_report["class_names"] == list(DIGIT_NAMES)
    assert int8_report["agreement"] >= 0.98
    assert int8_report["accuracy"] >= float_report["accuracy"] - 0.01


def test_metadata_round_trips(app_files):
    for result in app_files.values():
        metadata = export.read_metadata(result.path)
        assert metadata.labels == DIGIT_NAMES
        assert (metadata.name, metadata.version, metadata.author, metadata.license) == ("digits", "7", "tests", "MIT")
        assert (metadata.mean, metadata.std, metadata.color_space, metadata.image_size) == ((0.0,), (1.0,), "RGB", (28, 28))
        assert "10 classes" in metadata.description
        with open(result.path, "rb") as handle:
            assert export.read_metadata(handle.read()) == metadata


def test_metadata_follows_the_published_schema(app_files):
    """Read with MediaPipe's own code generated from metadata_schema.fbs, and LiteRT's model schema."""
    pytest.importorskip("mediapipe", reason=MEDIAPIPE_MISSING)
    from ai_edge_litert.tools import flatbuffer_utils
    from mediapipe.tasks.metadata import metadata_schema_py_generated as schema

    with open(app_files["int8"].path, "rb") as handle:
        content = handle.read()
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    (entry,) = [entry for entry in model.metadata if entry.name == b"TFLITE_METADATA"]
    buffer = bytes(model.buffers[entry.buffer].data)
    assert schema.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
    metadata = schema.ModelMetadataT.InitFromObj(schema.ModelMetadata.GetRootAsModelMetadata(buffer, 0))
    (subgraph,) = metadata.subgraphMetadata
    (image,), (scores,) = subgraph.inputTensorMetadata, subgraph.outputTensorMetadata
    assert image.content.contentPropertiesType == schema.ContentProperties.ImageProperties
    assert image.content.contentProperties.colorSpace == schema.ColorSpaceType.RGB
    (unit,) = image.processUnits
    assert unit.optionsType == schema.ProcessUnitOptions.NormalizationOptions
    assert (list(unit.options.mean), list(unit.options.std)) == ([0.0], [1.0])
    (labels,) = scores.associatedFiles
    assert (labels.name, labels.type) == (LABELS_FILE.encode(), schema.AssociatedFileType.TENSOR_AXIS_LABELS)
    assert metadata.minParserVersion == b"1.0.0"


def test_read_metadata_refuses_plain_foreign_and_damaged_files(app_files, trained_student, tmp_path):
    plain = export.to_tflite(trained_student, tmp_path / "plain.tflite").path
    with pytest.raises(ValueError, match="holds no TFLite metadata.*target='classifier'"):
        export.read_metadata(plain)
    foreign = tmp_path / "photo.png"
    keras.utils.save_img(foreign, np.zeros((8, 8, 3)), scale=False)
    with pytest.raises(ValueError, match="is not a .tflite model"):
        export.read_metadata(foreign)
    with open(app_files["float32"].path, "rb") as handle:
        content = handle.read()
    with pytest.raises(ValueError, match="damaged"):
        export.read_metadata(content[: len(content) // 3])
    # The model without its appended labels archive.
    model_end = content.index(b"PK\x03\x04")
    with pytest.raises(ValueError, match=f"labels file {LABELS_FILE} .* missing or damaged"):
        export.read_metadata(content[:model_end])
    identifier = content.index(b"M001")
    with pytest.raises(ValueError, match="metadata .* is damaged"):
        export.read_metadata(content[:identifier] + b"XXXX" + content[identifier + 4 :])
    with pytest.raises(FileNotFoundError, match="No .tflite file"):
        export.read_metadata(tmp_path / "missing.tflite")


def test_a_normalization_the_data_contradicts_is_refused_for_float_files_too(trained_student, digits, tmp_path):
    scaled = digits.train.x[:50] / 255.0
    with pytest.raises(ValueError, match=r"spans \[0, 1\].*\(0, 255\) for \[0, 1\]"):
        export.to_tflite(trained_student, tmp_path / "f.tflite", representative_data=scaled, target="classifier",
                         class_names=DIGIT_NAMES)
    assert not (tmp_path / "f.tflite").exists()
    with pytest.raises(ValueError, match=r"input_normalization must be \(mean, std\)"):
        export.to_tflite(trained_student, tmp_path / "f.tflite", target="classifier", class_names=DIGIT_NAMES,
                         input_normalization=255)
    with pytest.raises(ValueError, match="pass target='classifier' with them"):
        export.to_tflite(trained_student, tmp_path / "f.tflite", class_names=DIGIT_NAMES)


def test_classifier_model_adds_luma_and_softmax_only_where_needed(trained_student, digits):
    frames = np.random.default_rng(0).uniform(0, 255, (4, 28, 28, 3)).astype("float32")
    luma = frames @ np.array([0.299, 0.587, 0.114], np.float32)
    logits = keras.ops.convert_to_numpy(trained_student(luma[..., None], training=False))
    expected = keras.ops.convert_to_numpy(keras.ops.softmax(logits))
    assert np.allclose(keras_probabilities(trained_student, frames), expected, atol=1e-5)
    inputs = keras.Input((28, 28, 3))
    ends_in_softmax = keras.Model(inputs, keras.layers.Dense(5, activation="softmax")(keras.layers.Flatten()(inputs)))
    assert np.allclose(keras_probabilities(ends_in_softmax, frames), ends_in_softmax(frames), atol=1e-6)
    vectors = keras.Sequential([keras.Input((16,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="needs an image model .* target='plain'"):
        export.classifier_model(vectors)


def test_mediapipe_classifies_the_digits_as_rgb_with_the_names_of_the_metadata(app_files, trained_student, digits):
    images = digits.test.x
    assert_mediapipe_agrees(app_files["float32"].path, trained_student, images, DIGIT_NAMES, 0.99, max_score_diff=0.02)
    assert_mediapipe_agrees(app_files["int8"].path, trained_student, images, DIGIT_NAMES, 0.98)


@pytest.fixture(scope="module")
def color_run(digits, tmp_path_factory):
    """`kerasdistill run` on a color image folder: real digits drawn in random bright colors on random dark ones."""
    root = tmp_path_factory.mktemp("color")
    rng = np.random.default_rng(0)
    names = ("zero", "one", "two", "three")
    for label, name in enumerate(names):
        os.makedirs(root / "images" / name)
        for index, image in enumerate(digits.train.x[digits.train.y == label][:200]):
            ink, paper = rng.uniform(120, 255, 3), rng.uniform(0, 80, 3)
            alpha = image / 255.0
            colored = np.round(alpha * ink + (1 - alpha) * paper)
            keras.utils.save_img(root / "images" / name / f"{index:03d}.png", colored, scale=False)
    settings = {
        "data": {"source": "image_folder", "path": str(root / "images"), "validation_size": 0.1, "test_fraction": 0.25},
        "training": {"epochs": 5},
        "distillation": {"search_budget": 0},  # the settings search is tested in test_selection.py
        "export": {"quantizations": ["float32", "int8"], "targets": ["classifier"]},
        "report": {"plots": False},
    }
    with open(root / "pipeline.yaml", "w") as handle:
        yaml.safe_dump(settings, handle)
    # In-process: what is asserted is the run's files, not the command's process.
    assert cli.main(["run", "--config", str(root / "pipeline.yaml"), "--output", str(root), "--name", "run", "--quiet"]) == 0
    folder = root / "run"
    resolved = config.load(str(folder / "config.yaml"))
    return folder, sources.load_data(resolved["data"], resolved["training"]["seed"]), names


def test_mediapipe_classifies_a_color_image_folder_run(color_run):
    folder, splits, names = color_run
    assert splits.class_names == tuple(sorted(names))
    # The files are of the student the run ships (the distilled one, or its scratch twin when that scored higher).
    report = json.loads((folder / "report.json").read_text())
    shipped = next(row for row in report["models"] if row["model"] == report["shipped"]["label"])
    student = keras.models.load_model(folder / shipped["path"])
    assert not (folder / "student_float32.tflite").exists()  # targets: classifier only
    for quantization, minimum, diff in (("float32", 0.99, 0.02), ("int8", 0.98, None)):
        path = folder / f"student_{quantization}_classifier.tflite"
        assert export.read_metadata(path).labels == splits.class_names
        assert_mediapipe_agrees(path, student, splits.test.x, splits.class_names, minimum, max_score_diff=diff)


def test_cli_export_classifier_names_classes_from_the_run_or_the_flag(color_run, tmp_path, capsys):
    folder, splits, _ = color_run
    base = ["export", folder / "student.keras", "--target", "classifier"]
    status, out, err = cli_in_process(capsys, *base, "--output", tmp_path / "a.tflite")
    assert status == 0, err[-2000:]
    assert "uint8 (-1, 28, 28, 3) scale=1 zero_point=0" in out
    assert export.read_metadata(tmp_path / "a.tflite").labels == splits.class_names
    status, out, err = cli_in_process(
        capsys, "evaluate", tmp_path / "a.tflite", "--data", folder, "--keras-model", folder / "student.keras"
    )
    assert status == 0, err[-2000:]
    assert f"labels {', '.join(splits.class_names)}" in out and "agreement with the Keras model" in out
    labels = tmp_path / "labels.txt"
    labels.write_text("w\nx\ny\nz\n")
    status, _, err = cli_in_process(
        capsys, *base, "--quantization", "float32", "--class-names", labels, "--output", tmp_path / "b.tflite"
    )
    assert status == 0, err[-2000:]
    assert export.read_metadata(tmp_path / "b.tflite").labels == ("w", "x", "y", "z")
    status, _, err = cli_in_process(capsys, *base[:-2], "--class-names", "a,b", "--output", tmp_path / "c.tflite")
    assert status == 2 and "add --target classifier" in err


def test_class_names_come_from_the_data_or_the_config(digits, tmp_path):
    assert digits.class_names == tuple("0123456789")
    path = tmp_path / "named.npz"
    np.savez(path, x_train=digits.train.x[:200], y_train=digits.train.y[:200], x_test=digits.test.x[:50],
             y_test=digits.test.y[:50], class_names=np.array(DIGIT_NAMES))
    assert data.load_npz_splits(str(path), validation_size=20).class_names == DIGIT_NAMES
    settings = config.validate({"data": {"class_names": list(DIGIT_NAMES)}})
    assert sources.load_data(settings["data"], 0).class_names == DIGIT_NAMES
    with pytest.raises(ValueError, match="has 3 names but the data has 10 classes"):
        sources.load_data(config.validate({"data": {"class_names": ["a", "b", "c"]}})["data"], 0)
    with pytest.raises(ValueError, match="must not repeat a name"):
        config.validate({"data": {"class_names": ["a", "a"]}})


def test_the_export_readme_python_snippet_runs_on_a_grayscale_file(app_files, digits, tmp_path):
    pytest.importorskip("mediapipe", reason=MEDIAPIPE_MISSING)
    from PIL import Image

    readme = (pathlib.Path(__file__).resolve().parent.parent / "export" / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
    # A grayscale PNG, as a phone gallery or a scanner gives it (MediaPipe refuses gray images).
    Image.fromarray(digits.test.x[0, :, :, 0].astype(np.uint8), mode="L").save(tmp_path / "photo.png")
    (tmp_path / "student_int8_classifier.tflite").write_bytes(pathlib.Path(app_files["int8"].path).read_bytes())
    result = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[0].split()[0] in DIGIT_NAMES, result.stdout
