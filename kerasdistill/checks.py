"""Checks of the models and data given to a `Distiller`, run before any step.

Each raises an error that names what was wrong and what to pass instead.
Used by the Distiller, the teacher-output cache and QAT; they run on the
user's models once, in eager mode, not inside a training step.
"""


import inspect

import numpy as np

from keras import ops

from kerasdistill.backend import backend_name, is_tf_dataset, keras, tf
from kerasdistill.batch import is_one_hot
from kerasdistill.callbacks import StopOnNonFinite
from kerasdistill.losses.arguments import check_weight
from kerasdistill.ranges import in_range

OUTPUT_KINDS = ("auto", "logits", "probabilities")
MIXING_LAYERS = ("MixUp", "CutMix")


def check_data(x, y, student, purpose):
    """Refuses, before any step runs, data the models cannot learn from."""
    if is_tf_dataset(x):
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
    expected = input_shape(student)
    if expected is not None:
        got = tuple(x.shape[1:])
        if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
            hint = " Add the channel axis with x[..., None]." if got == tuple(expected[:-1]) else ""
            raise ValueError(
                f"The {purpose} inputs have shape {got} per sample but the models take {expected}. "
                f"Resize or reshape the data (keras.layers.Resizing, tf.image.resize).{hint}"
            )
    if y is not None and not isinstance(y, dict):
        check_labels(np.asarray(y), output_width(student, None), purpose)


def check_labels(y, classes, purpose):
    if y.size and not (np.issubdtype(y.dtype, np.number) or y.dtype == bool):
        raise TypeError(
            f"The {purpose} labels have dtype {y.dtype} (e.g. {y.flat[0]!r}); the losses need class indices. "
            "Map them to 0..C-1, e.g. names, y = np.unique(y, return_inverse=True)."
        )
    if classes is None or y.size == 0:
        return
    if y.ndim == 2 and is_one_hot(y.shape, classes):
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


def check_teachers(teachers, kinds, student, classes):
    """Checks the teachers against the student; returns each teacher's output kind.

    Args:
        teachers: the list of teacher models.
        kinds: `teacher_outputs` as given: one kind, or a list of one per teacher.
        student: the student model.
        classes: the student's output width.
    """
    if not teachers:
        raise ValueError("teacher is an empty list; pass one teacher model or a list of them.")
    kinds = kinds if isinstance(kinds, (list, tuple)) else [kinds] * len(teachers)
    if len(kinds) != len(teachers):
        raise ValueError(
            f"teacher_outputs lists {len(kinds)} kinds for {len(teachers)} teachers; give one per "
            "teacher, or one string for all."
        )
    resolved = []
    for index, (model, kind) in enumerate(zip(teachers, kinds)):
        role = "teacher" if len(teachers) == 1 else f"teacher {index}"
        check_model(model, role)
        if model is student:
            raise ValueError(
                f"The {role} and the student are the same model object. Pass a separate student, "
                "e.g. keras.models.clone_model(teacher) or a smaller model."
            )
        check_same_inputs(model, student, role)
        probed = probe(model)
        resolved.append(resolve_output_kind(model, kind, probed, role))
        check_same_classes(output_width(model, probed), classes, role)
    check_no_shared_variables(teachers, student)
    return resolved


def check_cached_batch(distillation_losses, augmentation):
    """Refuses cached teacher outputs where the step needs the teacher itself."""
    tapping = "', '".join(loss.name for loss in distillation_losses if loss.pairs)
    if tapping:
        raise ValueError(
            f"The '{tapping}' loss compares intermediate layers, which cached teacher outputs do not "
            "hold; distill from the original dataset (online), or drop that loss."
        )
    if augmentation is not None:
        raise ValueError(
            "This Distiller augments its batches (augmentation=...), but the batches carry cached teacher "
            "outputs, which belong to the un-augmented inputs. Cache the teacher on augmented views "
            "instead: cache_teacher_outputs(teacher, data, augmentation=..., views=K), and distill from "
            "that cache with a Distiller without augmentation."
        )


def check_no_shared_variables(teachers, student):
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


def check_teacher_weights(weights, count):
    if weights is None:
        return tuple([1.0 / count] * count)
    if not isinstance(weights, (list, tuple)) or len(weights) != count:
        raise ValueError(f"teacher_weights needs one number per teacher ({count}); got {weights!r}.")
    checked = [check_weight(w, "each teacher weight") for w in weights]
    if sum(checked) <= 0:
        raise ValueError(f"teacher_weights must not all be 0; got {weights!r}.")
    return tuple(w / sum(checked) for w in checked)


