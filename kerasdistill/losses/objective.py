"""The training objective: the label loss and the distillation terms mixed by `alpha`, per sample."""

from keras import ops


def mix_losses(terms, student_values, alpha, sample_weight=None, labeled=None):
    """The batch's losses from per-sample values.

    Labeled samples get `alpha * label loss + (1 - alpha) * distillation`,
    unlabeled ones (`labeled` 0, the transfer set) the distillation alone.
    Means are taken over the batch the way Keras' `"sum_over_batch_size"`
    does (weighted sum / number of samples).

    Args:
        terms: `{name: per-sample values}` of the distillation losses.
        student_values: per-sample label loss, or None for a batch without labels.
        alpha: the weight of the label loss, in [0, 1].
        sample_weight: optional per-sample weights.
        labeled: optional per-sample mask (1 labeled, 0 not); None: all labeled.

    Returns:
        A dict: `"loss"`, `"distillation_loss"`, `"student_loss"` (with
        labels; the mean over the labeled samples when `labeled` is given),
        and one entry per term when there are several.

    Example:

    ```python
    mix_losses({"soft_target_kl": kd_values}, ce_values, alpha=0.1)["loss"]
    ```
    """
    distillation = sum(terms.values())
    weights = ops.ones_like(distillation)
    if sample_weight is not None:
        weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))

    def mean(values):
        return ops.sum(values * weights) / ops.cast(ops.shape(values)[0], "float32")

    result = {"distillation_loss": mean(distillation)}
    if len(terms) > 1:
        result.update({name: mean(values) for name, values in terms.items()})
    if student_values is None:
        result["loss"] = result["distillation_loss"]
        return result
    mask = ops.ones_like(distillation) if labeled is None else ops.reshape(ops.cast(labeled, "float32"), (-1,))
    result["loss"] = mean(alpha * mask * student_values + (1.0 - alpha * mask) * distillation)
    if labeled is None:
        result["student_loss"] = mean(student_values)
    else:
        result["student_loss"] = ops.divide_no_nan(ops.sum(weights * mask * student_values), ops.sum(weights * mask))
    return result
