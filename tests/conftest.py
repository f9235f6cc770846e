import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes share the 2 cores: one thread each for TensorFlow's ops (and the processes tests start).
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")

# Real material beside the checkout (see ../shared/README.md): ImageNet
# weights and Fashion-MNIST. Tests that need it skip, naming what is missing,
# only where it is absent.
SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared"
SHARED_WEIGHTS = SHARED / "weights"
FASHION_MNIST = SHARED / "data" / "fashion-mnist"
if SHARED_WEIGHTS.is_dir():
    os.environ.setdefault("KERASDISTILL_WEIGHTS_DIR", str(SHARED_WEIGHTS))

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kerasdistill import data, models  # noqa: E402
from kerasdistill.backend import keras  # noqa: E402
from kerasdistill.losses import CrossEntropy  # noqa: E402
from kerasdistill.metrics import accuracy  # noqa: E402,F401  (the tests score as the package does)


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


@pytest.fixture(scope="session")
def trained_student(digits):
    """A convnet student trained alone 4 epochs: the model the export tests convert."""
    return train_builtin("convnet_student", digits, epochs=4)


@pytest.fixture
def small_student():
    keras.utils.set_random_seed(1)
    return models.build("convnet_student", (28, 28, 1), 10)


def soft_target_kl(teacher_logits, student_logits, temperature):
    """Hinton's T²·KL(softmax(t/T) || softmax(s/T)), averaged over the rows, in float64 NumPy."""

    def log_softmax(logits):
        z = np.asarray(logits, np.float64) / temperature
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    teacher, student = log_softmax(teacher_logits), log_softmax(student_logits)
    return float(np.mean(np.sum(np.exp(teacher) * (teacher - student), axis=-1)) * temperature**2)


def fashion_mnist_or_skip():
    """The folder of real Fashion-MNIST IDX files in ../shared, or a skip naming it."""
    if not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"real Fashion-MNIST files are not in {FASHION_MNIST} (see ../shared/data/README.md)")
    return str(FASHION_MNIST)


def imagenet_weights_or_skip(name="mobilenet_v2", shape=(224, 224, 3), **options):
    """Skips, naming the file, where the real ImageNet weights of `name` are not found offline."""
    from kerasdistill import transfer

    try:
        return transfer.find_imagenet_weights(name, shape, download=False, **options)
    except FileNotFoundError:
        file_name = transfer.weights_file_name(name, shape, **options)
        pytest.skip(f"real ImageNet weights {file_name} are not in {SHARED_WEIGHTS} nor in $KERASDISTILL_WEIGHTS_DIR")


def cli_in_process(capsys, *args):
    """`kerasdistill ARGS` in this process (no TensorFlow start-up), for tests that assert what a command prints,
    not its process: `(exit status, stdout, stderr)`."""
    from kerasdistill import cli

    try:
        status = cli.main([str(arg) for arg in args])
    except SystemExit as exit:
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err
