"""The run's report: the rows of each model, report.json, config.yaml, the plots and the tables."""

import datetime
import os
import platform
import sys

from kerasdistill import files, plots
from kerasdistill.metrics import classification_report, keras_outputs
from kerasdistill.tables import format_table
from kerasdistill.tuning import LABELS_ONLY_METHOD

DISTILLED = "student (distilled)"
# The search's answer when no trial beat the scratch student: that student, trained on the labels alone.
LABELS_ONLY = "student (labels only)"

TABLE_COLUMNS = [
    ("model", "model", None),
    ("params", "params", ",d"),
    ("size_kib", "size (KiB)", ".1f"),
    ("test_accuracy", "test accuracy", ".4f"),
    ("f1_macro", "F1 (macro)", ".4f"),
    ("best_epoch", "epoch kept", "d"),
    ("train_seconds", "train time (s)", ".1f"),
]


def file_size_kib(path):
    """Size of the file at `path` in KiB."""
    return os.path.getsize(path) / 1024.0


def student_label(record):
    """The label of the run's student: `LABELS_ONLY` when the search kept the scratch student, else `DISTILLED`."""
    best = record.get("tuning", {}).get("best", {})
    return LABELS_ONLY if best.get("method") == LABELS_ONLY_METHOD else DISTILLED


def model_rows(trained, paths, splits):
    """Scores each trained model on the test split.

    Args:
        trained: `(label, model, record, filename)` tuples, the record
            holding the training `seconds`.
        paths: the files the models were saved to, in the same order.
        splits: the run's `Splits`.

    Returns:
        `(rows, confusion)`: one dict per model (params, size, test
        accuracy, macro scores, train time, path), and the confusion
        matrices by label.
    """
    rows, confusion = [], {}
    for (label, model, record, _), path in zip(trained, paths):
        scores = classification_report(splits.test.y, keras_outputs(model, splits.test.x), splits.num_classes)
        confusion[label] = scores.pop("confusion_matrix")
        rows.append(
            {
                "model": label,
                "params": int(model.count_params()),
                "size_kib": file_size_kib(path),
                "test_accuracy": scores.pop("accuracy"),
                **scores,
                "train_seconds": record["seconds"],
                "best_epoch": record.get("best_epoch"),
                "path": path,
            }
        )
    return rows, confusion


def build(state, splits, rows, confusion, trained, exported, cautions=(), shipped=None):
    """Assembles the run's report and writes report.json, config.yaml and the plots into the run folder.

    `rows` are teacher, scratch student and distilled student in that
    order; `exported` is `(files, comparison)` from the export stage;
    `cautions` are the warnings the run gave (kept under `"warnings"`);
    `shipped` is the choice of the student the run exports
    (`pipeline.choose_student`), kept under `"shipped"`.
    """
    results, comparison = exported
    gain = 100 * (rows[2]["test_accuracy"] - rows[1]["test_accuracy"])
    if rows[2]["model"] == LABELS_ONLY:
        verdict = (
            "No distillation setting the search tried beat the same student trained alone on the labels (validation "
            f"split): the run's student is that scratch student ({rows[2]['test_accuracy']:.4f}, test set)"
        )
    else:
        verdict = (
            f"The distilled student is {abs(gain):.2f} points {'above' if gain >= 0 else 'below'} the same student "
            f"trained alone on the labels ({rows[2]['test_accuracy']:.4f} vs {rows[1]['test_accuracy']:.4f}, test set)"
        )
    verdict += "." if splits.unlabeled is None else f", with {len(splits.unlabeled)} unlabeled images in the transfer set."
    for row in comparison["rows"]:
        confusion[row["model"]] = row.pop("confusion_matrix")
    records = {"teacher": trained[0][2], "scratch": trained[1][2], "distilled": trained[2][2]}
    report = {
        "run_folder": state.folder,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "config": state.config,
        "models": rows,
        "table": format_table(rows, TABLE_COLUMNS),
        "gain_points": gain,
        "verdict": verdict,
        "warnings": list(cautions),
        "shipped": None if shipped is None else {key: shipped[key] for key in ("label", "validation", "reason")},
        "confusion_matrices": confusion,
        "histories": {label: record["history"] for label, record in records.items()},
        "export": {
            "files": [result.to_dict() for result in results],
            "models": comparison["rows"],
            "table": comparison["table"],
        },
    }
    if "tuning" in records["distilled"]:
        report["tuning"] = records["distilled"]["tuning"]
    if "settings" in records["distilled"]:
        report["settings"] = records["distilled"]["settings"]
    if state.config["report"]["plots"]:
        report["plots"] = _plots(report, state.folder, rows)
    if "tuning" in report:
        config = _tuned_config(state.config, report["tuning"]["best"])
    else:
        config = _chosen_config(state.config, report.get("settings"))
    files.write_bytes(os.path.join(state.folder, "config.yaml"), _config_yaml(config).encode("utf-8"))
    files.write_json(os.path.join(state.folder, "report.json"), _relative_paths(report, state.folder))
    return report


