"""Distillation methods beyond soft targets: hand computations and real training."""

import os
import warnings

import numpy as np
import pytest
import tensorflow as tf
from conftest import accuracy, train_builtin
from keras import ops

import kerasdistill as kd
from kerasdistill import losses, models
from kerasdistill.backend import keras

RNG = np.random.default_rng(0)
TEACHER = RNG.normal(size=(5, 4)).astype(np.float32) * 2
STUDENT = RNG.normal(size=(5, 4)).astype(np.float32)
LABELS = np.array([0, 3, 1, 1, 2])


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl(p, q):
    return np.sum(p * (np.log(p) - np.log(q)), axis=-1)


def dkd_by_hand(teacher, student, labels, alpha, beta, temperature):
    """The reference implementation of Zhao et al. (2022), per sample, in numpy."""
    mask = np.eye(teacher.shape[1], dtype=bool)[labels]
    p_t, p_s = softmax(teacher / temperature), softmax(student / temperature)
    b_t = np.stack([p_t[mask], 1 - p_t[mask]], axis=-1)
    b_s = np.stack([p_s[mask], 1 - p_s[mask]], axis=-1)
    tckd = kl(b_t, b_s)
    others_t = np.where(mask, 0, p_t) / (1 - p_t[mask])[:, None]
    others_s = np.where(mask, 0, p_s) / (1 - p_s[mask])[:, None]
    keep = ~mask
    nckd = np.array([kl(others_t[i][keep[i]], others_s[i][keep[i]]) for i in range(len(labels))])
    return (alpha * tckd + beta * nckd) * temperature**2


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_dkd_equals_the_reference_computation(temperature):
    loss = losses.DecoupledKD(target_weight=1.0, non_target_weight=8.0, temperature=temperature)
    values = loss.call(TEACHER, STUDENT, LABELS).numpy()
    np.testing.assert_allclose(values, dkd_by_hand(TEACHER, STUDENT, LABELS, 1.0, 8.0, temperature), rtol=1e-4)
    # One-hot labels give the same; without labels the teacher's top class is the target.
    one_hot = np.eye(4, dtype=np.float32)[LABELS]
    np.testing.assert_allclose(loss.call(TEACHER, STUDENT, one_hot).numpy(), values, rtol=1e-6)
    top = TEACHER.argmax(axis=-1)
    np.testing.assert_allclose(
        loss(TEACHER, STUDENT).numpy(), dkd_by_hand(TEACHER, STUDENT, top, 1.0, 8.0, temperature).mean(), rtol=1e-4
    )


def test_dkd_with_weights_one_is_classic_kd_plus_the_weighted_difference():
    # Zhao et al.: KD = TCKD + (1 - p_t_target) * NCKD. With beta = 1 - p the
    # decoupled loss reproduces the soft-target KL of the same sample.
    temperature = 2.0
    p_target = softmax(TEACHER / temperature)[np.arange(5), LABELS]
    for i in range(5):
        dkd = losses.DecoupledKD(1.0, float(1 - p_target[i]), temperature=temperature)
        value = dkd.call(TEACHER[i : i + 1], STUDENT[i : i + 1], LABELS[i : i + 1]).numpy()[0]
        classic = losses.SoftTargetKL(temperature=temperature).call(TEACHER[i : i + 1], STUDENT[i : i + 1]).numpy()[0]
        assert value == pytest.approx(classic, rel=1e-4)


def test_hint_and_attention_equal_hand_computations():
    teacher = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32)
    student = RNG.normal(size=(2, 4, 4, 5)).astype(np.float32)
    hint = losses.Hint(pairs=[("a", "b")])
    np.testing.assert_allclose(hint.call(teacher, teacher * 0.5).numpy(), np.mean((teacher * 0.5) ** 2 * 1, axis=(1, 2, 3)), rtol=1e-5)

    def attention_map(f):
        a = np.mean(np.abs(f) ** 2, axis=-1).reshape(len(f), -1)
        return a / np.linalg.norm(a, axis=-1, keepdims=True)

    expected = np.mean((attention_map(teacher) - attention_map(student)) ** 2, axis=-1)
    at = losses.AttentionTransfer(pairs=[("a", "b")])
    np.testing.assert_allclose(at.call(teacher, student).numpy(), expected, rtol=1e-5)
    assert at.weight == 1000.0
    with pytest.raises(ValueError, match="4-D feature maps.*use 'hint'"):
        at.call(np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float32))


