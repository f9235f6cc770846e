"""A run's folder, its resume state and its lock: what `kerasdistill run` owns on disk.

A run writes its results into `OUTPUT/NAME/` and keeps what it needs to
resume under `OUTPUT/.resume/<key>/`, the key being the resolved config,
the name given, the data's files and the package version. `RunState` takes
the locks, makes the folder, records the splits, reloads finished stages
and, on a clean exit, removes the resume state; `resume_states` and
`remove_abandoned` are what `kerasdistill clean` shows and deletes;
`check_split_record` is how later commands on a run's files know they see
the data the run saw.
"""

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import sys
import time

import numpy as np

from kerasdistill import files
from kerasdistill import version
from kerasdistill.backend import keras
from kerasdistill.metrics import input_batches
from kerasdistill.streams import is_stream
from kerasdistill.callbacks import BackupAndRestore
from kerasdistill.distribute import is_chief, make_strategy, set_precision

# In a run folder: which samples each split held, for the later commands on its files.
SPLITS_FILE = "splits.json"
# In a resume state: the results of the run an overwriting run replaces, kept until it finishes.
REPLACED = "replaced"
# What a run folder holds from its start (splits) to its end (the report); the first marks a finished run.
RUN_RECORDS = ("report.json", "config.yaml", SPLITS_FILE)


def check_run_name(name, source=None):
    """Returns `name` if it is a plain folder name (a run's folder in the output folder), else raises.

    Args:
        name: the run name.
        source: where a stored name was read (a resume state); None for `--name`.
    """
    plain = isinstance(name, str) and name not in ("", ".", "..") and not name.startswith(".") and name.isprintable()
    if plain and os.sep not in name and not (os.altsep and os.altsep in name):
        return name
    if source:
        raise ValueError(
            f"The resume state {source} names the run {name!r}, which is not a plain folder name: kerasdistill "
            "did not write it. Delete that state (kerasdistill clean --remove), then run again."
        )
    raise ValueError(
        f"A run name is a plain folder name of printable characters, not starting with '.' (those hold "
        f"kerasdistill's own state, e.g. .resume); got {name!r}. Pick another --name, e.g. run-1."
    )


def prepare_run_folder(output, name=None, overwrite=False):
    """Returns the run's folder `output/name`, refusing to reuse a non-empty one.

    Args:
        output: parent folder (created if missing).
        name: run name; default `run-YYYYmmdd-HHMMSS` (UTC).
        overwrite: allow writing into an existing non-empty run folder.
    """
    name = check_run_name(name or _timestamp())
    folder = os.path.join(files.check_writable_folder(output), name)
    if os.path.isdir(folder) and os.listdir(folder) and not overwrite:
        raise FileExistsError(
            f"The run folder {folder} already holds results. Choose another --name, "
            "or pass --overwrite to replace them."
        )
    return files.check_writable_folder(folder)


def _timestamp():
    return datetime.datetime.now(datetime.timezone.utc).strftime("run-%Y%m%d-%H%M%S")


def config_key(value):
    """A short, stable hash of a JSON-able value (the resume state's folder name)."""
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# Folders of more files are recorded by one digest of names, sizes and times (the resume key stays small).
MAX_LISTED_FILES = 10_000


def _listing_digest(paths):
    digest = hashlib.sha256()
    for full in paths:
        with contextlib.suppress(OSError):
            info = os.stat(full)
            digest.update(f"{full}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _data_paths(data_config):
    paths = [data_config["path"], data_config["unlabeled_path"]]
    if data_config["source"] == "tfds":
        root = data_config["data_dir"] or os.environ.get("TFDS_DATA_DIR") or os.path.join("~", "tensorflow_datasets")
        paths.append(os.path.join(os.path.expanduser(root), data_config["name"]))
    return [path for path in paths if path]


def model_files(config):
    """The saved models and weights files a config names, each with its size and modification time.

    A stage finished with a teacher or student file must not be resumed
    after that file was replaced: the resume key holds these.
    """
    listing = {}
    for section in ("teacher", "student"):
        for value in (config[section]["model"], config[section]["weights"]):
            if isinstance(value, str) and os.path.isfile(value):
                info = os.stat(value)
                listing[os.path.abspath(value)] = [info.st_size, info.st_mtime_ns]
    return listing


def data_files(data_config):
    """The files a config's data section names, each with its size and modification time.

    The embedded digits are not listed: they ship with the package (its
    version stands for them).

    Returns:
        `{path: {name: [size, mtime_ns]}}`, the names relative to the path
        (a file is its own one entry).
    """
    listing = {}
    for path in _data_paths(data_config):
        found = [path] if os.path.isfile(path) else []
        for root, folders, names in os.walk(path):
            folders.sort()
            found += [os.path.join(root, name) for name in sorted(names)]
        if len(found) > MAX_LISTED_FILES:
            # A large folder (a streamed transfer set) is recorded by one digest of its listing, not file by file.
            listing[path] = {"*": [len(found), _listing_digest(found)]}
            continue
        entries = {}
        for full in found:
            with contextlib.suppress(OSError):
                info = os.stat(full)
                name = os.path.basename(full) if full == path else os.path.relpath(full, path)
                entries[name.replace(os.sep, "/")] = [info.st_size, info.st_mtime_ns]
        listing[path] = entries
    return listing


def _digest(*arrays):
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode("utf-8"))
        digest.update(array.data)
    return digest.hexdigest()


