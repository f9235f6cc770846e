"""What keeping only the teacher's top-k logits costs the student: shards with all outputs against top-k ones.

The embedded digits: a convnet teacher trained on all 3,500 training images,
then a student distilled from 500 labeled images plus 3,000 unlabeled ones
streamed from PNG files, through `score_to_shards` with all 10 logits and
with the top 1, 3 and 5 (renormalised by the KL loss), same student start,
same batches, over several seeds. Printed: the student's test accuracy
(mean ± std) and the shards' bytes per image for each.

    python benchmarks/top_k.py [--seeds 3] [--epochs 5]
"""

import argparse
import os
import tempfile

import numpy as np
from _common import mean_std

import kerasdistill as kd
from kerasdistill import data, metrics, models, shards
from kerasdistill.backend import keras
from kerasdistill.streams import ImageStream


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    digits = data.load_digits(seed=0)
    keras.utils.set_random_seed(0)
    teacher = models.build("convnet_teacher", (28, 28, 1), 10)
    teacher.compile(optimizer="adam", loss=kd.losses.CrossEntropy())
    teacher.fit(*digits.train, epochs=2, batch_size=64, verbose=0)
    print(f"teacher test accuracy {metrics.accuracy(teacher, *digits.test):.4f}")
    labeled = digits.train.x[:500], digits.train.y[:500]
    with tempfile.TemporaryDirectory() as folder:
        for index, image in enumerate(digits.train.x[500:]):
            keras.utils.save_img(os.path.join(folder, f"{index:04d}.png"), image, scale=False)
        stream = ImageStream.from_folder(folder, (28, 28, 1))
        rows = []
        for top_k in (None, 5, 3, 1):
            scored = shards.score_to_shards(teacher, stream, os.path.join(folder, f"shards-{top_k}"), shard_size=1000, top_k=top_k, verbose=False)
            scores = []
            for seed in range(args.seeds):
                keras.utils.set_random_seed(seed + 1)
                student = models.build("convnet_student", (28, 28, 1), 10)
                distiller = kd.Distiller(teacher, student)
                distiller.compile(optimizer=keras.optimizers.Adam(1e-3), alpha=0.1, temperature=4.0)
                distiller.fit(shards.sharded_transfer_set(labeled, stream, scored, distiller, seed=seed), epochs=args.epochs, verbose=0)
                scores.append(metrics.accuracy(student, *digits.test))
            rows.append((top_k, scores, scored.nbytes() / scored.count))
    full = float(np.mean(rows[0][1]))
    print(f"{'outputs kept':>14} {'student test accuracy':>24} {'vs all (points)':>16} {'bytes/image':>12}")
    for top_k, scores, size in rows:
        print(f"{'all 10' if top_k is None else f'top {top_k}':>14} {mean_std(scores):>24} {100 * (np.mean(scores) - full):>+16.2f} {size:>12.0f}")


if __name__ == "__main__":
    main()
