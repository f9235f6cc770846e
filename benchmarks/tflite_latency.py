"""int8 vs float32 .tflite latency per image, measured in one run.

The built-in teacher and student are trained briefly on the embedded digits,
exported as float32 and full-int8 files, and timed through the LiteRT
interpreter on single images (median of many invocations), with 1 thread and
with 2. Printed: milliseconds per image, file sizes, accuracies, and the
int8 / float32 latency ratio of each.

    python benchmarks/tflite_latency.py [--runs 500]
"""

import argparse
import os
import tempfile

from _common import digits_datasets

from kerasdistill import export, models
from kerasdistill.backend import keras
from kerasdistill.losses import CrossEntropy
from kerasdistill.tables import format_table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500, help="timed invocations per file and thread count")
    args = parser.parse_args()
    digits, train, _ = digits_datasets()
    folder = tempfile.mkdtemp(prefix="kerasdistill-latency-")
    rows, ratios = [], []
    for name in ("convnet_student", "convnet_teacher"):
        keras.utils.set_random_seed(0)
        model = models.build(name, (28, 28, 1), 10)
        model.compile(optimizer="adam", loss=CrossEntropy())
        model.fit(train, epochs=2, verbose=0)
        paths = {
            q: export.to_tflite(
                model, os.path.join(folder, f"{name}_{q}.tflite"), q, representative_data=digits.train.x
            ).path
            for q in ("float32", "int8")
        }
        for threads in (1, 2):
            latency = {}
            for q, path in paths.items():
                tflite = export.TFLiteModel(path, num_threads=threads)
                latency[q] = tflite.latency_ms(digits.test.x[:1], runs=args.runs, warmup=20)
                accuracy = export.evaluate_tflite(path, digits.test, latency_runs=1)["accuracy"]
                rows.append(
                    {
                        "model": f"{name} {q}",
                        "threads": threads,
                        "size_kib": os.path.getsize(path) / 1024,
                        "accuracy": accuracy,
                        "latency_ms": latency[q],
                    }
                )
            ratios.append((name, threads, latency["int8"] / latency["float32"]))
    print(
        format_table(
            rows,
            [
                ("model", "file", None),
                ("threads", "threads", "d"),
                ("size_kib", "size (KiB)", ".1f"),
                ("accuracy", "accuracy", ".4f"),
                ("latency_ms", "ms/image", ".4f"),
            ],
        )
    )
    for name, threads, ratio in ratios:
        print(f"latency ratio int8 / float32, {name}, {threads} thread(s): {ratio:.3f}")


if __name__ == "__main__":
    main()
