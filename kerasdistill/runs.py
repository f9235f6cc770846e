"""A run's folder, its resume state and its lock: what `kerasdistill run` owns on disk.

A run writes its results into `OUTPUT/NAME/` and keeps what it needs to
resume under `OUTPUT/.resume/<key>/`, the key being the resolved config and
the name given. `RunState` takes the lock, makes the folder, reloads
finished stages and, on a clean exit, removes the resume state;
`resume_states` and `remove_abandoned` are what `kerasdistill clean` shows
and deletes.
"""

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import time

from kerasdistill import files
from kerasdistill.backend import keras
from kerasdistill.callbacks import BackupAndRestore
from kerasdistill.distribute import is_chief, make_strategy, set_precision


def prepare_run_folder(output, name=None, overwrite=False):
    """Returns the run's folder `output/name`, refusing to reuse a non-empty one.

    Args:
        output: parent folder (created if missing).
        name: run name; default `run-YYYYmmdd-HHMMSS` (UTC).
        overwrite: allow writing into an existing non-empty run folder.
    """
    name = name or datetime.datetime.now(datetime.timezone.utc).strftime("run-%Y%m%d-%H%M%S")
    if os.sep in name or name in ("", ".", "..") or name.startswith("."):
        raise ValueError(
            f"A run name is a plain folder name, not starting with '.' (those hold kerasdistill's own state, "
            f"e.g. .resume); got {name!r}. Pick another --name, e.g. run-1."
        )
    folder = os.path.join(files.check_writable_folder(output), name)
    if os.path.isdir(folder) and os.listdir(folder) and not overwrite:
        raise FileExistsError(
            f"The run folder {folder} already holds results. Choose another --name, "
            "or pass --overwrite to replace them."
        )
    return files.check_writable_folder(folder)


