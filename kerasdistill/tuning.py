"""Automatic choice of temperature, alpha and method, always against scratch.

Distillation's gain depends on its settings: on small data a common setting
can land below the same student trained from scratch. `tune` searches the
settings with KerasTuner within a budget of trials and epochs, trains the
scratch baseline with the same budget, and says whether distillation beat it.
"""

import dataclasses
import tempfile

from kerasdistill import losses as losses_lib
from kerasdistill.backend import keras
from kerasdistill.defaults import MAX_TEMPERATURE
from kerasdistill.distiller import Distiller
from kerasdistill.ranges import describe, in_range
from kerasdistill.tables import format_table
from kerasdistill.callbacks import BestEpoch

# The method of the scratch row, and of the search's answer when no trial beat scratch.
LABELS_ONLY_METHOD = "labels only"

TRIAL_COLUMNS = [
    ("trial", "trial", None),
    ("method", "method", None),
    ("temperature", "T", ".3g"),
    ("alpha", "alpha", ".3g"),
    ("val_accuracy", "val accuracy", ".4f"),
]


@dataclasses.dataclass
class TuneResult:
    """What `tune` found.

    Attributes:
        best: the best configuration, `{"method", "temperature", "alpha"}`;
            `{"method": "labels only", "alpha": 1.0}` when no trial beat the
            scratch student on the validation data.
        student: the best trial's trained student, or the scratch student
            when no trial beat it (`tune` never returns a distilled student
            that lost to scratch on the data it selects on).
        trials: one dict per trial (`trial`, `method`, `temperature`,
            `alpha`, `val_accuracy`), then the scratch baseline's row.
        best_accuracy: the best trial's validation accuracy.
        scratch_accuracy: the scratch student's validation accuracy.
        history: the per-epoch logs (`loss`, `accuracy`, `val_accuracy`,
            ...) of the returned student's training.
    """

    best: dict
    student: object
    trials: list
    best_accuracy: float
    scratch_accuracy: float
    history: dict = dataclasses.field(default_factory=dict)

    @property
    def gain(self):
        """Validation accuracy of the best distilled student minus scratch's."""
        return self.best_accuracy - self.scratch_accuracy

    @property
    def verdict(self):
        """One sentence: did distillation beat the scratch baseline, by how much."""
        points = 100 * self.gain
        if points > 0:
            return (
                f"Tuning (validation split): the best trial beat the scratch student by {points:.2f} points "
                f"({self.best_accuracy:.4f} vs {self.scratch_accuracy:.4f})."
            )
        return (
            f"Tuning (validation split): no trial beat the scratch student ({points:+.2f} points, "
            f"{self.best_accuracy:.4f} vs {self.scratch_accuracy:.4f}); the scratch student is returned. Widen the "
            "search, or give the teacher unlabeled images to teach on (data.labeled_size, data.unlabeled_path)."
        )

    def table(self):
        """The trials and the scratch row as a text table."""
        return format_table(self.trials, TRIAL_COLUMNS)


def check_space(name, value, low, high, low_open):
    """A search space as `tune` takes it: a `(low, high)` range or a list of values, each in bounds."""

    def valid(x):
        return in_range(x, low, high, low_open)

    bounds = describe(low, high, low_open)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if isinstance(value, tuple):
        if len(value) != 2 or not all(valid(v) for v in value) or value[0] >= value[1]:
            raise ValueError(f"{name} as a range is (low, high) with low < high, both {bounds}; got {value!r}.")
        return value
    if not isinstance(value, list) or not value:
        raise ValueError(f"{name} must be a (low, high) range or a non-empty list of values {bounds}; got {value!r}.")
    if not all(valid(v) for v in value):
        raise ValueError(f"Every {name} must be {bounds}; got {value!r}.")
    return [float(v) for v in value]


def check_methods(methods):
    """The tuned methods: names of registered losses on the outputs."""
    methods = [methods] if isinstance(methods, str) else methods
    if not isinstance(methods, (list, tuple)) or not methods:
        raise ValueError(f"methods must be a non-empty list of loss names ({', '.join(losses_lib.names())}); got {methods!r}.")
    for method in methods:
        if not isinstance(method, str):
            raise ValueError(f"methods are loss names; got {method!r}.")
        loss = losses_lib.get(method)
        if loss.pairs:
            raise ValueError(f"'{method}' compares layer pairs, which differ per model; tune methods on the outputs.")
    return list(methods)


def _hyperparameter(hp, name, space, log):
    if isinstance(space, tuple):
        return hp.Float(name, space[0], space[1], sampling="log" if log else "linear")
    return hp.Choice(name, space) if len(space) > 1 else hp.Fixed(name, space[0])


