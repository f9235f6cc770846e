"""Keras model -> `.tflite` file, with post-training quantization."""

import contextlib
import dataclasses
import io
import logging
import os
import re
import sys
import tempfile
import warnings

import numpy as np
import tensorflow as tf

from kerasdistill.backend import require_tensorflow_backend
from kerasdistill import files
from kerasdistill.defaults import QUANTIZATIONS, TARGETS
from kerasdistill.export.classifier import (
    RAW_PIXELS,
    check_class_names,
    check_normalization,
    check_pixel_range,
    classifier_metadata,
    classifier_model,
    gray_to_rgb,
    uint8_input_quantization,
)
from kerasdistill.export.metadata import write_metadata



@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One input or output of a `.tflite` file.

    `scale` and `zero_point` are the file's own quantization parameters
    (`real = scale * (q - zero_point)`); both are None for float tensors.
    """

    name: str
    shape: tuple
    dtype: str
    scale: float | None
    zero_point: int | None


@dataclasses.dataclass(frozen=True)
class TFLiteResult:
    """What `to_tflite` wrote: the path, its size, and its inputs' and outputs' types."""

    path: str
    quantization: str
    size_bytes: int
    inputs: tuple
    outputs: tuple
    target: str = "plain"
    class_names: tuple = ()

    def to_dict(self):
        return dataclasses.asdict(self)


def float32_copy(model):
    """`model` itself, or for a mixed-precision model a float32 copy with its weights.

    The converter cannot lower float16 compute (it fails on `tf.Relu` of
    f16 tensors); models trained under `mixed_float16` / `mixed_bfloat16`
    are exported from a float32 copy, then quantized as asked.
    """
    layers = getattr(model, "layers", None) or []
    policies = {getattr(getattr(layer, "dtype_policy", None), "name", "float32") for layer in layers}
    if not any(name.startswith("mixed_") for name in policies) or not hasattr(model, "get_config"):
        return model
    config = _policies_to_float32(model.get_config())
    copy = type(model).from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _policies_to_float32(config):
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicy" and str(config.get("config", {}).get("name", "")).startswith("mixed_"):
            return dict(config, config=dict(config["config"], name="float32"))
        return {key: _policies_to_float32(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_policies_to_float32(value) for value in config]
    return config


def to_tflite(
    model,
    path,
    quantization="float32",
    representative_data=None,
    calibration_steps=200,
    overwrite=True,
    target="plain",
    class_names=None,
    input_normalization=None,
    model_info=None,
):
    """Converts a Keras model to a `.tflite` file.

    `target="classifier"` makes the file an app drops into MediaPipe Tasks'
    `ImageClassifier` (Android, iOS, web, Python) or the TFLite Task
    Library: RGB images in, class probabilities out (a softmax appended to
    logits, a luma layer in front of a grayscale model), uint8 input and
    output when quantized to int8, and TFLite metadata with the input
    normalization and the labels file packed in (`read_metadata` reads it).

    Args:
        model: a Keras model (Keras 3 or tf_keras) with one input.
        path: where to write the file. Written atomically: a failed
            conversion leaves no file and an existing one untouched.
        quantization: `"float32"` (none), `"float16"` (float16 weights),
            `"dynamic"` (int8 weights, float activations), `"int8"` (full
            integer: int8 weights, activations, input and output) or
            `"int4"` (weight-only int4 by LiteRT's AI Edge Quantizer,
            `pip install ai-edge-quantizer`; plain files only).
        representative_data: calibration inputs for `"int8"`: a numpy array
            of inputs, a stream (`kerasdistill.streams`), an `(x, y)` tuple
            of either, or a `tf.data.Dataset` of `x` or
            `(x, y[, w])` batches, shaped like the model's input. For a
            classifier file of any quantization they are also checked
            against `input_normalization`.
        calibration_steps: at most this many samples are used for calibration.
        overwrite: whether an existing file at `path` may be replaced.
        target: `"plain"` (the model as it is; int8 input and output) or
            `"classifier"` (as above).
        class_names: for `"classifier"`: one name per class, in output order.
        input_normalization: for `"classifier"`: `(mean, std)` such that
            the model's input is `(pixel - mean) / std` for 0-255 pixels.
            Default `(0, 1)`: the model takes raw pixels and scales them
            itself, as every kerasdistill model does.
        model_info: for `"classifier"`: a dict of the metadata's `name`,
            `description`, `version`, `author` and `license` (text).

    Returns:
        A `TFLiteResult` with the path, the size in bytes, the input and
        output types, scales and zero points, the target and class names.

    Example:

    ```python
    result = to_tflite(student, "export/student_int8.tflite",
                       quantization="int8", representative_data=train_ds)
    print(result.size_bytes, result.inputs[0].scale)
    app_file = to_tflite(student, "export/flowers_int8_classifier.tflite", quantization="int8",
                         representative_data=train_ds, target="classifier", class_names=names)
    ```
    """
    require_tensorflow_backend("TFLite conversion (to_tflite)")
    classifier_options = (class_names, input_normalization, model_info)
    _check_arguments(model, path, quantization, representative_data, calibration_steps, overwrite, target, classifier_options)
    model = float32_copy(model)
    input_shape, input_dtype = _model_input(model)
    app = None
    if target == "classifier":
        app = _classifier_plan(model, class_names, input_normalization, model_info, quantization)
        model = app["model"]
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantization not in ("float32", "int4"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantization == "float16":
        converter.target_spec.supported_types = [tf.float16]
    samples = None
    if representative_data is not None and (quantization == "int8" or app is not None):
        samples = calibration_samples(representative_data, input_shape, input_dtype, calibration_steps)
    if app is not None and samples is not None:
        samples = [gray_to_rgb(sample) for sample in samples]
        # A float file has no calibration, but its data still tells a wrong normalization.
        check_pixel_range(samples, app["normalization"])
    if quantization == "int8":
        converter.representative_dataset = lambda: ([sample] for sample in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # On a phone, camera frames and scores are uint8 (MediaPipe refuses int8).
        integer = tf.int8 if app is None else tf.uint8
        converter.inference_input_type = integer
        converter.inference_output_type = integer
    content = _convert(converter, quantization)
    if quantization == "int4":
        content = int4_weights(content)
    if app is not None:
        content = write_metadata(content, app["metadata"], overwrite_input_quantization=app["pixels"])
    files.write_bytes(path, content, overwrite=overwrite)
    inputs, outputs = describe(content)
    names = () if app is None else app["metadata"].labels
    return TFLiteResult(os.fspath(path), quantization, len(content), inputs, outputs, target, names)


def _check_arguments(model, path, quantization, representative_data, calibration_steps, overwrite, target, classifier_options):
    """Refuses, before any conversion, arguments that cannot give the file asked for."""
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}; got {quantization!r}.")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}; got {target!r}.")
    if target == "plain" and classifier_options != (None, None, None):
        raise ValueError(
            "class_names, input_normalization and model_info are written into a classifier file's metadata; "
            "pass target='classifier' with them (a plain file has no metadata)."
        )
    if not isinstance(calibration_steps, int) or calibration_steps < 1:
        raise ValueError(f"calibration_steps must be a whole number >= 1; got {calibration_steps!r}.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder; give the path of the .tflite file to write, e.g. {os.path.join(path, 'student.tflite')}.")
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} already exists. Pass overwrite=True to replace it, or choose another path.")
    if hasattr(model, "student") and hasattr(model, "teachers"):
        raise ValueError(
            "This is a whole Distiller (teachers and student); a .tflite file holds the model you ship. Export "
            "`distiller.student`."
        )
    if quantization == "int4" and target == "classifier":
        raise ValueError(
            "quantization='int4' (weight-only int4) makes plain files; app runtimes such as MediaPipe Tasks expect "
            "float or int8 models. Use target='plain' with int4, or int8/float16 for a classifier file."
        )
    if quantization == "int4":
        import_quantizer()
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "quantization='int8' needs representative_data: a few hundred typical inputs "
            "(numpy array or tf.data.Dataset, e.g. the training set) to calibrate the "
            "activation ranges. Without data, use quantization='dynamic' or 'float16'."
        )


def import_quantizer():
    """LiteRT's AI Edge Quantizer (`ai_edge_quantizer`), or an error that says how to install it."""
    try:
        from ai_edge_quantizer import quantizer, recipe
    except ImportError:
        raise ImportError(
            "quantization='int4' uses LiteRT's AI Edge Quantizer, which is not installed: pip install ai-edge-quantizer "
            "(or pip install 'kerasdistill[int4]')."
        ) from None
    return quantizer, recipe


