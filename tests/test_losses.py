"""Each loss against a hand computation in numpy."""

import numpy as np
import pytest

from kerasdistill import losses
from kerasdistill.defaults import MAX_TEMPERATURE
from kerasdistill.backend import keras

TEACHER = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]], dtype=np.float32)
STUDENT = np.array([[1.0, 1.5, 0.2], [0.0, 1.0, 1.0]], dtype=np.float32)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def hinton(teacher, student, temperature):
    p, q = softmax(teacher / temperature), softmax(student / temperature)
    return np.mean(np.sum(p * (np.log(p) - np.log(q)), axis=-1)) * temperature**2


@pytest.mark.parametrize("temperature", [1.0, 2.0, 4.0, 10.0])
def test_soft_target_kl_equals_hand_computation_with_t_squared(temperature):
    value = float(losses.SoftTargetKL(temperature=temperature)(TEACHER, STUDENT))
    assert value == pytest.approx(hinton(TEACHER, STUDENT, temperature), rel=1e-5)
    # The T² factor, against an independent oracle: Keras' own KL divergence
    # of the softened probabilities, which has no T² in it.
    plain = float(keras.losses.KLDivergence()(softmax(TEACHER / temperature), softmax(STUDENT / temperature)))
    assert value == pytest.approx(plain * temperature**2, rel=1e-4)


def test_soft_target_kl_is_zero_for_identical_logits_and_positive_otherwise():
    loss = losses.SoftTargetKL(temperature=3.0)
    assert float(loss(TEACHER, TEACHER)) == pytest.approx(0.0, abs=1e-6)
    assert float(loss(TEACHER, STUDENT)) > 0


def test_soft_target_kl_without_temperature_uses_one_on_its_own():
    assert float(losses.SoftTargetKL()(TEACHER, STUDENT)) == pytest.approx(hinton(TEACHER, STUDENT, 1.0), rel=1e-5)


def test_sample_weights_weight_each_sample():
    loss = losses.SoftTargetKL(temperature=2.0)
    per_sample = [hinton(TEACHER[i : i + 1], STUDENT[i : i + 1], 2.0) for i in range(2)]
    weighted = float(loss(TEACHER, STUDENT, sample_weight=np.array([1.0, 0.0])))
    assert weighted == pytest.approx(per_sample[0] / 2, rel=1e-5)


def test_logit_mse_equals_hand_computation():
    expected = np.mean(np.mean((STUDENT - TEACHER) ** 2, axis=-1))
    assert float(losses.LogitMSE()(TEACHER, STUDENT)) == pytest.approx(expected, rel=1e-6)


def test_softened_kl_divergence_equals_soft_target_kl():
    softened = losses.SoftenedLoss(keras.losses.KLDivergence(), temperature=4.0)
    assert float(softened(TEACHER, STUDENT)) == pytest.approx(hinton(TEACHER, STUDENT, 4.0), rel=1e-4)


def test_crossentropy_reads_sparse_and_one_hot_labels():
    loss = losses.CrossEntropy(from_logits=True)
    sparse = float(loss(np.array([0, 2]), STUDENT))
    one_hot = float(loss(np.eye(3, dtype=np.float32)[[0, 2]], STUDENT))
    expected = -np.mean(np.log(softmax(STUDENT)[[0, 1], [0, 2]]))
    assert sparse == pytest.approx(expected, rel=1e-5)
    assert one_hot == pytest.approx(expected, rel=1e-5)


def test_registry_gives_each_loss_by_name_and_config():
    assert isinstance(losses.get("soft_target_kl"), losses.SoftTargetKL)
    assert isinstance(losses.get("LOGIT_MSE"), losses.LogitMSE)
    loss = losses.get({"name": "soft_target_kl", "config": {"temperature": 5}})
    assert loss.temperature == 5.0
    assert {"soft_target_kl", "logit_mse", "softened"} <= set(losses.names())
    assert "crossentropy" not in losses.names()  # a label loss: student_loss_fn


def test_unknown_loss_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Unknown distillation loss 'kd_magic'.*soft_target_kl"):
        losses.get("kd_magic")


@pytest.mark.parametrize("temperature", [0, -1.0, float("nan"), float("inf"), "4", True, 1e4, 1e6])
def test_bad_temperature_is_refused(temperature):
    with pytest.raises(ValueError, match=r"temperature must be a number in \(0, 100\]"):
        losses.SoftTargetKL(temperature=temperature)


def test_numpy_scalars_are_accepted_and_the_largest_temperature_stays_exact():
    assert losses.SoftTargetKL(temperature=np.int64(4)).temperature == 4.0
    assert losses.SoftTargetKL(weight=np.float32(0.5)).weight == 0.5
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(64, 10)) * 5, rng.normal(size=(64, 10)) * 5

    def by_hand(t, s, temperature):
        def log_softmax(z):
            z = z - z.max(-1, keepdims=True)
            return z - np.log(np.exp(z).sum(-1, keepdims=True))

        a, b = log_softmax(t / temperature), log_softmax(s / temperature)
        return float(np.mean(np.sum(np.exp(a) * (a - b), -1)) * temperature**2)

    value = losses.SoftTargetKL(temperature=MAX_TEMPERATURE)(teacher.astype(np.float32), student.astype(np.float32))
    assert float(value) == pytest.approx(by_hand(teacher, student, MAX_TEMPERATURE), rel=1e-4)


@pytest.mark.parametrize(
    "loss",
    [
        losses.SoftTargetKL(temperature=2.5),
        losses.LogitMSE(),
        losses.CrossEntropy(from_logits=False),
        losses.SoftenedLoss("kl_divergence", temperature=3.0),
    ],
)
def test_config_round_trip_gives_the_same_values(loss):
    restored = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    y_true = np.array([0, 2]) if isinstance(loss, losses.CrossEntropy) else TEACHER
    y_pred = softmax(STUDENT) if isinstance(loss, losses.CrossEntropy) else STUDENT
    assert float(restored(y_true, y_pred)) == pytest.approx(float(loss(y_true, y_pred)), rel=1e-6)


def test_with_temperature_fills_only_an_unset_temperature():
    assert losses.SoftTargetKL().with_temperature(4.0).temperature == 4.0
    assert losses.SoftTargetKL(temperature=2.0).with_temperature(4.0).temperature == 2.0
    mse = losses.LogitMSE()
    assert mse.with_temperature(4.0) is mse
