"""The Distiller under tf.distribute: the result does not depend on the number of replicas."""

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    import json
    import numpy as np
    import kerasdistill as kd
    from kerasdistill import data, models
    from kerasdistill.backend import keras

    digits = data.load_digits()
    x, y = digits.train.x[:128], digits.train.y[:128]

    def train(strategy):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            teacher = models.build("convnet_teacher", (28, 28, 1), 10)
            # No BatchNorm in the student: per-replica batch statistics would
            # differ from whole-batch ones by design, not by a bug.
            student = models.convnet((28, 28, 1), 10, filters=(8, 16), dense_units=32, batch_norm=False, dropout=0.0)
            distiller = kd.Distiller(teacher, student)
            distiller.compile(optimizer=keras.optimizers.SGD(0.5), metrics=["accuracy"], alpha=0.3, temperature=4.0)
        initial = [np.array(w) for w in student.weights]
        history = distiller.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
        return [np.array(w) for w in student.weights], history.history["loss"], initial

    one, one_loss, start = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
    two, two_loss, _ = train(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    print(json.dumps({
        "replicas": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).num_replicas_in_sync,
        "max_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(one, two)),
        "changed": max(float(np.max(np.abs(a - b))) for a, b in zip(one, start)),
        "losses": [one_loss, two_loss],
    }))
    """
)


def test_two_replicas_give_the_same_student_as_one_device():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["changed"] > 1e-3, "the student trained"
    assert report["max_diff"] < 1e-5, report
    for a, b in zip(*report["losses"]):
        assert abs(a - b) < 1e-5 * max(1.0, abs(a))
