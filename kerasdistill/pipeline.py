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

import collections
import contextlib
import datetime
import hashlib
import json
import os
import shutil
import time

import numpy as np

from kerasdistill import config as config_lib
from kerasdistill import losses as losses_lib
from kerasdistill import data as data_lib
from kerasdistill import augment, export, files, models, plots, transfer
from kerasdistill.cache import cache_teacher_outputs
from kerasdistill.backend import keras
from kerasdistill.callbacks import BackupAndRestore
from kerasdistill.distiller import Distiller
from kerasdistill.distribute import is_chief, make_strategy, multi_worker_ready, set_precision
from kerasdistill.export.interpreter import keras_outputs
from kerasdistill.losses import CrossEntropy
from kerasdistill.metrics import classification_report
from kerasdistill.report import file_size_kb, format_table
from kerasdistill.tune import tune

TABLE_COLUMNS = [
    ("model", "model", None),
    ("params", "params", ",d"),
    ("size_kb", "size (KiB)", ".1f"),
    ("test_accuracy", "test accuracy", ".4f"),
    ("f1_macro", "F1 (macro)", ".4f"),
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


def accuracy(model, x, y):
    """Top-1 accuracy of `model` (in inference mode) on arrays `(x, y)`."""
    return float(np.mean(np.argmax(keras_outputs(model, x), axis=-1) == y))


def load_data(data_config, seed):
    """Train / validation / test `Splits` (and the unlabeled transfer set) from the config's data section."""
    splits = _load_labeled(data_config, seed)
    if data_config["labeled_size"] is not None:
        splits = data_lib.hold_out_labels(splits, data_config["labeled_size"], seed)
    if data_config["unlabeled_path"] is not None:
        extra = data_lib.load_unlabeled(data_config["unlabeled_path"], splits.train.x.shape[1:])
        splits = splits._replace(unlabeled=extra if splits.unlabeled is None else np.concatenate([splits.unlabeled, extra]))
    return splits


def _load_labeled(data_config, seed):
    source, size = data_config["source"], data_config["validation_size"]
    if source == "embedded":
        # A fraction is a share of the training data (the 4,000 digits outside
        # the test split), as for every other source.
        count = int(round(size * 4000)) if size < 1 else int(size)
        if count < 10:
            raise ValueError(
                f"data.validation_size {size} gives {count} of the embedded digits' 4,000 training images; the "
                "validation split takes a multiple of 10 (one tenth per class). Give at least 10, or a fraction "
                ">= 0.0025."
            )
        return data_lib.load_digits(val_size=count - count % 10, seed=seed)
    if source == "npz":
        return data_lib.load_npz_splits(data_config["path"], size, seed)
    if source == "image_folder":
        return data_lib.load_image_folder(
            data_config["path"], data_config["image_size"], size, data_config["test_fraction"], seed
        )
    if source == "idx":
        return data_lib.load_idx(data_config["path"], size, seed)
    return data_lib.load_tfds(
        data_config["name"],
        data_config["data_dir"],
        data_config["train_split"],
        data_config["test_split"],
        data_config["image_size"],
        size,
        seed,
    )


def _config_key(value):
    text = json.dumps(value, sort_keys=True, default=str)
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
    training = config["training"]
    if training["strategy"] == "multi_worker" and not name:
        raise ValueError(
            "A multi_worker run needs --name (the same on every worker), so that all workers share one "
            "run folder and one resume state."
        )
    say = print if verbose else (lambda *args, **kwargs: None)
    fit_verbose = 2 if verbose else 0
    # The same command finds its own state: the key is the resolved config
    # and the run name the user gave (none: the name stored at the start).
    resume = os.path.join(files.check_writable_folder(output), ".resume", _config_key({"config": config, "name": name}))
    state_path = os.path.join(resume, "run.json")
    resumed = os.path.exists(state_path)
    if resumed:
        with open(state_path, encoding="utf-8") as handle:
            name = json.load(handle)["name"]
    name = name or datetime.datetime.now(datetime.timezone.utc).strftime("run-%Y%m%d-%H%M%S")
    # One process per run folder: a second one is refused, and a resume
    # adopts only a run whose process is gone. Workers of one multi-worker
    # run share the folder on purpose (only the chief writes results).
    lock = os.path.join(output, ".resume", f"{name}.lock")
    with contextlib.nullcontext() if training["strategy"] == "multi_worker" else files.exclusive_lock(lock, f"The run '{name}' in {output}"):
        if resumed:
            say(f"Resuming the unfinished run '{name}' (state in {resume}).")
        folder = prepare_run_folder(output, name, overwrite or resumed)
        files.write_json(state_path, {"name": name})
        report = _run_locked(config, folder, resume, say, fit_verbose)
        if report["run_folder"] is not None:
            with contextlib.suppress(OSError):
                os.remove(lock)
    with contextlib.suppress(OSError):
        os.rmdir(os.path.dirname(resume))  # .resume, once no other run needs it
    return report


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


def _run_locked(config, folder, resume, say, fit_verbose):
    previous_policy = keras.mixed_precision.global_policy().name
    set_precision(config["training"]["precision"])
    try:
        strategy = make_strategy(config["training"]["strategy"])
        report = _run_stages(config, strategy, folder, resume, say, fit_verbose)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    # Only the chief removes the state: a worker that finishes first must not
    # delete the backup the chief is still writing.
    if report["run_folder"] is not None:
        shutil.rmtree(resume, ignore_errors=True)
    return report


def build_model(spec, shape, classes, weights=None, role="student", backbone_size=None):
    """A model from a config's `model` entry: a built-in name, `backbone:NAME` or a `.keras` file.

    A backbone takes the run's images as they are when they fit it (RGB, at
    least its minimum size); otherwise, or when `backbone_size` is given, it
    runs at `backbone_size` (default 96) and the model resizes the images and
    repeats grey ones to RGB itself, so teacher and student take the same batch.
    """
    if spec.endswith(".keras"):
        return files.load_model(spec)
    if spec.startswith(config_lib.BACKBONE_PREFIX):
        name = spec[len(config_lib.BACKBONE_PREFIX) :]
        shape = tuple(shape)
        fits = shape[2] == 3 and min(shape[:2]) >= transfer.get_spec(name).min_size
        backbone_shape = shape if fits and backbone_size is None else (backbone_size or 96,) * 2 + (3,)
        # A teacher fine-tunes a new head on frozen ImageNet features; a
        # student trains whole.
        backbone = transfer.load_backbone(name, backbone_shape, weights=weights, freeze=role == "teacher")
        return transfer.build_classifier(backbone, classes, name=f"{name}_{role}", input_shape=shape)
    return models.build(spec, shape, classes)


def _run_stages(config, strategy, folder, resume, say, fit_verbose):
    training, distillation, tuning = config["training"], config["distillation"], config["tune"]
    seed, epochs = training["seed"], training["epochs"]
    splits = load_data(config["data"], seed)
    shape, classes = splits.train.x.shape[1:], splits.num_classes
    _check_layer_pairs(config, shape, classes)
    batch_size = training["batch_size"]
    plan = _training_data(splits, batch_size, distillation["labeled_share"], seed)
    train, steps = plan.labeled, plan.steps
    val = data_lib.to_dataset(*splits.val, batch_size=batch_size)
    if splits.unlabeled is None:
        say(f"Data: {len(splits.train.x)} train / {len(splits.val.x)} validation / {len(splits.test.x)} test samples, {classes} classes.")
    else:
        say(
            f"Data: {len(splits.train.x)} labeled + {len(splits.unlabeled)} unlabeled train (the transfer set the "
            f"teacher scores) / {len(splits.val.x)} validation / {len(splits.test.x)} test samples, {classes} classes. "
            f"Every model trains {steps} steps an epoch."
        )

    def new_model(section):
        keras.utils.set_random_seed(seed)
        with strategy.scope():
            entry = config[section]
            return build_model(entry["model"], shape, classes, entry["weights"], section, entry["backbone_size"])

    def callbacks_for(key):
        callbacks = [BackupAndRestore(os.path.join(resume, f"{key}-backup"))]
        if config["report"]["tensorboard"]:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=os.path.join(folder, "tensorboard", key)))
        return callbacks

    def stage(key, title, train_model):
        """Runs `train_model(callbacks) -> (model, history, extra)` once; a resumed run reloads its result."""
        done = os.path.join(resume, f"{key}.keras")
        if os.path.exists(done):
            with open(os.path.join(resume, f"{key}.json"), encoding="utf-8") as handle:
                record = json.load(handle)
            say(f"\n{title}: finished before the interruption, loaded from {done}")
            with strategy.scope():
                return files.load_model(done), record
        say(f"\n{title}")
        start = time.perf_counter()
        callbacks = callbacks_for(key)
        model, history, extra = train_model(callbacks)
        backup = callbacks[0]
        if backup.restored_epoch:
            # The epochs and time before the interruption count too.
            say(f"  resumed at epoch {backup.restored_epoch + 1}")
            history = backup.history
        record = {"seconds": backup.restored_seconds + time.perf_counter() - start, "history": history, **extra}
        if is_chief(strategy):
            files.save_model(model, done, include_optimizer=False)
            files.write_json(os.path.join(resume, f"{key}.json"), record)
        return model, record

    def fit_on_labels(model, learning_rate, callbacks):
        """Cross-entropy training of `model` on the labeled batches; returns `(model, history, {})`."""
        with strategy.scope():
            trainer = multi_worker_ready(model, strategy)
            trainer.compile(
                optimizer=keras.optimizers.Adam(learning_rate),
                loss=CrossEntropy(from_logits=True),
                metrics=["accuracy"],
            )
        history = trainer.fit(
            train, epochs=epochs, steps_per_epoch=steps, validation_data=val, shuffle=False, verbose=fit_verbose,
            callbacks=callbacks,
        )
        return model, history.history, {}

    def fit_alone(section):
        def train_model(callbacks):
            model = new_model(section)
            say(f"  {model.name}: {model.count_params():,} parameters, {epochs} epochs")
            return fit_on_labels(model, training["learning_rate"], callbacks)

        return train_model

    def fine_tune(teacher, layers):
        def train_model(callbacks):
            rate = config["teacher"]["fine_tune_learning_rate"]
            opened = transfer.unfreeze(teacher, top=layers)  # BatchNorm stays frozen, in inference mode
            say(f"  {len(opened)} layers with weights reopened, learning rate {rate}")
            return fit_on_labels(teacher, rate, callbacks)

        return train_model

    teacher_spec = config["teacher"]["model"]
    if teacher_spec.endswith(".keras"):
        with strategy.scope():
            teacher = files.load_model(teacher_spec)
        teacher_record = {"seconds": 0.0, "history": {}}
        say(f"\n[1/3] Teacher: loaded from {teacher_spec}")
    else:
        teacher, teacher_record = stage("teacher", "[1/3] Teacher", fit_alone("teacher"))
        layers = config["teacher"]["fine_tune_layers"]
        if layers and teacher_spec.startswith(config_lib.BACKBONE_PREFIX):
            title = f"[1/3] Teacher: fine-tuning the top {layers} layers of its backbone"
            teacher, tuned = stage("teacher-finetune", title, fine_tune(teacher, layers))
            teacher_record = {
                "seconds": teacher_record["seconds"] + tuned["seconds"],
                "history": {k: v + tuned["history"].get(k, []) for k, v in teacher_record["history"].items()},
            }

    def distill(callbacks):
        student = new_model("student")
        say(f"  {student.name}: {student.count_params():,} parameters, {epochs} epochs")
        batches, augmentation = plan.distill, augment.build(distillation["augmentation"], seed=seed)
        views = distillation["teacher_views"]
        if views:
            say(f"  scoring the training images with the teacher once{f' on {views} augmented views' if views > 1 else ''}")
            batches = cache_teacher_outputs(
                teacher, plan.distill_once, batch_size=batch_size, shuffle=True, seed=seed,
                augmentation=augmentation, views=views,
            ).repeat()
            augmentation = None
        with strategy.scope():
            distiller = Distiller(teacher=teacher, student=student, augmentation=augmentation)
            distiller.compile(
                optimizer=keras.optimizers.Adam(training["learning_rate"]),
                metrics=["accuracy"],
                distillation_loss_fn=distillation["losses"],
                alpha=distillation["alpha"],
                temperature=distillation["temperature"],
            )
        history = distiller.fit(
            batches, epochs=epochs, steps_per_epoch=steps, validation_data=val, shuffle=False, verbose=fit_verbose,
            callbacks=callbacks,
        )
        return student, history.history, {}

    def search(callbacks):
        result = tune(
            teacher,
            lambda: build_model(
                config["student"]["model"], shape, classes, config["student"]["weights"], "student",
                config["student"]["backbone_size"],
            ),
            train,
            val,
            temperature=config_lib.search_space(tuning["temperature"]),
            alpha=config_lib.search_space(tuning["alpha"]),
            methods=tuning["methods"],
            max_trials=tuning["max_trials"],
            epochs=tuning["epochs"] or epochs,
            learning_rate=training["learning_rate"],
            seed=seed,
            verbose=fit_verbose,
        )
        say(f"{result.table()}\n{result.verdict}")
        tuned = {"trials": result.trials, "best": result.best, "verdict": result.verdict, "gain": result.gain}
        return result.student, {}, {"tuning": tuned}

    # Both students are built right after the same seed: same initial weights.
    if tuning["enabled"]:
        title = f"[2/3] Tuning the distillation: {tuning['max_trials']} trials of {tuning['epochs'] or epochs} epochs (KerasTuner)"
        student, student_record = stage("student", title, search)
    else:
        methods = ", ".join(str(loss if isinstance(loss, str) else loss.get("name")) for loss in distillation["losses"])
        title = f"[2/3] Distilled student ({methods}, alpha={distillation['alpha']}, T={distillation['temperature']})"
        student, student_record = stage("student", title, distill)
    scratch, scratch_record = stage("scratch", "[3/3] Same student from scratch", fit_alone("student"))
    if not is_chief(strategy):
        return {"run_folder": None, "config": config}

    rows, confusion = [], {}
    for label, model, record, filename in (
        ("teacher", teacher, teacher_record, "teacher.keras"),
        ("student (scratch)", scratch, scratch_record, "student_scratch.keras"),
        ("student (distilled)", student, student_record, "student.keras"),
    ):
        path = files.save_model(model, os.path.join(folder, filename), include_optimizer=False)
        scores = classification_report(splits.test.y, keras_outputs(model, splits.test.x), classes)
        confusion[label] = scores.pop("confusion_matrix")
        rows.append(
            {
                "model": label,
                "params": int(model.count_params()),
                "size_kb": file_size_kb(path),
                "test_accuracy": scores.pop("accuracy"),
                **scores,
                "train_seconds": record["seconds"],
                "path": path,
            }
        )
    table = format_table(rows, TABLE_COLUMNS)
    gain = 100 * (rows[2]["test_accuracy"] - rows[1]["test_accuracy"])
    verdict = (
        f"The distilled student is {abs(gain):.2f} points {'above' if gain >= 0 else 'below'} the same student "
        f"trained alone on the labels ({rows[2]['test_accuracy']:.4f} vs {rows[1]['test_accuracy']:.4f}, test set)"
        + ("." if splits.unlabeled is None else f", with {len(splits.unlabeled)} unlabeled images in the transfer set.")
    )

    quantizations = config["export"]["quantizations"]
    say(f"\nExport: the distilled student to {', '.join(quantizations)} .tflite files")
    exported = []
    for quantization in quantizations:
        if quantization == "int8":
            say(f"  calibrating int8 on {min(200, len(splits.train.x))} training samples")
        exported.append(
            export.to_tflite(
                student,
                os.path.join(folder, f"student_{quantization}.tflite"),
                quantization=quantization,
                representative_data=splits.train.x if quantization == "int8" else None,
            )
        )
    say(f"  measuring each file through the LiteRT interpreter on {len(splits.test.x)} test samples")
    comparison = export.compare(
        student, [result.path for result in exported], splits.test, keras_path=rows[-1]["path"], num_threads=1
    )
    for row in comparison["rows"]:
        confusion[row["model"]] = row.pop("confusion_matrix")
    report = {
        "run_folder": folder,
        "config": config,
        "models": rows,
        "table": table,
        "gain_points": gain,
        "verdict": verdict,
        "confusion_matrices": confusion,
        "histories": {k: r["history"] for k, r in (("teacher", teacher_record), ("scratch", scratch_record), ("distilled", student_record))},
        "export": {
            "files": [result.to_dict() for result in exported],
            "models": comparison["rows"],
            "table": comparison["table"],
        },
    }
    if "tuning" in student_record:
        report["tuning"] = student_record["tuning"]
    if config["report"]["plots"]:
        report["plots"] = _plots(report, folder, rows)
    files.write_bytes(os.path.join(folder, "config.yaml"), _config_yaml(config).encode("utf-8"))
    files.write_json(os.path.join(folder, "report.json"), report)
    say(f"\n{table}\n\nThe distilled student as a Keras model and as .tflite files (test set, 1 thread):")
    say(f"{comparison['table']}")
    say(f"\n{verdict}")
    if "tuning" in report:
        say(report["tuning"]["verdict"])
    say(f"\nSaved the models, the .tflite files, plots, config.yaml and report.json in {folder}")
    return report


