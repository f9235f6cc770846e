"""ImageNet backbones from `keras.applications`: frozen, with new heads, fine-tuned.

Teachers in real projects are ImageNet backbones with a new head, fine-tuned
on the user's data; small ones (MobileNetV2 with alpha 0.35) make good
students. This module does that in three lines, and does it right:

- the backbone's own preprocessing is inside the model, so models (and their
  `.tflite` files) take raw images in [0, 255];
- BatchNorm layers stay frozen, and frozen BatchNorm runs in inference mode:
  its moving statistics never change, also after `unfreeze`, unless asked.
  (In Keras 3, `fit`'s `training=True` overrides a nested
  `backbone(x, training=False)`; only a BatchNorm layer's `trainable=False`
  keeps it in inference mode, so that is what this module relies on.)
- weights are looked up offline first (`KERASDISTILL_WEIGHTS_DIR`, then Keras'
  cache), and a missing file is named, with the folders searched, at once.

Example:

```python
from kerasdistill import transfer
backbone = transfer.load_backbone("mobilenet_v2", input_shape=(96, 96, 3), alpha=0.35)
teacher = transfer.build_classifier(backbone, num_classes=10, dropout=0.2)
teacher.compile(...); teacher.fit(...)          # the head only
transfer.unfreeze(teacher, top=30)               # then fine-tune; BatchNorm stays frozen
teacher.compile(optimizer=keras.optimizers.Adam(1e-5), ...); teacher.fit(...)
```
"""

import collections
import os
import socket
import warnings

import numpy as np

from kerasdistill.backend import keras, register_serializable

WEIGHTS_DIR_ENV = "KERASDISTILL_WEIGHTS_DIR"
BACKBONE_LAYER = "backbone"

_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"

BackboneSpec = collections.namedtuple(
    "BackboneSpec", ["constructor", "preprocessing", "default_size", "min_size", "options", "weights_url"]
)
BackboneSpec.__doc__ = """What kerasdistill knows of one `keras.applications` backbone.

constructor: name of the `keras.applications` function.
preprocessing: "tf" (to [-1, 1]), "torch" (ImageNet mean/std), "caffe" (BGR
    minus the ImageNet mean) or "none" (the model has its own).
default_size, min_size: input side in pixels.
options: constructor options and their allowed values (None: any value).
weights_url: function(input_shape, options) -> URL of the no-top weights;
    its last part is the file name Keras caches it under.
"""


def _mobilenet_v2_url(shape, options):
    rows = shape[0] if shape[0] in (96, 128, 160, 192, 224) else 224
    alpha = float(options.get("alpha", 1.0))
    return f"{_APPS}mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{alpha}_{rows}_no_top.h5"


def _mobilenet_v3_url(kind):
    def url(shape, options):
        minimalistic = "_minimalistic" if options.get("minimalistic", False) else ""
        alpha = options.get("alpha", 1.0)
        return f"{_APPS}mobilenet_v3/weights_mobilenet_v3_{kind}{minimalistic}_224_{alpha}_float_no_top_v2.h5"

    return url


def _fixed_url(path, base=_APPS):
    return lambda shape, options: base + path


# EfficientNet (v1) weights live one folder up from the others.
_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"


_ALPHA_V2 = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)

# The published hashes of the no-top files (md5, or sha256 when 64 digits long), as keras.applications
# checks its own downloads with them; a download that does not match is refused. Keras publishes none for
# MobileNetV2.
WEIGHTS_HASHES = {
    "weights_mobilenet_v3_small_224_0.75_float_no_top_v2.h5": "ebdb5cc8e0b497cd13a7c275d475c819",
    "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5": "d3e8ec802a04aa4fc771ee12a9a9b836",
    "weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5": "cde8136e733e811080d9fcd8a252f7e4",
    "weights_mobilenet_v3_large_224_0.75_float_no_top_v2.h5": "40af19a13ebea4e2ee0c676887f69a2e",
    "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5": "07fb09a5933dd0c8eaafa16978110389",
    "weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5": "ec5221f64a2f6d1ef965a614bdae7973",
    "efficientnetb0_notop.h5": "50bc09e76180e00e4465e1a485ddc09d",
    "efficientnetb1_notop.h5": "74c4e6b3e1f6a1eea24c589628592432",
    "efficientnetb2_notop.h5": "111f8e2ac8aa800a7a99e3239f7bfb39",
    "efficientnetb3_notop.h5": "af6d107764bb5b1abb91932881670226",
    "efficientnetv2-b0_notop.h5": "893217f2bb855e2983157299931e43ff",
    "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5": "4d473c1dd8becc155b73f8504c6f6626",
    "resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5": "fac2f116257151a9d068a22e544a4917",
    "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5": "bcbd6486424b2319ff4ef7d526e38f63",
    "densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5": "30ee3e1110167f948a6b9946edeeb738",
    "convnext_tiny_notop.h5": "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
}

