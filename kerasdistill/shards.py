"""Teacher outputs as shards on disk: one scoring pass over a transfer set of any size.

`cache_teacher_outputs` keeps the images and their outputs together, in
memory or in one `tf.data` folder: for a large streamed transfer set
(`streams.ImageStream`, `streams.ArrayStream`) that is a second copy of the images. Here the teacher
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
import functools
import json
import numbers
import os
import time
import weakref

import numpy as np

from kerasdistill import views as views_lib
from kerasdistill.backend import keras, require_tensorflow_backend, tf
from kerasdistill.batch import TEACHER_LOGITS, placeholder_labels
from kerasdistill.cache import teacher_fingerprint, teachers_and_kinds
from kerasdistill.data import check_mixing, check_same_scale, labeled_inputs, labeled_samples, mixed_batches, sample_of, shuffled
from kerasdistill.defaults import MAX_TEACHER_VIEWS
from kerasdistill.distiller import Distiller
from kerasdistill.files import write_bytes, write_json
from kerasdistill.losses.base import logits_from

MANIFEST = "manifest.json"
PRECISIONS = ("float32", "bfloat16")
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
        images: the stream's digest (`digest()`: its files' names and sizes, or its rows).
        precision: what the teacher computed in (`"float32"` or `"bfloat16"`).
        views: augmented views scored per image (1 without augmentation).
        augmentation: the augmentations the views were drawn from
            (`views.VIEWED` names joined by commas; "" for none).
        seed: what the views were drawn with (`views.draw`).
    """

    folder: str
    count: int
    shard_size: int
    classes: int
    top_k: object
    fingerprint: str
    images: str
    precision: str = "float32"
    views: int = 1
    augmentation: str = ""
    seed: int = 0

    @property
    def shards(self):
        return -(-self.count // self.shard_size)

    @property
    def names(self):
        """The augmentations of the views, a tuple (empty: the images as they are)."""
        return tuple(name for name in self.augmentation.split(",") if name)

    def path(self, index, part):
        """The file of shard `index` holding `part` (`"logits"`, or `"values"`/`"classes"` for top-k; `"views"`: the
        views' parameters)."""
        return os.path.join(self.folder, f"shard-{index:05d}.{part}")

    def parts(self):
        outputs = ("logits",) if self.top_k is None else ("values", "classes")
        return outputs + ("views",) * bool(self.names)

    def missing(self):
        """The indices of the shards not written yet (a file of the wrong size counts as not written)."""
        width = {"logits": self.classes, "values": self.top_k, "classes": self.top_k, "views": len(views_lib.PARAMETERS)}
        return [
            index for index in range(self.shards)
            if not all(_size(self.path(index, part)) == 4 * width[part] * self.views * self._rows(index) for part in self.parts())
        ]

    def _rows(self, index):
        return min(self.shard_size, self.count - index * self.shard_size)

    def nbytes(self):
        """Bytes on disk of the written shards."""
        return sum(max(_size(self.path(i, part)), 0) for i in range(self.shards) for part in self.parts())

    def logits(self, index):
        """The logits of shard `index` as an `(images, views, classes)` float32 tensor (read inside `tf.data` too)."""
        if self.top_k is None:
            return tf.reshape(self._read(index, "logits", tf.float32), (-1, self.views, self.classes))
        values = tf.reshape(self._read(index, "values", tf.float32), (-1, self.views, self.top_k))
        classes = tf.reshape(self._read(index, "classes", tf.int32), (-1, self.views, self.top_k))
        # One-hot rows place each kept logit at its class (exactly: one non-zero term a class); the rest get
        # LEFT_OUT_LOGIT (chosen, not added: float32 cannot hold a logit beside 1e9).
        spots = tf.one_hot(classes, self.classes)
        placed = tf.reduce_sum(spots * values[..., None], axis=-2)
        return tf.where(tf.reduce_max(spots, axis=-2) > 0, placed, LEFT_OUT_LOGIT)

    def parameters(self, index):
        """The views' parameters of shard `index` (`views.PARAMETERS`), an `(images, views, 5)` float32 tensor."""
        return tf.reshape(self._read(index, "views", tf.float32), (-1, self.views, len(views_lib.PARAMETERS)))

    def _read(self, index, part, dtype):
        return tf.io.decode_raw(tf.io.read_file(self.path_tensor(index, part)), dtype)

    def path_tensor(self, index, part):
        return tf.strings.join([os.path.join(self.folder, "shard-"), tf.strings.as_string(index, width=5, fill="0"), f".{part}"])

    def manifest(self):
        """What the shards are (everything but the folder, which may be mounted elsewhere on another machine)."""
        return {key: value for key, value in dataclasses.asdict(self).items() if key != "folder"}


def _size(path):
    return os.path.getsize(path) if os.path.isfile(path) else -1


def score_to_shards(
    teacher,
    images,
    folder,
    shard_size=4096,
    batch_size=256,
    top_k=None,
    teacher_outputs="auto",
    worker=(0, 1),
    jit_compile=False,
    precision="float32",
    augmentation=None,
    views=1,
    seed=0,
    verbose=True,
):
    """Scores every image of `images` with the teacher once, writing the outputs as shards into `folder`.

    Args:
        teacher: a `Distiller` with one teacher, or a teacher model.
        images: an `ImageStream`, `ArrayStream` or `DatasetStream`; a
            `ChainStream` is scored part by part, each into `folder/part-N`.
        folder: the shards' folder; a pass killed before it ended resumes
            there (the manifest must match: same teacher, images, shard
            size, top-k and views, else refused).
        shard_size: images per shard: the work a kill can lose.
        batch_size: images per teacher call (large batches keep it busy;
            with views, `batch_size // views` images of `views` views each).
        top_k: keep only the k largest logits of each image; None keeps all.
        teacher_outputs: the teacher's output kind for models given directly.
        worker: `(index, count)`: score shards `index, index + count, ...`
            only (several machines over one shared folder).
        jit_compile: compile the teacher's forward pass with XLA
            (`benchmarks/scale.py` measures what it gains on a machine).
        precision: `"float32"`, or `"bfloat16"` to score with a bfloat16
            copy of the teacher (functional or Sequential teachers): faster
            where the CPU or accelerator has bfloat16 units and kernels for
            the teacher's layers, slower elsewhere (`benchmarks/scale.py`
            measures both); the outputs differ from float32's in the third
            digit, and the shards record the precision.
        augmentation: names from `views.VIEWED` (e.g. `["translate",
            "crop"]`): the teacher scores `views` augmented views of each
            image, and the shards keep each view's parameters (20 bytes), so
            `sharded_transfer_set` makes the same view again for the student
            (consistent teaching without storing an image).
        views: augmented views per image, at most
            `defaults.MAX_TEACHER_VIEWS` (above 1 needs `augmentation`).
        seed: the views' seed: the views are a function of it and of each
            image's position alone.
        verbose: print progress with the images scored per second.

    Returns:
        `TeacherShards` (complete once every worker has finished); for a
        `ChainStream`, a tuple of them, one per part.

    Example:

    ```python
    shards = score_to_shards(teacher, ImageStream.from_folder("unlabeled/", (96, 96, 3)), "teacher-shards")
    ```
    """
    require_tensorflow_backend("Teacher-output shards (score_to_shards, a tf.data pipeline)")
    names, seed, views = check_views(augmentation, views, seed, images.input_shape)
    if hasattr(images, "parts"):
        # A ChainStream: each part into a folder of its own (parts are indexed differently), with a seed of its own.
        options = dict(shard_size=shard_size, batch_size=batch_size, top_k=top_k, teacher_outputs=teacher_outputs, worker=worker,
                       jit_compile=jit_compile, precision=precision, augmentation=augmentation, views=views, verbose=verbose)  # fmt: skip
        return tuple(
            score_to_shards(teacher, part, os.path.join(folder, f"part-{index}"), seed=seed + index, **options)
            for index, part in enumerate(images.parts)
        )
    teachers, kinds = one_teacher(teacher, teacher_outputs)
    index, count = _check_arguments(images, shard_size, batch_size, top_k, worker, precision)
    classes = int(teachers[0].output_shape[-1])
    fingerprint = teacher_fingerprint(teachers, kinds)
    shards = TeacherShards(
        os.fspath(folder), len(images), shard_size, classes, top_k, fingerprint, images.digest(), precision, views, ",".join(names),
        seed if names else 0,  # without views nothing is drawn: any seed gives these shards
    )
    _claim_folder(shards)

    score = _scorer(teachers[0], kinds[0], top_k, jit_compile, precision, fingerprint)
    todo = [(shard, shard * shard_size, min((shard + 1) * shard_size, len(images))) for shard in shards.missing() if shard % count == index]
    if not todo:
        return shards
    # One input pipeline over every shard to score, so decoding never stops at a shard's end; batches that
    # straddle two shards are cut when a shard is full.
    order = np.concatenate([np.arange(begin, end) for _, begin, end in todo])
    positioned = tf.data.Dataset.zip((images.dataset(order=order), tf.data.Dataset.from_tensor_slices(order)))
    start, scored, pending = time.perf_counter(), 0, []
    for rows in scored_views(score, positioned, names, views, seed, batch_size):
        pending.append(rows)
        while todo and sum(len(part[0]) for part in pending) >= todo[0][2] - todo[0][1]:
            shard, begin, end = todo.pop(0)
            values, kept, parameters = (np.concatenate(part) for part in zip(*pending))
            pending = [(values[end - begin :], kept[end - begin :], parameters[end - begin :])]
            written = {"values" if top_k is not None else "logits": values, "classes": kept, "views": parameters}
            for part in shards.parts():
                write_bytes(shards.path(shard, part), np.ascontiguousarray(written[part][: end - begin]).tobytes())
            scored += end - begin
            if verbose:
                rate = scored / (time.perf_counter() - start)
                print(f"  teacher outputs: shard {shard + 1}/{shards.shards} ({scored:,} images{f' x {views} views' if names else ''}, {rate:,.0f} images/s)", flush=True)
    return shards


def scored_views(score, positioned, names, views, seed, batch_size):
    """`(values, classes, parameters)` arrays, `(images, views, ...)` each, for the `(image, position)` elements of
    `positioned`: the teacher's outputs (`score`, a `_scorer`) on each image's views (`views.draw` of its position),
    or on the image itself without `names` (no parameters then)."""
    if not names:
        batches = positioned.map(lambda image, position: image).batch(batch_size).prefetch(tf.data.AUTOTUNE)
        for batch in batches:
            values, kept = (np.asarray(part)[:, None] for part in score(batch))
            yield values.astype(np.float32), kept.astype(np.int32), np.zeros((len(values), 1, 0), np.float32)
        return
    # The views are made by the input pipeline, beside the teacher: `views` views of each image in one teacher call.
    drawn = positioned.map(lambda image, position: (image, views_lib.draw(names, seed, position, views)), num_parallel_calls=tf.data.AUTOTUNE)

    def all_views(images, parameters):
        return tf.concat([views_lib.apply(images, parameters[:, view]) for view in range(views)], axis=0), parameters

    batches = drawn.batch(max(1, batch_size // views)).map(all_views, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
    for batch, parameters in batches:
        values, kept = (np.swapaxes(np.asarray(part).reshape(views, len(parameters), -1), 0, 1) for part in score(batch))
        yield values.astype(np.float32), kept.astype(np.int32), np.asarray(parameters, np.float32)


def check_views(augmentation, views, seed, input_shape):
    """`(names, seed, views)`: the augmentation names of `views` views (`views.check_names`), the seed and the
    views as ints; refused when the settings cannot make them."""
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not -(2**63) <= seed < 2**63:
        raise ValueError(f"seed is a whole number in [-2**63, 2**63) (the views' seed, a 64-bit integer); got {seed!r}.")
    if isinstance(views, bool) or not isinstance(views, numbers.Integral) or not 1 <= views <= MAX_TEACHER_VIEWS:
        raise ValueError(f"views is the number of augmented views per image, a whole number in [1, {MAX_TEACHER_VIEWS}]; got {views!r}.")
    names = views_lib.check_names(augmentation)
    if views > 1 and not names:
        raise ValueError(f"views={views} scores {views} augmented views of each image, but no augmentation was given; pass augmentation=['translate', 'crop'] (say) or views=1.")
    if names:
        views_lib.check_image_shape(input_shape)
    return names, int(seed), int(views)


def one_teacher(teacher, teacher_outputs):
    """`cache.teachers_and_kinds` of `teacher`, refused unless it is one model (shards hold one output row an image)."""
    teachers, kinds = teachers_and_kinds(teacher, teacher_outputs)
    if len(teachers) != 1:
        raise ValueError(
            f"Teacher shards hold one teacher's outputs; got {len(teachers)} teachers. Score each into its own "
            "folder, or distill from several teachers online (Distiller(teacher=[...]))."
        )
    return teachers, kinds


# One traced scorer per teacher and settings, kept while the teacher lives: a second pass (another folder,
# another worker's part) does not trace the teacher again, which on a short pass costs more than the scoring.
_SCORERS = weakref.WeakKeyDictionary()


def _scorer(model, kind, top_k, jit_compile, precision, fingerprint):
    """The compiled function from a uint8 batch to its (values, classes) rows, shared by every pass of `model`
    (a bfloat16 copy holds the weights of its time: it is made again when the teacher's fingerprint changes)."""
    settings = (kind, top_k, jit_compile, precision, None if precision == "float32" else fingerprint)
    cached = _SCORERS.setdefault(model, {})
    if settings in cached:
        return cached[settings]
    copy = None if precision == "float32" else _in_bfloat16(model)
    # The function refers to the teacher weakly: a strong reference from the cache's value would keep the key alive.
    scored = weakref.ref(model) if copy is None else (lambda: copy)

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def score(x):
        # uint8 images as float32: a subclassed teacher does not cast its inputs itself.
        logits = tf.cast(logits_from(scored()(tf.cast(x, tf.float32), training=False), kind), tf.float32)
        if top_k is None:
            return logits, tf.zeros((tf.shape(x)[0], 0), tf.int32)
        kept = tf.math.top_k(logits, k=top_k)
        return kept.values, kept.indices

    cached[settings] = score
    return score


def _in_bfloat16(model):
    """A copy of `model` computing in bfloat16 (variables float32, the "mixed_bfloat16" policy), its weights copied."""

    def with_policy(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "mixed_bfloat16"})

    try:
        copy = keras.models.clone_model(model, clone_function=with_policy, recursive=True)
    except ValueError as error:
        raise ValueError(
            f"precision='bfloat16' copies the teacher layer by layer, which {type(model).__name__} does not allow "
            f"({error}). Score it with precision='float32', or build it as a functional or Sequential model."
        ) from None
    copy.set_weights(model.get_weights())
    return copy


def _check_arguments(images, shard_size, batch_size, top_k, worker, precision):
    for name, value in (("shard_size", shard_size), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a whole number >= 1; got {value!r}.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k is the number of logits kept per image, a whole number >= 1, or None for all; got {top_k!r}.")
    if not (isinstance(worker, (tuple, list)) and len(worker) == 2 and all(isinstance(v, int) for v in worker) and 0 <= worker[0] < worker[1]):
        raise ValueError(f"worker is (index, count) with 0 <= index < count, e.g. (0, 2) and (1, 2) for two workers; got {worker!r}.")
    if precision not in PRECISIONS:
        raise ValueError(f"precision is one of {', '.join(map(repr, PRECISIONS))}; got {precision!r}.")
    if not len(images):
        raise ValueError("There are no images to score.")
    return worker


def _claim_folder(shards):
    """Writes the manifest, or checks that the one in the folder describes the same pass."""
    if shards.top_k is not None and shards.top_k >= shards.classes:
        raise ValueError(f"top_k={shards.top_k} keeps every one of the {shards.classes} classes; pass top_k=None.")
    path = os.path.join(shards.folder, MANIFEST)
    manifest = shards.manifest()
    if os.path.isfile(path):
        found = _read_manifest(path)
        changed = sorted(key for key in manifest if found.get(key) != manifest[key])
        if changed:
            raise ValueError(
                f"{shards.folder} holds the shards of another scoring pass (its {', '.join(changed)} differ). Give "
                "another folder, or delete that one to score again."
            )
        return
    if os.path.isdir(shards.folder) and any(name.startswith("shard-") for name in os.listdir(shards.folder)):
        raise ValueError(f"{shards.folder} holds shard files but no {MANIFEST}: nothing says what they are. Give another folder.")
    os.makedirs(shards.folder, exist_ok=True)
    write_json(path, manifest)


def _read_manifest(path):
    with open(path, encoding="utf-8") as handle:
        manifest = json.load(handle)
    # Shards written before these were recorded were scored in float32, on the images as they are.
    if isinstance(manifest, dict):
        for key, value in (("precision", "float32"), ("views", 1), ("augmentation", ""), ("seed", 0)):
            manifest.setdefault(key, value)
    return manifest


def load_teacher_shards(folder, teacher=None, teacher_outputs="auto", wait=0):
    """The complete shards in `folder`; with `teacher`, refused unless they are that teacher's outputs.

    Args:
        folder: the folder `score_to_shards` wrote.
        teacher: the teacher the shards must be of (optional).
        teacher_outputs: the teacher's output kind for models given directly.
        wait: seconds to wait for shards other workers are still scoring
            (0: refuse incomplete shards at once).

    Example:

    ```python
    # Each of 2 workers scores its part, then waits for the other's.
    score_to_shards(teacher, stream, "teacher-shards", worker=(index, 2))
    shards = load_teacher_shards("teacher-shards", teacher=teacher, wait=600)
    ```
    """
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0:
        raise ValueError(f"wait is the number of seconds to wait for other workers' shards, >= 0; got {wait!r}.")
    deadline = time.monotonic() + wait
    path = os.path.join(folder, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No teacher shards in {folder} (no {MANIFEST}); write them with score_to_shards.")
    manifest = _read_manifest(path)
    fields = {field.name for field in dataclasses.fields(TeacherShards)} - {"folder"}
    if set(manifest) != fields:
        raise ValueError(f"{path} is not a manifest of score_to_shards (its keys: {sorted(manifest)}).")
    shards = TeacherShards(folder=os.fspath(folder), **manifest)
    while (missing := shards.missing()) and time.monotonic() < deadline:
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    if missing:
        raise ValueError(
            f"{folder} misses {len(missing)} of its {shards.shards} shards (first: {missing[0]}){f' after waiting {wait} s' if wait else ''}; "
            "run score_to_shards again to finish them (or wait for the workers still scoring)."
        )
    if teacher is not None and shards.fingerprint != teacher_fingerprint(*one_teacher(teacher, teacher_outputs)):
        raise ValueError(f"The shards in {folder} are another teacher's outputs (other architecture, weights or output kind); score them again.")
    return shards


def sharded_transfer_set(labeled, images, shards, distiller, batch_size=64, labeled_share=0.25, shuffle=True, seed=0, buffer=8192):
    """`data.transfer_set`'s batches with the teacher's outputs read from shards: the teacher never runs in training.

    An epoch is one pass over `images` (shards in a new order each pass,
    their keys (file names or rows) and logits through a shuffle buffer of
    `buffer`, before any image is decoded); the labeled images fill
    `labeled_share` of each batch, their teacher outputs scored here once
    (they are few). Shards of augmented views give each image one of its
    views a pass, drawn afresh every pass (with `shuffle=False`, always the
    first), made again from the stored parameters: the student trains on
    the pixels the teacher scored (the labeled images get as many views,
    scored here).

    Args:
        labeled: `(x, y)` arrays of labeled images, or `x` a stream read by
            key (`ImageStream`, `ArrayStream`) whose images `y` follow.
        images: the stream `shards` were scored on.
        shards: complete `TeacherShards` (`score_to_shards`, `load_teacher_shards`);
            for a `ChainStream`, the tuple `score_to_shards` gave for it.
        distiller: the compiled `Distiller` that will train on the batches:
            its teacher scores the labeled images, and with top-k shards its
            losses must soften the teacher's logits (a temperature), as the
            left-out classes carry no logit of their own. Its teacher model
            alone will do for shards that keep every logit.
        batch_size, labeled_share, shuffle, seed: as `data.transfer_set`.
        buffer: keys (with their logits) held to shuffle across shards (a
            `DatasetStream`, read in its order, shuffles decoded images
            through its own `shuffle_buffer` instead).

    Returns:
        A `tf.data.Dataset` of batches `(x, {"labels", "labeled", "teacher_logits"})` for `distiller.fit`.

    Example:

    ```python
    distiller.fit(sharded_transfer_set((x_few, y_few), stream, shards, distiller), epochs=10)
    ```
    """
    x, y = labeled_inputs(labeled)
    n_labeled, n_unlabeled = check_mixing(x, y, images.input_shape, len(images), batch_size, labeled_share)
    model, kind, settings = _check_chain_shards(shards, images, distiller)
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise ValueError(f"buffer is the number of keys held for shuffling, a whole number >= 1; got {buffer!r}.")
    check_same_scale(sample_of(x), images.sample())
    # Both parts are concatenated into one batch, which takes one dtype: the labeled views are made in it.
    dtype = np.result_type(x.dtype, images.dtype)
    labeled_images = (x.dataset() if hasattr(x, "dataset") else tf.data.Dataset.from_tensor_slices(x)).map(lambda image: tf.cast(image, dtype))
    # The teacher scores the labeled images (their views too) here, once a call; memory holds their outputs
    # (images x views x classes), not the images. Negative positions draw other views than the stream's images at
    # the same positions.
    positioned = tf.data.Dataset.zip((labeled_images, tf.data.Dataset.range(-1, -len(y) - 1, -1)))
    score = _scorer(model, kind, None, False, "float32", None)
    values, _, parameters = (np.concatenate(part) for part in zip(*scored_views(score, positioned, settings.names, settings.views, settings.seed, 256)))
    extras = (values,) + (parameters,) * bool(settings.names)
    labeled_part = _viewed(_one_view(labeled_samples(x, y, dtype, shuffle, seed + 1, extras=extras), settings, shuffle, seed + 1), settings)
    placeholder = placeholder_labels(1, y)[0]
    unlabeled = _images_with_logits(images, shards, shuffle, seed, buffer).map(lambda image, logits: (tf.cast(image, dtype), placeholder, logits))
    steps = -(-len(images) // n_unlabeled)
    return mixed_batches(
        unlabeled.map(_as_teacher_row), labeled_part.map(_as_teacher_row), n_unlabeled, n_labeled, steps, extra_keys=(TEACHER_LOGITS,)
    )


def _as_teacher_row(image, label, logits):
    # A batch's teacher logits are (batch, teachers, classes): one teacher here.
    return image, label, logits[None]


def _one_view(elements, shards, shuffle, seed):
    """`(*head, logits, [parameters])` elements holding every view of an image to the same with one view, drawn
    afresh every pass when `shuffle` (else the first)."""
    rows = 1 + bool(shards.names)  # the logits, and each view's parameters when there are views

    def pick(element, view):
        return (*element[:-rows], *(tf.gather(part, view) for part in element[-rows:]))

    if shards.views == 1 or not shuffle:
        return elements.map(lambda *element: pick(element, 0))
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip((elements, draws)).map(lambda element, draw: pick(element, tf.math.floormod(draw, shards.views)))


def _viewed(elements, shards):
    """`(image, *rest, parameters)` elements to `(view, *rest)`: the view the teacher scored (without views, as they are)."""
    if not shards.names:
        return elements
    return elements.map(lambda image, *rest: (views_lib.apply_one(image, rest[-1]), *rest[:-1]), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _check_chain_shards(shards, images, distiller):
    """`_check_shards_for` of a stream, or of each part of a `ChainStream` with its own shards (views drawn alike);
    returns the teacher, its output kind and shards whose views settings every part shares."""
    if isinstance(distiller, Distiller) and distiller.distillation_losses is None:
        raise ValueError("Compile the Distiller before building its batches: its losses decide what the shards may hold.")
    (model,), (kind,) = one_teacher(distiller, "auto")
    # Once for every part: the fingerprint hashes all of the teacher's weights.
    fingerprint = teacher_fingerprint([model], [kind])
    if not hasattr(images, "parts"):
        _check_shards_for(shards, images, distiller, fingerprint)
        return model, kind, shards
    if not isinstance(shards, (tuple, list)) or len(shards) != len(images.parts):
        raise ValueError(f"A ChainStream of {len(images.parts)} parts takes the tuple of {len(images.parts)} shards score_to_shards gave for it.")
    for part_shards, part in zip(shards, images.parts):
        _check_shards_for(part_shards, part, distiller, fingerprint)
    if len({(part.views, part.augmentation) for part in shards}) > 1:
        raise ValueError("The parts' shards were scored on different views (views or augmentation differ); score every part with the same settings.")
    return model, kind, shards[0]


def _images_with_logits(images, shards, shuffle, seed, buffer):
    """`(image, logits)` pairs of every image of the stream, once, shuffled across shards (and across the parts of
    a `ChainStream`, in proportion to their sizes); with views, each image is one of its views, and its logits that
    view's."""
    if hasattr(images, "parts"):
        parts = [
            _images_with_logits(part, part_shards, shuffle, None if seed is None else seed + index, buffer).map(lambda image, logits: (tf.cast(image, images.dtype), logits))
            for index, (part, part_shards) in enumerate(zip(images.parts, shards))
        ]  # fmt: skip
        if not shuffle:
            return functools.reduce(lambda joined, part: joined.concatenate(part), parts)
        return tf.data.Dataset.sample_from_datasets(parts, weights=[len(part) / len(images) for part in images.parts], seed=seed, stop_on_empty_dataset=False)

    def outputs(index):
        return (shards.logits(index),) + (shards.parameters(index),) * bool(shards.names)

    if not hasattr(images, "keys"):
        # A dataset is read in its own order: its images meet the shards' rows by position, then a buffer of
        # decoded images shuffles them.
        rows = tf.data.Dataset.range(shards.shards).map(outputs).unbatch()
        paired = tf.data.Dataset.zip((images.dataset(), rows)).map(lambda image, row: (image, *row))
        return _viewed(_one_view(shuffled(paired, images.shuffle_buffer, shuffle, seed), shards, shuffle, seed), shards)
    keys = tf.constant(np.asarray(images.keys))

    def shard_rows(index):
        begin = index * shards.shard_size
        # Each key (file name or row) is paired with its outputs before anything else: no later step can misalign them.
        return tf.data.Dataset.from_tensor_slices((keys[begin : tf.minimum(begin + shards.shard_size, shards.count)], *outputs(index)))

    order = shuffled(tf.data.Dataset.range(shards.shards), shards.shards, shuffle, seed)
    # Keys and outputs are shuffled (a few hundred bytes an image), then the stream reads the images in parallel.
    keyed = _one_view(shuffled(order.flat_map(shard_rows), buffer, shuffle, seed), shards, shuffle, seed)
    return _viewed(images.read(keyed), shards)


def _check_shards_for(shards, images, distiller, fingerprint):
    """Refuses shards that are incomplete, of other images or of another teacher than the one of `fingerprint`, and
    top-k shards with a loss on raw logits (or with no Distiller to tell)."""
    missing = shards.missing()
    if missing:
        raise ValueError(
            f"{shards.folder} misses {len(missing)} of its {shards.shards} shards (first: {missing[0]}): a worker has "
            "not finished. Run score_to_shards for the missing ones, or wait for every worker."
        )
    if shards.images != images.digest() or shards.count != len(images):
        raise ValueError(f"The shards in {shards.folder} were scored on other images (files added, removed or changed since); score them again.")
    if shards.fingerprint != fingerprint:
        raise ValueError(
            f"The shards in {shards.folder} are another teacher's outputs than this one's (other architecture, weights or output kind); "
            "score them with this teacher, or pass the Distiller they were scored with (it knows its teacher's output kind)."
        )
    if shards.top_k is not None and not isinstance(distiller, Distiller):
        raise TypeError(
            f"The shards keep the top {shards.top_k} logits of each image: pass the compiled Distiller that trains on the "
            f"batches (its losses must soften logits), not {type(distiller).__name__}."
        )
    raw = [loss.name for loss in distiller.distillation_losses if "temperature" not in loss.get_config()] if shards.top_k is not None else []
    if raw:
        raise ValueError(
            f"The shards keep the top {shards.top_k} logits of each image, but {', '.join(raw)} compares raw logits, "
            "which the left-out classes do not have. Score the shards with top_k=None, or distill with soft_target_kl."
        )
