"""Augmented views as parameters: the view the teacher scored, made again exactly when the student trains.

Consistent teaching (Beyer et al. 2022) wants the teacher and the student to
see the same augmented view of an image. A cache of K views
(`cache.cache_teacher_outputs(views=K)`) stores the augmented images, which
for a streamed transfer set is K copies of the data. Here, as "Fast Knowledge
Distillation" (Shen & Xing 2021) stores each crop's coordinates beside its
soft labels, a view is its parameters: a horizontal flip, a shift, a zoom and
an angle (`PARAMETERS`, 20 bytes), drawn from `(seed, image position)`
alone (the same views whatever the shard size or the worker that scores
them), stored with the teacher's outputs (`shards.score_to_shards(...,
views=K)`), and applied again to the decoded image when it trains: both
models see the same pixels.

The geometric augmentations of `augment.AUGMENTATIONS` have views, with
the same ranges as their Keras layers: `flip`, `translate`, `crop`, `rotate`.
`mixup` and `cutmix` mix two images, which a view of one image cannot hold.
"""

import math

from kerasdistill.augment import AUGMENTATIONS
from kerasdistill.backend import tf

# A view's parameters, in this order: flip (-1 mirrors, 1 keeps), shift (fractions of the width and height),
# zoom (the share of the image the view shows, <= 1: a crop resized back) and angle (radians).
PARAMETERS = ("flip", "shift_x", "shift_y", "zoom", "angle")
# The ranges of the Keras layers `augment.AUGMENTATIONS` builds for these names.
SHIFT, ZOOM_IN, TURN = 0.1, 0.2, 0.05 * 2 * math.pi
VIEWED = ("flip", "translate", "crop", "rotate")


def check_names(names):
    """The augmentation names a view is drawn from, as a tuple; refuses names without views.

    Raises:
        ValueError: an unknown name, a repeated one, or one that mixes images
            (`mixup`, `cutmix`).
    """
    names = (names,) if isinstance(names, str) else tuple(names or ())
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"Unknown augmentation(s) {', '.join(map(repr, unknown))}; views are drawn from {', '.join(VIEWED)}.")
    mixing = [name for name in names if name not in VIEWED]
    if mixing:
        raise ValueError(
            f"{', '.join(mixing)} mixes two images, which a stored view of one image cannot hold; views are drawn "
            f"from {', '.join(VIEWED)}. Leave {', '.join(mixing)} out, or let the teacher score each mixed batch as "
            "it trains (online distillation: no stored views)."
        )
    if len(set(names)) != len(names):
        raise ValueError(f"Each augmentation may be named once; got {list(names)}.")
    return names


def draw(names, seed, position, views):
    """The parameters of `views` views of the image at `position`: a `(views, 5)` float32 tensor.

    A function of `(seed, position)` alone (stateless random numbers), so
    any worker, any shard size and a resumed pass draw the same views.
    The augmentations not named keep their identity value.
    """
    uniform = tf.random.stateless_uniform((views, len(PARAMETERS)), seed=tf.stack([tf.cast(seed, tf.int64), tf.cast(position, tf.int64)]))
    flip = tf.where(uniform[:, 0] < 0.5, -1.0, 1.0) if "flip" in names else tf.ones((views,))
    shift = (2 * uniform[:, 1:3] - 1) * SHIFT if "translate" in names else tf.zeros((views, 2))
    zoom = 1 - ZOOM_IN * uniform[:, 3] if "crop" in names else tf.ones((views,))
    angle = (2 * uniform[:, 4] - 1) * TURN if "rotate" in names else tf.zeros((views,))
    return tf.concat([flip[:, None], shift, zoom[:, None], angle[:, None]], axis=1)


def apply(images, parameters):
    """The views of `images` (`(N, height, width, channels)`) given by `parameters` (`(N, 5)`), in the images' dtype.

    One bilinear projective transform per image (zeros fill what the view
    shows beyond the image); integer images are rounded back, so the pixels
    are the same whether a view is made in a batch or alone.
    """
    images = tf.convert_to_tensor(images)
    dtype = images.dtype
    # In float64, then rounded to float32: float32 sines and cosines of a batch and of one image can differ in the
    # last bit, which would move a pixel of the view the student trains on away from the one the teacher scored.
    height, width = (tf.cast(side, tf.float64) for side in tf.unstack(tf.shape(images)[1:3]))
    flip, shift_x, shift_y, zoom, angle = tf.unstack(tf.cast(parameters, tf.float64), axis=1)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Each output pixel p is read from the input at c + F·Z·R·(p - c) - shift (c the centre, F the flip,
    # Z the zoom, R the rotation): the transform maps outputs to inputs.
    a0, a1, b0, b1 = flip * zoom * cos, -flip * zoom * sin, zoom * sin, zoom * cos
    cx, cy = (width - 1) / 2, (height - 1) / 2
    a2 = cx - a0 * cx - a1 * cy - shift_x * width
    b2 = cy - b0 * cx - b1 * cy - shift_y * height
    zeros = tf.zeros_like(a0)
    transforms = tf.cast(tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1), tf.float32)
    moved = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(images, tf.float32), transforms=transforms, output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT",
    )
    if dtype.is_integer:
        moved = tf.clip_by_value(tf.round(moved), dtype.min, dtype.max)
    return tf.cast(moved, dtype)


def apply_one(image, parameters):
    """`apply` to one image `(height, width, channels)` and its `(5,)` parameters."""
    return apply(image[None], parameters[None])[0]


def check_image_shape(input_shape):
    """Refuses inputs that are not images (views move pixels): `(height, width, channels)` is needed."""
    if len(tuple(input_shape)) != 3:
        raise ValueError(
            f"Augmented views move the pixels of images shaped (height, width, channels); the inputs have shape "
            f"{tuple(input_shape)}. Store no views (views=1, no augmentation) for other inputs."
        )
