"""Cases from an adversarial trial: each was silently wrong or data-losing before its fix."""

import numpy as np
import pytest
import tensorflow as tf

import kerasdistill as kd
from kerasdistill import config, data, models, sources
from kerasdistill.backend import keras
from kerasdistill.callbacks import BackupAndRestore, NonFiniteLossError
from kerasdistill.export import optimize


def test_a_student_sharing_layers_with_the_teacher_is_refused(trained_teacher):
    features = trained_teacher.get_layer("hidden").output
    student = keras.Model(trained_teacher.inputs, keras.layers.Dense(10, name="own_logits")(features))
    with pytest.raises(ValueError, match="shares .* variables with the teacher .*conv1/kernel.*would change the teacher"):
        kd.Distiller(trained_teacher, student)


def test_a_tfds_style_dict_dataset_is_refused_not_trained_as_unlabeled(digits, trained_teacher, small_student):
    dicts = tf.data.Dataset.from_tensor_slices({"image": digits.train.x[:64], "label": digits.train.y[:64]}).batch(32)
    distiller = kd.Distiller(trained_teacher, small_student)
    distiller.compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"yields dicts with keys \['image', 'label'\].*as_supervised=True"):
        distiller.fit(dicts, epochs=1, verbose=0)


def test_a_backup_of_another_architecture_is_not_restored(tmp_path, digits, trained_teacher):
    backup = tmp_path / "backup"
    keras.utils.set_random_seed(0)
    wide = models.build("convnet_student", (28, 28, 1), 10)
    wide.compile(optimizer="adam", loss=kd.losses.CrossEntropy())
    wide.fit(digits.train.x[:128], digits.train.y[:128], epochs=1, verbose=0,
             callbacks=[BackupAndRestore(str(backup), delete_on_success=False)])  # fmt: skip
    other = models.mlp((28, 28, 1), 10, hidden=(8,))
    other.compile(optimizer="adam", loss=kd.losses.CrossEntropy())
    with pytest.raises(ValueError, match="written while training another model .* Delete that folder"):
        other.fit(digits.train.x[:128], digits.train.y[:128], epochs=2, verbose=0, callbacks=[BackupAndRestore(str(backup))])
    # The same architecture resumes as before.
    same = models.build("convnet_student", (28, 28, 1), 10)
    same.compile(optimizer="adam", loss=kd.losses.CrossEntropy())
    callback = BackupAndRestore(str(backup))
    same.fit(digits.train.x[:128], digits.train.y[:128], epochs=2, verbose=0, callbacks=[callback])
    assert callback.restored_epoch == 1


def test_positional_fit_arguments_keep_the_non_finite_guard(digits, trained_teacher, small_student):
    distiller = kd.Distiller(trained_teacher, small_student)
    distiller.compile(optimizer="adam")
    poisoned = digits.train.x[:64].copy()
    poisoned[40] = np.nan
    # fit(x, y, batch_size, epochs, verbose), all positional: the guard still stops at the NaN.
    with pytest.raises(NonFiniteLossError, match="epoch 1, step .: non-finite"):
        distiller.fit(poisoned, digits.train.y[:64], 32, 1, 0)


def write_images(folder, classes, count=3):
    for name in classes:
        (folder / name).mkdir(parents=True)
        for index in range(count):
            keras.utils.save_img(folder / name / f"{index}.png", np.full((8, 8, 1), 40 * index, np.uint8), scale=False)


def test_an_image_folder_with_one_class_is_refused(tmp_path):
    write_images(tmp_path, ["only"])
    with pytest.raises(ValueError, match="holds 1 class folder \\(only\\); a classifier needs at least 2"):
        data.load_image_folder(str(tmp_path), validation_size=1)


def test_test_classes_are_mapped_to_the_training_classes_by_name(tmp_path):
    write_images(tmp_path / "train", ["cat", "dog", "fox"])
    write_images(tmp_path / "test", ["dog", "fox"], count=2)
    splits = data.load_image_folder(str(tmp_path), validation_size=1)
    # test/dog is class 1 and test/fox class 2 of the training classes, not 0 and 1.
    assert sorted(set(splits.test.y.tolist())) == [1, 2]
    write_images(tmp_path / "test", ["wolf"], count=2)
    with pytest.raises(ValueError, match="has classes the training folder lacks \\(wolf\\)"):
        data.load_image_folder(str(tmp_path), validation_size=1)


def test_yaml_aliases_repeated_keys_and_huge_files_are_refused(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b]\n')
    with pytest.raises(ValueError, match="uses a YAML alias \\(\\*name\\) at line 2"):
        config.load(str(bomb))
    twice = tmp_path / "twice.yaml"
    twice.write_text("training:\n  epochs: 3\n  epochs: 30\n")
    with pytest.raises(ValueError, match="gives the key\\(s\\) epochs twice"):
        config.load(str(twice))
    huge = tmp_path / "huge.yaml"
    huge.write_text("# " + "x" * (2 << 20))
    with pytest.raises(ValueError, match="a config is a few kilobytes"):
        config.load(str(huge))


