"""Offline distillation from cached teacher outputs against the student alone.

In one run: the median epoch time of (a) the student trained alone on the
labels, (b) the Distiller on cached teacher outputs, (c) the Distiller
running the teacher online; and the final test accuracy of (b) and (c) from
the same initial weights. The target: (b) / (a) <= 1.15.

    python benchmarks/cached_teacher.py [--epochs 5]
"""

import argparse

from _common import accuracy, digits_datasets, median_epoch_seconds, train_teacher

import kerasdistill as kd
from kerasdistill import losses, models
from kerasdistill.backend import keras
from kerasdistill.tables import format_table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    _, train, test = digits_datasets()
    teacher = train_teacher(train, args.epochs)

    def student_and_distiller():
        keras.utils.set_random_seed(1)
        student = models.build("convnet_student", (28, 28, 1), 10)
        distiller = kd.Distiller(teacher, student)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3), alpha=0.1, temperature=4.0)
        return student, distiller

    keras.utils.set_random_seed(1)
    alone = models.build("convnet_student", (28, 28, 1), 10)
    alone.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.CrossEntropy())
    alone_s = median_epoch_seconds(lambda **kw: alone.fit(train, verbose=0, shuffle=False, **kw), args.epochs - 1)

    student, distiller = student_and_distiller()
    cached = kd.cache_teacher_outputs(distiller, train).cache()
    cached_s = median_epoch_seconds(lambda **kw: distiller.fit(cached, verbose=0, shuffle=False, **kw), args.epochs - 1)
    cached_accuracy = accuracy(student, test)

    student, distiller = student_and_distiller()
    online_s = median_epoch_seconds(lambda **kw: distiller.fit(train, verbose=0, shuffle=False, **kw), args.epochs - 1)
    online_accuracy = accuracy(student, test)

    rows = [
        {"run": "student alone (labels)", "epoch_s": alone_s, "accuracy": accuracy(alone, test)},
        {"run": "Distiller, cached teacher", "epoch_s": cached_s, "accuracy": cached_accuracy},
        {"run": "Distiller, online teacher", "epoch_s": online_s, "accuracy": online_accuracy},
    ]
    print(
        format_table(
            rows, [("run", "run", None), ("epoch_s", "s/epoch", ".3f"), ("accuracy", "test accuracy", ".4f")]
        )
    )
    print(f"cached / student alone epoch time: {cached_s / alone_s:.3f} (target <= 1.15)")
    print(f"cached / online epoch time: {cached_s / online_s:.3f}")
    print(f"accuracy cached - online: {cached_accuracy - online_accuracy:+.4f}")


if __name__ == "__main__":
    main()
