"""Pipeline configs: one YAML file describing a whole `kerasdistill run`.

Read with a safe YAML loader only (no Python objects, anchors, aliases or
repeated keys), checked key by key against `SCHEMA`, with defaults filled in. Every error names the
key, what it holds, and what is allowed.
"""

import collections
import os

from kerasdistill.defaults import (
    ALPHA,
    ALPHAS,
    AUTO,
    BATCH_SIZE,
    COMPRESS_FAMILIES,
    COMPRESS_RUNGS,
    EMBEDDED_LABELED_SIZE,
    EPOCHS,
    FINE_TUNE_SHARE,
    LEARNING_RATE,
    MAX_TEACHER_VIEWS,
    MAX_TEMPERATURE,
    MIXING_AUGMENTATIONS,
    PATIENCE,
    PRECISIONS,
    QUANTIZATIONS,
    SCHEDULES,
    SEARCH_BUDGET,
    STRATEGIES,
    TARGETS,
    TEMPERATURE,
    TEMPERATURES,
    VALIDATION_SIZE,
)
from kerasdistill.ranges import batch_split, describe, in_range

DATA_SOURCES = ("embedded", "npz", "image_folder", "tfds", "idx")
BACKBONE_PREFIX = "backbone:"


def _choice(options):
    def check(key, value):
        if value not in options:
            raise ValueError(f"{key} is {_shown(value)}; allowed values: {', '.join(map(str, options))}.")
        return value

    return check


def _number(low=None, high=None, low_open=False, whole=False):
    def check(key, value):
        if not in_range(value, whole=whole):
            raise ValueError(f"{key} must be {'a whole number' if whole else 'a number'}; got {_shown(value)}.")
        if not in_range(value, low, None, low_open, whole):
            raise ValueError(f"{key} must be {describe(low, None, low_open)}; got {_shown(value)}.")
        if not in_range(value, None, high, whole=whole):
            raise ValueError(f"{key} must be {describe(None, high)}; got {_shown(value)}.")
        return value

    return check


def _auto_or(check):
    """`auto` (chosen on validation by the run), or a value `check` accepts."""

    def auto_or(key, value):
        if value == AUTO:
            return value
        try:
            return check(key, value)
        except ValueError as error:
            raise ValueError(f"{str(error).rstrip('.')}; or auto, to have the run choose it.") from None

    return auto_or


ModelSpec = collections.namedtuple("ModelSpec", ["kind", "name"])
ModelSpec.__doc__ = """A config's `model` entry, parsed: `kind` is builtin, backbone or file; `name` the model, backbone or path."""


def model_spec(value):
    """The one parser of `model` entries: `NAME`, `backbone:NAME` or a `.keras` path, as a `ModelSpec`.

    The config keeps the string (it is written back as config.yaml); every
    reader parses it here.
    """
    if value.endswith(".keras"):
        return ModelSpec("file", value)
    if value.startswith(BACKBONE_PREFIX):
        return ModelSpec("backbone", value[len(BACKBONE_PREFIX) :])
    return ModelSpec("builtin", value)


def _model(key, value):
    from kerasdistill import models
    from kerasdistill.transfer import BACKBONES

    choices = f"a built-in model ({', '.join(models.BUILTIN)}), backbone:NAME ({', '.join(BACKBONES)}) or a .keras file"
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be {choices}; got {_shown(value)}.")
    spec = model_spec(value)
    if spec.kind == "file" and not os.path.isfile(value):
        raise FileNotFoundError(f"{key} names the file {_shown(value)}, which does not exist. Give the path of a saved .keras model.")
    if spec.kind == "backbone" and spec.name not in BACKBONES:
        raise ValueError(f"{key} names an unknown backbone {_shown(value)}; known backbones: {', '.join(BACKBONES)}.")
    if spec.kind == "builtin" and value not in models.BUILTIN:
        raise ValueError(f"{key} is {_shown(value)}: it must be {choices}.")
    return value


def _optional_path(key, value):
    if value is not None and (not isinstance(value, str) or not os.path.exists(value)):
        raise FileNotFoundError(f"{key} names {_shown(value)}, which does not exist. Give the path of an existing file or folder.")
    return value


def _optional_text(key, value):
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError(f"{key} must be a non-empty string or null; got {_shown(value)}.")
    return value


