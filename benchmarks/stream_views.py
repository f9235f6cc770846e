"""Consistent teaching on a streamed transfer set: K augmented views stored as parameters, against views in memory.

Fashion-MNIST (../shared/data/fashion-mnist) with `--labels` labeled images,
a convnet teacher trained on `--teacher-labels`, and `--unlabeled` other
training images as the transfer set, written to a `.npy` file and streamed
from it (`ArrayStream`, memory-mapped). Rows, each the same student from the
same seeds, stopped on the same rule (best validation accuracy):

- shards, 1 view: `score_to_shards` on the images as they are;
- shards, K views: `score_to_shards(augmentation=..., views=K)`: the
  teacher's outputs on K views of each image and each view's parameters
  (20 bytes) on disk, the view made again for the student;
- memory, K views: `cache_teacher_outputs(views=K)` on the in-memory arrays
  (the augmented images themselves held in memory): what the stored views
  replace.

Printed: scoring seconds, bytes stored per image, test accuracy (mean ± std
over `--seeds`), and the gain of each over the first row.

    python benchmarks/stream_views.py [--unlabeled 10000] [--views 4] [--seeds 2]
"""

import argparse
import os
import statistics
import tempfile
import time

from kd_gain import FASHION, accuracy, add_setting_arguments, distill, train_alone

import numpy as np

import kerasdistill as kd
from kerasdistill import augment, data, shards as shards_lib
from kerasdistill.streams import ArrayStream


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=1000, help="labeled training images of the student")
    add_setting_arguments(parser, unlabeled=10000, seeds=2)
    args = parser.parse_args()
    if not os.path.isdir(FASHION):
        raise SystemExit(f"Fashion-MNIST is not in {FASHION}; see ../shared/data/README.md.")
    full = data.load_idx(FASHION, validation_size=1000, seed=0)
    splits = data.hold_out_labels(full, labeled=args.labels, seed=0)
    val = data.to_dataset(*splits.val, batch_size=512)
    start = time.perf_counter()
    teacher = train_alone("convnet_teacher", data.hold_out_labels(full, labeled=args.teacher_labels, seed=1).train, val, 0, args, epochs=60)
    print(f"teacher: test accuracy {accuracy(teacher, splits.test):.4f} ({time.perf_counter() - start:.0f} s)", flush=True)

    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "unlabeled.npy")
        np.save(path, splits.unlabeled[: args.unlabeled].astype(np.uint8))
        stream = ArrayStream.from_file(path, splits.train.x.shape[1:])
        steps = -(-len(stream) // 48)
        made, stored = {}, {}
        for name, options in (("shards, 1 view", {}), (f"shards, {args.views} views", {"augmentation": args.augmentation, "views": args.views})):
            start = time.perf_counter()
            shards = shards_lib.score_to_shards(teacher, stream, os.path.join(work, name), verbose=False, **options)
            made[name] = (shards, time.perf_counter() - start)
            stored[name] = shards.nbytes() / len(stream)
        start = time.perf_counter()
        mixed = data.transfer_set(splits.train, np.asarray(stream.array), batch_size=64, labeled_share=0.25, seed=0)
        memory = kd.cache_teacher_outputs(
            teacher, mixed, batch_size=64, shuffle=True, seed=0, augmentation=augment.build(args.augmentation, seed=0), views=args.views
        )
        memory_name = f"memory, {args.views} views"
        made[memory_name] = (memory, time.perf_counter() - start)
        stored[memory_name] = sum(len(x.numpy().tobytes()) + len(t["teacher_logits"].numpy().tobytes()) for x, t in memory) / len(stream)

        rows = {name: [] for name in made}
        for seed in range(args.seeds):
            for name, (source, _) in made.items():
                if name.startswith("shards"):
                    batches = shards_lib.sharded_transfer_set(splits.train, stream, source, teacher, batch_size=64, labeled_share=0.25, seed=seed)
                    student = distill(teacher, batches.repeat(), val, seed, args, steps)
                else:
                    student = distill(teacher, source.repeat(), val, seed, args, steps)
                rows[name].append(accuracy(student, splits.test))
            print(f"  seed {seed}: " + ", ".join(f"{name} {values[-1]:.4f}" for name, values in rows.items()), flush=True)

    first = rows["shards, 1 view"]
    print(f"\n| {len(stream):,} streamed transfer images, {args.labels:,} labels | scoring s | bytes stored / image | test accuracy ({args.seeds} seeds) | vs shards, 1 view (points) |")
    print("|---|---:|---:|---:|---:|")
    for name, values in rows.items():
        gains = [100 * (a - b) for a, b in zip(values, first)]
        print(
            f"| {name} | {made[name][1]:.1f} | {stored[name]:,.0f} | {statistics.mean(values):.4f} ± {statistics.pstdev(values):.4f} | "
            f"{statistics.mean(gains):+.2f} ± {statistics.pstdev(gains):.2f} |"
        )


if __name__ == "__main__":
    main()
