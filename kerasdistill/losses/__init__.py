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
not a distillation loss and lives in its own registry, `LABEL_LOSSES`
(`get_label_loss`). A config file or the
command line picks a loss by name through `get`:

```python
from kerasdistill import losses
loss = losses.get("soft_target_kl", temperature=4.0)
losses.names()  # every registered name
```
"""

from kerasdistill.losses.base import DistillationLoss, Outputs, logits_from, per_sample
from kerasdistill.losses.decoupled import DecoupledKD
from kerasdistill.losses.features import AttentionTransfer, FeatureLoss, Hint, check_pairs
from kerasdistill.losses.labels import LABEL_LOSSES, CrossEntropy, get_label_loss, per_sample_label_loss
from kerasdistill.losses.objective import mix_losses
from kerasdistill.losses.arguments import MAX_TEMPERATURE, check_temperature, check_weight
from kerasdistill.losses.registry import get, names, register
from kerasdistill.losses.relational import RelationalKD
from kerasdistill.losses.soft_targets import LogitMSE, SoftenedLoss, SoftTargetKL, as_distillation_loss, as_distillation_losses, combine_teachers, soften

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
    "Outputs",
    "RelationalKD",
    "SoftTargetKL",
    "SoftenedLoss",
    "as_distillation_loss",
    "as_distillation_losses",
    "check_pairs",
    "combine_teachers",
    "check_temperature",
    "check_weight",
    "get",
    "get_label_loss",
    "logits_from",
    "mix_losses",
    "names",
    "per_sample",
    "per_sample_label_loss",
    "register",
    "soften",
]