def rkd_by_hand(teacher, student, distance_weight, angle_weight):
    def distances(e):
        d = np.linalg.norm(e[:, None] - e[None], axis=-1)
        return d / d[d > 0].mean()

    def angles(e):
        diff = e[None, :, :] - e[:, None, :]
        norm = np.linalg.norm(diff, axis=-1, keepdims=True)
        unit = np.divide(diff, norm, out=np.zeros_like(diff), where=norm > 0)
        return np.einsum("ijd,ikd->ijk", unit, unit)

    def huber(x):
        return np.where(np.abs(x) < 1, 0.5 * x**2, np.abs(x) - 0.5)

    distance = huber(distances(student) - distances(teacher)).mean()
    angle = huber(angles(student) - angles(teacher)).mean()
    return distance_weight * distance + angle_weight * angle


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_rkd_equals_hand_computation_and_ignores_scale(seed):
    rng = np.random.default_rng(seed)
    # Large offsets make |a|^2 + |b|^2 - 2ab lose the diagonal's exact zero:
    # the loss must not depend on that rounding.
    teacher = (rng.normal(size=(6, 8)) + 50.0).astype(np.float32)
    student = rng.normal(size=(6, 3)).astype(np.float32)
    rkd = losses.RelationalKD(distance_weight=25.0, angle_weight=50.0)
    assert float(rkd(teacher, student)) == pytest.approx(rkd_by_hand(teacher, student, 25.0, 50.0), rel=1e-4)
    # Relations are scale-free: a scaled copy of the teacher costs nothing.
    assert float(rkd(teacher, 3.0 * teacher)) == pytest.approx(0.0, abs=1e-5)


def test_rkd_distances_have_an_exactly_zero_diagonal():
    from kerasdistill.losses.relational import _normalized_distances

    embeddings = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32) * 1e3 + 1e4
    distances = np.asarray(_normalized_distances(embeddings))
    assert np.all(np.diag(distances) == 0.0)
    assert np.all(distances[~np.eye(5, dtype=bool)] > 0.0)
    assert distances[~np.eye(5, dtype=bool)].mean() == pytest.approx(1.0, rel=1e-5)


def test_the_label_loss_is_not_a_distillation_loss():
    # crossentropy on softened probabilities read as logits is an almost constant term.
    with pytest.raises(ValueError, match="'crossentropy' compares the student with the labels.*student_loss_fn"):
        losses.get("crossentropy")
    with pytest.raises(TypeError, match="subclass of kerasdistill.losses.DistillationLoss"):
        losses.register("my_label_loss")(losses.CrossEntropy)
    from kerasdistill.tuning import tune

    with pytest.raises(ValueError, match="'crossentropy' compares the student with the labels"):
        tune(None, lambda: None, None, None, methods=["crossentropy"])


def test_a_typo_in_a_loss_name_suggests_the_closest_one(trained_teacher, small_student):
    distiller = kd.Distiller(trained_teacher, small_student)
    with pytest.raises(ValueError, match="Unknown distillation loss 'soft_target_k'. Did you mean 'soft_target_kl'"):
        distiller.compile(optimizer="adam", distillation_loss_fn="soft_target_k")


