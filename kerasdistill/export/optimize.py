"""Quantization-aware training and pruning with tensorflow-model-optimization.

tfmot works on tf_keras models only; the Keras 3 students of this package are
carried over with `to_tf_keras` first. Both methods fine-tune the model,
optionally with a teacher's soft targets (distillation-aware QAT and
pruning): the teacher's logits are computed once over the training inputs,
then the loss is `alpha * cross-entropy + (1 - alpha) * SoftTargetKL`.
Random augmentation must not be part of `train_data` then, since the cached
logits belong to the un-augmented inputs.
"""

import dataclasses
import gzip
import os

import numpy as np
import tensorflow as tf

from kerasdistill import defaults
from kerasdistill.backend import require_tensorflow_backend
from kerasdistill.export.bridge import to_tf_keras
from kerasdistill.data import as_arrays
from kerasdistill.metrics import class_indices
from kerasdistill.losses import SoftTargetKL
from kerasdistill.losses.arguments import check_temperature
from kerasdistill.losses.base import logits_from
from kerasdistill.losses.objective import mix_losses


def import_tfmot():
    """Imports tensorflow_model_optimization without its process-wide side effect.

    Importing tfmot sets `TF_USE_LEGACY_KERAS=1` in `os.environ`; every
    subprocess started afterwards (a worker, a `kerasdistill` command) would
    then load tf_keras instead of Keras 3 and fail to read Keras 3 models.
    The variable is put back as it was.
    """
    previous = os.environ.get("TF_USE_LEGACY_KERAS")
    try:
        import tensorflow_model_optimization as tfmot
    finally:
        if previous is None:
            os.environ.pop("TF_USE_LEGACY_KERAS", None)
        else:
            os.environ["TF_USE_LEGACY_KERAS"] = previous
    return tfmot


def quantize_aware(
    model,
    train_data,
    teacher=None,
    epochs=2,
    alpha=defaults.ALPHA,
    temperature=defaults.TEMPERATURE,
    learning_rate=defaults.LEARNING_RATE,
    batch_size=defaults.BATCH_SIZE,
    verbose=0,
):
    """Quantization-aware fine-tuning of a Keras model (QAT), optionally distilled.

    Args:
        model: a Keras 3 (or tf_keras) Sequential/functional model of
            standard layers, outputting logits.
        train_data: `(x, y)` arrays or a `tf.data.Dataset` of `(x, y)` batches.
        teacher: a Keras model whose soft targets guide the fine-tuning
            (distillation-aware QAT); None fine-tunes on the labels alone.
        epochs: fine-tuning epochs.
        alpha: weight of the label loss when a teacher is given.
        temperature: distillation temperature.
        learning_rate: Adam learning rate. The fake-quantized model (BatchNorm
            folded into its convolutions) starts below the float one and
            must recover: on the embedded digits 1e-3 reached the PTQ
            accuracy in 2 epochs, 1e-5 stayed 3 points lower.
        batch_size: batch size.
        verbose: Keras verbosity of the fine-tuning.

    Returns:
        The QAT `tf_keras.Model` (fake-quantized). Convert it with
        `to_tflite(qat_model, path, quantization="int8", representative_data=...)`.

    Example:

    ```python
    qat = quantize_aware(student, (x_train, y_train), teacher=teacher, epochs=1)
    to_tflite(qat, "export/student_qat_int8.tflite", "int8", representative_data=x_train)
    ```
    """
    require_tensorflow_backend("Quantization-aware training (quantize_aware)")
    import tf_keras

    tfmot = import_tfmot()
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry,
    )

    legacy = to_tf_keras(model)
    registry = default_8bit_quantize_registry.Default8BitQuantizeRegistry()

    def annotate(layer):
        # BatchNorm is folded into the convolution before it by tfmot's
        # transforms; layers tfmot cannot quantize (Rescaling, ...) stay
        # float and are calibrated by the int8 converter instead.
        if registry.supports(layer) or isinstance(layer, tf_keras.layers.BatchNormalization):
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        return layer

    # The annotations wrap the original layers, so the weights come along.
    annotated = tf_keras.models.clone_model(legacy, clone_function=annotate)
    with tfmot.quantization.keras.quantize_scope():
        qat = tfmot.quantization.keras.quantize_apply(annotated)
    _fine_tune(qat, model, train_data, teacher, epochs, alpha, temperature, learning_rate, batch_size, verbose)
    return qat


@dataclasses.dataclass
class PruneResult:
    """What `prune` made: the stripped tf_keras model and the sparsity it reached."""

    model: object
    sparsity: float
    target_sparsity: float


