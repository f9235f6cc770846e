"""`Distiller`: a `keras.Model` that trains a student from frozen teachers."""

from keras import ops

from kerasdistill import checks, defaults
from kerasdistill.checks import CheckedFit
from kerasdistill.backend import keras, register_serializable
from kerasdistill.compat import MultiWorkerFit, scale_loss_for_distribution, update_compiled_metrics
from kerasdistill.batch import LABELED, LABELS, TEACHER_LOGITS
from kerasdistill.distribute import multi_worker_logs
from kerasdistill.losses.arguments import check_temperature
from kerasdistill.losses.base import Outputs, logits_from
from kerasdistill.losses.labels import get_label_loss, per_sample_label_loss
from kerasdistill.losses.objective import mix_losses
from kerasdistill.losses.soft_targets import as_distillation_losses, combine_teachers
from kerasdistill.steps import TrainStep
from kerasdistill.taps import Taps

TEACHER_COMBINATIONS = ("probabilities", "logits")


@register_serializable
class Distiller(TrainStep, CheckedFit, MultiWorkerFit, keras.Model):
    """Knowledge distillation as a Keras model.

    Drops into `compile` / `fit` / `evaluate` / `predict`, callbacks and
    `tf.distribute` like any Keras model. Only the student (and the adapters
    of hint losses) is trained: teachers run in inference mode
    (`training=False`, BatchNorm statistics untouched), outside the gradient
    tape, and get no gradient and no optimizer state. The model's outputs
    (`call`, `predict`) are the student's.

    The training loss is `alpha * student_loss + (1 - alpha) *
    distillation_loss`, where the student loss compares the student with the
    labels and the distillation loss is the weighted sum of the distillation
    losses given to `compile` (soft targets, DKD, hints, attention, RKD, ...).
    Batches without labels (`x` alone) train on the distillation loss alone.
    Batches made by `kerasdistill.data.transfer_set` mix labeled samples
    (`alpha * student_loss + (1 - alpha) * distillation_loss`) with unlabeled
    ones (distillation loss only) in one batch: the usual way to use a
    large unlabeled transfer set that the teacher scores.
    Batches made by `kerasdistill.cache_teacher_outputs` carry the teachers'
    outputs, and the teachers are not run at all.

    Teachers and students may end in a softmax or give logits; the Distiller
    reads which from the last layer (or from the outputs themselves) and
    turns probabilities into log-probabilities before softening them, so
    probabilities are never treated as logits.

    A step runs the teachers first (no gradient), then the student under the
    gradient tape; `compute_loss` hands every distillation loss the same
    `kerasdistill.losses.Outputs` of both sides (`loss.terms`), and the
    optimizer, loss scaling and compiled metrics are Keras' own.

    Args:
        teacher: a built `keras.Model` with one output of class scores, or a
            list of them (several teachers).
        student: a built `keras.Model` with the same output width.
        teacher_outputs: `"logits"`, `"probabilities"`, or `"auto"` (read from
            the model); a list gives one per teacher. A declared kind that
            contradicts the model's real outputs is refused.
        student_outputs: likewise for the student.
        teacher_weights: with several teachers, their weights (normalised to
            sum to 1); equal weights by default.
        teacher_combine: with several teachers, `"probabilities"` (default)
            averages their softened probabilities at the Distiller's
            temperature; `"logits"` averages their logits.
        augmentation: consistent teaching (Beyer et al. 2022): a list of
            Keras preprocessing layers (or one layer / `keras.Sequential`),
            e.g. `kerasdistill.augment.build(["flip", "translate",
            "mixup"])`, applied in each training step to the batch that the
            teachers *and* the student then see. Not applied in evaluation.
            Label-mixing layers (`MixUp`, `CutMix`) need `alpha=0` (pure
            distillation), since the labels are not mixed with the images.
        **kwargs: passed to `keras.Model` (for example `name`).

    Returns:
        A `keras.Model` whose outputs are the student's.

    Example:

    ```python
    distiller = kerasdistill.Distiller(teacher=teacher, student=student)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        metrics=[keras.metrics.SparseCategoricalAccuracy()],
        student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        distillation_loss_fn=kerasdistill.losses.SoftTargetKL(),
        alpha=0.1,
        temperature=4.0,
    )
    distiller.fit(train_ds, epochs=5, validation_data=val_ds)
    distiller.student.save("student.keras")
    ```
    """

    def __init__(
        self,
        teacher,
        student,
        teacher_outputs="auto",
        student_outputs="auto",
        teacher_weights=None,
        teacher_combine="probabilities",
        augmentation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
        checks.check_model(student, "student")
        checks.check_trainable(student)
        probed = checks.probe(student)
        self.student_output_kind = checks.resolve_output_kind(student, student_outputs, probed, "student")
        self.classes = checks.output_width(student, probed)
        resolved = checks.check_teachers(teachers, teacher_outputs, student, self.classes)
        if teacher_combine not in TEACHER_COMBINATIONS:
            raise ValueError(f"teacher_combine must be one of {TEACHER_COMBINATIONS}; got {teacher_combine!r}.")
        self.teachers = teachers
        self.teacher_output_kinds = tuple(resolved)
        self.teacher_output_kind = resolved[0] if len(resolved) == 1 else list(resolved)
        self.teacher_weights = checks.check_teacher_weights(teacher_weights, len(teachers))
        self.teacher_combine = teacher_combine
        self.student = student
        self.augmentation = checks.check_augmentation(augmentation, student)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.term_trackers = []
        self.adapters = []
        self.student_loss_fn = None
        self.distillation_losses = None
        self.temperature = None
        self._taps = Taps()
        self._compile_args = None
        self.built = True

    @property
    def teacher(self):
        """The teacher (the first one when there are several; all are in `teachers`)."""
        return self.teachers[0]

    @property
    def distillation_loss_fn(self):
        """The distillation loss, or the list of them when there are several."""
        if self.distillation_losses is None or len(self.distillation_losses) > 1:
            return self.distillation_losses
        return self.distillation_losses[0]

    def compile(
        self,
        optimizer=None,
        metrics=None,
        student_loss_fn=None,
        distillation_loss_fn=None,
        alpha=defaults.ALPHA,
        temperature=defaults.TEMPERATURE,
        **kwargs,
    ):
        """Configures the distillation.

        The argument names are those of the keras.io distillation example, so
        code written for it runs unchanged.

        Args:
            optimizer: a Keras optimizer or its name. Required.
            metrics: metrics computed on the student's outputs, as in
                `keras.Model.compile`.
            student_loss_fn: loss between labels and the student's outputs.
                Default: cross-entropy that reads sparse or one-hot labels from
                their shape and logits or probabilities from the student. The
                names `"sparse_categorical_crossentropy"` and
                `"categorical_crossentropy"` get the student's `from_logits`.
            distillation_loss_fn: a `kerasdistill.losses` loss, its registered
                name or `{"name", "config"}` dict, or a list of them whose
                values are added with each loss's `weight` (default
                `SoftTargetKL`). Any other Keras loss (e.g.
                `keras.losses.KLDivergence()`) is applied, as in the keras.io
                example, to the softened probabilities of teacher and
                student, and scaled by T².
            alpha: weight of the student loss, in [0, 1]; the distillation
                loss gets `1 - alpha`.
            temperature: softening temperature T > 0, given to every
                distillation loss that does not set its own, and used to
                combine several teachers.
            **kwargs: passed to `keras.Model.compile` (`jit_compile`,
                `steps_per_execution`, `run_eagerly`, ...).
        """
        if "loss" in kwargs:
            raise ValueError(
                "Distiller.compile takes student_loss_fn= (labels vs student) and "
                "distillation_loss_fn= (teacher vs student) instead of loss=."
            )
        if optimizer is None:
            raise ValueError(
                "Distiller.compile needs an optimizer, e.g. optimizer=keras.optimizers.Adam(1e-3) or 'adam'."
            )
        self.alpha = checks.check_alpha(alpha)
        checks.check_mixing(self.augmentation, self.alpha)
        self.temperature = check_temperature(temperature)
        self.student_loss_fn = get_label_loss(student_loss_fn, self.student_output_kind)
        distillation_losses = as_distillation_losses(distillation_loss_fn, self.temperature)
        self._taps = Taps.build(self.teachers, self.student, distillation_losses)
        self.distillation_losses = distillation_losses
        terms = [name for loss in distillation_losses for name in loss.term_names()]
        # A recompile replaces the previous adapters and term logs: cleared in
        # place, so that Keras stops tracking (training, saving, logging) them.
        self.adapters.clear()
        self.adapters.extend(self._taps.adapters.values())
        self.term_trackers.clear()
        self.term_trackers.extend(keras.metrics.Mean(name=name) for name in terms if len(terms) > 1)
        self._compile_args = dict(
            optimizer=optimizer,
            metrics=metrics,
            student_loss_fn=student_loss_fn,
            distillation_loss_fn=distillation_loss_fn,
            alpha=self.alpha,
            temperature=self.temperature,
            **kwargs,
        )
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    @property
    def trainable_weights(self):
        # Only the student's variables and the adapters': the optimizer is
        # built from this list, so the teachers get neither gradients nor
        # optimizer slots, and the user's teacher is not mutated (its
        # `trainable` flag stays as it was).
        if not self.trainable:
            return []
        return self.student.trainable_weights + [w for a in self.adapters for w in a.trainable_weights]

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def non_trainable_weights(self):
        # Everything else, the teachers' weights included.
        trainable = {id(w) for w in self.trainable_weights}
        return [w for w in self.weights if id(w) not in trainable]

    @property
    def non_trainable_variables(self):
        # The weights above plus the random seeds' states (augmentation,
        # Dropout): on JAX these are the values a stateless step is given and
        # hands back, so every step draws anew.
        trainable = {id(w) for w in self.trainable_weights}
        return [v for v in self.variables if id(v) not in trainable]

    @property
    def metrics(self):
        own = [self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker, *self.term_trackers]
        # Keras' own "loss" tracker is never updated here: drop it so that the
        # logs hold one "loss", ours.
        rest = [m for m in super().metrics if m.name != "loss" and all(m is not o for o in own)]
        return own + rest

    def teacher_logits(self, x):
        """The teachers' combined outputs on `x` as logits, with no gradient."""
        return self.run_teachers(x).logits

    def run_teachers(self, x):
        """The teachers' `Outputs` on `x` (combined logits, tapped features), with no gradient."""
        if self._taps.teacher is not None:
            outputs, features = self._taps.run_teacher(x)
            logits = [logits_from(outputs, self.teacher_output_kinds[0])]
        else:
            features = {}
            logits = [logits_from(m(x, training=False), k) for m, k in zip(self.teachers, self.teacher_output_kinds)]
        combined = self.combine_teachers(ops.stack(logits, axis=1))
        return Outputs(ops.stop_gradient(combined), {k: ops.stop_gradient(v) for k, v in features.items()})

    def combine_teachers(self, stacked_logits):
        """One set of logits from the teachers' logits stacked as (batch, teachers, classes).

        With `teacher_combine="probabilities"` the result softened at the
        Distiller's temperature is the weighted mean of the teachers'
        softened probabilities; with `"logits"` it is the weighted mean of
        their logits. One teacher's logits are returned unchanged.
        """
        if self.teacher_combine == "probabilities" and len(self.teachers) > 1 and self.temperature is None:
            self._require_compiled("teacher_logits")
        return combine_teachers(stacked_logits, self.teacher_weights, self.teacher_combine, self.temperature)

    def run_student(self, x, training=False):
        """The student's `Outputs` on `x`: logits, tapped features, adapted features, raw outputs."""
        raw, features, adapted = self._taps.run_student(self.student, x, training)
        return Outputs(logits_from(raw, self.student_output_kind), features, adapted, raw)

    def compute_losses(self, y, student, teacher, sample_weight=None, labeled=None):
        """The loss terms of one batch, as a dict.

        Args:
            y: the labels, or None for a batch without labels.
            student: the student's `Outputs` (`run_student`), or its raw outputs.
            teacher: the teachers' `Outputs` (`run_teachers`), or their logits.
            sample_weight: optional per-sample weights.
            labeled: optional mask, 1 for a labeled sample and 0 for one of
                the transfer set: labeled samples get `alpha * student_loss +
                (1 - alpha) * distillation` and unlabeled ones the
                distillation loss alone.

        Returns:
            `"loss"` (the total, with the student's regularization losses),
            `"student_loss"` (absent when `y` is None; with `labeled`, the
            mean over the labeled samples), `"distillation_loss"`, and with
            several distillation terms one key per term. Each is averaged
            over this batch as Keras' `"sum_over_batch_size"` does.
        """
        if not isinstance(student, Outputs):
            student = Outputs(logits_from(student, self.student_output_kind), raw=student)
        if not isinstance(teacher, Outputs):
            teacher = Outputs(ops.cast(teacher, "float32"))
        checks.check_same_classes(teacher.logits.shape[-1], student.logits.shape[-1], "teacher")
        terms = {}
        for loss in self.distillation_losses:
            terms.update(loss.terms(teacher, student, y, labeled))
        student_values = None if y is None else per_sample_label_loss(self.student_loss_fn, y, student.raw)
        result = mix_losses(terms, student_values, self.alpha, sample_weight, labeled)
        regularization = self.student.losses + [r for adapter in self.adapters for r in adapter.losses]
        result["loss"] += sum(ops.cast(r, "float32") for r in regularization)
        return result

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The training loss of a batch prepared by a step, scaled for `tf.distribute`; updates the loss logs.

        `y` is the step's targets, `{"labels", "labeled", "teacher"}` (the
        teachers' `Outputs`), and `y_pred` the student's `Outputs`.
        """
        losses = self.compute_losses(y[LABELS], y_pred, y["teacher"], sample_weight, y[LABELED])
        batch = ops.cast(ops.shape(y_pred.logits)[0], "float32")
        for tracker in [self.loss_tracker, self.distillation_loss_tracker, *self.term_trackers]:
            tracker.update_state(losses[tracker.name], sample_weight=batch)
        if "student_loss" in losses:
            labeled = batch if y[LABELED] is None else ops.sum(ops.cast(y[LABELED], "float32"))
            self.student_loss_tracker.update_state(losses["student_loss"], sample_weight=labeled)
        return scale_loss_for_distribution(losses["loss"])

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras' compiled metrics on the labeled samples of a batch.

        `y` is the labels, or a batch's targets (`kerasdistill.batch`):
        with a labeled mask, every compiled metric weighs each sample by it
        (`weighted_metrics` also by `sample_weight`, as in Keras), so the
        transfer set's rows count for nothing and the batch keeps its shape.
        """
        labels, labeled = (y.get(LABELS), y.get(LABELED)) if isinstance(y, dict) else (y, None)
        if labels is None:
            # No labels: only the distillation terms mean something.
            trackers = [self.loss_tracker, self.distillation_loss_tracker, *self.term_trackers]
            return {tracker.name: tracker.result() for tracker in trackers}
        if labeled is None:
            return super().compute_metrics(x, labels, y_pred, sample_weight)
        mask = ops.reshape(ops.cast(labeled, "float32"), (-1,))
        weights = None if sample_weight is None else ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        update_compiled_metrics(self, labels, y_pred, mask, weights)
        return self.get_metrics_result()

    def _step_logs(self, x, y, y_pred, sample_weight):
        """The logs of a step: the loss terms, and the compiled metrics on the labeled samples."""
        return multi_worker_logs(self.compute_metrics(x, y, y_pred.raw, sample_weight))

    def _prepare(self, data, training):
        """`(x, targets, sample_weight)` of a batch: augmented inputs, labels and the teachers' `Outputs`.

        Labels come as `y`, or as a dict of `kerasdistill.batch.KEYS`
        (transfer sets and caches; each key optional).
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y = dict(y) if isinstance(y, dict) else {LABELS: y}
        cached = y.get(TEACHER_LOGITS)
        if cached is not None:
            checks.check_cached_batch(self.distillation_losses, self.augmentation if training else None)
        if training and self.augmentation is not None:
            # Consistent teaching: teachers and student see the same view.
            x = self.augmentation(x, training=True)
        teacher = self.run_teachers(x) if cached is None else Outputs(ops.stop_gradient(self.combine_teachers(cached)))
        labels = y.get(LABELS)
        if training and labels is not None:
            labels = checks.assert_labels_in_range(labels, self.classes)
        return x, {LABELS: labels, LABELED: y.get(LABELED), "teacher": teacher}, sample_weight

    def get_metrics_result(self):
        # Training on unlabeled data alone never builds the compiled metrics
        # (they need labels); Keras' own version fails on them.
        results = {}
        for metric in self.metrics:
            if not getattr(metric, "built", True):
                continue
            result = metric.result()
            results.update(result if isinstance(result, dict) else {metric.name: result})
        return results

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        teachers = [serialize(t) for t in self.teachers]
        return {
            "name": self.name,
            "trainable": self.trainable,
            "teacher": teachers[0] if len(teachers) == 1 else teachers,
            "student": serialize(self.student),
            "teacher_outputs": self.teacher_output_kind,
            "student_outputs": self.student_output_kind,
            "teacher_weights": list(self.teacher_weights),
            "teacher_combine": self.teacher_combine,
            "augmentation": None if self.augmentation is None else serialize(self.augmentation),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        deserialize = keras.saving.deserialize_keras_object
        teacher = config.pop("teacher")
        teacher = [deserialize(t) for t in teacher] if isinstance(teacher, list) else deserialize(teacher)
        student = deserialize(config.pop("student"))
        if config.get("augmentation") is not None:
            config["augmentation"] = deserialize(config["augmentation"])
        return cls(teacher=teacher, student=student, **config)

    def get_compile_config(self):
        if self._compile_args is None:
            return {}
        return keras.saving.serialize_keras_object(self._compile_args)

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.trainable_variables)