def _split_digest(x, y):
    """A labeled split's hash: of its pixels and labels, or of a stream's files (their bytes, not decoded: a copy of
    the folder is the same data) and the labels."""
    if not is_stream(x):
        return _digest(x, y)
    return hashlib.sha256((x.content_digest() + _digest(y)).encode("utf-8")).hexdigest()


def split_record(splits, data_config, parts=("train", "val", "test", "unlabeled")):
    """What a run records of its data: each split's size and a hash of its samples (of `parts` only: hashing a
    streamed split reads all its files), the class names, the files."""
    labeled = {part: split for part, split in (("train", splits.train), ("val", splits.val), ("test", splits.test)) if part in parts}
    record = {part: {"samples": len(x), "sha256": _split_digest(x, y)} for part, (x, y) in labeled.items()}
    if splits.unlabeled is not None and "unlabeled" in parts:
        # A stream is recorded by its digest (a folder's paths and sizes): hashing its pixels would read it all.
        unlabeled = splits.unlabeled
        record["unlabeled"] = {"samples": len(unlabeled), "sha256": unlabeled.digest() if is_stream(unlabeled) else _digest(unlabeled)}
    record["class_names"] = list(splits.class_names) if splits.class_names else None
    record["files"] = data_files(data_config)
    # How the labeled images were read (data.stream: auto decides by size): read again the same way.
    record["streamed"] = is_stream(splits.train.x)
    return record


