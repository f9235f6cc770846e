"""`Distiller`: a `keras.Model` that trains a student from frozen teachers."""

import inspect
import math
import numbers

import numpy as np
import tensorflow as tf

from kerasdistill import losses as losses_lib
from kerasdistill.adapters import FeatureAdapter, needs_adapter
from kerasdistill.backend import KERAS_3, keras, register_serializable
from kerasdistill.callbacks import StopOnNonFinite
from kerasdistill.data import LABELED
from kerasdistill.distribute import MultiWorkerFit, multi_worker_logs

OUTPUT_KINDS = ("auto", "logits", "probabilities")
TEACHER_COMBINATIONS = ("probabilities", "logits")
# The key that marks a batch of cached teacher outputs (see kerasdistill.cache).
CACHED_LOGITS = "teacher_logits"
MIXING_LAYERS = ("MixUp", "CutMix")


@register_serializable
class Distiller(MultiWorkerFit, keras.Model):
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
        if not teachers:
            raise ValueError("teacher is an empty list; pass one teacher model or a list of them.")
        kinds = teacher_outputs if isinstance(teacher_outputs, (list, tuple)) else [teacher_outputs] * len(teachers)
        if len(kinds) != len(teachers):
            raise ValueError(
                f"teacher_outputs lists {len(kinds)} kinds for {len(teachers)} teachers; give one per "
                "teacher, or one string for all."
            )
        _check_model(student, "student")
        _check_trainable(student)
        student_probe = _probe(student)
        self.student_outputs = _resolve_output_kind(student, student_outputs, student_probe, "student")
        classes = _output_width(student, student_probe)
        resolved = []
        for index, (model, kind) in enumerate(zip(teachers, kinds)):
            role = "teacher" if len(teachers) == 1 else f"teacher {index}"
            _check_model(model, role)
            if model is student:
                raise ValueError(
                    f"The {role} and the student are the same model object. Pass a separate student, "
                    "e.g. keras.models.clone_model(teacher) or a smaller model."
                )
            _check_same_inputs(model, student, role)
            probe = _probe(model)
            resolved.append(_resolve_output_kind(model, kind, probe, role))
            _check_same_classes(_output_width(model, probe), classes, role)
        _check_no_shared_variables(teachers, student)
        self.teachers = teachers
        self.teacher_output_kinds = tuple(resolved)
        self.teacher_outputs = resolved[0] if len(resolved) == 1 else list(resolved)
        self.teacher_weights = _check_teacher_weights(teacher_weights, len(teachers))
        if teacher_combine not in TEACHER_COMBINATIONS:
            raise ValueError(f"teacher_combine must be one of {TEACHER_COMBINATIONS}; got {teacher_combine!r}.")
        self.teacher_combine = teacher_combine
        self.student = student
        self.augmentation = _check_augmentation(augmentation, student)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.term_trackers = []
        self.adapters = []
        self.student_loss_fn = None
        self.distillation_losses = None
        self.temperature = None
        self._taps = _Taps()
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
        alpha=0.1,
        temperature=3.0,
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
        self.alpha = _check_alpha(alpha)
        _check_mixing(self.augmentation, self.alpha)
        self.temperature = losses_lib.check_temperature(temperature)
        self.student_loss_fn = _resolve_student_loss(student_loss_fn, self.student_outputs)
        given = distillation_loss_fn if isinstance(distillation_loss_fn, (list, tuple)) else [distillation_loss_fn]
        if not given:
            raise ValueError("distillation_loss_fn is an empty list; pass at least one loss, e.g. 'soft_target_kl'.")
        distillation_losses = [_resolve_distillation_loss(loss, self.temperature) for loss in given]
        _check_unique_names(distillation_losses)
        self._taps = self._build_taps(distillation_losses)
        self.distillation_losses = distillation_losses
        terms = self._taps.term_names(distillation_losses)
        self.term_trackers = [keras.metrics.Mean(name=name) for name in terms] if len(terms) > 1 else []
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

    def _build_taps(self, distillation_losses):
        pairs = [pair for loss in distillation_losses for pair in (loss.pairs or ())]
        if not pairs:
            return _Taps()
        if len(self.teachers) > 1:
            raise ValueError(
                "Losses on intermediate layers (hint, attention, rkd with pairs) compare one teacher's "
                f"layers with the student's; this Distiller has {len(self.teachers)} teachers. Use one "
                "teacher with those losses, or losses on the outputs (soft_target_kl, dkd, rkd without pairs)."
            )
        teacher_names = list(dict.fromkeys(t for t, _ in pairs))
        student_names = list(dict.fromkeys(s for _, s in pairs))
        teacher_model = _tap_model(self.teacher, teacher_names, "teacher")
        student_model = _tap_model(self.student, student_names, "student")
        teacher_shapes = dict(zip(teacher_names, (t.shape for t in teacher_model.outputs[1:])))
        student_shapes = dict(zip(student_names, (s.shape for s in student_model.outputs[1:])))
        adapters, adapter_of = [], {}
        for loss in distillation_losses:
            if not getattr(loss, "uses_adapter", False):
                continue
            for teacher_layer, student_layer in loss.pairs:
                key = (teacher_layer, student_layer)
                if key in adapter_of or not needs_adapter(student_shapes[student_layer], teacher_shapes[teacher_layer]):
                    continue
                adapter = FeatureAdapter(
                    teacher_shapes[teacher_layer][1:], name=f"adapter_{student_layer}_to_{teacher_layer}"
                )
                adapter.build(student_shapes[student_layer])
                adapter_of[key] = len(adapters)
                adapters.append(adapter)
        self.adapters = adapters
        return _Taps(teacher_model, student_model, teacher_names, student_names, adapter_of)

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
    def metrics(self):
        own = [self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker, *self.term_trackers]
        # Keras' own "loss" tracker is never updated here: drop it so that the
        # logs hold one "loss", ours.
        rest = [m for m in super().metrics if m.name != "loss" and all(m is not o for o in own)]
        return own + rest

    def teacher_logits(self, x):
        """The teachers' combined outputs on `x` as logits, with no gradient."""
        return self._run_teachers(x)[0]

    def _run_teachers(self, x):
        if self._taps.teacher is not None:
            outputs = self._taps.teacher(x, training=False)
            features = dict(zip(self._taps.teacher_names, (tf.stop_gradient(f) for f in outputs[1:])))
            outputs = outputs[0]
            logits = [losses_lib.logits_from(outputs, self.teacher_output_kinds[0])]
        else:
            features = {}
            logits = [
                losses_lib.logits_from(model(x, training=False), kind)
                for model, kind in zip(self.teachers, self.teacher_output_kinds)
            ]
        return tf.stop_gradient(self.combine_teachers(tf.stack(logits, axis=1))), features

    def combine_teachers(self, stacked_logits):
        """One set of logits from the teachers' logits stacked as (batch, teachers, classes).

        With `teacher_combine="probabilities"` the result softened at the
        Distiller's temperature is the weighted mean of the teachers'
        softened probabilities; with `"logits"` it is the weighted mean of
        their logits. One teacher's logits are returned unchanged.
        """
        stacked_logits = tf.cast(stacked_logits, tf.float32)
        if stacked_logits.shape[1] != len(self.teachers):
            raise ValueError(
                f"The cached teacher outputs hold {stacked_logits.shape[1]} teachers but this Distiller "
                f"has {len(self.teachers)}; cache the outputs with the same teachers."
            )
        if len(self.teachers) == 1:
            return stacked_logits[:, 0]
        weights = tf.constant(self.teacher_weights, tf.float32)[None, :, None]
        if self.teacher_combine == "logits":
            return tf.reduce_sum(weights * stacked_logits, axis=1)
        if self.temperature is None:
            self._require_compiled("teacher_logits")
        softened = losses_lib.soften(stacked_logits, self.temperature)
        return self.temperature * tf.reduce_logsumexp(softened + tf.math.log(weights), axis=1)

    def _run_student(self, x, training):
        if self._taps.student is None:
            return self.student(x, training=training), {}
        outputs = self._taps.student(x, training=training)
        return outputs[0], dict(zip(self._taps.student_names, outputs[1:]))

    def compute_losses(
        self,
        y,
        student_outputs,
        teacher_logits,
        sample_weight=None,
        teacher_features=None,
        student_features=None,
        labeled=None,
    ):
        """The loss terms of one batch, as a dict.

        Keys: `"loss"` (the total), `"student_loss"` (absent when `y` is
        None), `"distillation_loss"`, and with several distillation terms one
        key per term (a loss, or a loss on one layer pair). Each term is
        averaged over the global batch the way `tf.nn.compute_average_loss`
        does, so the gradients do not depend on the number of replicas.

        `labeled` (1 for a labeled sample, 0 for one of the transfer set)
        gives labeled samples `alpha * student_loss + (1 - alpha) *
        distillation` and unlabeled ones the distillation loss alone; the
        logged `student_loss` is then the mean over the labeled samples.
        """
        student_logits = losses_lib.logits_from(student_outputs, self.student_outputs)
        _check_same_classes(teacher_logits.shape[-1], student_logits.shape[-1], "teacher")
        terms = {}
        for loss in self.distillation_losses:
            if loss.pairs is None:
                labels = y if loss.uses_labels else None
                terms[loss.name] = loss.weight * _per_sample(
                    lambda t, s, loss=loss, labels=labels: loss.compute(t, s, labels), teacher_logits, student_logits
                )
                continue
            if not teacher_features:
                raise ValueError(
                    f"The '{loss.name}' loss compares intermediate layers, which cached teacher outputs do "
                    "not hold; distill from the original dataset (online), or drop that loss."
                )
            for (teacher_layer, student_layer), name in zip(loss.pairs, self._taps.pair_names(loss)):
                student_feature = student_features[student_layer]
                index = self._taps.adapter_of.get((teacher_layer, student_layer))
                if index is not None and getattr(loss, "uses_adapter", False):
                    student_feature = self.adapters[index](student_feature)
                terms[name] = loss.weight * _per_sample(loss.call, teacher_features[teacher_layer], student_feature)
        distillation = tf.add_n(list(terms.values()))
        result = {"distillation_loss": _mean(distillation, sample_weight)}
        if len(terms) > 1:
            result.update({name: _mean(values, sample_weight) for name, values in terms.items()})
        regularization = self.student.losses
        if regularization:
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            regularization = tf.add_n([tf.cast(r, tf.float32) for r in regularization]) / replicas
        else:
            regularization = 0.0
        if y is None:
            result["loss"] = result["distillation_loss"] + regularization
            return result
        student = _per_sample(self.student_loss_fn, y, student_outputs)
        if labeled is None:
            result["student_loss"] = _mean(student, sample_weight)
            result["loss"] = (
                self.alpha * result["student_loss"] + (1.0 - self.alpha) * result["distillation_loss"] + regularization
            )
            return result
        labeled = tf.reshape(tf.cast(labeled, tf.float32), [-1])
        per_sample = self.alpha * labeled * student + (1.0 - self.alpha * labeled) * distillation
        result["loss"] = _mean(per_sample, sample_weight) + regularization
        # Logged: the mean over the labeled samples (scaled like the other terms).
        weights = labeled if sample_weight is None else labeled * tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        result["student_loss"] = tf.math.divide_no_nan(tf.reduce_sum(weights * student), tf.reduce_sum(weights)) / replicas
        return result

    def _unpack(self, data):
        """x, labels, labeled mask, sample_weight and, for cached batches, the teachers' logits.

        Labels come as `y`, or as a dict `{"labels", "labeled",
        "teacher_logits"}` (transfer sets and caches; each key optional).
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if not isinstance(y, dict):
            return x, y, None, sample_weight, None
        return x, y.get("labels"), y.get(LABELED), sample_weight, y.get(CACHED_LOGITS)

    def _teacher_side(self, x, cached):
        if cached is None:
            return self._run_teachers(x)
        return tf.stop_gradient(self.combine_teachers(cached)), {}

    def _checked_labels(self, y, student_outputs):
        """Sparse labels with an in-graph range check: `fit` checks only the first batch itself."""
        if y is None or losses_lib.is_one_hot(y, student_outputs) or not y.dtype.is_integer:
            return y
        classes = student_outputs.shape[-1]
        message = (
            f"A batch holds labels outside [0, {classes}) (the student outputs {classes} scores); the first "
            "batch was fine, a later one is not. Check the labels of the whole dataset, e.g. "
            "np.unique(y), and re-encode them as 0..C-1."
        )
        with tf.control_dependencies(
            [
                tf.debugging.assert_non_negative(y, message=message),
                tf.debugging.assert_less(y, tf.cast(classes, y.dtype), message=message),
            ]
        ):
            return tf.identity(y)

    def train_step(self, data):
        x, y, labeled, sample_weight, cached = self._unpack(data)
        if self.augmentation is not None:
            if cached is not None:
                raise ValueError(
                    "This Distiller augments its batches (augmentation=...), but the batches carry cached teacher "
                    "outputs, which belong to the un-augmented inputs. Cache the teacher on augmented views "
                    "instead: cache_teacher_outputs(teacher, data, augmentation=..., views=K), and distill from "
                    "that cache with a Distiller without augmentation."
                )
            # Consistent teaching: teachers and student see the same view.
            x = self.augmentation(x, training=True)
        teacher_logits, teacher_features = self._teacher_side(x, cached)
        variables = self.trainable_weights
        with tf.GradientTape() as tape:
            student_outputs, student_features = self._run_student(x, training=True)
            y = self._checked_labels(y, student_outputs)
            losses = self.compute_losses(
                y, student_outputs, teacher_logits, sample_weight, teacher_features, student_features, labeled
            )
            if KERAS_3:
                scaled = self.optimizer.scale_loss(losses["loss"])
        if KERAS_3:
            gradients = tape.gradient(scaled, variables)
            self.optimizer.apply_gradients(zip(gradients, variables))
        else:
            self.optimizer.minimize(losses["loss"], variables, tape=tape)
        return self._update_metrics(x, y, labeled, student_outputs, sample_weight, losses)

    def test_step(self, data):
        x, y, labeled, sample_weight, cached = self._unpack(data)
        teacher_logits, teacher_features = self._teacher_side(x, cached)
        student_outputs, student_features = self._run_student(x, training=False)
        losses = self.compute_losses(
            y, student_outputs, teacher_logits, sample_weight, teacher_features, student_features, labeled
        )
        return self._update_metrics(x, y, labeled, student_outputs, sample_weight, losses)

    def _update_metrics(self, x, y, labeled, student_outputs, sample_weight, losses):
        # The losses are scaled by 1 / replicas for the gradient sum; the
        # running means report the per-sample value, weighted by batch size.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch_size = tf.shape(student_outputs)[0]
        trackers = [self.loss_tracker, self.distillation_loss_tracker, *self.term_trackers]
        for tracker in trackers:
            tracker.update_state(losses[tracker.name] * replicas, sample_weight=batch_size)
        if y is None:
            # No labels: only the distillation terms mean something, and the
            # compiled metrics have nothing to measure.
            return multi_worker_logs({tracker.name: tracker.result() for tracker in trackers})
        if labeled is None:
            self.student_loss_tracker.update_state(losses["student_loss"] * replicas, sample_weight=batch_size)
            return multi_worker_logs(self.compute_metrics(x, y, student_outputs, sample_weight))
        mask = tf.reshape(tf.cast(labeled, tf.bool), [-1])
        self.student_loss_tracker.update_state(
            losses["student_loss"] * replicas, sample_weight=tf.reduce_sum(tf.cast(mask, tf.float32))
        )
        # Keras' compiled `metrics` ignore sample weights: give them the
        # labeled samples alone.
        if sample_weight is not None:
            sample_weight = tf.boolean_mask(tf.reshape(sample_weight, [-1]), mask)
        return multi_worker_logs(
            self.compute_metrics(x, tf.boolean_mask(y, mask), tf.boolean_mask(student_outputs, mask), sample_weight)
        )

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

    def _require_compiled(self, method):
        if self.distillation_losses is None:
            raise ValueError(
                f"Call distiller.compile(optimizer=..., student_loss_fn=..., "
                f"distillation_loss_fn=..., alpha=..., temperature=...) before {method}()."
            )

    def fit(self, x=None, y=None, *args, stop_on_non_finite=True, **kwargs):
        """`keras.Model.fit`, with the data checked before the first step.

        Inputs whose shape or dtype the models cannot take, labels outside
        the student's classes and empty data are refused with a message
        that says what to change. With `stop_on_non_finite` (the default) a
        `kerasdistill.callbacks.StopOnNonFinite` callback stops training at
        the first NaN or infinite loss, naming the loss term.
        """
        self._require_compiled("fit")
        _check_data(x, y, self.student, "training")
        if args:
            # Positional arguments after (x, y), as Keras names them, so the
            # callbacks among them are seen below.
            names = list(inspect.signature(keras.Model.fit).parameters)[3 : 3 + len(args)]
            kwargs.update(zip(names, args))
        if stop_on_non_finite:
            callbacks = list(kwargs.get("callbacks") or [])
            if not any(isinstance(c, StopOnNonFinite) for c in callbacks):
                callbacks.append(StopOnNonFinite())
            kwargs["callbacks"] = callbacks
        return super().fit(x, y, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._require_compiled("evaluate")
        _check_data(x, y, self.student, "evaluation")
        return super().evaluate(x, y, *args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self._require_compiled("train_on_batch")
        return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        self._require_compiled("test_on_batch")
        return super().test_on_batch(*args, **kwargs)

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        teachers = [serialize(t) for t in self.teachers]
        return {
            "name": self.name,
            "trainable": self.trainable,
            "teacher": teachers[0] if len(teachers) == 1 else teachers,
            "student": serialize(self.student),
            "teacher_outputs": self.teacher_outputs,
            "student_outputs": self.student_outputs,
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


class _Taps:
    """The teacher and student re-wired to also return intermediate layers.

    A plain object on purpose: Keras does not track it, so the tapped models
    (which share every layer with the user's models) are neither saved twice
    nor counted twice.
    """

    def __init__(self, teacher=None, student=None, teacher_names=(), student_names=(), adapter_of=None):
        self.teacher = teacher
        self.student = student
        self.teacher_names = list(teacher_names)
        self.student_names = list(student_names)
        self.adapter_of = adapter_of or {}

    @staticmethod
    def pair_names(loss):
        if len(loss.pairs) == 1:
            return [loss.name]
        return [f"{loss.name}_{t}_{s}" for t, s in loss.pairs]

    def term_names(self, distillation_losses):
        return [
            name
            for loss in distillation_losses
            for name in (self.pair_names(loss) if loss.pairs else [loss.name])
        ]


def _tap_model(model, layer_names, role):
    """A model with `model`'s inputs whose outputs are its output then the named layers' outputs."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            f"The {role} '{model.name}' is a subclassed model, whose intermediate layers cannot be "
            "tapped. Hint, attention and rkd losses with layer pairs need a functional or Sequential "
            f"{role} (built with keras.Input)."
        )
    known = [layer.name for layer in model.layers]
    outputs = []
    for name in layer_names:
        if name not in known:
            raise ValueError(
                f"The {role} '{model.name}' has no layer named '{name}'. Its layers: {', '.join(known)}."
            )
        outputs.append(model.get_layer(name).output)
    return keras.Model(inputs, [model.outputs[0], *outputs], name=f"{model.name}_taps")