def int4_weights(content):
    """A float32 `.tflite` flatbuffer with its weights quantized to int4 (weight-only: activations stay float)."""
    quantizer, recipe = import_quantizer()
    # The quantizer prints a summary of its own; the export says what it wrote.
    with contextlib.redirect_stdout(io.StringIO()):
        return bytes(quantizer.Quantizer(content, recipe.weight_only_wi4_afp32()).quantize().quantized_model)


def _classifier_plan(model, class_names, input_normalization, model_info, quantization):
    """The wrapped model, normalization, metadata and uint8 input quantization of a `target="classifier"`
    export, checked up front."""
    normalization = check_normalization(RAW_PIXELS if input_normalization is None else input_normalization)
    # The uint8 input is the camera pixel itself, whatever range calibration saw.
    pixels = uint8_input_quantization(normalization) if quantization == "int8" else None
    app_model = classifier_model(model)
    names = check_class_names(class_names, int(app_model.outputs[0].shape[-1]))
    metadata = classifier_metadata(model, names, normalization, model_info)
    return {"model": app_model, "normalization": normalization, "metadata": metadata, "pixels": pixels}


def describe(content):
    """`(inputs, outputs)` of a `.tflite` flatbuffer, as tuples of `TensorInfo`."""
    from kerasdistill.export.interpreter import make_interpreter

    interpreter = make_interpreter(content)

    def info(details):
        scale, zero_point = details["quantization"]
        shape = tuple(int(d) for d in details.get("shape_signature", details["shape"]))
        quantized = np.issubdtype(np.dtype(details["dtype"]), np.integer) and scale != 0
        return TensorInfo(
            details["name"], shape, np.dtype(details["dtype"]).name,
            float(scale) if quantized else None, int(zero_point) if quantized else None,
        )

    return (
        tuple(info(d) for d in interpreter.get_input_details()),
        tuple(info(d) for d in interpreter.get_output_details()),
    )