def config_key(value):
    """A short, stable hash of a JSON-able value (the resume state's folder name)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class RunState:
    """One run's folder, its resume state, its lock, and the writes only the chief makes.

    The resume state lives in `OUTPUT/.resume/<key>/`, the key being the
    resolved config and the run name the user gave (none: the name stored
    at the start), so the same command finds its own state. One process
    per run folder: a second one is refused, and a resume adopts only a run
    whose process is gone. Workers of one multi-worker run share the folder
    on purpose (only the chief writes results). Used as a context manager:
    on entry it takes the lock, makes the run folder and sets the dtype
    policy and strategy; on a clean exit it removes the resume state.

    Args:
        config: the validated config.
        output: the folder under which the run's folder is made.
        name: the run's name (default: a UTC timestamp; a resumed run keeps
            the name it started with).
        overwrite: allow reusing a non-empty run folder.
        verbose: print progress (one line per epoch) and the tables.
    """

    def __init__(self, config, output, name=None, overwrite=False, verbose=True):
        self.config = config
        self.say = print if verbose else (lambda *args, **kwargs: None)
        self.fit_verbose = 2 if verbose else 0
        self.output = files.check_writable_folder(output)
        self.resume = os.path.join(self.output, ".resume", config_key({"config": config, "name": name}))
        self.resumed = os.path.exists(self._state_path)
        if self.resumed:
            with open(self._state_path, encoding="utf-8") as handle:
                name = json.load(handle)["name"]
        self.name = name or datetime.datetime.now(datetime.timezone.utc).strftime("run-%Y%m%d-%H%M%S")
        self.overwrite = overwrite
        self.folder = self.strategy = None
        self._exit = contextlib.ExitStack()

    @property
    def _state_path(self):
        return os.path.join(self.resume, "run.json")

    @property
    def _lock_path(self):
        return os.path.join(self.output, ".resume", f"{self.name}.lock")

    @property
    def is_chief(self):
        return is_chief(self.strategy)

    def __enter__(self):
        if self.config["training"]["strategy"] != "multi_worker":
            self._exit.enter_context(files.exclusive_lock(self._lock_path, f"The run '{self.name}' in {self.output}"))
        if self.resumed:
            self.say(f"Resuming the unfinished run '{self.name}' (state in {self.resume}).")
        self.folder = prepare_run_folder(self.output, self.name, self.overwrite or self.resumed)
        files.write_json(self._state_path, {"name": self.name})
        previous_policy = keras.mixed_precision.global_policy().name
        self._exit.callback(keras.mixed_precision.set_global_policy, previous_policy)
        set_precision(self.config["training"]["precision"])
        self.strategy = make_strategy(self.config["training"]["strategy"])
        return self

    def __exit__(self, error_type, error, traceback):
        # Only the chief removes the state: a worker that finishes first must
        # not delete the backup the chief is still writing. A run that failed
        # before finishing or backing up any epoch leaves nothing behind; one
        # that did keeps its state, to resume from.
        finished = error_type is None and self.is_chief
        if finished or (error_type is not None and self.is_chief and not self._has_progress()):
            shutil.rmtree(self.resume, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.remove(self._lock_path)
            if not finished and self.folder is not None:
                with contextlib.suppress(OSError):
                    os.rmdir(self.folder)  # only when empty: results of an earlier run stay
        self._exit.close()
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(self.resume))  # .resume, once no other run needs it
        return False

    def _has_progress(self):
        """Whether the resume state holds a finished stage or a backed-up epoch."""
        names = os.listdir(self.resume) if os.path.isdir(self.resume) else []
        return any(name.endswith(".keras") or name.endswith("-backup") for name in names)

    def callbacks(self, key):
        """The callbacks of stage `key`: its backup (for resuming), and TensorBoard when asked."""
        callbacks = [BackupAndRestore(os.path.join(self.resume, f"{key}-backup"))]
        if self.config["report"]["tensorboard"]:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(self.folder, "tensorboard", key)))
        return callbacks

    def stage(self, key, title, train_model):
        """Runs `train_model(callbacks) -> (model, history, extra)` once; a resumed run reloads its result.

        Returns:
            `(model, record)`; the record holds `seconds` (interrupted
            attempts included), `history` and the stage's extras.
        """
        done = os.path.join(self.resume, f"{key}.keras")
        if os.path.exists(done):
            with open(os.path.join(self.resume, f"{key}.json"), encoding="utf-8") as handle:
                record = json.load(handle)
            self.say(f"\n{title}: finished before the interruption, loaded from {done}")
            with self.strategy.scope():
                return files.load_model(done), record
        self.say(f"\n{title}")
        start = time.perf_counter()
        callbacks = self.callbacks(key)
        model, history, extra = train_model(callbacks)
        backup = callbacks[0]
        if backup.restored_epoch:
            # The epochs and time before the interruption count too.
            self.say(f"  resumed at epoch {backup.restored_epoch + 1}")
            history = backup.history
        record = {"seconds": backup.restored_seconds + time.perf_counter() - start, "history": history, **extra}
        if self.is_chief:
            files.save_model(model, done, include_optimizer=False)
            files.write_json(os.path.join(self.resume, f"{key}.json"), record)
        return model, record


def resume_states(output="export"):
    """The resume states under `output/.resume`: one dict per unfinished run.

    Returns:
        A list of `{"name", "state", "pid"}`; `pid` is the live process that
        owns the run, or None for a run that was abandoned (killed, or
        failed) and will resume when its command is given again.
    """
    root = os.path.join(output, ".resume")
    states = []
    for key in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        state = os.path.join(root, key, "run.json")
        if not os.path.isfile(state):
            continue
        try:
            with open(state, encoding="utf-8") as handle:
                name = json.load(handle)["name"]
        except (ValueError, KeyError, OSError):
            name = None
        pid = files.lock_holder(os.path.join(root, f"{name}.lock")) if name else None
        states.append({"name": name, "state": os.path.dirname(state), "pid": pid})
    return states


def remove_abandoned(output="export"):
    """Deletes the resume states of runs no live process owns; returns what was removed."""
    removed = []
    for entry in resume_states(output):
        if entry["pid"] is None:
            shutil.rmtree(entry["state"], ignore_errors=True)
            with contextlib.suppress(OSError):
                os.remove(os.path.join(output, ".resume", f"{entry['name']}.lock"))
            removed.append(entry)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.join(output, ".resume"))
    return removed
