"""What every distillation loss shares, and the tensors they are given."""

import tensorflow as tf

from kerasdistill.backend import keras
from kerasdistill.losses.registry import check_weight


class DistillationLoss(keras.losses.Loss):
    """Base class of the losses called as `loss(teacher, student)`.

    The teacher's output takes the place of `y_true`. Subclasses implement
    `call(teacher, student)` returning one value per sample; Keras'
    `Loss.__call__` applies sample weights and the reduction, and the
    `Distiller` averages the values over the global batch itself.

    Class attributes say what a loss needs from the `Distiller`:
    `uses_labels` (the ground truth is passed to `compute`) and `pairs` (the
    intermediate layers it compares; None for losses on the outputs). A loss
    whose `temperature` is None takes the Distiller's (see `with_temperature`).

    Args:
        weight: factor of this loss in the sum of distillation losses.
        name: name of the loss; it names the loss in the training logs.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.
    """

    temperature = None
    uses_labels = False
    pairs = None

    def __init__(self, weight=1.0, name=None, reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.weight = check_weight(weight)

    def compute(self, teacher, student, labels=None):
        """Per-sample loss values; `labels` reach only losses with `uses_labels`."""
        return self.call(teacher, student)

    def with_temperature(self, temperature):
        """Returns this loss with `temperature` filled in where it was None.

        A temperature set on the loss itself is kept: it was chosen on purpose.
        """
        if "temperature" not in self.get_config() or self.temperature is not None:
            return self
        config = dict(self.get_config(), temperature=temperature)
        return type(self).from_config(config)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "weight": self.weight}


def is_one_hot(labels, predictions):
    """True when `labels` are one-hot rows (or soft labels) of `predictions`' width."""
    labels, predictions = tf.convert_to_tensor(labels), tf.convert_to_tensor(predictions)
    return (
        labels.shape.rank == predictions.shape.rank
        and labels.shape[-1] is not None
        and labels.shape[-1] == predictions.shape[-1]
        and labels.shape[-1] != 1
    )


def label_indices(labels, predictions):
    """Class indices (int32, one per sample) from sparse labels or one-hot rows."""
    labels = tf.convert_to_tensor(labels)
    if is_one_hot(labels, predictions):
        return tf.argmax(labels, axis=-1, output_type=tf.int32)
    return tf.reshape(tf.cast(labels, tf.int32), [-1])


def logits_from(outputs, kind):
    """Returns logits from a model's outputs of the given kind.

    Probabilities become log-probabilities: softmax(log(p) / T) is p softened
    by T, exactly what softening the original logits by T would give.
    """
    outputs = tf.cast(outputs, tf.float32)
    if kind == "logits":
        return outputs
    return tf.math.log(tf.clip_by_value(outputs, 1e-12, 1.0))
