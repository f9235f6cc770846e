"""Distillation settings chosen on the validation split, within a budget fixed before the search starts.

The gain of distillation depends on alpha and the temperature, and the best
values depend on the data. `kerasdistill run` leaves both at `auto` unless
a config sets them, and then chooses in two rounds:

1. **Probe**: every other candidate trains the student for a few epochs
   (the run's schedule fitted to them) on the run's batches; with the
   teacher's outputs cached, a probe costs the student's training only.
   The best probe is the challenger (the first round of successive halving,
   Jamieson & Talwalkar 2016).
2. **Final**: the library's default setting and the challenger are each
   trained as the run trains its models (to their best validation epoch).
   The challenger is kept only when it beats the default by more than the
   validation split's noise (one standard error of the default's accuracy):
   on a small validation split a lucky score must not replace a setting
   chosen on many datasets.

`choose` and `probe` hold the rules; `kerasdistill.pipeline` runs the
trainings as resumable stages. `tuning.tune` is the wider KerasTuner search.
"""

import contextlib
import dataclasses
import math
import time

from kerasdistill.backend import keras
from kerasdistill.defaults import ALPHAS, AUTO, TEMPERATURE, TEMPERATURES
from kerasdistill.distiller import Distiller
from kerasdistill.losses.soft_targets import as_distillation_losses
from kerasdistill.tables import format_table

COLUMNS = [
    ("alpha", "alpha", ".3g"),
    ("temperature", "T", ".3g"),
    ("probe", "probe", ".4f"),
    ("final", "trained", ".4f"),
]


def candidates(alpha=AUTO, temperature=AUTO, mixing=False, uses_temperature=True):
    """The settings to try, `[{"alpha", "temperature"}]`: an `auto` value over its grid, a given value fixed.

    Args:
        alpha: `"auto"` or the label-loss weight in [0, 1].
        temperature: `"auto"` or the softening temperature.
        mixing: the augmentation mixes images (MixUp, CutMix): alpha must be 0.
        uses_temperature: whether any distillation loss takes the Distiller's
            temperature; when none does, an `auto` temperature stays at the
            default.

    Returns:
        A list of settings; the first is the default (alpha 0.1 — 0 with a
        mixing augmentation — and T 4, or what the config fixed): what a run
        uses without a search, and the setting a search must beat.

    Example:

    ```python
    candidates()            # 6 settings: alpha 0.1, 0, 0.5 × T 4, 2
    candidates(alpha=0.0)   # T 4 and 2 at alpha 0
    ```
    """
    if alpha == AUTO:
        alphas = (0.0,) if mixing else ALPHAS
    else:
        alphas = (float(alpha),)
    if temperature == AUTO:
        temperatures = TEMPERATURES if uses_temperature else (TEMPERATURE,)
    else:
        temperatures = (float(temperature),)
    # At alpha 1 the teacher plays no part: one temperature is enough.
    return [{"alpha": a, "temperature": t} for a in alphas for t in (temperatures if a < 1 else temperatures[:1])]


def uses_temperature(distillation_losses):
    """Whether any of the losses (as `Distiller.compile` takes them) takes the Distiller's temperature."""
    return any(
        "temperature" in loss.get_config() and loss.get_config()["temperature"] is None
        for loss in as_distillation_losses(distillation_losses, None)
    )