def calibration_samples(data, input_shape, input_dtype, limit):
    """Up to `limit` single-sample float32 batches from `data`, checked against the model's input."""
    samples = []
    for batch in _iterate_inputs(data):
        batch = np.asarray(batch)
        if batch.shape[1:] != tuple(input_shape):
            raise ValueError(
                f"representative_data has samples of shape {batch.shape[1:]}, but the model takes "
                f"{tuple(input_shape)}. Pass inputs shaped like the model's input (the same "
                "preprocessing as for training)."
            )
        if not (np.issubdtype(batch.dtype, np.number) or batch.dtype == bool):
            raise ValueError(f"representative_data must be numeric; got dtype {batch.dtype}.")
        for sample in batch:
            samples.append(sample[np.newaxis].astype(input_dtype))
            if len(samples) >= limit:
                return samples
    if not samples:
        raise ValueError("representative_data is empty; pass at least one input sample.")
    if all(np.array_equal(sample, samples[0]) for sample in samples[1:]):
        warnings.warn(
            f"The {len(samples)} calibration samples are all identical (constant data?): int8 activation ranges "
            "calibrated on them will clip real inputs. Pass typical inputs, e.g. a few hundred training images.",
            UserWarning,
            stacklevel=3,
        )
    return samples


def _iterate_inputs(data):
    if isinstance(data, tf.data.Dataset):
        for element in data.as_numpy_iterator():
            yield element[0] if isinstance(element, tuple) else element
    elif hasattr(data, "batches") or (isinstance(data, tuple) and hasattr(data[0], "batches")):
        # A stream (kerasdistill.streams): read a batch at a time, only as far as the calibration needs.
        yield from (data[0] if isinstance(data, tuple) else data).batches(64)
    elif isinstance(data, tuple):
        yield data[0]
    elif isinstance(data, np.ndarray):
        yield data
    else:
        raise TypeError(
            "representative_data must be a numpy array, a stream, an (x, y) tuple or a tf.data.Dataset; "
            f"got {type(data).__name__}."
        )


def _model_input(model):
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        raise ValueError("to_tflite needs a built model with exactly one input (Sequential or functional).")
    shape = tuple(inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"The model's input shape {shape} has unknown dimensions; give the Input a fixed shape.")
    dtype = inputs[0].dtype
    return shape, dtype if isinstance(dtype, str) else dtype.name


_OP_PATTERNS = (
    re.compile(r"'(tfl\.\w+|tf\.\w+)' op"),
    re.compile(r"\bop: (\w+)"),
    re.compile(r"Unsupported ops?:?\s*([\w, ]+)"),
)


@contextlib.contextmanager
def _quiet(log):
    """Sends everything written to stdout and stderr, C++ logs included, to a file, then into `log`.

    The converter prints its traced signature and pages of MLIR/absl logs;
    they are hidden from the user's terminal and shown only on failure.
    """
    _flush()
    saved = [os.dup(1), os.dup(2)]
    # In a notebook, Python's own prints and TensorFlow's logger go to the
    # kernel's streams, not to descriptors 1 and 2: they are captured too.
    text = io.StringIO()
    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    with tempfile.TemporaryFile() as sink, contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        tf_logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            tf_logger.setLevel(level)
            _flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for descriptor in saved:
                os.close(descriptor)
            sink.seek(0)
            log.write(sink.read() + text.getvalue().encode())


def _flush():
    # sys.stdout and sys.stderr are None under pythonw and in some services.
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()


def _convert(converter, quantization):
    log = io.BytesIO()
    try:
        with _quiet(log), warnings.catch_warnings():
            # Emitted for every int8-input model; the input scale is read from the file instead.
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs were expected")
            return converter.convert()
    except Exception as error:  # the converter raises ConverterError, ValueError or RuntimeError
        message = f"{error}\n{log.getvalue().decode(errors='replace')}"
        ops = sorted({op for pattern in _OP_PATTERNS for op in pattern.findall(message)})
        hint = ""
        if quantization == "int8":
            hint = (
                " Some ops have no int8 kernel in TFLite: use quantization='dynamic' (int8 weights, "
                "float activations) or 'float16', or replace those layers."
            )
        named = f" Ops involved: {', '.join(ops)}." if ops else ""
        raise ValueError(f"TFLite conversion ({quantization}) failed.{named}{hint}\n{message[-3000:]}") from None
