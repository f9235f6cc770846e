"""Memory under load: a long Distiller run keeps its peak RSS flat.

Distills for many epochs on the embedded digits and prints the process's
peak resident memory (ru_maxrss) after the first and after the last epoch.

    python benchmarks/memory.py [--epochs 40]
"""

import argparse
import resource
import sys

from _common import digits_datasets, train_teacher

import kerasdistill as kd
from kerasdistill import models
from kerasdistill.backend import keras


def peak_rss_mib():
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class PeakMemory(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.peaks = []

    def on_epoch_end(self, epoch, logs=None):
        self.peaks.append(peak_rss_mib())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()
    _, train, val = digits_datasets()
    teacher = train_teacher(train, epochs=1)
    keras.utils.set_random_seed(0)
    distiller = kd.Distiller(teacher, models.build("convnet_student", (28, 28, 1), 10))
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"], alpha=0.1, temperature=4.0)
    memory = PeakMemory()
    distiller.fit(train, epochs=args.epochs, validation_data=val, verbose=0, shuffle=False, callbacks=[memory])
    first, last = memory.peaks[0], memory.peaks[-1]
    print(f"peak RSS after epoch 1: {first:.1f} MiB; after epoch {args.epochs}: {last:.1f} MiB; ratio {last / first:.3f}")
    every = max(1, args.epochs // 8)
    print("per epoch:", ", ".join(f"{i + 1}:{p:.0f}" for i, p in enumerate(memory.peaks) if i % every == 0 or i + 1 == args.epochs))


if __name__ == "__main__":
    main()