def _check_data(x, y, student, purpose):
    """Refuses, before any step runs, data the models cannot learn from."""
    if isinstance(x, tf.data.Dataset):
        if x.cardinality() == 0:
            raise ValueError(f"The {purpose} dataset is empty (0 batches); check the pipeline that builds it.")
        first = next(iter(x.take(1)), None)
        if first is None:
            raise ValueError(f"The {purpose} dataset is empty; check the pipeline that builds it.")
        x, y, _ = keras.utils.unpack_x_y_sample_weight(first)
        if y is None and isinstance(x, dict) and {"label", "labels"} & set(x):
            raise ValueError(
                f"The {purpose} dataset yields dicts with keys {sorted(x)}: Keras reads a whole dict as the "
                "inputs, so the labels would be ignored. Yield (image, label) tuples: "
                "tfds.load(..., as_supervised=True), or dataset.map(lambda d: (d['image'], d['label']))."
            )
        if isinstance(y, dict):
            y = y.get("labels")
    if isinstance(x, (list, tuple)) and x and all(hasattr(item, "shape") for item in x):
        shapes = {tuple(item.shape) for item in x}
        if len(shapes) > 1 and len(x) != len(getattr(student, "inputs", None) or [None]):
            raise ValueError(
                f"The {purpose} inputs are a list of {len(x)} arrays of different shapes ({', '.join(map(str, sorted(shapes)[:3]))}"
                "...): ragged samples, which a batch cannot hold. Resize or pad them to one shape "
                "(keras.layers.Resizing, keras.utils.pad_sequences) and stack them into one array."
            )
    # Multi-input data (dicts, lists) and generators are left to Keras.
    if not hasattr(x, "shape") or isinstance(x, dict):
        return
    x = np.asarray(x)
    if x.shape[0] == 0:
        raise ValueError(f"The {purpose} inputs are empty (0 samples); pass at least one batch of data.")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise TypeError(
            f"The {purpose} inputs have dtype {x.dtype}; the models need numbers. Convert them, "
            "e.g. x.astype('float32'), or decode images first."
        )
    expected = _input_shape(student)
    if expected is not None:
        got = tuple(x.shape[1:])
        if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
            hint = " Add the channel axis with x[..., None]." if got == tuple(expected[:-1]) else ""
            raise ValueError(
                f"The {purpose} inputs have shape {got} per sample but the models take {expected}. "
                f"Resize or reshape the data (keras.layers.Resizing, tf.image.resize).{hint}"
            )
    if y is not None and not isinstance(y, dict):
        _check_labels(np.asarray(y), _output_width(student, None), purpose)


