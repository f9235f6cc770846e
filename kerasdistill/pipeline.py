"""The main job: teacher, scratch student and distilled student, then export.

`kerasdistill run` calls `run`, a short sequence of named stages over a
`RunState` (kerasdistill.runs): `prepare_inputs` (the data from
`kerasdistill.sources`, the models' checks from `kerasdistill.model_specs`,
the batches from `kerasdistill.plan`), `train_teacher` (trained or loaded),
`train_scratch` (the student on the labels alone), `check_teacher`,
`distill` (its `auto` settings chosen on validation, or the tuning search),
`choose_student`, `export_and_measure` (the shipped student as `.tflite`
files, each measured on the test set); `kerasdistill.report` builds the
tables and report.json. Both students start from the same initial weights
and are taken at their best validation epoch by the same rule.

A run killed at any point resumes when the same command is given again:
every finished stage is kept under `OUTPUT/.resume/<config hash>/`, and the
stage in progress restarts from its last finished epoch (the settings
search's probe round, a few short trainings, restarts whole).
"""

import collections
import dataclasses
import json
import os

import numpy as np

from kerasdistill import augment, export, files, model_specs, schedules, selection, sources, transfer
from kerasdistill import views as views_lib
from kerasdistill import config as config_lib
from kerasdistill import data as data_lib
from kerasdistill import defaults
from kerasdistill import report as report_lib
from kerasdistill.backend import keras, require_tensorflow_backend, tf
from kerasdistill.cache import cache_teacher_outputs
from kerasdistill.callbacks import BestEpoch
from kerasdistill.distiller import Distiller
from kerasdistill.distribute import multi_worker_ready
from kerasdistill.losses import CrossEntropy
from kerasdistill.metrics import accuracy
from kerasdistill.plan import make_plan
from kerasdistill.runs import RunState
from kerasdistill.shards import score_to_shards, sharded_transfer_set
from kerasdistill.streams import is_stream, tf_error_message
from kerasdistill.tuning import tune


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
    require_tensorflow_backend("The kerasdistill run pipeline (tf.data batches, tf.distribute, TFLite export)")
    config = config_lib.validate(config)
    sources.check_output_outside_data(config["data"], output)
    if config["training"]["strategy"] == "multi_worker" and not name:
        raise ValueError(
            "A multi_worker run needs --name (the same on every worker), so that all workers share one "
            "run folder and one resume state."
        )
    with RunState(config, output, name, overwrite, verbose) as state:
        inputs = prepare_inputs(state)
        teacher, teacher_record = train_teacher(state, inputs)
        scratch, scratch_record = train_scratch(state, inputs)
        validation = validation_scores(inputs, teacher=teacher, scratch=scratch)
        cautions = [*inputs.cautions, *check_teacher(state, inputs, validation)]
        student, student_record = distill(state, inputs, teacher, (scratch, scratch_record))
        if not state.is_chief:
            return {"run_folder": None, "config": config}
        validation.update(validation_scores(inputs, distilled=student))
        trained = [
            ("teacher", teacher, teacher_record, "teacher.keras"),
            ("student (scratch)", scratch, scratch_record, "student_scratch.keras"),
            (report_lib.student_label(student_record), student, student_record, "student.keras"),
        ]
        paths = save_models(state, trained)
        rows, confusion = report_lib.model_rows(trained, paths, inputs.splits)
        shipped = choose_student(state, trained, rows, validation)
        exported = export_and_measure(state, inputs, shipped["model"], shipped["row"]["path"], shipped["row"]["model"])
        report = report_lib.build(state, inputs.splits, rows, confusion, trained, exported, cautions, shipped)
        state.say(report_lib.summary(report))
    return report


# `cautions`: what the data gave reason to warn about (kept in the report with the run's other warnings).
Inputs = collections.namedtuple("Inputs", ["splits", "plan", "shape", "classes", "cautions"], defaults=((),))


