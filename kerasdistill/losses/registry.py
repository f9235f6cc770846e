"""The registry that lets a config file or the command line pick a loss by name."""

import math

from kerasdistill.backend import keras, register_serializable

_REGISTRY = {}


def register(name):
    """Class decorator: makes a loss available to `get(name)` and to Keras'
    serialization (so saved models and configs can name it)."""

    def decorator(cls):
        key = name.lower()
        if key in _REGISTRY:
            raise ValueError(f"A loss named '{name}' is already registered.")
        _REGISTRY[key] = register_serializable(cls)
        cls.registered_name = key
        return cls

    return decorator


def names():
    """Returns the names under which losses are registered."""
    return list(_REGISTRY)


def get(identifier, **kwargs):
    """Returns a loss instance from a name, a config dict or an instance.

    Args:
        identifier: a registered name (`"soft_target_kl"`, `"dkd"`, `"hint"`,
            ...), a dict `{"name": ..., "config": {...}}` as written in a
            config file, or a loss instance (returned as is).
        **kwargs: constructor arguments, used with a name.

    Returns:
        A `keras.losses.Loss`.

    Example:

    ```python
    loss = get({"name": "hint", "config": {"pairs": [["conv_2", "conv_b"]]}})
    ```
    """
    if isinstance(identifier, keras.losses.Loss):
        if kwargs:
            raise ValueError("Constructor arguments go with a loss name, not an instance.")
        return identifier
    if isinstance(identifier, dict):
        unknown = set(identifier) - {"name", "config"}
        if "name" not in identifier or unknown:
            raise ValueError(
                "A loss given as a dict needs the form {'name': ..., 'config': {...}}; "
                f"got keys {sorted(identifier)}."
            )
        return get(identifier["name"], **dict(identifier.get("config") or {}), **kwargs)
    if isinstance(identifier, str):
        key = identifier.lower()
        if key not in _REGISTRY:
            raise ValueError(
                f"Unknown distillation loss '{identifier}'. Known losses: "
                f"{', '.join(sorted(_REGISTRY))}."
            )
        try:
            return _REGISTRY[key](**kwargs)
        except TypeError as error:
            raise ValueError(f"Bad arguments for loss '{identifier}': {error}") from None
    raise TypeError(
        "A loss must be a registered name, a {'name', 'config'} dict or a "
        f"keras.losses.Loss instance; got {type(identifier).__name__}."
    )


def check_temperature(temperature, allow_none=False):
    """Returns `temperature` as a float, or raises a ValueError saying what to pass."""
    if temperature is None and allow_none:
        return None
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise ValueError(
            f"temperature must be a finite number > 0 (typical values 1 to 10); got {temperature!r}."
        )
    return float(temperature)


def check_weight(weight, what="weight"):
    """Returns a loss weight as a float, or raises a ValueError saying what to pass."""
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not math.isfinite(weight)
        or weight < 0
    ):
        raise ValueError(f"{what} must be a finite number >= 0; got {weight!r}.")
    return float(weight)