def _check_labels(y, classes, purpose):
    if y.size and not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise TypeError(
            f"The {purpose} labels have dtype {y.dtype} (e.g. {y.flat[0]!r}); the losses need class indices. "
            "Map them to 0..C-1, e.g. names, y = np.unique(y, return_inverse=True)."
        )
    if classes is None or y.size == 0:
        return
    if y.ndim == 2 and y.shape[1] == classes and classes != 1:
        return
    if y.ndim > 2 or (y.ndim == 2 and y.shape[1] != 1):
        raise ValueError(
            f"The {purpose} labels have shape {y.shape[1:]} per sample: neither a class index (shape () or "
            f"(1,)) nor a one-hot row of the student's {classes} classes. Pass class indices, or one-hot "
            f"rows of width {classes} (keras.utils.to_categorical(y, {classes}))."
        )
    low, high = float(np.min(y)), float(np.max(y))
    if low < 0 or high >= classes or not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(
            f"The {purpose} labels must be class indices in [0, {classes}) (the student outputs {classes} "
            f"scores); they range over [{low:g}, {high:g}]. Re-encode them (e.g. np.unique(y, "
            "return_inverse=True)), or give the models as many outputs as there are classes."
        )


def _check_unique_names(distillation_losses):
    seen = set()
    for loss in distillation_losses:
        if loss.name in seen:
            raise ValueError(
                f"Two distillation losses are named '{loss.name}'; the logs name each loss, so give "
                "one of them another name=."
            )
        seen.add(loss.name)


