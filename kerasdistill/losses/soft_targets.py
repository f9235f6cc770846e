"""Losses on the teacher's and student's outputs (Hinton soft targets and kin)."""

import tensorflow as tf

from kerasdistill.backend import keras
from kerasdistill.losses.base import DistillationLoss
from kerasdistill.losses.registry import check_temperature, register


def soften(logits, temperature):
    """log-softmax of `logits / temperature`, in float32 whatever the input dtype."""
    return tf.nn.log_softmax(tf.cast(logits, tf.float32) / temperature, axis=-1)


@register("soft_target_kl")
class SoftTargetKL(DistillationLoss):
    """Hinton et al. (2015) soft-target loss.

    `T² · KL(softmax(t / T) || softmax(s / T))`, per sample, then averaged over
    the batch. The T² factor keeps the gradients' magnitude independent of the
    temperature (they shrink as 1/T² otherwise), so `alpha` means the same
    thing at every temperature.

    Args:
        temperature: softening temperature T > 0. None (the default) takes the
            Distiller's temperature, and 1.0 when the loss is used on its own.
        weight: factor of this loss among several distillation losses.
        name: name of the loss.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.

    Returns:
        The loss value (a scalar with the default reduction).

    Example:

    ```python
    loss = SoftTargetKL(temperature=4.0)
    value = loss(teacher_logits, student_logits)  # mean over the batch
    ```
    """

    def __init__(self, temperature=None, weight=1.0, name="soft_target_kl", reduction="sum_over_batch_size"):
        super().__init__(weight=weight, name=name, reduction=reduction)
        self.temperature = check_temperature(temperature, allow_none=True)

    def call(self, y_true, y_pred):
        temperature = self.temperature or 1.0
        teacher_log_probs = soften(y_true, temperature)
        student_log_probs = soften(y_pred, temperature)
        kl = tf.reduce_sum(
            tf.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1
        )
        return kl * (temperature**2)

    def get_config(self):
        return dict(super().get_config(), temperature=self.temperature)


@register("logit_mse")
class LogitMSE(DistillationLoss):
    """Ba & Caruana (2014): mean squared error between the logits.

    Matching logits is the high-temperature limit of soft targets; it needs
    no temperature.

    Args:
        weight: factor of this loss among several distillation losses.
        name: name of the loss.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.

    Returns:
        The loss value (a scalar with the default reduction).

    Example:

    ```python
    value = LogitMSE()(teacher_logits, student_logits)
    ```
    """

    def __init__(self, weight=1.0, name="logit_mse", reduction="sum_over_batch_size"):
        super().__init__(weight=weight, name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        difference = tf.cast(y_pred, tf.float32) - tf.cast(y_true, tf.float32)
        return tf.reduce_mean(tf.square(difference), axis=-1)


@register("softened")
class SoftenedLoss(DistillationLoss):
    """Any Keras loss applied to the teacher's and student's softened probabilities.

    This is what the keras.io distillation example does with
    `keras.losses.KLDivergence()`: both sides go through softmax(logits / T),
    and the value is scaled by T² (Hinton et al. 2015). With the KL
    divergence it equals `SoftTargetKL`.

    Args:
        loss: a Keras loss (object, name or function) taking
            `(teacher_probabilities, student_probabilities)`.
        temperature: softening temperature T > 0; None takes the Distiller's.
        weight: factor of this loss among several distillation losses.
        name: name of the loss.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.

    Returns:
        The loss value (a scalar with the default reduction).

    Example:

    ```python
    loss = SoftenedLoss(keras.losses.KLDivergence(), temperature=4.0)
    ```
    """

    def __init__(
        self, loss="kl_divergence", temperature=None, weight=1.0, name="softened", reduction="sum_over_batch_size"
    ):
        super().__init__(weight=weight, name=name, reduction=reduction)
        self.loss = keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
        if not callable(self.loss):
            raise TypeError(f"SoftenedLoss needs a Keras loss or a callable; got {type(loss).__name__}.")
        self.temperature = check_temperature(temperature, allow_none=True)

    def call(self, y_true, y_pred):
        temperature = self.temperature or 1.0
        teacher = tf.exp(soften(y_true, temperature))
        student = tf.exp(soften(y_pred, temperature))
        if isinstance(self.loss, keras.losses.Loss):
            values = self.loss.call(teacher, student)
        else:
            values = self.loss(teacher, student)
        return tf.cast(values, tf.float32) * (temperature**2)

    def get_config(self):
        return dict(super().get_config(), temperature=self.temperature, loss=keras.losses.serialize(self.loss))
