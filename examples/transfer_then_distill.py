"""Fine-tune an ImageNet-pretrained teacher, then distill it into a small student.

The teacher is MobileNetV2 (alpha 0.35, 96x96) from keras.applications with a
new head: first the head alone on the frozen backbone, then the top of the
backbone fine-tuned with BatchNorm kept frozen. A CNN about 8x smaller is
then distilled from it. Data: the embedded real MNIST digits as 96x96 RGB.

ImageNet weights are read from $KERASDISTILL_WEIGHTS_DIR or ~/.keras/models
(downloaded there when the machine is online); `--weights none` trains the
whole backbone from random weights instead (a weaker teacher).

    python examples/transfer_then_distill.py [--weights imagenet|none] [--epochs 2]
"""

import argparse

import keras
import tensorflow as tf

import kerasdistill as kd
from kerasdistill import data, models, transfer

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--weights", default="imagenet", help="'imagenet', 'none' or a path to a weights file")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--train-size", type=int, default=2000, help="training images used (of 3500)")
args = parser.parse_args()

digits = data.load_digits()


def as_rgb96(x, y, shuffle=False):
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    dataset = dataset.map(lambda images, labels: (tf.image.grayscale_to_rgb(tf.image.resize(images, (96, 96))), labels))
    return dataset.cache().prefetch(tf.data.AUTOTUNE)


train = as_rgb96(digits.train.x[: args.train_size], digits.train.y[: args.train_size])
val = as_rgb96(*digits.val)
test = as_rgb96(*digits.test)
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

# 1. The teacher: a pretrained backbone, frozen, with a new head.
keras.utils.set_random_seed(0)
weights = None if args.weights == "none" else args.weights
# Pretrained: freeze the backbone and train the head. Random: train it all.
backbone = transfer.load_backbone(
    "mobilenet_v2", input_shape=(96, 96, 3), weights=weights, alpha=0.35, freeze=weights is not None
)
teacher = transfer.build_classifier(backbone, num_classes=10, dropout=0.2)
print("teacher:", transfer.summary(teacher))
teacher.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, metrics=["accuracy"])
teacher.fit(train, epochs=args.epochs, validation_data=val, verbose=2)

# 2. Fine-tune the top of a pretrained backbone, BatchNorm frozen, with a small learning rate.
if weights is not None:
    opened = transfer.unfreeze(teacher, top=20)
    print(f"fine-tuning {len(opened)} layers:", transfer.summary(teacher))
    teacher.compile(optimizer=keras.optimizers.Adam(1e-5), loss=loss, metrics=["accuracy"])
    teacher.fit(train, epochs=args.epochs, validation_data=val, verbose=2)

# 3. Distill into a small CNN that takes the same raw 96x96 images.
student = models.convnet((96, 96, 3), 10, filters=(8, 16, 32), dense_units=0, dropout=0.0, name="student")
distiller = kd.Distiller(teacher=teacher, student=student)
distiller.compile(
    optimizer=keras.optimizers.Adam(1e-3),
    metrics=["accuracy"],
    distillation_loss_fn=kd.losses.SoftTargetKL(),
    alpha=0.1,
    temperature=4.0,
)
distiller.fit(train, epochs=2 * args.epochs, validation_data=val, verbose=2)

teacher_accuracy = teacher.evaluate(test, verbose=0)[1]
student_accuracy = distiller.evaluate(test, verbose=0, return_dict=True)["accuracy"]
print(f"teacher (MobileNetV2 0.35): {teacher.count_params():,} parameters, test accuracy {teacher_accuracy:.4f}")
print(f"student (small CNN)       : {student.count_params():,} parameters, test accuracy {student_accuracy:.4f}")