def _check_no_shared_variables(teachers, student):
    student_variables = {id(v): v for v in student.weights}
    for index, teacher in enumerate(teachers):
        shared = [v for v in teacher.weights if id(v) in student_variables]
        if shared:
            role = "teacher" if len(teachers) == 1 else f"teacher {index}"
            names = ", ".join(sorted({getattr(v, "path", v.name) for v in shared})[:10])
            raise ValueError(
                f"The student shares {len(shared)} variables with the {role} ({names}): training the student "
                "would change the teacher. Build the student from its own layers (e.g. "
                "keras.models.clone_model(part_of_teacher) with weights copied by set_weights), not from the "
                "teacher's layers or outputs."
            )


def _check_teacher_weights(weights, count):
    if weights is None:
        return tuple([1.0 / count] * count)
    if not isinstance(weights, (list, tuple)) or len(weights) != count:
        raise ValueError(f"teacher_weights needs one number per teacher ({count}); got {weights!r}.")
    checked = [losses_lib.check_weight(w, "each teacher weight") for w in weights]
    if sum(checked) <= 0:
        raise ValueError(f"teacher_weights must not all be 0; got {weights!r}.")
    return tuple(w / sum(checked) for w in checked)


def _check_trainable(student):
    if not student.trainable_weights:
        raise ValueError(
            f"The student '{student.name}' has no trainable weights (student.trainable is "
            f"{student.trainable}): distillation would change nothing. Set student.trainable = True, or unfreeze "
            "its layers (kerasdistill.transfer.unfreeze for a backbone student)."
        )


