"""Decoupled knowledge distillation (Zhao et al., CVPR 2022)."""

from keras import ops

from kerasdistill.batch import target_classes
from kerasdistill.losses.base import DistillationLoss
from kerasdistill.losses.arguments import check_temperature, check_weight
from kerasdistill.losses.registry import register
from kerasdistill.losses.soft_targets import soften


@register("dkd")
class DecoupledKD(DistillationLoss):
    """Decoupled KD: the Hinton loss split into a target and a non-target term.

    TCKD is the KL divergence between the teacher's and student's binary
    distributions (target class vs all others); NCKD is the KL divergence
    between their distributions over the non-target classes alone. Classic KD
    weighs NCKD by the teacher's (1 - p_target), which suppresses it exactly
    where the teacher is confident; DKD gives each term its own weight.
    Both are computed at temperature T and scaled by T². The target class is
    the label; on a batch without labels it is the teacher's top class.

    Args:
        target_weight: weight of TCKD (the paper's alpha, 1.0).
        non_target_weight: weight of NCKD (the paper's beta; 8.0 on CIFAR-100,
            0.5 to 8 elsewhere).
        temperature: softening temperature T > 0; None takes the Distiller's.
        weight: factor of this loss among several distillation losses.
        name: name of the loss.
        reduction: Keras reduction, `"sum_over_batch_size"` by default.

    Returns:
        The loss value (a scalar with the default reduction).

    Example:

    ```python
    distiller.compile(optimizer="adam", distillation_loss_fn=DecoupledKD(non_target_weight=2.0))
    value = DecoupledKD(temperature=4.0).call(teacher_logits, student_logits, labels)
    ```
    """

    def __init__(
        self,
        target_weight=1.0,
        non_target_weight=8.0,
        temperature=None,
        weight=1.0,
        name="dkd",
        reduction="sum_over_batch_size",
    ):
        super().__init__(weight=weight, name=name, reduction=reduction)
        self.target_weight = check_weight(target_weight, "target_weight")
        self.non_target_weight = check_weight(non_target_weight, "non_target_weight")
        self.temperature = check_temperature(temperature, allow_none=True)

    def terms(self, teacher, student, labels=None, labeled=None):
        return {self.name: self.weight * self.call(teacher.logits, student.logits, labels, labeled)}

    def call(self, y_true, y_pred, labels=None, labeled=None):
        """Per-sample DKD of `y_pred` (student logits) from `y_true` (teacher logits).

        The target class is a sample's label (index or one-hot row) where it
        has one, else the teacher's top class: rows of the transfer set
        (`labeled` 0) carry placeholder labels, which are never used.
        """
        teacher = ops.cast(y_true, "float32")
        student = ops.cast(y_pred, "float32")
        target = target_classes(labels, labeled, teacher)
        temperature = self.temperature or 1.0
        is_target = ops.one_hot(target, student.shape[-1]) > 0.5
        tckd = _binary_kl(soften(teacher, temperature), soften(student, temperature), is_target)
        nckd = _kl(_soften_non_target(teacher, temperature, is_target), _soften_non_target(student, temperature, is_target))
        return (self.target_weight * tckd + self.non_target_weight * nckd) * temperature**2

    def get_config(self):
        return dict(
            super().get_config(),
            target_weight=self.target_weight,
            non_target_weight=self.non_target_weight,
            temperature=self.temperature,
        )


def _log_binary(log_probs, is_target):
    """log [p_target, 1 - p_target] from log-probabilities over all classes."""
    log_target = ops.sum(ops.where(is_target, log_probs, 0.0), axis=-1)
    log_rest = ops.logsumexp(ops.where(is_target, -1e9, log_probs), axis=-1)
    return ops.stack([log_target, log_rest], axis=-1)


def _soften_non_target(logits, temperature, is_target):
    """log-softmax over the non-target classes (the target class gets ~0 mass)."""
    return ops.log_softmax(ops.where(is_target, -1e9, logits / temperature), axis=-1)


def _kl(teacher_log_probs, student_log_probs):
    return ops.sum(ops.exp(teacher_log_probs) * (teacher_log_probs - student_log_probs), axis=-1)


def _binary_kl(teacher_log_probs, student_log_probs, is_target):
    return _kl(_log_binary(teacher_log_probs, is_target), _log_binary(student_log_probs, is_target))
