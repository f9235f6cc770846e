"""Models from a config's `model` entries: a built-in name, `backbone:NAME` or a saved `.keras` file.

`build_model` is the one constructor of a run's teacher and students;
`check_models` and `check_layer_pairs` refuse, before anything trains, a
saved model that does not fit the data and feature losses naming layers the
models lack.
"""

from kerasdistill import config as config_lib
from kerasdistill import files, models, transfer
from kerasdistill import losses as losses_lib
from kerasdistill.backend import keras
from kerasdistill.checks import output_width
from kerasdistill.defaults import AUTO, FINE_TUNE_SHARE


def build_model(spec, shape, classes, weights=None, role="student", backbone_size=None):
    """A model from a config's `model` entry: a built-in name, `backbone:NAME` or a `.keras` file.

    A backbone takes the run's images as they are when they fit it (RGB, at
    least its minimum size); otherwise, or when `backbone_size` is given, it
    runs at `backbone_size` (default 96) and the model resizes the images and
    repeats grey ones to RGB itself, so teacher and student take the same batch.
    A saved student is its architecture: its weights are drawn afresh (see
    `initial_weights`), so both students of a run start untrained and alike.
    """
    spec = config_lib.model_spec(spec)
    if spec.kind == "file":
        model = files.load_model(spec.name)
        return model if role == "teacher" else initial_weights(model)
    if spec.kind == "backbone":
        name = spec.name
        shape = tuple(shape)
        fits = shape[2] == 3 and min(shape[:2]) >= transfer.get_spec(name).min_size
        backbone_shape = shape if fits and backbone_size is None else (backbone_size or 96,) * 2 + (3,)
        # A teacher with pretrained weights trains its new head on frozen features.
        backbone = transfer.load_backbone(name, backbone_shape, weights=weights, freeze=role == "teacher" and weights is not None)
        return transfer.build_classifier(backbone, classes, name=f"{name}_{role}", input_shape=shape)
    return models.build(spec.name, shape, classes)


def initial_weights(model):
    """A copy of `model` with weights drawn afresh by its initializers (under the current seed).

    Layers whose weights are all non-trainable by design (an adapted
    Normalization's statistics) keep theirs: they are preprocessing, not
    training.
    """
    fresh = keras.models.clone_model(model)
    for saved, new in zip(model.layers, fresh.layers):
        if new.weights and not any(variable.trainable for variable in new.weights):
            new.set_weights(saved.get_weights())
    return fresh


def check_models(config, shape, classes):
    """Refuses, before anything trains, a saved model whose output width is not the data's class count,
    and a teacher.fine_tune_layers above its backbone's depth."""
    for role in ("teacher", "student"):
        spec = config_lib.model_spec(config[role]["model"])
        if spec.kind != "file":
            continue
        model = files.load_model(spec.name)
        takes = tuple(model.input_shape[1:]) if not isinstance(model.input_shape, list) else None
        if takes is not None and takes != tuple(shape):
            raise ValueError(
                f"{role}.model {spec.name} takes inputs of shape {takes} but the data's images are {tuple(shape)}: "
                f"give a {role} built for {tuple(shape)}, or set data.image_size to the size it takes."
            )
        width = output_width(model, None)
        if width != classes:
            raise ValueError(
                f"{role}.model {spec.name} outputs {width} class scores but the data has {classes} classes: the "
                f"models must score the data's classes. Give a {role} with {classes} outputs, or the data it was "
                "trained for."
            )
    spec, layers = config_lib.model_spec(config["teacher"]["model"]), config["teacher"]["fine_tune_layers"]
    if spec.kind == "backbone" and layers and layers != AUTO:
        depth = transfer.depth(spec.name)
        if layers > depth:
            raise ValueError(
                f"teacher.fine_tune_layers is {layers} but backbone {spec.name} has {depth} layers; give at most "
                f"{depth} (all of them), or fewer to fine-tune its top only."
            )


def check_layer_pairs(config, shape, classes):
    """Refuses, before anything trains, feature losses naming layers the models lack."""
    pairs = [pair for item in config["distillation"]["losses"] for pair in (losses_lib.get(item).pairs or ())]
    if not pairs:
        return
    for index, role in enumerate(("teacher", "student")):
        model = build_model(config[role]["model"], shape, classes, config[role]["weights"], role, config[role]["backbone_size"])
        layers = [layer.name for layer in model.layers]
        missing = sorted({pair[index] for pair in pairs} - set(layers))
        if missing:
            raise ValueError(
                f"distillation.losses names {role} layer(s) {', '.join(missing)}, which the {role} "
                f"'{model.name}' lacks. Its layers: {', '.join(layers)}. Fix the layer pairs."
            )


def fine_tune_layers(teacher_config):
    """How many top layers of a backbone teacher's backbone are fine-tuned after its head: the config's number,
    for `auto` the top `defaults.FINE_TUNE_SHARE` of an ImageNet backbone's layers; 0 for other teachers."""
    spec, layers = config_lib.model_spec(teacher_config["model"]), teacher_config["fine_tune_layers"]
    if spec.kind != "backbone" or not layers:
        return 0
    if layers == AUTO:
        return max(1, round(FINE_TUNE_SHARE * transfer.depth(spec.name)))
    return layers
