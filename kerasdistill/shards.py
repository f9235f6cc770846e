"""Teacher outputs as shards on disk: one scoring pass over a transfer set of any size.

`cache_teacher_outputs` keeps the images and their outputs together, in
memory or in one `tf.data` folder: for a large streamed transfer set
(`streams.ImageStream`) that is a second copy of the images. Here the teacher
scores the stream once and only its outputs are written, one file per shard
of `shard_size` images (40 bytes an image for 10 classes; with `top_k`, the k
largest logits and their classes alone, as "Fast Knowledge Distillation" and
ReLabel store them). A shard is written atomically once complete, so a
killed pass resumes at the first missing shard; workers given
`worker=(index, count)` score every count-th shard into one folder. Training
reads each shard beside the images it belongs to (`sharded_transfer_set`),
decoded again from the files: memory holds a shuffle buffer, not the set.
"""

import dataclasses
import json
import os
import time

import numpy as np

from kerasdistill.backend import require_tensorflow_backend, tf
from kerasdistill.batch import LABELED, LABELS, TEACHER_LOGITS, placeholder_labels
from kerasdistill.cache import teacher_fingerprint, teachers_and_kinds
from kerasdistill.data import check_same_scale
from kerasdistill.files import write_bytes, write_json
from kerasdistill.losses.base import logits_from
from kerasdistill.ranges import batch_split

MANIFEST = "manifest.json"
# The logit of the classes a top-k shard leaves out: their softened probability is 0 at any temperature, so the
# KL-family losses see the top k renormalised (a loss on raw logits, such as logit MSE, needs full outputs).
LEFT_OUT_LOGIT = -1e9