BACKBONES = {
    "mobilenet_v2": BackboneSpec("MobileNetV2", "tf", 224, 32, {"alpha": _ALPHA_V2}, _mobilenet_v2_url),
    "mobilenet_v3_small": BackboneSpec(
        "MobileNetV3Small", "none", 224, 32, {"alpha": (0.75, 1.0), "minimalistic": (False, True)},
        _mobilenet_v3_url("small"),
    ),
    "mobilenet_v3_large": BackboneSpec(
        "MobileNetV3Large", "none", 224, 32, {"alpha": (0.75, 1.0), "minimalistic": (False, True)},
        _mobilenet_v3_url("large"),
    ),
    "efficientnet_b0": BackboneSpec("EfficientNetB0", "none", 224, 32, {}, _fixed_url("efficientnetb0_notop.h5", _EFFICIENTNET)),
    "efficientnet_b1": BackboneSpec("EfficientNetB1", "none", 240, 32, {}, _fixed_url("efficientnetb1_notop.h5", _EFFICIENTNET)),
    "efficientnet_b2": BackboneSpec("EfficientNetB2", "none", 260, 32, {}, _fixed_url("efficientnetb2_notop.h5", _EFFICIENTNET)),
    "efficientnet_b3": BackboneSpec("EfficientNetB3", "none", 300, 32, {}, _fixed_url("efficientnetb3_notop.h5", _EFFICIENTNET)),
    "efficientnet_v2_b0": BackboneSpec(
        "EfficientNetV2B0", "none", 224, 32, {}, _fixed_url("efficientnet_v2/efficientnetv2-b0_notop.h5")
    ),
    "resnet50": BackboneSpec(
        "ResNet50", "caffe", 224, 32, {}, _fixed_url("resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5")
    ),
    "resnet50_v2": BackboneSpec(
        "ResNet50V2", "tf", 224, 32, {}, _fixed_url("resnet/resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5")
    ),
    "inception_v3": BackboneSpec(
        "InceptionV3", "tf", 299, 75, {},
        _fixed_url("inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ),
    "densenet121": BackboneSpec(
        "DenseNet121", "torch", 224, 32, {},
        _fixed_url("densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5"),
    ),
    "convnext_tiny": BackboneSpec("ConvNeXtTiny", "none", 224, 32, {}, _fixed_url("convnext/convnext_tiny_notop.h5")),
}


def list_backbones():
    """Returns `{name: {"default_size", "min_size", "preprocessing", "options"}}` of every backbone."""
    return {
        name: {
            "default_size": spec.default_size,
            "min_size": spec.min_size,
            "preprocessing": spec.preprocessing,
            "options": dict(spec.options),
        }
        for name, spec in BACKBONES.items()
    }


def get_spec(name):
    """The `BackboneSpec` of a backbone name, or a ValueError listing the known names."""
    spec = BACKBONES.get(str(name).lower())
    if spec is None:
        raise ValueError(f"Unknown backbone '{name}'. Known backbones: {', '.join(BACKBONES)}.")
    return spec


@register_serializable
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw RGB pixels in [0, 255] to what an ImageNet backbone expects.

    A plain layer (no Lambda), so models that contain it save, load in
    `safe_mode` and convert to TFLite.

    Args:
        mode: `"tf"` (scale to [-1, 1]), `"torch"` (scale to [0, 1], then
            normalise with the ImageNet mean and std) or `"caffe"` (RGB to BGR,
            then subtract the ImageNet mean).

    Returns:
        A layer; called on images of shape (..., 3).

    Example:

    ```python
    x = ImagePreprocessing("tf")(keras.Input((96, 96, 3)))
    ```
    """

    MODES = ("tf", "torch", "caffe")

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}; got {mode!r}.")
        self.mode = mode

    def call(self, images):
        import tensorflow as tf

        images = tf.cast(images, self.compute_dtype)
        if self.mode == "tf":
            return images / 127.5 - 1.0
        if self.mode == "torch":
            mean = tf.constant([0.485, 0.456, 0.406], self.compute_dtype)
            std = tf.constant([0.229, 0.224, 0.225], self.compute_dtype)
            return (images / 255.0 - mean) / std
        bgr = tf.reverse(images, axis=[-1])
        return bgr - tf.constant([103.939, 116.779, 123.68], self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def weights_file_name(name, input_shape=None, **options):
    """The file name under which Keras caches a backbone's ImageNet (no-top) weights."""
    spec = get_spec(name)
    shape = _check_input_shape(name, spec, input_shape, "imagenet")
    return os.path.basename(spec.weights_url(shape, _check_options(name, spec, options)))


def weights_search_folders():
    """Folders searched, in order, for ImageNet weights files."""
    folders = []
    if os.environ.get(WEIGHTS_DIR_ENV):
        folders.append(os.path.abspath(os.path.expanduser(os.environ[WEIGHTS_DIR_ENV])))
    keras_home = os.environ.get("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))
    folders.append(os.path.join(keras_home, "models"))
    return folders


def find_imagenet_weights(name, input_shape=None, download=True, timeout=15.0, **options):
    """Returns the path of a backbone's ImageNet weights, downloading only as a last resort.

    Looks in `$KERASDISTILL_WEIGHTS_DIR`, then in Keras' cache
    (`~/.keras/models`), under the canonical file name; then, if `download`,
    fetches it into Keras' cache with a connection timeout.

    Raises:
        FileNotFoundError: naming the file, the folders searched and how to
            provide it, when it is nowhere and cannot be downloaded.
    """
    spec = get_spec(name)
    shape = _check_input_shape(name, spec, input_shape, "imagenet")
    url = spec.weights_url(shape, _check_options(name, spec, options))
    file_name = os.path.basename(url)
    folders = weights_search_folders()
    found = _first_file(folders, file_name)
    if found:
        return found
    # Keras itself loads the default-size file for input sizes it has no
    # file for: convolution weights fit any input size.
    default_shape = (spec.default_size, spec.default_size, 3)
    default_name = os.path.basename(spec.weights_url(default_shape, _check_options(name, spec, options)))
    found = _first_file(folders, default_name) if default_name != file_name else None
    if found:
        warnings.warn(
            f"ImageNet weights for backbone '{name}' at input {shape[0]}x{shape[1]} ({file_name}) are not in "
            f"{', '.join(folders)}; loading {found} instead, the weights for {spec.default_size}x"
            f"{spec.default_size} inputs (convolution weights fit any input size; Keras does the same for sizes "
            "it has no file for).",
            UserWarning,
            stacklevel=2,
        )
        return found
    reason = "downloading is off (download=False)"
    if download:
        expected = WEIGHTS_HASHES.get(file_name)
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(timeout)
        try:
            # Into the Keras cache folder searched above (Keras reads KERAS_HOME once, at import, and
            # falls back to /tmp for a folder that does not exist yet).
            os.makedirs(folders[-1], exist_ok=True)
            cache = os.path.dirname(folders[-1])
            return keras.utils.get_file(file_name, url, cache_dir=cache, cache_subdir="models", file_hash=expected)
        except ValueError:  # The hash check: Keras leaves the file, which the next lookup would take.
            damaged = os.path.join(folders[-1], file_name)
            if os.path.isfile(damaged):
                os.remove(damaged)
            raise ValueError(
                f"The file downloaded from {url} does not match the published hash of {file_name} ({expected}): it "
                "is damaged or not the published file, and was removed. Try again, or copy the file from a "
                f"trusted machine into {WEIGHTS_DIR_ENV}."
            ) from None
        except Exception as error:  # Keras wraps every network failure in a bare Exception.
            reason = f"the download from {url} failed ({error})"
        finally:
            socket.setdefaulttimeout(previous)
    raise FileNotFoundError(
        f"ImageNet weights for backbone '{name}' not found: looked for {file_name} in "
        f"{', '.join(folders)}, and {reason}. Copy the file (from {url}, on a machine with "
        f"internet) into one of those folders, or set {WEIGHTS_DIR_ENV} to the folder that "
        "holds it; or pass weights=None (random initialisation) or weights='/path/to/file.h5'."
    )


def _first_file(folders, file_name):
    for folder in folders:
        path = os.path.join(folder, file_name)
        if os.path.isfile(path):
            return path
    return None


def depth(name, **options):
    """The number of layers of a backbone's `keras.applications` model: the most `unfreeze(top=...)` reopens.

    Builds the architecture at its smallest input, without weights.
    """
    spec = get_spec(name)
    side = spec.min_size
    application = getattr(keras.applications, spec.constructor)(
        include_top=False, weights=None, input_shape=(side, side, 3), **_check_options(name, spec, options)
    )
    return len(application.layers)


def load_backbone(
    name, input_shape=None, weights="imagenet", freeze=None, freeze_batchnorm=None, download=True, **options
):
    """Loads a `keras.applications` backbone without its top, taking raw images.

    The returned model maps raw RGB images in [0, 255] to the backbone's last
    feature map. Inside it: the backbone's preprocessing, then the
    `keras.applications` model (a nested model named after the constructor),
    called with `training=False`. With pretrained weights, BatchNorm layers
    are frozen whatever `freeze` says, which keeps them in inference mode
    in Keras 3 too.

    Args:
        name: a name from `list_backbones()`, e.g. `"mobilenet_v2"`.
        input_shape: `(height, width, 3)`; default: the backbone's default size.
        weights: `"imagenet"`, None (random initialisation), or a path to a
            weights file for this backbone without its top.
        freeze: True (all layers), False (none), an int N (the first N
            layers), a float F in [0, 1] (that fraction of the layers, from
            the bottom) or a layer name (every layer up to and including it).
            Default: True with pretrained weights, False with `weights=None`
            (frozen random layers would never learn; asking for them warns).
        freeze_batchnorm: freeze every BatchNorm layer (inference mode, fixed
            statistics). Default: True with pretrained weights (fine-tuning
            practice), False with `weights=None` (training from scratch needs
            batch statistics).
        download: with `weights="imagenet"`, whether a file found in no
            local folder may be downloaded.
        **options: constructor options the backbone takes (see
            `list_backbones()`), e.g. `alpha=0.35` for MobileNetV2.

    Returns:
        A functional `keras.Model` named `BACKBONE_LAYER` ("backbone").

    Example:

    ```python
    backbone = load_backbone("mobilenet_v2", input_shape=(96, 96, 3), alpha=0.35)
    ```
    """
    spec = get_spec(name)
    options = _check_options(name, spec, options)
    shape = _check_input_shape(name, spec, input_shape, weights)
    if weights == "imagenet":
        weights_path = find_imagenet_weights(name, shape, download=download, **options)
    elif weights is None:
        weights_path = None
    elif isinstance(weights, (str, os.PathLike)):
        weights_path = os.fspath(weights)
        if not os.path.isfile(weights_path):
            raise FileNotFoundError(
                f"The weights file {weights_path} does not exist. Pass weights='imagenet', None, or a path to an .h5 "
                f"or .weights.h5 file of '{name}' without its top."
            )
    else:
        raise ValueError(f"weights must be 'imagenet', None or a file path; got {weights!r}.")

    application = getattr(keras.applications, spec.constructor)(
        include_top=False, weights=None, input_shape=shape, **options
    )
    if weights_path is not None:
        try:
            application.load_weights(weights_path)
        except Exception as error:  # h5py, Keras and TF each raise their own type for a bad file.
            raise ValueError(
                f"The weights file {weights_path} does not fit backbone '{name}' with input {shape} and "
                f"options {options}: {error}. Use the no-top weights of this backbone "
                f"({os.path.basename(spec.weights_url(shape, options))}), or change the backbone or its options."
            ) from None
    if freeze is None:
        freeze = weights is not None
    elif weights is None and freeze is not False:
        warnings.warn(
            f"load_backbone('{name}', weights=None, freeze={freeze!r}) freezes randomly initialised layers, which "
            "then never learn. Pass freeze=False to train the backbone from scratch, or weights='imagenet'.",
            stacklevel=2,
        )
    if freeze_batchnorm is None:
        freeze_batchnorm = weights is not None
    freeze_layers(application, freeze, freeze_batchnorm)

    images = keras.Input(shape=shape, name="image")
    x = images if spec.preprocessing == "none" else ImagePreprocessing(spec.preprocessing)(images)
    features = application(x, training=False)
    return keras.Model(images, features, name=BACKBONE_LAYER)


def build_classifier(
    backbone, num_classes, dropout=0.2, augmentation=None, pooling="avg", name="classifier", input_shape=None
):
    """Puts a new classification head on a backbone from `load_backbone`.

    Args:
        backbone: a model from `load_backbone` (raw images in, features out).
        num_classes: number of classes; the model outputs logits.
        dropout: dropout rate before the last layer (0 for none).
        augmentation: None, or a list of Keras layers (e.g.
            `keras.layers.RandomFlip("horizontal")`) applied to the raw images;
            Keras' random layers act only in training.
        pooling: `"avg"` or `"max"` global pooling of the features.
        name: name of the model.
        input_shape: the shape of the images the model takes, when it is
            not the backbone's: e.g. `(28, 28, 1)` for a 96×96 RGB backbone
            that must take the same small grey images as its student (the
            `Distiller` feeds both the same batch). The images are resized
            (bilinear) and grey ones repeated to 3 channels inside the model.

    Returns:
        A functional `keras.Model` from raw images in [0, 255] to logits.

    Example:

    ```python
    teacher = build_classifier(backbone, num_classes=10, dropout=0.2,
                               augmentation=[keras.layers.RandomFlip("horizontal")])
    ```
    """
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be a whole number >= 2; got {num_classes!r}.")
    if pooling not in ("avg", "max"):
        raise ValueError(f"pooling must be 'avg' or 'max'; got {pooling!r}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout!r}.")
    backbone_shape = tuple(backbone.input_shape[1:])
    shape = backbone_shape if input_shape is None else tuple(input_shape)
    if len(shape) != 3 or shape[2] not in (1, backbone_shape[2]):
        raise ValueError(
            f"input_shape must be (height, width, channels) with 1 or {backbone_shape[2]} channels; got {input_shape!r}."
        )
    images = keras.Input(shape=shape, name="image")
    x = images
    for layer in augmentation or []:
        x = layer(x)
    if shape[:2] != backbone_shape[:2]:
        x = keras.layers.Resizing(backbone_shape[0], backbone_shape[1], name="resize")(x)
    if shape[2] != backbone_shape[2]:
        x = keras.layers.Concatenate(name="grey_to_rgb")([x] * backbone_shape[2])
    x = backbone(x)
    pool = keras.layers.GlobalAveragePooling2D if pooling == "avg" else keras.layers.GlobalMaxPooling2D
    x = pool(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(images, outputs, name=name)


def freeze_layers(model, freeze, freeze_batchnorm=True):
    """Sets `trainable` on `model`'s layers from the bottom, as `load_backbone`'s `freeze` says.

    With `freeze_batchnorm`, BatchNormalization layers are frozen in every case (see `unfreeze`).
    """
    layers = model.layers
    if freeze is True or freeze is False:
        count = len(layers) if freeze else 0
    elif isinstance(freeze, int):
        if not 0 <= freeze <= len(layers):
            raise ValueError(f"freeze={freeze} layers, but the model has {len(layers)}.")
        count = freeze
    elif isinstance(freeze, float):
        if not 0.0 <= freeze <= 1.0:
            raise ValueError(f"freeze as a fraction must be in [0, 1]; got {freeze}.")
        count = int(round(freeze * len(layers)))
    elif isinstance(freeze, str):
        count = _layer_index(model, freeze) + 1
    else:
        raise ValueError(f"freeze must be True, False, an int, a float in [0, 1] or a layer name; got {freeze!r}.")
    for i, layer in enumerate(layers):
        is_batchnorm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= count and not (freeze_batchnorm and is_batchnorm)


def find_application(model):
    """The `keras.applications` model inside a classifier or a backbone from this module."""
    if model.name != BACKBONE_LAYER:
        try:
            model = model.get_layer(BACKBONE_LAYER)
        except ValueError:
            raise ValueError(
                f"Model '{model.name}' has no layer named '{BACKBONE_LAYER}'; pass a model built with "
                "transfer.load_backbone / transfer.build_classifier."
            ) from None
    nested = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if len(nested) != 1:
        raise ValueError(f"Backbone '{model.name}' should hold one keras.applications model; found {len(nested)}.")
    return nested[0]


def unfreeze(model, top=None, from_layer=None, fraction=None, train_batchnorm=False):
    """Reopens the top of the backbone for fine-tuning; the head stays trainable.

    Exactly one of `top`, `from_layer`, `fraction` says which layers: the last
    `top` layers, every layer from `from_layer` (included) up, or the top
    `fraction` of the layers. Layers below stay frozen. BatchNormalization
    layers stay frozen, in inference mode with fixed moving statistics (what
    fine-tuning on a small dataset wants), unless `train_batchnorm=True`:
    then the reopened ones train fully, scale, offset and statistics.
    Recompile the model afterwards, as Keras requires for `trainable` to
    take effect.

    Args:
        model: a classifier from `build_classifier` or a backbone from `load_backbone`.
        top: number of layers to reopen, from the top.
        from_layer: name of the lowest layer to reopen.
        fraction: fraction of the layers to reopen, from the top.
        train_batchnorm: also train the reopened BatchNorm layers (statistics included).

    Returns:
        The names of the layers made trainable.

    Example:

    ```python
    unfreeze(teacher, top=30)
    teacher.compile(optimizer=keras.optimizers.Adam(1e-5), loss=...)
    ```
    """
    if sum(arg is not None for arg in (top, from_layer, fraction)) != 1:
        raise ValueError("Pass exactly one of top=N, from_layer=NAME or fraction=F.")
    application = find_application(model)
    layers = application.layers
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= len(layers):
            raise ValueError(f"top must be a whole number in [0, {len(layers)}]; got {top!r}.")
        start = len(layers) - top
    elif from_layer is not None:
        start = _layer_index(application, from_layer)
    else:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1]; got {fraction}.")
        start = len(layers) - int(round(fraction * len(layers)))
    model.trainable = True
    backbone = model if model.name == BACKBONE_LAYER else model.get_layer(BACKBONE_LAYER)
    backbone.trainable = True
    application.trainable = True
    opened = []
    for i, layer in enumerate(layers):
        is_batchnorm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = i >= start and (train_batchnorm or not is_batchnorm)
        if layer.trainable and layer.weights:
            opened.append(layer.name)
    return opened


def summary(model):
    """Trainable and frozen parameter counts of `model`.

    Returns:
        `{"trainable": int, "frozen": int, "total": int}`; `frozen` counts
        every non-trainable weight (BatchNorm moving statistics included).
    """
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    frozen = int(sum(np.prod(w.shape) for w in model.non_trainable_weights))
    return {"trainable": trainable, "frozen": frozen, "total": trainable + frozen}


def _layer_index(model, layer_name):
    names = [layer.name for layer in model.layers]
    if layer_name not in names:
        raise ValueError(
            f"Model '{model.name}' has no layer '{layer_name}'. Its layers: {', '.join(names)}."
        )
    return names.index(layer_name)


def _check_options(name, spec, options):
    for key, value in options.items():
        if key not in spec.options:
            allowed = ", ".join(spec.options) or "none"
            raise ValueError(f"Backbone '{name}' takes no option '{key}'. Its options: {allowed}.")
        allowed = spec.options[key]
        if allowed is not None and value not in allowed:
            raise ValueError(f"Backbone '{name}' takes {key} in {allowed}; got {value!r}.")
    return dict(options)


def _check_input_shape(name, spec, input_shape, weights):
    if input_shape is None:
        return (spec.default_size, spec.default_size, 3)
    shape = tuple(input_shape)
    if len(shape) != 3 or any(not isinstance(d, int) for d in shape):
        raise ValueError(f"input_shape must be (height, width, channels) in whole numbers; got {input_shape!r}.")
    if min(shape[:2]) < spec.min_size:
        raise ValueError(
            f"Backbone '{name}' needs inputs of at least {spec.min_size}x{spec.min_size}; got {shape[0]}x{shape[1]}. "
            "Resize the images (keras.layers.Resizing) or pick another backbone."
        )
    if shape[2] != 3 and weights is not None:
        raise ValueError(
            f"ImageNet weights expect 3 colour channels; got {shape[2]}. Convert grey images to RGB "
            "(tf.image.grayscale_to_rgb) or pass weights=None."
        )
    return shape