def prune(
    model,
    train_data,
    target_sparsity=0.5,
    teacher=None,
    epochs=2,
    alpha=defaults.ALPHA,
    temperature=defaults.TEMPERATURE,
    learning_rate=defaults.LEARNING_RATE,
    batch_size=defaults.BATCH_SIZE,
    verbose=0,
):
    """Magnitude pruning with a polynomial schedule, then `strip_pruning`.

    Sparsity rises from 0 to `target_sparsity` over the fine-tuning steps;
    zeros compress, so the gzip size of the exported file is what shrinks
    (see `gzip_size`).

    Args:
        model: a Keras 3 (or tf_keras) Sequential/functional model, outputting logits.
        train_data: `(x, y)` arrays or a `tf.data.Dataset` of `(x, y)` batches.
        target_sparsity: fraction of weights set to zero, in (0, 1).
        teacher, epochs, alpha, temperature, batch_size, verbose: as for
            `quantize_aware`.
        learning_rate: Adam learning rate, high enough to recover from the
            zeroed weights (1e-4 lost 4 points at 60% sparsity where 1e-3
            lost none on the embedded digits).

    Returns:
        A `PruneResult`: the stripped `tf_keras.Model` and the measured
        sparsity of its prunable kernels.

    Example:

    ```python
    pruned = prune(student, (x_train, y_train), target_sparsity=0.6, teacher=teacher)
    to_tflite(pruned.model, "export/student_pruned.tflite")
    ```
    """
    require_tensorflow_backend("Pruning (prune)")
    import tf_keras

    tfmot = import_tfmot()
    from tensorflow_model_optimization.python.core.sparsity.keras import prune_registry

    if not 0.0 < target_sparsity < 1.0:
        raise ValueError(f"target_sparsity must be in (0, 1), e.g. 0.5; got {target_sparsity!r}.")
    x, _ = as_arrays(train_data)
    steps = epochs * int(np.ceil(len(x) / batch_size))
    # Masks are updated every `frequency` steps; the schedule ends on an
    # update step so that the last masks reach the target sparsity.
    frequency = max(1, steps // 20)
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=float(target_sparsity),
        begin_step=0,
        end_step=max(frequency, frequency * ((steps - 1) // frequency)),
        frequency=frequency,
    )

    def wrap(layer):
        # Only layers with prunable kernels; the rest (Rescaling, ...) as they are.
        if layer.weights and prune_registry.PruneRegistry.supports(layer):
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    legacy = to_tf_keras(model)
    # The wrappers hold the original layers, so the weights come along.
    pruned = tf_keras.models.clone_model(legacy, clone_function=wrap)
    _fine_tune(
        pruned, model, train_data, teacher, epochs, alpha, temperature, learning_rate, batch_size, verbose,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    kernels = [layer.kernel.numpy() for layer in stripped.layers if hasattr(layer, "kernel")]
    zeros = sum(int(np.sum(kernel == 0)) for kernel in kernels)
    total = sum(kernel.size for kernel in kernels)
    return PruneResult(stripped, zeros / total, float(target_sparsity))


def gzip_size(path):
    """Bytes of the file at `path` once gzip-compressed (what a download or an app bundle costs)."""
    with open(path, "rb") as handle:
        return len(gzip.compress(handle.read(), compresslevel=9))


def _fine_tune(legacy, model, train_data, teacher, epochs, alpha, temperature, learning_rate, batch_size, verbose, callbacks=()):
    import tf_keras

    from kerasdistill.checks import probe, resolve_output_kind
    from kerasdistill.distiller import Distiller

    x, y = as_arrays(train_data)
    labels = class_indices(y).astype(np.float32)
    if teacher is None:
        targets = labels[:, None]
    else:
        check_temperature(temperature)
        # The Distiller's checks (output widths, logits vs probabilities) and
        # its conversion of the teacher's outputs to logits, applied once.
        distiller = Distiller(teacher, model)
        teacher_logits = np.concatenate(
            [np.asarray(distiller.teacher_logits(x[i : i + 256])) for i in range(0, len(x), 256)]
        )
        targets = np.concatenate([labels[:, None], teacher_logits], axis=1)
    soft_targets = SoftTargetKL(temperature=temperature)
    # A student ending in a softmax outputs probabilities: its loss needs logits.
    kind = resolve_output_kind(model, "auto", probe(model), "student")

    def loss(packed, student_outputs):
        student_logits = logits_from(student_outputs, kind)
        hard = tf.nn.sparse_softmax_cross_entropy_with_logits(tf.cast(packed[:, 0], tf.int32), student_logits)
        if teacher is None:
            return hard
        # The Distiller's objective, so QAT fine-tuning weighs labels and teacher exactly as distillation did.
        return mix_losses({"soft_target_kl": soft_targets.call(packed[:, 1:], student_logits)}, hard, alpha)["loss"]

    legacy.compile(optimizer=tf_keras.optimizers.Adam(learning_rate), loss=loss)
    legacy.fit(x, targets, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose, callbacks=list(callbacks))
