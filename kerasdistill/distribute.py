"""Choosing a `tf.distribute` strategy and a precision policy by name.

The Distiller needs nothing of its own to scale out: build the teacher, the
student and the Distiller under `strategy.scope()` and call `fit`. These
helpers let the command line and config files pick the strategy and the
precision policy by name.
"""

import json
import os

from kerasdistill.backend import backend_name, keras, tf
from kerasdistill.compat import MultiWorkerFit
from kerasdistill.defaults import PRECISIONS, STRATEGIES



def make_strategy(name="none"):
    """Returns the `tf.distribute` strategy called `name`.

    Args:
        name: `"none"` (the default strategy: one device), `"mirrored"`
            (every GPU of this machine, or its CPU), or `"multi_worker"`
            (`MultiWorkerMirroredStrategy`; the cluster is read from the
            `TF_CONFIG` environment variable).

    Returns:
        A `tf.distribute.Strategy`.

    Example:

    ```python
    strategy = make_strategy("mirrored")
    with strategy.scope():
        distiller = Distiller(teacher, student)
        distiller.compile(optimizer="adam")
    ```
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}.")
    if name == "none":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    config = os.environ.get("TF_CONFIG")
    if not config:
        raise ValueError(
            "strategy 'multi_worker' reads the cluster from the TF_CONFIG environment variable, which is "
            'not set. Set it on every worker, e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", '
            '"host2:12345"]}, "task": {"type": "worker", "index": 0}}\', or use strategy "mirrored".'
        )
    try:
        cluster = json.loads(config)["cluster"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(
            f"TF_CONFIG is not JSON with a 'cluster' key: {config!r}. See "
            "https://www.tensorflow.org/guide/distributed_training#setting_up_the_tf_config_environment_variable"
        ) from None
    if not cluster.get("worker") and not cluster.get("chief"):
        raise ValueError(f"TF_CONFIG's cluster lists no workers: {cluster!r}.")
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy=None):
    """Whether this process writes the shared artifacts (checkpoints, models, reports).

    True on a single machine; with several workers, only on the chief (the
    `chief` task, or worker 0 when the cluster has no chief).
    """
    if strategy is None and backend_name() != "tensorflow":
        return True
    strategy = strategy or tf.distribute.get_strategy()
    return bool(strategy.extended.should_checkpoint)


def set_precision(policy="float32"):
    """Sets Keras' global dtype policy and returns its name.

    Models built afterwards compute in half precision where the policy says
    so; the Distiller's losses are computed in float32 whatever the policy,
    and `mixed_float16` gets loss scaling from the optimizer.

    Args:
        policy: `"float32"`, `"mixed_float16"` (GPUs) or `"mixed_bfloat16"`
            (TPUs, recent CPUs and GPUs).

    Returns:
        The policy name.

    Example:

    ```python
    set_precision("mixed_float16")
    student = build_student()  # float16 compute, float32 variables
    ```
    """
    if policy not in PRECISIONS:
        raise ValueError(f"Unknown precision policy {policy!r}; choose one of {', '.join(PRECISIONS)}.")
    keras.mixed_precision.set_global_policy(policy)
    return policy


def multi_worker_logs(logs):
    """A step's logs in the shape Keras 3 can average across workers.

    Keras averages each log with `strategy.reduce("MEAN", value, axis=0)`
    under MultiWorkerMirroredStrategy, which fails on scalars; a leading axis
    of 1 makes that mean the value itself. Other strategies get `logs` as is.
    """
    if backend_name() != "tensorflow" or not isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
        return logs
    return {name: tf.expand_dims(value, 0) for name, value in logs.items()}


class _MultiWorkerFunctional(MultiWorkerFit, keras.Model):
    def train_step(self, data):
        return multi_worker_logs(super().train_step(data))

    def test_step(self, data):
        return multi_worker_logs(super().test_step(data))


def multi_worker_ready(model, strategy=None):
    """`model`, or under MultiWorkerMirroredStrategy a trainable view of it that Keras 3 can fit.

    The view is a functional model over the same layers (same variables):
    compile and fit it, then save `model` itself.

    Example:

    ```python
    with strategy.scope():
        trainable = multi_worker_ready(model)
        trainable.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    trainable.fit(train_ds, epochs=3)
    model.save("model.keras")  # trained
    ```
    """
    if strategy is None and backend_name() != "tensorflow":
        return model
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model
    if not getattr(model, "inputs", None):
        raise ValueError(
            f"Under MultiWorkerMirroredStrategy, '{model.name}' must be a functional or Sequential model "
            "(Keras 3's fit needs a workaround there); rebuild it with keras.Input."
        )
    return _MultiWorkerFunctional(inputs=model.inputs, outputs=model.outputs, name=model.name)
