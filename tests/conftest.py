import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kerasdistill import data, models  # noqa: E402
from kerasdistill.backend import keras  # noqa: E402
from kerasdistill.losses import CrossEntropy  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    """The embedded real MNIST digits: 3,500 train / 500 val / 1,000 test."""
    return data.load_digits(seed=0)


def train_builtin(name, digits, epochs):
    """A built-in model trained alone on the digits' training split, seed 0."""
    keras.utils.set_random_seed(0)
    model = models.build(name, (28, 28, 1), 10)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CrossEntropy(), metrics=["accuracy"])
    model.fit(digits.train.x, digits.train.y, batch_size=64, epochs=epochs, verbose=0)
    return model


@pytest.fixture(scope="session")
def trained_teacher(digits):
    """A convnet teacher with BatchNorm, trained 2 epochs (about 97% test accuracy)."""
    return train_builtin("convnet_teacher", digits, epochs=2)


@pytest.fixture
def small_student():
    keras.utils.set_random_seed(1)
    return models.build("convnet_student", (28, 28, 1), 10)


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))
