"""The step matrix: the Distiller's compiled training step gives the same losses on every Keras backend.

One script runs on TensorFlow, JAX and PyTorch (each in its own process:
Keras picks its backend at import), compiled as `fit` compiles it (no
`run_eagerly`). The models get the same numpy weights on every backend, so
the first 10 step losses of every deterministic case must agree with
TensorFlow's. Random cases (augmentation, Dropout) cannot agree across
random streams; there, two steps on the same batch with a learning rate of
0 must draw differently (a frozen draw gives the same loss twice).
"""

import textwrap

import numpy as np
import pytest

from test_backends import installed, parse, run

STEP_MATRIX = textwrap.dedent(
    """
    import json
    import numpy as np
    import keras
    import kerasdistill as kd

    CLASSES, BATCH, STEPS = 10, 16, 10
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 1, size=(STEPS, BATCH, 8, 8, 1)).astype("float32")
    ys = rng.integers(0, CLASSES, size=(STEPS, BATCH))
    masks = (rng.uniform(size=(STEPS, BATCH)) < 0.4).astype("float32")
    cached = (rng.normal(size=(STEPS, BATCH, 1, CLASSES)) * 2).astype("float32")

    class Scale(keras.layers.Layer):
        # A deterministic augmentation: its result is the same on every backend.
        def call(self, inputs, training=None):
            return inputs * 0.9 + 0.05

    def net(prefix, filters, extra=()):
        inputs = keras.Input((8, 8, 1))
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{prefix}_conv")(inputs)
        h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name=f"{prefix}_feature")(h)
        for layer in extra:
            h = layer(h)
        h = keras.layers.Flatten()(h)
        return keras.Model(inputs, keras.layers.Dense(CLASSES, name=f"{prefix}_logits")(h))

    def set_weights(model, seed):
        # The same starting point on every backend (their initializers draw differently).
        weights_rng = np.random.default_rng(seed)
        model.set_weights([weights_rng.normal(0, 0.3, size=w.shape).astype("float32") for w in model.get_weights()])

    def distiller(student_extra=(), augmentation=None, loss="soft_target_kl", lr=0.05):
        teacher, student = net("t", 8), net("s", 4, student_extra)
        set_weights(teacher, 1)
        set_weights(student, 2)
        model = kd.Distiller(teacher, student, augmentation=augmentation)
        model.compile(optimizer=keras.optimizers.SGD(lr), metrics=["accuracy"], alpha=0.3, temperature=3.0,
                      distillation_loss_fn=loss)
        return model

    def targets(case, step):
        labels = ys[step]
        if case == "one_hot":
            return np.eye(CLASSES, dtype="float32")[labels]
        if case in ("transfer", "dkd_transfer"):
            placeholders = np.where(masks[step] > 0, labels, 0)
            return {"labels": placeholders, "labeled": masks[step]}
        if case == "cached":
            return {"labels": labels, "teacher_logits": cached[step]}
        return labels

    def steps(model, case, same_batch=False):
        losses, accuracies = [], []
        for step in range(STEPS):
            index = 0 if same_batch else step
            logs = model.train_on_batch(xs[index], targets(case, index), return_dict=True)
            losses.append(float(logs["loss"]))
            accuracies.append(float(logs.get("accuracy", -1.0)))
        return {"losses": losses, "accuracy": accuracies}

    hint = kd.losses.Hint(pairs=[("t_feature", "s_feature")], weight=0.5)
    deterministic = {
        "plain": (distiller(), "plain"),
        "one_hot": (distiller(), "one_hot"),
        "transfer": (distiller(), "transfer"),
        "cached": (distiller(), "cached"),
        "augmented": (distiller(augmentation=Scale()), "plain"),
        "dkd_transfer": (distiller(loss="dkd"), "dkd_transfer"),
        "hints": (distiller(loss=["soft_target_kl", hint]), "plain"),
        "add_loss": (distiller(student_extra=[keras.layers.ActivityRegularization(l2=0.05)]), "plain"),
    }
    results = {name: steps(model, case) for name, (model, case) in deterministic.items()}
    # Random draws: the same batch, nothing learned (lr 0): each step's loss differs only by its draw.
    random_cases = {
        "augmentation_draws": distiller(augmentation=keras.layers.RandomTranslation(0.3, 0.3), lr=0.0),
        "dropout_draws": distiller(student_extra=[keras.layers.Dropout(0.5)], lr=0.0),
    }
    for name, model in random_cases.items():
        results[name] = steps(model, "plain", same_batch=True)
    print("MATRIX", json.dumps({"backend": keras.backend.backend(), "results": results}))
    """
)

DETERMINISTIC = ["plain", "one_hot", "transfer", "cached", "augmented", "dkd_transfer", "hints", "add_loss"]


@pytest.fixture(scope="module")
def matrix_on_tensorflow():
    return parse(run(STEP_MATRIX, "tensorflow"), "MATRIX")


def check_random_draws(results):
    for name in ("augmentation_draws", "dropout_draws"):
        losses = np.array(results[name]["losses"])
        assert np.all(np.isfinite(losses)), (name, losses)
        # Ten draws of a 0.5 Dropout mask or a translation: at least 8 distinct losses.
        assert len(np.unique(np.round(losses, 6))) >= 8, f"{name}: the same random draw repeats: {losses}"


def test_tensorflow_steps_are_sound(matrix_on_tensorflow):
    results = matrix_on_tensorflow["results"]
    check_random_draws(results)
    # The terms that only some cases add make their losses differ from the plain case's.
    plain = np.array(results["plain"]["losses"])
    for name in ("hints", "add_loss", "augmented"):
        assert not np.allclose(results[name]["losses"], plain), name
    # One-hot rows and class indices are the same labels.
    np.testing.assert_allclose(results["one_hot"]["losses"], plain, rtol=1e-5)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_the_compiled_step_agrees_with_tensorflow(backend, matrix_on_tensorflow):
    if not installed(backend):
        pytest.skip(f"the {backend} package is not installed here (pip install '.[test]' brings it)")
    report = parse(run(STEP_MATRIX, backend), "MATRIX")
    assert report["backend"] == backend
    reference = matrix_on_tensorflow["results"]
    for name in DETERMINISTIC:
        np.testing.assert_allclose(
            report["results"][name]["losses"], reference[name]["losses"], rtol=1e-4, atol=1e-5, err_msg=name
        )
        np.testing.assert_allclose(
            report["results"][name]["accuracy"], reference[name]["accuracy"], atol=1e-5, err_msg=name
        )
    check_random_draws(report["results"])
