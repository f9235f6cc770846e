"""Distillation losses, registered by name.

Every distillation loss is a `keras.losses.Loss` called as
`loss(teacher, student)`: the teacher's output takes the place of `y_true`.
Inside a `Distiller` the teacher's and student's outputs are turned into
logits first (probabilities become log-probabilities), so a loss never has to
guess what it was given.

| name             | class              | compares                           |
|------------------|--------------------|------------------------------------|
| `soft_target_kl` | `SoftTargetKL`     | softened outputs (Hinton, T²)      |
| `logit_mse`      | `LogitMSE`         | logits (Ba & Caruana)              |
| `softened`       | `SoftenedLoss`     | any Keras loss on softened outputs |
| `dkd`            | `DecoupledKD`      | target / non-target terms (Zhao)   |
| `hint`           | `Hint`             | intermediate features (FitNets)    |
| `attention`      | `AttentionTransfer`| attention maps (Zagoruyko)         |
| `rkd`            | `RelationalKD`     | distances and angles (Park)        |

`CrossEntropy` (student vs labels) is the default `student_loss_fn`; it is
not a distillation loss and is not in this registry. A config file or the
command line picks a loss by name through `get`:

```python
from kerasdistill import losses
loss = losses.get("soft_target_kl", temperature=4.0)
losses.names()  # every registered name
```
"""

from kerasdistill.losses.base import DistillationLoss, is_one_hot, label_indices, logits_from
from kerasdistill.losses.decoupled import DecoupledKD
from kerasdistill.losses.features import AttentionTransfer, FeatureLoss, Hint, check_pairs
from kerasdistill.losses.labels import CrossEntropy
from kerasdistill.losses.registry import LABEL_LOSSES, MAX_TEMPERATURE, check_temperature, check_weight, get, names, register
from kerasdistill.losses.relational import RelationalKD
from kerasdistill.losses.soft_targets import LogitMSE, SoftenedLoss, SoftTargetKL, soften

__all__ = [
    "LABEL_LOSSES",
    "MAX_TEMPERATURE",
    "AttentionTransfer",
    "CrossEntropy",
    "DecoupledKD",
    "DistillationLoss",
    "FeatureLoss",
    "Hint",
    "LogitMSE",
    "RelationalKD",
    "SoftTargetKL",
    "SoftenedLoss",
    "check_pairs",
    "check_temperature",
    "check_weight",
    "get",
    "is_one_hot",
    "label_indices",
    "logits_from",
    "names",
    "register",
    "soften",
]
