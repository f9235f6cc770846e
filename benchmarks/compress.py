"""`compress` on Fashion-MNIST: the smallest student within 1 point of the teacher, and slimmed vs random students.

The few-labels setting of `kd_gain.py`: Fashion-MNIST (../shared), the
built-in 422k-parameter CNN teacher trained on 10,000 labels, the student
side with 1,000 labels and 20,000 unlabeled images as the transfer set,
1,000 validation images, the 10,000 test images. Printed:

1. The search (`compress.compress`, every family, rungs 2/6/18 epochs,
   int8, float16 and int4 files) with budget "at most 1 point below the teacher"
   (validation), its time, and from the same measured files the choice under
   "at most 1/10 of the teacher's int8 file".
2. Slimmed copies of the teacher against the same architectures from random
   initialisation, each pair distilled 18 epochs the same way (one rung, no
   halving), measured on their int8 files; the 26,770-parameter pair is the
   hand-picked `convnet_student`.
3. The teacher's own int8 file.

Then the embedded digits as `kerasdistill run` splits them (the teacher on
all 3,500 training labels, the students on 500 + 3,000 unlabeled): the
search and the 1/10 choice. int4 files (weight-only) are made too where
`ai-edge-quantizer` is installed.

The teachers and every search folder are kept under --work: a second run
reuses them (a killed run resumes).

    python benchmarks/compress.py [--work /tmp/kerasdistill-compress] [--cases fashion-mnist digits]
"""

import argparse
import importlib.util
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import kd_gain  # noqa: E402 (benchmarks/, beside this script)
from kerasdistill import compress, data, files  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
FASHION = os.path.join(SHARED, "data", "fashion-mnist")
PAIRS = (("slim-0.125", "convnet-w4-d2"), ("slim-0.25", "convnet-w8-d2"), ("slim-0.5", "convnet-w16-d2"))


def teacher_model(full, labels, path):
    """kd_gain.py's cnn teacher, trained by kd_gain.py's own code: the built-in CNN on `labels` labels (60 epochs at
    most, kept at its best validation epoch, 5 epochs of patience)."""
    if os.path.isfile(path):
        return files.load_model(path)
    more = data.hold_out_labels(full, labeled=labels, seed=1).train if labels < len(full.train.x) else full.train
    val = data.to_dataset(*full.val, batch_size=512)
    teacher = kd_gain.train_alone("convnet_teacher", more, val, 0, argparse.Namespace(patience=5), epochs=60)
    files.save_model(teacher, path)
    return teacher


def case(name, full, teacher_labels, labels, unlabeled, work, quantizations, pairs):
    """One search with budget max_drop=1, the 1/10-size choice from its files, and the slimmed-vs-random pairs."""
    splits = data.hold_out_labels(full, labeled=labels, seed=0)
    splits = splits._replace(unlabeled=splits.unlabeled[:unlabeled])
    folder = os.path.join(work, name)
    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    teacher = teacher_model(full, teacher_labels, os.path.join(folder, "teacher.keras"))
    print(f"\n=== {name}: teacher on {teacher_labels:,} labels ({time.perf_counter() - start:.0f} s); the students: "
          f"{len(splits.train.x):,} labels + {len(splits.unlabeled):,} unlabeled", flush=True)
    start = time.perf_counter()
    report = compress.compress(teacher, splits, os.path.join(folder, "search"), compress.Budget(max_drop=1.0), quantizations=quantizations)
    print(f"\nThe search took {(time.perf_counter() - start) / 60:.1f} min (a resumed run counts only its own part).")
    teacher_record = report["teacher"]
    tenth = teacher_record["int8"]["size_kib"] / 10
    for budget in (compress.Budget(max_size_kib=tenth), compress.Budget(max_drop=1.0, max_size_kib=tenth)):
        print(f"Budget {budget}, chosen from the same files: {compress.choose(report['files'], budget, teacher_record)[2]}")
    if pairs:
        print("\n| pair (same architecture, 18 epochs) | parameters | int8 KiB | int8 test accuracy | validation |")
        print("|---|---:|---:|---:|---:|")
    for pair in pairs:
        result = compress.compress(
            teacher, splits, os.path.join(folder, f"pair-{pair[0]}"), compress.Budget(max_drop=100.0),
            candidates=list(pair), rungs=(18,), quantizations=("int8",), verbose=False,
        )  # fmt: skip
        for candidate in pair:
            file = next(f for f in result["files"] if f["candidate"] == candidate)
            print(f"| {candidate} | {result['candidates'][candidate]['params']:,} | {file['size_kib']:.1f} | {file['test_accuracy']:.4f} | {file['val_accuracy']:.4f} |")
    int8 = teacher_record["int8"]
    print(f"\nTeacher: {teacher_record['params']:,} parameters, Keras test {teacher_record['test_accuracy']:.4f}; int8 file {int8['size_kib']:.1f} KiB, "
          f"test {int8['test_accuracy']:.4f}, {int8['latency_ms']:.3f} ms/image.", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/kerasdistill-compress")
    parser.add_argument("--cases", nargs="+", default=["fashion-mnist", "digits"], choices=["fashion-mnist", "digits"])
    args = parser.parse_args()
    # int4 (weight-only) files too where LiteRT's AI Edge Quantizer is installed.
    quantizations = ("int8", "float16", "int4") if importlib.util.find_spec("ai_edge_quantizer") else ("int8", "float16")
    if "fashion-mnist" in args.cases:
        if not os.path.isdir(FASHION):
            raise SystemExit(f"Fashion-MNIST is not in {FASHION}; see ../shared/data/README.md.")
        full = data.load_idx(FASHION, validation_size=1000, seed=0)
        case("fashion-mnist", full, 10_000, 1000, 20_000, args.work, quantizations, PAIRS)
    if "digits" in args.cases:
        # The embedded digits as `kerasdistill run` splits them: 500 labels, the other 3,000 training images unlabeled.
        case("digits", data.load_digits(), 3_500, 500, 3_000, args.work, quantizations, ())


if __name__ == "__main__":
    main()
