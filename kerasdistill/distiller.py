"""`Distiller`: a `keras.Model` that trains a student from a frozen teacher."""

import math

import numpy as np
import tensorflow as tf

from kerasdistill import losses as losses_lib
from kerasdistill.backend import KERAS_3, keras, register_serializable

OUTPUT_KINDS = ("auto", "logits", "probabilities")


@register_serializable
class Distiller(keras.Model):
    """Knowledge distillation as a Keras model.

    Drops into `compile` / `fit` / `evaluate` / `predict`, callbacks and
    `tf.distribute` like any Keras model. Only the student is trained: the
    teacher runs in inference mode (`training=False`, BatchNorm statistics
    untouched), outside the gradient tape, and gets no gradient and no
    optimizer state. The model's outputs (`call`, `predict`) are the
    student's.

    The training loss is `alpha * student_loss + (1 - alpha) *
    distillation_loss`, where the student loss compares the student with the
    labels and the distillation loss compares it with the teacher. Batches
    without labels (`x` alone) train on the distillation loss alone.

    Teachers and students may end in a softmax or give logits; the Distiller
    reads which from the last layer (or from the outputs themselves) and
    turns probabilities into log-probabilities before softening them, so
    probabilities are never treated as logits.

    Args:
        teacher: a built `keras.Model` with one output of class scores.
        student: a built `keras.Model` with the same output width.
        teacher_outputs: `"logits"`, `"probabilities"`, or `"auto"` (read from
            the model). A declared kind that contradicts the model's real
            outputs is refused.
        student_outputs: likewise for the student.
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

    def __init__(self, teacher, student, teacher_outputs="auto", student_outputs="auto", **kwargs):
        super().__init__(**kwargs)
        _check_model(teacher, "teacher")
        _check_model(student, "student")
        if teacher is student:
            raise ValueError(
                "The teacher and the student are the same model object. Pass a "
                "separate student, e.g. keras.models.clone_model(teacher) or a smaller model."
            )
        _check_same_inputs(teacher, student)
        teacher_probe = _probe(teacher)
        student_probe = _probe(student)
        self.teacher_outputs = _resolve_output_kind(teacher, teacher_outputs, teacher_probe, "teacher")
        self.student_outputs = _resolve_output_kind(student, student_outputs, student_probe, "student")
        _check_same_classes(_output_width(teacher, teacher_probe), _output_width(student, student_probe))
        self.teacher = teacher
        self.student = student
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")
        self.student_loss_fn = None
        self.distillation_loss_fn = None
        self._compile_args = None
        self.built = True

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
            distillation_loss_fn: a `kerasdistill.losses` loss or its
                registered name (default `SoftTargetKL`). Any other Keras loss
                (e.g. `keras.losses.KLDivergence()`) is applied, as in the
                keras.io example, to the softened probabilities of teacher
                and student, and scaled by T².
            alpha: weight of the student loss, in [0, 1]; the distillation
                loss gets `1 - alpha`.
            temperature: softening temperature T > 0, given to every
                distillation loss that does not set its own.
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
        self.temperature = losses_lib.check_temperature(temperature)
        self.student_loss_fn = _resolve_student_loss(student_loss_fn, self.student_outputs)
        self.distillation_loss_fn = _resolve_distillation_loss(distillation_loss_fn, self.temperature)
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
        # Only the student's variables: the optimizer is built from this list,
        # so the teacher gets neither gradients nor optimizer slots, and the
        # user's teacher is not mutated (its `trainable` flag stays as it was).
        return self.student.trainable_weights if self.trainable else []

    @property
    def trainable_variables(self):
        return self.trainable_weights

    @property
    def metrics(self):
        own = [self.loss_tracker, self.student_loss_tracker, self.distillation_loss_tracker]
        # Keras' own "loss" tracker is never updated here: drop it so that the
        # logs hold one "loss", ours.
        rest = [m for m in super().metrics if m.name != "loss" and all(m is not o for o in own)]
        return own + rest

    def teacher_logits(self, x):
        """The teacher's outputs on `x` as logits, with no gradient."""
        outputs = self.teacher(x, training=False)
        return tf.stop_gradient(losses_lib.logits_from(outputs, self.teacher_outputs))

    def compute_losses(self, y, student_outputs, teacher_logits, sample_weight=None):
        """Returns `(total, student_loss, distillation_loss)` for one batch.

        Each term is averaged over the global batch the way
        `tf.nn.compute_average_loss` does, so the gradients do not depend on
        the number of replicas. `student_loss` is None when `y` is None.
        """
        student_logits = losses_lib.logits_from(student_outputs, self.student_outputs)
        _check_same_classes(teacher_logits.shape[-1], student_logits.shape[-1])
        distillation = _average(self.distillation_loss_fn, teacher_logits, student_logits, sample_weight)
        if y is None:
            return distillation, None, distillation
        student = _average(self.student_loss_fn, y, student_outputs, sample_weight)
        total = self.alpha * student + (1.0 - self.alpha) * distillation
        return total, student, distillation

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        teacher_logits = self.teacher_logits(x)
        variables = self.trainable_weights
        with tf.GradientTape() as tape:
            student_outputs = self.student(x, training=True)
            total, student_loss, distillation_loss = self.compute_losses(
                y, student_outputs, teacher_logits, sample_weight
            )
            if KERAS_3:
                scaled = self.optimizer.scale_loss(total)
        if KERAS_3:
            gradients = tape.gradient(scaled, variables)
            self.optimizer.apply_gradients(zip(gradients, variables))
        else:
            self.optimizer.minimize(total, variables, tape=tape)
        return self._update_metrics(x, y, student_outputs, sample_weight, total, student_loss, distillation_loss)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        student_outputs = self.student(x, training=False)
        losses = self.compute_losses(y, student_outputs, self.teacher_logits(x), sample_weight)
        return self._update_metrics(x, y, student_outputs, sample_weight, *losses)

    def _update_metrics(self, x, y, student_outputs, sample_weight, total, student_loss, distillation_loss):
        # The losses are scaled by 1 / replicas for the gradient sum; the
        # running means report the per-sample value, weighted by batch size.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch_size = tf.shape(student_outputs)[0]
        self.loss_tracker.update_state(total * replicas, sample_weight=batch_size)
        self.distillation_loss_tracker.update_state(distillation_loss * replicas, sample_weight=batch_size)
        if y is None:
            return self.get_metrics_result()
        self.student_loss_tracker.update_state(student_loss * replicas, sample_weight=batch_size)
        return self.compute_metrics(x, y, student_outputs, sample_weight)

    def _require_compiled(self, method):
        if self.distillation_loss_fn is None:
            raise ValueError(
                f"Call distiller.compile(optimizer=..., student_loss_fn=..., "
                f"distillation_loss_fn=..., alpha=..., temperature=...) before {method}()."
            )

    def fit(self, *args, **kwargs):
        self._require_compiled("fit")
        return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        self._require_compiled("evaluate")
        return super().evaluate(*args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self._require_compiled("train_on_batch")
        return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        self._require_compiled("test_on_batch")
        return super().test_on_batch(*args, **kwargs)

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "student": keras.saving.serialize_keras_object(self.student),
            "teacher_outputs": self.teacher_outputs,
            "student_outputs": self.student_outputs,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        teacher = keras.saving.deserialize_keras_object(config.pop("teacher"))
        student = keras.saving.deserialize_keras_object(config.pop("student"))
        return cls(teacher=teacher, student=student, **config)

    def get_compile_config(self):
        if self._compile_args is None:
            return {}
        return keras.saving.serialize_keras_object(self._compile_args)

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        self.optimizer.build(self.trainable_variables)


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


def _check_same_inputs(teacher, student):
    teacher_shape, student_shape = _input_shape(teacher), _input_shape(student)
    if teacher_shape is None or student_shape is None:
        return
    compatible = len(teacher_shape) == len(student_shape) and all(
        a is None or b is None or a == b for a, b in zip(teacher_shape, student_shape)
    )
    if not compatible:
        raise ValueError(
            f"The teacher takes inputs of shape {teacher_shape} but the student takes "
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


def _check_same_classes(teacher_width, student_width):
    if teacher_width is not None and student_width is not None and teacher_width != student_width:
        raise ValueError(
            f"The teacher outputs {teacher_width} class scores but the student outputs "
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
    if kind == "auto":
        activation = _final_activation(model)
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


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= alpha <= 1.0 or math.isnan(alpha):
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
        if key in losses_lib.names():
            return losses_lib.get(key, from_logits=from_logits) if key == "crossentropy" else losses_lib.get(key)
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
        name = loss if isinstance(loss, str) else loss.get("name", "")
        loss = losses_lib.get(loss) if str(name).lower() in losses_lib.names() else keras.losses.get(loss)
    if isinstance(loss, losses_lib.DistillationLoss):
        return loss.with_temperature(temperature)
    if not callable(loss):
        raise TypeError(
            "distillation_loss_fn must be a kerasdistill loss, a registered name "
            f"({', '.join(losses_lib.names())}), a Keras loss or a callable; got {type(loss).__name__}."
        )
    return losses_lib.SoftenedLoss(loss, temperature=temperature)


def _average(loss_fn, y_true, y_pred, sample_weight):
    """Per-sample loss values averaged over the global batch."""
    if isinstance(loss_fn, keras.losses.Loss):
        values = loss_fn.call(y_true, y_pred)
    else:
        values = loss_fn(y_true, y_pred)
    values = tf.cast(values, tf.float32)
    if values.shape.rank == 0:
        return values / tf.distribute.get_strategy().num_replicas_in_sync
    if values.shape.rank > 1:
        values = tf.reduce_mean(values, axis=list(range(1, values.shape.rank)))
    if sample_weight is not None:
        sample_weight = tf.reshape(tf.cast(sample_weight, tf.float32), [-1])
    return tf.nn.compute_average_loss(values, sample_weight=sample_weight)
