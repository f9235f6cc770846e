"""Offline distillation: the teachers' outputs computed once, stored, reused.

Running the teacher is usually the larger part of a distillation step. When
the inputs are the same every epoch, their teacher outputs are too: compute
them once with `cache_teacher_outputs`, keep them in memory or on disk
(`tf.data.Dataset.save`), and train the `Distiller` on the cached dataset.
It recognises the cached batches and does not run the teachers at all.

A cache holds one pass over the data. Random augmentation before the cache
is frozen into it (every epoch sees the same augmented images), and a random
augmentation mapped over the cached dataset is wrong: the stored teacher
outputs belong to the un-augmented inputs. With random augmentation, either
distill online (`Distiller(augmentation=...)`) or let the cache augment:
`cache_teacher_outputs(..., augmentation=..., views=K)` stores K augmented
views of each sample with the teacher's outputs on exactly those views.
"""

import hashlib
import json
import os
import warnings

import numpy as np

from kerasdistill.backend import keras, require_tensorflow_backend, tf
from kerasdistill.data import dataset_to_arrays
from kerasdistill.checks import check_augmentation, check_model, probe, resolve_output_kind
from kerasdistill.batch import TEACHER_LOGITS
from kerasdistill.defaults import MAX_TEACHER_VIEWS
from kerasdistill.distiller import Distiller
from kerasdistill.files import atomic_folder, recover_folder, write_json
from kerasdistill.losses.base import logits_from

# Written beside the tf.data files of a cache saved to a folder.
TEACHER_RECORD = "teacher.json"


def cache_teacher_outputs(
    teacher,
    data,
    path=None,
    batch_size=None,
    shuffle=False,
    seed=None,
    overwrite=False,
    teacher_outputs="auto",
    augmentation=None,
    views=1,
):
    """Runs the teachers once over `data` and returns a dataset that carries their outputs.

    Args:
        teacher: a `Distiller` (its teachers and output kinds are used), a
            `keras.Model`, or a list of models.
        data: a `tf.data.Dataset` of batches `(x, y)`, `(x, y, sample_weight)`
            or `x`, or arrays `(x, y)` / `x` (batched by `batch_size`).
        path: a folder to save the cache to (`tf.data.Dataset.save`, written
            atomically, with a fingerprint of the teachers that
            `load_cached_teacher_outputs` checks); None keeps it in memory.
        batch_size: batch size of the returned dataset; default the batch
            size of `data` (32 for arrays).
        shuffle: reshuffle the cached samples every epoch.
        seed: shuffling seed.
        overwrite: replace an existing cache folder at `path`.
        teacher_outputs: `"auto"`, `"logits"` or `"probabilities"` for models
            given directly (a Distiller knows its own).
        augmentation: consistent teaching for a costly teacher: Keras
            layers (e.g. `kerasdistill.augment.build(["flip", "crop"])`)
            applied to each batch before the teachers score it; the cache
            stores the augmented images with their teacher outputs, so the
            student later trains on exactly the views the teacher saw.
        views: augmented views of each sample to store, at most
            `defaults.MAX_TEACHER_VIEWS` (needs `augmentation` when above 1).
            One epoch over the cache is then `views` passes over the data:
            divide the epochs by `views`.

    Returns:
        A `tf.data.Dataset` of batches `(x, {"labels": y, "teacher_logits":
        t})` (plus the sample weights when `data` has them), where `t` has
        shape `(batch, teachers, classes)`. Pass it to `Distiller.fit`.

    Example:

    ```python
    cached = kerasdistill.cache_teacher_outputs(distiller, train_ds, path="teacher-cache")
    distiller.fit(cached, epochs=10)  # the teacher does not run again
    ```
    """
    require_tensorflow_backend("The teacher-output cache (cache_teacher_outputs, a tf.data dataset)")
    teachers, kinds = teachers_and_kinds(teacher, teacher_outputs)
    if isinstance(views, bool) or not isinstance(views, int) or not 1 <= views <= MAX_TEACHER_VIEWS:
        raise ValueError(
            f"views is the number of augmented views per sample, a whole number in [1, {MAX_TEACHER_VIEWS}] (each "
            f"view stores a whole copy of the data); got {views!r}."
        )
    if views > 1 and augmentation is None:
        raise ValueError(
            f"views={views} stores {views} augmented views of each sample, but no augmentation was given; pass "
            "augmentation=kerasdistill.augment.build([...]) or views=1."
        )
    augment = None if augmentation is None else check_augmentation(augmentation, teachers[0])
    if path is not None and os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"A cache already exists at {os.path.abspath(path)}. Load it with "
            "load_cached_teacher_outputs(path, teacher=teacher), pass overwrite=True to recompute it, or choose another path."
        )
    data, batch_size = _as_batched_dataset(data, batch_size)
    _warn_if_random(data)

    @tf.function
    def teacher_logits(x):
        return tf.stack([logits_from(m(x, training=False), k) for m, k in zip(teachers, kinds)], axis=1)

    def attach(*element):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(element if len(element) > 1 else element[0])
        if augment is not None:
            x = augment(x, training=True)
        # Transfer-set batches carry {"labels", "labeled"}: kept as they are.
        targets = dict(y) if isinstance(y, dict) else ({} if y is None else {"labels": y})
        targets[TEACHER_LOGITS] = teacher_logits(x)
        return (x, targets) if sample_weight is None else (x, targets, sample_weight)

    # Each pass of the repeated data draws new augmentations: one view per pass.
    cached = data.repeat(views).map(attach).unbatch()
    if path is None:
        cached = tf.data.Dataset.from_tensor_slices(dataset_to_arrays(cached, "The dataset to cache"))
    else:
        with atomic_folder(path, overwrite=overwrite) as temporary:
            cached.save(temporary)
            record = {"teachers": [model.name for model in teachers], "fingerprint": teacher_fingerprint(teachers, kinds)}
            write_json(os.path.join(temporary, TEACHER_RECORD), record)
        cached = tf.data.Dataset.load(os.fspath(path))
    return _batched(cached, batch_size, shuffle, seed)


