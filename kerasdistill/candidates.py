"""Students to search over: families of models from small to large, and slimmed copies of the teacher.

`compress` distills every candidate from the same teacher outputs and keeps
the smallest that meets a budget. The families:

- `convnet`: the built-in CNN at several widths (4 to 32 filters in the
  first block, doubling per block) and depths (2 or 3 blocks);
- `mobilenet_v2`: MobileNetV2 at width multipliers 0.35 and 0.5, at the
  images' own size (at least 32 pixels), with ImageNet weights where a file
  is on disk and random weights otherwise;
- `slim`: the teacher itself with a share of the filters of each inner
  convolution and dense layer removed, the filters of largest L1 norm kept
  ("Pruning Filters for Efficient ConvNets", Li et al. 2017), started from
  the teacher's weights and recovered by distillation. Teachers whose
  layers branch or merge (residual `Add`, `Concatenate`) or nest models
  cannot be slimmed this way: `slim` says which layer stops it.
"""

import dataclasses
import math

import numpy as np

from kerasdistill import models, transfer
from kerasdistill.defaults import COMPRESS_FAMILIES as FAMILIES

CONVNET_WIDTHS = (4, 8, 16, 32)
CONVNET_DEPTHS = (2, 3)
MOBILENET_ALPHAS = (0.35, 0.5)
SLIM_KEEP = (0.125, 0.25, 0.5)

