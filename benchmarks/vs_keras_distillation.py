"""kerasdistill.Distiller against Keras 3.15's own keras.distillation.Distiller.

One teacher is trained once; the same student (same initial weights, same
batches, same epochs) is distilled with ours and with Keras' in two
configurations: its documented default `LogitsDistillation(temperature=T)`
(whose `"kl_divergence"` string resolves to the plain function and compares
raw logits), and the fair one, `LogitsDistillation(temperature=T,
loss=keras.losses.KLDivergence())`, which softens both sides (but has no T²
factor). Same temperature and label weight everywhere. Printed: test
accuracy and median step time of each, in one run.

    python benchmarks/vs_keras_distillation.py [--epochs 5] [--seeds 3]
"""

import argparse
import statistics

from _common import accuracy, digits_datasets, mean_std, median_epoch_seconds, train_teacher

import kerasdistill as kd
from kerasdistill import models
from kerasdistill.backend import keras
from kerasdistill.tables import format_table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=0.1, help="weight of the label loss")
    parser.add_argument("--temperature", type=float, default=4.0)
    args = parser.parse_args()
    digits, train, test = digits_datasets()

    teacher = train_teacher(train, args.epochs)

    def ours(student):
        distiller = kd.Distiller(teacher, student)
        distiller.compile(
            optimizer=keras.optimizers.Adam(1e-3),
            metrics=["accuracy"],
            distillation_loss_fn=kd.losses.SoftTargetKL(),
            alpha=args.alpha,
            temperature=args.temperature,
        )
        return distiller

    def theirs(loss):
        def make(student):
            options = {} if loss is None else {"loss": loss}
            distiller = keras.distillation.Distiller(
                teacher=teacher,
                student=student,
                distillation_losses=keras.distillation.LogitsDistillation(temperature=args.temperature, **options),
                student_loss_weight=args.alpha,
            )
            distiller.compile(
                optimizer=keras.optimizers.Adam(1e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )
            return distiller

        return make

    makers = {
        "kerasdistill.Distiller (SoftTargetKL)": ours,
        "keras.distillation, default LogitsDistillation": theirs(None),
        "keras.distillation, LogitsDistillation(loss=KLDivergence())": theirs(keras.losses.KLDivergence()),
    }
    results = {name: ([], []) for name in makers}
    for seed in range(args.seeds):
        for name, make in makers.items():
            keras.utils.set_random_seed(seed)
            student = models.build("convnet_student", (28, 28, 1), 10)
            distiller = make(student)
            seconds = median_epoch_seconds(lambda d=distiller, **kw: d.fit(train, verbose=0, **kw), args.epochs - 1)
            results[name][0].append(accuracy(student, test))
            results[name][1].append(seconds / len(train) * 1000)
    rows = [
        {
            "distiller": name,
            "accuracy": mean_std(acc),
            "step_ms": statistics.median(ms),
        }
        for name, (acc, ms) in results.items()
    ]
    print(
        f"teacher test accuracy {accuracy(teacher, test):.4f}; students: {args.epochs} epochs, "
        f"alpha={args.alpha}, T={args.temperature}, {args.seeds} seeds"
    )
    print(
        format_table(
            rows, [("distiller", "distiller", None), ("accuracy", "test accuracy", None), ("step_ms", "ms/step", ".2f")]
        )
    )
    ours_ms, *theirs_ms = (statistics.median(results[k][1]) for k in results)
    print(f"step time ratio kerasdistill / keras.distillation (default, fair): {ours_ms / theirs_ms[0]:.3f}, {ours_ms / theirs_ms[1]:.3f}")


if __name__ == "__main__":
    main()
