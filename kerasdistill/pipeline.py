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

from kerasdistill import augment, export, files, models, transfer
from kerasdistill import config as config_lib
from kerasdistill import data as data_lib
from kerasdistill import losses as losses_lib
from kerasdistill import report as report_lib
from kerasdistill.backend import keras
from kerasdistill.cache import cache_teacher_outputs
from kerasdistill.callbacks import BackupAndRestore
from kerasdistill.distiller import Distiller
from kerasdistill.distribute import is_chief, make_strategy, multi_worker_ready, set_precision
from kerasdistill.losses import CrossEntropy
from kerasdistill.tune import tune


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
    if config["training"]["strategy"] == "multi_worker" and not name:
        raise ValueError(
            "A multi_worker run needs --name (the same on every worker), so that all workers share one "
            "run folder and one resume state."
        )
    with RunState(config, output, name, overwrite, verbose) as state:
        inputs = prepare_inputs(state)
        teacher, teacher_record = train_teacher(state, inputs)
        student, student_record = distill(state, inputs, teacher)
        scratch, scratch_record = train_scratch(state, inputs)
        if not state.is_chief:
            return {"run_folder": None, "config": config}
        trained = [
            ("teacher", teacher, teacher_record, "teacher.keras"),
            ("student (scratch)", scratch, scratch_record, "student_scratch.keras"),
            ("student (distilled)", student, student_record, "student.keras"),
        ]
        rows, confusion = report_lib.model_rows(trained, state.folder, inputs.splits)
        exported = export_and_measure(state, inputs, student, rows[-1]["path"])
        report = report_lib.build(state, inputs.splits, rows, confusion, trained, exported)
        state.say(report_lib.summary(report))
    return report


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
        self.resume = os.path.join(self.output, ".resume", _config_key({"config": config, "name": name}))
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
        # not delete the backup the chief is still writing.
        finished = error_type is None and self.is_chief
        if finished:
            shutil.rmtree(self.resume, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.remove(self._lock_path)
        self._exit.close()
        with contextlib.suppress(OSError):
            os.rmdir(os.path.dirname(self.resume))  # .resume, once no other run needs it
        return False

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


Inputs = collections.namedtuple("Inputs", ["splits", "plan", "val", "shape", "classes"])


def prepare_inputs(state):
    """Loads the data, checks the layer pairs and makes the batches every stage trains on."""
    config, training = state.config, state.config["training"]
    splits = load_data(config["data"], training["seed"])
    shape, classes = splits.train.x.shape[1:], splits.num_classes
    _check_layer_pairs(config, shape, classes)
    batch_size = training["batch_size"]
    plan = _training_data(splits, batch_size, config["distillation"]["labeled_share"], training["seed"])
    val = data_lib.to_dataset(*splits.val, batch_size=batch_size)
    if splits.unlabeled is None:
        state.say(
            f"Data: {len(splits.train.x)} train / {len(splits.val.x)} validation / {len(splits.test.x)} test "
            f"samples, {classes} classes."
        )
    else:
        state.say(
            f"Data: {len(splits.train.x)} labeled + {len(splits.unlabeled)} unlabeled train (the transfer set the "
            f"teacher scores) / {len(splits.val.x)} validation / {len(splits.test.x)} test samples, {classes} classes. "
            f"Every model trains {plan.steps} steps an epoch."
        )
    return Inputs(splits, plan, val, shape, classes)


def new_model(state, inputs, section):
    """The config's teacher or student, built right after the run's seed (same initial weights each time)."""
    keras.utils.set_random_seed(state.config["training"]["seed"])
    with state.strategy.scope():
        entry = state.config[section]
        return build_model(entry["model"], inputs.shape, inputs.classes, entry["weights"], section, entry["backbone_size"])


def fit_on_labels(state, inputs, model, learning_rate, callbacks):
    """Cross-entropy training of `model` on the labeled batches; returns `(model, history, {})`."""
    with state.strategy.scope():
        trainer = multi_worker_ready(model, state.strategy)
        trainer.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=CrossEntropy(from_logits=True), metrics=["accuracy"])
    history = trainer.fit(
        inputs.plan.labeled, epochs=state.config["training"]["epochs"], steps_per_epoch=inputs.plan.steps,
        validation_data=inputs.val, shuffle=False, verbose=state.fit_verbose, callbacks=callbacks,
    )
    return model, history.history, {}


