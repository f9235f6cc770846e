"""Distiller.fit against the floor it cannot beat.

The floor for one epoch of distillation is one epoch of `fit` of a model
whose compiled train step does the student's training step *and* the
teacher's forward pass, in the same `tf.function`, over the same batches:
everything distillation must do, minus the distillation loss and the
Distiller's own bookkeeping. Printed: the seconds of each and the ratio;
target <= 1.10. (The student alone and the teacher's forward pass alone are
printed for scale.)

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

    floor_model = TeacherAndStudentStep(teacher, keras.models.clone_model(student))
    floor_model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    floor_seconds = median_epoch_seconds(lambda **kw: floor_model.fit(train, verbose=0, **kw), args.epochs)

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
    unguarded = median_epoch_seconds(
        lambda **kw: distiller.fit(train, verbose=0, stop_on_non_finite=False, **kw), args.epochs
    )

    steps = len(train)
    print(f"digits: {len(digits.train.x)} images, {steps} steps of 64 per epoch; median of {args.epochs} epochs")
    print(f"student alone, one epoch of fit              : {student_seconds * 1000:8.1f} ms")
    print(f"teacher forward alone (tf.function), epoch   : {teacher_seconds * 1000:8.1f} ms")
    print(f"floor: student step + teacher forward, fit   : {floor_seconds * 1000:8.1f} ms")
    print(f"Distiller.fit, one epoch                     : {distill_seconds * 1000:8.1f} ms")
    print(f"Distiller.fit without the NaN guard, epoch   : {unguarded * 1000:8.1f} ms")
    print(f"ratio Distiller / floor                      : {distill_seconds / floor_seconds:8.3f}  (target <= 1.10)")
    print(f"ratio without the NaN guard / floor          : {unguarded / floor_seconds:8.3f}")
    tiny_mlp(digits, args.epochs)


def tiny_mlp(digits, epochs):
    """Where fixed per-step costs show most: MLPs on 8x8 digits, Distiller.fit as a user gets it (the NaN guard
    on) against keras.io's minimal distiller (the "Knowledge Distillation" example's `compute_loss`)."""
    small = tf.reshape(tf.image.resize(digits.train.x, (8, 8)), (-1, 64)).numpy() / 255.0
    # Five passes an epoch (275 steps): a 55-step epoch of tiny MLPs lasts ~0.1 s, and the machine's jitter is that large.
    train = tf.data.Dataset.from_tensor_slices((small, digits.train.y)).batch(64).cache().repeat(5)

    def mlp(units):
        return keras.Sequential([keras.Input((64,)), keras.layers.Dense(units, activation="relu"), keras.layers.Dense(10)])

    keras.utils.set_random_seed(0)
    teacher, student = mlp(128), mlp(32)
    teacher.trainable = False
    ours = kd.Distiller(teacher, keras.models.clone_model(student))
    ours.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"], alpha=0.1, temperature=4.0)
    minimal = KerasIoDistiller(teacher, keras.models.clone_model(student))
    minimal.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    # Alternated, so that a slower stretch of the machine falls on both.
    ours_times, minimal_times = [], []
    for _ in range(5):
        ours_times.append(median_epoch_seconds(lambda **kw: ours.fit(train, verbose=0, **kw), epochs))
        minimal_times.append(median_epoch_seconds(lambda **kw: minimal.fit(train, verbose=0, **kw), epochs))
    ours_seconds, minimal_seconds = statistics.median(ours_times), statistics.median(minimal_times)
    print(f"tiny MLPs on 8x8 digits ({len(train)} steps of 64 an epoch):")
    print(f"Distiller.fit (defaults: the NaN guard on)   : {ours_seconds * 1000:8.1f} ms")
    print(f"keras.io's minimal distiller                 : {minimal_seconds * 1000:8.1f} ms")
    print(f"ratio Distiller / minimal distiller          : {ours_seconds / minimal_seconds:8.3f}  (target <= 1.10)")


class KerasIoDistiller(keras.Model):
    """keras.io's "Knowledge Distillation" example: its loss in `compute_loss`, Keras' own train step."""

    def __init__(self, teacher, student, alpha=0.1, temperature=4.0):
        super().__init__()
        self.teacher, self.student, self.alpha, self.temperature = teacher, student, alpha, temperature
        self.student_loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.distillation_loss_fn = keras.losses.KLDivergence()

    def call(self, x, training=None):
        return self.student(x, training=training)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, allow_empty=False):
        teacher_pred = self.teacher(x, training=False)
        student_loss = self.student_loss_fn(y, y_pred)
        distillation_loss = self.distillation_loss_fn(
            keras.ops.softmax(teacher_pred / self.temperature, axis=1), keras.ops.softmax(y_pred / self.temperature, axis=1)
        ) * (self.temperature**2)
        return self.alpha * student_loss + (1 - self.alpha) * distillation_loss


class TeacherAndStudentStep(keras.Model):
    """The floor: the student's cross-entropy step plus the teacher's forward pass, one compiled step."""

    def __init__(self, teacher, student):
        super().__init__()
        self.teacher, self.student = teacher, student
        self.loss_fn = kd.losses.CrossEntropy()

    def call(self, x, training=None):
        return self.student(x, training=training)

    def train_step(self, data):
        x, y = data
        teacher_logits = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            outputs = self.student(x, training=True)
            loss = self.loss_fn(y, outputs)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        # The teacher's output is returned, so the graph cannot prune its forward pass.
        logs = {"loss": loss, "teacher_mean": tf.reduce_mean(teacher_logits)}
        return {**logs, **self.compute_metrics(x, y, outputs, None)}


if __name__ == "__main__":
    main()
