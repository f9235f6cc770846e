"""An ImageNet teacher, few labels, many unlabeled images: distill, compare, export.

The flow kerasdistill is built for. You have a few labeled images and many
unlabeled ones. A teacher that knows more than the labels can teach
(here MobileNetV2 pretrained on ImageNet, with a new head, then its top blocks
fine-tuned) scores every image once; a small CNN learns from the labels *and*
from the teacher's outputs on the unlabeled images; the same CNN trained on
the labels alone is the baseline to beat; the winner ships as an int8
`.tflite` file.

Data: a folder of MNIST-format IDX files (`--data`, e.g. Fashion-MNIST), or
the embedded real MNIST digits. ImageNet weights are read offline from
$KERASDISTILL_WEIGHTS_DIR or ~/.keras/models, under Keras' file name
(`mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5`; copy
it there from a machine with internet). `--weights none` starts the
backbone from random weights instead (a much weaker teacher).

    python examples/transfer_then_distill.py --data ../shared/data/fashion-mnist --labels 1000
"""

import argparse
import os
import tempfile

import keras
import numpy as np

import kerasdistill as kd
from kerasdistill import data, export, models, transfer

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data", default=None, help="a folder of IDX files (default: the embedded digits)")
parser.add_argument("--weights", default="imagenet", help="'imagenet', 'none' or a weights file")
parser.add_argument("--labels", type=int, default=500, help="labeled training images")
parser.add_argument("--unlabeled", type=int, default=10000, help="unlabeled images in the transfer set (at most)")
parser.add_argument("--epochs", type=int, default=5, help="epochs over the transfer set")
args = parser.parse_args()

# 1. Data: keep the labels of a few images; the others are the transfer set.
full = data.load_idx(args.data, validation_size=1000) if args.data else data.load_digits()
few = data.hold_out_labels(full, labeled=args.labels, seed=0)
unlabeled = few.unlabeled[: args.unlabeled]
print(f"{len(few.train.x)} labeled, {len(unlabeled)} unlabeled, {len(few.test.x)} test images")
shape = few.train.x.shape[1:]

# 2. The teacher: ImageNet MobileNetV2 at 96x96, taking the same small grey
# images as the student (resized and repeated to RGB inside the model).
weights = None if args.weights == "none" else args.weights
try:
    backbone = transfer.load_backbone("mobilenet_v2", (96, 96, 3), weights=weights, freeze=weights is not None)
except FileNotFoundError as error:
    raise SystemExit(f"{error}\nOr run this example with --weights none.") from None
keras.utils.set_random_seed(0)
teacher = transfer.build_classifier(backbone, few.num_classes, dropout=0.2, input_shape=shape, name="teacher")
labeled = data.to_dataset(*few.train, batch_size=64, shuffle=True)
stop = [keras.callbacks.EarlyStopping("val_accuracy", patience=5, mode="max", restore_best_weights=True)]
loss = kd.losses.CrossEntropy()
teacher.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
teacher.fit(labeled, epochs=10 * args.epochs, validation_data=few.val, verbose=0, callbacks=stop)
if weights is not None:
    # Then the top blocks, at a low rate; BatchNorm stays in inference mode.
    transfer.unfreeze(teacher, top=30)
    teacher.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, metrics=["accuracy"])
    teacher.fit(labeled, epochs=4 * args.epochs, validation_data=few.val, verbose=0, callbacks=stop)

# 3. The teacher scores the labeled and unlabeled images once.
mixed = data.transfer_set(few.train, unlabeled, batch_size=64, labeled_share=0.25, shuffle=False)
cached = kd.cache_teacher_outputs(teacher, mixed, shuffle=True, seed=0)
steps = int(mixed.cardinality())

# 4. The same small CNN, distilled and from scratch, for the same number of steps.
keras.utils.set_random_seed(1)
student = models.build("convnet_student", shape, few.num_classes)
distiller = kd.Distiller(teacher, student)
distiller.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"], alpha=0.1, temperature=4.0)
distiller.fit(cached.repeat(), epochs=args.epochs, steps_per_epoch=steps, validation_data=few.val, verbose=2)

keras.utils.set_random_seed(1)
scratch = models.build("convnet_student", shape, few.num_classes)
scratch.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
scratch.fit(labeled.repeat(), epochs=args.epochs, steps_per_epoch=steps, validation_data=few.val, verbose=0)


def accuracy(model):
    return float(np.mean(np.argmax(model.predict(few.test.x, verbose=0), -1) == few.test.y))


# 5. The distilled student as an int8 file, measured through LiteRT.
with tempfile.TemporaryDirectory() as folder:
    int8 = export.to_tflite(student, os.path.join(folder, "student_int8.tflite"), "int8", representative_data=few.train.x)
    measured = export.evaluate_tflite(int8.path, few.test)
print(f"teacher (MobileNetV2, {teacher.count_params():,} parameters): {accuracy(teacher):.4f}")
print(f"student from scratch ({scratch.count_params():,} parameters): {accuracy(scratch):.4f}")
print(f"student distilled                             : {accuracy(student):.4f}")
print(f"student distilled, int8 .tflite ({int8.size_bytes / 1024:.1f} KiB)       : {measured['accuracy']:.4f}")
