"""Export a student to a full-integer int8 `.tflite` file and measure it.

Trains a small student on the embedded real MNIST digits (or loads one you
saved with `--student`), converts it to float32 and int8 TFLite files, and
prints size, accuracy through the LiteRT interpreter, latency and agreement
with the Keras model. Then quantization-aware fine-tuning (QAT) for
comparison, and the app-ready int8 classifier file with its metadata.

    python examples/export_int8.py [--student student.keras] [--epochs 3] [--output export/int8-example]
"""

import argparse
import os

import keras

from kerasdistill import data, export, files, models
from kerasdistill.losses import CrossEntropy

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--student", help="a saved .keras student; default: train one here")
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--qat-epochs", type=int, default=1)
parser.add_argument("--output", default="export/int8-example")
args = parser.parse_args()

digits = data.load_digits()
if args.student:
    student = files.load_model(args.student)
else:
    keras.utils.set_random_seed(0)
    student = models.build("convnet_student", (28, 28, 1), 10)
    student.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CrossEntropy(), metrics=["accuracy"])
    student.fit(*digits.train, epochs=args.epochs, batch_size=64, verbose=2)

# Post-training quantization: float32 as the reference, int8 calibrated on
# a few hundred training images (activation ranges).
os.makedirs(args.output, exist_ok=True)
float32 = export.to_tflite(student, os.path.join(args.output, "student_float32.tflite"))
int8 = export.to_tflite(
    student, os.path.join(args.output, "student_int8.tflite"), quantization="int8", representative_data=digits.train.x
)
print(f"int8 input: scale {int8.inputs[0].scale:g}, zero point {int8.inputs[0].zero_point}")

# Quantization-aware fine-tuning through tensorflow-model-optimization.
qat = export.quantize_aware(student, digits.train, epochs=args.qat_epochs)
qat_int8 = export.to_tflite(
    qat, os.path.join(args.output, "student_qat_int8.tflite"), quantization="int8", representative_data=digits.train.x
)

table = export.compare(student, [float32.path, int8.path, qat_int8.path], digits.test, num_threads=1)
print(table["table"])

# The file for a phone app: MediaPipe Tasks' ImageClassifier (Android, iOS,
# web) takes RGB frames as uint8 and names its scores with the labels the
# metadata carries. The digit student is grayscale: a luma layer goes in
# front; it outputs logits: a softmax goes behind.
app = export.to_tflite(
    student,
    os.path.join(args.output, "student_int8_classifier.tflite"),
    quantization="int8",
    representative_data=digits.train.x,
    target="classifier",
    class_names=digits.class_names,
)
metadata = export.read_metadata(app.path)
print(f"{os.path.basename(app.path)}: {app.size_bytes / 1024:.1f} KiB, input {app.inputs[0].dtype} {app.inputs[0].shape}, "
      f"labels {', '.join(metadata.labels)}")
print(export.evaluate_tflite(app.path, digits.test, keras_model=student, num_threads=1))