def prepare_inputs(state):
    """Loads the data, checks the layer pairs and makes the batches every stage trains on."""
    config, training = state.config, state.config["training"]
    # The batches' shuffling seeds combine with TensorFlow's global seed: set it here, so that a second run in the
    # same process (a notebook) shuffles as the first one did, not as whatever ran before it left the seed.
    keras.utils.set_random_seed(training["seed"])
    # A compressed array file of unlabeled images is decompressed into the resume state: kept for a resumed run, removed
    # with the state when the run ends.
    splits = sources.load_data(config["data"], training["seed"], unpack_to=state.own_state)
    state.record_splits(splits)
    shape, classes = splits.train.x.shape[1:], splits.num_classes
    sources.check_classes(splits)
    model_specs.check_models(config, shape, classes)
    model_specs.check_layer_pairs(config, shape, classes)
    if config["distillation"]["teacher_views"] and is_stream(splits.unlabeled):
        _check_streamed_views(config["distillation"])
    elif config["distillation"]["teacher_views"] and is_stream(splits.train.x):
        raise ValueError(
            f"distillation.teacher_views caches the teacher's outputs on {config['distillation']['teacher_views']} view(s) of "
            f"each training image, and the {len(splits.train.x):,} labeled images stream from disk (data.stream "
            f"{str(config['data']['stream']).lower()}): the views would fill memory, and views are stored on disk only for a streamed "
            "transfer set (data.unlabeled_path, data.labeled_size). Remove distillation.teacher_views (the teacher then "
            "scores each augmented batch as it trains), or set data.stream: false to read the images into memory."
        )
    batch_size = training["batch_size"]
    plan = make_plan(splits, batch_size, config["distillation"]["labeled_share"], training["seed"])
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
    # The one pass over each streamed part, once everything cheaper was checked.
    sources.check_streams(splits, state.say)
    cautions = sources.pixel_cautions(splits)
    for caution in cautions:
        state.say(f"  Warning: {caution}")
    return Inputs(splits, plan, shape, classes, cautions)


def _check_streamed_views(distillation):
    """Refuses `teacher_views` a streamed transfer set cannot store (its views are parameters: `kerasdistill.views`)."""
    mixing = [name for name in distillation["augmentation"] if name not in views_lib.VIEWED]
    if mixing:
        raise ValueError(
            f"distillation.teacher_views stores the teacher's outputs on {distillation['teacher_views']} view(s) of each "
            f"image of the streamed transfer set (data.unlabeled_path, or the labels held out by data.labeled_size), "
            f"with each view's parameters, and distillation.augmentation "
            f"{list(distillation['augmentation'])} cannot be stored so: {', '.join(mixing)} mixes two images, which a "
            f"stored view of one image cannot hold. Name only {', '.join(views_lib.VIEWED)} in distillation.augmentation, "
            "or remove distillation.teacher_views (the teacher then scores each augmented batch as it trains)."
        )


def new_model(state, inputs, section):
    """The config's teacher or student, built right after the run's seed (same initial weights each time)."""
    keras.utils.set_random_seed(state.config["training"]["seed"])
    entry = state.config[section]
    if section == "student" and config_lib.model_spec(entry["model"]).kind == "file":
        state.say(f"  {entry['model']}: its architecture, with weights drawn afresh (the same for both students)")
    with state.strategy.scope():
        return model_specs.build_model(entry["model"], inputs.shape, inputs.classes, entry["weights"], section, entry["backbone_size"])


def optimizer(state, inputs, learning_rate):
    """Adam on the run's schedule (a warm-up, then a cosine decay over `training.epochs`), for every model."""
    training = state.config["training"]
    return keras.optimizers.Adam(
        schedules.learning_rate(learning_rate, training["schedule"], training["epochs"], _steps(state, inputs))
    )