def _check_model(model, role):
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"The {role} must be a keras.Model (Sequential, functional or subclassed); "
            f"got {type(model).__name__}. Load a saved one with keras.models.load_model(path)."
        )
    if not model.built:
        raise ValueError(
            f"The {role} model '{model.name}' is not built, so its weights and output "
            f"shape are unknown. Give it an input (keras.Input(shape=...) as its first "
            f"layer), or call {role}.build(input_shape) or {role}(batch) once."
        )
    inputs = getattr(model, "inputs", None)
    if inputs is not None and len(inputs) > 1:
        raise ValueError(
            f"The {role} model '{model.name}' takes {len(inputs)} inputs; the Distiller feeds the teachers and the "
            "student one batch of the same inputs. Wrap it in a model with one input that builds the others."
        )
    outputs = getattr(model, "outputs", None)
    if outputs is not None and len(outputs) != 1:
        raise ValueError(
            f"The {role} model '{model.name}' has {len(outputs)} outputs; the Distiller "
            "needs one output of class scores. Wrap it in a model that returns the classification head."
        )


def _input_shape(model):
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        return None
    return tuple(inputs[0].shape[1:])


def _check_same_inputs(teacher, student, role="teacher"):
    teacher_shape, student_shape = _input_shape(teacher), _input_shape(student)
    if teacher_shape is None or student_shape is None:
        return
    compatible = len(teacher_shape) == len(student_shape) and all(
        a is None or b is None or a == b for a, b in zip(teacher_shape, student_shape)
    )
    if not compatible:
        raise ValueError(
            f"The {role} takes inputs of shape {teacher_shape} but the student takes "
            f"{student_shape}; the Distiller feeds both the same batch. Give the model "
            "that needs other inputs a Resizing/Reshape layer at its start."
        )