def tune(
    teacher,
    student_fn,
    train_data,
    validation_data,
    temperature=(1.0, 10.0),
    alpha=(0.0, 1.0),
    methods=("soft_target_kl",),
    max_trials=6,
    epochs=3,
    learning_rate=1e-3,
    seed=0,
    directory=None,
    verbose=0,
    scratch=None,
    steps_per_epoch=None,
    scratch_data=None,
):
    """Searches distillation settings with KerasTuner and compares with scratch.

    Every trial and the scratch baseline build their student with
    `student_fn()` right after `keras.utils.set_random_seed(seed)`: the same
    initial weights, so trials are comparable and the search reproducible.
    The score is validation accuracy.

    Args:
        teacher: the trained teacher (a `keras.Model`, or a list of them).
        student_fn: a function returning a new, built student.
        train_data: a `tf.data.Dataset` of `(x, y)` batches.
        validation_data: a `tf.data.Dataset` of `(x, y)` batches.
        temperature: a `(low, high)` range (sampled on a log scale) or a list
            of values, all > 0.
        alpha: a `(low, high)` range or a list of values in [0, 1] (the label
            loss weight).
        methods: registered loss names to choose from (output losses:
            soft_target_kl, logit_mse, dkd, rkd).
        max_trials: the number of settings tried.
        epochs: epochs per trial, and for the scratch baseline.
        learning_rate: Adam learning rate, for trials and scratch alike: a
            float, or a `keras.optimizers.schedules.LearningRateSchedule`
            (e.g. the run's warm-up and cosine decay,
            `kerasdistill.schedules.learning_rate`).
        seed: seed of the initial weights and of the search.
        directory: where KerasTuner keeps its trials (default: a temporary
            folder, deleted afterwards).
        verbose: Keras verbosity of each fit.
        steps_per_epoch: steps of each epoch, for a repeated `train_data`
            (a transfer set); None: one pass over it.
        scratch: the baseline already trained on the labels alone with the
            same budget, as `(student, history)` (`history`: its fit logs with
            `val_accuracy` per epoch), so that a caller that reports a
            scratch student compares with that one. It is scored at its last
            epoch, the weights it holds; None trains one here, scored and
            returned at its best epoch, as the trials are.
        scratch_data: the `(x, y)` batches the scratch baseline trains on
            (`steps_per_epoch` steps an epoch: repeat them when needed);
            None: `train_data`. Needed when `train_data` is a transfer set
            (`data.transfer_set`) or cached teacher outputs: the baseline
            learns from the labeled samples alone.

    Returns:
        A `TuneResult`.

    Example:

    ```python
    result = tune(teacher, lambda: models.build("convnet_student", (28, 28, 1), 10),
                  train_ds, val_ds, max_trials=4, epochs=2)
    print(result.table()); print(result.verdict)
    ```
    """
    temperature, alpha, methods = _check_arguments(student_fn, temperature, alpha, methods, max_trials, epochs)
    scratch_data = _scratch_data(train_data, scratch_data, scratch)

    def new_student():
        keras.utils.set_random_seed(seed)
        return _checked_student(student_fn())

    def build(hp):
        distiller = Distiller(teacher, new_student())
        distiller.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            metrics=["accuracy"],
            distillation_loss_fn=hp.Choice("method", methods) if len(methods) > 1 else hp.Fixed("method", methods[0]),
            alpha=_hyperparameter(hp, "alpha", alpha, log=False),
            temperature=_hyperparameter(hp, "temperature", temperature, log=True),
        )
        return distiller

    search = dict(max_trials=max_trials, seed=seed, directory=directory, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=verbose)
    rows, best_hp, best_student, best_history = _random_search(build, train_data, validation_data, **search)
    scratch, scratch_accuracy = _baseline(
        scratch, lambda: _train_scratch(new_student(), scratch_data, validation_data, epochs, steps_per_epoch, learning_rate, verbose)
    )
    rows.append({"trial": "scratch", "method": LABELS_ONLY_METHOD, "temperature": None, "alpha": 1.0, "val_accuracy": scratch_accuracy})
    best = {name: best_hp.get(name) for name in ("method", "temperature", "alpha")}
    best_accuracy = max(r["val_accuracy"] for r in rows[:-1])
    if best_accuracy <= scratch_accuracy:
        # No distillation (alpha = 1) is part of the space: a search whose
        # best trial does not beat the scratch student returns that student.
        best = {"method": LABELS_ONLY_METHOD, "temperature": None, "alpha": 1.0}
        return TuneResult(best, scratch[0], rows, float(best_accuracy), scratch_accuracy, dict(scratch[1]))
    return TuneResult(best, best_student, rows, float(best_accuracy), scratch_accuracy, best_history)


