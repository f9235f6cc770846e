"""Small built-in models: teachers and students for images of modest size.

They take raw pixels in [0, 255] (a `Rescaling` layer comes first), output
logits, and use only layers that TFLite (and tf_keras, for quantization-aware
training) support.
"""

from kerasdistill.backend import keras


def convnet(input_shape, num_classes, filters=(32, 64), dense_units=128, batch_norm=True, dropout=0.25, name="convnet"):
    """A VGG-style CNN: blocks of 3×3 convolution (+ BatchNorm) + ReLU + 2×2 pooling.

    Args:
        input_shape: image shape, e.g. `(28, 28, 1)`.
        num_classes: number of output logits.
        filters: filters of each convolution block.
        dense_units: width of the hidden dense layer (0 for none).
        batch_norm: whether each convolution is followed by BatchNormalization.
        dropout: dropout rate before the output layer.
        name: model name.

    Returns:
        A functional `keras.Model` that outputs logits.

    Example:

    ```python
    teacher = convnet((28, 28, 1), 10)
    student = convnet((28, 28, 1), 10, filters=(8, 16), dense_units=32)
    ```
    """
    if not filters:
        raise ValueError("filters must name at least one convolution block, e.g. (32, 64).")
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    for i, width in enumerate(filters):
        x = keras.layers.Conv2D(width, 3, padding="same", use_bias=not batch_norm, name=f"conv{i + 1}")(x)
        if batch_norm:
            # Momentum 0.9, not Keras' 0.99: with a few hundred steps the moving
            # statistics must converge, or inference-mode accuracy lags far
            # behind training accuracy (and a teacher's soft targets suffer).
            x = keras.layers.BatchNormalization(momentum=0.9, name=f"bn{i + 1}")(x)
        x = keras.layers.ReLU(name=f"relu{i + 1}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i + 1}")(x)
    x = keras.layers.Flatten()(x)
    if dense_units:
        x = keras.layers.Dense(dense_units, activation="relu", name="hidden")(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def mlp(input_shape, num_classes, hidden=(64,), dropout=0.0, name="mlp"):
    """A multilayer perceptron on flattened inputs.

    Args:
        input_shape: input shape, e.g. `(28, 28, 1)`.
        num_classes: number of output logits.
        hidden: widths of the hidden ReLU layers.
        dropout: dropout rate before the output layer.
        name: model name.

    Returns:
        A functional `keras.Model` that outputs logits.

    Example:

    ```python
    student = mlp((28, 28, 1), 10, hidden=(32,))
    ```
    """
    inputs = keras.Input(shape=input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    for i, width in enumerate(hidden):
        x = keras.layers.Dense(width, activation="relu", name=f"hidden{i + 1}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout)(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


BUILTIN = {
    "convnet_teacher": lambda shape, classes: convnet(shape, classes, name="teacher"),
    "convnet_student": lambda shape, classes: convnet(
        shape, classes, filters=(8, 16), dense_units=32, dropout=0.0, name="student"
    ),
    "mlp_student": lambda shape, classes: mlp(shape, classes, hidden=(32,), name="student"),
}


def build(name, input_shape, num_classes):
    """Builds a model of `BUILTIN` by name (for configs and the CLI)."""
    if name not in BUILTIN:
        raise ValueError(f"Unknown built-in model '{name}'. Known models: {', '.join(sorted(BUILTIN))}.")
    return BUILTIN[name](tuple(input_shape), int(num_classes))