def _probe(model):
    """Runs `model` in inference mode on a small random batch, or returns None
    where its input shape is not fully known."""
    shape = _input_shape(model)
    if shape is None or any(d is None for d in shape):
        return None
    dtype = model.inputs[0].dtype
    dtype = dtype if isinstance(dtype, str) else dtype.name
    batch = np.random.default_rng(0).uniform(0.0, 1.0, size=(2,) + shape)
    outputs = model(tf.constant(batch.astype(dtype)), training=False)
    if isinstance(outputs, (list, tuple, dict)):
        return None
    return np.asarray(outputs, dtype=np.float64)


def _output_width(model, probe):
    if probe is not None:
        return probe.shape[-1]
    outputs = getattr(model, "outputs", None)
    return outputs[0].shape[-1] if outputs else None


def _check_same_classes(teacher_width, student_width, role="teacher"):
    if teacher_width is not None and student_width is not None and teacher_width != student_width:
        raise ValueError(
            f"The {role} outputs {teacher_width} class scores but the student outputs "
            f"{student_width}; both must score the same classes. Give the student a final "
            f"Dense({teacher_width}) layer."
        )


def _final_activation(model):
    layers = getattr(model, "layers", None)
    if not layers:
        return None
    layer = layers[-1]
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None)


def _looks_like_probabilities(outputs):
    return bool(
        np.all(outputs >= 0.0)
        and np.all(outputs <= 1.0)
        and np.allclose(outputs.sum(axis=-1), 1.0, atol=1e-3)
    )


