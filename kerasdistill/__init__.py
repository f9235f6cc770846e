"""kerasdistill: knowledge distillation, transfer learning and TFLite export for Keras.

```python
import kerasdistill as kd
distiller = kd.Distiller(teacher=teacher, student=student)
distiller.compile(optimizer="adam", distillation_loss_fn=kd.losses.SoftTargetKL())
distiller.fit(train_ds, epochs=5)
```
"""

from kerasdistill import losses
from kerasdistill.adapters import FeatureAdapter
from kerasdistill.cache import cache_teacher_outputs, load_cached_teacher_outputs
from kerasdistill.distiller import Distiller
from kerasdistill.tune import TuneResult, tune
from kerasdistill.version import __version__

__all__ = [
    "Distiller",
    "FeatureAdapter",
    "cache_teacher_outputs",
    "load_cached_teacher_outputs",
    "losses",
    "tune",
    "TuneResult",
    "__version__",
]
