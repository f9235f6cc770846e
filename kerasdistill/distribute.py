"""Choosing a `tf.distribute` strategy and a precision policy by name.

The Distiller needs nothing of its own to scale out: build the teacher, the
student and the Distiller under `strategy.scope()` and call `fit`. These
helpers let the command line and config files pick the strategy and the
precision policy by name.
"""

import json
import os

import tensorflow as tf

from kerasdistill.backend import keras

STRATEGIES = ("none", "mirrored", "multi_worker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


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
