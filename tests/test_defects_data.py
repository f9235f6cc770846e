"""Issue 23, data and export: hidden folders, class names, IDX sizes, damaged metadata, uint8 pixels, scales."""

import gzip
import struct
import sys

import numpy as np
import pytest
from PIL import Image

from kerasdistill import config, data, export
from kerasdistill import idx as idx_module
from kerasdistill.backend import keras
from kerasdistill.export.metadata import ClassifierMetadata, write_metadata

# Every character `str.splitlines` breaks a line on.
LINE_CHARACTERS = ["\n", "\r", "\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


def save_images(folder, value, count=4, size=(4, 4)):
    """`count` PNGs of one gray `value` (so a pixel tells its class)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(np.full(size + (3,), value, np.uint8)).save(folder / f"{index}.png")


def assert_labels_follow_pixels(split, values):
    """Each image's label is the class whose pixel value it holds."""
    np.testing.assert_array_equal(split.x[:, 0, 0, 0], np.asarray(values, np.float32)[split.y])


# 1. Hidden folders are no classes.


def test_a_hidden_folder_is_no_class_of_an_image_folder(tmp_path):
    save_images(tmp_path / "a", 0, count=8)
    save_images(tmp_path / "b", 200, count=8)
    # Jupyter's checkpoints sort first and hold an image of another size.
    save_images(tmp_path / ".ipynb_checkpoints", 100, count=1, size=(6, 6))
    splits = data.load_image_folder(str(tmp_path), validation_size=2, test_fraction=0.25)
    assert splits.class_names == ("a", "b") and splits.num_classes == 2
    assert splits.train.x.shape[1:] == (4, 4, 3)
    for split in (splits.train, splits.val, splits.test):
        assert_labels_follow_pixels(split, [0, 200])


@pytest.mark.parametrize("hidden_in", ["train", "test"])
def test_a_hidden_folder_in_train_or_test_keeps_every_test_label(tmp_path, hidden_in):
    for split in ("train", "test"):
        save_images(tmp_path / split / "a", 0)
        save_images(tmp_path / split / "b", 200)
    save_images(tmp_path / hidden_in / ".ipynb_checkpoints", 100, count=1)
    splits = data.load_image_folder(str(tmp_path), validation_size=2)
    assert splits.class_names == ("a", "b") and splits.num_classes == 2
    assert_labels_follow_pixels(splits.test, [0, 200])
    assert_labels_follow_pixels(splits.train, [0, 200])


def test_a_hidden_folder_holds_no_unlabeled_images(tmp_path):
    save_images(tmp_path / "photos", 50, count=3)
    save_images(tmp_path / ".ipynb_checkpoints", 100, count=2)
    x = data.load_unlabeled(str(tmp_path), (4, 4, 3))
    assert x.shape == (3, 4, 4, 3) and np.all(x == 50)


# 2. Class names of an .npz file.


def write_npz(path, class_names):
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.uniform(0, 255, (20, 4, 4)), y_train=np.arange(20) % 2,
             x_test=rng.uniform(0, 255, (6, 4, 4)), y_test=np.arange(6) % 2, class_names=class_names)
    return str(path)


def test_npz_class_names_stored_as_bytes_are_text(tmp_path):
    splits = data.load_npz_splits(write_npz(tmp_path / "b.npz", np.array([b"cat", "caf\u00e9".encode()])), validation_size=2)
    assert splits.class_names == ("cat", "caf\u00e9")


@pytest.mark.parametrize("names, message", [
    (np.array([1, 2]), "1-D array of text"),
    (np.array([b"\xff\xfe", b"dog"]), "not UTF-8"),
    (np.array(["cat", "c\rat"]), "line character"),
])
def test_npz_class_names_that_are_not_one_line_text_are_refused(tmp_path, names, message):
    with pytest.raises(ValueError, match=message):
        data.load_npz_splits(write_npz(tmp_path / "n.npz", names), validation_size=2)


# 3 and 4. Class names in configs and the API.


@pytest.mark.parametrize("text", ["[yes, no]", "[NO, on]", "[off, 'b']", "[1, 2]"])
def test_config_class_names_that_yaml_reads_as_booleans_or_numbers_are_refused(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(f"data:\n  class_names: {text}\n")
    with pytest.raises(ValueError, match="data.class_names must hold text.*quote"):
        config.load(str(path))


@pytest.mark.parametrize("character", LINE_CHARACTERS)
def test_a_line_character_inside_a_class_name_is_refused_where_names_enter(character):
    names = ["cat", f"do{character}g", "bird"]
    with pytest.raises(ValueError, match="data.class_names .* line character"):
        config.validate({"data": {"class_names": names}})
    with pytest.raises(ValueError, match="line character"):
        data.check_class_names(names)
    with pytest.raises(ValueError, match="labels .* line character"):
        ClassifierMetadata(name="m", labels=tuple(names), mean=(0.0,), std=(1.0,), color_space="RGB", image_size=(4, 4))


def test_check_class_names_strips_and_refuses_repeats():
    assert data.check_class_names([" cat", "dog "]) == ("cat", "dog")
    with pytest.raises(ValueError, match="repeat a name; 'cat'"):
        data.check_class_names(["cat", "cat "])
    with pytest.raises(ValueError, match="must hold text"):
        data.check_class_names([b"cat", "dog"])


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4, 4, 3))
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.Flatten()(inputs)), name="tiny")


