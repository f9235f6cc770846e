"""Callbacks that keep long runs safe: crash-proof backups, a stop at non-finite losses."""

import contextlib
import hashlib
import json
import math
import os
import threading
import time

import numpy as np

from kerasdistill.backend import keras
from kerasdistill.compat import set_initial_epoch
from kerasdistill.distribute import is_chief
from kerasdistill.files import atomic_path, write_json

STATE_FILE = "training_state.json"
# The best epoch's weights and score, beside a BackupAndRestore backup (BestEpoch).
BEST_WEIGHTS = "best_epoch.npz"
BEST_STATE = "best_epoch.json"


class BackupAndRestore(keras.callbacks.Callback):
    """Backs up training at every epoch end and resumes from it after a crash.

    Same use as `keras.callbacks.BackupAndRestore`, but safe against a kill
    at any instant and under several workers:

    - the weights go to a new file, written under a temporary name and
      renamed into place; then a small state file naming that weights file
      and the epoch is replaced atomically. A crash at any point leaves a
      state file that names complete weights of the epoch it records.
      (Keras' own callback rewrites one weights file in place, then the
      epoch: a kill in between resumes from mismatched or truncated files.)
    - with `MultiWorkerMirroredStrategy` only the chief writes (the replicas
      hold the same weights); every worker restores from the chief's backup,
      so `backup_dir` must be on storage all workers see.

    Restarting the same `fit` call with the same `backup_dir` resumes at the
    first unfinished epoch, with the weights and optimizer state of the last
    finished one. The backup is deleted when `fit` completes, unless
    `delete_on_success=False`.

    Args:
        backup_dir: folder of the backup (created if needed).
        delete_on_success: remove the backup once training completes.

    Returns:
        A `keras.callbacks.Callback`.

    Example:

    ```python
    distiller.fit(train_ds, epochs=50, callbacks=[BackupAndRestore("runs/backup")])
    # killed at epoch 31? run the same line again: it goes on from epoch 31.
    ```
    """

    def __init__(self, backup_dir, delete_on_success=True):
        super().__init__()
        if not backup_dir:
            raise ValueError("BackupAndRestore needs a backup_dir, e.g. 'runs/backup'.")
        self.backup_dir = os.path.abspath(os.fspath(backup_dir))
        self.delete_on_success = delete_on_success
        self.restored_epoch = 0
        # The whole training's history and time, the epochs before a restore included.
        self.history = {}
        self.restored_seconds = 0.0

    @property
    def state_path(self):
        return os.path.join(self.backup_dir, STATE_FILE)

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()
        state = read_state(self.backup_dir)
        if state is None:
            return
        model = self.model
        fingerprint = architecture_fingerprint(model)
        if state.get("architecture") not in (None, fingerprint):
            raise ValueError(
                f"The backup in {self.backup_dir} was written while training another model (its weights have "
                f"other names or shapes than '{model.name}''s), so it cannot resume this one. Delete that folder, "
                "or give this training another backup_dir."
            )
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(os.path.join(self.backup_dir, state["weights"]))
        self.restored_epoch = state["epoch"]
        self.history = {key: list(values) for key, values in state.get("history", {}).items()}
        self.restored_seconds = float(state.get("seconds", 0.0))
        set_initial_epoch(model, state["epoch"])

    def on_epoch_begin(self, epoch, logs=None):
        # fit has read the restored epoch; a later fit of the same model must
        # not start there again.
        set_initial_epoch(self.model, None)

    @property
    def seconds(self):
        """Training time so far, the time before a restore included."""
        return self.restored_seconds + time.perf_counter() - getattr(self, "_start", time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            with contextlib.suppress(TypeError, ValueError):
                self.history.setdefault(key, []).append(float(value))
        if not is_chief(self.model.distribute_strategy):
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        weights = f"epoch-{epoch + 1:05d}.weights.h5"
        with atomic_path(os.path.join(self.backup_dir, weights)) as temporary:
            self.model.save_weights(temporary)
        write_json(
            self.state_path,
            {
                "epoch": epoch + 1,
                "weights": weights,
                "architecture": architecture_fingerprint(self.model),
                "history": self.history,
                "seconds": self.seconds,
            },
        )
        for name in os.listdir(self.backup_dir):
            if name.endswith(".weights.h5") and name != weights:
                os.remove(os.path.join(self.backup_dir, name))

    def on_train_end(self, logs=None):
        if self.delete_on_success and is_chief(self.model.distribute_strategy) and os.path.isdir(self.backup_dir):
            for name in os.listdir(self.backup_dir):
                if name == STATE_FILE or name.endswith(".weights.h5"):
                    os.remove(os.path.join(self.backup_dir, name))
            if not os.listdir(self.backup_dir):
                os.rmdir(self.backup_dir)


class BestEpoch(keras.callbacks.Callback):
    """Keeps the epoch with the best validation score: stops when it stops improving, then restores its weights.

    Early stopping with the best weights restored, as
    `keras.callbacks.EarlyStopping(restore_best_weights=True)`, with three
    differences that a long run needs: the weights restored are those of
    `keep` (the student, not a whole `Distiller` with its teachers); with
    `backup_dir` the best weights and the epoch count are backed up at every
    improvement, atomically, so a killed run resumed with `BackupAndRestore`
    keeps the best epoch seen before the kill; and the epoch kept is recorded
    (`best_epoch`, 1-based) for the report. A score must beat the best so far
    to count as an improvement: on a tie the earlier epoch stays.

    Args:
        keep: the model whose weights are kept and restored; default: the
            model being fitted.
        monitor: the validation log to maximise.
        patience: epochs without improvement before training stops; None
            never stops early (the best epoch is still restored).
        backup_dir: folder for the backup of the best weights (a resumed
            training reads it); None keeps them in memory only.
        baseline: the validation score of the weights `keep` starts from
            (e.g. a head before its backbone is fine-tuned): an epoch must
            beat it, else those starting weights are restored (`best_epoch`
            0). None: the first epoch is the first best.
        delete_on_success: remove the backup of the best weights once
            training completes. A caller that resumes a whole job (and
            removes its backups itself) passes False: a kill right after
            training then still finds the best epoch on record.

    Returns:
        A `keras.callbacks.Callback`.

    Example:

    ```python
    best = BestEpoch(keep=student, patience=5)
    distiller.fit(train_ds, epochs=50, validation_data=val_ds, callbacks=[best])
    print(best.best_epoch, best.best)  # the student now holds that epoch's weights
    ```
    """

    def __init__(self, keep=None, monitor="val_accuracy", patience=None, backup_dir=None, baseline=None, delete_on_success=True):
        super().__init__()
        if patience is not None and (isinstance(patience, bool) or not isinstance(patience, int) or patience < 1):
            raise ValueError(f"patience is a number of epochs, a whole number >= 1 (or None: never stop early); got {patience!r}.")
        self.keep, self.monitor, self.patience = keep, monitor, patience
        self.backup_dir = None if backup_dir is None else os.path.abspath(os.fspath(backup_dir))
        self.baseline = None if baseline is None else float(baseline)
        self.delete_on_success = delete_on_success
        self.best = self.best_epoch = self.weights = None
        self.stopped_epoch = None

    def _target(self):
        return self.keep if self.keep is not None else self.model

    def on_train_begin(self, logs=None):
        self.best = self.best_epoch = self.weights = self.stopped_epoch = None
        state = self._read_backup()
        if state is not None:
            self.best, self.best_epoch = state["best"], state["best_epoch"]
            with np.load(os.path.join(self.backup_dir, BEST_WEIGHTS)) as arrays:
                self.weights = [arrays[f"w{index}"] for index in range(len(arrays.files))]
        elif self.baseline is not None:
            # Backed up at once: a run killed before its first improvement
            # resumes with the weights it started from still on record.
            self.best, self.best_epoch, self.weights = self.baseline, 0, self._target().get_weights()
            self._write_backup()

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(
                f"BestEpoch monitors '{self.monitor}', which the epoch's logs lack ({', '.join(sorted(logs or {}))}). "
                "Pass validation_data to fit, and a metric of that name to compile."
            )
        value = float(value)
        if self.best is None or value > self.best:
            self.best, self.best_epoch, self.weights = value, epoch + 1, self._target().get_weights()
            self._write_backup()
        elif self.patience is not None and epoch + 1 - self.best_epoch >= self.patience:
            self.stopped_epoch = epoch + 1
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.weights is not None:
            self._target().set_weights(self.weights)
        if self.delete_on_success and self.backup_dir is not None and is_chief(self.model.distribute_strategy):
            for name in (BEST_STATE, BEST_WEIGHTS):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(self.backup_dir, name))
            with contextlib.suppress(OSError):
                os.rmdir(self.backup_dir)  # only when empty: a BackupAndRestore backup may share it

    def _write_backup(self):
        if self.backup_dir is None or not is_chief(self.model.distribute_strategy):
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        with atomic_path(os.path.join(self.backup_dir, BEST_WEIGHTS)) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, **{f"w{index}": value for index, value in enumerate(self.weights)})
        write_json(os.path.join(self.backup_dir, BEST_STATE), {"best": self.best, "best_epoch": self.best_epoch})

    def _read_backup(self):
        if self.backup_dir is None or not os.path.exists(os.path.join(self.backup_dir, BEST_STATE)):
            return None
        with open(os.path.join(self.backup_dir, BEST_STATE), encoding="utf-8") as handle:
            return json.load(handle)


