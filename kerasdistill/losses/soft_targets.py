"""Losses on the teacher's and student's outputs (Hinton soft targets and kin)."""

from keras import ops

from kerasdistill.backend import keras
from kerasdistill.losses.base import DistillationLoss
from kerasdistill.losses.arguments import check_temperature
from kerasdistill.losses.registry import LABEL_LOSSES, get, names, register


def soften(logits, temperature):
    """log-softmax of `logits / temperature`, in float32 whatever the input dtype."""
    return ops.log_softmax(ops.cast(logits, "float32") / temperature, axis=-1)


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
        kl = ops.sum(ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)
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
        difference = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
        return ops.mean(ops.square(difference), axis=-1)


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
        teacher = ops.exp(soften(y_true, temperature))
        student = ops.exp(soften(y_pred, temperature))
        if isinstance(self.loss, keras.losses.Loss):
            values = self.loss.call(teacher, student)
        else:
            values = self.loss(teacher, student)
        return ops.cast(values, "float32") * (temperature**2)

    def get_config(self):
        return dict(super().get_config(), temperature=self.temperature, loss=keras.losses.serialize(self.loss))


def as_distillation_loss(loss, temperature):
    """A `DistillationLoss` from what `Distiller.compile(distillation_loss_fn=...)` accepts.

    Args:
        loss: None (`SoftTargetKL`), a registered name or `{"name", "config"}`
            dict, a `DistillationLoss`, or any other Keras loss (object or
            name) or callable, which is applied to the softened
            probabilities as in the keras.io example (`SoftenedLoss`).
        temperature: the Distiller's temperature, given to a loss that sets
            none of its own.

    Returns:
        A `DistillationLoss` with its temperature filled in.
    """
    if loss is None:
        loss = SoftTargetKL()
    elif isinstance(loss, (str, dict)):
        name = str(loss if isinstance(loss, str) else loss.get("name", "")).lower()
        if name in names() or name in LABEL_LOSSES:  # get() refuses label losses, saying where they go
            loss = get(loss)
        else:
            try:  # a Keras loss by name, applied to softened outputs
                loss = keras.losses.get(loss)
            except (ValueError, TypeError):
                loss = get(loss)  # raises, naming ours and the closest one
    if isinstance(loss, DistillationLoss):
        return loss.with_temperature(temperature)
    if not callable(loss):
        raise TypeError(
            "distillation_loss_fn must be a kerasdistill loss, a registered name "
            f"({', '.join(names())}), a Keras loss or a callable; got {type(loss).__name__}."
        )
    return SoftenedLoss(loss, temperature=temperature)


def as_distillation_losses(distillation_loss_fn, temperature):
    """The list of `DistillationLoss`es from one loss or a list (see `as_distillation_loss`), names unique."""
    given = distillation_loss_fn if isinstance(distillation_loss_fn, (list, tuple)) else [distillation_loss_fn]
    if not given:
        raise ValueError("distillation_loss_fn is an empty list; pass at least one loss, e.g. 'soft_target_kl'.")
    resolved = [as_distillation_loss(loss, temperature) for loss in given]
    names = [loss.name for loss in resolved]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"Two distillation losses are named '{repeated[0]}'; the logs name each loss, so give one of them "
            "another name=."
        )
    return resolved


def combine_teachers(stacked_logits, weights, combine, temperature):
    """One set of logits from several teachers' logits stacked as (batch, teachers, classes).

    Args:
        stacked_logits: the teachers' logits, stacked on axis 1.
        weights: one weight per teacher, summing to 1.
        combine: `"probabilities"`: the result softened at `temperature` is
            the weighted mean of the teachers' softened probabilities;
            `"logits"`: the weighted mean of their logits.
        temperature: the softening temperature (for `"probabilities"`).

    Returns:
        `(batch, classes)` logits; one teacher's are returned unchanged.
    """
    stacked_logits = ops.cast(stacked_logits, "float32")
    if stacked_logits.shape[1] != len(weights):
        raise ValueError(
            f"The cached teacher outputs hold {stacked_logits.shape[1]} teachers but this Distiller "
            f"has {len(weights)}; cache the outputs with the same teachers."
        )
    if len(weights) == 1:
        return stacked_logits[:, 0]
    weights = ops.convert_to_tensor(weights, "float32")[None, :, None]
    if combine == "logits":
        return ops.sum(weights * stacked_logits, axis=1)
    return temperature * ops.logsumexp(soften(stacked_logits, temperature) + ops.log(weights), axis=1)
