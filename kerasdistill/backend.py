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
    "tf",
    "UnsupportedBackendError",
]
