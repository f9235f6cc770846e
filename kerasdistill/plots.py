"""PNG plots for run reports (matplotlib, no display needed), written atomically."""

import os

from kerasdistill.files import atomic_path


# One palette and one marker per model, in every plot of a run.
COLORS = ("tab:gray", "tab:orange", "tab:blue", "tab:green", "tab:purple", "tab:red", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
MARKERS = ("s", "^", "o", "D", "v", "P", "X", "*", "<", ">")


def _figure(columns=1, sharey=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(6 * columns, 4.4), squeeze=False, sharey=sharey)


def _style(index):
    return {"color": COLORS[index % len(COLORS)], "marker": MARKERS[index % len(MARKERS)]}


def _save(figure, path):
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)
    return os.fspath(path)


def training_curves(histories, path):
    """Accuracy and cross-entropy on the labels per epoch, training and validation, one colour per model.

    The loss panel plots the same quantity for every model: the
    cross-entropy with the labels (a distilled model's `student_loss`, not
    its total loss, which adds the T²-scaled distillation term).

    Args:
        histories: `{label: keras History.history dict}`.
        path: the `.png` file to write.

    Returns:
        The path.

    Example:

    ```python
    training_curves({"teacher": h1.history, "student": h2.history}, "curves.png")
    ```
    """
    figure, axes = _figure(2)
    longest = 1
    for index, (label, history) in enumerate(histories.items()):
        loss = "student_loss" if "student_loss" in history else "loss"
        for axis, key in zip(axes[0], ("accuracy", loss)):
            for prefix, line in (("", "-"), ("val_", "--")):
                values = history.get(prefix + key)
                if values:
                    longest = max(longest, len(values))
                    split = "validation" if prefix else "training"
                    axis.plot(range(1, len(values) + 1), values, line, label=f"{label} ({split})", markersize=4, **_style(index))
    for axis, title in zip(axes[0], ("accuracy", "cross-entropy on the labels")):
        axis.set_xlim(0.5, longest + 0.5)
        axis.set_xticks(range(1, longest + 1, max(1, longest // 10)))
        axis.set_xlabel("epoch")
        axis.set_ylabel(title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0][0].set_title("accuracy (higher is better)")
    axes[0][1].set_title("cross-entropy with the labels (lower is better)")
    return _save(figure, path)


def accuracy_vs_size(rows, path):
    """Test accuracy against file size, and against latency where measured; a legend names each model.

    Args:
        rows: dicts with `model`, `size_kib`, `accuracy` and optionally
            `latency_ms`; a row named `teacher` is also drawn as a
            reference line in every panel.
        path: the `.png` file to write.

    Returns:
        The path.
    """
    with_latency = [r for r in rows if r.get("latency_ms") is not None]
    figure, axes = _figure(2 if with_latency else 1, sharey=True)
    panels = [("size_kib", "file size (KiB, log scale)")]
    if with_latency:
        panels.append(("latency_ms", "latency (ms per image, batch of one)"))
    teacher = next((r for r in rows if r["model"] == "teacher"), None)
    for axis, (key, label) in zip(axes[0], panels):
        for index, row in enumerate(rows):
            if row.get(key):
                axis.scatter(row[key], row["accuracy"], s=60, label=row["model"], **_style(index))
        if teacher is not None:
            axis.axhline(teacher["accuracy"], color=COLORS[0], linestyle=":", linewidth=1, label="teacher accuracy")
        if key == "size_kib":
            axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    axes[0][0].set_ylabel("test accuracy")
    return _save(figure, path)


def tuning_trials(trials, path):
    """Validation accuracy per tuning trial (bars from 0, values written on them), the scratch baseline as a line.

    Args:
        trials: the rows of `TuneResult.trials` (the scratch row last).
        path: the `.png` file to write.

    Returns:
        The path.
    """
    figure, axes = _figure(1)
    axis = axes[0][0]
    runs = [t for t in trials if t["trial"] != "scratch"]
    scratch = [t for t in trials if t["trial"] == "scratch"]
    labels = [f"{t['method']}\nT={t['temperature']:.3g} a={t['alpha']:.2f}" for t in runs]
    bars = axis.bar(range(len(runs)), [t["val_accuracy"] for t in runs], color=COLORS[2])
    axis.bar_label(bars, fmt="%.4f", label_type="center", color="white", fontsize=8)
    axis.set_xticks(range(len(runs)), labels, fontsize=6)
    if scratch:
        axis.axhline(scratch[0]["val_accuracy"], color=COLORS[1], linestyle="--", label=f"scratch student ({scratch[0]['val_accuracy']:.4f})")
        axis.legend(fontsize=8, loc="lower right")
    axis.set_ylim(0.0, 1.05)
    axis.set_ylabel("validation accuracy")
    axis.set_title("distillation settings tried")
    return _save(figure, path)


def pareto_plot(path, files, fronts, chosen, teacher):
    """Test accuracy against file size and against latency: every measured file, the front, the chosen one.

    Args:
        path: the `.png` file to write.
        files: `compress`'s measured files (`file`, `quantization`,
            `size_kib`, `latency_ms`, `test_accuracy`).
        fronts: `{"size_kib": names, "latency_ms": names}`: the files on the
            Pareto front of accuracy against each.
        chosen: the chosen file's record, or None.
        teacher: the teacher's record (its test accuracy and int8 file).

    Returns:
        The path.
    """
    figure, axes = _figure(2, sharey=True)
    for axis, key, label in zip(axes[0], ("size_kib", "latency_ms"), ("file size (KiB, log scale)", "latency per image (ms, log scale)")):
        for index, quantization in enumerate(sorted({file["quantization"] for file in files})):
            shown = [file for file in files if file["quantization"] == quantization]
            axis.scatter([f[key] for f in shown], [f["test_accuracy"] for f in shown], label=quantization, alpha=0.8, **_style(index + 1))
        on_front = sorted((file for file in files if file["file"] in fronts[key]), key=lambda file: file[key])
        if len(on_front) > 1:
            axis.step([f[key] for f in on_front], [f["test_accuracy"] for f in on_front], where="post", color="black", linewidth=1, label="Pareto front")
        for file in on_front:
            axis.annotate(file["file"].removesuffix(".tflite"), (file[key], file["test_accuracy"]), fontsize=6, xytext=(3, -8), textcoords="offset points")
        axis.axhline(teacher["test_accuracy"], color="tab:gray", linestyle="--", linewidth=1, label="teacher (Keras)")
        axis.scatter([teacher["int8"][key]], [teacher["int8"]["test_accuracy"]], color="tab:gray", marker="s", label="teacher int8")
        if chosen is not None:
            axis.scatter([chosen[key]], [chosen["test_accuracy"]], s=220, facecolors="none", edgecolors="tab:red", linewidths=2, label="chosen")
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (LiteRT)")
    axes[0][0].legend(fontsize=8, loc="lower right")
    return _save(figure, path)
