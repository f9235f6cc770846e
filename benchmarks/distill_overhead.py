"""Distiller.fit against the floor it cannot beat.

The floor for one epoch of distillation is one epoch of the student trained
alone plus the teacher's forward pass over the same batches, run as a
compiled `tf.function` (not `predict`, whose per-batch overhead would flatter
the ratio). Printed: the seconds of each and the ratio; target <= 1.10.

    python benchmarks/distill_overhead.py [--epochs 5]
"""

import argparse
import statistics
import time

import tensorflow as tf
from _common import digits_datasets, median_epoch_seconds

import kerasdistill as kd
from kerasdistill import models
from kerasdistill.backend import keras


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per measurement")
    args = parser.parse_args()
    digits, train, _ = digits_datasets()

    keras.utils.set_random_seed(0)
    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    student = models.build("convnet_student", (28, 28, 1), 10)
    alone = keras.models.clone_model(student)

    alone.compile(optimizer=keras.optimizers.Adam(1e-3), loss=kd.losses.CrossEntropy(), metrics=["accuracy"])
    student_seconds = median_epoch_seconds(lambda **kw: alone.fit(train, verbose=0, **kw), args.epochs)

    forward = tf.function(lambda x: teacher(x, training=False))
    for x, _ in train.take(1):
        forward(x)
    teacher_times = []
    for _ in range(args.epochs):
        start = time.perf_counter()
        for x, _ in train:
            forward(x)
        teacher_times.append(time.perf_counter() - start)
    teacher_seconds = statistics.median(teacher_times)

    distiller = kd.Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"], alpha=0.1, temperature=4.0)
    distill_seconds = median_epoch_seconds(lambda **kw: distiller.fit(train, verbose=0, **kw), args.epochs)

    floor = student_seconds + teacher_seconds
    steps = len(train)
    print(f"digits: {len(digits.train.x)} images, {steps} steps of 64 per epoch; median of {args.epochs} epochs")
    print(f"student alone, one epoch of fit      : {student_seconds * 1000:8.1f} ms")
    print(f"teacher forward (tf.function), epoch : {teacher_seconds * 1000:8.1f} ms")
    print(f"floor (sum)                          : {floor * 1000:8.1f} ms")
    print(f"Distiller.fit, one epoch             : {distill_seconds * 1000:8.1f} ms")
    print(f"ratio Distiller / floor              : {distill_seconds / floor:8.3f}  (target <= 1.10)")


if __name__ == "__main__":
    main()
