"""The Keras internals the package uses, all in `kerasdistill.compat`, still exist in the installed Keras."""

import inspect

import numpy as np

from kerasdistill import compat
from kerasdistill.backend import KERAS_3, keras


def test_the_hooks_exist_in_the_installed_keras_and_the_checked_versions_are_named():
    # Checked against Keras 3.10 to 3.15; a newer Keras that moved a hook fails here, naming it.
    assert compat.CHECKED_KERAS == ("3.10", "3.15")
    if not KERAS_3:
        return
    major_minor = tuple(int(part) for part in keras.__version__.split(".")[:2])
    assert (3, 10) <= major_minor, keras.__version__
    assert float(compat.scale_loss_for_distribution(3.0)) == 3.0  # one replica: the loss as it is
    assert hasattr(keras.Model, "_maybe_symbolic_build"), "Keras renamed the symbolic build MultiWorkerFit overrides"
    source = inspect.getsource(keras.src.backend.tensorflow.trainer.TensorFlowTrainer.fit)
    assert "_initial_epoch" in source, "Keras' fit no longer reads _initial_epoch (set_initial_epoch)"
    assert "_distribute_strategy" in inspect.getsource(keras.src.trainers.trainer.Trainer)


def test_the_compiled_metrics_container_is_reached_and_weighted_by_the_mask():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse", metrics=["accuracy"])
    y = np.array([0, 1, 1, 0])
    logits = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], dtype="float32")
    # Rows 0 and 2 are right; the mask keeps rows 0, 1 and 2: accuracy 2/3.
    compat.update_compiled_metrics(model, y, logits, np.array([1.0, 1.0, 1.0, 0.0], dtype="float32"))
    accuracy = {metric.name: metric for metric in model.metrics}["compile_metrics"].result()["accuracy"]
    assert float(accuracy) == np.float32(2 / 3)


def test_set_initial_epoch_makes_fit_start_there():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    compat.set_initial_epoch(model, 2)
    history = model.fit(np.zeros((4, 3)), np.zeros((4, 2)), epochs=4, verbose=0)
    assert history.epoch == [2, 3]
