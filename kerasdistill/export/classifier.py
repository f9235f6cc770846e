"""What an on-device image classifier takes and gives: RGB pixels in, class probabilities out, with metadata.

MediaPipe Tasks' `ImageClassifier` (Android, iOS, web, Python) and the TFLite
Task Library feed a model 0-255 RGB pixels: as float after the input
normalization its metadata records, or as uint8 as they are for a quantized
model. They read scores as probabilities and name them with the labels file
the metadata points to. `classifier_model` wraps a Keras classifier to that
contract; `to_tflite(..., target="classifier")` converts it and writes the
metadata (`kerasdistill.export.metadata`).
"""

import math

import numpy as np

from kerasdistill.backend import keras
from kerasdistill.checks import input_shape, probe, resolve_output_kind
from kerasdistill.data import check_class_names as check_names
from kerasdistill.export.metadata import ClassifierMetadata
from kerasdistill.version import __version__

# Every kerasdistill model takes raw 0-255 pixels and scales them itself.
RAW_PIXELS = (0.0, 1.0)
# ITU-R BT.601 luma, as tf.image.rgb_to_grayscale and PIL's "L" mode: a
# grayscale model gets RGB camera frames, and gray frames (R = G = B) pass
# through unchanged since the weights sum to 1.
LUMA = (0.299, 0.587, 0.114)


def classifier_model(model):
    """`model` wrapped to take RGB images and output class probabilities.

    A softmax is appended when `model` outputs logits; a grayscale (one
    channel) model gets a fixed RGB-to-luma layer in front, since MediaPipe
    feeds RGB only.

    Args:
        model: a Keras image classifier: one `(height, width, 1 or 3)` input,
            one output of class scores (logits or probabilities).

    Returns:
        A Keras model sharing `model`'s layers and weights.
    """
    shape = input_shape(model)
    if shape is None or len(shape) != 3 or None in shape or shape[-1] not in (1, 3):
        raise ValueError(
            f"target='classifier' needs an image model with one input of shape (height, width, 1 or 3); this one "
            f"takes {shape}. Export it with target='plain', or give the Input a fixed image shape."
        )
    probed = probe(model)
    if probed is None or probed.ndim != 2:
        raise ValueError("target='classifier' needs a model with one output of class scores, shaped (batch, classes).")
    kind = resolve_output_kind(model, "auto", probed, "student")
    rgb = keras.Input(shape[:2] + (3,), name="image")
    x = rgb
    if shape[-1] == 1:
        luma = keras.layers.Conv2D(1, 1, use_bias=False, trainable=False, name="rgb_to_luma")
        x = luma(x)
        luma.set_weights([np.asarray(LUMA, np.float32).reshape(1, 1, 3, 1)])
    scores = model(x)
    if kind == "logits":
        scores = keras.layers.Softmax(name="probability")(scores)
    return keras.Model(rgb, scores, name=f"{model.name}_classifier")


def gray_to_rgb(images):
    """Grayscale images (last axis 1) as RGB with R = G = B, as a camera gives them; others unchanged."""
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def check_normalization(normalization):
    """`(mean, std)` as floats, with std > 0: model input = (pixel - mean) / std for 0-255 pixels."""
    try:
        mean, std = (float(value) for value in normalization)
    except (TypeError, ValueError):
        raise ValueError(
            f"input_normalization must be (mean, std) with model input = (pixel - mean) / std; got {normalization!r}. "
            "Use (0, 1) for a model that takes raw 0-255 pixels, (0, 255) for [0, 1], (127.5, 127.5) for [-1, 1]."
        ) from None
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
        raise ValueError(f"input_normalization needs a finite mean and a std > 0; got ({mean}, {std}).")
    return mean, std


