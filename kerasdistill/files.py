"""Atomic writes: every artifact appears complete or not at all.

A file is written under a temporary name in its final folder, flushed to
disk, then renamed into place (`os.replace`, atomic on POSIX and Windows). A
crash or an exception mid-write leaves the old file (or none), never a
partial one.
"""

import contextlib
import errno
import json
import os
import shutil
import uuid


def check_writable_folder(folder):
    """Creates `folder` if needed and raises a clear error if files cannot be written there."""
    folder = os.path.abspath(os.fspath(folder))
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise PermissionError(
            f"Cannot create the output folder {folder}: {error.strerror}. Choose another "
            "folder (--output) or fix its permissions."
        ) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(
            f"The output folder {folder} is not writable. Choose another folder (--output) "
            "or fix its permissions."
        )
    return folder


@contextlib.contextmanager
def atomic_path(path, overwrite=True):
    """Yields a temporary path to write; renames it to `path` on success.

    The temporary name ends with `path`'s name (Keras insists on `.keras`
    and `.weights.h5`) and lives in the same folder, so the final rename
    never crosses file systems.

    Args:
        path: the final path.
        overwrite: whether an existing file at `path` may be replaced.

    Example:

    ```python
    with atomic_path("export/student.keras") as tmp:
        student.save(tmp)
    ```
    """
    path = os.path.abspath(os.fspath(path))
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} already exists. Pass overwrite=True to replace it, or choose another path.")
    folder = check_writable_folder(os.path.dirname(path))
    name = os.path.basename(path)
    remove_stale_temporaries(folder, name)
    temporary = os.path.join(folder, f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{name}")
    try:
        yield temporary
        if not os.path.exists(temporary):
            raise RuntimeError(f"Nothing was written to the temporary file for {path}.")
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        if error.errno != errno.ENOSPC:
            raise
        raise OSError(
            errno.ENOSPC,
            f"The disk is full: no space left to write {path}. Nothing was changed there "
            f"({'the previous file is intact' if os.path.exists(path) else 'no partial file was left'}). "
            "Free some space or choose another output folder, then run the same command again.",
        ) from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def remove_stale_temporaries(folder, name=None):
    """Deletes `.tmp-<pid>-...` leftovers of writers that were killed (their process is gone).

    Args:
        folder: where to look.
        name: only the leftovers of this target file name; None for all.

    Returns:
        The names removed.
    """
    removed = []
    for entry in os.listdir(folder):
        parts = entry.split("-", 3)
        if len(parts) < 4 or parts[0] != ".tmp" or not parts[1].isdigit() or (name and parts[3] != name):
            continue
        if int(parts[1]) == os.getpid() or _alive(int(parts[1])):
            continue
        target = os.path.join(folder, entry)
        with contextlib.suppress(OSError):
            shutil.rmtree(target) if os.path.isdir(target) else os.remove(target)
            removed.append(entry)
    return removed


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunInProgressError(OSError):
    """Another live process holds the lock of a run."""


def lock_holder(path):
    """The pid holding the lock file `path` (a live run), or None when no live process holds it."""
    import fcntl

    if not os.path.exists(path):
        return None
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            return handle.read().strip() or "unknown"
        return None


@contextlib.contextmanager
def exclusive_lock(path, what):
    """Holds an exclusive lock on `path` (a lock file) while the block runs.

    The kernel drops the lock when the holder dies, even by SIGKILL, so a
    stale lock file of a dead run is simply taken over. The holder's pid is
    written in the file, for the message a second process gets.

    Raises:
        RunInProgressError: naming the live process, when another holds it.
    """
    import fcntl

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunInProgressError(
                errno.EBUSY,
                f"{what} is in use by another kerasdistill process (pid {holder}, still running). Wait for it "
                "to finish, stop it, or start this one with another --name or --output.",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


@contextlib.contextmanager
def atomic_folder(path, overwrite=False):
    """Yields a temporary folder to fill; renames it to `path` on success.

    Used for artifacts that are folders (`tf.data.Dataset.save`). An existing
    folder at `path` is replaced only with `overwrite=True`, and only after
    the new one is complete.

    Example:

    ```python
    with atomic_folder("export/teacher-cache") as tmp:
        dataset.save(tmp)
    ```
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists. Pass overwrite=True to replace it, or choose another path.")
    parent = check_writable_folder(os.path.dirname(path))
    stem = f".{os.path.basename(path)}.{os.getpid()}-{uuid.uuid4().hex[:8]}"
    temporary = os.path.join(parent, stem + ".tmp")
    os.makedirs(temporary)
    try:
        yield temporary
        if os.path.exists(path):
            retired = os.path.join(parent, stem + ".old")
            os.replace(path, retired)
            os.replace(temporary, path)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            shutil.rmtree(temporary, ignore_errors=True)


def write_bytes(path, data, overwrite=True):
    """Writes `data` to `path` atomically and returns the path."""
    with atomic_path(path, overwrite=overwrite) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
    return os.fspath(path)


def write_json(path, obj, overwrite=True):
    """Writes `obj` as indented JSON to `path` atomically and returns the path."""
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default)
    return write_bytes(path, (text + "\n").encode("utf-8"), overwrite=overwrite)


def save_model(model, path, overwrite=True, include_optimizer=True):
    """Saves a Keras model to `path` (`.keras`) atomically and returns the path.

    With `include_optimizer=False` the file holds the architecture and weights
    only (what is deployed), without the optimizer state a compiled, trained
    model carries.
    """
    if not os.fspath(path).endswith(".keras"):
        raise ValueError(f"Save models as .keras files; got {path}.")
    if not include_optimizer and getattr(model, "optimizer", None) is not None:
        bare = type(model).from_config(model.get_config())
        bare.set_weights(model.get_weights())
        model = bare
    with atomic_path(path, overwrite=overwrite) as temporary:
        model.save(temporary)
    return os.fspath(path)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def load_model(path, safe_mode=True):
    """Loads a `.keras` model, in Keras' safe mode unless told otherwise.

    Safe mode refuses files that would run arbitrary Python code when loaded
    (a `Lambda` layer holding a Python function). Pass `safe_mode=False` only
    for files you made or trust.

    Args:
        path: the `.keras` file.
        safe_mode: refuse code-carrying layers (default).

    Returns:
        The model.

    Example:

    ```python
    student = load_model("export/run-1/student.keras")
    ```
    """
    import zipfile

    from kerasdistill.backend import keras

    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a folder, not a model file; give the path of a saved .keras model inside it.")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No model file at {path}; give the path of a saved .keras model.")
    if not path.endswith(".keras") or not zipfile.is_zipfile(path):
        raise ValueError(
            f"{path} is not a .keras model file (a .keras file is a zip archive; this one is corrupt, "
            "truncated or another format). Save models with model.save('name.keras')."
        )
    try:
        return keras.models.load_model(path, safe_mode=safe_mode)
    except (ValueError, KeyError, OSError, TypeError) as error:
        if "safe_mode" in str(error) or "arbitrary code" in str(error):
            raise ValueError(
                f"{path} holds a layer that runs arbitrary Python code when loaded (a Lambda layer), so "
                "safe mode refuses it. If you made or trust this file, load it with safe_mode=False "
                "(kerasdistill.files.load_model(path, safe_mode=False)); better, replace the Lambda by a "
                "registered layer class."
            ) from None
        first = (str(error).strip().splitlines() or [""])[0][:300]
        raise ValueError(
            f"{path} is a zip archive but not a loadable Keras model ({type(error).__name__}: {first}). It may be "
            "truncated, lack its config.json (only weights were saved), or use a custom class that must be "
            "registered with keras.saving.register_keras_serializable before loading. Save it again with "
            "model.save('name.keras')."
        ) from None