def probe_epochs(settings, budget_epochs, epochs):
    """Epochs of each probe; 0 when there is no probe round; None when there is no search.

    The search trains, besides the run's own distillation, the challenger
    to the end (`epochs`) and, with several candidates besides the default,
    each of them as a probe of the same number of epochs (at least one, at
    most `epochs`), within `budget_epochs` student epochs in all. With one
    candidate besides the default, that one is the challenger: no probes.
    """
    probes = len(settings) - 1
    if probes < 1 or budget_epochs < epochs + (probes if probes > 1 else 0):
        return None
    if probes == 1:
        return 0
    return min(epochs, int((budget_epochs - epochs) // probes))


def standard_error(accuracy, count):
    """The standard error of an accuracy measured on `count` samples: the noise of a validation score."""
    return math.sqrt(max(accuracy * (1.0 - accuracy), 1.0 / count) / count)


def choose(default_score, challenger_score, validation_size):
    """`(challenger wins, margin)`: the challenger must beat the default by more than one standard error."""
    margin = standard_error(default_score, validation_size)
    return challenger_score > default_score + margin, margin


@dataclasses.dataclass
class Probe:
    """The probe round: each candidate but the default trained `epochs` epochs.

    Attributes:
        rows: one dict per candidate (`alpha`, `temperature`, `probe`: its
            best validation accuracy in the probe, None for the default).
        epochs: epochs of each probe.
        seconds: the time the probes took.
    """

    rows: list
    epochs: int
    seconds: float

    @classmethod
    def unprobed(cls, settings):
        """The round of a search with one candidate besides the default: no probes, that one is the challenger."""
        return cls([{**setting, "probe": None, "final": None} for setting in settings], 0, 0.0)

    @property
    def challenger(self):
        """The best probed setting (ties go to the earlier one); without probes, the one besides the default."""
        probed = [row for row in self.rows if row["probe"] is not None] or self.rows[1:2]
        best = max(probed, key=lambda row: row["probe"] or 0.0)
        return {"alpha": best["alpha"], "temperature": best["temperature"]}

    def table(self):
        """The candidates with their probe scores and, once trained, the finalists' scores."""
        return format_table(self.rows, COLUMNS)


def probe(teacher, student_fn, train_data, validation_data, settings, epochs, learning_rate=1e-3,
          distillation_losses="soft_target_kl", augmentation=None, steps_per_epoch=None, seed=0, verbose=0, say=print,
          scope=contextlib.nullcontext):
    """Trains the student `epochs` epochs under each setting but the first, scoring each on validation.

    Every probe builds its student with `student_fn()` right after
    `keras.utils.set_random_seed(seed)` (the same initial weights) and is
    scored by its best epoch's validation accuracy.

    Args:
        teacher: the trained teacher (or a list of them).
        student_fn: a function returning a new, built student.
        train_data: the distillation batches (cached teacher outputs make a
            probe cheap), repeated when `steps_per_epoch` is given.
        validation_data: a `tf.data.Dataset` of `(x, y)` batches.
        settings: `[{"alpha", "temperature"}]` from `candidates`; the first
            (the default) is not probed: it is trained in full anyway.
        epochs: epochs of each probe (`probe_epochs`).
        learning_rate: a float, or a function of the probe's epochs
            returning a rate or a `LearningRateSchedule` fitted to them.
        distillation_losses: the losses, as `Distiller.compile` takes them.
        augmentation: the Distiller's augmentation layer, if any.
        steps_per_epoch: steps of each epoch of a repeated `train_data`.
        seed: seed of the initial weights.
        verbose: Keras verbosity of each fit.
        say: where progress lines go.
        scope: a function returning the context each probe's Distiller is
            built and compiled in (a `tf.distribute` strategy's `scope`).

    Returns:
        A `Probe`.

    Example:

    ```python
    settings = candidates()
    found = probe(teacher, lambda: models.build("convnet_student", (28, 28, 1), 10), cached.repeat(), val_ds,
                  settings, epochs=3, steps_per_epoch=steps)
    print(found.table(), found.challenger)
    ```
    """
    if len(settings) < 2 or epochs < 1:
        raise ValueError(f"probe needs at least two settings and epochs >= 1; got {len(settings)} and {epochs!r}.")
    start = time.perf_counter()
    rows = [{**settings[0], "probe": None, "final": None}]
    for index, setting in enumerate(settings[1:]):
        with scope():
            distiller = _distiller(teacher, student_fn, setting, epochs, learning_rate, distillation_losses, augmentation, seed)
        history = distiller.fit(
            train_data, epochs=epochs, steps_per_epoch=steps_per_epoch, validation_data=validation_data,
            shuffle=False, verbose=verbose,
        )
        score = float(max(history.history["val_accuracy"]))
        rows.append({**setting, "probe": score, "final": None})
        if index == 0:
            spent = time.perf_counter() - start
            say(f"  first probe: {spent:.1f} s; the other {len(settings) - 2} need about {spent * (len(settings) - 2):.0f} s")
    return Probe(rows, epochs, time.perf_counter() - start)


def _distiller(teacher, student_fn, setting, epochs, learning_rate, distillation_losses, augmentation, seed):
    """A probe's Distiller, compiled: the student built after the seed, the rate fitted to the probe's epochs."""
    keras.utils.set_random_seed(seed)
    fitted = callable(learning_rate) and not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule)
    distiller = Distiller(teacher, student_fn(), augmentation=augmentation)
    distiller.compile(
        optimizer=keras.optimizers.Adam(learning_rate(epochs) if fitted else learning_rate),
        metrics=["accuracy"],
        distillation_loss_fn=distillation_losses,
        alpha=setting["alpha"],
        temperature=setting["temperature"],
    )
    return distiller