def _fit_alone(state, inputs, section):
    def train_model(callbacks):
        model = new_model(state, inputs, section)
        state.say(f"  {model.name}: {model.count_params():,} parameters, {state.config['training']['epochs']} epochs")
        return fit_on_labels(state, inputs, model, state.config["training"]["learning_rate"], callbacks)

    return train_model


def train_teacher(state, inputs):
    """Stage 1: the teacher, loaded from a .keras file or trained on the labels (then fine-tuned)."""
    settings = state.config["teacher"]
    spec = config_lib.model_spec(settings["model"])
    if spec.kind == "file":
        with state.strategy.scope():
            teacher = files.load_model(spec.name)
        state.say(f"\n[1/3] Teacher: loaded from {spec.name}")
        return teacher, {"seconds": 0.0, "history": {}}
    teacher, record = state.stage("teacher", "[1/3] Teacher", _fit_alone(state, inputs, "teacher"))
    layers = settings["fine_tune_layers"]
    if not layers or spec.kind != "backbone":
        return teacher, record

    def fine_tune(callbacks):
        rate = settings["fine_tune_learning_rate"]
        opened = transfer.unfreeze(teacher, top=layers)  # BatchNorm stays frozen, in inference mode
        state.say(f"  {len(opened)} layers with weights reopened, learning rate {rate}")
        return fit_on_labels(state, inputs, teacher, rate, callbacks)

    title = f"[1/3] Teacher: fine-tuning the top {layers} layers of its backbone"
    teacher, tuned = state.stage("teacher-finetune", title, fine_tune)
    return teacher, {
        "seconds": record["seconds"] + tuned["seconds"],
        "history": {k: v + tuned["history"].get(k, []) for k, v in record["history"].items()},
    }


def distill(state, inputs, teacher):
    """Stage 2: the student distilled from the teacher (or the tuning search, with `tune.enabled`)."""
    distillation, tuning = state.config["distillation"], state.config["tune"]
    epochs = state.config["training"]["epochs"]
    if tuning["enabled"]:
        title = f"[2/3] Tuning the distillation: {tuning['max_trials']} trials of {tuning['epochs'] or epochs} epochs (KerasTuner)"
        return state.stage("student", title, lambda callbacks: _search(state, inputs, teacher))
    methods = ", ".join(str(loss if isinstance(loss, str) else loss.get("name")) for loss in distillation["losses"])
    title = f"[2/3] Distilled student ({methods}, alpha={distillation['alpha']}, T={distillation['temperature']})"
    return state.stage("student", title, lambda callbacks: _distill(state, inputs, teacher, callbacks))


def _distill(state, inputs, teacher, callbacks):
    distillation, training = state.config["distillation"], state.config["training"]
    student = new_model(state, inputs, "student")
    state.say(f"  {student.name}: {student.count_params():,} parameters, {training['epochs']} epochs")
    batches, augmentation = inputs.plan.distill, augment.build(distillation["augmentation"], seed=training["seed"])
    views = distillation["teacher_views"]
    if views:
        state.say(f"  scoring the training images with the teacher once{f' on {views} augmented views' if views > 1 else ''}")
        batches = cache_teacher_outputs(
            teacher, inputs.plan.distill_once, batch_size=training["batch_size"], shuffle=True, seed=training["seed"],
            augmentation=augmentation, views=views,
        ).repeat()
        augmentation = None
    with state.strategy.scope():
        distiller = Distiller(teacher=teacher, student=student, augmentation=augmentation)
        distiller.compile(
            optimizer=keras.optimizers.Adam(training["learning_rate"]),
            metrics=["accuracy"],
            distillation_loss_fn=distillation["losses"],
            alpha=distillation["alpha"],
            temperature=distillation["temperature"],
        )
    history = distiller.fit(
        batches, epochs=training["epochs"], steps_per_epoch=inputs.plan.steps, validation_data=inputs.val,
        shuffle=False, verbose=state.fit_verbose, callbacks=callbacks,
    )
    return student, history.history, {}


