"""The core on each Keras backend: the same losses, the same training, and no TensorFlow needed.

Each backend runs in its own process (Keras picks its backend once, at
import). JAX and PyTorch come with the test extra; a backend that is not
installed is skipped, naming it.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

# Every distillation loss, the label loss, several teachers and the mixing
# of terms, on fixed arrays, per sample.
LOSSES = textwrap.dedent(
    """
    import json
    import numpy as np
    from keras import ops
    from kerasdistill import losses
    from kerasdistill.losses.objective import mix_losses
    from kerasdistill.losses.soft_targets import combine_teachers

    rng = np.random.default_rng(0)
    t = (rng.normal(size=(6, 5)) * 2).astype("float32")
    s = rng.normal(size=(6, 5)).astype("float32")
    labels = np.array([0, 3, 1, 1, 2, 4])
    ft = rng.normal(size=(6, 8, 8, 4)).astype("float32")
    fs = rng.normal(size=(6, 4, 4, 3)).astype("float32")
    values = {
        "soft_target_kl": losses.SoftTargetKL(temperature=4.0).call(t, s),
        "logit_mse": losses.LogitMSE().call(t, s),
        "softened_kl": losses.SoftenedLoss("kl_divergence", temperature=3.0).call(t, s),
        "dkd": losses.DecoupledKD(temperature=2.0).call(t, s, labels),
        "dkd_teacher_target": losses.DecoupledKD(temperature=2.0).call(t, s),
        "hint": losses.Hint(pairs=[("a", "b")]).call(ft, ft * 0.5 + 0.1),
        "attention": losses.AttentionTransfer(pairs=[("a", "b")]).call(ft, fs),
        "rkd": losses.RelationalKD().call(t, s),
        "crossentropy": losses.CrossEntropy().call(labels, s),
        "two_teachers": combine_teachers(np.stack([t, s], axis=1), (0.3, 0.7), "probabilities", 4.0),
        "mixed": mix_losses({"a": ops.abs(s[:, 0]), "b": ops.abs(t[:, 1])}, ops.abs(s[:, 2]), 0.3,
                                   labeled=np.array([1, 0, 1, 0, 1, 1], "float32"))["loss"],
    }
    print("LOSSES", json.dumps({k: np.asarray(ops.convert_to_numpy(v), "float64").tolist() for k, v in values.items()}))
    """
)

# A short real distillation on the embedded digits.
TRAINING = textwrap.dedent(
    """
    import json
    import numpy as np
    import keras
    import kerasdistill as kd
    from kerasdistill import data, models

    digits = data.load_digits()
    keras.utils.set_random_seed(0)
    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    teacher.compile(optimizer="adam", loss=kd.losses.CrossEntropy(), metrics=["accuracy"])
    teacher.fit(digits.train.x, digits.train.y, epochs=2, verbose=0)
    before = [w.copy() for w in teacher.get_weights()]
    distiller = kd.Distiller(teacher, models.build("convnet_student", (28, 28, 1), 10))
    distiller.compile(
        optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=4.0,
        distillation_loss_fn=["soft_target_kl", kd.losses.Hint(pairs=[("relu2", "relu2")], weight=0.1)],
    )
    history = distiller.fit(digits.train.x, digits.train.y, epochs=2, verbose=0, validation_data=digits.val)
    result = distiller.evaluate(*digits.test, verbose=0, return_dict=True)
    untouched = all(np.array_equal(a, b) for a, b in zip(before, teacher.get_weights()))
    print("TRAINING", json.dumps({"accuracy": result["accuracy"], "keys": sorted(history.history), "untouched": untouched,
                                  "backend": keras.backend.backend()}))
    """
)


def installed(backend):
    return backend == "tensorflow" or importlib.util.find_spec(backend) is not None


def run(script, backend, **env):
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", **env)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def parse(output, tag):
    return json.loads(output.split(tag, 1)[1].strip().splitlines()[0])


@pytest.fixture(scope="module")
def on_tensorflow():
    output = run(LOSSES + TRAINING, "tensorflow")
    return parse(output, "LOSSES"), parse(output, "TRAINING")


# A whole training per backend (the step matrix checks each step in the default layer): `-m slow`.
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_losses_and_training_agree_with_tensorflow(backend, on_tensorflow):
    if not installed(backend):
        pytest.skip(f"the {backend} package is not installed here (pip install '.[test]' brings it)")
    reference_losses, reference_training = on_tensorflow
    output = run(LOSSES + TRAINING, backend)
    losses, training = parse(output, "LOSSES"), parse(output, "TRAINING")
    assert losses.keys() == reference_losses.keys()
    for name, expected in reference_losses.items():
        np.testing.assert_allclose(losses[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
    assert training["backend"] == backend
    assert training["untouched"], "the teacher's weights changed"
    assert training["keys"] == reference_training["keys"]
    assert training["accuracy"] > 0.9
    # Different kernels and random streams: the same accuracy within noise.
    assert abs(training["accuracy"] - reference_training["accuracy"]) < 0.03, (training, reference_training)


NO_TENSORFLOW = textwrap.dedent(
    """
    import importlib.abc
    import sys

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith(("tensorflow.", "tf_keras")):
                raise ModuleNotFoundError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, NoTensorFlow())
    import numpy as np
    import keras
    import kerasdistill as kd
    from kerasdistill import models

    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(128, 28, 28, 1)).astype("float32"), rng.integers(0, 10, 128)
    distiller = kd.Distiller(models.build("convnet_teacher", (28, 28, 1), 10), models.build("convnet_student", (28, 28, 1), 10))
    distiller.compile(optimizer="adam", metrics=["accuracy"])
    distiller.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert "tensorflow" not in sys.modules
    try:
        import kerasdistill.export
    except ImportError as error:
        print("EXPORT", error)
    """
)


def test_the_core_imports_and_trains_without_tensorflow():
    if not installed("jax"):
        pytest.skip("the jax package is not installed here (pip install '.[test]' brings it)")
    output = run(NO_TENSORFLOW, "jax")
    assert "EXPORT kerasdistill.export" in output and "needs the 'tensorflow' package" in output and "pip install tensorflow" in output


DATA_PARALLEL = textwrap.dedent(
    """
    import json
    import numpy as np
    import keras
    import kerasdistill as kd
    from kerasdistill import data, models

    digits = data.load_digits()
    x, y = digits.train.x[:512], digits.train.y[:512]

    def train(distribution):
        keras.distribution.set_distribution(distribution)
        keras.utils.set_random_seed(0)
        teacher = models.build("convnet_teacher", (28, 28, 1), 10)
        student = models.build("convnet_student", (28, 28, 1), 10)
        start = [w.copy() for w in student.get_weights()]
        distiller = kd.Distiller(teacher, student)
        distiller.compile(optimizer=keras.optimizers.SGD(0.05), metrics=["accuracy"], alpha=0.3, temperature=4.0)
        history = distiller.fit(x, y, epochs=2, batch_size=64, shuffle=False, verbose=0)
        return student.get_weights(), history.history["loss"], start

    one, one_loss, start = train(None)
    devices = keras.distribution.list_devices("cpu")
    two, two_loss, _ = train(keras.distribution.DataParallel(devices=devices))
    print("PARALLEL", json.dumps({
        "devices": len(devices),
        "changed": float(max(np.abs(a - b).max() for a, b in zip(one, start))),
        "max_diff": float(max(np.abs(a - b).max() for a, b in zip(one, two))),
        "losses": [one_loss, two_loss],
    }))
    """
)


# Two devices, like two workers, run in the slow layer.
@pytest.mark.slow
def test_jax_data_parallel_on_two_devices_gives_the_same_student_as_one():
    if not installed("jax"):
        pytest.skip("the jax package is not installed here (pip install '.[test]' brings it)")
    report = parse(run(DATA_PARALLEL, "jax", XLA_FLAGS="--xla_force_host_platform_device_count=2"), "PARALLEL")
    assert report["devices"] == 2
    assert report["changed"] > 1e-3, "the student trained"
    assert report["max_diff"] < 1e-5, report
    for a, b in zip(*report["losses"]):
        assert abs(a - b) < 1e-5 * max(1.0, abs(a))
