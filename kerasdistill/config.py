"""Pipeline configs: one YAML file describing a whole `kerasdistill run`.

Read with `yaml.safe_load` only (no Python objects from the file), checked
key by key against `SCHEMA`, with defaults filled in. Every error names the
key, what it holds, and what is allowed.
"""

import os

from kerasdistill import losses as losses_lib
from kerasdistill import models
from kerasdistill.distribute import PRECISIONS, STRATEGIES
from kerasdistill.export.tflite import QUANTIZATIONS

DATA_SOURCES = ("embedded", "npz")


def _choice(options):
    def check(key, value):
        if value not in options:
            raise ValueError(f"{key} is {value!r}; allowed values: {', '.join(map(str, options))}.")
        return value

    return check


def _number(low=None, high=None, low_open=False, whole=False):
    def check(key, value):
        kind = int if whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{key} must be {'a whole number' if whole else 'a number'}; got {value!r}.")
        if low is not None and (value <= low if low_open else value < low):
            raise ValueError(f"{key} must be {'>' if low_open else '>='} {low}; got {value!r}.")
        if high is not None and value > high:
            raise ValueError(f"{key} must be <= {high}; got {value!r}.")
        return value

    return check


def _model(key, value):
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a built-in model name ({', '.join(models.BUILTIN)}) or a .keras file; got {value!r}.")
    if value.endswith(".keras"):
        if not os.path.isfile(value):
            raise FileNotFoundError(f"{key} names the file {value!r}, which does not exist. Give the path of a saved .keras model.")
        return value
    if value not in models.BUILTIN:
        raise ValueError(f"{key} is {value!r}: not a built-in model ({', '.join(models.BUILTIN)}) nor a .keras file.")
    return value


def _optional_file(key, value):
    if value is not None and (not isinstance(value, str) or not os.path.isfile(value)):
        raise FileNotFoundError(f"{key} names {value!r}, which is not a file. Give the path of an existing file.")
    return value


def _losses(key, value):
    value = [value] if isinstance(value, (str, dict)) else value
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key} must be a loss name or a list of them ({', '.join(losses_lib.names())}); got {value!r}.")
    for item in value:
        try:
            losses_lib.get(item)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{key}: {error}") from None
    return value


def _quantizations(key, value):
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key} must be a list of {', '.join(QUANTIZATIONS)}; got {value!r}.")
    for item in value:
        _choice(QUANTIZATIONS)(key, item)
    return value


SCHEMA = {
    "data": {
        "source": ("embedded", _choice(DATA_SOURCES), "embedded (5,000 real MNIST digits) or npz"),
        "path": (None, _optional_file, "the .npz file (arrays x_train, y_train, x_test, y_test)"),
        "validation_size": (500, _number(1, whole=True), "samples held out of training for validation"),
    },
    "teacher": {"model": ("convnet_teacher", _model, "a built-in model name or a saved .keras teacher")},
    "student": {"model": ("convnet_student", _model, "a built-in model name or a saved (untrained) .keras student")},
    "distillation": {
        "losses": (["soft_target_kl"], _losses, "distillation losses by name, or {name, config} entries"),
        "alpha": (0.1, _number(0.0, 1.0), "weight of the label loss, in [0, 1]"),
        "temperature": (4.0, _number(0.0, low_open=True), "softening temperature > 0"),
    },
    "training": {
        "epochs": (5, _number(1, whole=True), "epochs for each model"),
        "batch_size": (64, _number(1, whole=True), "global batch size"),
        "learning_rate": (1e-3, _number(0.0, low_open=True), "Adam learning rate"),
        "seed": (0, _number(0, whole=True), "seed of split, initial weights and shuffling"),
        "strategy": ("none", _choice(STRATEGIES), "tf.distribute strategy"),
        "precision": ("float32", _choice(PRECISIONS), "Keras dtype policy"),
    },
    "export": {"quantizations": (["float32", "int8"], _quantizations, ".tflite variants of the student")},
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
            raise ValueError(f"Config section '{section}' must be a mapping of keys ({', '.join(keys)}); got {given!r}.")
        extra = set(given) - set(keys)
        if extra:
            raise ValueError(
                f"Unknown key(s) {', '.join(f'{section}.{k}' for k in sorted(extra))}; allowed keys in "
                f"'{section}': {', '.join(keys)}."
            )
        resolved[section] = {key: check(f"{section}.{key}", given.get(key, default)) for key, (default, check, _) in keys.items()}
    if resolved["data"]["source"] == "npz" and resolved["data"]["path"] is None:
        raise ValueError("data.source is npz but data.path is missing; give the .npz file (arrays x_train, y_train, x_test, y_test).")
    return resolved


def load(path):
    """Reads and validates a YAML config file (with `yaml.safe_load`)."""
    import yaml

    if not os.path.isfile(path):
        raise FileNotFoundError(f"No config file at {path}; write an example with `kerasdistill init {path}`.")
    with open(path, encoding="utf-8") as handle:
        try:
            config = yaml.safe_load(handle)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValueError(f"{path} is not valid YAML{where}: {getattr(error, 'problem', error)}. Fix the syntax (indent with spaces, 'key: value').") from None
    return validate(config)


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
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)