# Layers that keep each channel where it is (per-channel or per-position work): a kept channel stays kept.
CHANNELWISE = (
    "InputLayer", "Rescaling", "ReLU", "Activation", "LeakyReLU", "ELU", "Softmax", "Dropout", "SpatialDropout2D",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "ZeroPadding2D",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A student to try: its name, family, and how to build it.

    Attributes:
        name: unique within a search, e.g. `"convnet-w8-d2"`.
        family: one of `FAMILIES`.
        build: `build(input_shape, classes)` returns a new (untrained, or
            teacher-initialised for `slim`) Keras model of logits.
        note: where its weights start from.
    """

    name: str
    family: str
    build: object
    note: str = "random initialisation"


def family(name, teacher, input_shape, classes):
    """The candidates of family `name` for a teacher and images of `input_shape` with `classes` classes.

    Returns:
        `(candidates, notes)`: the candidates, and why some could not be made
        (e.g. a teacher that cannot be slimmed).

    Example:

    ```python
    found, notes = family("convnet", teacher, (28, 28, 1), 10)
    ```
    """
    if name == "convnet":
        return [_convnet(width, depth) for depth in CONVNET_DEPTHS for width in CONVNET_WIDTHS], []
    if name == "mobilenet_v2":
        return [_mobilenet(alpha, input_shape) for alpha in MOBILENET_ALPHAS], []
    if name == "slim":
        try:
            plan_slimming(teacher)
        except ValueError as error:
            return [], [f"slim: {str(error).rstrip('.')}"]
        return [_slim(teacher, keep) for keep in SLIM_KEEP], []
    raise ValueError(f"Unknown candidate family {name!r}; known: {', '.join(FAMILIES)}.")


def _convnet(width, depth):
    filters = tuple(width * 2**block for block in range(depth))

    def build(shape, classes):
        return models.convnet(shape, classes, filters=filters, dense_units=4 * width, dropout=0.0, name=f"convnet_w{width}_d{depth}")

    return Candidate(f"convnet-w{width}-d{depth}", "convnet", build)


def _mobilenet(alpha, input_shape):
    side = max(32, *input_shape[:2])
    options = {"alpha": alpha}
    try:
        weights = transfer.find_imagenet_weights("mobilenet_v2", (side, side, 3), download=False, **options)
        note = "ImageNet weights"
    except (FileNotFoundError, ValueError):
        weights, note = None, f"random initialisation (no ImageNet file for alpha {alpha} on disk)"

    def build(shape, classes):
        backbone = transfer.load_backbone("mobilenet_v2", (side, side, 3), weights=weights, freeze=False, freeze_batchnorm=False, **options)
        return transfer.build_classifier(backbone, classes, dropout=0.0, name=f"mobilenet_v2_{alpha}", input_shape=tuple(shape))

    return Candidate(f"mobilenet_v2-{alpha}", "mobilenet_v2", build, note)


def _slim(teacher, keep):
    def build(shape, classes):
        return slim(teacher, keep)

    return Candidate(f"slim-{keep:g}", "slim", build, f"the teacher's weights, {keep:.1%} of its inner filters kept")


def plan_slimming(model):
    """The layers of `model` in order with their single input layer's name; refuses what cannot be slimmed.

    Raises:
        ValueError: naming the first layer that merges, branches or nests,
            or a layer this slimming does not know.
    """
    config = model.get_config()
    if "layers" not in config:
        raise ValueError(f"{type(model).__name__} has no functional layer graph (a subclassed model) to slim.")
    # A Sequential model's config lists its layers in order, without the links a functional one records.
    sequential = "input_layers" not in config
    consumers = {}
    plan = []
    for index, entry in enumerate(config["layers"]):
        inputs = [config["layers"][index - 1]["config"]["name"]] if sequential and index else _inbound_names(entry)
        if len(inputs) > 1:
            raise ValueError(f"layer {entry['config']['name']} ({entry['class_name']}) merges {len(inputs)} inputs; filters cannot be removed consistently across a merge.")
        for name in inputs:
            consumers[name] = consumers.get(name, 0) + 1
        kind = entry["class_name"]
        if kind not in ("Conv2D", "Dense", "BatchNormalization", "DepthwiseConv2D", "Flatten", *CHANNELWISE):
            raise ValueError(f"layer {entry['config']['name']} is a {kind}, which this slimming does not know how to follow.")
        plan.append((entry, inputs[0] if inputs else None))
    branching = [name for name, count in consumers.items() if count > 1]
    if branching:
        raise ValueError(f"layer {branching[0]} feeds several layers; filters cannot be removed consistently across a branch.")
    return plan


def _inbound_names(entry):
    names = []
    for node in entry.get("inbound_nodes", []):
        for argument in node.get("args", []) if isinstance(node, dict) else []:
            for tensor in argument if isinstance(argument, list) else [argument]:
                if isinstance(tensor, dict) and tensor.get("class_name") == "__keras_tensor__":
                    names.append(tensor["config"]["keras_history"][0])
    return names


def slim(model, keep):
    """A copy of `model` with `keep` (in (0, 1]) of the filters of each inner Conv2D and units of each inner
    Dense layer, those of largest L1 norm, and the teacher's weights for what is kept.

    Returns:
        A new functional model; the output layer keeps all its units.

    Example:

    ```python
    half = slim(teacher, 0.5)  # about a quarter of the weights of a CNN
    ```
    """
    if not 0 < keep <= 1:
        raise ValueError(f"keep is the share of filters kept, in (0, 1]; got {keep!r}.")
    plan = plan_slimming(model)
    config = model.get_config()
    outputs = _output_producers(plan, config)
    kept, weights = {}, {}
    for (entry, source), layer_config in zip(plan, config["layers"]):
        name, kind = entry["config"]["name"], entry["class_name"]
        incoming = kept.get(source)
        # A Sequential model's input is no layer of its own.
        values = [] if kind == "InputLayer" else model.get_layer(name).get_weights()
        if kind in ("Conv2D", "Dense"):
            kernel = values[0] if incoming is None else np.take(values[0], incoming, axis=-2)
            units = kernel.shape[-1]
            if name in outputs:
                chosen = np.arange(units)
            else:
                count = max(1, int(math.ceil(units * keep)))
                norms = np.abs(kernel).reshape(-1, units).sum(axis=0)
                chosen = np.sort(np.argsort(-norms, kind="stable")[:count])
                layer_config["config"]["filters" if kind == "Conv2D" else "units"] = int(count)
            weights[name] = [np.take(kernel, chosen, axis=-1)] + [np.take(bias, chosen) for bias in values[1:]]
            kept[name] = None if name in outputs else chosen
        elif kind == "Flatten":
            kept[name] = None if incoming is None else _flattened(model.get_layer(name).input.shape, incoming)
        elif kind in ("BatchNormalization", "DepthwiseConv2D"):
            weights[name] = values if incoming is None else [np.take(v, incoming, axis=-1 if kind == "BatchNormalization" or v.ndim == 1 else -2) for v in values]
            kept[name] = incoming
        else:
            kept[name] = incoming
    for entry in config["layers"]:
        # Each layer is built again from the narrower tensors it receives, not the shapes it was built for.
        entry.pop("build_config", None)
    slimmed = type(model).from_config(config)
    for name, values in weights.items():
        slimmed.get_layer(name).set_weights(values)
    if slimmed.output_shape != model.output_shape:
        raise ValueError(f"The slimmed model outputs {slimmed.output_shape}, not the teacher's {model.output_shape}.")
    return slimmed


def _output_producers(plan, config):
    """The Conv2D or Dense layers whose units are the model's outputs: the output layers themselves, or the last
    such layer before them through channel-wise layers (a separate Softmax, a global pooling of a 1x1 convolution)."""
    if "output_layers" in config:
        names = [tensor[0] for tensor in _output_names(config)]
    else:
        names = [config["layers"][-1]["config"]["name"]]
    kinds = {entry["config"]["name"]: entry["class_name"] for entry, _ in plan}
    sources = {entry["config"]["name"]: source for entry, source in plan}
    producers = set()
    for name in names:
        while name is not None and kinds[name] not in ("Conv2D", "Dense"):
            name = sources[name]
        if name is not None:
            producers.add(name)
    return producers


def _output_names(config):
    outputs = config["output_layers"]
    # One output is written as [name, node, index]; several as a list of those.
    return [outputs] if outputs and isinstance(outputs[0], str) else outputs


def _flattened(shape, channels):
    """The positions a channels-last flatten gives the kept channels: position p, channel c is p * C + c."""
    positions, count = int(np.prod(shape[1:-1])), int(shape[-1])
    return (np.arange(positions)[:, None] * count + np.asarray(channels)[None, :]).reshape(-1)
