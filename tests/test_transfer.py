"""Backbones, frozen layers, heads and fine-tuning, on real digit images."""

import time

import numpy as np
import pytest
import tensorflow as tf

import kerasdistill as kd
from kerasdistill import models, transfer
from kerasdistill.backend import keras

from conftest import accuracy, fashion_mnist_or_skip, imagenet_weights_or_skip


def rgb(images, size):
    """Grey digits in [0, 255] as RGB images of `size`×`size`."""
    resized = tf.image.resize(images, (size, size))
    return tf.image.grayscale_to_rgb(resized).numpy()


@pytest.fixture(scope="module")
def digits32(digits):
    return rgb(digits.train.x[:512], 32), digits.train.y[:512]


def small_backbone(**kwargs):
    keras.utils.set_random_seed(0)
    options = dict(input_shape=(32, 32, 3), weights=None, alpha=0.35, freeze_batchnorm=True)
    options.update(kwargs)
    return transfer.load_backbone("mobilenet_v2", **options)


def weights_of(model):
    return [np.array(w) for w in model.weights]


def test_registry_lists_the_backbones_users_reach_for():
    known = transfer.list_backbones()
    for name in (
        "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "efficientnet_b1",
        "efficientnet_b2", "efficientnet_b3", "efficientnet_v2_b0", "resnet50", "resnet50_v2",
        "inception_v3", "densenet121", "convnext_tiny",
    ):
        assert name in known
        assert known[name]["min_size"] <= known[name]["default_size"]
    assert known["mobilenet_v2"]["options"]["alpha"] == (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
    assert known["inception_v3"]["default_size"] == 299


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown backbone 'mobilenet_v9'.*mobilenet_v2.*convnext_tiny"):
        transfer.load_backbone("mobilenet_v9")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(alpha=0.3), r"alpha in \(0.35, 0.5"),
        (dict(depth=2), "takes no option 'depth'. Its options: alpha"),
        (dict(input_shape=(16, 16, 3)), "at least 32x32"),
        (dict(input_shape=(32, 32, 1), weights="imagenet"), "3 colour channels"),
        (dict(weights=7), "weights must be 'imagenet', None or a file path"),
        (dict(freeze=1.5), r"fraction must be in \[0, 1\]"),
        (dict(freeze="no_such_layer"), "has no layer 'no_such_layer'. Its layers: input_layer"),
    ],
)
def test_bad_backbone_arguments_say_what_to_pass(kwargs, message):
    options = dict(input_shape=(32, 32, 3), weights=None)
    options.update(kwargs)
    with pytest.raises(ValueError, match=message):
        transfer.load_backbone("mobilenet_v2", **options)


@pytest.mark.parametrize("mode", ["tf", "torch", "caffe"])
def test_preprocessing_layer_equals_keras_preprocess_input(mode):
    images = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    expected = keras.applications.imagenet_utils.preprocess_input(images.copy(), mode=mode)
    np.testing.assert_allclose(transfer.ImagePreprocessing(mode)(images), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    "freeze, frozen",
    [(True, "all"), (False, 0), (10, 10), (0.5, "half"), ("block_1_project_BN", "upto")],
)
def test_freeze_counts_layers_from_the_bottom(freeze, frozen):
    application = transfer.find_application(small_backbone(freeze=freeze, freeze_batchnorm=True))
    layers = application.layers
    expected = {
        "all": len(layers),
        "half": int(round(0.5 * len(layers))),
        "upto": [layer.name for layer in layers].index("block_1_project_BN") + 1,
    }.get(frozen, frozen)
    assert [layer.trainable for layer in layers] == [
        i >= expected and not isinstance(layer, keras.layers.BatchNormalization) for i, layer in enumerate(layers)
    ]


def test_batchnorm_is_frozen_for_pretrained_weights_and_trains_from_scratch(tmp_path):
    def batchnorm_trainable(backbone):
        layers = transfer.find_application(backbone).layers
        return {layer.trainable for layer in layers if isinstance(layer, keras.layers.BatchNormalization)}

    assert batchnorm_trainable(small_backbone(freeze=False, freeze_batchnorm=None)) == {True}
    _, path = write_keras2_weights(tmp_path)
    pretrained = transfer.load_backbone("mobilenet_v2", (96, 96, 3), weights=str(path), alpha=0.35, freeze=False)
    assert batchnorm_trainable(pretrained) == {False}


