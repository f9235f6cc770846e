"""Labeled images streamed from an image folder: the splits are streams of files, read in batches by every
consumer of a run (training, validation, the report, the int8 calibration, the interpreter's accuracy pass,
`evaluate` and `export` on the run folder), never decoded into one array."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from kerasdistill import config as config_lib
from kerasdistill import data, runs, sources
from kerasdistill.backend import keras
from kerasdistill.streams import ArrayStream, DatasetStream, ImageStream


@pytest.fixture(scope="module")
def digit_folder(digits, tmp_path_factory):
    """240 real digits of classes 0-2 as PNG files, one folder per class."""
    folder = tmp_path_factory.mktemp("labeled")
    for label in range(3):
        (folder / f"digit_{label}").mkdir()
        for index, image in enumerate(digits.train.x[digits.train.y == label][:80]):
            keras.utils.save_img(folder / f"digit_{label}" / f"{index:03d}.png", image, scale=False)
    return folder


@pytest.mark.parametrize("layout, size", [("class folders", None), ("class folders", [20, 17]), ("split folders", None)])
def test_a_streamed_folder_holds_the_images_and_labels_of_the_in_memory_one_in_the_same_order(digit_folder, tmp_path, layout, size):
    folder = digit_folder
    if layout == "split folders":
        folder = tmp_path / "split"
        for split, take in (("train", slice(0, 60)), ("test", slice(60, 70)), ("val", slice(70, 80))):
            for label in range(3):
                target = folder / split / f"digit_{label}"
                target.mkdir(parents=True)
                for path in sorted((digit_folder / f"digit_{label}").iterdir())[take]:
                    shutil.copy(path, target / path.name)
    memory = data.load_image_folder(str(folder), image_size=size, validation_size=30, seed=3)
    streamed = data.load_image_folder(str(folder), image_size=size, validation_size=30, seed=3, stream=True)
    assert streamed.class_names == memory.class_names == ("digit_0", "digit_1", "digit_2")
    for name in ("train", "val", "test"):
        split, kept = getattr(streamed, name), getattr(memory, name)
        assert isinstance(split.x, ImageStream) and split.x.shape == kept.x.shape
        # The same images in the same order (so the same validation split), decoded alike.
        np.testing.assert_array_equal(split.y, kept.y)
        np.testing.assert_array_equal(split.x[:], kept.x)


def test_an_image_folder_splits_alike_whatever_global_seed_ran_before(digit_folder):
    """Keras' datasets shuffle by TensorFlow's global seed: a run (which sets it) and `evaluate`/`export` on its
    folder (which do not) split the training images differently, and the run's record refused them."""
    splits = []
    for global_seed in (1, 2):
        keras.utils.set_random_seed(global_seed)
        splits.append(data.load_image_folder(str(digit_folder), validation_size=30, seed=0))
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(splits[0], name).x, getattr(splits[1], name).x)
        np.testing.assert_array_equal(getattr(splits[0], name).y, getattr(splits[1], name).y)


def test_a_stream_reads_in_batches_and_slices_and_is_never_one_array(digit_folder):
    stream = data.load_image_folder(str(digit_folder), validation_size=30, seed=0, stream=True).train.x
    whole = np.concatenate(list(stream.batches(64)))
    assert whole.dtype == np.float32 and whole.shape == stream.shape
    np.testing.assert_array_equal(stream[10:20], whole[10:20])
    assert stream[5:5].shape == (0, 28, 28, 3)
    with pytest.raises(TypeError, match="read in batches .* never as one array"):
        np.asarray(stream)
    with pytest.raises(TypeError, match=r"consecutive images only .*stream.subset\(indices\)"):
        stream[[1, 2]]
    np.testing.assert_array_equal(stream.subset([3, 1])[:], whole[[3, 1]])