def _flag(key, value):
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false; got {_shown(value)}.")
    return value


def _image_size(key, value):
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 8 for v in value)):
        raise ValueError(f"{key} must be [height, width] in pixels, each at least 8, e.g. [96, 96], or null; got {_shown(value)}.")
    return value


def _weights(key, value):
    if value not in ("imagenet", None) and not (isinstance(value, str) and os.path.isfile(value)):
        raise ValueError(f"{key} must be imagenet, null (random) or an existing weights file; got {_shown(value)}.")
    return value


def _search_space(low, high, low_open):
    def check(key, value):
        from kerasdistill.tuning import check_space

        if isinstance(value, dict) and set(value) != {"low", "high"}:
            raise ValueError(f"{key} as a range is {{low: ..., high: ...}}; got {_shown(value)}.")
        try:
            check_space(key, search_space(value), low, high, low_open)
        except ValueError as error:
            raise ValueError(f"{error} (a list of values, or {{low: ..., high: ...}})") from None
        return value

    return check


def search_space(value):
    """A config's `{low, high}` range as the `(low, high)` tuple `tune` takes; lists stay lists."""
    return (value["low"], value["high"]) if isinstance(value, dict) else value


def _methods(key, value):
    from kerasdistill.tuning import check_methods

    try:
        return check_methods(value)
    except ValueError as error:
        raise ValueError(f"{key}: {error}") from None


def _losses(key, value):
    from kerasdistill import losses as losses_lib

    value = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key} must be a loss name or a list of them ({', '.join(losses_lib.names())}); got {_shown(value)}.")
    for item in value:
        try:
            losses_lib.get(item)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{key}: {error}") from None
    return value


def _stream(key, value):
    if value != "auto" and not isinstance(value, bool):
        raise ValueError(f"{key} must be auto, true or false; got {_shown(value)}.")
    return value


def _labeled_size(key, value):
    if value == "all":  # as the command line's --labeled-size all
        return None
    return value if value == "auto" else _optional_count(key, value)


def _optional_patience(key, value):
    return value if value is None else _number(1, whole=True)(key, value)


