"""The registry that lets a config file or the command line pick a loss by name."""

import difflib

from kerasdistill.backend import register_serializable
from kerasdistill.losses.base import DistillationLoss

_REGISTRY = {}
# Label losses by name (`losses.labels` fills it; each is built with the student's `from_logits`): `get`
# refuses these names, saying where they go.
LABEL_LOSSES = {}

def register(name):
    """Class decorator: makes a loss available to `get(name)` and to Keras'
    serialization (so saved models and configs can name it)."""

    def decorator(cls):
        if not (isinstance(cls, type) and issubclass(cls, DistillationLoss)):
            raise TypeError(
                f"register('{name}') takes a subclass of kerasdistill.losses.DistillationLoss (a loss between "
                f"teacher and student); got {cls!r}. Label losses go to Distiller.compile(student_loss_fn=...)."
            )
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
        A `DistillationLoss`.

    Example:

    ```python
    loss = get({"name": "hint", "config": {"pairs": [["conv_2", "conv_b"]]}})
    ```
    """
    if isinstance(identifier, DistillationLoss):
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
        if key in LABEL_LOSSES:
            raise ValueError(
                f"'{identifier}' compares the student with the labels, not with the teacher: pass it as "
                "student_loss_fn=, and pick a distillation loss here (e.g. 'soft_target_kl'). "
                f"Distillation losses: {', '.join(sorted(_REGISTRY))}."
            )
        if key not in _REGISTRY:
            close = difflib.get_close_matches(key, list(_REGISTRY), n=1)
            raise ValueError(
                f"Unknown distillation loss '{identifier}'."
                + (f" Did you mean '{close[0]}'?" if close else "")
                + f" Known losses: {', '.join(sorted(_REGISTRY))}."
            )
        try:
            return _REGISTRY[key](**kwargs)
        except TypeError as error:
            raise ValueError(f"Bad arguments for loss '{identifier}': {error}") from None
    raise TypeError(
        "A distillation loss must be a registered name, a {'name', 'config'} dict or a "
        f"kerasdistill.losses.DistillationLoss instance; got {type(identifier).__name__}."
    )