def pixel_range_mismatch(samples, normalization):
    """`(data_min, data_max, lowest, highest)` when `samples` do not span what 0-255 pixels give under
    `normalization` (`[lowest, highest]`: another scale, or nearly constant data), else None."""
    mean, std = normalization
    lowest, highest = (0.0 - mean) / std, (255.0 - mean) / std
    data_min = min(float(np.min(sample)) for sample in samples)
    data_max = max(float(np.max(sample)) for sample in samples)
    slack = 0.01 * (highest - lowest)
    if data_min < lowest - slack or data_max > highest + slack or data_max - data_min < 0.05 * (highest - lowest):
        return data_min, data_max, lowest, highest
    return None


def check_pixel_range(samples, normalization):
    """Refuses calibration data that 0-255 pixels cannot produce under `normalization` (a wrong normalization)."""
    mismatch = pixel_range_mismatch(samples, normalization)
    if mismatch:
        data_min, data_max, lowest, highest = mismatch
        mean, std = normalization
        raise ValueError(
            f"The calibration data spans [{data_min:g}, {data_max:g}], but with input_normalization=({mean:g}, "
            f"{std:g}) the model would get 0-255 pixels as [{lowest:g}, {highest:g}]. Pass the normalization that "
            "maps pixels to your model's inputs: (0, 1) for raw pixels (every kerasdistill model), (0, 255) for "
            "[0, 1], (127.5, 127.5) for [-1, 1]."
        )


def uint8_input_quantization(normalization):
    """`(scale, zero_point)` of a uint8 input that holds the pixel itself: real = (pixel - mean) / std.

    TFLite's zero point is a whole number, so the mean must be one: a mean
    of 127.5 rounded to 128 would shift every pixel by half a step.
    """
    mean, std = normalization
    if not (float(mean).is_integer() and 0 <= mean <= 255):
        raise ValueError(
            f"An int8 classifier file takes uint8 pixels with the mean as its zero point, which TFLite stores as a "
            f"whole number in 0-255; input_normalization has mean {mean:g}, which as {round(mean)} would shift every "
            f"pixel by {abs(round(mean) - mean):g}. Scale the pixels inside the model (a Rescaling layer) and "
            "export with input_normalization=(0, 1), give a whole mean the model was trained with, or export "
            "float32, float16 or dynamic."
        )
    return 1.0 / std, int(mean)


def check_class_names(class_names, classes):
    """`class_names` as a tuple of `classes` distinct, one-line names (`data.check_class_names`)."""
    if class_names is None:
        raise ValueError(
            f"target='classifier' needs class_names: {classes} names in output order (the labels an app shows), "
            "e.g. the folder names of an image-folder dataset or tfds' info.features['label'].names."
        )
    names = check_names(class_names, "class_names")
    if len(names) != classes:
        raise ValueError(f"class_names has {len(names)} names but the model outputs {classes} class scores; give one per class.")
    return names


MODEL_INFO = ("name", "description", "version", "author", "license")


def classifier_metadata(model, class_names, normalization, model_info=None):
    """The `ClassifierMetadata` of `classifier_model(model)` exported with `normalization`.

    `model_info` may set the metadata's name, description, version, author
    and license; name and description default to the model's name and a
    line on its classes and input.
    """
    info = dict(model_info or {})
    unknown = sorted(set(info) - set(MODEL_INFO))
    if unknown or not all(isinstance(value, str) for value in info.values()):
        raise ValueError(f"model_info takes text values for {MODEL_INFO}; got {model_info!r}.")
    height, width = input_shape(model)[:2]
    classes = len(class_names)
    info.setdefault("name", model.name)
    info.setdefault(
        "description",
        f"Image classifier over {classes} classes ({', '.join(class_names[:5])}{', ...' if classes > 5 else ''}), "
        f"{height}x{width} RGB input; made with kerasdistill {__version__}.",
    )
    return ClassifierMetadata(
        **info,
        labels=tuple(class_names),
        mean=(normalization[0],),
        std=(normalization[1],),
        color_space="RGB",
        image_size=(height, width),
    )
