"""Transfer sets streamed from disk: images that never become one array.

The unlabeled transfer set is usually the large part of a user's data: at
96x96 colour a float32 image is 108 KiB, so 100,000 of them are 10.5 GiB
before TensorFlow copies them. A stream holds only keys (file names, or row
numbers of an array file mapped into memory); a `tf.data` pipeline reads each
image when a batch needs it, in its own dtype (uint8 for image files) until
the model casts it, in parallel and ahead of the training step, so memory
stays flat however many images there are. `data.transfer_set` takes a stream
in place of an array; `shards.score_to_shards` scores one.

Every stream has `input_shape`, `dtype`, `len()`, `shape`, `dataset()`,
`batches()`, `sample()`, `digest()`, `content_digest()` and
`undecodable_error()`, and gives its images as an array when sliced
(`stream[:200]`); `ImageStream` and `ArrayStream` also have `keys` and
`read()` (what teacher shards pair their outputs with) and `part()`; they
and `DatasetStream` (in increasing positions) have `subset()`. A stream is
never turned into one array (`np.asarray(stream)` is refused): labeled
splits that stream (the `data` loaders' `stream=True`) are read in batches
by every consumer, from training to the interpreter's accuracy pass.
"""

import contextlib
import errno
import glob
import gzip
import hashlib
import math
import os
import re
import shutil
import zipfile
import zlib

import numpy as np

from kerasdistill import files
from kerasdistill.backend import tf
from kerasdistill.folders import IMAGE_FORMATS, image_files
from kerasdistill.idx import CompressedFileError, map_idx, read_idx_header

# Rows gathered per call into a memory-mapped array: one Python call for many images.
GATHER_ROWS = 256
# Bytes decompressed at a time when a compressed array file is unpacked to be streamed.
UNPACK_CHUNK = 1 << 24


class Stream:
    """What every stream shares; subclasses give `keys`, `input_shape`, `dtype` and `read`."""

    def __len__(self):
        return len(self.keys)

    @property
    def shape(self):
        """`(images, height, width, channels)`, as an array's."""
        return (len(self), *self.input_shape)

    def __getitem__(self, index):
        """The images of a slice (`stream[:200]`, `stream[i:j]`) as a float32 array, as the loaders' arrays."""
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError(
                f"A {type(self).__name__} gives arrays of consecutive images only (stream[start:stop]); got [{index!r}]. "
                "Read it in batches (stream.batches(n)) or take a subset of its images (stream.subset(indices))."
            )
        start, stop, _ = index.indices(len(self))
        images = np.empty((max(0, stop - start), *self.input_shape), np.float32)
        # Filled batch by batch: memory holds the slice once, not its batches beside it.
        done = 0
        for batch in self.batches(1024, order=np.arange(start, stop)) if stop > start else ():
            images[done : done + len(batch)] = batch
            done += len(batch)
        return images

    def __array__(self, dtype=None, copy=None):
        # Streaming exists so that the images never become one array: a whole-array use is a bug to name.
        raise TypeError(
            f"This {type(self).__name__} of {len(self):,} images is read in batches (stream.batches(n)) or slices "
            "(stream[:n]), never as one array."
        )

    def batches(self, batch_size, order=None):
        """The images (or those at `order`) in order, as float32 arrays of `batch_size` (the last may be smaller)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1; got {batch_size!r}.")
        try:
            for batch in self.dataset(order=order).batch(batch_size).prefetch(tf.data.AUTOTUNE):
                yield batch.numpy().astype(np.float32)
        except tf.errors.InvalidArgumentError:
            raise self.undecodable_error() from None
        except (tf.errors.NotFoundError, tf.errors.DataLossError) as error:
            raise FileNotFoundError(
                f"An image file cannot be read: {tf_error_message(error)}. Files are read as each batch needs them: "
                "put it back as it was, or remove it (a moved file, a broken link) and load the data again."
            ) from None

    def dataset(self, shuffle=False, seed=None, order=None):
        """A `tf.data.Dataset` of single images in the stream's dtype, read in parallel as they are needed.

        Args:
            shuffle: reshuffle the keys every pass (no image buffer).
            seed: shuffling seed.
            order: optional indices into the stream to read instead of all, in that order.
        """
        keys = np.asarray(self.keys) if order is None else np.asarray(self.keys)[np.asarray(order)]
        keyed = tf.data.Dataset.from_tensor_slices((keys,))
        if shuffle:
            keyed = keyed.shuffle(len(keys), seed=seed, reshuffle_each_iteration=True)
        return self.read(keyed).map(lambda image: image)

    def sample(self, count=256):
        """Up to `count` images spread evenly over the stream, as a float32 array (for scale checks)."""
        picks = np.unique(np.linspace(0, len(self) - 1, num=min(count, len(self))).astype(int))
        return np.concatenate(list(self.batches(256, order=picks)))

    def content_digest(self):
        """A digest of the images for a split's record: `digest` unless a stream can say more for the same cost."""
        return self.digest()

    def undecodable_error(self):
        """The error to raise when a pass over the stream failed to read an image."""
        return ValueError(f"An image of the {type(self).__name__} cannot be read.")