def _optional_count(key, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or (isinstance(value, float) and value >= 1):
        raise ValueError(f"{key} must be a count of images (a whole number), a fraction below 1, or null; got {_shown(value)}.")
    return value


def _augmentations(key, value):
    from kerasdistill.augment import build

    value = [] if value is None else ([value] if isinstance(value, str) else value)
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list of augmentation names; got {_shown(value)}.")
    try:
        build(value)
    except ValueError as error:
        raise ValueError(f"{key}: {error}") from None
    return value


def _optional_side(key, value):
    return value if value is None else _number(32, 1024, whole=True)(key, value)


def _optional_views(key, value):
    return value if value is None else _number(1, MAX_TEACHER_VIEWS, whole=True)(key, value)


def _choices(options):
    """A non-empty list of `options` (a single one may be given bare)."""

    def check(key, value):
        value = [value] if isinstance(value, str) else value
        if not isinstance(value, list) or not value:
            raise ValueError(f"{key} must be a list of {', '.join(options)}; got {_shown(value)}.")
        for item in value:
            _choice(options)(key, item)
        if len(set(value)) != len(value):
            raise ValueError(f"{key} lists an entry twice; give each of {', '.join(options)} at most once. Got {_shown(value)}.")
        return value

    return check


def _optional_budget(key, value):
    return value if value is None else _number(0)(key, value)


def _rungs(key, value):
    if not isinstance(value, list) or not value or any(not in_range(v, 1, whole=True) for v in value) or value != sorted(set(value)):
        raise ValueError(f"{key} must be increasing whole numbers of epochs >= 1, e.g. {list(COMPRESS_RUNGS)}; got {_shown(value)}.")
    return value


def _class_names(key, value):
    if value is None:
        return None
    # Imported here: the data module loads Keras, which `kerasdistill --help` must not wait for.
    from kerasdistill.data import check_class_names

    if not isinstance(value, list) or len(value) < 2:
        raise ValueError(f"{key} must be a list of at least 2 one-line class names, in label order, or null; got {_shown(value)}.")
    return list(check_class_names(value, key))


SCHEMA = {
    "data": {
        "source": ("embedded", _choice(DATA_SOURCES), "embedded (5,000 real MNIST digits), npz, image_folder, tfds or idx (MNIST-format files)"),
        "path": (None, _optional_path, "npz: the file (x_train, y_train, x_test, y_test); image_folder, idx: the folder"),
        "name": (None, _optional_text, "tfds: the dataset name, e.g. mnist or tf_flowers"),
        "data_dir": (None, _optional_text, "tfds: its data_dir (prepared beforehand; nothing is downloaded)"),
        "train_split": ("train", _optional_text, "tfds: the training split"),
        "test_split": ("test", _optional_text, "tfds: the test split"),
        "image_size": (None, _image_size, "image_folder/tfds: resize to [height, width]; null keeps the size"),
        "validation_size": (
            VALIDATION_SIZE,
            _number(0.0, low_open=True),
            "held out of training to choose each model's best epoch: a count, or a fraction below 1 (unused when "
            "an image folder has a val/, validation/ or valid/ folder: that is the validation split)",
        ),
        "test_fraction": (0.2, _number(0.0, 0.9, low_open=True), "image_folder without a test/ folder: the share of the images (of train/, if any) held out for testing"),
        "stream": (
            "auto",
            _stream,
            "image_folder, npz, idx, tfds: true reads the labeled images from disk as each batch needs them (memory "
            "flat however many there are: an image folder's files decoded every epoch, the rows of an uncompressed "
            ".npz (np.savez) or IDX file mapped into memory, a tfds dataset's files read in order through a shuffle "
            "buffer), false reads them all into memory as float32; auto streams when they would take more than 1 GiB "
            "in memory (a compressed file is read into memory)",
        ),
        "labeled_size": (
            "auto",
            _labeled_size,
            "few labels: keep the labels of this many training images (a count or a fraction below 1); "
            "the other training images become the unlabeled transfer set. null (or all) keeps every label; auto: "
            f"{EMBEDDED_LABELED_SIZE} for the embedded digits (the few-labels demo), every label otherwise",
        ),
        "class_names": (
            None,
            _class_names,
            "one name per class, in label order (the labels of exported classifier files); null: the source's own "
            "(folder names, tfds label names, digits 0-9, an .npz class_names array), else the class indices",
        ),
        "unlabeled_path": (
            None,
            _optional_path,
            "more unlabeled images for the transfer set, streamed from disk: a folder of images, TFRecord files of "
            "encoded images (a .tfrecord file or a folder of them), a .npy file, "
            "an .npz file with array x (np.savez; a compressed one is decompressed once into the run's resume state), or "
            "an IDX images file (gzipped: decompressed likewise)",
        ),
    },
    "teacher": {
        "model": ("convnet_teacher", _model, "a built-in model, backbone:NAME (fine-tuned head) or a saved .keras teacher"),
        "weights": ("imagenet", _weights, "backbone teachers: imagenet, null or a weights file"),
        "backbone_size": (
            None,
            _optional_side,
            "backbone teachers: the backbone's input side in pixels; images are resized (and grey ones repeated "
            "to RGB) inside the model. null: the images' own size, or 96 for images too small or grey",
        ),
        "fine_tune_layers": (
            AUTO,
            _auto_or(_number(0, whole=True)),
            "backbone teachers: after the head, reopen this many top layers of the backbone (BatchNorm stays "
            "frozen) and train again at fine_tune_learning_rate, kept only if that beats the head on the "
            f"validation split; 0 trains the head only; auto: the top {FINE_TUNE_SHARE:.0%} of the layers of an "
            "pretrained backbone, ImageNet or a weights file (none of a random one)",
        ),
        "fine_tune_learning_rate": (1e-4, _number(0.0, low_open=True), "learning rate of that second stage"),
    },
    "student": {
        "model": ("convnet_student", _model, "a built-in model, backbone:NAME or a saved (untrained) .keras student"),
        "weights": (None, _weights, "backbone students: imagenet, null or a weights file"),
        "backbone_size": (None, _optional_side, "backbone students: the backbone's input side, as for the teacher"),
    },
    "distillation": {
        "losses": (["soft_target_kl"], _losses, "distillation losses by name, or {name, config} entries"),
        "alpha": (
            AUTO,
            _auto_or(_number(0.0, 1.0)),
            f"weight of the label loss, in [0, 1]; auto: chosen on the validation split among {', '.join(f'{a:g}' for a in ALPHAS)}",
        ),
        "temperature": (
            AUTO,
            _auto_or(_number(0.0, MAX_TEMPERATURE, low_open=True)),
            f"softening temperature in (0, 100]; auto: chosen on the validation split among {', '.join(f'{t:g}' for t in TEMPERATURES)}",
        ),
        "search_budget": (
            SEARCH_BUDGET,
            _number(0.0),
            "the auto settings' search trains the student at most this many times training.epochs in all; 0: no "
            f"search (auto takes alpha {ALPHA:g} (0 with mixup or cutmix), T {TEMPERATURE:g})",
        ),
        "labeled_share": (0.25, _number(0.0, 0.95), "with a transfer set: share of each batch drawn from the labeled images"),
        "augmentation": (
            [],
            _augmentations,
            "consistent teaching: flip, translate, crop, rotate, mixup, cutmix (mixing needs alpha 0); "
            "teacher and student see the same augmented batch",
        ),
        "teacher_views": (
            None,
            _optional_views,
            f"null: the teacher runs in every step (fresh views); K (at most {MAX_TEACHER_VIEWS}): its outputs are "
            "cached once on K augmented views of each image (for a costly teacher; a streamed unlabeled_path keeps "
            "them as teacher shards on disk, each view stored as its parameters)",
        ),
    },
    "training": {
        "epochs": (
            EPOCHS,
            _number(1, whole=True),
            "the most epochs each model trains; each keeps its best epoch on the validation split",
        ),
        "patience": (
            PATIENCE,
            _optional_patience,
            "epochs without a better validation accuracy before a model stops; null trains every epoch (the best is "
            "still kept)",
        ),
        "schedule": (
            "cosine",
            _choice(SCHEDULES),
            "learning rate: cosine (a short warm-up, then a cosine decay over the epochs) or constant",
        ),
        "batch_size": (BATCH_SIZE, _number(1, whole=True), "global batch size"),
        "learning_rate": (LEARNING_RATE, _number(0.0, low_open=True), "Adam learning rate"),
        "seed": (0, _number(0, 2**32 - 1, whole=True), "seed of split, initial weights and shuffling, in [0, 2^32)"),
        "strategy": ("none", _choice(STRATEGIES), "tf.distribute strategy"),
        "precision": ("float32", _choice(PRECISIONS), "Keras dtype policy"),
    },
    "tune": {
        "enabled": (False, _flag, "search temperature, alpha and method with KerasTuner (or pass --tune)"),
        "max_trials": (6, _number(1, whole=True), "settings tried"),
        "epochs": (None, lambda k, v: v if v is None else _number(1, whole=True)(k, v), "epochs per trial (null: training.epochs)"),
        "temperature": ({"low": 1.0, "high": 10.0}, _search_space(0.0, MAX_TEMPERATURE, True), "a list of values, or {low, high}"),
        "alpha": ({"low": 0.0, "high": 1.0}, _search_space(0.0, 1.0, False), "a list of values, or {low, high}, in [0, 1]"),
        "methods": (["soft_target_kl", "dkd"], _methods, "output losses to choose from"),
    },
    "compress": {
        "max_drop": (None, _optional_budget, "kerasdistill compress: most points of validation accuracy below the teacher"),
        "max_size_kib": (None, _optional_budget, "kerasdistill compress: largest .tflite file, KiB"),
        "max_latency_ms": (None, _optional_budget, "kerasdistill compress: slowest latency per image (LiteRT, batch of one), ms"),
        "families": (
            list(COMPRESS_FAMILIES),
            _choices(COMPRESS_FAMILIES),
            "candidate students: convnet (widths and depths), mobilenet_v2 (width multipliers), slim (the teacher's "
            "filters pruned by importance, recovered by distillation)",
        ),
        "rungs": (list(COMPRESS_RUNGS), _rungs, "cumulative epochs at which about half of the candidates stop"),
        "quantizations": (["int8", "float16"], _choices(QUANTIZATIONS), ".tflite files made of each finalist"),
        "threads": (1, _number(1, whole=True), "LiteRT threads of the latency measurements"),
    },
    "report": {
        "plots": (True, _flag, "PNG plots: training curves, accuracy vs size and latency, tuning trials"),
        "tensorboard": (False, _flag, "TensorBoard logs in the run folder (or pass --tensorboard)"),
    },
    "export": {
        "quantizations": (["float32", "int8"], _choices(QUANTIZATIONS), ".tflite variants of the student"),
        "targets": (
            ["plain", "classifier"],
            _choices(TARGETS),
            "plain: the student as trained; classifier: RGB in, probabilities out, with metadata and labels, for "
            "MediaPipe Tasks and Android/iOS apps (student_<quantization>_classifier.tflite)",
        ),
    },
}


def defaults():
    """The default config (what `kerasdistill run` does without --config)."""
    return {section: {key: spec[0] for key, spec in keys.items()} for section, keys in SCHEMA.items()}


def validate(config):
    """Returns `config` with defaults filled in, or raises naming the bad key."""
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ValueError(f"A config is a mapping of sections ({', '.join(SCHEMA)}); got {type(config).__name__}.")
    unknown = set(config) - set(SCHEMA)
    if unknown:
        raise ValueError(f"Unknown config section(s) {', '.join(sorted(unknown))}; allowed sections: {', '.join(SCHEMA)}.")
    resolved = {}
    for section, keys in SCHEMA.items():
        given = config.get(section) or {}
        if not isinstance(given, dict):
            raise ValueError(f"Config section '{section}' must be a mapping of keys ({', '.join(keys)}); got {_shown(given)}.")
        extra = set(given) - set(keys)
        if extra:
            raise ValueError(
                f"Unknown key(s) {', '.join(f'{section}.{k}' for k in sorted(extra))}; allowed keys in "
                f"'{section}': {', '.join(keys)}."
            )
        resolved[section] = {key: check(f"{section}.{key}", given.get(key, default)) for key, (default, check, _) in keys.items()}
    if resolved["tune"]["enabled"] and resolved["training"]["strategy"] == "multi_worker":
        raise ValueError("tune.enabled (--tune) runs in one process; use training.strategy none or mirrored with it.")
    for role in ("teacher", "student"):
        _check_backbone_keys(role, resolved[role])
    data, distillation = resolved["data"], resolved["distillation"]
    if data["labeled_size"] == "auto":
        data["labeled_size"] = EMBEDDED_LABELED_SIZE if data["source"] == "embedded" else None
    if data["labeled_size"] is not None or data["unlabeled_path"] is not None:
        try:
            batch_split(resolved["training"]["batch_size"], distillation["labeled_share"])
        except ValueError as error:
            raise ValueError(f"training.batch_size and distillation.labeled_share (the transfer set's batches): {error}") from None
    if "int4" in resolved["export"]["quantizations"] and "classifier" in resolved["export"]["targets"]:
        raise ValueError(
            "export.quantizations holds int4 (weight-only, plain files only) and export.targets holds classifier: "
            "app runtimes expect float or int8 files. Drop classifier from export.targets, or int4 from export.quantizations."
        )
    mixing = [name for name in distillation["augmentation"] if name in MIXING_AUGMENTATIONS]
    if mixing and distillation["alpha"] != AUTO and distillation["alpha"] > 0:
        raise ValueError(
            f"distillation.augmentation mixes images ({', '.join(mixing)}) but distillation.alpha is "
            f"{distillation['alpha']}: the labels are not mixed with the images. Set alpha: 0 (pure distillation) "
            "or drop the mixing augmentation."
        )
    if distillation["teacher_views"] and distillation["teacher_views"] > 1 and not distillation["augmentation"]:
        raise ValueError(
            "distillation.teacher_views > 1 caches several augmented views, but distillation.augmentation is "
            "empty; name the augmentations (e.g. [flip, translate]) or set teacher_views: 1 or null."
        )
    if data["source"] in ("npz", "image_folder", "idx") and data["path"] is None:
        raise ValueError(f"data.source is {data['source']} but data.path is missing; give the .npz file, the image folder or the IDX folder.")
    if data["stream"] is True and data["source"] == "embedded":
        raise ValueError(
            "data.stream is true but data.source is embedded: the embedded digits (5,000 small images, 15 MiB) are read "
            "into memory. Set data.stream to auto, or give your images (image_folder, npz, idx, tfds)."
        )
    if data["source"] == "tfds" and data["name"] is None:
        raise ValueError("data.source is tfds but data.name is missing; give a tfds dataset name, e.g. mnist.")
    return resolved


def _check_backbone_keys(role, section):
    """Refuses backbone settings on a model that is no backbone; clears its default ImageNet weights."""
    if model_spec(section["model"]).kind == "backbone":
        if section.get("fine_tune_layers") == AUTO and section.get("weights") is None:
            section["fine_tune_layers"] = 0  # a random backbone trains whole from the start
        return
    if section.get("fine_tune_layers") == AUTO:
        section["fine_tune_layers"] = 0
    given = [key for key in ("backbone_size", "fine_tune_layers") if section.get(key)]
    if given:
        raise ValueError(
            f"{', '.join(f'{role}.{key}' for key in given)} set for {role}.model {_shown(section['model'])}, which is "
            f"not a backbone: {' and '.join(given)} {'applies' if len(given) == 1 else 'apply'} to backbone:NAME models only. Remove "
            f"{'it' if len(given) == 1 else 'them'}, or use a backbone (backbone:mobilenet_v2, ...)."
        )
    # Weights name ImageNet files of backbones; a built-in or saved model has
    # its own, and the resolved config must not say otherwise.
    section["weights"] = None


def load(path):
    """Reads (see `read`) and validates a YAML config file; returns the config with defaults filled in."""
    return validate(read(path))


def read(path):
    """Reads a YAML config file, not yet validated (this needs no Keras, so a bad file is answered at once).

    Read with a safe loader that also refuses anchors and aliases (a few
    hundred bytes of them can expand to 10^8 values) and duplicate keys
    (the second silently wins in plain YAML). Relative file paths in the
    config are taken from the config file's folder.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No config file at {path}; write an example with `kerasdistill init {path}`.")
    size = os.path.getsize(path)
    if size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path} is {size:,} bytes; a config is a few kilobytes (at most {MAX_CONFIG_BYTES:,}). Is it the right file?")
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return _resolve_paths(_parse_yaml(text, path), os.path.dirname(os.path.abspath(path)))


MAX_CONFIG_BYTES = 1 << 20
# Config keys that hold file paths (a `.keras` model, a weights file, a data file or folder).
PATH_KEYS = (("data", "path"), ("data", "unlabeled_path"), ("teacher", "model"), ("student", "model"),
             ("teacher", "weights"), ("student", "weights"))


def _parse_yaml(text, path):
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise ValueError(
                    f"{path} uses a YAML alias (*name) at line {mark.line + 1}; configs take plain values only. "
                    "Write the value out."
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):
            keys = [self.construct_object(key, deep=True) for key, _ in node.value]
            repeated = sorted({str(k) for k in keys if keys.count(k) > 1})
            if repeated:
                raise ValueError(
                    f"{path} gives the key(s) {', '.join(repeated)} twice in one section (line "
                    f"{node.start_mark.line + 1}); keep one."
                )
            return super().construct_mapping(node, deep)

    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path} is not valid YAML{where}: {getattr(error, 'problem', error)}. Fix the syntax (indent with spaces, 'key: value').") from None


def _resolve_paths(config, folder):
    if not isinstance(config, dict):
        return config
    for section, key in PATH_KEYS:
        values = config.get(section)
        value = values.get(key) if isinstance(values, dict) else None
        is_file = isinstance(value, str) and (key not in ("model", "weights") or value.endswith((".keras", ".h5")))
        if is_file and not os.path.isabs(os.path.expanduser(value)):
            values[key] = os.path.join(folder, value)
    return config


def _shown(value, limit=200):
    """A value as an error message quotes it: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def example():
    """A commented example config holding every key with its default."""
    lines = ["# kerasdistill pipeline config: `kerasdistill run --config THIS_FILE`", ""]
    for section, keys in SCHEMA.items():
        lines.append(f"{section}:")
        for key, (default, _, help_text) in keys.items():
            lines.append(f"  # {help_text}")
            lines.append(f"  {key}: {_yaml_value(default)}")
        lines.append("")
    return "\n".join(lines)


def _yaml_value(value):
    import yaml

    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
