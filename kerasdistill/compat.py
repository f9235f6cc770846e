"""Every use of a Keras internal, in one place: what breaks first on a Keras upgrade.

The Distiller is a `keras.Model` with its own `train_step`, as thin as Keras
allows; where Keras offers no public way, this module reaches inside it. Each
hook says why it is needed; `tests/test_compat.py` checks that every one of
them still exists in the installed Keras, and names the versions they were
checked against (`CHECKED_KERAS`). No other module of the package names a
private Keras attribute (`tests/test_architecture.py` enforces it).
"""

# Keras' own scaling of a loss by 1 / replicas under tf.distribute (what its
# built-in losses do), so that the gradients summed over replicas are those
# of the global batch. It is a no-op with one replica and on other backends.
from keras.src.losses.loss import scale_loss_for_distribution

from kerasdistill.backend import KERAS_3, tf

# The Keras 3 releases these hooks were checked against (tf_keras 2.x takes the public paths).
CHECKED_KERAS = ("3.10", "3.15")

__all__ = ["CHECKED_KERAS", "MultiWorkerFit", "scale_loss_for_distribution", "set_initial_epoch", "update_compiled_metrics"]


def update_compiled_metrics(model, y, y_pred, mask, sample_weight=None):
    """Updates the metrics given to `model.compile` on the rows `mask` selects.

    As Keras' own `compute_metrics` does, `metrics=` ignore `sample_weight`
    and `weighted_metrics=` use it; here every metric is also weighted by
    the 0/1 `mask` (the labeled rows of a transfer-set batch): a weight of 0
    leaves a row out without changing the batch's shape, which a compiled
    JAX step needs. The metrics' container is reached here, the one place
    that knows its private names in Keras 3 (checked with Keras 3.10 to
    3.15); under tf_keras every metric takes `mask * sample_weight`.
    """
    weighted = mask if sample_weight is None else mask * sample_weight
    if not KERAS_3:
        container = model.compiled_metrics
        if container is not None:
            if not container.built:
                container.build(y_pred, y)
            for metric in container.metrics:
                metric.update_state(y, y_pred, sample_weight=weighted)
        return
    container = model._compile_metrics
    if container is None:
        return
    if not container.built:
        container.build(y, y_pred)
    # One output: the containers' flat lists hold one entry each (a list of metrics, or None).
    for entries, weights in ((container._flat_metrics, mask), (container._flat_weighted_metrics, weighted)):
        for entry in entries:
            if entry:
                entry.update_state(y, y_pred, sample_weight=weights)


def set_initial_epoch(model, epoch):
    """Makes the next `model.fit` start at `epoch` (None: where its `initial_epoch` says).

    Keras' own `BackupAndRestore` resumes a fit this way; a callback has no
    public handle on it.
    """
    model._initial_epoch = epoch


class MultiWorkerFit:
    """Mixin that lets Keras 3 `fit` run under `MultiWorkerMirroredStrategy`.

    Keras 3 builds a model from the first batch averaged with
    `strategy.reduce`, which MultiWorkerMirroredStrategy cannot do eagerly
    (keras-team/keras#20585: every Keras 3 `fit` under it fails). The build
    needs only shapes and dtypes, which one replica's batch has. A model's
    `train_step`/`test_step` must also pass its logs through
    `multi_worker_logs`.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        strategy = getattr(self, "_distribute_strategy", None)
        if iterator is not None and strategy is not None and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(lambda v: strategy.experimental_local_results(v)[0], next(batches))
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)