def test_every_loss_is_registered_and_round_trips_through_its_config():
    examples = {
        "soft_target_kl": {"temperature": 2.0},
        "logit_mse": {},
        "softened": {"temperature": 2.0},
        "dkd": {"non_target_weight": 2.0},
        "hint": {"pairs": [["t", "s"]]},
        "attention": {"pairs": [["t", "s"]], "p": 2},
        "rkd": {"angle_weight": 10.0},
    }
    assert set(losses.names()) == set(examples)
    for name, config in examples.items():
        loss = losses.get({"name": name, "config": config})
        again = type(loss).from_config(loss.get_config())
        assert again.get_config() == loss.get_config()
        restored = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(restored) is type(loss)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: losses.Hint(pairs=[]), "non-empty list of \\(teacher_layer, student_layer\\)"),
        (lambda: losses.Hint(pairs=[("only_one",)]), "Each pair"),
        (lambda: losses.DecoupledKD(non_target_weight=-1), "non_target_weight must be a finite number >= 0"),
        (lambda: losses.AttentionTransfer(pairs=[("a", "b")], p=0), "exponent p"),
        (lambda: losses.get("fitnets"), "Unknown distillation loss 'fitnets'. Known losses:.*hint"),
    ],
)
def test_bad_method_arguments_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def compile_methods(distiller, methods, **kwargs):
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        distillation_loss_fn=methods,
        alpha=kwargs.pop("alpha", 0.5),
        temperature=4.0,
        **kwargs,
    )
    return distiller


@pytest.mark.slow
def test_hint_pairs_with_other_channels_and_sizes_train_and_adapters_stay_out_of_the_student(
    digits, trained_teacher, small_student, tmp_path
):
    # Teacher conv1 gives 28x28x32 and conv2 14x14x64; the student's relu1 is
    # 28x28x8: both a channel and a spatial mismatch.
    hint = losses.Hint(pairs=[("relu1", "relu1"), ("relu2", "relu1")])
    student_weights = len(small_student.weights)
    distiller = compile_methods(kd.Distiller(trained_teacher, small_student), ["soft_target_kl", hint])
    shapes = {a.name: (a.target_shape, a.resize) for a in distiller.adapters}
    assert shapes == {
        "adapter_relu1_to_relu1": ((28, 28, 32), False),
        "adapter_relu1_to_relu2": ((14, 14, 64), True),
    }
    # Control: a twin whose hint terms have no gradient (student nor adapters); the labels and
    # soft targets alone also lower them, so each must fall further with its gradient.
    keras.utils.set_random_seed(1)
    twin = compile_methods(
        kd.Distiller(trained_teacher, models.build("convnet_student", (28, 28, 1), 10)),
        ["soft_target_kl", gradient_stopped(hint)],
    )
    x, y = digits.train.x[:2048], digits.train.y[:2048]
    ratios = {}
    for name, trained in (("hint", distiller), ("control", twin)):
        first = trained.evaluate(*digits.val, verbose=0, return_dict=True)
        history = trained.fit(x, y, batch_size=64, epochs=1, verbose=0)
        last = trained.evaluate(*digits.val, verbose=0, return_dict=True)
        ratios[name] = {term: last[term] / first[term] for term in ("hint_relu1_relu1", "hint_relu2_relu1")}
    assert set(history.history) >= {"hint_relu1_relu1", "hint_relu2_relu1", "soft_target_kl", "student_loss"}
    # Measured after/before: 0.96 and 0.97 with the gradient, 1.08 and 1.05 without it.
    for term in ("hint_relu1_relu1", "hint_relu2_relu1"):
        assert ratios["hint"][term] < min(1.0, 0.95 * ratios["control"][term]), ratios
    # The adapters trained but are not in the student, nor in its saved file.
    assert len(small_student.weights) == student_weights
    assert not any("adapter" in w.path for w in small_student.weights)
    small_student.save(tmp_path / "student.keras")
    restored = keras.models.load_model(tmp_path / "student.keras")
    assert [layer.name for layer in restored.layers] == [layer.name for layer in small_student.layers]
    # The whole distiller (adapters included) saves and reloads.
    distiller.save(tmp_path / "distiller.keras")
    again = keras.models.load_model(tmp_path / "distiller.keras")
    for a, b in zip(distiller.adapters, again.adapters):
        np.testing.assert_allclose(a.get_weights()[0], b.get_weights()[0])


def test_a_layer_that_does_not_exist_lists_the_layers(trained_teacher, small_student):
    distiller = kd.Distiller(trained_teacher, small_student)
    with pytest.raises(ValueError, match="student 'student' has no layer named 'conv9'. Its layers: image, .*conv1"):
        compile_methods(distiller, [losses.Hint(pairs=[("conv1", "conv9")])])


