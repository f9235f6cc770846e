"""Images streamed from disk: a transfer set that never becomes one array.

The unlabeled transfer set is usually the large part of a user's data: at
96x96 colour a float32 image is 108 KiB, so 100,000 of them are 10.5 GiB
before TensorFlow copies them. An `ImageStream` holds only the file names; a
`tf.data` pipeline decodes each image when a batch needs it (uint8 until the
model casts it), in parallel and ahead of the training step, so memory stays
flat however many images the folder holds. `data.transfer_set` takes a
stream in place of an array; `shards.score_to_shards` scores one.
"""

import dataclasses
import os

import numpy as np

from kerasdistill.backend import tf
from kerasdistill.data import IMAGE_FORMATS, image_files


@dataclasses.dataclass(frozen=True)
class ImageStream:
    """The images of a folder, decoded lazily, resized to one shape.

    Args:
        files: the image files, in the stream's order.
        input_shape: `(height, width, channels)` every image is decoded and
            resized to (bilinear, as `keras.utils.image_dataset_from_directory`).

    Example:

    ```python
    stream = ImageStream.from_folder("unlabeled_photos/", (96, 96, 3))
    train = data.transfer_set((x_few, y_few), stream, batch_size=128)
    ```
    """

    files: tuple
    input_shape: tuple

    @classmethod
    def from_folder(cls, path, input_shape):
        """The images under `path` (any sub-folders; hidden entries skipped), sorted by path.

        Raises:
            FileNotFoundError: `path` is not a folder.
            ValueError: it holds no image, or `input_shape` is not
                `(height, width, channels)` with 1, 3 or 4 channels.
        """
        if not os.path.isdir(path):
            raise FileNotFoundError(f"No folder at {path}: a streamed transfer set reads a folder of images.")
        shape = tuple(int(side) for side in input_shape)
        if len(shape) != 3 or shape[2] not in (1, 3, 4) or min(shape) < 1:
            raise ValueError(f"input_shape must be (height, width, channels) with 1, 3 or 4 channels; got {input_shape}.")
        files = tuple(image_files(path))
        if not files:
            raise ValueError(f"{path} holds no images ({', '.join(IMAGE_FORMATS)}) outside hidden folders.")
        return cls(files, shape)

    def __len__(self):
        return len(self.files)

    def part(self, start, stop):
        """The images `start` to `stop` (a shard of the stream), as a stream."""
        return ImageStream(self.files[start:stop], self.input_shape)

    def decode(self, path):
        """The image at `path` (a string tensor), decoded, resized to `input_shape`, uint8.

        Decoded with its own channels, then converted (TensorFlow's decoders
        cannot give every format every channel count: a GIF no grey, a BMP no
        grey, a JPEG no alpha).
        """
        height, width, channels = self.input_shape
        image = tf.io.decode_image(tf.io.read_file(path), channels=0, expand_animations=False)
        own = tf.shape(image)[-1]
        # Grey (with or without alpha) repeated to RGB; alpha dropped.
        rgb = tf.cond(own < 3, lambda: tf.tile(image[..., :1], [1, 1, 3]), lambda: image[..., :3])
        rgb = tf.image.resize(tf.ensure_shape(rgb, (None, None, 3)), (height, width), method="bilinear")
        if channels == 1:
            image = tf.image.rgb_to_grayscale(rgb)
        elif channels == 4:
            image = tf.concat([rgb, tf.fill(tf.concat([tf.shape(rgb)[:2], [1]], 0), 255.0)], axis=-1)
        else:
            image = rgb
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    def undecodable_error(self):
        """The error to raise when a pass over the stream met a file it cannot decode: it names the first one."""
        bad = None
        for path in self.files:
            try:
                self.decode(tf.constant(path))
            except tf.errors.InvalidArgumentError:
                bad = path
                break
        return ValueError(
            f"An image of the unlabeled folder cannot be decoded: {bad or 'unknown file'}. Remove or replace it (a "
            "truncated download, or another format with an image extension)."
        )

    def dataset(self, shuffle=False, seed=None, order=None):
        """A `tf.data.Dataset` of single uint8 images, decoded in parallel as they are read.

        Args:
            shuffle: reshuffle the file names every pass (no image buffer).
            seed: shuffling seed.
            order: optional indices into `files` to read instead of all.
        """
        files = np.asarray(self.files) if order is None else np.asarray(self.files)[np.asarray(order)]
        names = tf.data.Dataset.from_tensor_slices(files)
        if shuffle:
            names = names.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        return names.map(self.decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def sample(self, count=256):
        """Up to `count` images spread evenly over the stream, as a float32 array (for scale checks)."""
        picks = np.unique(np.linspace(0, len(self) - 1, num=min(count, len(self))).astype(int))
        try:
            return np.concatenate([batch.numpy() for batch in self.dataset(order=picks).batch(256)]).astype(np.float32)
        except tf.errors.InvalidArgumentError:
            raise self.undecodable_error() from None
