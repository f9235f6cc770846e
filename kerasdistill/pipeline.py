"""The main job: teacher, distilled student and scratch student, then export.

`kerasdistill run` calls `run`. It trains (or loads) a teacher, distills a
much smaller student from it, trains the same student (same initial weights,
same epochs, same batches) from scratch, and reports parameters, size on disk,
test accuracy and training time of all three. It ends with the export stage:
the distilled student as `.tflite` files, each measured on the test set
(size, accuracy, latency, agreement with the Keras model).

A run killed at any point resumes when the same command is given again:
every finished stage is kept under `OUTPUT/.resume/<config hash>/`, and the
stage in progress restarts from its last finished epoch.
"""

import contextlib
import datetime
import hashlib
import json
import os
import shutil
import time

import numpy as np

from kerasdistill import config as config_lib
from kerasdistill import data as data_lib
from kerasdistill import export, files, models
from kerasdistill.backend import keras
from kerasdistill.callbacks import BackupAndRestore
from kerasdistill.distiller import Distiller
from kerasdistill.distribute import is_chief, make_strategy, set_precision
from kerasdistill.export.interpreter import keras_outputs
from kerasdistill.losses import CrossEntropy
from kerasdistill.report import file_size_kb, format_table

TABLE_COLUMNS = [
    ("model", "model", None),
    ("params", "params", ",d"),
    ("size_kb", "size (KiB)", ".1f"),
    ("test_accuracy", "test accuracy", ".4f"),
    ("train_seconds", "train time (s)", ".1f"),
]


def prepare_run_folder(output, name=None, overwrite=False):
    """Returns the run's folder `output/name`, refusing to reuse a non-empty one.

    Args:
        output: parent folder (created if missing).
        name: run name; default `run-YYYYmmdd-HHMMSS` (UTC).
        overwrite: allow writing into an existing non-empty run folder.
    """
    name = name or datetime.datetime.now(datetime.timezone.utc).strftime("run-%Y%m%d-%H%M%S")
    if os.sep in name or name in ("", ".", ".."):
        raise ValueError(f"A run name is a plain folder name; got {name!r}.")
    folder = os.path.join(files.check_writable_folder(output), name)
    if os.path.isdir(folder) and os.listdir(folder) and not overwrite:
        raise FileExistsError(
            f"The run folder {folder} already holds results. Choose another --name, "
            "or pass --overwrite to replace them."
        )
    return files.check_writable_folder(folder)


def accuracy(model, x, y):
    """Top-1 accuracy of `model` (in inference mode) on arrays `(x, y)`."""
    return float(np.mean(np.argmax(keras_outputs(model, x), axis=-1) == y))


def load_data(data_config, seed):
    """Train / validation / test `Splits` from the config's data section."""
    if data_config["source"] == "embedded":
        return data_lib.load_digits(val_size=data_config["validation_size"], seed=seed)
    return data_lib.load_npz_splits(data_config["path"], data_config["validation_size"], seed)


def _config_key(config):
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def run(config=None, output="export", name=None, overwrite=False, verbose=True):
    """Runs the main job and returns its report (a dict, also saved as report.json).

    Args:
        config: a config dict (see `kerasdistill.config`; missing keys take
            their defaults), or None for the embedded default job.
        output: folder under which the run's folder is made.
        name: name of the run's folder (default: a UTC timestamp; a resumed
            run keeps the name it started with).
        overwrite: allow reusing a non-empty run folder.
        verbose: print progress (one line per epoch) and the tables.

    Returns:
        A dict with `run_folder`, `config`, `models` (one row per model),
        `table` and `export`.

    Example:

    ```python
    report = run({"training": {"epochs": 3}}, output="export")
    print(report["table"])
    ```
    """
    config = config_lib.validate(config)
    training, distillation = config["training"], config["distillation"]
    say = print if verbose else (lambda *args, **kwargs: None)
    fit_verbose = 2 if verbose else 0
    resume = os.path.join(files.check_writable_folder(output), ".resume", _config_key(config))
    state_path = os.path.join(resume, "run.json")
    resumed = os.path.exists(state_path)
    if resumed:
        with open(state_path, encoding="utf-8") as handle:
            name = json.load(handle)["name"]
        say(f"Resuming the unfinished run '{name}' (state in {resume}).")
    name = name or datetime.datetime.now(datetime.timezone.utc).strftime("run-%Y%m%d-%H%M%S")
    folder = prepare_run_folder(output, name, overwrite or resumed)
    files.write_json(state_path, {"name": name})

    previous_policy = keras.mixed_precision.global_policy().name
    set_precision(training["precision"])
    try:
        strategy = make_strategy(training["strategy"])
        report = _run_stages(config, strategy, folder, resume, say, fit_verbose)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    shutil.rmtree(resume, ignore_errors=True)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(resume))  # .resume, once no other run needs it
    return report