class ImageStream(Stream):
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

    dtype = np.dtype(np.uint8)

    def __init__(self, files, input_shape):
        self.files = tuple(files)
        self.input_shape = _checked_shape(input_shape)

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
        shape = _checked_shape(input_shape)
        files = tuple(image_files(path))
        if not files:
            raise ValueError(f"{path} holds no images ({', '.join(IMAGE_FORMATS)}) outside hidden folders.")
        return cls(files, shape)

    @property
    def keys(self):
        return self.files

    def part(self, start, stop):
        """The images `start` to `stop` (a shard of the stream), as a stream."""
        return ImageStream(self.files[start:stop], self.input_shape)

    def subset(self, indices):
        """The images at `indices` (positions in the stream, in that order, or a boolean mask), as a stream."""
        return ImageStream(np.asarray(self.files, dtype=object)[positions(indices, len(self))], self.input_shape)

    def read(self, keyed):
        """`(file name, *rest)` elements to `(image, *rest)`, decoded in parallel, in order."""
        return keyed.map(lambda name, *rest: (self.decode(name), *rest), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def decode(self, path):
        """The image at `path` (a string tensor), decoded, resized to `input_shape`, uint8."""
        return decode_image(tf.io.read_file(path), self.input_shape)

    def digest(self):
        """A digest of what the stream's order and images depend on: the files' paths (from their common folder),
        sizes and modification times (a file rewritten with other pixels at the same size changes it too)."""
        root = os.path.commonpath([os.path.dirname(path) for path in self.files])
        digest = hashlib.sha256(repr(tuple(self.input_shape)).encode())
        for path in self.files:
            status = os.stat(path)
            digest.update(f"{os.path.relpath(path, root)}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def content_digest(self):
        """A digest of the stream's order and images by the files' bytes (read, not decoded) and their paths from
        their common folder: the same for a copy of the folder, which `digest` (by times) is not."""
        root = os.path.commonpath([os.path.dirname(path) for path in self.files])
        digest = hashlib.sha256(repr(tuple(self.input_shape)).encode())
        for path in self.files:
            digest.update(f"{os.path.relpath(path, root)}\0".encode())
            with open(path, "rb") as handle:
                digest.update(hashlib.sha256(handle.read()).digest())
        return digest.hexdigest()

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
            f"An image file cannot be decoded: {bad or 'unknown file'}. Remove or replace it (a "
            "truncated download, or another format with an image extension)."
        )


class ArrayStream(Stream):
    """The rows of an array, read when a batch needs them: a file mapped into memory (`from_file`), or an array.

    Args:
        array: `(N, height, width[, channels])` images: a `numpy.memmap`
            (read from disk as rows are indexed) or any array.
        source: where the array comes from (named in messages and digests).
        rows: the rows of `array` the stream holds, in its order (default:
            all); `subset` gives a stream of some rows, e.g. a split.

    Example:

    ```python
    stream = ArrayStream.from_file("unlabeled.npy", (28, 28, 1))
    train = data.transfer_set((x_few, y_few), stream, batch_size=128)
    ```
    """

    def __init__(self, array, source="an array", rows=None):
        if not hasattr(array, "shape") or len(array.shape) not in (3, 4):
            raise ValueError(f"An ArrayStream reads images shaped (N, height, width[, channels]); {source} has shape {getattr(array, 'shape', None)}.")
        self.rows = None if rows is None else np.asarray(rows, dtype=np.int64)
        if not len(array) or (self.rows is not None and not len(self.rows)):
            raise ValueError(f"{source} holds no images.")
        # Grey images without a channel axis get one (a view: a memory map stays one).
        self.array = array[..., None] if len(array.shape) == 3 else array
        self.source = source
        self.input_shape = _checked_shape(self.array.shape[1:])
        dtype = np.dtype(self.array.dtype).newbyteorder("=")
        # float64 rows are read as float32, what every model computes in (and half the batch's memory).
        self.dtype = np.dtype(np.float32) if dtype.kind == "f" and dtype.itemsize > 4 else dtype

    @classmethod
    def from_file(cls, path, input_shape, unpack_to=None):
        """The images of a `.npy` file, an `.npz` file's array `x` (saved by `np.savez`, not compressed) or a raw
        IDX images file, mapped into memory.

        Args:
            path: the file.
            input_shape: the images' `(height, width, channels)`.
            unpack_to: a folder where a compressed file (`np.savez_compressed`,
                a gzipped IDX file) is decompressed once, in chunks, and
                mapped from there (made again only when the file changes);
                None refuses a compressed file.

        Raises:
            FileNotFoundError: no file at `path`.
            CompressedFileError: the file is compressed and `unpack_to` is None.
            ValueError: the file holds no `x`, or its images are not shaped
                `input_shape`.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No file at {path}: give a .npy file, an .npz file holding array 'x', or an IDX images file.")
        try:
            array = _map_file(path)
        except CompressedFileError:
            if unpack_to is None:
                raise
            array = None
        except zipfile.BadZipFile as error:
            raise _corrupt(path, error) from None
        if array is None:
            array = _map_file(_unpacked_copy(path, unpack_to))
        stream = cls(array, source=path)
        if stream.input_shape != _checked_shape(input_shape):
            raise ValueError(
                f"The images in {path} have shape {stream.input_shape} but the labeled images have {tuple(input_shape)}; "
                "give images of the same size and channels."
            )
        return stream

    @property
    def keys(self):
        return np.arange(len(self.array), dtype=np.int64) if self.rows is None else self.rows

    def part(self, start, stop):
        """The rows `start` to `stop` (a shard of the stream), as a stream (a view, not a copy)."""
        if self.rows is not None:
            return ArrayStream(self.array, self.source, rows=self.rows[start:stop])
        return ArrayStream(self.array[start:stop], self.source)

    def subset(self, indices):
        """The images at `indices` (positions in the stream, in that order, or a boolean mask), as a stream of the
        same array."""
        return ArrayStream(self.array, self.source, rows=self.keys[positions(indices, len(self))])

    def read(self, keyed):
        """`(row number, *rest)` elements to `(image, *rest)`, the rows gathered `GATHER_ROWS` at a time, in order."""

        def gather(rows):
            return np.ascontiguousarray(self.array[rows], dtype=self.dtype)

        def rows(numbers, *rest):
            images = tf.numpy_function(gather, [numbers], tf.as_dtype(self.dtype), stateful=False)
            return (tf.ensure_shape(images, (None, *self.input_shape)), *rest)

        return keyed.batch(GATHER_ROWS).map(rows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()

    def digest(self):
        """A digest of the rows: every byte of an array in memory; of a memory map, its size and 1,024 rows spread over it."""
        digest = hashlib.sha256(f"{self.dtype.str}{self.array.shape}".encode())
        if self.rows is not None:
            digest.update(self.rows.tobytes())
        if isinstance(self.array, np.memmap):
            digest.update(np.ascontiguousarray(self.array[self.keys[np.unique(np.linspace(0, len(self) - 1, num=min(1024, len(self))).astype(int))]]).tobytes())
        else:
            self._hash_rows(digest)
        return digest.hexdigest()

    def content_digest(self):
        """A digest of every row's bytes (read in chunks, a memory map too), in the stream's order."""
        digest = hashlib.sha256(f"{self.dtype.str}{self.input_shape}".encode())
        self._hash_rows(digest)
        return digest.hexdigest()

    def _hash_rows(self, digest):
        keys = self.keys
        for start in range(0, len(keys), 4096):
            digest.update(np.ascontiguousarray(self.array[keys[start : start + 4096]]).tobytes())

    def undecodable_error(self):
        return ValueError(f"The images of {self.source} cannot be read (the file changed or was truncated while it was read).")


class ChainStream(Stream):
    """Several streams read as one transfer set (e.g. held-out rows of the labeled data beside a folder).

    Shuffled, each pass interleaves the parts at random in proportion to
    their sizes (every image once); in order, the parts follow each other.

    Args:
        parts: streams of one image shape.
    """

    def __init__(self, parts):
        parts = tuple(parts)
        shapes = {tuple(part.input_shape) for part in parts}
        if not parts or len(shapes) != 1:
            raise ValueError(f"A ChainStream joins streams of one image shape; got {sorted(shapes) or 'none'}.")
        self.parts = parts
        self.input_shape = shapes.pop()
        self.dtype = np.result_type(*(part.dtype for part in parts))

    def __len__(self):
        return sum(len(part) for part in self.parts)

    def dataset(self, shuffle=False, seed=None, order=None):
        if order is not None:
            raise ValueError("A ChainStream is read whole; score or index each of its parts instead.")
        parts = [part.dataset(shuffle, None if seed is None else seed + index).map(lambda image: tf.cast(image, self.dtype)) for index, part in enumerate(self.parts)]
        if not shuffle:
            joined = parts[0]
            for part in parts[1:]:
                joined = joined.concatenate(part)
            return joined
        weights = [len(part) / len(self) for part in self.parts]
        return tf.data.Dataset.sample_from_datasets(parts, weights=weights, seed=seed, stop_on_empty_dataset=False)

    def sample(self, count=256):
        return np.concatenate([part.sample(max(1, count * len(part) // len(self))) for part in self.parts])

    def digest(self):
        return hashlib.sha256("".join(part.digest() for part in self.parts).encode()).hexdigest()

    def content_digest(self):
        return hashlib.sha256("".join(part.content_digest() for part in self.parts).encode()).hexdigest()

    def undecodable_error(self):
        for part in self.parts:
            try:
                for _ in part.dataset().batch(256):
                    pass
            except tf.errors.InvalidArgumentError:
                return part.undecodable_error()
        return super().undecodable_error()


class DatasetStream(Stream):
    """The images of a `tf.data.Dataset` (a user's pipeline, TFRecord files), read in the dataset's order.

    The dataset cannot be indexed, so a shuffled pass goes through a buffer
    of `shuffle_buffer` images (memory: that many images, not the set;
    encoded ones where `decode` decodes the dataset's raw elements), and
    teacher shards are paired with the images by position: the
    dataset must give the same images in the same order on every pass (no
    shuffling inside it).

    Args:
        dataset: a `tf.data.Dataset` of images, of `(images, ...)` tuples
            (the first part is taken), batched or not.
        count: the number of images; default the dataset's cardinality, or
            one pass counting them when it is unknown.
        source: what the dataset is, named in messages.
        digest: what identifies the images for teacher shards (e.g. a digest
            of the files it reads); default the count and the first 256
            images' bytes.
        shuffle_buffer: images held to shuffle a pass.

    Example:

    ```python
    stream = DatasetStream.from_tfrecord("unlabeled-*.tfrecord", (96, 96, 3))
    train = data.transfer_set((x_few, y_few), stream, batch_size=128)
    ```
    """

    def __init__(self, dataset, count=None, source="a tf.data dataset", digest=None, shuffle_buffer=4096, decode=None):
        if not isinstance(dataset, tf.data.Dataset):
            raise TypeError(f"DatasetStream reads a tf.data.Dataset; got {type(dataset).__name__}.")
        if int(dataset.cardinality()) == int(tf.data.INFINITE_CARDINALITY):
            raise ValueError(f"{source[:1].upper()}{source[1:]} repeats forever: a stream is one pass over the images. Remove its .repeat().")
        # Raw elements (e.g. TFRecord records) are kept apart from their decoding, so a worker's part is picked
        # before anything is decoded.
        self.raw, self.decode = dataset, decode
        dataset = dataset if decode is None else dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        spec = dataset.element_spec
        if isinstance(spec, (tuple, list)):
            dataset, spec = dataset.map(lambda first, *rest: first), spec[0]
        if not isinstance(spec, tf.TensorSpec) or spec.shape.rank not in (3, 4) or not spec.shape[-3:].is_fully_defined():
            raise ValueError(
                f"{source} must give images of one known shape, (height, width, channels) or batches of them; its elements are "
                f"{spec}. Resize them in the dataset (tf.image.resize) first."
            )
        if spec.shape.rank == 4 and decode is not None:
            raise ValueError("decode must give one image per raw element, not a batch.")
        self.images = dataset.unbatch() if spec.shape.rank == 4 else dataset
        self.input_shape = _checked_shape(spec.shape[-3:])
        self.dtype = np.dtype(spec.dtype.as_numpy_dtype)
        self.source, self._digest = source, digest
        if isinstance(shuffle_buffer, bool) or not isinstance(shuffle_buffer, int) or shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer is a number of images, a whole number >= 1; got {shuffle_buffer!r}.")
        self.shuffle_buffer = shuffle_buffer
        if count is None:
            known = int(self.images.cardinality())
            count = known if known >= 0 else int(self.images.reduce(np.int64(0), lambda total, _: total + 1))
        if not count:
            raise ValueError(f"{source} holds no images.")
        self.count = int(count)

    @classmethod
    def from_tfrecord(cls, pattern, input_shape, image_key=None, shuffle_buffer=4096):
        """The images of TFRecord files of `tf.train.Example`s, each holding an encoded image (PNG, JPEG, GIF, BMP)
        under `image_key`, decoded and resized to `input_shape` as `ImageStream` does.

        Args:
            pattern: a file, a folder of `*.tfrecord*` files, or a glob
                pattern (`"unlabeled-*.tfrecord"`); the files are read in
                sorted order.
            input_shape: `(height, width, channels)`.
            image_key: the feature holding the encoded image; default the
                first record's `"image"` (TFDS), `"image/encoded"` (the TF
                Object Detection API) or its one feature holding image bytes.
            shuffle_buffer: images held to shuffle a pass.
        """
        pattern = os.fspath(pattern)
        files = sorted(tf.io.gfile.glob(os.path.join(pattern, "*.tfrecord*") if os.path.isdir(pattern) else pattern))
        if not files:
            raise FileNotFoundError(f"No TFRecord file matches {pattern}.")
        shape = _checked_shape(input_shape)
        # TFDS names each split's files NAME-SPLIT.tfrecord-*: a folder of several splits is not one transfer set.
        splits = sorted({match.group(1) for path in files if (match := re.search(r"-(\w+)\.tfrecord-\d{5}-of-\d{5}$", os.path.basename(path)))})
        if len(splits) > 1:
            raise ValueError(
                f"{pattern} holds the TFRecord files of several splits ({', '.join(splits)}): give one split's files, e.g. "
                f"a folder or pattern of the *-{splits[-1]}.tfrecord* files only."
            )
        with open(files[0], "rb") as handle:
            compression = "GZIP" if handle.read(2) == b"\x1f\x8b" else ""
        image_key = image_key or _image_feature(files[0], compression)
        features = {image_key: tf.io.FixedLenFeature([], tf.string)}

        def parse(record):
            return decode_image(tf.io.parse_single_example(record, features)[image_key], shape)

        digest = hashlib.sha256(repr(shape).encode())
        for path in files:
            digest.update(f"{os.path.basename(path)}\0{tf.io.gfile.stat(path).length}\n".encode())
        records = tf.data.TFRecordDataset(files, compression_type=compression)
        return cls(
            records,
            count=int(records.reduce(np.int64(0), lambda total, _: total + 1)),
            source=f"the TFRecord files {pattern}",
            digest=digest.hexdigest(),
            shuffle_buffer=shuffle_buffer,
            decode=parse,
        )

    def __len__(self):
        return self.count

    def subset(self, indices):
        """The images at `indices` (increasing positions: a dataset is read in its order; or a boolean mask), as a
        stream (its raw elements picked before decoding, as this stream's)."""
        indices = positions(indices, len(self))
        digest = hashlib.sha256(self.digest().encode() + indices.tobytes()).hexdigest()
        return DatasetStream(
            self._picked(indices), count=len(indices), source=self.source, digest=digest, shuffle_buffer=self.shuffle_buffer, decode=self.decode
        )

    def dataset(self, shuffle=False, seed=None, order=None):
        return self._decoded(self._picked(order), shuffle, seed)

    def paired(self, others, shuffle=False, seed=None):
        """`(image, *other)` elements: each image beside the element of `others` (a dataset of tuples, one per image,
        in the stream's order), shuffled through the stream's buffer before decoding where the raw elements are
        kept apart (encoded images, not decoded ones, fill it)."""
        zipped = tf.data.Dataset.zip((self._picked(None), others))
        if shuffle:
            zipped = zipped.shuffle(self.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        decode = self.decode or (lambda image: image)
        return zipped.map(lambda raw, rest: (decode(raw), *rest), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _picked(self, order):
        """The raw elements (the images where there is no decoding) at `order` (None: all), not yet decoded."""
        picked = (self.raw if self.decode is not None else self.images).take(self.count)
        if order is None:
            return picked
        order = np.asarray(order, dtype=np.int64)
        if len(order) and np.array_equal(order, np.arange(order[0], order[0] + len(order))):
            # Consecutive positions (a slice): skip to the first, without reading past the last.
            return picked.skip(int(order[0])).take(len(order))
        if not np.all(np.diff(order) > 0):
            raise ValueError("A DatasetStream is read in its own order: give increasing positions.")
        wanted = np.zeros(self.count, bool)
        wanted[order] = True
        mask = tf.constant(wanted)
        # Every element is read, and those not asked for are dropped.
        return picked.enumerate().filter(lambda position, _: mask[position]).map(lambda _, element: element)

    def _decoded(self, picked, shuffle, seed):
        # Shuffled before decoding where the raw elements are kept apart: the buffer holds encoded images.
        if shuffle:
            picked = picked.shuffle(self.shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        return picked if self.decode is None else picked.map(self.decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def sample(self, count=256):
        """The first `count` images (a dataset is read in order), as a float32 array."""
        try:
            return np.concatenate([batch.numpy() for batch in self.images.take(min(count, self.count)).batch(256)]).astype(np.float32)
        except tf.errors.InvalidArgumentError as error:
            raise self.undecodable_error(error) from None

    def digest(self):
        if self._digest is not None:
            return self._digest
        digest = hashlib.sha256(f"{self.count}{self.input_shape}{self.dtype.str}".encode())
        digest.update(np.ascontiguousarray(self.sample(256)).tobytes())
        return digest.hexdigest()

    def undecodable_error(self, error=None):
        return ValueError(f"An image of {self.source} cannot be read{f' ({error.message})' if error is not None else ''}.")


# The first bytes of the encodings tf.io.decode_image reads.
IMAGE_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM")


def _image_feature(path, compression):
    """The feature of the first record of `path` that holds an encoded image."""
    try:
        first = next(iter(tf.data.TFRecordDataset(path, compression_type=compression).take(1)), None)
    except tf.errors.DataLossError:
        raise ValueError(f"{path} is not a TFRecord file (or it is corrupt).") from None
    if first is None:
        raise ValueError(f"{path} holds no record.")
    try:
        feature = tf.train.Example.FromString(first.numpy()).features.feature
    except Exception:  # noqa: BLE001 - protobuf's DecodeError has no stable import path
        raise ValueError(f"The records of {path} are not tf.train.Example protos.") from None
    images = [key for key, value in feature.items() if value.bytes_list.value and value.bytes_list.value[0].startswith(IMAGE_SIGNATURES)]
    for key in ("image", "image/encoded"):
        if key in images:
            return key
    if len(images) != 1:
        raise ValueError(
            f"The records of {path} hold {len(images) or 'no'} features of encoded images ({', '.join(images) or 'features: ' + ', '.join(sorted(feature))}); "
            "name the one to read (image_key=...)."
        )
    return images[0]


def decode_image(content, input_shape):
    """Encoded image bytes (PNG, JPEG, GIF, BMP) decoded, resized to `input_shape` (bilinear), uint8.

    Decoded with its own channels, then converted (TensorFlow's decoders
    cannot give every format every channel count: a GIF no grey, a BMP no
    grey, a JPEG no alpha).
    """
    height, width, channels = input_shape
    image = tf.io.decode_image(content, channels=0, expand_animations=False)
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


def is_stream(value):
    return isinstance(value, Stream)


def positions(indices, count):
    """`indices` of a stream of `count` images as int64 positions: whole numbers in [-count, count) (negative ones
    from the end, as numpy's), or a boolean mask of `count` values; anything else (fractions) refused."""
    indices = np.asarray(indices)
    if indices.dtype == bool:
        if indices.shape != (count,):
            raise ValueError(f"A boolean mask of a stream has one value per image ({count}); got shape {indices.shape}.")
        return np.flatnonzero(indices)
    if indices.ndim != 1 or (len(indices) and indices.dtype.kind not in "iu"):
        raise ValueError(f"Positions in a stream are a 1-D list of whole numbers (or a boolean mask); got {indices.dtype} of shape {indices.shape}.")
    indices = indices.astype(np.int64)
    if len(indices) and (indices.min() < -count or indices.max() >= count):
        raise IndexError(f"Positions in a stream of {count} images run from {-count} to {count - 1}; got {indices.min()} to {indices.max()}.")
    return np.where(indices < 0, indices + count, indices)


def tf_error_message(error):
    """What went wrong in a `tf.data` error (e.g. "…/0007.png; No such file or directory"), without the chain of
    datasets TensorFlow names first."""
    # Eager iteration puts it on the first line; a graph (Keras' fit) after "Graph execution error:" and its trace.
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(error))
    found = re.search(r"Iterator::\S*: (.*?)(?:\s*\[\[|$)", text, re.MULTILINE)
    if found is None:
        found = re.search(r"^(.*(?:No such file or directory|Unknown image file format|Input is empty).*?)(?:\s*\[\[|$)", text, re.MULTILINE)
    return (found.group(1) if found else text.splitlines()[0][-300:]).strip().rstrip(".")


def _checked_shape(input_shape):
    shape = tuple(int(side) for side in input_shape)
    if len(shape) != 3 or shape[2] not in (1, 3, 4) or min(shape) < 1:
        raise ValueError(f"input_shape must be (height, width, channels) with 1, 3 or 4 channels; got {tuple(input_shape)}.")
    return shape


def _map_file(path):
    """A `.npy`, an `.npz` file's array `x`, or a raw IDX file, as a memory map (`CompressedFileError` if compressed)."""
    if path.endswith(".npy"):
        return np.load(path, mmap_mode="r", allow_pickle=False)
    if path.endswith(".npz"):
        return map_npz_member(path, "x")
    return map_idx(path)


def _unpacked_copy(path, folder):
    """The uncompressed copy, in `folder`, of a compressed array file (whose `.npz` member `x` `_map_file` found):
    an `.npz` file's `x` as `.npy`, a gzipped IDX file as raw IDX. Decompressed in chunks (memory holds one) and
    written atomically, once its size was checked against the free disk; named by the file's path and its content's
    checksum (stored in the file), size and time, so an unchanged file is decompressed once and a changed one again
    (its older copy removed).

    Raises:
        OSError: the disk has no room for the copy (nothing is written).
        ValueError: the file is corrupt or truncated (nothing is kept).
    """
    npz = path.endswith(".npz")
    try:
        with contextlib.ExitStack() as stack:
            if npz:
                archive = stack.enter_context(zipfile.ZipFile(path))
                info = archive.getinfo("x.npy")
                checksum, size = info.CRC, info.file_size
            else:
                with open(path, "rb") as handle:
                    handle.seek(-8, os.SEEK_END)
                    checksum = handle.read(4).hex()  # the gzip trailer: CRC-32, then the size modulo 2**32
                with gzip.open(path, "rb") as handle:
                    dtype, shape, header = read_idx_header(handle, path)
                size = header + math.prod(shape) * dtype.itemsize
            status = os.stat(path)
            named = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
            key = hashlib.sha256(f"{checksum}\0{size}\0{status.st_size}\0{status.st_mtime_ns}".encode()).hexdigest()[:12]
            target = os.path.join(folder, f"unpacked-{named}-{key}{'.npy' if npz else '.idx'}")
            if os.path.isfile(target):
                return target
            os.makedirs(folder, exist_ok=True)
            free = shutil.disk_usage(folder).free
            if size > free:
                raise OSError(
                    errno.ENOSPC,
                    f"{path} is compressed; streaming it needs its {size / 2**30:.2f} GiB decompressed in {folder}, which has "
                    f"{free / 2**30:.2f} GiB free. Free some space, or save the images uncompressed (np.save, np.savez, gunzip) "
                    "on a disk with room and give that file.",
                )
            source = stack.enter_context(archive.open("x.npy") if npz else gzip.open(path, "rb"))
            with files.atomic_path(target) as temporary, open(temporary, "wb") as handle:
                shutil.copyfileobj(source, handle, UNPACK_CHUNK)
    except (zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise _corrupt(path, error) from None
    # The copies of the file as it was before are of no further use.
    for stale in glob.glob(os.path.join(glob.escape(folder), f"unpacked-{named}-*")):
        if stale != target:
            os.remove(stale)
    return target


def _corrupt(path, error):
    return ValueError(
        f"{path} cannot be read: it is corrupt or truncated ({type(error).__name__}: {error}). Write or download it "
        "again (nothing was kept of the part read)."
    )


def map_npz_member(path, key):
    """Array `key` of an `.npz` file as a memory map: an archive member stored uncompressed (`np.savez`) is a
    `.npy` file at a known offset in the archive."""
    with zipfile.ZipFile(path) as archive:
        members = {name[:-4]: info for name in archive.namelist() if name.endswith(".npy") for info in [archive.getinfo(name)]}
        if key not in members:
            raise ValueError(f"{path} must hold an array '{key}' of unlabeled images; it holds {sorted(members)}.")
        info = members[key]
        if info.compress_type != zipfile.ZIP_STORED:
            raise CompressedFileError(
                f"{path} is compressed (np.savez_compressed): streaming reads rows in place, which needs them "
                "uncompressed. Save it with np.savez or np.save (.npy), or load it whole with data.load_unlabeled."
            )
    with open(path, "rb") as handle:
        # The member's local header: 30 bytes, then its name and extra field, whose lengths it gives.
        handle.seek(info.header_offset + 26)
        name_length, extra_length = np.frombuffer(handle.read(4), "<u2")
        handle.seek(info.header_offset + 30 + int(name_length) + int(extra_length))
        version = np.lib.format.read_magic(handle)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"Array '{key}' of {path} has .npy format {version}; save it again with np.savez.")
        shape, fortran, dtype = readers[version](handle)
        offset = handle.tell()
    if fortran or dtype.hasobject:
        raise ValueError(f"Array '{key}' of {path} is not a plain C-ordered array; save it with np.savez(path, x=np.ascontiguousarray(x)).")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
