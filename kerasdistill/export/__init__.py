"""The export stage: Keras students to quantized `.tflite` files, measured on the file itself.

```python
from kerasdistill import export
result = export.to_tflite(student, "export/student_int8.tflite",
                          quantization="int8", representative_data=train_ds)
report = export.evaluate_tflite(result.path, test_ds, keras_model=student)
print(export.compare(student, [result.path], test_ds)["table"])
```
"""

from kerasdistill.export.bridge import to_tf_keras
from kerasdistill.export.interpreter import TFLiteModel, compare, evaluate_tflite
from kerasdistill.export.optimize import PruneResult, gzip_size, prune, quantize_aware
from kerasdistill.export.tflite import QUANTIZATIONS, TensorInfo, TFLiteResult, to_tflite

__all__ = [
    "PruneResult",
    "QUANTIZATIONS",
    "TFLiteModel",
    "TFLiteResult",
    "TensorInfo",
    "compare",
    "evaluate_tflite",
    "gzip_size",
    "prune",
    "quantize_aware",
    "to_tf_keras",
    "to_tflite",
]
