"""Keras 3 model -> tf_keras (Keras 2) model with the same weights.

tensorflow-model-optimization (QAT, pruning) accepts only tf_keras models.
`to_tf_keras` rebuilds a Sequential or functional Keras 3 model of standard
layers in tf_keras from its config, then copies the weights layer by layer.
"""

import inspect

import numpy as np

# Arguments every tf_keras layer takes through **kwargs.
_BASE_KWARGS = {"name", "dtype", "trainable", "batch_input_shape", "input_shape", "input_dim", "batch_size"}


def to_tf_keras(model):
    """Rebuilds a Keras 3 Sequential or functional model in tf_keras, weights included.

    Args:
        model: a Keras 3 `Sequential` or functional model of standard Keras
            layers (a tf_keras model is returned as is).

    Returns:
        A `tf_keras.Model` computing the same function.

    Raises:
        ValueError: naming each layer that has no tf_keras counterpart (custom
            or Keras-3-only layers), or when the model is subclassed.

    Example:

    ```python
    legacy = to_tf_keras(student)   # then tfmot.quantization.keras.quantize_model(legacy)
    ```
    """
    import tf_keras

    if isinstance(model, tf_keras.Model):
        return model
    config = model.get_config()
    if "layers" not in config:
        raise ValueError(
            f"Model '{model.name}' is a subclassed model; only Sequential and functional models can be "
            "carried over to tf_keras. Rebuild it with the functional API."
        )
    unsupported = [
        f"'{entry['config']['name']}' ({entry['class_name']})"
        for entry in config["layers"]
        if _tf_keras_class(entry) is None
    ]
    if unsupported:
        raise ValueError(
            f"These layers of '{model.name}' cannot be carried over to tf_keras for tensorflow-model-"
            f"optimization: {', '.join(unsupported)}. Replace them with standard Keras layers, or use "
            "post-training quantization (to_tflite) instead."
        )
    layers = [_convert_layer(entry) for entry in config["layers"]]
    if "input_layers" in config:
        legacy_config = {
            "name": config["name"],
            "layers": layers,
            "input_layers": config["input_layers"],
            "output_layers": config["output_layers"],
        }
        legacy = tf_keras.Model.from_config(legacy_config)
    else:
        legacy = tf_keras.Sequential.from_config({"name": config["name"], "layers": layers})
    for layer in model.layers:
        weights = layer.get_weights()
        if weights:
            legacy.get_layer(layer.name).set_weights(weights)
    return legacy


def _tf_keras_class(entry):
    import tf_keras

    if entry.get("registered_name") and "kerasdistill" in str(entry.get("registered_name")):
        return None
    module = str(entry.get("module") or "")
    if module and not module.startswith("keras"):
        return None
    return getattr(tf_keras.layers, entry["class_name"], None)


def _accepted(cls, config):
    """`config` without the keys `cls` does not take (Keras-3-only arguments)."""
    accepted = set(inspect.signature(cls.__init__).parameters) | _BASE_KWARGS
    return {key: value for key, value in config.items() if key in accepted}


def _plain(value):
    """Keras 3 serialized objects -> the {class_name, config} form tf_keras reads."""
    import tf_keras

    if isinstance(value, dict):
        if "class_name" in value and "config" in value:
            if value["class_name"] in ("DTypePolicy", "FloatDTypePolicy"):
                return value["config"]["name"]
            config = _plain(value["config"])
            for module in (tf_keras.initializers, tf_keras.regularizers, tf_keras.constraints):
                cls = getattr(module, value["class_name"], None)
                if isinstance(cls, type) and isinstance(config, dict):
                    config = _accepted(cls, config)
                    break
            return {"class_name": value["class_name"], "config": config}
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _convert_layer(entry):
    cls = _tf_keras_class(entry)
    config = _plain(entry["config"])
    if entry["class_name"] == "InputLayer":
        config["batch_input_shape"] = config.pop("batch_shape", config.get("batch_input_shape"))
        config.pop("optional", None)
    config = _accepted(cls, config)
    converted = {"class_name": entry["class_name"], "config": config, "name": config["name"]}
    if "inbound_nodes" in entry:
        converted["inbound_nodes"] = [_convert_node(node) for node in entry["inbound_nodes"]]
    return converted


def _convert_node(node):
    """A Keras 3 inbound node ({args, kwargs}) -> a tf_keras one ([[layer, node, tensor, kwargs], ...])."""
    if isinstance(node, list):  # already in the old form
        return node
    tensors = []

    def collect(value):
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            layer, node_index, tensor_index = value["config"]["keras_history"]
            tensors.append([layer, node_index, tensor_index, {}])
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)

    collect(node.get("args", []))
    kwargs = {key: value for key, value in node.get("kwargs", {}).items() if not isinstance(value, dict)}
    if tensors and kwargs:
        tensors[0][3] = kwargs
    return tensors


def max_output_difference(model, legacy, x):
    """Largest absolute difference between two models' outputs on `x` (a check of `to_tf_keras`)."""
    return float(np.max(np.abs(np.asarray(model(x, training=False)) - np.asarray(legacy(x, training=False)))))
