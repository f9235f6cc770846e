"""Distillation losses, registered by name.

Every distillation loss is a `keras.losses.Loss` called as
`loss(teacher, student)`: the teacher's output takes the place of `y_true`.
Inside a `Distiller` every loss is called the same way,
`loss.terms(teacher, student, labels, labeled)` with the two sides'
`Outputs` (logits, tapped features) and the batch's labeled mask: the teacher's and student's outputs are turned
into logits first (probabilities become log-probabilities), so a loss never
has to guess what it was given. Written with `keras.ops`.

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
not a distillation loss: label losses have their own names in the registry
(`losses.registry.LABEL_LOSSES`, filled by `losses.labels`, whose
`get_label_loss` builds them). A config file or the
command line picks a loss by name through `get`:

```python
from kerasdistill import losses
loss = losses.get("soft_target_kl", temperature=4.0)
losses.names()  # every registered name
```
"""

from kerasdistill.losses.base import DistillationLoss, Outputs
from kerasdistill.losses.decoupled import DecoupledKD
from kerasdistill.losses.features import AttentionTransfer, FeatureLoss, Hint
from kerasdistill.losses.labels import CrossEntropy
from kerasdistill.losses.registry import get, names, register
from kerasdistill.losses.relational import RelationalKD
from kerasdistill.losses.soft_targets import LogitMSE, SoftenedLoss, SoftTargetKL

# The public surface: the loss classes, the base classes of a new loss, and the registry. The plumbing the
# Distiller uses (mixing, softening, checks, teacher combination) is imported from its own module.
__all__ = [
    "AttentionTransfer",
    "CrossEntropy",
    "DecoupledKD",
    "DistillationLoss",
    "FeatureLoss",
    "Hint",
    "LogitMSE",
    "Outputs",
    "RelationalKD",
    "SoftTargetKL",
    "SoftenedLoss",
    "get",
    "names",
    "register",
]
