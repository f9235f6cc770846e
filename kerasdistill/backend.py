"""The Keras the package runs on, resolved once, and TensorFlow imported only where used.

kerasdistill follows `tf.keras`: Keras 3 by default, on whichever backend
Keras is configured for (`KERAS_BACKEND=tensorflow|jax|torch`), and tf_keras
(Keras 2) when `TF_USE_LEGACY_KERAS=1` (tensorflow-model-optimization needs
the latter). Every module imports `keras` from here so that one switch
decides for the whole package.

TensorFlow is imported lazily (`tf` below): the Distiller, the losses and
the data in numpy arrays work where only `keras` and JAX or PyTorch are
installed; the TensorFlow-only features (tf.data pipelines and caches, TFLite
export, tfmot, tf.distribute strategies) import it when first used and, where
it is missing, raise an ImportError naming it.
"""

import importlib
import os
import sys

import keras as _keras3

# The test TensorFlow itself makes to decide what `tf.keras` is.
LEGACY = os.environ.get("TF_USE_LEGACY_KERAS") in ("true", "True", "1")
if LEGACY:
    import tf_keras as keras

    KERAS_3 = False
else:
    keras = _keras3
    KERAS_3 = True

# Keras' own scaling of a loss by 1 / replicas under tf.distribute (what its
# built-in losses do), so that the gradients summed over replicas are those
# of the global batch. It is a no-op with one replica and on other backends.
from keras.src.losses.loss import scale_loss_for_distribution  # noqa: E402


def update_compiled_metrics(model, y, y_pred, mask, sample_weight=None):
    """Updates the metrics given to `model.compile` on the rows `mask` selects.

    As Keras' own `compute_metrics` does, `metrics=` ignore `sample_weight`
    and `weighted_metrics=` use it; here every metric is also weighted by
    the 0/1 `mask` (the labeled rows of a transfer-set batch): a weight of 0
    leaves a row out without changing the batch's shape, which a compiled
    JAX step needs. The metrics' container is reached here, the one place
    that knows its private names in Keras 3 (checked with Keras 3.10 to
    3.15); under tf_keras every metric takes `mask * sample_weight`.
    """
    weighted = mask if sample_weight is None else mask * sample_weight
    if not KERAS_3:
        container = model.compiled_metrics
        if container is not None:
            if not container.built:
                container.build(y_pred, y)
            for metric in container.metrics:
                metric.update_state(y, y_pred, sample_weight=weighted)
        return
    container = model._compile_metrics
    if container is None:
        return
    if not container.built:
        container.build(y, y_pred)
    # One output: the containers' flat lists hold one entry each (a list of metrics, or None).
    for entries, weights in ((container._flat_metrics, mask), (container._flat_weighted_metrics, weighted)):
        for entry in entries:
            if entry:
                entry.update_state(y, y_pred, sample_weight=weights)


def backend_name():
    """The backend the package's Keras runs on: tensorflow, jax or torch."""
    return "tensorflow" if LEGACY else _keras3.backend.backend()


class _LazyModule:
    """A module imported on first attribute access, with an error that names it when missing."""

    def __init__(self, name, needed_for):
        self._name, self._needed_for = name, needed_for

    def __getattr__(self, attribute):
        try:
            module = importlib.import_module(self._name)
        except ImportError as error:
            raise ImportError(
                f"{self._needed_for} needs the '{self._name}' package, which is not installed here: "
                f"pip install {self._name} (kerasdistill's own default install includes it)."
            ) from error
        return getattr(module, attribute)


tf = _LazyModule("tensorflow", "This kerasdistill feature (tf.data pipelines, TFLite export, tf.distribute, tfmot)")


def is_tf_dataset(value):
    """True for a `tf.data.Dataset`; never imports TensorFlow to find out."""
    return sys.modules.get("tensorflow") is not None and isinstance(value, sys.modules["tensorflow"].data.Dataset)


class UnsupportedBackendError(RuntimeError):
    """A TensorFlow-only feature used on another Keras backend (the command line prints it as a plain error)."""


def require_tensorflow_backend(feature):
    """Raises a clear error when `feature` (TensorFlow-only) is used on another Keras backend."""
    if backend_name() != "tensorflow":
        raise UnsupportedBackendError(
            f"{feature} works on Keras' TensorFlow backend only; this process runs Keras on "
            f"'{backend_name()}'. Run it with KERAS_BACKEND=tensorflow (a model saved as .keras loads there)."
        )


def register_serializable(cls):
    """Registers `cls` with Keras' serialization under the package name."""
    return keras.saving.register_keras_serializable(package="kerasdistill")(cls)


__all__ = [
    "KERAS_3",
    "LEGACY",
    "backend_name",
    "is_tf_dataset",
    "keras",
    "register_serializable",
    "require_tensorflow_backend",
    "scale_loss_for_distribution",
    "tf",
    "UnsupportedBackendError",
    "update_compiled_metrics",
]