def load_cached_teacher_outputs(path, batch_size=32, shuffle=False, seed=None, teacher=None, teacher_outputs="auto"):
    """Loads a cache written by `cache_teacher_outputs(..., path=...)`.

    Args:
        path: the cache folder.
        batch_size: batch size of the returned dataset.
        shuffle: reshuffle the cached samples every epoch.
        seed: shuffling seed.
        teacher: the teachers the cache must hold the outputs of (a
            `Distiller`, a model or a list of them, as `cache_teacher_outputs`
            takes them): a cache of other teachers, or of other weights, is
            refused. None: not checked.
        teacher_outputs: the teachers' output kind, as `cache_teacher_outputs`
            took it, for models given directly.

    Returns:
        A `tf.data.Dataset` of batches for `Distiller.fit`.

    Example:

    ```python
    cached = load_cached_teacher_outputs("teacher-cache", batch_size=64, shuffle=True, teacher=teacher)
    ```
    """
    require_tensorflow_backend("The teacher-output cache (load_cached_teacher_outputs, a tf.data dataset)")
    # A writer killed between its two renames left the cache under another name.
    recover_folder(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"No teacher-output cache at {os.path.abspath(path)}. Create one with "
            "cache_teacher_outputs(teacher, data, path=...)."
        )
    try:
        dataset = tf.data.Dataset.load(os.fspath(path))
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(
            f"{os.path.abspath(path)} is not a readable tf.data cache ({str(error).splitlines()[0]}). "
            "Recreate it with cache_teacher_outputs(teacher, data, path=..., overwrite=True)."
        ) from None
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) >= 2 and isinstance(spec[1], dict) and TEACHER_LOGITS in spec[1]):
        raise ValueError(
            f"{os.path.abspath(path)} is a saved tf.data dataset but not a teacher-output cache (its "
            f"elements have no '{TEACHER_LOGITS}'). Create one with cache_teacher_outputs."
        )
    if teacher is not None:
        _check_cached_teacher(path, *teachers_and_kinds(teacher, teacher_outputs))
    return _batched(dataset, batch_size, shuffle, seed)