def _check_layer_pairs(config, shape, classes):
    """Refuses, before anything trains, feature losses naming layers the models lack."""
    pairs = [pair for item in config["distillation"]["losses"] for pair in (losses_lib.get(item).pairs or ())]
    if not pairs:
        return
    for index, role in enumerate(("teacher", "student")):
        model = build_model(config[role]["model"], shape, classes, config[role]["weights"], role, config[role]["backbone_size"])
        layers = [layer.name for layer in model.layers]
        missing = sorted({pair[index] for pair in pairs} - set(layers))
        if missing:
            raise ValueError(
                f"distillation.losses names {role} layer(s) {', '.join(missing)}, which the {role} "
                f"'{model.name}' lacks. Its layers: {', '.join(layers)}. Fix the layer pairs."
            )


TrainingData = collections.namedtuple("TrainingData", ["labeled", "distill", "distill_once", "steps"])


def _training_data(splits, batch_size, labeled_share, seed):
    """The batches each stage trains on.

    Without a transfer set every model trains on the labeled images. With
    one, the student is distilled from batches that mix labeled and
    unlabeled images (`data.transfer_set`), an epoch being one pass over the
    unlabeled ones; the teacher and the scratch student train on the labeled
    images for the same number of steps, so that no model gets a larger
    budget. `distill_once` is one deterministic pass, for caching the teacher.
    """
    if splits.unlabeled is None:
        labeled = data_lib.to_dataset(*splits.train, batch_size=batch_size, shuffle=True, seed=seed)
        return TrainingData(labeled, labeled, data_lib.to_dataset(*splits.train, batch_size=batch_size), None)
    mixed = dict(batch_size=batch_size, labeled_share=labeled_share, seed=seed)
    distill = data_lib.transfer_set(splits.train, splits.unlabeled, shuffle=True, **mixed)
    steps = int(distill.cardinality())
    labeled = data_lib.to_dataset(*splits.train, batch_size=batch_size, shuffle=True, seed=seed).repeat()
    return TrainingData(labeled, distill, data_lib.transfer_set(splits.train, splits.unlabeled, shuffle=False, **mixed), steps)


def _plots(report, folder, rows):
    made = {}
    curves = {label: history for label, history in report["histories"].items() if history}
    if curves:
        made["training_curves"] = plots.training_curves(curves, os.path.join(folder, "training_curves.png"))
    points = [{"model": r["model"], "size_kb": r["size_kb"], "accuracy": r["test_accuracy"]} for r in rows[:2]]
    points += [
        {"model": r["model"], "size_kb": r["size_kb"], "accuracy": r["accuracy"], "latency_ms": r["latency_ms"]}
        for r in report["export"]["models"]
    ]
    made["accuracy_vs_size"] = plots.accuracy_vs_size(points, os.path.join(folder, "accuracy_vs_size.png"))
    if "tuning" in report:
        made["tuning"] = plots.tuning_trials(report["tuning"]["trials"], os.path.join(folder, "tuning.png"))
    return made


def _config_yaml(config):
    import yaml

    return "# The resolved config of this run: `kerasdistill run --config config.yaml` repeats it.\n" + yaml.safe_dump(
        config, sort_keys=False
    )
