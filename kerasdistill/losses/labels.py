"""The student's loss on the ground-truth labels."""

import tensorflow as tf

from kerasdistill.backend import keras, register_serializable
from kerasdistill.losses.base import is_one_hot


@register_serializable
class CrossEntropy(keras.losses.Loss):
    """Cross-entropy with the ground-truth labels, sparse or one-hot.

    The student's loss on the labels. Whether labels are class indices or
    one-hot rows is read from their shape, so one loss serves both.

    Args:
        from_logits: whether the predictions are logits (True) or
            probabilities (False).
        name: name of the loss.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.

    Returns:
        The loss value (a scalar with the default reduction).

    Example:

    ```python
    loss = CrossEntropy(from_logits=True)
    loss([3, 1], student_logits)                    # sparse labels
    loss(keras.utils.to_categorical([3, 1], 10), student_logits)  # one-hot
    ```
    """

    def __init__(self, from_logits=True, name="crossentropy", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        y_pred = tf.cast(y_pred, tf.float32)
        if is_one_hot(y_true, y_pred):
            return keras.losses.categorical_crossentropy(
                tf.cast(y_true, tf.float32), y_pred, from_logits=self.from_logits
            )
        if y_true.shape.rank == y_pred.shape.rank:
            y_true = tf.squeeze(y_true, axis=-1)
        return keras.losses.sparse_categorical_crossentropy(
            tf.cast(y_true, tf.int32), y_pred, from_logits=self.from_logits
        )

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}