def test_a_long_bad_value_is_quoted_short(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text("training:\n  strategy: " + "x" * 5000 + "\n")
    with pytest.raises(ValueError) as raised:
        config.load(str(path))
    assert len(str(raised.value)) < 400 and "characters)" in str(raised.value)


def test_relative_paths_in_a_config_are_taken_from_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    np.savez(folder / "mine.npz", x_train=np.zeros((20, 4, 4, 1)), y_train=np.arange(20) % 2,
             x_test=np.zeros((4, 4, 4, 1)), y_test=np.arange(4) % 2)  # fmt: skip
    (folder / "run.yaml").write_text("data:\n  source: npz\n  path: mine.npz\n")
    monkeypatch.chdir(tmp_path)  # not the config's folder
    assert config.load(str(folder / "run.yaml"))["data"]["path"] == str(folder / "mine.npz")


def test_a_validation_split_too_small_for_the_embedded_digits_is_refused_before_training():
    with pytest.raises(ValueError, match="validation_size 0.001 gives 4 .* at least 10"):
        sources.load_data(config.validate({"data": {"validation_size": 0.001}})["data"], seed=0)
    # A fraction is a share of the 4,000 training digits, as for other sources.
    splits = sources.load_data(config.validate({"data": {"validation_size": 0.1}})["data"], seed=0)
    assert len(splits.val.x) == 400


def test_numpy_scalars_are_valid_alpha_and_temperature(trained_teacher, small_student):
    distiller = kd.Distiller(trained_teacher, small_student)
    distiller.compile(optimizer="adam", alpha=np.float32(0.5), temperature=np.int64(4))
    assert distiller.alpha == 0.5 and distiller.temperature == 4.0


def test_a_users_keras_loss_runs_in_float32_under_mixed_precision(digits):
    dtypes = []

    class Recording(keras.losses.Loss):
        def call(self, y_true, y_pred):
            dtypes.append(y_pred.dtype)
            return keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        teacher = models.build("convnet_teacher", (28, 28, 1), 10)
        student = models.build("convnet_student", (28, 28, 1), 10)
        distiller = kd.Distiller(teacher, student)
        distiller.compile(optimizer="adam", student_loss_fn=Recording())
        distiller.train_on_batch(digits.train.x[:16], digits.train.y[:16])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert dtypes and all(dtype in ("float32", tf.float32) for dtype in dtypes), dtypes


def test_qat_fine_tuning_of_a_softmax_student_trains_on_its_logits(digits):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(32, activation="relu")(x)
    student = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))
    student.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    student.fit(digits.train.x, digits.train.y, epochs=2, verbose=0)
    qat = optimize.quantize_aware(student, (digits.train.x[:1000], digits.train.y[:1000]), epochs=1)
    outputs = np.asarray(qat(digits.test.x[:200], training=False))
    # Still probabilities of the right class: cross-entropy on logits, not on the softmax.
    np.testing.assert_allclose(outputs.sum(-1), 1.0, atol=1e-3)
    assert np.mean(np.argmax(outputs, -1) == digits.test.y[:200]) > 0.85


def test_int8_calibration_on_constant_data_warns(tmp_path, small_student):
    from kerasdistill.export import to_tflite

    with pytest.warns(UserWarning, match="calibration samples are all identical"):
        to_tflite(small_student, tmp_path / "s.tflite", "int8", representative_data=np.zeros((50, 28, 28, 1), np.float32))


def test_bad_labels_after_the_first_batch_stop_training_with_a_clear_message(digits, trained_teacher, small_student):
    labels = digits.train.y[:128].copy()
    labels[100] = 12  # in the second batch: fit's own check sees only the first
    distiller = kd.Distiller(trained_teacher, small_student)
    distiller.compile(optimizer="adam")
    batches = tf.data.Dataset.from_tensor_slices((digits.train.x[:128], labels)).batch(64)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"labels outside \[0, 10\).*a later one is not"):
        distiller.fit(batches, epochs=1, verbose=0)


def test_a_corrupt_image_is_named(tmp_path):
    write_images(tmp_path, ["a", "b"])
    (tmp_path / "b" / "9.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    with pytest.raises(ValueError, match=r"cannot be decoded: .*b/9.png"):
        data.load_image_folder(str(tmp_path), validation_size=1)


def test_clean_lists_live_and_abandoned_runs_and_removes_only_abandoned_ones(tmp_path, capsys):
    from kerasdistill import cli, files

    for key, name in (("k1", "gone"), ("k2", "live")):
        (tmp_path / ".resume" / key).mkdir(parents=True)
        (tmp_path / ".resume" / key / "run.json").write_text(f'{{"name": "{name}"}}')
    with files.exclusive_lock(str(tmp_path / ".resume" / "live.lock"), "live"):
        assert cli.main(["clean", "--output", str(tmp_path), "--remove"]) == 0
        out = capsys.readouterr().out
        assert "gone" in out and "abandoned" in out and "in progress (pid" in out
        assert not (tmp_path / ".resume" / "k1").exists() and (tmp_path / ".resume" / "k2").exists()


@pytest.mark.parametrize("compressed", [False, True])
def test_calibration_reads_only_the_samples_it_uses_from_an_npz(tmp_path, compressed):
    x = np.random.default_rng(0).uniform(0, 255, (5000, 28, 28, 1)).astype(np.float32)
    path = str(tmp_path / "big.npz")
    (np.savez_compressed if compressed else np.savez)(path, x=x, y=np.arange(5000) % 10)
    head, labels = data.load_arrays(path, need_labels=False, limit=200)
    assert head.shape == (200, 28, 28, 1) and labels.shape == (200,)
    np.testing.assert_array_equal(head, x[:200])
