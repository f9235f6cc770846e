"""Losses on intermediate layers: hints (FitNets) and attention transfer.

These losses name pairs of layers, `(teacher_layer, student_layer)`. The
`Distiller` taps those layers' outputs (the user's models are not changed);
`terms` calls the loss once per pair as `loss(teacher_feature, student_feature)`.
"""

import numpy as np
from keras import ops

from kerasdistill.losses.base import DistillationLoss
from kerasdistill.losses.registry import register


def check_pairs(pairs, loss_name, allow_none=False):
    """Returns `pairs` as a tuple of `(teacher_layer, student_layer)` name tuples."""
    if pairs is None and allow_none:
        return None
    example = "pairs=[('teacher_conv_3', 'student_conv_2')]"
    if isinstance(pairs, (list, tuple)) and len(pairs) == 2 and all(isinstance(p, str) for p in pairs):
        pairs = [pairs]
    if not isinstance(pairs, (list, tuple)) or not pairs:
        raise ValueError(
            f"The '{loss_name}' loss needs a non-empty list of (teacher_layer, student_layer) "
            f"name pairs, e.g. {example}; got {pairs!r}."
        )
    checked = []
    for pair in pairs:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(p, str) and p for p in pair)):
            raise ValueError(
                f"Each pair of the '{loss_name}' loss is (teacher_layer_name, student_layer_name), "
                f"e.g. {example}; got {pair!r}."
            )
        checked.append((pair[0], pair[1]))
    return tuple(checked)


class FeatureLoss(DistillationLoss):
    """Base class of the losses on pairs of intermediate layers."""

    def __init__(self, pairs, weight=1.0, name=None, reduction="sum_over_batch_size"):
        super().__init__(weight=weight, name=name, reduction=reduction)
        self.pairs = check_pairs(pairs, name)

    def get_config(self):
        return dict(super().get_config(), pairs=[list(p) for p in self.pairs])


@register("hint")
class Hint(FeatureLoss):
    """FitNets hints (Romero et al. 2015): mean squared error between features.

    The student's feature passes through an adapter owned by the Distiller
    when its shape differs from the teacher's: spatial sizes are matched by
    bilinear resizing, channels by a 1×1 convolution (a dense layer for flat
    features). The adapters train with the student and are not part of it.

    Args:
        pairs: `(teacher_layer, student_layer)` name pairs; the losses of the
            pairs are added.
        weight: factor of this loss among several distillation losses.
        name: name of the loss.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.

    Returns:
        The loss value (a scalar with the default reduction).

    Example:

    ```python
    hint = Hint(pairs=[("conv_2", "conv_b")], weight=1.0)
    distiller.compile(optimizer="adam", distillation_loss_fn=[SoftTargetKL(), hint])
    ```
    """

    uses_adapter = True

    def __init__(self, pairs, weight=1.0, name="hint", reduction="sum_over_batch_size"):
        super().__init__(pairs, weight=weight, name=name, reduction=reduction)

    def student_feature(self, student, pair):
        return student.adapted.get(pair, student.features[pair[1]])

    def call(self, y_true, y_pred):
        difference = ops.cast(y_pred, "float32") - ops.cast(y_true, "float32")
        return ops.mean(ops.square(flatten(difference)), axis=-1)


@register("attention")
class AttentionTransfer(FeatureLoss):
    """Attention transfer (Zagoruyko & Komodakis 2017).

    Each feature map becomes a spatial attention map, the channel mean of
    |F|^p, flattened and L2-normalised; the loss is the mean squared
    difference of the teacher's and student's maps. Channel counts may
    differ; a student map of another spatial size is resized to the
    teacher's. The paper weighs it by 1000 (the default `weight`).

    Args:
        pairs: `(teacher_layer, student_layer)` pairs of 4-D (NHWC) feature maps.
        p: the exponent of the attention map (the paper uses 2).
        weight: factor of this loss among several distillation losses.
        name: name of the loss.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.

    Returns:
        The loss value (a scalar with the default reduction).

    Example:

    ```python
    attention = AttentionTransfer(pairs=[("conv_1", "conv_a"), ("conv_2", "conv_b")])
    ```
    """

    def __init__(self, pairs, p=2.0, weight=1000.0, name="attention", reduction="sum_over_batch_size"):
        super().__init__(pairs, weight=weight, name=name, reduction=reduction)
        if isinstance(p, bool) or not isinstance(p, (int, float)) or p <= 0:
            raise ValueError(f"The attention exponent p must be a number > 0 (the paper uses 2); got {p!r}.")
        self.p = float(p)

    def attention_map(self, feature, size=None):
        """The normalised attention map of an NHWC feature, flattened."""
        feature = ops.cast(feature, "float32")
        if len(feature.shape) != 4:
            raise ValueError(
                f"Attention transfer compares 4-D feature maps (batch, height, width, channels); "
                f"got a feature of shape {feature.shape}. Pair convolutional layers, or use 'hint'."
            )
        attention = ops.mean(ops.power(ops.abs(feature), self.p), axis=-1, keepdims=True)
        if size is not None and tuple(attention.shape[1:3]) != tuple(size):
            attention = ops.image.resize(attention, tuple(size), interpolation="bilinear", data_format="channels_last")
        return l2_normalize(flatten(attention))

    def call(self, y_true, y_pred):
        teacher = self.attention_map(y_true)
        student = self.attention_map(y_pred, size=y_true.shape[1:3])
        return ops.mean(ops.square(teacher - student), axis=-1)

    def get_config(self):
        return dict(super().get_config(), p=self.p)


def flatten(features):
    """(batch, ...) -> (batch, features), for features of known per-sample shape."""
    return ops.reshape(features, (-1, int(np.prod(features.shape[1:]))))


def l2_normalize(x, axis=-1):
    """`x / max(||x||, 1e-6)` along `axis`; a zero vector stays zero, with a finite gradient."""
    # The floor is inside the square root: keras.ops.normalize clips after
    # it, and the gradient of rsqrt at 0 (a sample compared with itself in
    # RKD) is then NaN.
    return x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), 1e-12))
