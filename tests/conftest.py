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


@pytest.fixture(scope="session")
def trained_teacher(digits):
    """A convnet teacher with BatchNorm, trained 2 epochs (about 97% test accuracy)."""
    keras.utils.set_random_seed(0)
    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    teacher.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CrossEntropy(), metrics=["accuracy"])
    teacher.fit(digits.train.x, digits.train.y, batch_size=64, epochs=2, verbose=0)
    return teacher


@pytest.fixture
def small_student():
    keras.utils.set_random_seed(1)
    return models.build("convnet_student", (28, 28, 1), 10)


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y))
