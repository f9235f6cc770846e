"""The batch contract (`kerasdistill.batch`) and what the Distiller does with it."""

import keras
import numpy as np
import pytest

import kerasdistill as kd
from kerasdistill import batch, metrics


def small(name, filters):
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_feature")(inputs)
    return keras.Model(inputs, keras.layers.Dense(5)(keras.layers.Flatten()(h)), name=name)


@pytest.mark.parametrize(
    "shape, classes, expected",
    [((4,), 5, False), ((4, 1), 5, False), ((4, 5), 5, True), ((4, 5), None, True), ((4, 3), 5, False), ((4, 1), 1, False)],
)
def test_one_rule_tells_one_hot_rows_from_indices(shape, classes, expected):
    assert batch.is_one_hot(shape, classes) is expected


def test_metrics_read_labels_by_the_same_rule():
    y = np.array([[2], [0], [1]])
    np.testing.assert_array_equal(metrics.class_indices(y), [2, 0, 1])
    np.testing.assert_array_equal(metrics.class_indices(np.eye(3)[[2, 0, 1]]), [2, 0, 1])


def test_dkd_takes_the_teachers_top_class_on_unlabeled_rows():
    rng = np.random.default_rng(0)
    teacher = (rng.normal(size=(6, 5)) * 3).astype("float32")
    student = rng.normal(size=(6, 5)).astype("float32")
    top = teacher.argmax(axis=1)
    labels = (top + 1) % 5  # every label differs from the teacher's top class
    labeled = np.array([1, 0, 1, 0, 0, 1], "float32")
    placeholders = np.where(labeled > 0, labels, 0)
    loss = kd.losses.DecoupledKD(temperature=2.0)
    mixed = np.asarray(loss.call(teacher, student, placeholders, labeled))
    with_labels = np.asarray(loss.call(teacher, student, labels))
    teacher_target = np.asarray(loss.call(teacher, student))
    rows = labeled > 0
    np.testing.assert_allclose(mixed[rows], with_labels[rows], rtol=1e-6)
    np.testing.assert_allclose(mixed[~rows], teacher_target[~rows], rtol=1e-6)
    # The same through the protocol the Distiller calls.
    outputs = kd.losses.Outputs
    terms = loss.terms(outputs(teacher), outputs(student), placeholders, labeled)
    np.testing.assert_allclose(np.asarray(terms["dkd"]), mixed, rtol=1e-6)


def test_a_recompile_drops_the_previous_terms_and_adapters():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(32, 8, 8, 1)).astype("float32"), rng.integers(0, 5, 32)
    distiller = kd.Distiller(small("teacher", 8), small("student", 4))
    hint = kd.losses.Hint(pairs=[("teacher_feature", "student_feature")], weight=0.1)
    distiller.compile(optimizer="adam", distillation_loss_fn=["soft_target_kl", hint])
    first = distiller.fit(x, y, epochs=1, verbose=0).history
    assert "hint" in first and distiller.adapters
    adapter_weights = {id(w) for adapter in distiller.adapters for w in adapter.weights}
    distiller.compile(optimizer="adam", distillation_loss_fn="soft_target_kl")
    second = distiller.fit(x, y, epochs=1, verbose=0).history
    assert "hint" not in second and "soft_target_kl" not in second
    assert not distiller.adapters
    assert not adapter_weights & {id(w) for w in distiller.weights}, "the old adapter is still tracked (and saved)"
    assert len(distiller.trainable_weights) == len(distiller.student.trainable_weights)


def test_transfer_batches_score_the_metrics_on_labeled_rows_only():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(16, 8, 8, 1)).astype("float32")
    distiller = kd.Distiller(small("teacher", 8), small("student", 4))
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), metrics=["accuracy"])
    predictions = distiller.student.predict(x, verbose=0).argmax(axis=1)
    labeled = np.zeros(16, "float32")
    labeled[:6] = 1
    # Labeled rows: 3 right, 3 wrong; unlabeled rows' placeholders all "right".
    labels = predictions.copy()
    labels[3:6] = (predictions[3:6] + 1) % 5
    logs = distiller.test_on_batch(x, {"labels": labels, "labeled": labeled}, return_dict=True)
    assert logs["accuracy"] == pytest.approx(0.5)