def _resolve_output_kind(model, kind, probe, role):
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"{role}_outputs must be one of {OUTPUT_KINDS}; got {kind!r}.")
    observed = None
    if probe is not None:
        observed = "probabilities" if _looks_like_probabilities(probe) else "logits"
    activation = _final_activation(model)
    if activation == "sigmoid":
        raise ValueError(
            f"The {role} '{model.name}' ends in a sigmoid: independent per-class probabilities (multi-label), not "
            "one distribution over the classes, which soft targets need. End it in a Dense layer (logits) or a "
            "softmax."
        )
    if kind == "auto":
        declared = {"softmax": "probabilities", "linear": "logits"}.get(activation)
        kind = declared or observed or "logits"
    if observed is not None and observed != kind:
        why = (
            "sum to 1 over the classes: they are probabilities"
            if observed == "probabilities"
            else "do not sum to 1 over the classes: they are logits"
        )
        raise ValueError(
            f"The {role} '{model.name}' was declared to output {kind}, but its outputs "
            f"{why}. Pass {role}_outputs='{observed}' (or 'auto')."
        )
    return kind


def _check_augmentation(augmentation, student):
    """One callable layer from a list of Keras layers, a layer, or None."""
    if augmentation is None:
        return None
    layers = list(augmentation) if isinstance(augmentation, (list, tuple)) else [augmentation]
    bad = [type(layer).__name__ for layer in layers if not isinstance(layer, keras.layers.Layer)]
    if not layers or bad:
        raise TypeError(
            "augmentation must be a Keras layer or a non-empty list of them (e.g. "
            "kerasdistill.augment.build(['flip', 'translate']) or [keras.layers.RandomFlip('horizontal')]); "
            f"got {bad or 'an empty list'}."
        )
    model = layers[0] if len(layers) == 1 and isinstance(layers[0], keras.Sequential) else keras.Sequential(layers, name="augmentation")
    shape = _input_shape(student)
    if shape is not None and all(d is not None for d in shape):
        model.build((None,) + shape)
    return model


