"""The export stage: Keras students to quantized `.tflite` files, measured on the file itself.

```python
from kerasdistill import export
result = export.to_tflite(student, "export/student_int8.tflite",
                          quantization="int8", representative_data=train_ds)
report = export.evaluate_tflite(result.path, test_ds, keras_model=student)
print(export.compare(student, [result.path], test_ds)["table"])
# For an Android/iOS app (MediaPipe Tasks): RGB in, probabilities out, labels inside.
app = export.to_tflite(student, "export/student_int8_classifier.tflite", quantization="int8",
                       representative_data=train_ds, target="classifier", class_names=names)
print(export.read_metadata(app.path).labels)
```

TensorFlow-only: converting and quantizing run on Keras' TensorFlow backend,
and the package must be installed.
"""

import importlib.util


def _tensorflow_installed():
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except ImportError:
        return False


if not _tensorflow_installed():
    raise ImportError(
        "kerasdistill.export (TFLite conversion and quantization, the LiteRT interpreter, tfmot QAT and pruning) "
        "needs the 'tensorflow' package, which is not installed here: pip install tensorflow (or pip install "
        "kerasdistill, whose default install includes it)."
    )

from kerasdistill.export.bridge import to_tf_keras  # noqa: E402
from kerasdistill.export.classifier import classifier_model  # noqa: E402
from kerasdistill.export.interpreter import TFLiteModel, compare, evaluate_tflite  # noqa: E402
from kerasdistill.export.metadata import ClassifierMetadata, read_metadata  # noqa: E402
from kerasdistill.export.optimize import PruneResult, gzip_size, prune, quantize_aware  # noqa: E402
from kerasdistill.export.tflite import QUANTIZATIONS, TensorInfo, TFLiteResult, to_tflite  # noqa: E402

__all__ = [
    "ClassifierMetadata",
    "PruneResult",
    "QUANTIZATIONS",
    "TFLiteModel",
    "TFLiteResult",
    "TensorInfo",
    "classifier_model",
    "compare",
    "evaluate_tflite",
    "gzip_size",
    "prune",
    "quantize_aware",
    "read_metadata",
    "to_tf_keras",
    "to_tflite",
]