def architecture_fingerprint(model):
    """A short hash of the names and shapes of a model's weights: what a backup must match."""
    layout = [(weight.path if hasattr(weight, "path") else weight.name, tuple(weight.shape)) for weight in model.weights]
    return hashlib.sha256(json.dumps(layout).encode("utf-8")).hexdigest()[:16]


def read_state(backup_dir):
    """The `{"epoch", "weights"}` state of a backup, or None when there is none."""
    path = os.path.join(backup_dir, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        try:
            state = json.load(handle)
        except ValueError:
            raise ValueError(
                f"The backup state {path} is not valid JSON; it was not written by kerasdistill. "
                "Delete the backup folder to start over."
            ) from None
    if not os.path.exists(os.path.join(backup_dir, state.get("weights", ""))):
        raise FileNotFoundError(
            f"The backup state {path} names {state.get('weights')!r}, which is missing. Delete the "
            "backup folder to start over."
        )
    return state


class NonFiniteLossError(ArithmeticError):
    """Training produced a NaN or infinite loss; raised by `StopOnNonFinite`."""


class StopOnNonFinite(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite loss, naming the term.

    Unlike `keras.callbacks.TerminateOnNaN`, it raises a `NonFiniteLossError`
    naming the epoch, the step and every non-finite term (`student_loss`,
    `distillation_loss`, a method such as `hint_relu1_relu2`), so no
    `on_train_end` runs: a `BackupAndRestore` backup of the last finished
    epoch is kept, not deleted. `Distiller.fit` adds it by default.

    Returns:
        A `keras.callbacks.Callback`.

    Example:

    ```python
    model.fit(train_ds, epochs=10, callbacks=[StopOnNonFinite()])
    ```
    """

    # Keras calls an async-safe callback's batch hooks on worker threads: the training loop never waits for
    # the loss to reach the host after each step (a sync that cost a tiny model 15 % of its epoch). Keras
    # re-raises the error in the loop, at the latest before the epoch's end callbacks run, so no backup of
    # the failed epoch is written. Hooks may finish out of order: a failing one waits until the hooks of the
    # epoch's earlier steps have run, and the error names the first failing step.
    async_safe = True

    def __init__(self):
        super().__init__()
        self._checked = threading.Condition()
        self.on_epoch_begin(0)

    def on_epoch_begin(self, epoch, logs=None):
        # The previous epoch's hooks have all run (Keras waits for them at its end).
        self.epoch, self._begun, self._done, self._first_bad = epoch, [], [], None

    def on_train_batch_begin(self, batch, logs=None):
        # Called in the training loop, in order: the steps whose end hooks a failing hook waits for.
        self._begun.append(batch)

    def on_train_batch_end(self, batch, logs=None):
        message = self._check(batch, logs or {})
        with self._checked:
            if message is not None and (self._first_bad is None or batch < self._first_bad[0]):
                self._first_bad = (batch, message)
            self._done.append(batch)
            self._checked.notify_all()
            if message is not None:
                # Steps (or groups of steps_per_execution) begun before this one: their hooks end first.
                earlier = sum(step <= batch for step in self._begun) - 1
                self._checked.wait_for(lambda: sum(step < batch for step in self._done) >= earlier)
                raise NonFiniteLossError(self._first_bad[1])

    def _check(self, batch, logs):
        """The error message for a non-finite loss in `logs`, or None."""
        loss = logs.get("loss")
        if loss is None or math.isfinite(float(loss)):
            return None
        bad = {k: float(v) for k, v in logs.items() if _is_scalar(v) and not math.isfinite(float(v))}
        fine = {k: round(float(v), 6) for k, v in logs.items() if _is_scalar(v) and math.isfinite(float(v))}
        terms = [k for k in bad if k != "loss"] or ["loss"]
        return (
            f"Training stopped at epoch {getattr(self, 'epoch', 0) + 1}, step {batch + 1}: non-finite "
            f"{', '.join(f'{k}={bad[k]}' for k in terms)} (finite: {fine or 'none'}). The weights of the "
            "last finished epoch are kept in any BackupAndRestore folder. Usual fixes: a lower learning "
            "rate, gradient clipping (optimizer clipnorm=1.0), inputs scaled to a small range, a smaller "
            "weight on the named loss, or loss scaling (mixed_float16) left on."
        )


def _is_scalar(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