def teacher_fingerprint(teachers, kinds):
    """A hash of the teachers' architectures, weights (shapes, dtypes, values) and output kinds: what a cache's
    outputs depend on.

    The architecture is the model's config (its layers, their settings such
    as a Rescaling's scale, and how they connect), so a teacher with the same
    weights but other layers does not match. Names are left out: the same
    teacher loaded again, or built again with other automatic layer names,
    has the same fingerprint.
    """
    digest = hashlib.sha256()
    for model, kind in zip(teachers, kinds):
        digest.update(f"teacher {kind} {len(model.weights)} {_architecture(model)}".encode())
        for value in model.get_weights():
            value = np.ascontiguousarray(value)
            digest.update(f"{value.dtype.str}{value.shape}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()


def _architecture(model):
    """The model's config as JSON, every name (of the model, its layers, the tensors between them) replaced by
    its order of appearance. A model whose config cannot be read (a subclassed one) gives its layers' classes."""
    try:
        config = model.get_config()
    except NotImplementedError:
        return json.dumps([type(layer).__name__ for layer in model.layers])
    names = {}

    def collect(value):
        if isinstance(value, dict):
            if isinstance(value.get("name"), str):
                names.setdefault(value["name"], f"#{len(names)}")
            for key in sorted(value):
                if key != "trainable":
                    collect(value[key])
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)

    def renamed(value):
        if isinstance(value, dict):
            # Whether a layer trains does not change its outputs.
            return {key: renamed(item) for key, item in value.items() if key != "trainable"}
        if isinstance(value, (list, tuple)):
            return [renamed(item) for item in value]
        return names.get(value, value) if isinstance(value, str) else value

    collect(config)
    return json.dumps(renamed(config), sort_keys=True, default=str)


def _check_cached_teacher(path, teachers, kinds):
    """Refuses a cache whose recorded teacher fingerprint is missing or differs from `teachers`'."""
    record_path = os.path.join(path, TEACHER_RECORD)
    recreate = "Recreate it with cache_teacher_outputs(teacher, data, path=..., overwrite=True)."
    try:
        with open(record_path, encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("fingerprint"), str):
        raise ValueError(
            f"The cache at {os.path.abspath(path)} records no readable teacher fingerprint ({TEACHER_RECORD}), so "
            f"it cannot be checked against the teacher given. {recreate}"
        )
    expected = teacher_fingerprint(teachers, kinds)
    if record["fingerprint"] != expected:
        raise ValueError(
            f"The cache at {os.path.abspath(path)} holds the outputs of another teacher: it was written with "
            f"{', '.join(map(str, record.get('teachers', [])))} (fingerprint {record['fingerprint'][:16]}), whose "
            f"architecture, weights or output kinds differ from the teacher given ({', '.join(model.name for model in teachers)}, "
            f"fingerprint {expected[:16]}). {recreate}"
        )


def teachers_and_kinds(teacher, teacher_outputs):
    """The teacher models and their output kinds (`"logits"`/`"probabilities"`) of a Distiller, a model or a list."""
    if isinstance(teacher, Distiller):
        return list(teacher.teachers), list(teacher.teacher_output_kinds)
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise ValueError("teacher is an empty list; pass a Distiller, a teacher model or a list of them.")
    kinds = []
    for index, model in enumerate(teachers):
        role = "teacher" if len(teachers) == 1 else f"teacher {index}"
        check_model(model, role)
        kinds.append(resolve_output_kind(model, teacher_outputs, probe(model), role))
    return teachers, kinds


def _as_batched_dataset(data, batch_size):
    if isinstance(data, tf.data.Dataset):
        first = next(iter(data.take(1)), None)
        if first is None:
            raise ValueError("The dataset to cache is empty; check the pipeline that builds it.")
        x = first[0] if isinstance(first, tuple) else first
        if batch_size is None:
            batch_size = int(tf.shape(tf.nest.flatten(x)[0])[0])
        return data, batch_size
    arrays = tuple(data) if isinstance(data, (list, tuple)) else (data,)
    if not len(arrays[0]):
        raise ValueError("The arrays to cache are empty.")
    batch_size = batch_size or 32
    return tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size), batch_size


def _warn_if_random(data):
    """Warns when two passes over the data give different first inputs."""
    first, second = (next(iter(data.take(1))) for _ in range(2))
    x1, x2 = (e[0] if isinstance(e, tuple) else e for e in (first, second))
    same = all(
        a.shape == b.shape and np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(tf.nest.flatten(x1), tf.nest.flatten(x2))
    )
    if not same:
        warnings.warn(
            "The dataset gives different inputs on each pass (random augmentation, or shuffling before "
            "batching). The cache stores one pass: every epoch will see the same samples and teacher "
            "outputs, so augmentation is frozen. Never map a random augmentation over the cached "
            "dataset: its teacher outputs belong to the un-augmented inputs. With random augmentation, "
            "distill online instead.",
            UserWarning,
            stacklevel=3,
        )


def _batched(dataset, batch_size, shuffle, seed):
    if shuffle:
        dataset = dataset.shuffle(dataset.cardinality() if dataset.cardinality() > 0 else 10_000, seed=seed)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
