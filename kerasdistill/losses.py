"""Distillation losses, registered by name.

Every distillation loss here is a `keras.losses.Loss` called as
`loss(teacher_logits, student_logits)`: the teacher's outputs take the place
of `y_true`. Inside a `Distiller` the teacher's and student's outputs are
turned into logits first (probabilities become log-probabilities), so a loss
never has to guess what it was given.

A config file or the command line picks a loss by name through `get`:

```python
from kerasdistill import losses
loss = losses.get("soft_target_kl", temperature=4.0)
losses.names()  # every registered name
```
"""

import math

import tensorflow as tf

from kerasdistill.backend import keras, register_serializable

_REGISTRY = {}


def register(name):
    """Class decorator: makes a loss available to `get(name)` and to Keras'
    serialization (so saved models and configs can name it)."""

    def decorator(cls):
        key = name.lower()
        if key in _REGISTRY:
            raise ValueError(f"A loss named '{name}' is already registered.")
        _REGISTRY[key] = register_serializable(cls)
        cls.registered_name = key
        return cls

    return decorator


def names():
    """Returns the names under which losses are registered."""
    return list(_REGISTRY)


def get(identifier, **kwargs):
    """Returns a loss instance from a name, a config dict or an instance.

    Args:
        identifier: a registered name (`"soft_target_kl"`, `"logit_mse"`,
            ...), a dict `{"name": ..., "config": {...}}` as written in a
            config file, or a loss instance (returned as is).
        **kwargs: constructor arguments, used with a name.

    Returns:
        A `keras.losses.Loss`.

    Example:

    ```python
    loss = get({"name": "soft_target_kl", "config": {"temperature": 4.0}})
    ```
    """
    if isinstance(identifier, keras.losses.Loss):
        if kwargs:
            raise ValueError("Constructor arguments go with a loss name, not an instance.")
        return identifier
    if isinstance(identifier, dict):
        unknown = set(identifier) - {"name", "config"}
        if "name" not in identifier or unknown:
            raise ValueError(
                "A loss given as a dict needs the form {'name': ..., 'config': {...}}; "
                f"got keys {sorted(identifier)}."
            )
        return get(identifier["name"], **dict(identifier.get("config") or {}), **kwargs)
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _REGISTRY:
            raise ValueError(
                f"Unknown distillation loss '{identifier}'. Known losses: "
                f"{', '.join(sorted(_REGISTRY))}."
            )
        try:
            return _REGISTRY[key](**kwargs)
        except TypeError as error:
            raise ValueError(f"Bad arguments for loss '{identifier}': {error}") from None
    raise TypeError(
        "A loss must be a registered name, a {'name', 'config'} dict or a "
        f"keras.losses.Loss instance; got {type(identifier).__name__}."
    )


def check_temperature(temperature, allow_none=False):
    """Returns `temperature` as a float, or raises a ValueError saying what to pass."""
    if temperature is None and allow_none:
        return None
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(
            f"temperature must be a finite number > 0 (typical values 1 to 10); got {temperature!r}."
        )
    return float(temperature)


class DistillationLoss(keras.losses.Loss):
    """Base class of the losses called as `loss(teacher_logits, student_logits)`.

    Subclasses implement `call(teacher_logits, student_logits)` returning one
    value per sample; Keras' `Loss.__call__` applies sample weights and the
    reduction. A subclass whose `temperature` is None takes the `Distiller`'s
    temperature (see `with_temperature`).
    """

    temperature = None

    def with_temperature(self, temperature):
        """Returns this loss with `temperature` filled in where it was None.

        A temperature set on the loss itself is kept: it was chosen on purpose.
        """
        if "temperature" not in self.get_config() or self.temperature is not None:
            return self
        config = dict(self.get_config(), temperature=temperature)
        return type(self).from_config(config)


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

    def __init__(self, temperature=None, name="soft_target_kl", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.temperature = check_temperature(temperature, allow_none=True)

    def call(self, y_true, y_pred):
        temperature = self.temperature or 1.0
        teacher = tf.cast(y_true, tf.float32) / temperature
        student = tf.cast(y_pred, tf.float32) / temperature
        teacher_log_probs = tf.nn.log_softmax(teacher, axis=-1)
        student_log_probs = tf.nn.log_softmax(student, axis=-1)
        kl = tf.reduce_sum(
            tf.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1
        )
        return kl * (temperature**2)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "temperature": self.temperature}


@register("logit_mse")
class LogitMSE(DistillationLoss):
    """Ba & Caruana (2014): mean squared error between the logits.

    Matching logits is the high-temperature limit of soft targets; it needs
    no temperature.

    Args:
        name: name of the loss.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.

    Returns:
        The loss value (a scalar with the default reduction).

    Example:

    ```python
    value = LogitMSE()(teacher_logits, student_logits)
    ```
    """

    def __init__(self, name="logit_mse", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)

    def call(self, y_true, y_pred):
        difference = tf.cast(y_pred, tf.float32) - tf.cast(y_true, tf.float32)
        return tf.reduce_mean(tf.square(difference), axis=-1)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


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
        name: name of the loss.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.

    Returns:
        The loss value (a scalar with the default reduction).

    Example:

    ```python
    loss = SoftenedLoss(keras.losses.KLDivergence(), temperature=4.0)
    ```
    """

    def __init__(self, loss="kl_divergence", temperature=None, name="softened", reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.loss = keras.losses.get(loss) if isinstance(loss, (str, dict)) else loss
        if not callable(self.loss):
            raise TypeError(f"SoftenedLoss needs a Keras loss or a callable; got {type(loss).__name__}.")
        self.temperature = check_temperature(temperature, allow_none=True)

    def call(self, y_true, y_pred):
        temperature = self.temperature or 1.0
        teacher = tf.nn.softmax(tf.cast(y_true, tf.float32) / temperature, axis=-1)
        student = tf.nn.softmax(tf.cast(y_pred, tf.float32) / temperature, axis=-1)
        if isinstance(self.loss, keras.losses.Loss):
            values = self.loss.call(teacher, student)
        else:
            values = self.loss(teacher, student)
        return tf.cast(values, tf.float32) * (temperature**2)

    def get_config(self):
        return {
            "name": self.name,
            "reduction": self.reduction,
            "temperature": self.temperature,
            "loss": keras.losses.serialize(self.loss),
        }


@register("crossentropy")
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


def is_one_hot(labels, predictions):
    """True when `labels` are one-hot rows (or soft labels) of `predictions`' width."""
    return (
        labels.shape.rank == predictions.shape.rank
        and labels.shape[-1] is not None
        and labels.shape[-1] == predictions.shape[-1]
        and labels.shape[-1] != 1
    )


def logits_from(outputs, kind):
    """Returns logits from a model's outputs of the given kind.

    Probabilities become log-probabilities: softmax(log(p) / T) is p softened
    by T, exactly what softening the original logits by T would give.
    """
    outputs = tf.cast(outputs, tf.float32)
    if kind == "logits":
        return outputs
    return tf.math.log(tf.clip_by_value(outputs, 1e-12, 1.0))