def _steps(state, inputs):
    """Optimizer steps per epoch; without a transfer set an epoch is one pass over the labeled images."""
    return inputs.plan.steps or -(-len(inputs.splits.train.x) // state.config["training"]["batch_size"])


def fit_to_best_epoch(state, inputs, trainer, model, batches, callbacks, baseline=None, steps=None):
    """`trainer.fit` on `batches` until `model` stops improving on validation; `model` ends at its best epoch.

    Every model of a run (teacher, its fine-tuning, scratch and distilled
    students) follows this one selection rule, so that the students are
    compared fairly. With `baseline` (the validation accuracy `model` starts
    at), an epoch must beat it, else `model` keeps its starting weights.
    `steps`: steps of an epoch of a repeated `batches` (default: the plan's).
    Returns `(model, history, {"best_epoch", "val_accuracy"})`.
    """
    # The record of the best epoch stays until the run's resume state goes: a kill between the end of
    # training and the stage's save resumes with it.
    best = BestEpoch(
        keep=model, patience=state.config["training"]["patience"], backup_dir=os.path.join(callbacks[0].backup_dir, "best"),
        baseline=baseline, delete_on_success=False,
    )
    try:
        history = trainer.fit(
            batches, epochs=state.config["training"]["epochs"], steps_per_epoch=steps or inputs.plan.steps,
            validation_data=inputs.plan.validation, shuffle=False, verbose=state.fit_verbose,
            # Before the backup: an epoch's best weights are on disk before the epoch counts as done.
            callbacks=[best, *callbacks],
        )
    except (tf.errors.NotFoundError, tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        raise _changed_stream(inputs.splits, error) from None
    kept = f"epoch {best.best_epoch}" if best.best_epoch else "the starting weights (no epoch beat them)"
    stopped = f", stopped at epoch {best.stopped_epoch}" if best.stopped_epoch else ""
    state.say(f"  kept {kept}: validation accuracy {best.best:.4f}{stopped}")
    return model, history.history, {"best_epoch": best.best_epoch, "val_accuracy": best.best}


def _changed_stream(splits, error):
    """The error to raise for `error`, met while training: a clear one when a file of streamed images (the transfer
    set, or labeled images streamed from an image folder) went missing or became unreadable (they are read every
    epoch), else `error` itself."""
    streamed = [
        key for key, images in (("the labeled data", splits.train.x), ("data.unlabeled_path", splits.unlabeled)) if is_stream(images)
    ]
    if not streamed or not (isinstance(error, (tf.errors.NotFoundError, tf.errors.DataLossError)) or "Decode" in str(error)):
        return error
    message = tf_error_message(error)
    what = "streamed transfer set (data.unlabeled_path)" if streamed == ["data.unlabeled_path"] else f"streamed images ({' or '.join(streamed)})"
    return ValueError(
        f"The {what} changed while the run trained: {message}. Its files are read every epoch: put them back "
        "unchanged, with their times (move them back, or copy them with cp -p: a run is keyed by its files' sizes "
        "and times), then give the same command; the run resumes from its last finished epoch."
    )


def fit_on_labels(state, inputs, model, learning_rate, callbacks, baseline=None):
    """Cross-entropy training of `model` on the labeled batches, to its best validation epoch."""
    with state.strategy.scope():
        trainer = multi_worker_ready(model, state.strategy)
        trainer.compile(optimizer=optimizer(state, inputs, learning_rate), loss=CrossEntropy(from_logits=True), metrics=["accuracy"])
    return fit_to_best_epoch(state, inputs, trainer, model, inputs.plan.labels_only, callbacks, baseline)


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
    layers = model_specs.fine_tune_layers(settings)
    if not layers:
        return teacher, record

    def fine_tune(callbacks):
        rate = settings["fine_tune_learning_rate"]
        opened = transfer.unfreeze(teacher, top=layers)  # BatchNorm stays frozen, in inference mode
        state.say(f"  {len(opened)} layers with weights reopened, learning rate {rate}")
        # Fine-tuning must beat the head it starts from, else the head is kept.
        return fit_on_labels(state, inputs, teacher, rate, callbacks, baseline=record.get("val_accuracy"))

    title = f"[1/3] Teacher: fine-tuning the top {layers} layers of its backbone"
    teacher, tuned = state.stage("teacher-finetune", title, fine_tune)
    head_epochs = len(record["history"].get("loss", []))
    return teacher, {
        "seconds": record["seconds"] + tuned["seconds"],
        "history": {k: v + tuned["history"].get(k, []) for k, v in record["history"].items()},
        "best_epoch": head_epochs + tuned["best_epoch"] if tuned.get("best_epoch") else record.get("best_epoch"),
        "val_accuracy": tuned.get("val_accuracy", record.get("val_accuracy")),
    }


def distill(state, inputs, teacher, scratch):
    """Stage 3: the student distilled from the teacher, its `auto` settings chosen on validation.

    With `tune.enabled`, the KerasTuner search instead. `scratch` is
    `(model, record)` of stage 2: the search compares its trials with that
    student, the one the report shows.
    """
    tuning, epochs = state.config["tune"], state.config["training"]["epochs"]
    if tuning["enabled"]:
        title = f"[3/3] Tuning the distillation: {tuning['max_trials']} trials of {tuning['epochs'] or epochs} epochs (KerasTuner)"
        return state.stage("student", title, lambda callbacks: _search(state, inputs, teacher, scratch))
    settings, probe_epochs, unsearched = _search_plan(state)
    batches = _DistillationBatches(state, inputs, teacher, searching=probe_epochs is not None)
    default = settings[0]
    if probe_epochs is None:
        if unsearched:
            state.say(f"\n  {unsearched}")
        model, record = _distill_stage(state, inputs, teacher, batches, default, "student")
        return model, ({**record, "settings": {**record["settings"], "unsearched": unsearched}} if unsearched else record)
    found = _probe(state, inputs, teacher, batches, settings, probe_epochs) if probe_epochs else selection.Probe.unprobed(settings)
    challenger = found.challenger
    finalists = [
        _distill_stage(state, inputs, teacher, batches, default, "student"),
        _distill_stage(state, inputs, teacher, batches, challenger, "student-challenger"),
    ]
    scores = [record["val_accuracy"] for _, record in finalists]
    wins, margin = selection.choose(scores[0], scores[1], len(inputs.splits.val.x))
    found.rows[0]["final"], _row(found.rows, challenger)["final"] = scores
    (model, record), chosen = (finalists[1], challenger) if wins else (finalists[0], default)
    reason = (
        f"the challenger (alpha {challenger['alpha']:g}, T {challenger['temperature']:g}) scores {scores[1]:.4f} on "
        f"validation, the default (alpha {default['alpha']:g}, T {default['temperature']:g}) {scores[0]:.4f}: "
        + ("more than" if wins else "not more than")
        + f" one standard error ({margin:.4f}) {'above' if wins else 'above; the default is kept'}"
    )
    state.say(f"\nSettings search:\n{found.table()}\n  {reason}")
    search = {
        "rows": found.rows, "probe_epochs": found.epochs, "probe_seconds": found.seconds, "margin": margin,
        "reason": reason, "cached_views": batches.cached_views,
    }
    seconds = found.seconds + sum(finalist[1]["seconds"] for finalist in finalists)
    return model, {**record, "seconds": seconds, "settings": {**chosen, "search": search}}


def _row(rows, setting):
    return next(row for row in rows if row["alpha"] == setting["alpha"] and row["temperature"] == setting["temperature"])


class _DistillationBatches:
    """The distillation batches, the augmentation left to the Distiller and the steps of an epoch, made once.

    With augmentation cached on K views (`teacher_views`), or while settings
    are searched without augmentation (one view: every trial reads the
    teacher's outputs instead of running it), the teacher scores the
    training images once here; `cached_views` says how many views were
    cached for the search (None when the config asked for them, or none
    were). An epoch stays one pass over the training images: the cached
    views are a repeated stream read `steps` steps an epoch. A streamed
    transfer set's views are teacher shards in the resume state (a killed
    run resumes at its last finished shard), each image one of its views a
    pass.
    """

    def __init__(self, state, inputs, teacher, searching):
        self.state, self.inputs, self.teacher, self.searching, self.made = state, inputs, teacher, searching, None
        self.cached_views = None

    def __call__(self):
        if self.made is None:
            self.made = self._make()
        return self.made

    def _make(self):
        distillation, training = self.state.config["distillation"], self.state.config["training"]
        batches, augmentation = self.inputs.plan.distill, augment.build(distillation["augmentation"], seed=training["seed"])
        views = distillation["teacher_views"]
        # Streamed images are not cached in memory: the search's probes run the teacher as they train.
        splits = self.inputs.splits
        if not views and augmentation is None and self.searching and not (is_stream(splits.unlabeled) or is_stream(splits.train.x)):
            views = self.cached_views = 1
        if not views:
            return batches, augmentation, self.inputs.plan.steps
        if is_stream(self.inputs.splits.unlabeled):
            return self._sharded(views), None, self.inputs.plan.steps
        self.state.say(f"  scoring the training images with the teacher once{f' on {views} augmented views' if views > 1 else ''}")
        cached = cache_teacher_outputs(
            self.teacher, self.inputs.plan.teacher_pass, batch_size=training["batch_size"], shuffle=True,
            seed=training["seed"], augmentation=augmentation, views=views,
        )
        return cached.repeat(), None, _steps(self.state, self.inputs)

    def _sharded(self, views):
        distillation, training = self.state.config["distillation"], self.state.config["training"]
        splits, names = self.inputs.splits, distillation["augmentation"]
        on_views = f" on {views} views ({', '.join(names)})" if names else ""
        self.state.say(f"  scoring the {len(splits.unlabeled):,} streamed transfer images with the teacher once{on_views}, into teacher shards")
        # Several workers each score every shard, into a folder of their own: the output folder may not be shared.
        shards = score_to_shards(
            self.teacher, splits.unlabeled, os.path.join(self.state.own_state, "teacher-shards"), augmentation=names, views=views,
            seed=training["seed"], verbose=self.state.fit_verbose > 0,
        )
        return sharded_transfer_set(
            splits.train, splits.unlabeled, shards, self.teacher, batch_size=training["batch_size"],
            labeled_share=distillation["labeled_share"], seed=training["seed"],
        )


def _search_plan(state):
    """`(candidate settings, epochs of each probe, why auto values were not searched)`; the epochs are None when
    there is no search (every setting given, a budget too small, or several workers, each of which would search)
    and 0 when the one candidate besides the default needs no probe."""
    distillation, training = state.config["distillation"], state.config["training"]
    settings = selection.candidates(
        distillation["alpha"], distillation["temperature"],
        mixing=any(name in defaults.MIXING_AUGMENTATIONS for name in distillation["augmentation"]),
        uses_temperature=selection.uses_temperature(distillation["losses"]),
    )
    budget = distillation["search_budget"] * training["epochs"]
    epochs = None if training["strategy"] == "multi_worker" else selection.probe_epochs(settings, budget, training["epochs"])
    if epochs is not None or len(settings) == 1:
        return settings, epochs, None
    why = (
        "a multi_worker run does not search (each worker would)" if training["strategy"] == "multi_worker"
        else f"distillation.search_budget {distillation['search_budget']:g} × {training['epochs']} epochs cannot pay "
        f"for trying {len(settings)} settings"
    )
    return settings, None, (
        f"The auto settings take their defaults (alpha {settings[0]['alpha']:g}, T {settings[0]['temperature']:g}) "
        f"unsearched: {why}."
    )


def _probe(state, inputs, teacher, batches, settings, epochs):
    """The probe round of the settings search (a resumed run reads the one it finished)."""
    distillation, training = state.config["distillation"], state.config["training"]
    record = os.path.join(state.resume, "settings-probe.json")
    if os.path.isfile(record):
        with open(record, encoding="utf-8") as handle:
            found = selection.Probe(**json.load(handle))
        state.say("\n[3/3] Settings search: the probes finished before the interruption")
        return found
    auto = " and ".join(key for key in ("alpha", "temperature") if len({setting[key] for setting in settings}) > 1)
    state.say(
        f"\n[3/3] Settings search: choosing {auto} on the validation split. {len(settings) - 1} probes of {epochs} "
        f"epoch{'s' if epochs > 1 else ''}, then the default and the best probe trained in full: at most "
        f"{(len(settings) - 1) * epochs + training['epochs']} student epochs besides the distillation's own "
        f"(distillation.search_budget {distillation['search_budget']:g} × {training['epochs']})"
    )
    train, augmentation, steps = batches()
    found = selection.probe(
        teacher, lambda: new_model(state, inputs, "student"), train, inputs.plan.validation, settings, epochs,
        learning_rate=lambda count: schedules.learning_rate(training["learning_rate"], training["schedule"], count, _steps(state, inputs)),
        distillation_losses=distillation["losses"], augmentation=augmentation, steps_per_epoch=steps,
        seed=training["seed"], verbose=state.fit_verbose, say=state.say, scope=state.strategy.scope,
    )
    if state.is_chief:
        files.write_json(record, dataclasses.asdict(found))
    return found


def _distill_stage(state, inputs, teacher, batches, settings, key):
    methods = ", ".join(str(loss if isinstance(loss, str) else loss.get("name")) for loss in state.config["distillation"]["losses"])
    which = " (the best probe)" if key != "student" else ""
    title = f"[3/3] Distilled student{which} ({methods}, alpha={settings['alpha']:g}, T={settings['temperature']:g})"
    return state.stage(key, title, lambda callbacks: _distill(state, inputs, teacher, batches, settings, callbacks))


def _distill(state, inputs, teacher, batches, settings, callbacks):
    training = state.config["training"]
    train, augmentation, steps = batches()
    student = new_model(state, inputs, "student")
    state.say(f"  {student.name}: {student.count_params():,} parameters, {training['epochs']} epochs")
    with state.strategy.scope():
        distiller = Distiller(teacher=teacher, student=student, augmentation=augmentation)
        distiller.compile(
            optimizer=optimizer(state, inputs, training["learning_rate"]),
            metrics=["accuracy"],
            distillation_loss_fn=state.config["distillation"]["losses"],
            alpha=settings["alpha"],
            temperature=settings["temperature"],
        )
    model, history, extra = fit_to_best_epoch(state, inputs, distiller, student, train, callbacks, steps=steps)
    return model, history, {**extra, "settings": dict(settings)}


def _search(state, inputs, teacher, scratch):
    tuning, training, settings = state.config["tune"], state.config["training"], state.config["student"]
    epochs = tuning["epochs"] or training["epochs"]
    # The report's scratch student is the baseline when it had the trials' budget. It holds its best epoch's
    # weights: `tune` scores a given baseline at the last epoch of its history, so the history ends there.
    history = {key: values[: scratch[1]["best_epoch"]] for key, values in scratch[1]["history"].items()}
    baseline = (scratch[0], history) if epochs == training["epochs"] else None
    result = tune(
        teacher,
        lambda: model_specs.build_model(settings["model"], inputs.shape, inputs.classes, settings["weights"], "student", settings["backbone_size"]),
        inputs.plan.distill,
        inputs.plan.validation,
        temperature=config_lib.search_space(tuning["temperature"]),
        alpha=config_lib.search_space(tuning["alpha"]),
        methods=tuning["methods"],
        max_trials=tuning["max_trials"],
        epochs=epochs,
        # The run's own schedule over the trials' epochs: the search, the report and a rerun of the saved
        # config.yaml (which trains with it) describe the same training.
        learning_rate=schedules.learning_rate(training["learning_rate"], training["schedule"], epochs, _steps(state, inputs)),
        seed=training["seed"],
        verbose=state.fit_verbose,
        scratch=baseline,
        steps_per_epoch=inputs.plan.steps,
        scratch_data=inputs.plan.labels_only,
    )
    state.say(f"{result.table()}\n{result.verdict}")
    tuned = {"trials": result.trials, "best": result.best, "verdict": result.verdict, "gain": result.gain}
    curve = result.history.get("val_accuracy") or []
    best_epoch = int(np.argmax(curve)) + 1 if curve else None
    return result.student, result.history, {"tuning": tuned, "best_epoch": best_epoch}


def validation_scores(inputs, **models):
    """Each model's accuracy on the validation split, by the names given: scored once, read by every choice."""
    return {name: accuracy(model, *inputs.splits.val) for name, model in models.items()}


def save_models(state, trained):
    """Saves the run's models into its folder under their file names (without optimizer); returns the paths."""
    return [files.save_model(model, os.path.join(state.folder, filename), include_optimizer=False) for _, model, _, filename in trained]


def choose_student(state, trained, rows, validation):
    """The student the run exports: the distilled one, unless its scratch twin is the better bet on validation.

    Both students were taken at their best validation epoch by the same
    rule; the test split plays no part in the choice. The distilled student
    is shipped when it scores higher on validation, or the same while the
    teacher scores higher than the scratch twin (the lead distillation
    passes on); otherwise the scratch twin, which needs no teacher.
    `trained` and `rows` are the teacher's, the scratch student's and the
    distilled student's, in that order; `validation` holds the validation
    accuracy of `"teacher"`, `"scratch"` and `"distilled"`. Returns
    `{"model", "row", "label", "validation", "reason"}`.
    """
    teacher_score, scratch_score, student_score = (validation[name] for name in ("teacher", "scratch", "distilled"))
    scratch_row, student_row = rows[1], rows[2]
    scores = {scratch_row["model"]: scratch_score, student_row["model"]: student_score}
    if student_score > scratch_score or (student_score == scratch_score and teacher_score > scratch_score):
        model, row = trained[2][1], student_row
        tie = " (a tie, and the teacher leads the scratch twin)" if student_score == scratch_score else ""
        reason = f"it scores {student_score:.4f} on the validation split, the scratch twin {scratch_score:.4f}{tie}"
    else:
        model, row = trained[1][1], scratch_row
        lead = "" if student_score < scratch_score else f" (a tie, and the teacher, {teacher_score:.4f}, does not lead it)"
        reason = (
            f"the scratch twin scores {scratch_score:.4f} on the validation split, the {student_row['model']} "
            f"{student_score:.4f}{lead}: the run ships the better bet. A stronger teacher would help: more labels "
            "for it, more epochs (training.epochs), a backbone teacher (teacher.model: backbone:NAME) or its top "
            "layers fine-tuned (teacher.fine_tune_layers)"
        )
    state.say(f"\nShipped: the {row['model']}: {reason}.")
    return {"model": model, "row": row, "label": row["model"], "validation": scores, "reason": reason}


def check_teacher(state, inputs, validation):
    """Says, before distilling, when the teacher has little to teach; returns what it said.

    A teacher near chance, or no better than the student trained alone on
    the validation split, gives soft targets that cannot help the student.
    `validation` holds the validation accuracy of `"teacher"` and `"scratch"`.
    """
    teacher_accuracy, scratch_accuracy = validation["teacher"], validation["scratch"]
    chance = 1.0 / inputs.classes
    cautions = []
    if teacher_accuracy < 1.5 * chance:
        cautions.append(
            f"The teacher is near chance on the validation split ({teacher_accuracy:.4f}; chance is {chance:.4f}): "
            "it has nothing to teach. Train it longer (training.epochs), give it more labels, or start it from "
            "ImageNet weights (teacher.model: backbone:NAME)."
        )
    elif teacher_accuracy <= scratch_accuracy:
        cautions.append(
            f"The teacher ({teacher_accuracy:.4f} on the validation split) is no better than the student trained "
            f"alone ({scratch_accuracy:.4f}): distillation can add little. Use a stronger teacher (more epochs, "
            "ImageNet weights, fine_tune_layers)."
        )
    for caution in cautions:
        state.say(f"  Warning: {caution}")
    return cautions


def train_scratch(state, inputs):
    """Stage 2: the same student (same initial weights, epochs and batches) trained on the labels alone."""
    return state.stage("scratch", "[2/3] Same student from scratch", _fit_alone(state, inputs, "student"))


def export_and_measure(state, inputs, student, keras_path, label=report_lib.DISTILLED):
    """The export stage: the student as `.tflite` files, each measured through the interpreter on the test set.

    For each quantization: the plain file (`student_<quantization>.tflite`)
    and the app-ready classifier file (`student_<quantization>_classifier.tflite`:
    RGB in, probabilities out, metadata and labels), as `export.targets` asks.
    `label` names the student in the comparison, as the report's rows do.

    Returns:
        `(files, comparison)`: the `TFLiteResult`s and `export.compare`'s report.
    """
    settings, splits = state.config["export"], inputs.splits
    targets = settings["targets"]
    state.say(f"\nExport: the {label} to {', '.join(settings['quantizations'])} .tflite files ({', '.join(targets)})")
    names = None
    if "classifier" in targets:
        names, named = data_lib.label_names(splits)
        if not named:
            state.say(f"  The data names no classes: the classifier files' labels are the indices 0-{splits.num_classes - 1} (set data.class_names).")
    exported = []
    for quantization in settings["quantizations"]:
        if quantization == "int8":
            state.say(f"  calibrating int8 on {min(200, len(splits.train.x))} training samples")
        for target in targets:
            # int8 calibrates on it; a classifier file checks its normalization against it.
            calibration = splits.train.x[:200] if quantization == "int8" or target == "classifier" else None
            suffix = "" if target == "plain" else f"_{target}"
            options = {} if target == "plain" else {
                "class_names": names,
                "model_info": {"name": f"{student.name} (kerasdistill)", "version": os.path.basename(state.folder)},
            }
            exported.append(
                export.to_tflite(
                    student,
                    os.path.join(state.folder, f"student_{quantization}{suffix}.tflite"),
                    quantization=quantization,
                    representative_data=calibration,
                    target=target,
                    **options,
                )
            )
    state.say(f"  measuring each file through the LiteRT interpreter on {len(splits.test.x)} test samples")
    comparison = export.compare(
        student, [result.path for result in exported], splits.test, keras_path=keras_path, num_threads=1,
        keras_name=label,
    )
    return exported, comparison


