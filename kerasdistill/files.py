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
        fsync_folder(folder)
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


def _take_lock(path, create=True):
    """Opens the lock file `path` and takes its lock without waiting.

    A lock file is unlinked by its holder while still held, so a process
    that opened it just before may lock a file no path names any more; the
    lock counts only when `path` still names the locked file, else it is
    taken again on the file `path` names now.

    Returns:
        `(handle, None)` holding the lock, `(None, holder)` naming the pid
        of the live process holding it, or `(None, None)` when `path` does
        not exist and `create` is False.
    """
    import fcntl

    # A lock file that is a symbolic link is refused (ELOOP): writing the pid must not reach another file.
    flags = (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY) | getattr(os, "O_NOFOLLOW", 0)
    while True:
        try:
            handle = os.fdopen(os.open(path, flags, 0o644), "r+" if create else "r", encoding="utf-8")
        except FileNotFoundError:
            if create:
                raise
            return None, None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except BlockingIOError:
            locked = False
        try:
            current = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            current = False
        if current and locked:
            return handle, None
        if current:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            return None, holder
        handle.close()


def lock_holder(path):
    """The pid holding the lock file `path` (a live run), or None when no live process holds it."""
    handle, holder = _take_lock(path, create=False)
    if handle is not None:
        handle.close()
    return holder


@contextlib.contextmanager
def exclusive_lock(path, what, remove=False):
    """Holds an exclusive lock on `path` (a lock file) while the block runs.

    The kernel drops the lock when the holder dies, even by SIGKILL, so a
    stale lock file of a dead run is simply taken over. The holder's pid is
    written in the file, for the message a second process gets.

    Args:
        path: the lock file (created if missing).
        what: what the lock guards, for the message.
        remove: delete the lock file on exit, while still holding it (a
            process that opened it meanwhile then locks the next one).

    Raises:
        RunInProgressError: naming the live process, when another holds it.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handle, holder = _take_lock(path)
    if handle is None:
        raise RunInProgressError(
            errno.EBUSY,
            f"{what} is in use by another kerasdistill process (pid {holder}, still running). Wait for it "
            "to finish, stop it, or start this one with another --name or --output.",
        )
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        if remove:
            with contextlib.suppress(OSError):
                os.remove(path)
        handle.close()


def fsync_folder(folder):
    """Makes the renames and deletions in `folder` durable (a crash cannot undo them).

    POSIX only: Windows has no folder handle to flush.
    """
    if os.name == "nt":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        # Some file systems cannot flush a folder; their renames are as durable as they get.
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_folder(path, overwrite=False):
    """Yields a temporary folder to fill; renames it to `path` on success.

    Used for artifacts that are folders (`tf.data.Dataset.save`). An existing
    folder at `path` is replaced only with `overwrite=True`, and only after
    the new one is complete. A folder cannot be swapped in one rename, so
    the complete new folder is first renamed `.<name>.<pid>-<id>.new`, the
    old one `.<name>.<pid>-<id>.old`, then the new one into place: a kill at
    any instant leaves the old or the new folder under `path` or under one
    of those names, and `recover_folder` (called here before writing) puts
    it back.

    Example:

    ```python
    with atomic_folder("export/teacher-cache") as tmp:
        dataset.save(tmp)
    ```
    """
    path = os.path.abspath(os.fspath(path))
    parent = check_writable_folder(os.path.dirname(path))
    recover_folder(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} already exists. Pass overwrite=True to replace it, or choose another path.")
    stem = os.path.join(parent, f".{os.path.basename(path)}.{os.getpid()}-{uuid.uuid4().hex[:8]}")
    temporary, complete, retired = stem + ".tmp", stem + ".new", stem + ".old"
    os.makedirs(temporary)
    try:
        yield temporary
        _fsync_tree(temporary)
        os.replace(temporary, complete)
        fsync_folder(parent)
        if os.path.exists(path):
            os.replace(path, retired)
            fsync_folder(parent)
        os.replace(complete, path)
        fsync_folder(parent)
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        if not os.path.exists(path) and os.path.isdir(retired):
            os.replace(retired, path)  # the new folder failed to take its place: the old one goes back
        for leftover in (temporary, complete):
            shutil.rmtree(leftover, ignore_errors=True)


def recover_folder(path):
    """Puts back, or deletes, what `atomic_folder` writers that were killed left beside `path`.

    When `path` is missing, a complete new folder (else the old one) takes
    its name again; every other leftover of a writer whose process is gone
    is deleted.

    Returns:
        The leftovers' names, each restored or deleted.
    """
    path = os.path.abspath(os.fspath(path))
    parent, name = os.path.split(path)
    leftovers = {"new": [], "old": [], "tmp": []}
    for entry in sorted(os.listdir(parent)) if os.path.isdir(parent) else []:
        if not entry.startswith(f".{name}."):
            continue
        writer, _, kind = entry[len(name) + 2 :].partition(".")
        pid, _, tag = writer.partition("-")
        if kind in leftovers and pid.isdigit() and len(tag) == 8 and int(pid) != os.getpid() and not _alive(int(pid)):
            leftovers[kind].append(entry)
    for kind in ("new", "old", "tmp"):
        for entry in leftovers[kind]:
            if kind != "tmp" and not os.path.exists(path):
                os.replace(os.path.join(parent, entry), path)
                fsync_folder(parent)
            else:
                shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)
    return leftovers["new"] + leftovers["old"] + leftovers["tmp"]


def _fsync_tree(folder):
    """Flushes every file under `folder` to disk (before a rename publishes them)."""
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), "rb+") as handle:
                os.fsync(handle.fileno())


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