def test_a_labeled_file_gone_after_loading_is_named(digit_folder, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(digit_folder, folder)
    test = data.load_image_folder(str(folder), validation_size=30, seed=0, stream=True).test.x
    gone = test.files[7]
    os.remove(gone)
    with pytest.raises(FileNotFoundError, match=f"cannot be read: .*{os.path.basename(gone)}.*No such file.*put it back") as caught:
        list(test.batches(16))
    assert "function_node" not in str(caught.value), "TensorFlow's internals left out"


def test_a_dataset_stream_decodes_only_the_images_a_subset_or_slice_reads():
    import tensorflow as tf

    from kerasdistill.streams import DatasetStream as Stream

    decoded = []

    def decode(raw):
        def count(value):
            decoded.append(int(value))
            return np.full((4, 4, 1), value % 256, np.float32)

        return tf.ensure_shape(tf.numpy_function(count, [raw], tf.float32), (4, 4, 1))

    stream = Stream(tf.data.Dataset.range(1000), count=1000, decode=decode)
    subset = stream.subset(np.arange(0, 1000, 100))
    labels = tf.data.Dataset.from_tensor_slices((np.arange(10),))
    for read in (lambda: list(subset.batches(4)), lambda: stream[900:910], lambda: list(subset.paired(labels, shuffle=True, seed=1))):
        decoded.clear()
        read()
        assert len(decoded) == 10, "a tfds split's held-out images once decoded the whole split on every read"
    pairs = [(int(image[0, 0, 0]), int(label)) for image, label in subset.paired(labels, shuffle=True, seed=1)]
    assert sorted(pairs) == sorted(((100 * index) % 256, index) for index in range(10)), "each image beside its own label"


def test_auto_streams_a_folder_whose_float32_images_would_pass_the_limit(digit_folder, monkeypatch):
    arrays = data.load_image_folder(str(digit_folder), stream="auto")
    assert isinstance(arrays.train.x, np.ndarray), "240 small images stay in memory"
    # 240 images of 28x28 RGB in float32 are 2.2 MiB: under a 2 MiB limit they stream.
    monkeypatch.setattr(data, "STREAM_BYTES", 2 << 20)
    assert isinstance(data.load_image_folder(str(digit_folder), stream="auto").train.x, ImageStream)
    with pytest.raises(ValueError, match="stream must be True, False or 'auto'"):
        data.load_image_folder(str(digit_folder), stream="yes")


def test_stream_settings_that_cannot_work_are_refused_before_anything_runs(digit_folder, tmp_path):
    from kerasdistill import pipeline

    with pytest.raises(ValueError, match="data.stream must be auto, true or false; got 1"):
        config_lib.validate({"data": {"source": "image_folder", "path": str(digit_folder), "stream": 1}})
    with pytest.raises(ValueError, match="data.stream is true but data.source is embedded: the embedded digits"):
        config_lib.validate({"data": {"stream": True}})
    # Views cached in memory for labeled images that stream, without a transfer set to store them for.
    settings = {
        "data": {"source": "image_folder", "path": str(digit_folder), "stream": True},
        "distillation": {"augmentation": ["flip"], "teacher_views": 2},
    }
    with pytest.raises(ValueError, match=r"teacher_views .* labeled images stream from disk .*data.stream: false"):
        pipeline.run(settings, output=str(tmp_path / "out"), verbose=False)
    assert not list((tmp_path / "out").glob("*/teacher.keras"))


def test_an_undecodable_labeled_image_is_named_before_anything_trains(digit_folder, tmp_path):
    from kerasdistill import pipeline

    folder = tmp_path / "broken"
    shutil.copytree(digit_folder, folder)
    (folder / "digit_1" / "zz_truncated.png").write_bytes(b"\x89PNG not really")
    settings = {"data": {"source": "image_folder", "path": str(folder), "stream": True}, "report": {"plots": False}}
    with pytest.raises(ValueError, match=r"cannot be decoded: .*zz_truncated.png"):
        pipeline.run(settings, output=str(tmp_path / "out"), verbose=False)
    assert not list((tmp_path / "out").glob("*/teacher.keras")), "refused before the teacher trained"


def test_a_run_on_a_streamed_labeled_folder_trains_exports_and_measures_from_the_files(digit_folder, tmp_path, monkeypatch):
    from kerasdistill import pipeline

    # Labels held out of training (data.labeled_size) become a transfer set that streams too.
    held = config_lib.validate({"data": {"source": "image_folder", "path": str(digit_folder), "stream": True, "labeled_size": 120}})
    loaded = sources.load_data(held["data"], held["training"]["seed"])
    assert all(isinstance(split.x, ImageStream) for split in (loaded.train, loaded.val, loaded.test))
    assert isinstance(loaded.unlabeled, ImageStream) and len(loaded.train.x) == 120
    assert len(loaded.unlabeled) + len(loaded.train.x) + len(loaded.val.x) == 192
    # auto streams here (a 1 MiB limit), and would not in evaluate's and export's processes (1 GiB): they read
    # the images as the run recorded it read them.
    monkeypatch.setattr(data, "STREAM_BYTES", 1 << 20)
    settings = {
        "data": {"source": "image_folder", "path": str(digit_folder)},
        "training": {"epochs": 4, "batch_size": 16},
        "distillation": {"alpha": 0.1, "temperature": 4.0},
        "export": {"quantizations": ["float32", "int8"], "targets": ["plain", "classifier"]},
        "report": {"plots": False},
    }
    report = pipeline.run(settings, output=str(tmp_path / "out"), name="streamed", verbose=False)
    folder = tmp_path / "out" / "streamed"
    rows = {row["model"]: row for row in report["models"]}
    assert rows["teacher"]["test_accuracy"] > 0.85 and rows[report["shipped"]["label"]]["test_accuracy"] > 0.85, rows
    # The export table measures the shipped student on the same streamed test files as the report's table.
    measured = {row["model"]: row for row in report["export"]["models"]}
    label = report["shipped"]["label"]
    assert measured[label]["accuracy"] == pytest.approx(rows[label]["test_accuracy"])
    assert measured["student_float32.tflite"]["agreement"] > 0.97
    assert measured["student_int8_classifier.tflite"]["accuracy"] > 0.85
    record = json.loads((folder / runs.SPLITS_FILE).read_text())
    assert record["test"]["samples"] == 48 and record["train"]["samples"] + record["val"]["samples"] == 192
    assert record["streamed"] and runs.recorded_streaming(folder)
    # compress keys its search by the same contents: new times leave it the same data.
    from kerasdistill.compress import _splits_digest

    before = _splits_digest(loaded)
    # The same files with new times (a copy of the folder, a checkout) are the same data.
    for path in digit_folder.rglob("*.png"):
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert _splits_digest(loaded) == before
    # evaluate and export read the run's test and training images from the folder, as the run split them.
    evaluated = subprocess.run(
        [sys.executable, "-m", "kerasdistill_cli", "evaluate", str(folder / "student_float32.tflite"), "--json"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(measured["student_float32.tflite"]["accuracy"])
    exported = subprocess.run(
        [sys.executable, "-m", "kerasdistill_cli", "export", str(folder / "student.keras"), "--quantization", "int8",
         "--output", str(tmp_path / "again.tflite")],
        capture_output=True, text=True, check=True,
    )
    assert f"Calibrating on {record['train']['samples']} training images of the run's data" in exported.stdout


def test_npz_and_idx_files_stream_the_splits_they_would_read_into_memory(digits, tmp_path):
    from test_idx import write as write_idx_file

    x, y, x_test, y_test = digits.train.x[:600].astype(np.uint8), digits.train.y[:600], digits.test.x[:200].astype(np.uint8), digits.test.y[:200]
    np.savez(tmp_path / "plain.npz", x_train=x[..., 0], y_train=y, x_test=x_test, y_test=y_test)
    np.savez_compressed(tmp_path / "packed.npz", x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    for compress in (False, True):
        folder = tmp_path / f"idx-{compress}"
        folder.mkdir()
        suffix = ".gz" if compress else ""
        write_idx_file(folder / f"train-images-idx3-ubyte{suffix}", x[..., 0], compress)
        write_idx_file(folder / f"train-labels-idx1-ubyte{suffix}", y.astype(np.uint8), compress)
        write_idx_file(folder / f"t10k-images-idx3-ubyte{suffix}", x_test[..., 0], compress)
        write_idx_file(folder / f"t10k-labels-idx1-ubyte{suffix}", y_test.astype(np.uint8), compress)
    loaders = {
        "npz": lambda stream: data.load_npz_splits(str(tmp_path / "plain.npz"), 60, seed=4, stream=stream),
        "idx": lambda stream: data.load_idx(str(tmp_path / "idx-False"), 60, seed=4, stream=stream),
    }
    for load in loaders.values():
        memory, streamed = load(False), load(True)
        for name in ("train", "val", "test"):
            split, kept = getattr(streamed, name), getattr(memory, name)
            assert isinstance(split.x, ArrayStream) and split.x.shape == kept.x.shape == (len(kept.y), 28, 28, 1)
            np.testing.assert_array_equal(split.x[:], kept.x)
            np.testing.assert_array_equal(split.y, kept.y)
        held = data.hold_out_labels(streamed, 90, seed=1)
        assert isinstance(held.unlabeled, ArrayStream) and len(held.unlabeled) + len(held.train.x) == len(streamed.train.x)
        np.testing.assert_array_equal(held.train.x[:], data.hold_out_labels(memory, 90, seed=1).train.x)
        assert isinstance(load("auto").train.x, np.ndarray), "small files stay in memory"
    # Compressed files cannot be read in place: refused when asked to stream, read into memory by auto.
    with pytest.raises(ValueError, match=r"reads x_train and x_test of .*packed.npz in place, and they cannot be: they are compressed"):
        data.load_npz_splits(str(tmp_path / "packed.npz"), 60, stream=True)
    with pytest.raises(ValueError, match="reads the IDX images files in place, and they cannot be: they are compressed"):
        data.load_idx(str(tmp_path / "idx-True"), 60, stream=True)


def test_a_run_on_a_streamed_npz_file_records_and_measures_its_rows(digits, tmp_path):
    from kerasdistill import pipeline

    x, y = digits.train.x[:1500].astype(np.uint8), digits.train.y[:1500]
    np.savez(tmp_path / "digits.npz", x_train=x, y_train=y, x_test=digits.test.x[:500].astype(np.uint8), y_test=digits.test.y[:500])
    settings = {
        "data": {"source": "npz", "path": str(tmp_path / "digits.npz"), "stream": True, "validation_size": 300},
        "training": {"epochs": 2, "batch_size": 32},
        "distillation": {"alpha": 0.1, "temperature": 4.0},
        "export": {"quantizations": ["float32"], "targets": ["plain"]},
        "report": {"plots": False},
    }
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = pipeline.run(settings, output=str(tmp_path / "out"), name="npz", verbose=False)
    # Rows gathered in groups leave a dataset's count unknown, and Keras then warns its input "ran out of data".
    assert not [warning for warning in caught if "ran out of data" in str(warning.message)]
    folder = tmp_path / "out" / "npz"
    rows = {row["model"]: row for row in report["models"]}
    assert rows["teacher"]["test_accuracy"] > 0.85, rows
    assert runs.recorded_streaming(folder)
    evaluated = subprocess.run(
        [sys.executable, "-m", "kerasdistill_cli", "evaluate", str(folder / "student_float32.tflite"), "--json"],
        capture_output=True, text=True, check=True,
    )
    assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(rows[report["shipped"]["label"]]["test_accuracy"], abs=1e-3)


def test_a_tfds_dataset_streams_each_image_beside_its_own_label(monkeypatch):
    import tensorflow_datasets as tfds

    def pairs(images, labels):
        return sorted((hashlib.sha1(np.asarray(image, np.float32).tobytes()).hexdigest(), int(label)) for image, label in zip(images, labels))

    with tfds.testing.mock_data(num_examples=200):
        memory = data.load_tfds("mnist", image_size=[16, 16], validation_size=0.25, seed=1)
        streamed = data.load_tfds("mnist", image_size=[16, 16], validation_size=0.25, seed=1, stream=True)
        assert isinstance(data.load_tfds("mnist", image_size=[16, 16], stream="auto").train.x, np.ndarray), "small: in memory"
        # A dataset is read in its order: each split holds the in-memory split's images, sorted by position.
        for name in ("train", "val", "test"):
            split, kept = getattr(streamed, name), getattr(memory, name)
            assert isinstance(split.x, DatasetStream) and split.x.shape == kept.x.shape
            assert pairs(split.x[:], split.y) == pairs(kept.x, kept.y)
        # Shuffled through the stream's buffer, every image keeps its label; as a transfer set's labeled part too.
        expected = pairs(memory.train.x, memory.train.y)
        batches = list(data.to_dataset(streamed.train.x, streamed.train.y, batch_size=16, shuffle=True, seed=3))
        assert pairs(np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])) == expected
        mixed = next(iter(data.transfer_set(streamed.train, streamed.val.x, batch_size=150, labeled_share=0.5, seed=3)))
        labeled = mixed[1]["labeled"].numpy() == 1
        assert set(pairs(mixed[0].numpy()[labeled], mixed[1]["labels"].numpy()[labeled])) <= set(expected)
        held = data.hold_out_labels(streamed, 30, seed=0)
        assert isinstance(held.unlabeled, DatasetStream) and len(held.unlabeled) == 120
        # The splits hold encoded images, decoded once picked (a subset once decoded the whole split each read).
        for stream in (streamed.train.x, streamed.val.x, held.unlabeled):
            assert stream.decode is not None and stream.raw.element_spec.dtype == "string"
        config_lib.validate({"data": {"source": "tfds", "name": "mnist", "stream": True}})


def test_positions_in_a_stream_are_whole_numbers_or_a_mask_and_batches_are_counted(digit_folder):
    stream = data.load_image_folder(str(digit_folder), validation_size=30, seed=0, stream=True).test.x
    whole = stream[:]
    mask = np.zeros(len(stream), bool)
    mask[[2, 5]] = True
    # A mask selects, as numpy's does (it once read as positions 0 and 1); negative positions count from the end.
    np.testing.assert_array_equal(stream.subset(mask)[:], whole[mask])
    np.testing.assert_array_equal(stream.subset([-1, 0])[:], whole[[-1, 0]])
    with pytest.raises(ValueError, match="1-D list of whole numbers"):
        stream.subset([1.7, 2.2])
    with pytest.raises(IndexError, match=f"run from -{len(stream)} to {len(stream) - 1}"):
        stream.subset([len(stream)])
    with pytest.raises(ValueError, match="one value per image"):
        stream.subset(mask[:-1])
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1; got 0"):
        list(stream.batches(0))


def test_hidden_entries_inside_class_folders_are_no_images(digit_folder, tmp_path):
    from kerasdistill.streams import ImageStream as Stream

    folder = tmp_path / "with-hidden"
    shutil.copytree(digit_folder, folder)
    # Jupyter's copies inside a class folder, and a macOS resource file beside the images.
    shutil.copytree(folder / "digit_0", folder / "digit_0" / ".ipynb_checkpoints")
    (folder / "digit_1" / "._000.png").write_bytes(b"\x00\x05\x16\x07 not an image")
    for stream in (False, True):
        splits = data.load_image_folder(str(folder), validation_size=30, seed=0, stream=stream)
        assert len(splits.train.x) + len(splits.val.x) + len(splits.test.x) == 240
    assert len(Stream.from_folder(str(folder), (28, 28, 1))) == 240


def test_compress_refuses_an_output_folder_inside_the_image_folder(digit_folder, tmp_path, capsys):
    from kerasdistill import cli

    config = tmp_path / "compress.yaml"
    config.write_text(f"data: {{source: image_folder, path: {digit_folder}}}\n")
    keras.Sequential([keras.Input((28, 28, 3)), keras.layers.Flatten(), keras.layers.Dense(3)]).save(tmp_path / "teacher.keras")
    inside = digit_folder / "digit_1" / "search"
    assert cli.main(["compress", str(tmp_path / "teacher.keras"), "--config", str(config), "--max-drop", "1", "--output", str(inside)]) == 2
    assert "is inside the image folder data.path" in capsys.readouterr().err and not inside.exists()


def test_a_file_gone_while_keras_trains_on_a_stream_is_named(digit_folder, tmp_path):
    from kerasdistill.streams import tf_error_message

    folder = tmp_path / "copy"
    shutil.copytree(digit_folder, folder)
    train = data.load_image_folder(str(folder), validation_size=30, seed=0, stream=True).train
    os.remove(train.x.files[3])
    model = keras.Sequential([keras.Input((28, 28, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(Exception) as caught:
        model.fit(data.to_dataset(*train, batch_size=32), epochs=1, verbose=0)
    # Keras puts TensorFlow's "Graph execution error:" first; the file is named further down.
    assert tf_error_message(caught.value).endswith(f"{train.x.files[3]}; No such file or directory")