def check_trainable(student):
    if not student.trainable_weights:
        raise ValueError(
            f"The student '{student.name}' has no trainable weights (student.trainable is "
            f"{student.trainable}): distillation would change nothing. Set student.trainable = True, or unfreeze "
            "its layers (kerasdistill.transfer.unfreeze for a backbone student)."
        )


def check_model(model, role):
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


def input_shape(model):
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        return None
    return tuple(inputs[0].shape[1:])


def check_same_inputs(teacher, student, role="teacher"):
    teacher_shape, student_shape = input_shape(teacher), input_shape(student)
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


def probe(model):
    """Runs `model` in inference mode on a small random batch, or returns None
    where its input shape is not fully known."""
    shape = input_shape(model)
    if shape is None or any(d is None for d in shape):
        return None
    dtype = model.inputs[0].dtype
    dtype = dtype if isinstance(dtype, str) else dtype.name
    batch = np.random.default_rng(0).uniform(0.0, 1.0, size=(2,) + shape)
    outputs = model(batch.astype(dtype), training=False)
    if isinstance(outputs, (list, tuple, dict)):
        return None
    return ops.convert_to_numpy(outputs).astype(np.float64)


def output_width(model, probed):
    if probed is not None:
        return probed.shape[-1]
    outputs = getattr(model, "outputs", None)
    return outputs[0].shape[-1] if outputs else None


def check_same_classes(teacher_width, student_width, role="teacher"):
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


def resolve_output_kind(model, kind, probed, role):
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"{role}_outputs must be one of {OUTPUT_KINDS}; got {kind!r}.")
    observed = None
    if probed is not None:
        observed = "probabilities" if _looks_like_probabilities(probed) else "logits"
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


def check_augmentation(augmentation, student):
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
    shape = input_shape(student)
    if shape is not None and all(d is not None for d in shape):
        model.build((None,) + shape)
    return model


def _mixing_layers(augmentation):
    if augmentation is None:
        return []
    return [layer.name for layer in augmentation.layers if type(layer).__name__ in MIXING_LAYERS]


def check_mixing(augmentation, alpha):
    mixing = _mixing_layers(augmentation)
    if mixing and alpha > 0:
        raise ValueError(
            f"The augmentation mixes images across the batch ({', '.join(mixing)}) but alpha={alpha:g} also trains "
            "on the labels, which are not mixed with them. Pass alpha=0 (pure distillation: the teacher labels "
            "the mixed images, as in Beyer et al. 2022), or drop the mixing layer."
        )


def check_alpha(alpha):
    if not in_range(alpha, 0.0, 1.0):
        raise ValueError(
            f"alpha is the weight of the student (label) loss and must be in [0, 1] "
            f"(1 - alpha weighs the distillation loss); got {alpha!r}. The keras.io example uses 0.1."
        )
    return float(alpha)



def assert_labels_in_range(labels, classes):
    """Sparse labels with an in-graph range check (`fit` checks only the first batch itself).

    One-hot rows and float labels are returned as they are. On TensorFlow
    only: the check runs inside the compiled step there; JAX has no in-graph
    assertion, and the other backends rely on the first batch's check.
    """
    if classes is None or is_one_hot(labels.shape, classes) or backend_name() != "tensorflow" or not labels.dtype.is_integer:
        return labels
    message = (
        f"A batch holds labels outside [0, {classes}) (the student outputs {classes} scores); the first "
        "batch was fine, a later one is not. Check the labels of the whole dataset, e.g. "
        "np.unique(y), and re-encode them as 0..C-1."
    )
    with tf.control_dependencies(
        [
            tf.debugging.assert_non_negative(labels, message=message),
            tf.debugging.assert_less(labels, tf.cast(classes, labels.dtype), message=message),
        ]
    ):
        return tf.identity(labels)


class CheckedFit:
    """Mixin of the Distiller: `fit`, `evaluate` and `*_on_batch` check before any step.

    They refuse to run before `compile`, and `fit`/`evaluate` check the data
    against `self.student` (`check_data`). `fit` also adds a
    `StopOnNonFinite` callback, and binds positional arguments by name so
    the callbacks among them are seen.
    """

    def _require_compiled(self, method):
        if getattr(self, "distillation_losses", None) is None:
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
        check_data(x, y, self.student, "training")
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
        check_data(x, y, self.student, "evaluation")
        return super().evaluate(x, y, *args, **kwargs)

    def train_on_batch(self, *args, **kwargs):
        self._require_compiled("train_on_batch")
        return super().train_on_batch(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        self._require_compiled("test_on_batch")
        return super().test_on_batch(*args, **kwargs)