def test_classifier_takes_raw_pixels_and_applies_the_backbones_preprocessing(digits32):
    backbone = small_backbone()
    model = transfer.build_classifier(backbone, num_classes=10)
    images = digits32[0][:4]
    application = transfer.find_application(model)
    expected = application(keras.applications.mobilenet_v2.preprocess_input(images.copy()), training=False)
    np.testing.assert_allclose(backbone(images), expected, atol=1e-5)
    assert model.output_shape == (None, 10)


def test_augmentation_acts_only_in_training(digits32):
    shift = keras.layers.RandomTranslation(0.2, 0.2, seed=1)
    model = transfer.build_classifier(small_backbone(), 10, dropout=0.0, augmentation=[shift])
    images = digits32[0][:8]
    assert shift in model.layers
    np.testing.assert_array_equal(model(images, training=False), model(images, training=False))
    np.testing.assert_array_equal(shift(images, training=False), images)
    assert not np.allclose(shift(images, training=True), images)


def test_frozen_backbone_weights_and_batchnorm_statistics_do_not_change_in_fit(digits32):
    backbone = small_backbone(freeze=True)
    model = transfer.build_classifier(backbone, 10)
    counts = transfer.summary(model)
    head = model.get_layer("logits").count_params()
    assert counts["trainable"] == head
    assert counts["frozen"] == backbone.count_params()
    before, head_before = weights_of(backbone), weights_of(model.get_layer("logits"))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=kd.losses.CrossEntropy(), metrics=["accuracy"])
    model.fit(*digits32, batch_size=64, epochs=1, verbose=0)
    for old, new in zip(before, weights_of(backbone)):
        np.testing.assert_array_equal(old, new)
    assert any(not np.array_equal(a, b) for a, b in zip(head_before, weights_of(model.get_layer("logits"))))


def test_unfreeze_opens_exactly_the_top_and_keeps_batchnorm_in_inference_mode(digits32):
    model = transfer.build_classifier(small_backbone(freeze=True), 10)
    application = transfer.find_application(model)
    layers = application.layers
    opened = transfer.unfreeze(model, top=12)
    top = layers[-12:]
    expected = [
        layer.name for layer in top if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert opened == expected
    for layer in layers[:-12]:
        assert not layer.trainable
    assert all(not layer.trainable for layer in layers if isinstance(layer, keras.layers.BatchNormalization))

    bottom_before = weights_of(layers[0]) + [np.array(w) for layer in layers[:-12] for w in layer.weights]
    bn_before = [np.array(w) for layer in layers if isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights]
    conv = application.get_layer(opened[0])
    conv_before = np.array(conv.weights[0])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=kd.losses.CrossEntropy())
    model.fit(*digits32, batch_size=64, epochs=1, verbose=0)
    bottom_after = weights_of(layers[0]) + [np.array(w) for layer in layers[:-12] for w in layer.weights]
    bn_after = [np.array(w) for layer in layers if isinstance(layer, keras.layers.BatchNormalization) for w in layer.weights]
    for old, new in zip(bottom_before + bn_before, bottom_after + bn_after):
        np.testing.assert_array_equal(old, new)
    assert not np.array_equal(conv_before, np.array(conv.weights[0]))


def test_unfreeze_with_batchnorm_trains_batchnorm_fully_when_asked(digits32):
    model = transfer.build_classifier(small_backbone(freeze=True), 10)
    application = transfer.find_application(model)
    transfer.unfreeze(model, from_layer="Conv_1", train_batchnorm=True)
    bn, frozen_bn = application.get_layer("Conv_1_bn"), application.get_layer("block_16_project_BN")
    assert bn.trainable and not frozen_bn.trainable
    beta, moving_mean = np.array(bn.beta), np.array(bn.moving_mean)
    frozen_before = weights_of(frozen_bn)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=kd.losses.CrossEntropy())
    model.fit(*digits32, batch_size=64, epochs=1, verbose=0)
    assert not np.array_equal(beta, np.array(bn.beta))
    assert not np.array_equal(moving_mean, np.array(bn.moving_mean))
    for old, new in zip(frozen_before, weights_of(frozen_bn)):
        np.testing.assert_array_equal(old, new)


