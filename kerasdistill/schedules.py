"""The learning-rate schedule of a run's models: a short linear warm-up, then a cosine decay over the epoch budget."""

from kerasdistill.backend import keras
from kerasdistill.defaults import SCHEDULES
# The warm-up's share of the whole budget (at most one epoch).
WARMUP_SHARE = 0.05


def learning_rate(rate, schedule, epochs, steps_per_epoch):
    """What to give an optimizer as `learning_rate` for a training of `epochs` × `steps_per_epoch` steps.

    `"cosine"`: from 0 up to `rate` over the first steps (5 % of the budget,
    at most an epoch: Adam's first moments are noisy), then down to 0 along
    a cosine at the last step of the budget (Loshchilov & Hutter 2017; the
    patient schedules of Beyer et al. 2022). A model stopped early on its
    validation score ends part-way down. `"constant"`: `rate` throughout.

    Args:
        rate: the peak learning rate.
        schedule: one of `SCHEDULES`.
        epochs: the most epochs the model trains.
        steps_per_epoch: optimizer steps per epoch.

    Returns:
        A float, or a `keras.optimizers.schedules.LearningRateSchedule`.

    Example:

    ```python
    optimizer = keras.optimizers.Adam(learning_rate(1e-3, "cosine", epochs=20, steps_per_epoch=60))
    ```
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}; got {schedule!r}.")
    if schedule == "constant":
        return rate
    total = max(1, int(epochs) * int(steps_per_epoch))
    warmup = max(1, min(int(steps_per_epoch), int(round(WARMUP_SHARE * total))))
    return keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=max(1, total - warmup), alpha=0.0, warmup_target=float(rate), warmup_steps=warmup
    )