@pytest.fixture(scope="module")
def plain_file(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("plain") / "plain.tflite"
    export.to_tflite(tiny_model, path)
    return path.read_bytes()


def test_to_tflite_refuses_a_class_name_with_a_line_character_before_writing(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="line character"):
        export.to_tflite(tiny_model, tmp_path / "c.tflite", target="classifier", class_names=["a", "b\u2028c", "d"])
    assert not (tmp_path / "c.tflite").exists()


def test_labels_that_do_not_match_the_output_width_are_refused_on_reading(plain_file, tmp_path):
    metadata = ClassifierMetadata(name="m", labels=("a", "b"), mean=(0.0,), std=(1.0,), color_space="RGB",
                                  image_size=(4, 4))
    path = tmp_path / "two_labels.tflite"
    path.write_bytes(write_metadata(plain_file, metadata))
    with pytest.raises(ValueError, match="two_labels.tflite holds 2 labels but the model outputs 3"):
        export.read_metadata(path)
    x, y = np.zeros((2, 4, 4, 3), np.float32), np.zeros(2, np.int32)
    with pytest.raises(ValueError, match="holds 2 labels but the model outputs 3"):
        export.evaluate_tflite(path, (x, y))


# 15. Smaller defects of the export.


def test_an_int8_classifier_refuses_a_mean_its_uint8_zero_point_cannot_hold(tiny_model, tmp_path):
    pixels = np.random.default_rng(0).uniform(0, 255, (16, 4, 4, 3)).astype("float32")
    with pytest.raises(ValueError, match="whole number in 0-255; input_normalization has mean 127.5, which as 128 would shift every pixel by 0.5"):
        export.to_tflite(tiny_model, tmp_path / "c.tflite", quantization="int8", representative_data=pixels / 127.5 - 1,
                         target="classifier", class_names=["a", "b", "c"], input_normalization=(127.5, 127.5))
    assert not (tmp_path / "c.tflite").exists()
    result = export.to_tflite(tiny_model, tmp_path / "c.tflite", quantization="int8", representative_data=pixels / 128 - 1,
                              target="classifier", class_names=["a", "b", "c"], input_normalization=(128, 128))
    # Byte b is exactly (b - 128) / 128.
    assert result.inputs[0].zero_point == 128 and result.inputs[0].scale == pytest.approx(1 / 128, rel=1e-7)


def test_conversion_runs_where_sys_stdout_is_none(tiny_model, tmp_path, monkeypatch):
    # pythonw and some services run with sys.stdout None: the converter's
    # log capture once failed there with a NameError of its error path.
    monkeypatch.setattr(sys, "stdout", None)
    result = export.to_tflite(tiny_model, tmp_path / "p.tflite")
    assert result.size_bytes > 0


def test_write_metadata_refuses_a_model_without_subgraphs(plain_file):
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(plain_file))
    model.subgraphs = []
    empty = bytes(flatbuffer_utils.convert_object_to_bytearray(model))
    metadata = ClassifierMetadata(name="m", labels=("a", "b", "c"), mean=(0.0,), std=(1.0,), color_space="RGB",
                                  image_size=(4, 4))
    with pytest.raises(ValueError, match="one subgraph .* this model has 0 subgraph"):
        write_metadata(empty, metadata)


# Crashes: damaged files are ValueErrors naming the file.


