"""The run's data from its config: the loaders behind `data.source`, and what the splits are checked for.

`load_data` turns a config's data section into `data.Splits` (train,
validation, test and the unlabeled transfer set), each source through its
own loader in `kerasdistill.data`; the checks refuse, before anything
trains, data no model can learn from or an output folder inside the data,
and `pixel_cautions` says what looks wrong without refusing it.
"""

import glob
import os

import numpy as np

from kerasdistill import data as data_lib
from kerasdistill.batch import label_indices_numpy
from kerasdistill.runs import check_transfer_set
from kerasdistill.folders import holds_images
from kerasdistill.idx import CompressedFileError
from kerasdistill.streams import ArrayStream, ChainStream, DatasetStream, ImageStream, is_stream


def load_data(data_config, seed, transfer_set=True, unpack_to=None):
    """Train / validation / test `Splits` (and the unlabeled transfer set) from the config's data section.

    An unlabeled folder is an `ImageStream`, TFRecord files a `DatasetStream`,
    a `.npy`/`.npz`/IDX file an `ArrayStream` (joined to the held-out labels of
    `data.labeled_size` by a `ChainStream`), not yet read:
    `check_streams` reads it once, after the cheaper checks. A
    compressed file is decompressed once into `unpack_to` and streamed from
    there; without `unpack_to` it is read whole.
    `transfer_set=False` leaves the unlabeled data out (what `evaluate` and
    `export` need of a run's data).
    """
    splits = _load_labeled(data_config, seed)
    if data_config["class_names"] is not None:
        names = tuple(data_config["class_names"])
        if len(names) != splits.num_classes:
            raise ValueError(
                f"data.class_names has {len(names)} names but the data has {splits.num_classes} classes; give one "
                "name per class, in label order."
            )
        _check_own_names(names, splits)
        splits = splits._replace(class_names=names)
    if data_config["labeled_size"] is not None:
        splits = data_lib.hold_out_labels(splits, data_config["labeled_size"], seed)
    path = data_config["unlabeled_path"] if transfer_set else None
    if path is None:
        return splits
    shape = splits.train.x.shape[1:]
    try:
        # Streamed (keys in memory, images read per batch), any size: a folder, TFRecord files, or a file mapped into memory.
        stream = _unlabeled_stream(path, shape, unpack_to)
    except CompressedFileError:
        # A compressed file (np.savez_compressed, a gzipped IDX file) with no folder to decompress it into: read whole.
        extra = data_lib.load_unlabeled(path, shape)
        if is_stream(splits.unlabeled):
            stream = ArrayStream(extra, path)
            check_transfer_set(splits._replace(unlabeled=stream))
            return splits._replace(unlabeled=ChainStream([splits.unlabeled, stream]))
        # The user's unlabeled images must not hold the images the models are measured on.
        check_transfer_set(splits._replace(unlabeled=extra))
        return splits._replace(unlabeled=extra if splits.unlabeled is None else np.concatenate([splits.unlabeled, extra]))
    if splits.unlabeled is not None:
        # Beside the labels held out of training (data.labeled_size): a stream of their files, or rows in memory.
        held = splits.unlabeled if is_stream(splits.unlabeled) else ArrayStream(splits.unlabeled, "the labels held out (data.labeled_size)")
        stream = ChainStream([held, stream])
    return splits._replace(unlabeled=stream)


def _unlabeled_stream(path, shape, unpack_to):
    # A TFRecord file, or a folder holding TFRecord files (as TFDS writes them), is read record by record.
    records = os.path.isdir(path) and glob.glob(os.path.join(glob.escape(path), "*.tfrecord*"))
    if records and holds_images(path):
        raise ValueError(f"{path} holds both TFRecord files and image files: give a folder of one kind (data.unlabeled_path).")
    if ".tfrecord" in os.path.basename(path) or records:
        return DatasetStream.from_tfrecord(path, shape)
    return ImageStream.from_folder(path, shape) if os.path.isdir(path) else ArrayStream.from_file(path, shape, unpack_to)


def check_streams(splits, say=None):
    """Reads each streamed part of `splits` once: refuses images that cannot be read (naming the file), and
    validation or test images in a streamed transfer set. `say` reports the pass."""
    labeled = [(name, split.x) for name, split in (("training", splits.train), ("validation", splits.val), ("test", splits.test)) if is_stream(split.x)]
    if labeled and say:
        say(f"  reading the {sum(len(x) for _, x in labeled):,} streamed labeled images once, to check that each can be decoded")
    for _, x in labeled:
        for _ in x.batches(256):
            pass
    if is_stream(splits.unlabeled):
        check_transfer_set(splits)


