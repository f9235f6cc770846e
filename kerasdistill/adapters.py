"""Trainable adapters that map a student's feature onto a teacher's shape."""

from keras import ops

from kerasdistill.backend import keras, register_serializable


@register_serializable
class FeatureAdapter(keras.layers.Layer):
    """Resizes and projects a student feature to a teacher feature's shape.

    FitNets' regressor: for feature maps (batch, height, width, channels) a
    bilinear resize when the spatial sizes differ, then a 1×1 convolution
    when the channel counts differ; for flat features (batch, units) a dense
    layer. The `Distiller` creates one per hint pair whose shapes differ; it
    trains with the student and is not part of it.

    Args:
        target_shape: the teacher feature's shape without the batch axis.
        **kwargs: passed to `keras.layers.Layer` (for example `name`).

    Returns:
        A layer mapping `(batch, *student_shape)` to `(batch, *target_shape)`.

    Example:

    ```python
    adapter = FeatureAdapter(target_shape=(7, 7, 64))
    adapter(np.zeros((2, 14, 14, 16), "float32")).shape  # (2, 7, 7, 64)
    ```
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)
        if len(self.target_shape) not in (1, 3):
            raise ValueError(
                "Feature adapters map flat features (units,) or feature maps (height, width, channels); "
                f"got a teacher feature of shape {self.target_shape}. Pair layers of those kinds."
            )
        self.projection = None
        self.resize = False

    def build(self, input_shape):
        input_shape = tuple(input_shape)[1:]
        if len(input_shape) != len(self.target_shape):
            raise ValueError(
                f"A student feature of shape {input_shape} cannot be adapted to a teacher feature of "
                f"shape {self.target_shape}: pair layers of the same kind (both convolutional or both dense)."
            )
        channels = self.target_shape[-1]
        if len(self.target_shape) == 3:
            self.resize = tuple(input_shape[:2]) != self.target_shape[:2]
            if input_shape[-1] != channels:
                self.projection = keras.layers.Conv2D(channels, 1, use_bias=False, name="projection")
        elif input_shape[-1] != channels:
            self.projection = keras.layers.Dense(channels, use_bias=False, name="projection")
        if self.projection is not None:
            resized = (None,) + (self.target_shape[:2] if self.resize else tuple(input_shape[:-1])) + (input_shape[-1],)
            self.projection.build(resized)

    def call(self, inputs):
        outputs = ops.cast(inputs, self.compute_dtype)
        if self.resize:
            resized = ops.image.resize(outputs, tuple(self.target_shape[:2]), interpolation="bilinear", data_format="channels_last")
            outputs = ops.cast(resized, self.compute_dtype)
        if self.projection is not None:
            outputs = self.projection(outputs)
        return outputs

    def compute_output_shape(self, input_shape):
        return (input_shape[0],) + self.target_shape

    def get_config(self):
        return dict(super().get_config(), target_shape=list(self.target_shape))


def needs_adapter(student_shape, teacher_shape):
    """Whether a student feature must be adapted to match a teacher feature."""
    return tuple(student_shape[1:]) != tuple(teacher_shape[1:])