def _search(state, inputs, teacher):
    tuning, training, settings = state.config["tune"], state.config["training"], state.config["student"]
    result = tune(
        teacher,
        lambda: build_model(settings["model"], inputs.shape, inputs.classes, settings["weights"], "student", settings["backbone_size"]),
        inputs.plan.labeled,
        inputs.val,
        temperature=config_lib.search_space(tuning["temperature"]),
        alpha=config_lib.search_space(tuning["alpha"]),
        methods=tuning["methods"],
        max_trials=tuning["max_trials"],
        epochs=tuning["epochs"] or training["epochs"],
        learning_rate=training["learning_rate"],
        seed=training["seed"],
        verbose=state.fit_verbose,
    )
    state.say(f"{result.table()}\n{result.verdict}")
    tuned = {"trials": result.trials, "best": result.best, "verdict": result.verdict, "gain": result.gain}
    return result.student, {}, {"tuning": tuned}


def train_scratch(state, inputs):
    """Stage 3: the same student (same initial weights, epochs and batches) trained on the labels alone."""
    return state.stage("scratch", "[3/3] Same student from scratch", _fit_alone(state, inputs, "student"))


def export_and_measure(state, inputs, student, keras_path):
    """The export stage: the student as `.tflite` files, each measured through the interpreter on the test set.

    Returns:
        `(files, comparison)`: the `ExportResult`s and `export.compare`'s report.
    """
    quantizations = state.config["export"]["quantizations"]
    splits = inputs.splits
    state.say(f"\nExport: the distilled student to {', '.join(quantizations)} .tflite files")
    exported = []
    for quantization in quantizations:
        if quantization == "int8":
            state.say(f"  calibrating int8 on {min(200, len(splits.train.x))} training samples")
        exported.append(
            export.to_tflite(
                student,
                os.path.join(state.folder, f"student_{quantization}.tflite"),
                quantization=quantization,
                representative_data=splits.train.x if quantization == "int8" else None,
            )
        )
    state.say(f"  measuring each file through the LiteRT interpreter on {len(splits.test.x)} test samples")
    comparison = export.compare(student, [result.path for result in exported], splits.test, keras_path=keras_path, num_threads=1)
    return exported, comparison


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


def build_model(spec, shape, classes, weights=None, role="student", backbone_size=None):
    """A model from a config's `model` entry: a built-in name, `backbone:NAME` or a `.keras` file.

    A backbone takes the run's images as they are when they fit it (RGB, at
    least its minimum size); otherwise, or when `backbone_size` is given, it
    runs at `backbone_size` (default 96) and the model resizes the images and
    repeats grey ones to RGB itself, so teacher and student take the same batch.
    """
    spec = config_lib.model_spec(spec)
    if spec.kind == "file":
        return files.load_model(spec.name)
    if spec.kind == "backbone":
        name = spec.name
        shape = tuple(shape)
        fits = shape[2] == 3 and min(shape[:2]) >= transfer.get_spec(name).min_size
        backbone_shape = shape if fits and backbone_size is None else (backbone_size or 96,) * 2 + (3,)
        # A teacher fine-tunes a new head on frozen ImageNet features; a
        # student trains whole.
        backbone = transfer.load_backbone(name, backbone_shape, weights=weights, freeze=role == "teacher")
        return transfer.build_classifier(backbone, classes, name=f"{name}_{role}", input_shape=shape)
    return models.build(spec.name, shape, classes)


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


