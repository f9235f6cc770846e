"""Running `.tflite` files with the LiteRT interpreter: outputs, accuracy, latency."""

import os
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

from kerasdistill.data import as_arrays
from kerasdistill.export.classifier import classifier_model, gray_to_rgb
from kerasdistill.export.metadata import find_metadata
from kerasdistill.files import save_model
from kerasdistill.metrics import class_indices, classification_report, input_batches, keras_outputs
from kerasdistill.tables import format_table


def make_interpreter(model, num_threads=None):
    """A LiteRT `Interpreter` for a `.tflite` path or flatbuffer bytes, with a clear error for a bad file."""
    from ai_edge_litert.interpreter import Interpreter

    source = "the given bytes"
    kwargs = {"num_threads": num_threads} if num_threads else {}
    try:
        if isinstance(model, (bytes, bytearray)):
            interpreter = Interpreter(model_content=bytes(model), **kwargs)
        else:
            source = os.fspath(model)
            if not os.path.isfile(source):
                raise FileNotFoundError(f"No .tflite file at {source}. Export one with kerasdistill.export.to_tflite.")
            interpreter = Interpreter(model_path=source, **kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:
        raise ValueError(
            f"{source} is not a valid .tflite model ({str(error).strip()}). It may be truncated or "
            "not a TFLite file; export it again with kerasdistill.export.to_tflite."
        ) from None
    return interpreter


class TFLiteModel:
    """A `.tflite` file that predicts like a Keras model.

    Inputs are quantized and outputs dequantized with the file's own scales
    and zero points, so `predict` takes and returns the same float values as
    the Keras model it came from. A classifier file (`metadata` not None)
    takes grayscale images too, as RGB with R = G = B.

    Args:
        model: path of a `.tflite` file, or its bytes.
        num_threads: interpreter threads (None: LiteRT's default).

    Example:

    ```python
    tflite = TFLiteModel("export/student_int8.tflite", num_threads=1)
    scores = tflite.predict(x_test)
    ```
    """

    def __init__(self, model, num_threads=None):
        self.path = None if isinstance(model, (bytes, bytearray)) else os.fspath(model)
        self.interpreter = make_interpreter(model, num_threads)
        self.metadata = find_metadata(model)
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(f"Only single-input, single-output models are supported; got {len(inputs)} and {len(outputs)}.")
        self._input, self._output = inputs[0], outputs[0]
        self.input_shape = tuple(int(d) for d in self._input["shape_signature"][1:])
        self._batch = int(self._input["shape"][0])

    def _resize(self, batch):
        if batch != self._batch:
            self.interpreter.resize_tensor_input(self._input["index"], [batch, *self.input_shape])
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = self.interpreter.get_output_details()[0]
            self._batch = batch

    def _quantize(self, x):
        dtype = self._input["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero_point = self._input["quantization"]
            info = np.iinfo(dtype)
            return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
        return x.astype(dtype)

    def _dequantize(self, y):
        if np.issubdtype(self._output["dtype"], np.integer):
            scale, zero_point = self._output["quantization"]
            return (y.astype(np.float32) - zero_point) * scale
        return y.astype(np.float32)

    def as_input(self, x):
        """`x` as the file takes it: grayscale images repeated to RGB for a classifier file."""
        x = np.asarray(x, dtype=np.float32)
        rgb = self.metadata is not None and self.input_shape[-1] == 3
        if rgb and x.ndim == 4 and x.shape[1:-1] == self.input_shape[:-1]:
            return gray_to_rgb(x)
        return x

    def __call__(self, x):
        x = self.as_input(x)
        if x.shape[1:] != self.input_shape:
            raise ValueError(f"Inputs of shape {x.shape[1:]} given; the model takes {self.input_shape}.")
        self._resize(len(x))
        self.interpreter.set_tensor(self._input["index"], self._quantize(x))
        self.interpreter.invoke()
        return self._dequantize(self.interpreter.get_tensor(self._output["index"]))

    def predict(self, x, batch_size=64):
        """Dequantized outputs for inputs `x` (an array, or a stream read in batches), computed `batch_size` at a time."""
        return np.concatenate([self(batch) for batch in input_batches(x, batch_size)])

    def latency_ms(self, sample, runs=50, warmup=5):
        """Median milliseconds of one invocation on a batch of one image."""
        sample = np.asarray(sample, dtype=np.float32)[:1]
        for _ in range(warmup):
            self(sample)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            self(sample)
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)


def evaluate_tflite(path, data, keras_model=None, num_threads=None, batch_size=64, latency_runs=50):
    """Measures a `.tflite` file: size, accuracy, latency, agreement with the Keras model.

    Args:
        path: the `.tflite` file.
        data: `(x, y)` arrays (`x` may be a stream, read in batches) or a
            `tf.data.Dataset` of `(x, y)` batches.
        keras_model: the Keras model the file came from; when given, the
            report adds the top-1 agreement and the largest absolute output
            difference between the two.
        num_threads: interpreter threads for the latency measurement.
        batch_size: batch size of the accuracy pass.
        latency_runs: timed single-image invocations (median reported).

    Returns:
        A dict: `path`, `size_bytes`, `accuracy`, `latency_ms` (per image,
        batch of one), `class_names` for a classifier file, and with
        `keras_model` also `agreement` and `max_abs_diff`.

    Example:

    ```python
    report = evaluate_tflite("export/student_int8.tflite", test_ds, keras_model=student)
    ```
    """
    x, y = as_arrays(data)
    return _measure(path, x, y, _Reference(keras_model, x), num_threads, batch_size, latency_runs)


class _Reference:
    """The Keras model's outputs on `x` as each kind of file computes them: for a
    classifier file, RGB images in and probabilities out (computed once per kind)."""

    def __init__(self, model, x):
        self.model, self.x, self.outputs = model, x, {}

    def __call__(self, tflite=None):
        """Outputs for what `tflite` computes (None: the Keras model's own)."""
        if self.model is None:
            return None
        classifier = tflite is not None and tflite.metadata is not None
        if classifier not in self.outputs:
            model = classifier_model(self.model) if classifier else self.model
            self.outputs[classifier] = keras_outputs(model, self.x, prepare=tflite.as_input if classifier else None)
        return self.outputs[classifier]


def _measure(path, x, y, references, num_threads, batch_size, latency_runs):
    tflite = TFLiteModel(path, num_threads=num_threads)
    outputs = tflite.predict(x, batch_size=batch_size)
    reference = references(tflite)
    labels = class_indices(y)
    if len(labels) and (labels.min() < 0 or labels.max() >= outputs.shape[-1]):
        raise ValueError(
            f"The labels range over [{labels.min()}, {labels.max()}] but {os.fspath(path)} outputs "
            f"{outputs.shape[-1]} class scores. Give the labels of the data this model was trained on "
            f"(class indices 0..{outputs.shape[-1] - 1})."
        )
    predicted = np.argmax(outputs, axis=-1)
    report = {
        "path": os.fspath(path),
        "size_bytes": os.path.getsize(path),
        **classification_report(labels, outputs),
        "latency_ms": tflite.latency_ms(x[:1], runs=latency_runs),
    }
    if tflite.metadata is not None:
        report["class_names"] = list(tflite.metadata.labels)
    if reference is not None:
        report["agreement"] = float(np.mean(predicted == np.argmax(reference, axis=-1)))
        report["max_abs_diff"] = float(np.max(np.abs(outputs - reference)))
    return report


def keras_latency_ms(model, sample, runs=50, warmup=5):
    """Median milliseconds of the Keras model's compiled forward pass on one image."""
    forward = tf.function(lambda x: model(x, training=False))
    sample = tf.constant(np.asarray(sample, dtype=np.float32)[:1])
    for _ in range(warmup):
        forward(sample)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        forward(sample).numpy()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


COMPARE_COLUMNS = [
    ("model", "model", None),
    ("size_kib", "size (KiB)", ".1f"),
    ("accuracy", "accuracy", ".4f"),
    ("f1_macro", "F1 (macro)", ".4f"),
    ("latency_ms", "latency (ms/image)", ".3f"),
    ("runtime", "runtime", None),
    ("agreement", "agreement", ".4f"),
]


def compare(keras_model, paths, data, keras_path=None, num_threads=None, latency_runs=50, keras_name=None):
    """One table: the Keras model and each `.tflite` file, on the same data.

    Args:
        keras_model: the Keras model.
        paths: `.tflite` files exported from it.
        data: `(x, y)` arrays (`x` may be a stream, read in batches) or a
            `tf.data.Dataset` of `(x, y)` batches.
        keras_path: the model's saved `.keras` file, for its size (default:
            the size of the model saved to a temporary file).
        num_threads: interpreter threads.
        latency_runs: timed single-image invocations per model.
        keras_name: the Keras row's name (default `keras (<model name>)`).

    Returns:
        `{"rows": [...], "table": str}`; a row per model with size, accuracy,
        latency per image and top-1 agreement with the Keras model.

    Example:

    ```python
    print(compare(student, ["student_float32.tflite", "student_int8.tflite"], test_ds)["table"])
    ```
    """
    x, y = as_arrays(data)
    references = _Reference(keras_model, x)
    reference = references()
    rows = [
        {
            "model": keras_name or f"keras ({keras_model.name})",
            "size_kib": _keras_size_kib(keras_model, keras_path),
            **classification_report(class_indices(y), reference),
            "latency_ms": keras_latency_ms(keras_model, x[:1], runs=latency_runs),
            # TensorFlow's thread pools are fixed when it starts: the Keras
            # row runs on all of them, which the table says.
            "runtime": f"keras, {os.cpu_count()} threads",
            "agreement": 1.0,
        }
    ]
    for path in paths:
        report = _measure(path, x, y, references, num_threads, 64, latency_runs)
        rows.append(
            {
                "model": os.path.basename(os.fspath(path)),
                "size_kib": report["size_bytes"] / 1024,
                "runtime": f"litert, {num_threads or 'default'} thread{'' if num_threads == 1 else 's'}",
                **{k: v for k, v in report.items() if k != "size_bytes"},
            }
        )
    return {"rows": rows, "table": format_table(rows, COMPARE_COLUMNS)}


def _keras_size_kib(model, path):
    """KiB of the model's `.keras` file: `path`, or the model saved to a temporary file."""
    if path is None:
        with tempfile.TemporaryDirectory(prefix="kerasdistill-size-") as folder:
            path = os.path.join(folder, "model.keras")
            return os.path.getsize(save_model(model, path, include_optimizer=False)) / 1024
    return os.path.getsize(path) / 1024