def gradient_stopped(loss):
    """A copy of `loss` that sees the student through `stop_gradient`: its term is computed but trains nothing."""

    def stopped(outputs):
        return {key: ops.stop_gradient(value) for key, value in outputs.items()}

    class Stopped(type(loss)):
        def terms(self, teacher, student, *args, **kwargs):
            student = student._replace(
                logits=ops.stop_gradient(student.logits),
                features=stopped(student.features),
                adapted=stopped(student.adapted),
            )
            return super().terms(teacher, student, *args, **kwargs)

    return Stopped.from_config(loss.get_config())


@pytest.mark.parametrize(
    "method, term",
    [
        ([losses.AttentionTransfer(pairs=[("relu2", "relu2")])], "distillation_loss"),
        (["soft_target_kl", losses.RelationalKD(pairs=[("hidden", "hidden")])], "rkd"),
        ([losses.DecoupledKD(non_target_weight=2.0)], "distillation_loss"),
    ],
    ids=["attention", "rkd", "dkd"],
)
def test_attention_rkd_and_dkd_terms_train_the_student(digits, trained_teacher, method, term):
    # The student learns from the labels too, which alone lowers every term:
    # the term must fall further than in a twin whose term has no gradient.
    x, y = digits.train.x[:2048], digits.train.y[:2048]
    held_out = digits.val.x, digits.val.y
    ratios = {}
    for control in (False, True):
        keras.utils.set_random_seed(1)
        student = models.build("convnet_student", (28, 28, 1), 10)
        chosen = [gradient_stopped(loss) if control and not isinstance(loss, str) else loss for loss in method]
        distiller = compile_methods(kd.Distiller(trained_teacher, student), chosen)
        before = distiller.evaluate(*held_out, verbose=0, return_dict=True)[term]
        distiller.fit(x, y, batch_size=64, epochs=1, verbose=0)
        after = distiller.evaluate(*held_out, verbose=0, return_dict=True)[term]
        ratios[control] = after / before
    # Measured after/before: attention 0.79 against 1.30, rkd 0.42 against 0.64, dkd 0.58 against 0.73.
    assert ratios[False] < 0.9 * ratios[True], ratios


def test_cached_and_online_distillation_give_the_same_first_step(digits, trained_teacher, tmp_path):
    x, y = digits.train.x[:256], digits.train.y[:256]
    results = {}
    for mode in ("online", "memory", "disk"):
        keras.utils.set_random_seed(1)
        student = models.build("convnet_student", (28, 28, 1), 10)
        distiller = compile_methods(kd.Distiller(trained_teacher, student), ["soft_target_kl", "dkd"])
        if mode == "online":
            data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
        else:
            path = tmp_path / "cache" if mode == "disk" else None
            data = kd.cache_teacher_outputs(distiller, (x, y), path=path, batch_size=64)
        first_batch = next(iter(data))
        results[mode] = (
            distiller.train_on_batch(*first_batch, return_dict=True) if mode == "online"
            else distiller.train_on_batch(first_batch[0], first_batch[1], return_dict=True),
            [w.numpy() for w in student.weights],
        )
    for mode in ("memory", "disk"):
        for key in ("loss", "student_loss", "dkd", "soft_target_kl"):
            assert results[mode][0][key] == pytest.approx(results["online"][0][key], rel=1e-5)
        for a, b in zip(results[mode][1], results["online"][1]):
            np.testing.assert_allclose(a, b, atol=1e-6)
    # The disk cache reloads, and is never silently overwritten.
    loaded = kd.load_cached_teacher_outputs(tmp_path / "cache", batch_size=64)
    assert int(sum(1 for _ in loaded.unbatch())) == 256
    with pytest.raises(FileExistsError, match="load_cached_teacher_outputs"):
        kd.cache_teacher_outputs(trained_teacher, (x, y), path=tmp_path / "cache")
    assert sorted(os.listdir(tmp_path)) == ["cache"]


