"""The Keras the package runs on, resolved once.

kerasdistill follows `tf.keras`: Keras 3 by default, tf_keras (Keras 2) when
`TF_USE_LEGACY_KERAS=1` (tensorflow-model-optimization needs the latter).
`tf.keras` itself exposes only part of Keras 3's API, so the full module
behind it is imported instead. Every module imports `keras` from here so that
one switch decides for the whole package.
"""

import tensorflow as tf

import keras as _keras3

if tf.keras.Model is _keras3.Model:
    keras = _keras3
    KERAS_3 = True
    if keras.backend.backend() != "tensorflow":
        raise ImportError(
            "kerasdistill needs the TensorFlow backend of Keras, but Keras is "
            f"configured for '{keras.backend.backend()}'. Set the environment "
            "variable KERAS_BACKEND=tensorflow before importing keras."
        )
else:
    import tf_keras as keras

    KERAS_3 = False


def register_serializable(cls):
    """Registers `cls` with Keras' serialization under the package name."""
    return keras.saving.register_keras_serializable(package="kerasdistill")(cls)
