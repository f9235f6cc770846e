"""The package also runs on tf_keras (Keras 2), which tfmot's QAT and pruning need."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import tf_keras
    import kerasdistill as kd
    from kerasdistill import data, models
    from kerasdistill.backend import keras, KERAS_3
    assert not KERAS_3 and keras is tf_keras
    digits = data.load_digits()
    keras.utils.set_random_seed(0)
    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    teacher.compile(optimizer="adam", loss=kd.losses.CrossEntropy(), metrics=["accuracy"])
    teacher.fit(digits.train.x, digits.train.y, epochs=1, verbose=0)
    student = models.build("convnet_student", (28, 28, 1), 10)
    distiller = kd.Distiller(teacher, student)
    distiller.compile(optimizer="adam", metrics=["accuracy"], alpha=0.1, temperature=4.0)
    distiller.fit(digits.train.x, digits.train.y, epochs=2, verbose=0)
    result = distiller.evaluate(*digits.test, verbose=0, return_dict=True)
    print("ACCURACY", result["accuracy"])
    """
)


# A fresh process under TF_USE_LEGACY_KERAS=1: the slow layer.
@pytest.mark.slow
def test_distiller_trains_under_tf_use_legacy_keras():
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    accuracy = float(result.stdout.split("ACCURACY")[-1])
    assert accuracy > 0.85
