"""Distillation on several workers with `MultiWorkerMirroredStrategy`.

Every worker runs this same script; the cluster comes from `TF_CONFIG`. Two
workers on one machine (ports free on 127.0.0.1):

    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:23456", "127.0.0.1:23457"]},
                "task": {"type": "worker", "index": 0}}' python examples/multi_worker.py &
    TF_CONFIG='{"cluster": {"worker": ["127.0.0.1:23456", "127.0.0.1:23457"]},
                "task": {"type": "worker", "index": 1}}' python examples/multi_worker.py

With `--unlabeled FOLDER --shards FOLDER`, the few-labels case at scale: the
workers split the teacher's scoring of a streamed folder of images (each
scores every other shard into the shared shards folder, then waits for the
rest), and the student is distilled on the streamed transfer set, the
teacher's outputs read from the shards.

The teacher is any saved model; `kerasdistill run` writes one (teacher.keras)
in its run folder. On a real cluster, list each machine's `host:port` under "worker" and give
each its own "index"; `--backup-dir` and `--output` must then be on storage
every worker sees (NFS, GCS). Killed workers? Start them again with the same
command: training resumes from the last finished epoch. On TPUs, build the
models under `tf.distribute.TPUStrategy(resolver).scope()` instead: the
Distiller needs nothing else.
"""

import argparse
import json
import os

import numpy as np
import tensorflow as tf

import kerasdistill as kd
from kerasdistill import data, models
from kerasdistill.backend import keras
from kerasdistill.callbacks import BackupAndRestore
from kerasdistill.distribute import is_chief, make_strategy
from kerasdistill.files import save_model

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--teacher", required=True, help="a trained teacher (.keras), e.g. from `kerasdistill run`")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--batch-size", type=int, default=64, help="global batch size")
parser.add_argument("--backup-dir", default="export/multi-worker-backup")
parser.add_argument("--output", default="export/multi-worker-student.keras")
parser.add_argument("--dump-weights", help="folder where each worker writes its student weights (to compare them)")
parser.add_argument("--unlabeled", help="a folder of unlabeled 28x28 grey images: the streamed transfer set")
parser.add_argument("--shards", help="with --unlabeled: the teacher-output shards' folder, shared by the workers")
parser.add_argument("--labels", type=int, default=None, help="with --unlabeled: training labels kept (default: all)")
args = parser.parse_args()
if bool(args.unlabeled) != bool(args.shards):
    parser.error("--unlabeled and --shards go together: the folder of images and where the teacher's outputs go")

# The strategy first: it must exist before any other TensorFlow op runs.
strategy = make_strategy("multi_worker")
task = json.loads(os.environ["TF_CONFIG"])["task"]
print(json.dumps({"worker": task["index"], "replicas": strategy.num_replicas_in_sync}), flush=True)

digits = data.load_digits()

with strategy.scope():
    keras.utils.set_random_seed(0)
    teacher = keras.models.load_model(args.teacher)
    student = models.build("convnet_student", (28, 28, 1), 10)
    distiller = kd.Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"], alpha=0.1, temperature=4.0)

# Every worker builds the same pipeline; fit shards it across workers and
# splits each global batch between them.
if args.unlabeled:
    labeled = tuple(array[: args.labels] for array in digits.train)
    stream = kd.ImageStream.from_folder(args.unlabeled, (28, 28, 1))
    workers = len(json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"])
    kd.score_to_shards(distiller, stream, args.shards, shard_size=256, worker=(task["index"], workers))
    shards = kd.load_teacher_shards(args.shards, teacher=distiller, wait=600)
    train = kd.sharded_transfer_set(labeled, stream, shards, distiller, batch_size=args.batch_size)
else:
    train = tf.data.Dataset.from_tensor_slices(tuple(digits.train)).shuffle(4096, seed=0).batch(args.batch_size)


class PrintEpochs(keras.callbacks.Callback):
    """One JSON line per finished epoch, so a supervisor can follow the run."""

    def on_epoch_end(self, epoch, logs=None):
        print(json.dumps({"worker": task["index"], "epoch": epoch + 1, "loss": float(logs["loss"])}), flush=True)


backup = BackupAndRestore(args.backup_dir)
distiller.fit(train, epochs=args.epochs, callbacks=[backup, PrintEpochs()], verbose=0, shuffle=False)
print(json.dumps({"worker": task["index"], "resumed_from_epoch": backup.restored_epoch}), flush=True)

if args.dump_weights:
    os.makedirs(args.dump_weights, exist_ok=True)
    # Trainable weights are all-reduced, so identical on every worker;
    # BatchNorm moving statistics are each worker's average over its shard.
    trainable = {f"trainable_{i}": np.asarray(w) for i, w in enumerate(student.trainable_weights)}
    statistics = {f"statistics_{i}": np.asarray(w) for i, w in enumerate(student.non_trainable_weights)}
    np.savez(os.path.join(args.dump_weights, f"worker-{task['index']}.npz"), **trainable, **statistics)
if is_chief(strategy):
    save_model(student, args.output, include_optimizer=False)
    # A direct call, not predict(): predict would run under the strategy and
    # wait for the other workers, which have finished.
    accuracy = float(np.mean(np.argmax(student(digits.test.x, training=False), axis=-1) == digits.test.y))
    print(json.dumps({"worker": task["index"], "saved": args.output, "test_accuracy": accuracy}), flush=True)