def _check_own_names(names, splits):
    """Refuses config class names that differ from the names the source gives its classes.

    The source's names fix which label is which class (sorted folder names,
    an .npz class_names array, tfds' label names): other names would
    relabel its classes, e.g. folder `one` (label 0) exported as "zero".
    Names that are only the class indices as text (the embedded digits'
    0-9) may be replaced.
    """
    own = splits.class_names
    if own is None or tuple(own) == names or tuple(own) == tuple(str(index) for index in range(splits.num_classes)):
        return
    raise ValueError(
        f"data.class_names {list(names)} differ from the names the data gives its classes, in label order: "
        f"{list(own)}. Those names decide which label is which class; other names would relabel them. Remove "
        "data.class_names (the source's names are used), or give exactly the source's names (rename the class "
        "folders, or the .npz class_names array, to change them)."
    )


def _load_labeled(data_config, seed):
    source, size = data_config["source"], data_config["validation_size"]
    if source == "embedded":
        # A fraction is a share of the training data (the 4,000 digits outside
        # the test split), as for every other source.
        count = int(round(size * 4000)) if size < 1 else int(size)
        if count < 10:
            raise ValueError(
                f"data.validation_size {size} gives {count} of the embedded digits' 4,000 training images; the "
                "validation split takes a multiple of 10 (one tenth per class). Give at least 10, or a fraction "
                ">= 0.0025."
            )
        return data_lib.load_digits(val_size=count - count % 10, seed=seed)
    if source == "npz":
        return data_lib.load_npz_splits(data_config["path"], size, seed, stream=data_config["stream"])
    if source == "image_folder":
        return data_lib.load_image_folder(
            data_config["path"], data_config["image_size"], size, data_config["test_fraction"], seed, stream=data_config["stream"]
        )
    if source == "idx":
        return data_lib.load_idx(data_config["path"], size, seed, stream=data_config["stream"])
    return data_lib.load_tfds(
        data_config["name"],
        data_config["data_dir"],
        data_config["train_split"],
        data_config["test_split"],
        data_config["image_size"],
        size,
        seed,
        stream=data_config["stream"],
    )


def check_output_outside_data(data_config, output):
    """Refuses an output folder inside a folder of images the run reads, before anything is written.

    Every sub-folder of an image folder is a class (and every image under an
    unlabeled folder a transfer-set image): the run's folder would become a
    class, and its plots training images of the next run.
    """
    out = os.path.realpath(os.path.expanduser(os.fspath(output)))
    for key in ("path", "unlabeled_path"):
        folder = data_config[key]
        if folder is None or (key == "path" and data_config["source"] != "image_folder"):
            continue
        folder = os.path.realpath(os.path.expanduser(folder))
        if os.path.isdir(folder) and os.path.commonpath([out, folder]) == folder:
            raise ValueError(
                f"The output folder {out} is inside the image folder data.{key} {folder}: the run's folders and "
                "plots would be read as data (a class, or images) by this run or the next. Pass --output (or "
                f"output=) a folder outside {folder}."
            )


def pixel_cautions(splits):
    """Warns when the training images look scaled to [0, 1]: the built-in and backbone models (and their
    exported files) take raw [0, 255] pixels and rescale inside themselves; returns the warnings."""
    # A stream's images are checked on a spread sample: reading them all is what streaming avoids.
    highs = {name: float(np.max(data_lib.sample_of(split.x))) for name, split in (("training", splits.train), ("test", splits.test))}
    cautions = []
    if highs["training"] <= 1.0:
        cautions.append(
            f"The training images reach at most {highs['training']:g}: they look scaled to [0, 1], but the built-in "
            "and backbone models (and their .tflite files) take raw 0-255 pixels and divide by 255 themselves. Pass "
            "the raw 0-255 pixels (unless your .keras models expect [0, 1])."
        )
    if (highs["training"] <= 1.0) != (highs["test"] <= 1.0):
        cautions.append(
            f"The training images reach at most {highs['training']:g} and the test images {highs['test']:g}: one "
            "split looks scaled to [0, 1] and the other not, so the test accuracy measures another scale. Give both "
            "splits as raw 0-255 pixels."
        )
    return cautions


def check_classes(splits):
    """Refuses, before anything trains, training labels of fewer than two classes (nothing to tell apart)."""
    present = np.unique(label_indices_numpy(splits.train.y, splits.num_classes))
    if splits.num_classes < 2 or len(present) < 2:
        raise ValueError(
            f"The training split's labels hold {len(present)} class ({', '.join(map(str, present[:1]))}) out of "
            f"{splits.num_classes}: a classifier needs at least two classes to learn. Check the data (is the file "
            "sorted by class and cut short?), or give images of every class."
        )