def recorded_streaming(folder):
    """Whether the run in `folder` streamed its labeled images (`data.stream`), as its split record says; False for
    a run recorded before runs could stream them, None for a run without a record."""
    path = os.path.join(folder, SPLITS_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            return bool(json.load(handle).get("streamed", False))
    except (ValueError, AttributeError):
        return None  # a damaged record: check_split_record names it


def check_transfer_set(splits):
    """Refuses unlabeled images identical to validation or test images (the test set leaking into training).

    The images are compared by the bytes of their decoded pixels (as
    float32), so the same picture read from another file still matches.

    Raises:
        ValueError: naming how many images of which split the transfer set holds.
    """
    if splits.unlabeled is None or not len(splits.unlabeled):
        return
    streamed = is_stream(splits.unlabeled)
    # Decoded image files are rounded to uint8 pixels: the measured images are compared as they are and rounded.
    measured = {
        part: [pair for batch in input_batches(split.x, 256) for pair in _measured_hashes(batch, streamed)]
        for part, split in (("test", splits.test), ("validation", splits.val))
    }
    wanted = {digest for pairs in measured.values() for pair in pairs for digest in pair}
    # Only the measured images' hashes are held; the transfer set's are looked up as they are read.
    held = {digest for digest in (_stream_hashes(splits.unlabeled) if streamed else _sample_hashes(splits.unlabeled)) if digest in wanted}
    sizes = {"test": len(splits.test.x), "validation": len(splits.val.x)}
    found = [
        f"{count} of the {sizes[part]} {part} images"
        for part, pairs in measured.items()
        if (count := sum(exact in held or rounded in held for exact, rounded in pairs))
    ]
    if found:
        raise ValueError(
            f"The unlabeled transfer set holds {' and '.join(found)}: the models would train on the images they "
            "are measured on, and the accuracies would be too high. Remove those images from the unlabeled "
            "folder or file (data.unlabeled_path), or point it at images that hold none of the labeled data."
        )


def _measured_hashes(images, rounded):
    """`(exact, rounded)` hash pairs of measured images; the rounded hash is the exact one unless `rounded`."""
    exact = _sample_hashes(images)
    return zip(exact, _sample_hashes(np.clip(np.round(images), 0, 255)) if rounded else exact)


def _stream_hashes(stream):
    """The hashes of a stream's images, read in one pass (which also finds a file that cannot be read)."""
    for batch in stream.batches(256):
        yield from _sample_hashes(batch)


def _sample_hashes(images):
    """One sha1 per image, of its pixels as float32 (the dtype every loader gives images in)."""
    return [hashlib.sha1(np.ascontiguousarray(image, dtype=np.float32).tobytes()).hexdigest() for image in images]


def check_split_record(folder, splits, data_config, parts):
    """Refuses splits re-derived from today's data when they differ from the ones the run in `folder` used.

    Args:
        folder: the run folder.
        splits: the `Splits` derived now from the data its config names.
        data_config: that config's data section.
        parts: what the caller uses: any of `"train"`, `"val"`, `"test"`,
            `"unlabeled"`, `"class_names"`.

    Returns:
        Whether the run recorded its splits (runs made before runs recorded
        them did not).

    Raises:
        ValueError: naming what changed, when a part differs.
    """
    path = os.path.join(folder, SPLITS_FILE)
    if not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8") as handle:
            recorded = json.load(handle)
        before = {part: recorded.get(part) for part in parts}
    except (ValueError, AttributeError) as error:
        raise ValueError(
            f"The run's split record {path} is damaged ({error}). Name the data to use explicitly (evaluate "
            "--data, export --calibration-data and --class-names)."
        ) from None
    now = split_record(splits, data_config, parts)
    changed = [
        f"{'the class names' if part == 'class_names' else f'the {part} split'}: {_described(part, now.get(part))} now, "
        f"{_described(part, before[part])} when it ran"
        for part in parts
        if before[part] != now.get(part)
    ]
    if changed:
        files_changed = _file_changes(recorded.get("files") or {}, now["files"]) or (
            "its files are unchanged, so they are read differently now (another kerasdistill or TensorFlow version)"
        )
        raise ValueError(
            f"The data of the run in {folder} is not the data it ran on: {'; '.join(changed)}. {files_changed}. "
            "Its splits cannot be derived again: restore that data, or name the data to use explicitly "
            "(evaluate --data, export --calibration-data and --class-names)."
        )
    return True


def _described(part, value):
    if value is None:
        return "none"
    if part == "class_names":
        return ", ".join(value)
    return f"{value['samples']} samples (hash {value['sha256'][:12]})"


def _file_changes(before, now):
    """The files added, removed and changed between two `data_files` listings, in words."""
    said = []
    for path in sorted(set(before) | set(now)):
        old, new = before.get(path, {}), now.get(path, {})
        for word, names in (
            ("added to", sorted(set(new) - set(old))),
            ("removed from", sorted(set(old) - set(new))),
            ("changed in", sorted(name for name in set(old) & set(new) if old[name] != new[name])),
        ):
            if names:
                shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
                said.append(f"{len(names)} file(s) {word} {path}: {shown}")
    return "; ".join(said)


def _key_lock(state):
    # Run names never start with '.', so no run's own lock file has this name.
    return os.path.join(os.path.dirname(state), f".{os.path.basename(state)}.lock")


def _stored_state(state_file):
    """The dict a resume state's run.json holds (empty when damaged)."""
    try:
        with open(state_file, encoding="utf-8") as handle:
            stored = json.load(handle)
    except ValueError:
        stored = None
    return stored if isinstance(stored, dict) else {}


def _stored_name(state_file):
    """The run name a resume state holds, checked as `--name` is."""
    return check_run_name(_stored_state(state_file).get("name"), state_file)


def _check_replaceable(folder):
    """Refuses to overwrite a non-empty folder that no run wrote.

    A run writes its `splits.json` first; only a folder holding it (or a
    run's `report.json`) is a run's: a folder of the user's own models or
    configs is never taken for one.
    """
    names = sorted(os.listdir(folder))
    if SPLITS_FILE not in names and not _is_report(os.path.join(folder, "report.json")):
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise FileExistsError(
            f"--overwrite replaces a run's results, but {folder} holds no run (no {SPLITS_FILE} or report.json of "
            f"kerasdistill): it holds {shown}. Choose another --name or --output; kerasdistill does not delete "
            "folders it did not write."
        )


def _is_report(path):
    """Whether `path` is a kerasdistill run's report.json."""
    try:
        with open(path, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(report, dict) and {"run_folder", "models"} <= set(report)


def _put_back(replaced, folder):
    """Moves an overwritten run's results back into `folder`; returns whether it did.

    What `folder` holds then is the partial results of the run that failed
    to replace them, and is deleted; a finished run (its report.json) stays.
    """
    if not os.path.isdir(replaced):
        return False
    if os.path.isdir(folder) and not os.path.islink(folder) and not os.path.exists(os.path.join(folder, RUN_RECORDS[0])):
        shutil.rmtree(folder, ignore_errors=True)
    if os.path.lexists(folder):
        return False
    os.replace(replaced, folder)
    files.fsync_folder(os.path.dirname(folder))
    return True


class RunState:
    """One run's folder, its resume state, its lock, and the writes only the chief makes.

    The resume state lives in `OUTPUT/.resume/<key>/`, the key being the
    resolved config, the run name the user gave (none: the name stored at
    the start), the data's files and the package version, so the same
    command on the same data finds its own state, and edited data starts
    afresh. One process per resume state and per run folder: a second one
    is refused (the state is read only under its lock), and a resume
    adopts only a run whose process is gone. Workers of one multi-worker
    run share the folder on purpose (only the chief writes results). Used
    as a context manager: on entry it takes the locks, sets the dtype
    policy and strategy and makes the run folder (with `overwrite`, the
    earlier results leave it as a whole, are deleted when this run
    finishes and go back when it fails); on a clean exit it removes the
    resume state.

    Args:
        config: the validated config.
        output: the folder under which the run's folder is made.
        name: the run's name (default: a UTC timestamp; a resumed run keeps
            the name it started with).
        overwrite: allow replacing the results in a non-empty run folder.
        verbose: print progress (one line per epoch) and the tables.
    """

    def __init__(self, config, output, name=None, overwrite=False, verbose=True):
        self.config = config
        self.say = print if verbose else (lambda *args, **kwargs: None)
        self.fit_verbose = 2 if verbose else 0
        self.output = files.check_writable_folder(output)
        self.name = check_run_name(name) if name else None
        key = {
            "config": config, "name": self.name, "data": data_files(config["data"]), "models": model_files(config),
            "version": version.__version__,
        }
        self.resume = os.path.join(self.output, ".resume", config_key(key))
        self.overwrite = overwrite
        self.resumed = self._owned = False
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

    @property
    def own_state(self):
        """The folder of the resume state this process alone writes: the state itself, or with several workers
        (which may share the output folder) this worker's sub-folder of it."""
        resolver = getattr(self.strategy, "cluster_resolver", None)
        if self.config["training"]["strategy"] != "multi_worker" or resolver is None:
            return self.resume
        return os.path.join(self.resume, f"{resolver.task_type}-{resolver.task_id}")

    def __enter__(self):
        try:
            self._enter()
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def _enter(self):
        locking = self.config["training"]["strategy"] != "multi_worker"
        if locking:
            self._exit.enter_context(files.exclusive_lock(_key_lock(self.resume), f"The resume state {self.resume}", remove=True))
        self.resumed = os.path.exists(self._state_path)
        # A resumed overwriting run, whose failure put the earlier results back, moves them aside again.
        replaces = self.overwrite or (self.resumed and _stored_state(self._state_path).get("replaces") is True)
        if self.resumed:
            self.name = _stored_name(self._state_path)
        self.name = self.name or _timestamp()
        if locking:
            self._exit.enter_context(files.exclusive_lock(self._lock_path, f"The run '{self.name}' in {self.output}", remove=True))
        self._owned = True
        if self.resumed:
            self.say(f"Resuming the unfinished run '{self.name}' (state in {self.resume}).")
        else:
            self._say_abandoned()
        previous_policy = keras.mixed_precision.global_policy().name
        self._exit.callback(keras.mixed_precision.set_global_policy, previous_policy)
        set_precision(self.config["training"]["precision"])
        self.strategy = make_strategy(self.config["training"]["strategy"])
        folder = os.path.join(self.output, self.name)
        replaced = os.path.join(self.resume, REPLACED)
        moving = replaces and self.is_chief and os.path.isdir(folder) and os.listdir(folder) and not os.path.isdir(replaced)
        # Both refuse before any state is written.
        if not (self.overwrite or self.resumed):
            prepare_run_folder(self.output, self.name)
        elif moving and not self.resumed:
            _check_replaceable(folder)
        files.write_json(self._state_path, {"name": self.name, "replaces": bool(replaces)})
        if moving:
            # The earlier results leave as a whole (none stays beside the new
            # ones) and are deleted only once this run has finished.
            os.replace(folder, replaced)
            files.fsync_folder(self.output)
        self.folder = prepare_run_folder(self.output, self.name, overwrite=True)

    def _say_abandoned(self):
        """Names the unfinished runs of other settings in the output folder: this run starts afresh beside them."""
        others = [entry for entry in resume_states(self.output) if entry["pid"] is None and entry["state"] != self.resume]
        if others:
            names = ", ".join(sorted(f"'{entry['name']}'" for entry in others if entry["name"])) or "unnamed"
            self.say(
                f"Note: {len(others)} unfinished run(s) of other settings ({names}) keep their state in "
                f"{os.path.join(self.output, '.resume')}: this run starts afresh (the same config and command resume "
                f"one). `kerasdistill clean --output {self.output} --remove` deletes them."
            )

    def __exit__(self, error_type, error, traceback):
        # Only the chief removes the state: a worker that finishes first must
        # not delete the backup the chief is still writing. A failed run puts
        # the results it was replacing back at once (a resume moves them
        # aside again). A run that failed before finishing or backing up any
        # epoch leaves nothing behind; one that did keeps its state, to
        # resume from. A run refused its locks touches nothing.
        finished = error_type is None
        if self._owned and self.is_chief:
            keep_state = not finished and self._has_progress()
            replaced = os.path.join(self.resume, REPLACED)
            if not finished and self.folder is not None and (os.path.isdir(replaced) or not keep_state):
                # It holds this run's files only: a folder holding results was refused, or they were moved aside.
                shutil.rmtree(self.folder, ignore_errors=True)
            if not finished:
                _put_back(replaced, os.path.join(self.output, self.name))
            if not keep_state:
                shutil.rmtree(self.resume, ignore_errors=True)
        self._exit.close()
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(self.resume))  # .resume, once no other run needs it
        return False

    def record_splits(self, splits):
        """Writes what each split of the run holds into the run folder (`evaluate` and `export` check it).

        A transfer set holding validation or test images is refused first
        before anything trains.
        """
        if self.is_chief:
            files.write_json(os.path.join(self.folder, SPLITS_FILE), split_record(splits, self.config["data"]))

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
        A list of `{"name", "state", "pid"}`; `name` is None when the state
        holds no plain run name; `pid` is the live process that owns the
        run, or None for a run that was abandoned (killed, or failed) and
        will resume when its command is given again.
    """
    root = os.path.join(output, ".resume")
    states = []
    for key in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        state = os.path.join(root, key, "run.json")
        if not os.path.isfile(state):
            continue
        try:
            name = _stored_name(state)
        except (ValueError, OSError):
            name = None
        pid = files.lock_holder(_key_lock(os.path.dirname(state)))
        if pid is None and name:
            pid = files.lock_holder(os.path.join(root, f"{name}.lock"))
        states.append({"name": name, "state": os.path.dirname(state), "pid": pid})
    return states


def remove_abandoned(output="export"):
    """Deletes the resume states of runs no live process owns; returns what was removed (and kept).

    Each state is deleted under its locks (a run starting meanwhile keeps
    its own). The results an abandoned overwriting run was replacing go
    back into its folder (replacing that run's partial results); when the
    folder holds a finished run instead, the state is kept, never deleted
    with those results, and returned with `"kept"`: the path of the
    results. Nothing outside `output` is touched.
    """
    root = os.path.join(output, ".resume")
    removed = []
    for entry in resume_states(output):
        if entry["pid"] is not None:
            continue
        with contextlib.ExitStack() as held, contextlib.suppress(files.RunInProgressError):
            held.enter_context(files.exclusive_lock(_key_lock(entry["state"]), entry["state"], remove=True))
            if entry["name"]:
                held.enter_context(files.exclusive_lock(os.path.join(root, f"{entry['name']}.lock"), entry["name"], remove=True))
                _put_back(os.path.join(entry["state"], REPLACED), os.path.join(output, entry["name"]))
            if os.path.isdir(os.path.join(entry["state"], REPLACED)):
                removed.append({**entry, "kept": os.path.join(entry["state"], REPLACED)})
                continue
            shutil.rmtree(entry["state"], ignore_errors=True)
            removed.append(entry)
    with contextlib.suppress(OSError):
        os.rmdir(root)
    return removed
