"""Tuned distillation against the same student from scratch, on the embedded digits.

For each seed: `kerasdistill.tune` searches temperature, alpha and method
(soft targets or DKD) with KerasTuner within a budget of trials and epochs,
on the validation split; the scratch student gets the same epochs. Printed:
test accuracy of the tuned distilled student and of the scratch student,
mean ± std over the seeds, and the settings chosen.

    python benchmarks/tuning.py [--seeds 3] [--trials 6] [--epochs 5]
"""

import argparse
import time

from _common import accuracy, mean_std, train_teacher

import kerasdistill as kd
from kerasdistill import data, models
from kerasdistill.backend import keras
from kerasdistill.losses import CrossEntropy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    start = time.perf_counter()
    tuned, scratch, chosen = [], [], []
    for seed in range(args.seeds):
        digits = data.load_digits(seed=seed)
        train = data.to_dataset(*digits.train, batch_size=64, shuffle=True, seed=seed)
        val = data.to_dataset(*digits.val, batch_size=64)
        test = data.to_dataset(*digits.test, batch_size=256)
        teacher = train_teacher(train, args.epochs, seed=seed)
        result = kd.tune(
            teacher,
            lambda: models.build("convnet_student", (28, 28, 1), 10),
            train,
            val,
            methods=["soft_target_kl", "dkd"],
            max_trials=args.trials,
            epochs=args.epochs,
            seed=seed,
        )
        keras.utils.set_random_seed(seed)
        baseline = models.build("convnet_student", (28, 28, 1), 10)
        baseline.compile(optimizer=keras.optimizers.Adam(1e-3), loss=CrossEntropy())
        baseline.fit(train, epochs=args.epochs, verbose=0, shuffle=False)
        tuned.append(accuracy(result.student, test))
        scratch.append(accuracy(baseline, test))
        chosen.append(result.best)
        print(f"seed {seed}: tuned {tuned[-1]:.4f}, scratch {scratch[-1]:.4f}, best {result.best}; {result.verdict}", flush=True)
    print(f"{args.seeds} seeds, {args.trials} trials x {args.epochs} epochs each, {time.perf_counter() - start:.0f} s in all")
    print(f"tuned distilled student: {mean_std(tuned)} test accuracy")
    print(f"scratch student:         {mean_std(scratch)} test accuracy")
    print(f"difference (tuned - scratch): {mean_std([t - s for t, s in zip(tuned, scratch)])}")


if __name__ == "__main__":
    main()
