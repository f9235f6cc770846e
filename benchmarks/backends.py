"""Distiller.fit on each Keras backend: steps per second against its floor and against keras.distillation.

Each backend installed here (tensorflow, jax, torch) runs in its own process
on the embedded digits (numpy arrays, batches of 64, the same models). Per
backend, the median epoch of:

- the student alone (cross-entropy `fit`);
- the floor: one compiled `fit` step that trains the student *and* runs the
  teacher's forward pass (everything distillation must do, minus its loss);
- `kerasdistill.Distiller.fit` (soft targets, alpha 0.1, T 4);
- Keras' own `keras.distillation.Distiller` with the same loss (KL on
  softened outputs, student_loss_weight 0.1, T 4), on the same backend.

Printed: milliseconds per epoch, steps/s, and the ratios Distiller / floor
(target <= 1.10) and Distiller / keras.distillation, with the device each
backend ran on. Runs on a GPU where the backend finds one (JAX and PyTorch
need only the keras wheel and this package beside them).

    python benchmarks/backends.py [--epochs 5] [--backends tensorflow,jax,torch]
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys

MEASURE = r"""
import json, sys
sys.path.insert(0, {benchmarks!r})
import numpy as np
import keras
from keras import ops
from _common import median_epoch_seconds
import kerasdistill as kd
from kerasdistill import data, models

EPOCHS = {epochs}
digits = data.load_digits(seed=0)
x, y = digits.train.x, digits.train.y


def epoch_seconds(model, **kwargs):
    fit = lambda **more: model.fit(x, y, batch_size=64, shuffle=False, verbose=0, **kwargs, **more)
    return median_epoch_seconds(fit, EPOCHS)  # the first epoch compiles and is left out


class Floor(keras.Model):
    # The student's outputs, plus the teacher's mean logit times 0 so that its
    # forward pass cannot be pruned: Keras' own step trains the student and
    # runs the teacher, nothing else.
    def __init__(self, teacher, student):
        super().__init__()
        self.teacher, self.student = teacher, student

    def call(self, inputs, training=None):
        teacher = ops.stop_gradient(self.teacher(inputs, training=False))
        return self.student(inputs, training=training) + 0.0 * ops.mean(teacher)


keras.utils.set_random_seed(0)
teacher = models.build("convnet_teacher", (28, 28, 1), 10)
teacher.trainable = False
student = models.build("convnet_student", (28, 28, 1), 10)
fresh = lambda: keras.models.clone_model(student)
result = {{"backend": keras.backend.backend(), "steps": int(np.ceil(len(x) / 64))}}

alone = fresh()
alone.compile(optimizer=keras.optimizers.Adam(1e-3), loss=kd.losses.CrossEntropy(), metrics=["accuracy"])
result["student alone"] = epoch_seconds(alone)

floor = Floor(teacher, fresh())
floor.compile(optimizer=keras.optimizers.Adam(1e-3), loss=kd.losses.CrossEntropy(), metrics=["accuracy"])
result["floor: student step + teacher forward"] = epoch_seconds(floor)

ours = kd.Distiller(teacher, fresh())
ours.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"], alpha=0.1, temperature=4.0)
result["kerasdistill.Distiller"] = epoch_seconds(ours)  # as a user gets it: the NaN guard on

theirs = keras.distillation.Distiller(
    teacher=teacher,
    student=fresh(),
    distillation_losses=keras.distillation.LogitsDistillation(temperature=4.0, loss=keras.losses.KLDivergence()),
    student_loss_weight=0.1,
)
theirs.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
result["keras.distillation.Distiller"] = epoch_seconds(theirs)

if keras.backend.backend() == "jax":
    import jax
    result["device"] = str(jax.devices()[0].device_kind)
elif keras.backend.backend() == "torch":
    import torch
    result["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
else:
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    result["device"] = gpus[0].name if gpus else "CPU"
print("RESULT " + json.dumps(result))
"""


def measure(backend, epochs):
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    script = MEASURE.format(epochs=epochs, benchmarks=os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"backend": backend, "error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per measurement (one more compiles)")
    parser.add_argument("--backends", default="tensorflow,jax,torch", help="comma-separated Keras backends")
    args = parser.parse_args()
    for backend in args.backends.split(","):
        if importlib.util.find_spec(backend) is None:
            print(f"\n{backend}: not installed here, skipped")
            continue
        result = measure(backend, args.epochs)
        if "error" in result:
            print(f"\n{backend}: failed: {result['error']}")
            continue
        steps = result["steps"]
        print(f"\n{backend} on {result['device']}: {steps} steps of 64 per epoch, median of {args.epochs} epochs")
        names = ["student alone", "floor: student step + teacher forward", "kerasdistill.Distiller", "keras.distillation.Distiller"]
        for name in names:
            seconds = result[name]
            print(f"  {name:40s} {seconds * 1000:8.1f} ms/epoch  {steps / seconds:7.1f} steps/s")
        ours = result["kerasdistill.Distiller"]
        print(f"  ratio Distiller / floor                  {ours / result[names[1]]:8.3f}  (target <= 1.10)")
        print(f"  ratio Distiller / keras.distillation     {ours / result[names[3]]:8.3f}")


if __name__ == "__main__":
    main()