@dataclasses.dataclass(frozen=True)
class TeacherShards:
    """A folder of teacher outputs for the images of a stream, in the stream's order.

    Attributes:
        folder: where the shards and `manifest.json` are.
        count: images scored (the stream's length).
        shard_size: images per shard (the last may hold fewer).
        classes: outputs per image.
        top_k: classes kept per image, or None for all.
        fingerprint: the teacher's (`cache.teacher_fingerprint`).
    """

    folder: str
    count: int
    shard_size: int
    classes: int
    top_k: object
    fingerprint: str

    @property
    def shards(self):
        return -(-self.count // self.shard_size)

    def path(self, index, part):
        """The file of shard `index` holding `part` (`"logits"`, or `"values"`/`"classes"` for top-k)."""
        return os.path.join(self.folder, f"shard-{index:05d}.{part}")

    def parts(self):
        return ("logits",) if self.top_k is None else ("values", "classes")

    def missing(self):
        """The indices of the shards not written yet."""
        return [index for index in range(self.shards) if not all(os.path.isfile(self.path(index, part)) for part in self.parts())]

    def nbytes(self):
        """Bytes on disk of the written shards."""
        return sum(os.path.getsize(self.path(i, part)) for i in range(self.shards) for part in self.parts() if os.path.isfile(self.path(i, part)))

    def logits(self, index):
        """The logits of shard `index` as a `(images, classes)` float32 tensor (read inside `tf.data` too)."""
        if self.top_k is None:
            return tf.reshape(tf.io.decode_raw(tf.io.read_file(self.path_tensor(index, "logits")), tf.float32), (-1, self.classes))
        values = tf.reshape(tf.io.decode_raw(tf.io.read_file(self.path_tensor(index, "values")), tf.float32), (-1, self.top_k))
        classes = tf.reshape(tf.io.decode_raw(tf.io.read_file(self.path_tensor(index, "classes")), tf.int32), (-1, self.top_k))
        # One-hot rows place each kept logit at its class (exactly: one non-zero term a class); the rest get
        # LEFT_OUT_LOGIT (chosen, not added: float32 cannot hold a logit beside 1e9).
        spots = tf.one_hot(classes, self.classes)
        placed = tf.reduce_sum(spots * values[..., None], axis=1)
        return tf.where(tf.reduce_max(spots, axis=1) > 0, placed, LEFT_OUT_LOGIT)

    def path_tensor(self, index, part):
        return tf.strings.join([os.path.join(self.folder, "shard-"), tf.strings.as_string(index, width=5, fill="0"), f".{part}"])

    def to_config(self):
        return dataclasses.asdict(self)


def score_to_shards(teacher, images, folder, shard_size=4096, batch_size=256, top_k=None, teacher_outputs="auto", worker=(0, 1), verbose=True):
    """Scores every image of `images` with the teacher once, writing the outputs as shards into `folder`.

    Args:
        teacher: a `Distiller` with one teacher, or a teacher model.
        images: an `ImageStream` (or anything with `__len__`, `part(start, stop)` and `dataset()`).
        folder: the shards' folder; a pass killed before it ended resumes
            there (the manifest must match: same teacher, images, shard
            size and top-k, else refused).
        shard_size: images per shard: the work a kill can lose.
        batch_size: images per teacher call (large batches keep it busy).
        top_k: keep only the k largest logits of each image; None keeps all.
        teacher_outputs: the teacher's output kind for models given directly.
        worker: `(index, count)`: score shards `index, index + count, ...`
            only (several machines over one shared folder).
        verbose: print progress with the images scored per second.

    Returns:
        `TeacherShards` (complete once every worker has finished).

    Example:

    ```python
    shards = score_to_shards(teacher, ImageStream.from_folder("unlabeled/", (96, 96, 3)), "teacher-shards")
    ```
    """
    require_tensorflow_backend("Teacher-output shards (score_to_shards, a tf.data pipeline)")
    teachers, kinds = one_teacher(teacher, teacher_outputs)
    index, count = _check_arguments(images, shard_size, batch_size, top_k, worker)
    classes = int(teachers[0].output_shape[-1])
    shards = TeacherShards(os.fspath(folder), len(images), shard_size, classes, top_k, teacher_fingerprint(teachers, kinds))
    _claim_folder(shards, images)

    @tf.function
    def score(x):
        logits = tf.cast(logits_from(teachers[0](x, training=False), kinds[0]), tf.float32)
        if top_k is None:
            return logits, tf.zeros((tf.shape(x)[0], 0), tf.int32)
        kept = tf.math.top_k(logits, k=top_k)
        return kept.values, kept.indices

    todo = [i for i in shards.missing() if i % count == index]
    start, scored = time.perf_counter(), 0
    for number, shard in enumerate(todo):
        part = images.part(shard * shard_size, min((shard + 1) * shard_size, len(images)))
        values, kept = zip(*(score(batch) for batch in part.dataset().batch(batch_size).prefetch(tf.data.AUTOTUNE)))
        values, kept = np.concatenate(values).astype(np.float32), np.concatenate(kept).astype(np.int32)
        if top_k is not None:
            write_bytes(shards.path(shard, "classes"), kept.tobytes())
        write_bytes(shards.path(shard, "logits" if top_k is None else "values"), values.tobytes())
        scored += len(part)
        if verbose:
            rate = scored / (time.perf_counter() - start)
            print(f"  teacher outputs: shard {number + 1}/{len(todo)} ({scored:,} images, {rate:,.0f} images/s)", flush=True)
    return shards


def one_teacher(teacher, teacher_outputs):
    """`cache.teachers_and_kinds` of `teacher`, refused unless it is one model (shards hold one output row an image)."""
    teachers, kinds = teachers_and_kinds(teacher, teacher_outputs)
    if len(teachers) != 1:
        raise ValueError(
            f"Teacher shards hold one teacher's outputs; got {len(teachers)} teachers. Score each into its own "
            "folder, or distill from several teachers online (Distiller(teacher=[...]))."
        )
    return teachers, kinds


def _check_arguments(images, shard_size, batch_size, top_k, worker):
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1; got {value!r}.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k is the number of logits kept per image, a whole number >= 1, or None for all; got {top_k!r}.")
    if not (isinstance(worker, (tuple, list)) and len(worker) == 2 and all(isinstance(v, int) for v in worker) and 0 <= worker[0] < worker[1]):
        raise ValueError(f"worker is (index, count) with 0 <= index < count, e.g. (0, 2) and (1, 2) for two workers; got {worker!r}.")
    if not len(images):
        raise ValueError("There are no images to score.")
    return worker


def _claim_folder(shards, images):
    """Writes the manifest, or checks that the one in the folder describes the same pass."""
    manifest = {**shards.to_config(), "images": _images_digest(images)}
    path = os.path.join(shards.folder, MANIFEST)
    if shards.top_k is not None and shards.top_k >= shards.classes:
        raise ValueError(f"top_k={shards.top_k} keeps every one of the {shards.classes} classes; pass top_k=None.")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            found = json.load(handle)
        changed = sorted(key for key in manifest if found.get(key) != manifest[key])
        if changed:
            raise ValueError(
                f"{shards.folder} holds the shards of another scoring pass (its {', '.join(changed)} differ). Give "
                "another folder, or delete that one to score again."
            )
        return
    os.makedirs(shards.folder, exist_ok=True)
    write_json(path, manifest)


def _images_digest(images):
    """What the shards' order depends on: the image files (names and sizes) and their shape."""
    listing = [[os.path.basename(path), os.path.getsize(path)] for path in images.files]
    return {"count": len(images), "shape": list(images.input_shape), "first": listing[:1], "last": listing[-1:],
            "bytes": int(sum(size for _, size in listing))}


def load_teacher_shards(folder, teacher=None, teacher_outputs="auto"):
    """The complete shards in `folder`; with `teacher`, refused unless they are that teacher's outputs.

    Example:

    ```python
    shards = load_teacher_shards("teacher-shards", teacher=teacher)
    ```
    """
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No teacher shards in {folder} (no {MANIFEST}); write them with score_to_shards.")
    with open(path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    fields = {field.name for field in dataclasses.fields(TeacherShards)}
    shards = TeacherShards(**{**{key: value for key, value in manifest.items() if key in fields}, "folder": os.fspath(folder)})
    missing = shards.missing()
    if missing:
        raise ValueError(f"{folder} misses {len(missing)} of its {shards.shards} shards (first: {missing[0]}); run score_to_shards again to finish them.")
    if teacher is not None and shards.fingerprint != teacher_fingerprint(*one_teacher(teacher, teacher_outputs)):
        raise ValueError(f"The shards in {folder} are another teacher's outputs (other architecture, weights or output kind); score them again.")
    return shards


def sharded_transfer_set(labeled, images, shards, teacher, batch_size=64, labeled_share=0.25, shuffle=True, seed=0, buffer=1024):
    """`data.transfer_set`'s batches with the teacher's outputs read from shards: the teacher never runs in training.

    An epoch is one pass over `images` (shards in a new order each pass, the
    images of a shard through a shuffle buffer of `buffer`); the labeled
    images fill `labeled_share` of each batch, their teacher outputs scored
    here once (they are few).

    Args:
        labeled: `(x, y)` arrays of labeled images.
        images: the stream `shards` were scored on.
        shards: `TeacherShards` from `score_to_shards` or `load_teacher_shards`.
        teacher: the teacher (to score the labeled images; one output row an image, as in the shards).
        batch_size, labeled_share, shuffle, seed: as `data.transfer_set`.
        buffer: images held to shuffle within the current shards.

    Returns:
        A `tf.data.Dataset` of batches `(x, {"labels", "labeled", "teacher_logits"})` for `Distiller.fit`.
    """
    x, y = (np.asarray(a) for a in labeled)
    if len(images) != shards.count or tuple(images.input_shape) != x.shape[1:]:
        raise ValueError(
            f"The shards hold {shards.count} images' outputs and the labeled images are {x.shape[1:]}; the stream "
            f"has {len(images)} images of {tuple(images.input_shape)}. Give the stream they were scored on."
        )
    check_same_scale(x, images.sample())
    (model,), (kind,) = one_teacher(teacher, "auto")
    if shards.fingerprint != teacher_fingerprint([model], [kind]):
        raise ValueError("The shards are another teacher's outputs than the teacher given (other architecture, weights or output kind).")
    labeled_logits = np.concatenate(
        [np.asarray(logits_from(model(x[i : i + 256], training=False), kind)) for i in range(0, len(x), 256)]
    ).astype(np.float32)
    n_labeled, n_unlabeled = batch_split(batch_size, labeled_share)
    steps = -(-len(images) // n_unlabeled)
    files = tf.constant(np.asarray(images.files))

    def shard_elements(index):
        begin = index * shards.shard_size
        names = files[begin : tf.minimum(begin + shards.shard_size, shards.count)]
        decoded = tf.data.Dataset.from_tensor_slices(names).map(images.decode, num_parallel_calls=tf.data.AUTOTUNE)
        return tf.data.Dataset.zip((decoded, tf.data.Dataset.from_tensor_slices(shards.logits(index))))

    order = tf.data.Dataset.range(shards.shards)
    if shuffle:
        order = order.shuffle(shards.shards, seed=seed, reshuffle_each_iteration=True)
    unlabeled = order.flat_map(shard_elements)
    if shuffle:
        unlabeled = unlabeled.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
    placeholder = placeholder_labels(1, y)[0]
    dtype = x.dtype
    parts = [unlabeled.map(lambda image, logits: (tf.cast(image, dtype), placeholder, logits))]
    if n_labeled:
        rows = tf.data.Dataset.from_tensor_slices((x, y, labeled_logits))
        parts.append(rows.shuffle(len(x), seed=seed + 1, reshuffle_each_iteration=True) if shuffle else rows)
    streams = []
    for stream, per_batch in zip(parts, (n_unlabeled, n_labeled)):
        streams.append(stream.repeat().batch(per_batch, drop_remainder=True).take(steps))

    def merge(*batches):
        inputs, labels, logits = (tf.concat(part, axis=0) for part in zip(*batches))
        masks = tf.concat([tf.fill([tf.shape(batch[0])[0]], mask) for batch, mask in zip(batches, (0.0, 1.0))], axis=0)
        return inputs, {LABELS: labels, LABELED: masks, TEACHER_LOGITS: logits[:, None, :]}

    return tf.data.Dataset.zip(tuple(streams)).map(merge).prefetch(tf.data.AUTOTUNE)