def _mixing_layers(augmentation):
    if augmentation is None:
        return []
    return [layer.name for layer in augmentation.layers if type(layer).__name__ in MIXING_LAYERS]


def _check_mixing(augmentation, alpha):
    mixing = _mixing_layers(augmentation)
    if mixing and alpha > 0:
        raise ValueError(
            f"The augmentation mixes images across the batch ({', '.join(mixing)}) but alpha={alpha:g} also trains "
            "on the labels, which are not mixed with them. Pass alpha=0 (pure distillation: the teacher labels "
            "the mixed images, as in Beyer et al. 2022), or drop the mixing layer."
        )


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or math.isnan(alpha) or not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"alpha is the weight of the student (label) loss and must be in [0, 1] "
            f"(1 - alpha weighs the distillation loss); got {alpha!r}. The keras.io example uses 0.1."
        )
    return float(alpha)


_CROSSENTROPY_NAMES = {
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
}


def _resolve_student_loss(loss, student_outputs):
    from_logits = student_outputs == "logits"
    if loss is None:
        return losses_lib.CrossEntropy(from_logits=from_logits)
    if isinstance(loss, str):
        key = loss.lower()
        if key in _CROSSENTROPY_NAMES:
            return getattr(keras.losses, _CROSSENTROPY_NAMES[key])(from_logits=from_logits)
        if key == "crossentropy":
            return losses_lib.CrossEntropy(from_logits=from_logits)
        if key in losses_lib.names():
            raise ValueError(
                f"'{loss}' is a distillation loss (teacher vs student); pass it as distillation_loss_fn=. "
                "student_loss_fn compares the student with the labels, e.g. 'crossentropy'."
            )
        return keras.losses.get(loss)
    if not callable(loss):
        raise TypeError(
            f"student_loss_fn must be a Keras loss, a loss name or a callable(y_true, y_pred); got {type(loss).__name__}."
        )
    declared = loss.get_config().get("from_logits") if hasattr(loss, "get_config") else None
    if declared is not None and bool(declared) != from_logits:
        raise ValueError(
            f"student_loss_fn has from_logits={declared}, but the student outputs "
            f"{student_outputs}. Pass from_logits={from_logits}."
        )
    return loss


def _resolve_distillation_loss(loss, temperature):
    if loss is None:
        loss = losses_lib.SoftTargetKL()
    elif isinstance(loss, (str, dict)):
        name = str(loss if isinstance(loss, str) else loss.get("name", "")).lower()
        if name in losses_lib.names() or name in losses_lib.LABEL_LOSSES:
            loss = losses_lib.get(loss)
        else:
            try:  # a Keras loss by name, applied to softened outputs
                loss = keras.losses.get(loss)
            except (ValueError, TypeError):
                loss = losses_lib.get(loss)  # raises, naming ours and the closest one
    if isinstance(loss, losses_lib.DistillationLoss):
        return loss.with_temperature(temperature)
    if not callable(loss):
        raise TypeError(
            "distillation_loss_fn must be a kerasdistill loss, a registered name "
            f"({', '.join(losses_lib.names())}), a Keras loss or a callable; got {type(loss).__name__}."
        )
    return losses_lib.SoftenedLoss(loss, temperature=temperature)


def _per_sample(loss_fn, y_true, y_pred):
    """A loss's values, one per sample, in float32 (a Keras `Loss` through `__call__`'s
    dtype handling, without its reduction)."""
    # Losses run in float32 whatever the dtype policy (mixed precision).
    y_true, y_pred = tf.convert_to_tensor(y_true), tf.cast(y_pred, tf.float32)
    if isinstance(loss_fn, keras.losses.Loss):
        values = loss_fn.call(y_true, y_pred)
    else:
        values = loss_fn(y_true, y_pred)
    values = tf.cast(values, tf.float32)
    if values.shape.rank == 0:
        return tf.fill([tf.shape(y_pred)[0]], values)
    if values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    return values


def _mean(values, sample_weight):
    """Per-sample values averaged over the global batch."""
    if sample_weight is not None:
        sample_weight = tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return tf.nn.compute_average_loss(values, sample_weight=sample_weight)
