"""PTQ vs QAT vs distillation-aware QAT vs pruning, on the embedded digits, in one run.

The setting of `kerasdistill run`: a teacher and a distilled student (5
epochs each). The student is then exported as float32, float16 and
post-training int8 (PTQ); fine-tuned with quantization-aware training on the
labels and on the teacher's soft targets and exported as int8; and pruned to
60% sparsity. Printed: size (raw and gzip), size ratio to float32 and test
accuracy of every file.

    python benchmarks/quantization.py [--epochs 5] [--qat-epochs 2]
"""

import argparse
import os
import tempfile

from _common import digits_datasets

import kerasdistill as kd
from kerasdistill import export, models
from kerasdistill.backend import keras
from kerasdistill.losses import CrossEntropy
from kerasdistill.tables import format_table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--qat-epochs", type=int, default=2)
    args = parser.parse_args()
    digits, train, _ = digits_datasets()
    folder = tempfile.mkdtemp(prefix="kerasdistill-quantization-")

    keras.utils.set_random_seed(0)
    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    teacher.compile(optimizer="adam", loss=CrossEntropy())
    teacher.fit(train, epochs=args.epochs, verbose=0)
    student = models.build("convnet_student", (28, 28, 1), 10)
    distiller = kd.Distiller(teacher, student)
    distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=4.0)
    distiller.fit(train, epochs=args.epochs, verbose=0)

    def path(name):
        return os.path.join(folder, f"{name}.tflite")

    files = {}
    for q in ("float32", "float16", "dynamic", "int8"):
        files[f"PTQ {q}"] = export.to_tflite(student, path(q), q, representative_data=digits.train.x).path
    for label, guide in (("QAT int8 (labels)", None), ("QAT int8 (teacher)", teacher)):
        keras.utils.set_random_seed(0)
        qat = export.quantize_aware(student, digits.train, teacher=guide, epochs=args.qat_epochs)
        files[label] = export.to_tflite(qat, path(label.replace(" ", "_")), "int8", representative_data=digits.train.x).path
    keras.utils.set_random_seed(0)
    pruned = export.prune(student, digits.train, target_sparsity=0.6, teacher=teacher, epochs=args.qat_epochs)
    files[f"pruned {pruned.sparsity:.0%} float32"] = export.to_tflite(pruned.model, path("pruned")).path

    float_size = os.path.getsize(files["PTQ float32"])
    float_gzip = export.gzip_size(files["PTQ float32"])
    rows = []
    for name, file in files.items():
        report = export.evaluate_tflite(file, digits.test, keras_model=student, latency_runs=20)
        rows.append(
            {
                "file": name,
                "size_kib": report["size_bytes"] / 1024,
                "ratio": report["size_bytes"] / float_size,
                "gzip_ratio": export.gzip_size(file) / float_gzip,
                "accuracy": report["accuracy"],
            }
        )
    keras_accuracy = distiller.evaluate(*digits.test, verbose=0, return_dict=True)
    print(f"teacher params {teacher.count_params():,}; distilled student params {student.count_params():,}")
    print(f"Keras student test accuracy {keras_accuracy['accuracy']:.4f}")
    print(
        format_table(
            rows,
            [
                ("file", "file", None),
                ("size_kib", "size (KiB)", ".1f"),
                ("ratio", "size / float32", ".3f"),
                ("gzip_ratio", "gzip / float32 gzip", ".3f"),
                ("accuracy", "test accuracy", ".4f"),
            ],
        )
    )


if __name__ == "__main__":
    main()