def _run_stages(config, strategy, folder, resume, say, fit_verbose):
    training, distillation = config["training"], config["distillation"]
    seed, epochs = training["seed"], training["epochs"]
    splits = load_data(config["data"], seed)
    shape, classes = splits.train.x.shape[1:], splits.num_classes
    batch_size = training["batch_size"]
    train = data_lib.to_dataset(*splits.train, batch_size=batch_size, shuffle=True, seed=seed)
    val = data_lib.to_dataset(*splits.val, batch_size=batch_size)
    say(f"Data: {len(splits.train.x)} train / {len(splits.val.x)} validation / {len(splits.test.x)} test samples, {classes} classes.")

    def build(spec):
        if spec.endswith(".keras"):
            return files.load_model(spec)
        return models.build(spec, shape, classes)

    def stage(key, title, spec, train_model):
        done = os.path.join(resume, f"{key}.keras")
        if os.path.exists(done):
            with open(os.path.join(resume, f"{key}.json"), encoding="utf-8") as handle:
                seconds = json.load(handle)["seconds"]
            say(f"\n{title}: finished before the interruption, loaded from {done}")
            with strategy.scope():
                return files.load_model(done), seconds
        keras.utils.set_random_seed(seed)
        with strategy.scope():
            model = build(spec)
        say(f"\n{title}: {model.name}, {model.count_params():,} parameters")
        start = time.perf_counter()
        backup = BackupAndRestore(os.path.join(resume, f"{key}-backup"))
        trained = train_model(model, [backup])
        if backup.restored_epoch:
            say(f"  resumed at epoch {backup.restored_epoch + 1}")
        seconds = time.perf_counter() - start
        files.save_model(model, done, include_optimizer=False)
        files.write_json(os.path.join(resume, f"{key}.json"), {"seconds": seconds, "trained": trained})
        return model, seconds

    def fit_alone(model, callbacks):
        with strategy.scope():
            model.compile(
                optimizer=keras.optimizers.Adam(training["learning_rate"]),
                loss=CrossEntropy(from_logits=True),
                metrics=["accuracy"],
            )
        model.fit(train, epochs=epochs, validation_data=val, shuffle=False, verbose=fit_verbose, callbacks=callbacks)
        return True

    teacher_spec = config["teacher"]["model"]
    if teacher_spec.endswith(".keras"):
        with strategy.scope():
            teacher = build(teacher_spec)
        teacher_seconds = 0.0
        say(f"\n[1/3] Teacher: loaded from {teacher_spec}")
    else:
        teacher, teacher_seconds = stage("teacher", f"[1/3] Teacher ({epochs} epochs)", teacher_spec, fit_alone)

    def distill(student, callbacks):
        with strategy.scope():
            distiller = Distiller(teacher=teacher, student=student)
            distiller.compile(
                optimizer=keras.optimizers.Adam(training["learning_rate"]),
                metrics=["accuracy"],
                distillation_loss_fn=distillation["losses"],
                alpha=distillation["alpha"],
                temperature=distillation["temperature"],
            )
        distiller.fit(train, epochs=epochs, validation_data=val, shuffle=False, verbose=fit_verbose, callbacks=callbacks)
        return True

    # Both students are built right after the same seed: same initial weights.
    student_spec = config["student"]["model"]
    methods = ", ".join(str(loss if isinstance(loss, str) else loss.get("name")) for loss in distillation["losses"])
    student, student_seconds = stage(
        "student",
        f"[2/3] Distilled student ({methods}, alpha={distillation['alpha']}, T={distillation['temperature']})",
        student_spec,
        distill,
    )
    scratch, scratch_seconds = stage("scratch", "[3/3] Same student from scratch", student_spec, fit_alone)
    if not is_chief(strategy):
        return {"run_folder": None, "config": config}

    rows = []
    for label, model, seconds, filename in (
        ("teacher", teacher, teacher_seconds, "teacher.keras"),
        ("student (scratch)", scratch, scratch_seconds, "student_scratch.keras"),
        ("student (distilled)", student, student_seconds, "student.keras"),
    ):
        path = files.save_model(model, os.path.join(folder, filename), include_optimizer=False)
        rows.append(
            {
                "model": label,
                "params": int(model.count_params()),
                "size_kb": file_size_kb(path),
                "test_accuracy": accuracy(model, *splits.test),
                "train_seconds": seconds,
                "path": path,
            }
        )
    table = format_table(rows, TABLE_COLUMNS)

    quantizations = config["export"]["quantizations"]
    say(f"\nExport: the distilled student to {', '.join(quantizations)} .tflite files")
    exported = [
        export.to_tflite(
            student,
            os.path.join(folder, f"student_{quantization}.tflite"),
            quantization=quantization,
            representative_data=splits.train.x if quantization == "int8" else None,
        )
        for quantization in quantizations
    ]
    comparison = export.compare(
        student, [result.path for result in exported], splits.test, keras_path=rows[-1]["path"], num_threads=1
    )
    report = {
        "run_folder": folder,
        "config": config,
        "models": rows,
        "table": table,
        "export": {
            "files": [result.to_dict() for result in exported],
            "models": comparison["rows"],
            "table": comparison["table"],
        },
    }
    files.write_bytes(os.path.join(folder, "config.yaml"), _config_yaml(config).encode("utf-8"))
    files.write_json(os.path.join(folder, "report.json"), report)
    say(f"\n{table}\n\nThe distilled student as a Keras model and as .tflite files (test set, 1 thread):")
    say(f"{comparison['table']}\n\nSaved the models, the .tflite files, config.yaml and report.json in {folder}")
    return report


def _config_yaml(config):
    import yaml

    return "# The resolved config of this run: `kerasdistill run --config config.yaml` repeats it.\n" + yaml.safe_dump(
        config, sort_keys=False
    )
