"""The student's loss on the ground-truth labels, and the registry of label losses.

Label losses live apart from the distillation losses: a name that compares
the student with the labels is refused where a distillation loss is asked
for, and the reverse.
"""

from keras import ops

from kerasdistill.backend import keras, register_serializable
from kerasdistill.batch import is_one_hot
from kerasdistill.losses.base import per_sample
from kerasdistill.losses.registry import LABEL_LOSSES, names


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
        y_pred = ops.cast(y_pred, "float32")
        if len(y_true.shape) == len(y_pred.shape) and is_one_hot(y_true.shape, y_pred.shape[-1]):
            return ops.categorical_crossentropy(ops.cast(y_true, "float32"), y_pred, from_logits=self.from_logits)
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        return ops.sparse_categorical_crossentropy(ops.cast(y_true, "int32"), y_pred, from_logits=self.from_logits)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction, "from_logits": self.from_logits}


# Label losses by name; each is built with the student's `from_logits`.
LABEL_LOSSES.update({
    "crossentropy": CrossEntropy,
    "sparse_categorical_crossentropy": lambda from_logits: keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
    "categorical_crossentropy": lambda from_logits: keras.losses.CategoricalCrossentropy(from_logits=from_logits),
})


def get_label_loss(identifier, output_kind):
    """The student's loss on the labels, fitted to what the student outputs.

    Args:
        identifier: None (`CrossEntropy`, sparse or one-hot labels), a name of
            `LABEL_LOSSES` (built with the student's `from_logits`), another
            Keras loss name, a `keras.losses.Loss` or a callable
            `(y_true, y_pred)`.
        output_kind: `"logits"` or `"probabilities"`, what the student outputs.

    Returns:
        A callable loss.

    Raises:
        ValueError: for a distillation loss's name, or a loss whose
            `from_logits` contradicts the student's outputs.
    """
    from_logits = output_kind == "logits"
    if identifier is None:
        return CrossEntropy(from_logits=from_logits)
    if isinstance(identifier, str):
        key = identifier.lower()
        if key in LABEL_LOSSES:
            return LABEL_LOSSES[key](from_logits=from_logits)
        if key in names():
            raise ValueError(
                f"'{identifier}' is a distillation loss (teacher vs student); pass it as distillation_loss_fn=. "
                "student_loss_fn compares the student with the labels, e.g. 'crossentropy'."
            )
        return keras.losses.get(identifier)
    if not callable(identifier):
        raise TypeError(
            "student_loss_fn must be a Keras loss, a loss name or a callable(y_true, y_pred); got "
            f"{type(identifier).__name__}."
        )
    declared = identifier.get_config().get("from_logits") if hasattr(identifier, "get_config") else None
    if declared is not None and bool(declared) != from_logits:
        raise ValueError(
            f"student_loss_fn has from_logits={declared}, but the student outputs {output_kind}. "
            f"Pass from_logits={from_logits}."
        )
    return identifier


def per_sample_label_loss(loss_fn, y_true, y_pred):
    """A label loss's values, one per sample in float32: a Keras `Loss` without its reduction."""
    y_true, y_pred = ops.convert_to_tensor(y_true), ops.cast(y_pred, "float32")
    values = loss_fn.call(y_true, y_pred) if isinstance(loss_fn, keras.losses.Loss) else loss_fn(y_true, y_pred)
    values = per_sample(values)
    if len(values.shape) == 0:
        return ops.ones_like(y_pred[:, 0]) * values
    return values