def test_unfreeze_fraction_and_bad_arguments():
    model = transfer.build_classifier(small_backbone(), 10)
    layers = transfer.find_application(model).layers
    transfer.unfreeze(model, fraction=0.25)
    start = len(layers) - int(round(0.25 * len(layers)))
    assert not any(layer.trainable for layer in layers[:start])
    with pytest.raises(ValueError, match="exactly one of top=N, from_layer=NAME or fraction=F"):
        transfer.unfreeze(model, top=3, fraction=0.5)
    with pytest.raises(ValueError, match="has no layer 'nope'"):
        transfer.unfreeze(model, from_layer="nope")
    with pytest.raises(ValueError, match="no layer named 'backbone'"):
        transfer.unfreeze(models.mlp((4,), 2), top=1)


def test_classifier_saves_and_loads_in_safe_mode(tmp_path, digits32):
    model = transfer.build_classifier(small_backbone(), 10)
    model.save(tmp_path / "teacher.keras")
    restored = keras.models.load_model(tmp_path / "teacher.keras", safe_mode=True)
    np.testing.assert_allclose(restored(digits32[0][:4]), model(digits32[0][:4]), atol=1e-5)


# A trainable MobileNetV2's gradient graph takes about 12 s to build on 2 cores: the slow layer.
@pytest.mark.slow
def test_a_backbone_as_a_student_is_distilled(digits32):
    keras.utils.set_random_seed(0)
    teacher = models.convnet((32, 32, 3), 10, filters=(16, 32), dense_units=64)
    teacher.compile(optimizer="adam", loss=kd.losses.CrossEntropy())
    teacher.fit(*digits32, epochs=1, verbose=0)
    student = transfer.build_classifier(small_backbone(freeze=False, freeze_batchnorm=False), 10, dropout=0.0)
    teacher_before = weights_of(teacher)
    distiller = kd.Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = distiller.fit(*digits32, batch_size=64, epochs=2, verbose=0)
    assert history.history["loss"][1] < history.history["loss"][0]
    for old, new in zip(teacher_before, weights_of(teacher)):
        np.testing.assert_array_equal(old, new)


# --- weights files -----------------------------------------------------------------


def write_keras2_weights(folder, alpha=0.35, size=96):
    """Writes no-top MobileNetV2 weights the way the official files were made
    (Keras 2, legacy .h5 layout, canonical file name); returns the model."""
    import tf_keras

    tf_keras.utils.set_random_seed(3)
    model = tf_keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=(size, size, 3), alpha=alpha
    )
    name = transfer.weights_file_name("mobilenet_v2", (size, size, 3), alpha=alpha)
    model.save_weights(str(folder / name))
    return model, folder / name


def test_imagenet_weights_are_found_in_the_weights_dir_and_loaded(tmp_path, monkeypatch):
    reference, path = write_keras2_weights(tmp_path)
    monkeypatch.setenv(transfer.WEIGHTS_DIR_ENV, str(tmp_path))
    assert transfer.find_imagenet_weights("mobilenet_v2", (96, 96, 3), download=False, alpha=0.35) == str(path)
    backbone = transfer.load_backbone("mobilenet_v2", (96, 96, 3), weights="imagenet", alpha=0.35, download=False)
    loaded = transfer.find_application(backbone)
    assert len(loaded.weights) == len(reference.weights)
    for ours, theirs in zip(loaded.weights, reference.weights):
        np.testing.assert_array_equal(np.array(ours), theirs.numpy())


