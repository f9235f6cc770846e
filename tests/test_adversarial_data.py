"""Data loaders under an adversarial trial: label encodings, split folders, class names, output folders, scales."""

import types

import numpy as np
import pytest
from PIL import Image

from kerasdistill import config, data, pipeline, sources


def save_images(folder, value, count=4, size=(4, 4)):
    """`count` PNGs of one gray `value` (so a pixel tells its class)."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        Image.fromarray(np.full(size + (3,), value, np.uint8)).save(folder / f"{index}.png")


def write_npz(path, y_train, y_test, x_train=None, x_test=None, **extra):
    rng = np.random.default_rng(0)
    x_train = rng.uniform(0, 255, (len(y_train), 6, 6, 1)).astype("float32") if x_train is None else x_train
    x_test = rng.uniform(0, 255, (len(y_test), 6, 6, 1)).astype("float32") if x_test is None else x_test
    np.savez(path, x_train=x_train, y_train=np.asarray(y_train), x_test=x_test, y_test=np.asarray(y_test), **extra)
    return str(path)


def npz_config(path, **data_keys):
    return config.validate({"data": {"source": "npz", "path": path, "validation_size": 4, **data_keys}})["data"]


# 1. One-hot labels.


def test_one_hot_npz_labels_are_class_indices_and_the_width_is_the_class_count(tmp_path):
    y, y_test = np.arange(40) % 4, np.arange(12) % 4
    path = write_npz(tmp_path / "onehot.npz", np.eye(5, dtype="float32")[y], np.eye(5, dtype="float32")[y_test])
    with pytest.raises(ValueError, match=r"Class 4 has no training images"):
        data.load_npz_splits(path, validation_size=4)
    path = write_npz(tmp_path / "onehot.npz", np.eye(4, dtype="float32")[y], np.eye(4, dtype="float32")[y_test])
    splits = data.load_npz_splits(path, validation_size=4)
    assert splits.num_classes == 4 and len(splits.train.y) == 36 and len(splits.test.y) == 12
    np.testing.assert_array_equal(splits.test.y, y_test)
    assert sorted(np.concatenate([splits.train.y, splits.val.y]).tolist()) == sorted(y.tolist())


def test_hold_out_labels_takes_one_hot_training_labels(digits):
    one_hot = digits._replace(train=data.Split(digits.train.x, np.eye(10, dtype="float32")[digits.train.y]))
    few = data.hold_out_labels(one_hot, labeled=100)
    assert few.train.y.shape == (100, 10)
    np.testing.assert_array_equal(np.bincount(few.train.y.argmax(-1), minlength=10), [10] * 10)


# 2. Split folders.


@pytest.mark.parametrize("val_name", ["val", "validation", "valid"])
def test_train_and_val_folders_are_splits_not_classes(tmp_path, val_name):
    for split, count in (("train", 10), (val_name, 3)):
        save_images(tmp_path / split / "a", 0, count)
        save_images(tmp_path / split / "b", 200, count)
    splits = data.load_image_folder(str(tmp_path), validation_size=2, test_fraction=0.2)
    assert splits.class_names == ("a", "b")
    assert len(splits.val.x) == 6, "the validation folder is the validation split"
    assert len(splits.train.x) + len(splits.test.x) == 20, "the test split is held out of train/"
    for split in splits[:3]:
        np.testing.assert_array_equal(split.x[:, 0, 0, 0], np.asarray([0.0, 200.0])[split.y])


def test_train_test_and_val_folders_are_the_three_splits(tmp_path):
    for split, count in (("train", 6), ("test", 4), ("val", 2)):
        save_images(tmp_path / split / "a", 0, count)
        save_images(tmp_path / split / "b", 200, count)
    save_images(tmp_path / "val" / "c", 100, 1)
    with pytest.raises(ValueError, match=r"val has classes the training folder lacks \(c\)"):
        data.load_image_folder(str(tmp_path), validation_size=2)
    for file in (tmp_path / "val" / "c").iterdir():
        file.unlink()
    (tmp_path / "val" / "c").rmdir()
    splits = data.load_image_folder(str(tmp_path), validation_size=2)
    assert [len(split.x) for split in splits[:3]] == [12, 4, 8] and splits.num_classes == 2


@pytest.mark.parametrize("folders", [("test", "val"), ("train", "cats"), ("train", "val", "validation"), ("val", "dogs")])
def test_split_names_that_cannot_be_read_as_a_layout_are_refused(tmp_path, folders):
    for name in folders:
        save_images(tmp_path / name / "a", 0)
        save_images(tmp_path / name / "b", 200)
    with pytest.raises(ValueError, match=r"split folders .*Expected either one sub-folder per class .*train/ with"):
        data.load_image_folder(str(tmp_path))


# 3. Config class names against the source's.


def test_config_class_names_may_not_relabel_the_source_classes(tmp_path):
    for name, value in (("one", 0), ("two", 100), ("zero", 200)):
        save_images(tmp_path / "images" / name, value, 5)
    settings = {"source": "image_folder", "path": str(tmp_path / "images"), "validation_size": 2}
    with pytest.raises(ValueError, match=r"\['zero', 'one', 'two'\] differ .*\['one', 'two', 'zero'\]"):
        sources.load_data(config.validate({"data": {**settings, "class_names": ["zero", "one", "two"]}})["data"], 0)
    same = config.validate({"data": {**settings, "class_names": ["one", "two", "zero"]}})["data"]
    assert sources.load_data(same, 0).class_names == ("one", "two", "zero")
    path = write_npz(tmp_path / "named.npz", np.arange(20) % 2, np.arange(6) % 2, class_names=np.array(["cat", "dog"]))
    with pytest.raises(ValueError, match=r"differ from the names the data gives"):
        sources.load_data(npz_config(path, class_names=["dog", "cat"]), 0)
    unnamed = write_npz(tmp_path / "unnamed.npz", np.arange(20) % 2, np.arange(6) % 2)
    assert sources.load_data(npz_config(unnamed, class_names=["dog", "cat"]), 0).class_names == ("dog", "cat")


# 4. The output folder inside the data folder.


def test_an_output_folder_inside_the_image_folder_is_refused_before_it_is_made(tmp_path, monkeypatch):
    save_images(tmp_path / "a", 0)
    save_images(tmp_path / "b", 200)
    monkeypatch.chdir(tmp_path)
    settings = {"data": {"source": "image_folder", "path": ".", "validation_size": 2}}
    with pytest.raises(ValueError, match=r"output folder .*export is inside the image folder .*--output"):
        pipeline.run(settings, verbose=False)
    assert not (tmp_path / "export").exists(), "nothing may be created before the refusal"
    save_images(tmp_path / "extra" / "x", 9)
    unlabeled = {"data": {"unlabeled_path": str(tmp_path / "extra")}}
    with pytest.raises(ValueError, match=r"inside the image folder data.unlabeled_path"):
        pipeline.run(unlabeled, output=str(tmp_path / "extra" / "runs"), verbose=False)
    assert not (tmp_path / "extra" / "runs").exists()


# Labels that are no class indices, shapes and dtypes.


@pytest.mark.parametrize(
    "y_train, message",
    [
        (np.where(np.arange(40) % 5 == 0, -1, np.arange(40) % 4), r"negative values such as -1.*Drop the rows"),
        (np.arange(40) % 4 + 1, r"Class 0 has no training images.*subtract 1"),
        (np.arange(40) % 4 + 0.5, r"fractions such as 0.5"),
        (np.array(["cat", "dog"] * 20), r"<U3 values such as \['cat', 'dog'\].*np.unique"),
    ],
    ids=["negative", "one-based", "fractions", "text"],
)
def test_labels_that_are_no_class_indices_are_refused_at_load(tmp_path, y_train, message):
    path = write_npz(tmp_path / "bad.npz", y_train, np.arange(8) % 4 + (1 if message.startswith("Class 0") else 0))
    with pytest.raises(ValueError, match=message):
        data.load_npz_splits(path, validation_size=4)


def test_an_empty_class_folder_is_refused_naming_it(tmp_path):
    save_images(tmp_path / "a", 0, 6)
    save_images(tmp_path / "c", 200, 6)
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match=r"Class 'b' \(index 1\) has no training images"):
        data.load_image_folder(str(tmp_path), validation_size=2)


@pytest.mark.parametrize("test_shape", [(8, 5, 5, 1), (8, 6, 6, 3)])
def test_test_images_of_another_shape_are_refused_at_load(tmp_path, test_shape):
    path = write_npz(tmp_path / "shapes.npz", np.arange(20) % 2, np.arange(8) % 2, x_test=np.zeros(test_shape, "float32"))
    with pytest.raises(ValueError, match=r"test images have shape .* but the training images \(6, 6, 1\)"):
        data.load_npz_splits(path, validation_size=4)


def test_gray_test_images_without_a_channel_axis_match_the_training_images(tmp_path):
    path = write_npz(tmp_path / "gray.npz", np.arange(20) % 2, np.arange(8) % 2, x_test=np.zeros((8, 6, 6), "float32"))
    assert data.load_npz_splits(path, validation_size=4).test.x.shape == (8, 6, 6, 1)


def test_transfer_set_takes_uint8_unlabeled_beside_float32_labeled_images(digits):
    x, y = digits.train.x[:32], digits.train.y[:32]
    batch = next(iter(data.transfer_set((x, y), digits.train.x[32:96].astype(np.uint8), batch_size=16)))
    assert batch[0].shape[0] == 16 and batch[0].dtype.name == "float32"


def test_images_scaled_to_0_1_are_a_caution_of_the_run(tmp_path):
    def cautions(x_test):
        path = write_npz(tmp_path / "unit.npz", np.arange(20) % 2, np.arange(8) % 2, x_train=np.full((20, 6, 6, 1), 0.5, "float32"), x_test=x_test)
        said = []
        state = types.SimpleNamespace(
            config=config.validate({"data": {"source": "npz", "path": path, "validation_size": 4}, "training": {"batch_size": 4}}),
            record_splits=lambda splits: None,
            say=said.append,
            own_state=str(tmp_path / "state"),
        )
        return pipeline.prepare_inputs(state).cautions, said

    found, said = cautions(np.full((8, 6, 6, 1), 0.25, "float32"))
    assert len(found) == 1 and "raw 0-255 pixels" in found[0]
    assert any("Warning: The training images reach at most 0.5" in line for line in said)
    # A test split of raw pixels beside training images in [0, 1]: the test accuracy measures another scale.
    found, _ = cautions(np.full((8, 6, 6, 1), 200.0, "float32"))
    assert len(found) == 2 and "the test images 200" in found[1]


def test_a_class_named_like_a_split_is_a_class_when_it_holds_images(tmp_path):
    # Vehicles: bus/, car/, train/ hold images, not class folders.
    for name, value in (("bus", 0), ("car", 100), ("train", 200)):
        save_images(tmp_path / name, value, 8)
    splits = data.load_image_folder(str(tmp_path), validation_size=2, test_fraction=0.25)
    assert splits.class_names == ("bus", "car", "train")