@pytest.fixture(scope="module")
def classifier_file(tiny_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("app") / "c.tflite"
    export.to_tflite(tiny_model, path, target="classifier", class_names=["a", "b", "c"])
    return path.read_bytes()


def test_read_metadata_gives_a_value_error_for_an_offset_past_4_gib(classifier_file, tmp_path):
    from flatbuffers.table import Table

    content = bytearray(classifier_file)
    model = Table(content, struct.unpack_from("<I", content, 0)[0])
    buffers = model.Vector(model.Offset(4 + 2 * 4))  # slot 4 of tflite's Model: buffers
    struct.pack_into("<I", content, buffers, 0xFFFFFFF0)
    (tmp_path / "far.tflite").write_bytes(content)
    with pytest.raises(ValueError, match="far.tflite is a damaged .tflite model"):
        export.read_metadata(tmp_path / "far.tflite")


def test_read_metadata_gives_a_value_error_for_an_unknown_zip_version(classifier_file, tmp_path):
    content = bytearray(classifier_file)
    directory = content.rindex(b"PK\x01\x02")
    content[directory + 6 : directory + 8] = struct.pack("<H", 0xFF)  # "version needed to extract"
    (tmp_path / "zip.tflite").write_bytes(content)
    with pytest.raises(ValueError, match="labels file labels.txt that the metadata of .*zip.tflite names is missing or damaged"):
        export.read_metadata(tmp_path / "zip.tflite")


# 7. IDX files are checked against their header before they are read.


class CountingGzip(gzip.GzipFile):
    inflated = 0

    def read(self, size=-1):
        chunk = super().read(size)
        CountingGzip.inflated += len(chunk)
        return chunk


def idx_header(dtype_code, shape):
    return bytes([0, 0, dtype_code, len(shape)]) + b"".join(d.to_bytes(4, "big") for d in shape)


def test_a_gzip_idx_file_is_inflated_no_further_than_its_header_declares(tmp_path, monkeypatch):
    path = tmp_path / "bomb-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(idx_header(0x08, (2, 2)) + bytes(4 + 8_000_000)))
    CountingGzip.inflated = 0
    monkeypatch.setattr(idx_module.gzip, "open", lambda file, mode="rb": CountingGzip(file, mode))
    with pytest.raises(ValueError, match=r"shape \(2, 2\) \(16 bytes with the header\) but it holds more than 16 bytes"):
        idx_module.read_idx(path)
    assert CountingGzip.inflated <= 16 + 1


def test_a_plain_idx_file_of_the_wrong_size_is_refused_unread(tmp_path, monkeypatch):
    path = tmp_path / "big-idx1-ubyte"
    path.write_bytes(idx_header(0x08, (3,)) + bytes(1_000_000))
    read = []

    class Counting:
        def __init__(self, file, mode):
            self.handle = open(file, mode)

        def __enter__(self):
            return self

        def __exit__(self, *error):
            self.handle.close()

        def read(self, size=-1):
            chunk = self.handle.read(size)
            read.append(len(chunk))
            return chunk

    monkeypatch.setattr(idx_module, "open", Counting, raising=False)
    with pytest.raises(ValueError, match=r"shape \(3,\) \(11 bytes with the header\) but it holds 1000008 bytes"):
        idx_module.read_idx(path)
    assert sum(read) <= 16


@pytest.mark.parametrize("compress", [True, False])
def test_a_truncated_idx_file_or_one_declaring_a_huge_shape_is_refused(tmp_path, compress):
    def write(name, content):
        (tmp_path / name).write_bytes(gzip.compress(content) if compress else content)
        return tmp_path / name

    cut = write("cut", idx_header(0x08, (10, 28, 28)) + bytes(7000))
    with pytest.raises(ValueError, match=r"cut is not a valid IDX file: .* holds 7016 bytes.*truncated"):
        idx_module.read_idx(cut)
    huge = write("huge", idx_header(0x0D, (65535, 65535, 65535)) + bytes(64))
    with pytest.raises(ValueError, match="huge is not a valid IDX file"):
        idx_module.read_idx(huge)


# Unlabeled inputs meet labeled ones on the same scale.


def test_unlabeled_inputs_on_another_scale_or_with_nan_are_refused():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (20, 4)).astype("float32"), np.arange(20) % 2
    with pytest.raises(ValueError, match=r"unlabeled inputs span \[0.0\d*, 0.99\d*\] but the labeled ones \[\d.*, 25\d.*\]"):
        data.transfer_set((x, y), x / 255.0, batch_size=8)
    broken = x.copy()
    broken[3, 1] = np.nan
    with pytest.raises(ValueError, match="unlabeled inputs hold NaN or infinite"):
        data.transfer_set((x, y), broken, batch_size=8)
    with pytest.raises(ValueError, match="labeled inputs hold NaN or infinite"):
        data.transfer_set((np.where(broken > 0, np.inf, 0), y), x, batch_size=8)
    # The same scale with another spread passes.
    assert data.transfer_set((x, y), rng.uniform(20, 200, (30, 4)).astype("float32"), batch_size=8) is not None


@pytest.mark.parametrize("batch_size, labeled_share", [(8, 0.99), (8, 0.01)])
def test_transfer_set_refuses_a_split_that_rounds_to_an_empty_part(batch_size, labeled_share):
    x, y = np.zeros((10, 4), "float32"), np.arange(10) % 2
    with pytest.raises(ValueError, match=f"batch_size {batch_size} with labeled_share {labeled_share:g}"):
        data.transfer_set((x, y), np.zeros((10, 4), "float32"), batch_size=batch_size, labeled_share=labeled_share)