def _random_search(build, train_data, validation_data, max_trials, seed, directory, epochs, steps_per_epoch, verbose):
    """KerasTuner's random search over `build(hp)`: `(rows, best hyperparameters, best student, its history)`."""
    import keras_tuner

    with tempfile.TemporaryDirectory(prefix="kerasdistill-tune-") as scratch_dir:
        tuner = keras_tuner.RandomSearch(
            build, objective=keras_tuner.Objective("val_accuracy", direction="max"), max_trials=max_trials, seed=seed,
            directory=directory or scratch_dir, project_name="kerasdistill", overwrite=True,
        )
        tuner.search(
            train_data, validation_data=validation_data, epochs=epochs, steps_per_epoch=steps_per_epoch,
            verbose=verbose, shuffle=False,
        )
        best_trial = tuner.oracle.get_best_trials(1)[0]
        return (
            _trial_rows(tuner), tuner.get_best_hyperparameters(1)[0], tuner.get_best_models(1)[0].student,
            _trial_history(best_trial),
        )


def _trial_rows(tuner):
    """One row per finished trial: its method, temperature, alpha and validation accuracy."""
    trials = sorted(tuner.oracle.trials.values(), key=lambda t: t.trial_id)
    rows = [
        {
            "trial": trial.trial_id,
            "method": trial.hyperparameters.get("method"),
            "temperature": trial.hyperparameters.get("temperature"),
            "alpha": trial.hyperparameters.get("alpha"),
            "val_accuracy": trial.score,
        }
        for trial in trials
        if trial.score is not None
    ]
    if not rows:
        raise RuntimeError("No trial finished; run with verbose=1 to see why.")
    return rows


def _check_arguments(student_fn, temperature, alpha, methods, max_trials, epochs):
    """`tune`'s arguments checked before any trial: the spaces and methods, as `tune` uses them."""
    if not in_range(max_trials, 1, whole=True) or not in_range(epochs, 1, whole=True):
        raise ValueError(f"max_trials and epochs must be whole numbers >= 1; got {max_trials!r} and {epochs!r}.")
    if not callable(student_fn):
        raise TypeError("student_fn must be a function that returns a new student model, e.g. lambda: build_student().")
    return (
        check_space("temperature", temperature, 0.0, MAX_TEMPERATURE, low_open=True),
        check_space("alpha", alpha, 0.0, 1.0, low_open=False),
        check_methods(methods),
    )


def _trial_history(trial):
    """A trial's per-epoch logs, as `fit` would return them (`{name: [value per epoch]}`)."""
    tracker = trial.metrics
    return {
        name: [float(observation.mean()) for observation in tracker.get_history(name)]
        for name in sorted(tracker.metrics)
    }


def _checked_student(student):
    if not isinstance(student, keras.Model):
        raise TypeError(f"student_fn must return a keras.Model; it returned {type(student).__name__}.")
    return student


def _scratch_data(train_data, scratch_data, scratch):
    """The batches the scratch baseline trains on (none when it is given), refused before any trial trains
    when their targets are not labels alone."""
    if scratch is not None:
        return None
    data = train_data if scratch_data is None else scratch_data
    spec = getattr(data, "element_spec", None)
    if isinstance(spec, tuple) and len(spec) > 1 and isinstance(spec[1], dict):
        given = "train_data" if scratch_data is None else "scratch_data"
        raise ValueError(
            f"{given} holds batches whose targets are {{{', '.join(sorted(spec[1]))}}} (a transfer set or cached "
            "teacher outputs), but the scratch baseline trains on the labels alone. Pass "
            "scratch_data=<a dataset of (x, y) batches of the labeled samples>, e.g. "
            "data.to_dataset(x_labeled, y_labeled, shuffle=True).repeat() with steps_per_epoch."
        )
    return data


def _baseline(scratch, train):
    """`(scratch, validation accuracy)`: a given baseline at its last epoch (the weights it holds), or one
    `train()` returns, restored to its best epoch and scored there."""
    if scratch is not None:
        return scratch, float(scratch[1]["val_accuracy"][-1])
    scratch = train()
    return scratch, float(max(scratch[1]["val_accuracy"]))


def _train_scratch(model, train_data, validation_data, epochs, steps_per_epoch, learning_rate, verbose):
    """The baseline: `model` trained on the labels alone with the trials' budget; `(model, history)`.

    The model returned holds its best epoch's weights (validation accuracy),
    the epoch it is scored at, as KerasTuner keeps each trial's best epoch.
    """
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=losses_lib.CrossEntropy(), metrics=["accuracy"])
    best_epoch = BestEpoch(keep=model)
    history = model.fit(
        train_data, validation_data=validation_data, epochs=epochs, steps_per_epoch=steps_per_epoch, verbose=verbose,
        shuffle=False, callbacks=[best_epoch],
    )
    return model, history.history
