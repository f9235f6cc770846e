"""The loss protocol: what a distillation loss is given and what it returns.

The `Distiller` runs the teachers and the student once per step and hands
every distillation loss the same two `Outputs` and the labels; a loss takes
what it needs from them (logits, tapped features, labels) and returns its
terms. The Distiller knows nothing of each loss's family.
"""

import collections

from keras import ops

from kerasdistill.backend import keras
from kerasdistill.losses.arguments import check_weight


class Outputs(collections.namedtuple("Outputs", ["logits", "features", "adapted", "raw"])):
    """One side's outputs in a step, as a distillation loss receives them.

    Attributes:
        logits: the class scores as logits, float32 (probabilities have been
            turned into log-probabilities).
        features: `{layer name: output}` of the tapped intermediate layers.
        adapted: the student's `{(teacher_layer, student_layer): feature}`
            passed through the Distiller's trainable adapters, for pairs whose
            shapes differ (empty for a teacher).
        raw: the model's outputs as it gave them (logits or probabilities),
            for the label loss and the metrics; None for combined teachers.
    """

    __slots__ = ()

    def __new__(cls, logits, features=None, adapted=None, raw=None):
        return super().__new__(cls, logits, dict(features or {}), dict(adapted or {}), raw)


class DistillationLoss(keras.losses.Loss):
    """Base class of the losses between a teacher and a student.

    Subclasses implement `call(teacher, student)` on tensors (the teacher's
    output takes the place of `y_true`), returning one value per sample, so
    that `loss(teacher_logits, student_logits)` works like any Keras loss.
    The `Distiller` calls `terms(teacher, student, labels)`, which feeds
    `call` the logits, or each layer pair named in `pairs`; a loss that needs
    more (labels, adapted features) overrides `terms` or `student_feature`.

    A loss whose `temperature` is None takes the Distiller's (see
    `with_temperature`).

    Args:
        weight: factor of this loss in the sum of distillation losses.
        name: name of the loss; it names the loss in the training logs.
        reduction: Keras reduction when the loss is called on its own
            (`"sum_over_batch_size"` by default); the Distiller takes the
            per-sample values of `terms` and averages them itself, with the
            labeled-sample mask and sample weights.
    """

    temperature = None
    # The (teacher_layer, student_layer) pairs a loss compares; None: the outputs.
    pairs = None
    # Whether the Distiller fits a trainable adapter where a pair's shapes differ.
    uses_adapter = False

    def __init__(self, weight=1.0, name=None, reduction="sum_over_batch_size"):
        super().__init__(name=name, reduction=reduction)
        self.weight = check_weight(weight)

    def terms(self, teacher, student, labels=None, labeled=None):
        """The weighted per-sample values of this loss, `{term name: values}`.

        Args:
            teacher: the teachers' `Outputs` (no gradient flows into them).
            student: the student's `Outputs`.
            labels: the batch's labels, or None on unlabeled batches.
            labeled: the batch's 0/1 labeled mask (`kerasdistill.batch`), or
                None when every sample with labels is labeled; the labels
                of rows marked 0 are placeholders, never to be read.

        Returns:
            A dict with one entry per term: the loss's name, or with several
            layer pairs one `"{name}_{teacher_layer}_{student_layer}"` each.
        """
        if self.pairs is None:
            return {self.name: self.weight * per_sample(self.call(teacher.logits, student.logits))}
        names = self.term_names()
        return {
            name: self.weight * per_sample(self.call(teacher.features[pair[0]], self.student_feature(student, pair)))
            for name, pair in zip(names, self.pairs)
        }

    def term_names(self):
        """The names of the terms `terms` returns (they name the training logs)."""
        if self.pairs is None or len(self.pairs) == 1:
            return [self.name]
        return [f"{self.name}_{t}_{s}" for t, s in self.pairs]

    def student_feature(self, student, pair):
        """The student's tensor compared with the teacher's for a layer pair."""
        return student.features[pair[1]]

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


def per_sample(values):
    """A loss's values as one float32 value per sample (extra axes averaged)."""
    values = ops.cast(values, "float32")
    if len(values.shape) > 1:
        values = ops.mean(values, axis=tuple(range(1, len(values.shape))))
    return values


def logits_from(outputs, kind):
    """Returns logits from a model's outputs of the given kind.

    Probabilities become log-probabilities: softmax(log(p) / T) is p softened
    by T, exactly what softening the original logits by T would give.
    """
    outputs = ops.cast(outputs, "float32")
    if kind == "logits":
        return outputs
    return ops.log(ops.clip(outputs, 1e-12, 1.0))