def test_missing_weights_name_the_file_the_folders_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv(transfer.WEIGHTS_DIR_ENV, str(tmp_path / "weights"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(FileNotFoundError) as error:
        transfer.load_backbone("mobilenet_v2", (96, 96, 3), alpha=0.35, download=False)
    message = str(error.value)
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_96_no_top.h5" in message
    assert str(tmp_path / "weights") in message and str(tmp_path / "keras" / "models") in message
    assert "KERASDISTILL_WEIGHTS_DIR" in message and "weights=None" in message


def test_a_failed_download_fails_fast_with_the_same_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv(transfer.WEIGHTS_DIR_ENV, raising=False)
    spec = transfer.BACKBONES["densenet121"]
    # A local port nobody listens on: the real download code, refused at once.
    monkeypatch.setitem(
        transfer.BACKBONES, "densenet121", spec._replace(weights_url=lambda shape, options: "http://127.0.0.1:9/w.h5")
    )
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match=r"looked for w.h5 .*the download from http://127.0.0.1:9/w.h5 failed"):
        transfer.find_imagenet_weights("densenet121", (64, 64, 3))
    assert time.perf_counter() - start < 20
    assert not (tmp_path / "keras" / "models" / "w.h5").exists()


def test_mismatched_weights_file_is_refused_with_the_expected_file(tmp_path):
    _, path = write_keras2_weights(tmp_path, alpha=0.35)
    with pytest.raises(ValueError, match="does not fit backbone 'mobilenet_v2'.*_1.0_96_no_top.h5"):
        transfer.load_backbone("mobilenet_v2", (96, 96, 3), weights=str(path), alpha=1.0)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        transfer.load_backbone("mobilenet_v2", (96, 96, 3), weights=str(tmp_path / "none.h5"))


def linear_probe_accuracy(backbone, train, test):
    features = keras.Sequential([backbone, keras.layers.GlobalAveragePooling2D()])
    train_features = features.predict(train[0], batch_size=128, verbose=0)
    test_features = features.predict(test[0], batch_size=128, verbose=0)
    keras.utils.set_random_seed(0)
    probe = keras.Sequential([keras.Input(train_features.shape[1:]), keras.layers.Dense(10)])
    probe.compile(optimizer=keras.optimizers.Adam(1e-2), loss=kd.losses.CrossEntropy())
    probe.fit(train_features, train[1], epochs=30, batch_size=128, verbose=0)
    return float(np.mean(np.argmax(probe.predict(test_features, verbose=0), -1) == test[1]))


@pytest.fixture(scope="module")
def fashion():
    return kd.data.load_idx(fashion_mnist_or_skip(), validation_size=1000)


# Real ImageNet weights on real Fashion-MNIST: the slow layer (the default layer runs the same flows on random weights).
@pytest.mark.slow
def test_pretrained_features_beat_random_features_in_a_linear_probe(fashion):
    """The real ImageNet MobileNetV2 (../shared/weights), found offline by name, on real Fashion-MNIST."""
    imagenet_weights_or_skip("mobilenet_v2")
    train = (rgb(fashion.train.x[:1000], 96), fashion.train.y[:1000])
    test = (rgb(fashion.test.x[:1000], 96), fashion.test.y[:1000])
    # The 96x96 file is not there: the 224 file is loaded, with a warning naming both.
    with pytest.warns(UserWarning, match=r"_1.0_96_no_top.h5\) are not in .* loading .*_1.0_224_no_top.h5"):
        pretrained = transfer.load_backbone("mobilenet_v2", (96, 96, 3), weights="imagenet", download=False)
    keras.utils.set_random_seed(0)
    random = transfer.load_backbone("mobilenet_v2", (96, 96, 3), weights=None)
    pretrained_accuracy = linear_probe_accuracy(pretrained, train, test)
    random_accuracy = linear_probe_accuracy(random, train, test)
    assert pretrained_accuracy > 0.75, pretrained_accuracy
    assert pretrained_accuracy > random_accuracy + 0.25, (pretrained_accuracy, random_accuracy)


@pytest.mark.slow
def test_a_grey_small_image_teacher_on_an_imagenet_backbone_distills(fashion):
    """The card's flow with real weights: ImageNet backbone + head on 28x28 grey images, then distilled."""
    imagenet_weights_or_skip("mobilenet_v2")
    # 64 px has no file of its own: Keras' canonical name is the 224 one.
    backbone = transfer.load_backbone("mobilenet_v2", (64, 64, 3), weights="imagenet", download=False)
    teacher, student, history = grey_backbone_teacher_distilled(backbone, fashion, labeled=1000, epochs=8, transfer_size=3000, distill_epochs=3)
    test = fashion.test.x[:500], fashion.test.y[:500]
    teacher_accuracy, student_accuracy = accuracy(teacher, *test), accuracy(student, *test)
    assert teacher_accuracy > 0.7, teacher_accuracy
    assert student_accuracy > 0.9 * teacher_accuracy, (student_accuracy, teacher_accuracy)


def test_a_grey_small_image_teacher_on_a_random_backbone_runs_the_same_flow(digits):
    """The same flow on random weights (no file needed; frozen random features teach little, so no accuracy is
    asserted): a frozen backbone and a new head on 28x28 grey input, the cached teacher outputs, a student that
    imitates the teacher better each epoch."""
    with pytest.warns(UserWarning, match="never learn"):
        backbone = transfer.load_backbone("mobilenet_v2", (32, 32, 3), weights=None, alpha=0.35, freeze=True)
    _, _, history = grey_backbone_teacher_distilled(backbone, digits, labeled=256, epochs=1, transfer_size=512, distill_epochs=2)
    losses = history.history["distillation_loss"]
    assert np.all(np.isfinite(losses)) and losses[1] < losses[0], losses


def grey_backbone_teacher_distilled(backbone, splits, labeled, epochs, transfer_size, distill_epochs):
    """A classifier on `backbone` for 28x28 grey images, trained on `labeled` labels, then distilled through a
    cache of `transfer_size` images, the teacher checked unchanged: `(teacher, student, distillation history)`."""
    keras.utils.set_random_seed(0)
    teacher = transfer.build_classifier(backbone, 10, input_shape=(28, 28, 1))
    assert teacher.input_shape == (None, 28, 28, 1)
    teacher.compile(optimizer=keras.optimizers.Adam(1e-3), loss=kd.losses.CrossEntropy(), metrics=["accuracy"])
    teacher.fit(splits.train.x[:labeled], splits.train.y[:labeled], epochs=epochs, batch_size=64, verbose=0)
    before = weights_of(teacher)
    keras.utils.set_random_seed(1)
    student = models.build("convnet_student", (28, 28, 1), 10)
    distiller = kd.Distiller(teacher, student)
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    cached = kd.cache_teacher_outputs(distiller, (splits.train.x[:transfer_size], splits.train.y[:transfer_size]), batch_size=64)
    history = distiller.fit(cached, epochs=distill_epochs, verbose=0)
    for old, new in zip(before, weights_of(teacher)):
        np.testing.assert_array_equal(old, new)
    return teacher, student, history


def test_the_default_size_file_is_not_used_for_another_alpha(tmp_path, monkeypatch):
    write_keras2_weights(tmp_path, alpha=0.35, size=224)
    monkeypatch.setenv(transfer.WEIGHTS_DIR_ENV, str(tmp_path))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.warns(UserWarning, match="0.35_96_no_top.h5"):
        found = transfer.find_imagenet_weights("mobilenet_v2", (96, 96, 3), download=False, alpha=0.35)
    assert found.endswith("_0.35_224_no_top.h5")
    with pytest.raises(FileNotFoundError, match="_1.0_96_no_top.h5"):
        transfer.find_imagenet_weights("mobilenet_v2", (96, 96, 3), download=False, alpha=1.0)


def test_a_random_backbone_trains_by_default_and_freezing_it_warns():
    backbone = transfer.load_backbone("mobilenet_v3_small", (32, 32, 3), weights=None)
    assert backbone.trainable_weights, "random layers are left trainable"
    with pytest.warns(UserWarning, match="never learn"):
        frozen = transfer.load_backbone("mobilenet_v3_small", (32, 32, 3), weights=None, freeze=True)
    assert not frozen.trainable_weights
