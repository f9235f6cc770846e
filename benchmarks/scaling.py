"""Distiller throughput: 1 vs 2 replicas, with and without XLA, in one run.

On a GPU machine the replicas are GPUs (one GPU is split into two logical
ones); on a CPU machine the CPU is split into two logical devices, which
share the same cores, so the CPU numbers show the cost of the replica
machinery rather than a speed-up. Printed: samples/second of Distiller.fit
(median epoch, first left out) for each setting.

    python benchmarks/scaling.py [--epochs 4] [--batch-size 256]
"""

import argparse

import tensorflow as tf

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=4)
parser.add_argument("--batch-size", type=int, default=256, help="global batch size")
args = parser.parse_args()

# Devices must be configured before TensorFlow initialises them.
gpus = tf.config.list_physical_devices("GPU")
if len(gpus) == 1:
    tf.config.set_logical_device_configuration(gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=8192)] * 2)
elif not gpus:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from _common import digits_datasets, median_epoch_seconds, train_teacher  # noqa: E402

import kerasdistill as kd  # noqa: E402
from kerasdistill import models  # noqa: E402
from kerasdistill.backend import keras  # noqa: E402
from kerasdistill.tables import format_table  # noqa: E402

kind = "GPU" if gpus else "CPU"
devices = [d.name for d in tf.config.list_logical_devices(kind)][:2]
digits, train, _ = digits_datasets(batch_size=args.batch_size)
teacher = train_teacher(train, epochs=1)
samples = len(digits.train.y)

rows = []
for replicas in (1, 2):
    for jit in (False, True):
        strategy = tf.distribute.OneDeviceStrategy(devices[0]) if replicas == 1 else tf.distribute.MirroredStrategy(devices)
        with strategy.scope():
            keras.utils.set_random_seed(0)
            student = models.build("convnet_student", (28, 28, 1), 10)
            copy = keras.models.clone_model(teacher)
            copy.set_weights(teacher.get_weights())
            distiller = kd.Distiller(copy, student)
            distiller.compile(optimizer=keras.optimizers.Adam(1e-3), alpha=0.1, temperature=4.0, jit_compile=jit)
        try:
            seconds = median_epoch_seconds(lambda d=distiller, **kw: d.fit(train, verbose=0, shuffle=False, **kw), args.epochs)
        except tf.errors.InvalidArgumentError as error:
            # XLA cannot compile a step whose replica variables live on other
            # logical devices (tensorflow.org/xla/known_issues).
            print(f"{replicas} replicas with XLA: not supported here ({str(error).splitlines()[0][:120]})")
            rows.append({"replicas": replicas, "xla": "on", "samples_s": None})
            continue
        rows.append({"replicas": replicas, "xla": "on" if jit else "off", "samples_s": samples / seconds})
        print(rows[-1], flush=True)

base = rows[0]["samples_s"]
for row in rows:
    row["ratio"] = row["samples_s"] / base if row["samples_s"] else None
print(f"{kind}: {', '.join(devices)}; global batch {args.batch_size}; {samples} samples per epoch")
print(
    format_table(
        rows,
        [("replicas", "replicas", "d"), ("xla", "XLA", None), ("samples_s", "samples/s", ",.0f"), ("ratio", "vs 1 replica, no XLA", ".2f")],
    )
)
