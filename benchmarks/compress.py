"""`compress` on Fashion-MNIST: the smallest student within 1 point of the teacher, and slimmed vs random students.

The few-labels setting of `kd_gain.py`: Fashion-MNIST (../shared), the
built-in 422k-parameter CNN teacher trained on 10,000 labels, the student
side with 1,000 labels and 20,000 unlabeled images as the transfer set,
1,000 validation images, the 10,000 test images. Printed:

1. The search (`compress.compress`, every family, rungs 2/6/18 epochs,
   int8 and float16 files) with budget "at most 1 point below the teacher"
   (validation), its time, and from the same measured files the choice under
   "at most 1/10 of the teacher's int8 file".
2. Slimmed copies of the teacher against the same architectures from random
   initialisation, each pair distilled 18 epochs the same way (one rung, no
   halving), measured on their int8 files; the 26,770-parameter pair is the
   hand-picked `convnet_student`.
3. The teacher's own int8 file.

The teacher and every search folder are kept under --work: a second run
reuses them (a killed run resumes).

    python benchmarks/compress.py [--work /tmp/kerasdistill-compress]
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import kd_gain  # noqa: E402 (benchmarks/, beside this script)
from kerasdistill import compress, data, files  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
FASHION = os.path.join(SHARED, "data", "fashion-mnist")
PAIRS = (("slim-0.125", "convnet-w4-d2"), ("slim-0.25", "convnet-w8-d2"), ("slim-0.5", "convnet-w16-d2"))


def teacher_model(full, path):
    """kd_gain.py's cnn teacher, trained by kd_gain.py's own code: the built-in CNN on 10,000 labels (60 epochs at
    most, kept at its best validation epoch, 5 epochs of patience)."""
    if os.path.isfile(path):
        return files.load_model(path)
    more = data.hold_out_labels(full, labeled=10_000, seed=1).train
    val = data.to_dataset(*full.val, batch_size=512)
    teacher = kd_gain.train_alone("convnet_teacher", more, val, 0, argparse.Namespace(patience=5), epochs=60)
    files.save_model(teacher, path)
    return teacher


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/kerasdistill-compress")
    parser.add_argument("--unlabeled", type=int, default=20_000)
    args = parser.parse_args()
    if not os.path.isdir(FASHION):
        raise SystemExit(f"Fashion-MNIST is not in {FASHION}; see ../shared/data/README.md.")
    os.makedirs(args.work, exist_ok=True)
    full = data.load_idx(FASHION, validation_size=1000, seed=0)
    splits = data.hold_out_labels(full, labeled=1000, seed=0)
    splits = splits._replace(unlabeled=splits.unlabeled[: args.unlabeled])
    start = time.perf_counter()
    teacher = teacher_model(full, os.path.join(args.work, "teacher.keras"))
    print(f"Teacher ready ({time.perf_counter() - start:.0f} s): {len(splits.train.x):,} labels + {len(splits.unlabeled):,} unlabeled for the students.", flush=True)

    start = time.perf_counter()
    report = compress.compress(teacher, splits, os.path.join(args.work, "search"), compress.Budget(max_drop=1.0))
    minutes = (time.perf_counter() - start) / 60
    teacher_record = report["teacher"]
    print(f"\nThe search took {minutes:.1f} min (a resumed run counts only its own part).")
    tenth = teacher_record["int8"]["size_kib"] / 10
    chosen, meets, verdict = compress.choose(report["files"], compress.Budget(max_size_kib=tenth), teacher_record)
    print(f"Budget 'at most 1/10 of the teacher's int8 file' ({tenth:.1f} KiB), chosen from the same files: {verdict}")
    both, _, verdict = compress.choose(report["files"], compress.Budget(max_drop=1.0, max_size_kib=tenth), teacher_record)
    print(f"Both budgets at once: {verdict}")

    print("\n| pair (same architecture, 18 epochs) | parameters | int8 KiB | int8 test accuracy | validation |")
    print("|---|---:|---:|---:|---:|")
    for pair in PAIRS:
        result = compress.compress(
            teacher, splits, os.path.join(args.work, f"pair-{pair[0]}"), compress.Budget(max_drop=100.0),
            candidates=list(pair), rungs=(18,), quantizations=("int8",), verbose=False,
        )  # fmt: skip
        for name in pair:
            file = next(f for f in result["files"] if f["candidate"] == name)
            print(f"| {name} | {result['candidates'][name]['params']:,} | {file['size_kib']:.1f} | {file['test_accuracy']:.4f} | {file['val_accuracy']:.4f} |")
    int8 = teacher_record["int8"]
    print(f"\nTeacher: {teacher_record['params']:,} parameters, Keras test {teacher_record['test_accuracy']:.4f}; int8 file {int8['size_kib']:.1f} KiB, "
          f"test {int8['test_accuracy']:.4f}, {int8['latency_ms']:.3f} ms/image.")


if __name__ == "__main__":
    main()
