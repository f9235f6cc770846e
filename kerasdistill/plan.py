"""The plan: the batches each stage of a run trains on, named for their role.

Without a transfer set every model trains on the labeled images. With one,
the student is distilled from batches that mix labeled and unlabeled images
(`data.transfer_set`), an epoch being one pass over the unlabeled ones; the
teacher and the scratch student train on the labeled images for the same
number of steps, so that no model gets a larger budget.
"""

import collections

from kerasdistill import data as data_lib

Plan = collections.namedtuple("Plan", ["labels_only", "distill", "teacher_pass", "validation", "steps"])
Plan.__doc__ = """The batches of a run, by role.

`labels_only`: `(x, y)` batches of the labeled images, for the teacher, the
scratch student and the tuning search's scratch baseline; `distill`: the
distilled student's batches; `teacher_pass`: one deterministic pass over the
distillation images, which the teacher scores once for its cache;
`validation`: the validation split, on which every model is taken at its
best epoch; `steps`: optimizer steps an epoch (None: one pass over the
labeled images).
"""


def make_plan(splits, batch_size, labeled_share, seed):
    """The `Plan` of a run on `splits` (`data.Splits`, with or without a transfer set)."""
    validation = data_lib.to_dataset(*splits.val, batch_size=batch_size)
    if splits.unlabeled is None:
        labeled = data_lib.to_dataset(*splits.train, batch_size=batch_size, shuffle=True, seed=seed)
        return Plan(labeled, labeled, data_lib.to_dataset(*splits.train, batch_size=batch_size), validation, None)
    mixed = dict(batch_size=batch_size, labeled_share=labeled_share, seed=seed)
    distill = data_lib.transfer_set(splits.train, splits.unlabeled, shuffle=True, **mixed)
    labeled = data_lib.to_dataset(*splits.train, batch_size=batch_size, shuffle=True, seed=seed).repeat()
    teacher_pass = data_lib.transfer_set(splits.train, splits.unlabeled, shuffle=False, **mixed)
    return Plan(labeled, distill, teacher_pass, validation, int(distill.cardinality()))
