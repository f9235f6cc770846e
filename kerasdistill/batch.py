"""The Distiller's batch contract: what a training batch holds, and the label rules every room shares.

A batch is `(x, y)` or `(x, y, sample_weight)`. `y` is the labels, or None
(the teacher alone), or a dict with any of these keys:

- `"labels"` (`LABELS`): class indices or one-hot rows. In a batch that
  mixes labeled and unlabeled samples, the rows of unlabeled samples hold a
  placeholder (`placeholder_labels`) that no loss and no metric reads.
- `"labeled"` (`LABELED`): 1 for a labeled sample, 0 for one of the transfer
  set; absent means every sample with labels is labeled.
- `"teacher_logits"` (`TEACHER_LOGITS`): the teachers' outputs as logits,
  `(batch, teachers, classes)`, from `kerasdistill.cache_teacher_outputs`;
  the teachers are then not run.

`kerasdistill.data`, the teacher-output cache, the checks, the Distiller and
the losses all read these names and rules from here.
"""

import numpy as np
from keras import ops

LABELS = "labels"
LABELED = "labeled"
TEACHER_LOGITS = "teacher_logits"
KEYS = (LABELS, LABELED, TEACHER_LOGITS)


def is_one_hot(label_shape, classes=None):
    """Whether labels of `label_shape` are one-hot (or soft) rows rather than class indices.

    The one rule: rows of rank 2 or more whose last axis is as wide as the
    classes. A last axis of 1 is a column of indices, never one class's
    one-hot row.

    Args:
        label_shape: the labels' shape (a tuple; the batch axis may be None).
        classes: the number of classes, or None to accept any width above 1.

    Returns:
        A Python bool.
    """
    label_shape = tuple(label_shape)
    if len(label_shape) < 2 or label_shape[-1] is None or label_shape[-1] == 1:
        return False
    return classes is None or label_shape[-1] == classes


def label_indices(labels, classes=None):
    """Class indices (int32, one per sample) from class indices or one-hot rows, as a backend tensor."""
    labels = ops.convert_to_tensor(labels)
    if is_one_hot(labels.shape, classes):
        return ops.cast(ops.argmax(labels, axis=-1), "int32")
    return ops.reshape(ops.cast(labels, "int32"), (-1,))


def label_indices_numpy(labels, classes=None):
    """`label_indices` for numpy arrays (reports and metrics, outside a step)."""
    labels = np.asarray(labels)
    if is_one_hot(labels.shape, classes):
        return np.argmax(labels, axis=-1)
    return labels.reshape(-1)


def target_classes(labels, labeled, teacher_logits):
    """The class each sample is about: its label where it has one, else the teacher's top class.

    Args:
        labels: the batch's labels, or None (no sample is labeled).
        labeled: the 0/1 labeled mask, or None (every sample with labels is labeled).
        teacher_logits: the teachers' logits, `(batch, classes)`.

    Returns:
        int32 class indices, one per sample.
    """
    teacher_top = ops.cast(ops.argmax(teacher_logits, axis=-1), "int32")
    if labels is None:
        return teacher_top
    indices = label_indices(labels, teacher_logits.shape[-1])
    if labeled is None:
        return indices
    return ops.where(ops.reshape(labeled, (-1,)) > 0.5, indices, teacher_top)


def placeholder_labels(count, labels):
    """Labels for `count` unlabeled samples, shaped and typed like `labels` (never read: their mask is 0)."""
    labels = np.asarray(labels)
    return np.zeros((count,) + labels.shape[1:], labels.dtype)


__all__ = [
    "KEYS",
    "LABELED",
    "LABELS",
    "TEACHER_LOGITS",
    "is_one_hot",
    "label_indices",
    "label_indices_numpy",
    "placeholder_labels",
    "target_classes",
]
