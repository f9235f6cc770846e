"""kerasdistill: knowledge distillation, transfer learning and TFLite export for Keras.

```python
import kerasdistill as kd
distiller = kd.Distiller(teacher=teacher, student=student)
distiller.compile(optimizer="adam", distillation_loss_fn=kd.losses.SoftTargetKL())
distiller.fit(train_ds, epochs=5)
```

Importing the package registers its Keras serializables (losses, layers,
the Distiller), so `keras.models.load_model` reads the models it saved; the
public names are imported on first use. Only the `kerasdistill` command's
launcher (`kerasdistill_cli.main`, while it imports the package, in this
process, never in a child) defers the registration until its arguments are read, so that `--help`, `--version` or
a bad argument is answered without loading Keras and its backend.
"""

import importlib
import sys

from kerasdistill.version import __version__

# Public name -> the module that defines it (a module itself for `losses`).
_EXPORTS = {
    "Distiller": "kerasdistill.distiller",
    "FeatureAdapter": "kerasdistill.adapters",
    "ImageStream": "kerasdistill.streams",
    "ArrayStream": "kerasdistill.streams",
    "ChainStream": "kerasdistill.streams",
    "DatasetStream": "kerasdistill.streams",
    "cache_teacher_outputs": "kerasdistill.cache",
    "load_cached_teacher_outputs": "kerasdistill.cache",
    "score_to_shards": "kerasdistill.shards",
    "load_teacher_shards": "kerasdistill.shards",
    "sharded_transfer_set": "kerasdistill.shards",
    "losses": None,
    "tune": "kerasdistill.tuning",
    "TuneResult": "kerasdistill.tuning",
}

__all__ = [*_EXPORTS, "__version__", "register_serializables"]


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'kerasdistill' has no attribute {name!r}")
    module = _EXPORTS[name]
    value = importlib.import_module(f"kerasdistill.{name}") if module is None else getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(__all__)


def register_serializables():
    """Imports the modules whose classes Keras must find by name to load a saved model."""
    for module in ("losses", "adapters", "transfer", "distiller"):
        importlib.import_module(f"kerasdistill.{module}")


def _launcher_reads_arguments_first():
    return getattr(sys.modules.get("kerasdistill_cli"), "READS_ARGUMENTS_FIRST", False)


if not _launcher_reads_arguments_first():
    register_serializables()