def summary(report):
    """What the run prints at its end: the tables, the verdict and where the files are."""
    shipped = (report.get("shipped") or {}).get("label", report["models"][2]["model"])
    lines = [
        f"\n{report['table']}\n\nThe shipped {shipped} as a Keras model and as .tflite files "
        "(test set; latency per image, batch of one, after warm-up, on the runtime and threads listed):",
        report["export"]["table"],
        f"\n{report['verdict']}",
    ]
    if report.get("shipped"):
        lines.append(f"Shipped: the {shipped}: {report['shipped']['reason']}.")
    if "tuning" in report:
        trials = len(report["tuning"]["trials"]) - 1
        lines.append(f"{report['tuning']['verdict']} The {report['models'][2]['model']}'s train time is the whole search ({trials} trials).")
    lines += [f"Warning: {caution}" for caution in report["warnings"]]
    lines.append(f"\nSaved the models, the .tflite files, plots, config.yaml and report.json in {report['run_folder']}")
    return "\n".join(lines)


def _plots(report, folder, rows):
    made = {}
    curves = {label: history for label, history in report["histories"].items() if history}
    if curves:
        made["training_curves"] = plots.training_curves(curves, os.path.join(folder, "training_curves.png"))
    points = [{"model": r["model"], "size_kib": r["size_kib"], "accuracy": r["test_accuracy"]} for r in rows[:2]]
    points += [
        {
            "model": r["model"] if r["model"].endswith(".tflite") else f"{r['model']}, Keras",
            "size_kib": r["size_kib"],
            "accuracy": r["accuracy"],
            "latency_ms": r["latency_ms"],
        }
        for r in report["export"]["models"]
        # A classifier file (it names its classes) is its plain file plus a softmax and metadata: the same point.
        if not r.get("class_names")
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


def _tuned_config(config, best):
    """The run's config with the settings the search chose, so that config.yaml repeats the student without a search."""
    tuned = {section: dict(values) for section, values in config.items()}
    tuned["tune"]["enabled"] = False
    tuned["distillation"]["alpha"] = float(best["alpha"])
    if best["method"] != LABELS_ONLY_METHOD:
        tuned["distillation"]["losses"] = [best["method"]]
        tuned["distillation"]["temperature"] = float(best["temperature"])
    return tuned


def _chosen_config(config, settings):
    """The run's config with the alpha and temperature its distillation used (each `auto` one resolved), so that
    config.yaml repeats the student without a search."""
    if settings is None:
        return config
    chosen = {section: dict(values) for section, values in config.items()}
    chosen["distillation"]["alpha"] = float(settings["alpha"])
    chosen["distillation"]["temperature"] = float(settings["temperature"])
    # The search trained its finalists on the teacher's cached outputs: so does the run config.yaml repeats.
    views = (settings.get("search") or {}).get("cached_views")
    if views and not chosen["distillation"]["teacher_views"]:
        chosen["distillation"]["teacher_views"] = views
    return chosen


def versions():
    """The versions a run's numbers depend on: Python, kerasdistill, Keras and its backend, NumPy."""
    import keras
    import numpy

    from kerasdistill.backend import backend_name
    from kerasdistill.version import __version__

    found = {"python": platform.python_version(), "kerasdistill": __version__, "keras": keras.__version__,
             "backend": backend_name(), "numpy": numpy.__version__}
    for package in ("tensorflow", "jax", "torch"):
        module = sys.modules.get(package)
        if module is not None:
            found[package] = module.__version__
    return found


def _relative_paths(report, folder):
    """report.json names the run's files relative to the run folder, so that the folder can move."""

    def relative(value):
        if isinstance(value, dict):
            return {key: relative(item) if key != "run_folder" else item for key, item in value.items()}
        if isinstance(value, list):
            return [relative(item) for item in value]
        if isinstance(value, str) and os.path.isabs(value) and os.path.commonpath([value, folder]) == folder:
            return os.path.relpath(value, folder)
        return value

    return relative(report)
