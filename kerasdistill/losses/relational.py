"""Relational knowledge distillation (Park et al., CVPR 2019)."""

from keras import ops

from kerasdistill.losses.base import DistillationLoss
from kerasdistill.losses.features import check_pairs, flatten, l2_normalize
from kerasdistill.losses.arguments import check_weight
from kerasdistill.losses.registry import register


@register("rkd")
class RelationalKD(DistillationLoss):
    """RKD: the student copies the distances and angles between samples.

    Distance term: pairwise Euclidean distances within the batch, each
    divided by its mean, compared with the Huber (smooth L1) loss. Angle term:
    the cosine of the angle at every triple of samples, compared likewise.
    Embeddings of different widths are fine, since only relations are
    compared. Needs batches of at least 3 samples.

    Args:
        pairs: `(teacher_layer, student_layer)` pairs of embedding layers
            (features are flattened per sample); None compares the models'
            outputs (logits).
        distance_weight: weight of the distance term (the paper's 25).
        angle_weight: weight of the angle term (the paper's 50).
        weight: factor of this loss among several distillation losses.
        name: name of the loss.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.

    Returns:
        The loss value (a scalar with the default reduction).

    Example:

    ```python
    rkd = RelationalKD(pairs=[("teacher_embedding", "student_embedding")])
    ```
    """

    def __init__(
        self,
        pairs=None,
        distance_weight=25.0,
        angle_weight=50.0,
        weight=1.0,
        name="rkd",
        reduction="sum_over_batch_size",
    ):
        super().__init__(weight=weight, name=name, reduction=reduction)
        self.pairs = check_pairs(pairs, name, allow_none=True)
        self.distance_weight = check_weight(distance_weight, "distance_weight")
        self.angle_weight = check_weight(angle_weight, "angle_weight")

    def call(self, y_true, y_pred):
        teacher = flatten(ops.cast(y_true, "float32"))
        student = flatten(ops.cast(y_pred, "float32"))
        distance = ops.mean(_smooth_l1(_normalized_distances(student) - _normalized_distances(teacher)), axis=-1)
        angle = ops.mean(_smooth_l1(_angles(student) - _angles(teacher)), axis=(1, 2))
        return self.distance_weight * distance + self.angle_weight * angle

    def get_config(self):
        return dict(
            super().get_config(),
            pairs=None if self.pairs is None else [list(p) for p in self.pairs],
            distance_weight=self.distance_weight,
            angle_weight=self.angle_weight,
        )


def _normalized_distances(embeddings):
    # Differences, not |a|^2 + |b|^2 - 2ab: that form leaves ~1e-7 instead of
    # 0 on the diagonal on some CPUs, which then entered the mean.
    squared_distances = ops.sum(ops.square(embeddings[:, None, :] - embeddings[None, :, :]), axis=-1)
    off_diagonal = ops.logical_not(ops.cast(ops.eye(ops.shape(embeddings)[0]), "bool"))
    # sqrt has an infinite gradient at 0: the diagonal (and any zero distance)
    # is kept out of it.
    positive = ops.logical_and(off_diagonal, squared_distances > 0.0)
    distances = ops.where(positive, ops.sqrt(ops.where(positive, squared_distances, 1.0)), 0.0)
    mean = ops.sum(distances) / ops.maximum(ops.sum(ops.cast(positive, "float32")), 1.0)
    return distances / ops.maximum(mean, 1e-12)


def _angles(embeddings):
    """cos of the angle at i between j and k, for every (i, j, k): shape (B, B, B)."""
    differences = l2_normalize(embeddings[None, :, :] - embeddings[:, None, :])
    return ops.einsum("ijd,ikd->ijk", differences, differences)


def _smooth_l1(x):
    absolute = ops.abs(x)
    return ops.where(absolute < 1.0, 0.5 * ops.square(x), absolute - 0.5)
