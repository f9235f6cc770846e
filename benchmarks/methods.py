"""Distillation methods side by side: scratch, KD, hint, attention, RKD, DKD.

One teacher (the built-in convnet) is trained once on the embedded digits;
the same student architecture is trained from the same initial weights per
seed by each method, for the same epochs, and scored on the test split.
Printed: mean ± std test accuracy over the seeds, and seconds per run.

    python benchmarks/methods.py [--epochs 5] [--seeds 3]
"""

import argparse
import time

from _common import accuracy, digits_datasets, mean_std, train_teacher

import kerasdistill as kd
from kerasdistill import losses, models
from kerasdistill.backend import keras
from kerasdistill.tables import format_table

# (label weight alpha, distillation losses). Feature methods get the label
# loss at 0.5, as FitNets/AT/RKD train with cross-entropy beside them.
METHODS = {
    "kd": (0.1, [losses.SoftTargetKL()]),
    "hint": (0.5, [losses.Hint(pairs=[("relu2", "relu2")])]),
    "attention": (0.5, [losses.AttentionTransfer(pairs=[("relu1", "relu1"), ("relu2", "relu2")])]),
    "rkd": (0.5, [losses.RelationalKD(pairs=[("hidden", "hidden")])]),
    "dkd": (0.1, [losses.DecoupledKD(target_weight=1.0, non_target_weight=2.0)]),
}


def train_student(teacher, method, train, epochs, seed, temperature):
    keras.utils.set_random_seed(seed)
    student = models.build("convnet_student", (28, 28, 1), 10)
    if method == "scratch":
        student.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.CrossEntropy())
        student.fit(train, epochs=epochs, verbose=0)
        return student
    alpha, distillation_losses = METHODS[method]
    distiller = kd.Distiller(teacher, student)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        distillation_loss_fn=[type(loss).from_config(loss.get_config()) for loss in distillation_losses],
        alpha=alpha,
        temperature=temperature,
    )
    distiller.fit(train, epochs=epochs, verbose=0)
    return student


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--temperature", type=float, default=4.0)
    args = parser.parse_args()
    digits, train, test = digits_datasets()
    teacher = train_teacher(train, args.epochs)
    rows = []
    for method in ("scratch", *METHODS):
        scores, seconds = [], []
        for seed in range(args.seeds):
            start = time.perf_counter()
            student = train_student(teacher, method, train, args.epochs, seed, args.temperature)
            seconds.append(time.perf_counter() - start)
            scores.append(accuracy(student, test))
        rows.append({"method": method, "accuracy": mean_std(scores), "seconds": sum(seconds) / len(seconds)})
        print(f"{method}: {scores}", flush=True)
    print(
        f"teacher test accuracy {accuracy(teacher, test):.4f}; student convnet_student, {args.epochs} epochs, "
        f"T={args.temperature}, {args.seeds} seeds, {len(digits.train.y)} training digits"
    )
    print(
        format_table(
            rows, [("method", "method", None), ("accuracy", "test accuracy", None), ("seconds", "s/run", ".1f")]
        )
    )


if __name__ == "__main__":
    main()
