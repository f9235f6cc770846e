"""Shared set-up of the benchmarks: quiet TensorFlow, the embedded digits, timing."""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from kerasdistill import data, losses, models  # noqa: E402
from kerasdistill.backend import keras  # noqa: E402


def digits_datasets(batch_size=64):
    """The embedded digits as (train, test) cached tf.data pipelines, plus the raw splits."""
    digits = data.load_digits(seed=0)
    train = data.to_dataset(*digits.train, batch_size=batch_size).cache()
    test = data.to_dataset(*digits.test, batch_size=batch_size).cache()
    return digits, train, test


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of every epoch."""

    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def median_epoch_seconds(fit, epochs):
    """Runs `fit(epochs=..., callbacks=[timer])` and returns the median epoch time,
    the first epoch (tracing) left out."""
    timer = EpochTimer()
    fit(epochs=epochs + 1, callbacks=[timer])
    return statistics.median(timer.seconds[1:])


def accuracy(model, test):
    """Top-1 accuracy of `model` on a dataset of (x, y) batches."""
    correct = total = 0
    for x, y in test:
        correct += int(np.sum(np.argmax(model(x, training=False), axis=-1) == y.numpy()))
        total += len(y)
    return correct / total


def train_teacher(train, epochs, seed=0):
    """The built-in convnet teacher trained alone on `train`."""
    keras.utils.set_random_seed(seed)
    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    teacher.compile(optimizer="adam", loss=losses.CrossEntropy(), metrics=["accuracy"])
    teacher.fit(train, epochs=epochs, verbose=0)
    return teacher


def mean_std(values):
    return f"{statistics.mean(values):.4f} ± {statistics.pstdev(values):.4f}"
