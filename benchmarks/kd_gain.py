"""Does distillation pay? The distilled student against the same student trained alone.

The few-labels setting where distillation is known to win (Hinton et al.
2015; Beyer et al. 2022): Fashion-MNIST (all 70,000 real images, from
../shared/data/fashion-mnist) with only `--labels` labeled training images,
a teacher that knows more than those labels can teach, and the other
training images as an unlabeled transfer set that the teacher scores.

Teachers:
- `cnn`: the built-in 422k-parameter CNN trained on `--teacher-labels`
  labeled images (a teacher trained on more data than the student has);
- `imagenet`: MobileNetV2 (alpha 1.0, ImageNet weights from
  ../shared/weights, 96×96 inside the model) with a new head trained on the
  same `--labels` images, then its top blocks fine-tuned at a low rate.

Rows, each for the same 26,770-parameter student, over `--seeds` seeds
(student initialisation and data order; the labeled subset and the teachers
are fixed): scratch (labels only); KD on the same labeled data; KD + the
transfer set (teacher outputs cached once); KD + transfer set + consistent
teaching (the teacher scored on `--views` augmented views of each image,
the student trained on exactly those views). Every student stops on the same
rule: best validation accuracy, `--patience` epochs without improvement, on
the same 1,000 labeled validation images. The best distilled student of the
first seed is exported to int8 `.tflite` and measured through LiteRT.

Run: python benchmarks/kd_gain.py [--teachers cnn imagenet] [--labels 1000]
     python benchmarks/kd_gain.py --teachers cnn --sweep 250 1000 4000 --seeds 1
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import kerasdistill as kd  # noqa: E402
from kerasdistill import augment, data, export, models, transfer  # noqa: E402
from kerasdistill.backend import keras  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")
FASHION = os.path.join(SHARED, "data", "fashion-mnist")
os.environ.setdefault(transfer.WEIGHTS_DIR_ENV, os.path.join(SHARED, "weights"))
SHAPE = (28, 28, 1)


def accuracy(model, split):
    return float(np.mean(np.argmax(model.predict(split.x, batch_size=512, verbose=0), -1) == split.y))


def stop_on_best(patience):
    return [keras.callbacks.EarlyStopping("val_accuracy", patience=patience, mode="max", restore_best_weights=True)]


def train_alone(name, split, val, seed, args, epochs=200):
    keras.utils.set_random_seed(seed)
    model = models.build(name, SHAPE, 10)
    model.compile(keras.optimizers.Adam(1e-3), kd.losses.CrossEntropy(), metrics=["accuracy"])
    train = data.to_dataset(*split, batch_size=64, shuffle=True, seed=seed)
    model.fit(train, epochs=epochs, validation_data=val, verbose=0, callbacks=stop_on_best(args.patience))
    return model


def imagenet_teacher(split, val, args):
    backbone = transfer.load_backbone("mobilenet_v2", (96, 96, 3), weights="imagenet")
    keras.utils.set_random_seed(0)
    teacher = transfer.build_classifier(backbone, 10, dropout=0.2, input_shape=SHAPE, name="mobilenet_v2_teacher")
    train = data.to_dataset(*split, batch_size=64, shuffle=True, seed=0)
    for stage, (rate, epochs) in enumerate(((1e-3, 60), (1e-4, 20))):
        if stage:  # then the last blocks; BatchNorm stays frozen
            transfer.unfreeze(teacher, top=30)
        teacher.compile(keras.optimizers.Adam(rate), kd.losses.CrossEntropy(), metrics=["accuracy"])
        teacher.fit(train, epochs=epochs, validation_data=val, verbose=0, callbacks=stop_on_best(args.patience))
    return teacher


def distill(teacher, batches, val, seed, args, steps=None):
    keras.utils.set_random_seed(seed)
    student = models.build("convnet_student", SHAPE, 10)
    distiller = kd.Distiller(teacher, student)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"], alpha=args.alpha, temperature=args.temperature)
    epochs = args.transfer_epochs if steps else 200
    distiller.fit(batches, epochs=epochs, steps_per_epoch=steps, validation_data=val, verbose=0, callbacks=stop_on_best(args.patience))
    return student


def mean_std(values):
    return f"{statistics.mean(values):.4f} ± {statistics.pstdev(values):.4f}"


def run_teacher(kind, splits, args):
    start = time.perf_counter()
    val = data.to_dataset(*splits.val, batch_size=512)
    if kind == "cnn":
        more = data.hold_out_labels(args.full, labeled=args.teacher_labels, seed=1).train
        teacher = train_alone("convnet_teacher", more, val, 0, args, epochs=60)
        described = f"convnet_teacher, {args.teacher_labels:,} labels"
    else:
        teacher = imagenet_teacher(splits.train, val, args)
        described = f"MobileNetV2 ImageNet, fine-tuned on the {len(splits.train.x):,} labels"
    teacher_accuracy = accuracy(teacher, splits.test)
    print(f"\n[{kind}] teacher ({described}): test accuracy {teacher_accuracy:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    unlabeled = splits.unlabeled[: args.unlabeled]
    mixed = data.transfer_set(splits.train, unlabeled, batch_size=64, labeled_share=0.25, seed=0)
    steps = -(-len(unlabeled) // 48)
    start = time.perf_counter()
    plain = kd.cache_teacher_outputs(teacher, mixed, batch_size=64, shuffle=True, seed=0)
    views = kd.cache_teacher_outputs(
        teacher, mixed, batch_size=64, shuffle=True, seed=0,
        augmentation=augment.build(args.augmentation, seed=0), views=args.views,
    )
    print(f"  teacher scored {len(unlabeled):,} transfer images (+ {args.views} augmented views each) in {time.perf_counter() - start:.0f} s", flush=True)
    rows = {"scratch": [], "KD, same labeled data": [], "KD + transfer set": [], "KD + transfer set + consistent teaching": []}
    best = (-1.0, None)
    for seed in range(args.seeds):
        start = time.perf_counter()
        labeled = data.to_dataset(*splits.train, batch_size=64, shuffle=True, seed=seed)
        students = {
            "scratch": train_alone("convnet_student", splits.train, val, seed, args),
            "KD, same labeled data": distill(teacher, labeled, val, seed, args),
            "KD + transfer set": distill(teacher, plain.repeat(), val, seed, args, steps),
            "KD + transfer set + consistent teaching": distill(teacher, views.repeat(), val, seed, args, steps),
        }
        for row, student in students.items():
            rows[row].append(accuracy(student, splits.test))
            if row != "scratch" and seed == 0 and rows[row][-1] > best[0]:
                best = (rows[row][-1], student)
        print(f"  seed {seed}: " + ", ".join(f"{k} {v[-1]:.4f}" for k, v in rows.items()) + f" ({time.perf_counter() - start:.0f} s)", flush=True)
    scratch = rows["scratch"]
    print(f"\n| {kind} teacher {teacher_accuracy:.4f} | test accuracy ({args.seeds} seeds) | gain over scratch (points) | × teacher |")
    print("|---|---:|---:|---:|")
    for row, values in rows.items():
        gains = [100 * (a - b) for a, b in zip(values, scratch)]
        gain = "" if row == "scratch" else f"{statistics.mean(gains):+.2f} ± {statistics.pstdev(gains):.2f}"
        print(f"| {row} | {mean_std(values)} | {gain} | {statistics.mean(values) / teacher_accuracy:.3f} |")
    with tempfile.TemporaryDirectory() as folder:
        result = export.to_tflite(best[1], os.path.join(folder, "student_int8.tflite"), "int8", representative_data=splits.train.x)
        measured = export.evaluate_tflite(result.path, splits.test)
        print(f"\nBest distilled student (seed 0): Keras {best[0]:.4f}, int8 .tflite {measured['accuracy']:.4f} "
              f"({measured['size_bytes'] / 1024:.1f} KiB)", flush=True)


def add_setting_arguments(parser, unlabeled, seeds):
    """The teacher, transfer set, views and training settings this benchmark and `stream_views.py` share."""
    parser.add_argument("--teacher-labels", type=int, default=10000, help="labels of the cnn teacher")
    parser.add_argument("--unlabeled", type=int, default=unlabeled, help="images of the transfer set")
    parser.add_argument("--views", type=int, default=4, help="augmented views per image for consistent teaching")
    parser.add_argument("--augmentation", nargs="+", default=["flip", "translate"])
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--patience", type=int, default=5)
    parser.add_argument("--transfer-epochs", type=int, default=15)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--temperature", type=float, default=4.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teachers", nargs="+", default=["cnn", "imagenet"], choices=["cnn", "imagenet"])
    parser.add_argument("--labels", type=int, default=1000, help="labeled training images of the student")
    parser.add_argument("--sweep", type=int, nargs="*", help="label counts for the gain-vs-labels table instead")
    add_setting_arguments(parser, unlabeled=20000, seeds=3)
    args = parser.parse_args()
    if not os.path.isdir(FASHION):
        raise SystemExit(f"Fashion-MNIST is not in {FASHION}; see ../shared/data/README.md.")
    args.full = data.load_idx(FASHION, validation_size=1000, seed=0)
    start = time.perf_counter()
    for labels in args.sweep or [args.labels]:
        splits = data.hold_out_labels(args.full, labeled=labels, seed=0)
        print(f"\n=== {labels:,} labeled images, {min(args.unlabeled, len(splits.unlabeled)):,} unlabeled, "
              f"1,000 validation, {len(splits.test.x):,} test", flush=True)
        for kind in args.teachers:
            run_teacher(kind, splits, args)
    print(f"\nTotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