def test_cached_training_reaches_online_accuracy_and_refuses_feature_losses(digits, trained_teacher):
    scores = {}
    for mode in ("online", "cached"):
        keras.utils.set_random_seed(1)
        student = models.build("convnet_student", (28, 28, 1), 10)
        distiller = compile_methods(kd.Distiller(trained_teacher, student), "soft_target_kl", alpha=0.1)
        data = tf.data.Dataset.from_tensor_slices((digits.train.x, digits.train.y)).batch(64)
        if mode == "cached":
            data = kd.cache_teacher_outputs(distiller, data)
        distiller.fit(data, epochs=2, verbose=0, shuffle=False)
        scores[mode] = accuracy(student, digits.test.x, digits.test.y)
    assert scores["cached"] == pytest.approx(scores["online"], abs=0.01)
    hinted = compile_methods(
        kd.Distiller(trained_teacher, models.build("convnet_student", (28, 28, 1), 10)),
        ["soft_target_kl", losses.Hint(pairs=[("relu1", "relu1")])],
    )
    cached = kd.cache_teacher_outputs(trained_teacher, (digits.train.x[:64], digits.train.y[:64]))
    with pytest.raises(ValueError, match="'hint' loss compares intermediate layers.*online"):
        hinted.fit(cached, epochs=1, verbose=0)


def test_caching_warns_about_random_augmentation(digits, trained_teacher):
    augment = keras.layers.RandomTranslation(0.1, 0.1, seed=0)
    data = tf.data.Dataset.from_tensor_slices((digits.train.x[:128], digits.train.y[:128])).batch(64)
    with pytest.warns(UserWarning, match="augmentation is frozen"):
        kd.cache_teacher_outputs(trained_teacher, data.map(lambda x, y: (augment(x, training=True), y)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kd.cache_teacher_outputs(trained_teacher, data)


def test_one_teacher_in_a_list_equals_a_single_teacher(digits, trained_teacher):
    x, y = digits.train.x[:64], digits.train.y[:64]
    weights = {}
    for key, teacher in (("single", trained_teacher), ("list", [trained_teacher])):
        keras.utils.set_random_seed(1)
        student = models.build("convnet_student", (28, 28, 1), 10)
        distiller = compile_methods(kd.Distiller(teacher, student), "soft_target_kl")
        weights[key] = (distiller.train_on_batch(x, y, return_dict=True)["loss"], [w.numpy() for w in student.weights])
    assert weights["list"][0] == pytest.approx(weights["single"][0], rel=1e-6)
    for a, b in zip(*(w[1] for w in weights.values())):
        np.testing.assert_allclose(a, b, atol=1e-7)


def test_several_teachers_average_their_softened_probabilities(digits, trained_teacher):
    other = train_builtin("convnet_student", digits, epochs=1)
    probabilities = keras.Sequential([other, keras.layers.Softmax()])
    keras.utils.set_random_seed(1)
    student = models.build("convnet_student", (28, 28, 1), 10)
    distiller = compile_methods(
        kd.Distiller([trained_teacher, probabilities], student, teacher_weights=[3, 1]), "soft_target_kl"
    )
    assert distiller.teacher_output_kinds == ("logits", "probabilities")
    x = tf.constant(digits.test.x[:8])
    combined = distiller.teacher_logits(x).numpy()
    expected = 0.75 * softmax(trained_teacher(x).numpy() / 4.0) + 0.25 * softmax(other(x).numpy() / 4.0)
    np.testing.assert_allclose(softmax(combined / 4.0), expected, rtol=1e-4, atol=1e-6)
    distiller.fit(digits.train.x, digits.train.y, batch_size=64, epochs=2, verbose=0)
    assert accuracy(student, digits.test.x, digits.test.y) > 0.85
    with pytest.raises(ValueError, match="teacher_weights needs one number per teacher \\(2\\)"):
        kd.Distiller([trained_teacher, other], student, teacher_weights=[1.0])
    with pytest.raises(ValueError, match="has 2 teachers. Use one teacher with those losses"):
        compile_methods(kd.Distiller([trained_teacher, other], student), [losses.Hint(pairs=[("relu1", "relu1")])])
    wrong = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(7)])
    with pytest.raises(ValueError, match="teacher 1 outputs 7 class scores but the student outputs 10"):
        kd.Distiller([trained_teacher, wrong], student)
