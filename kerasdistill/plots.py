"""PNG plots for run reports (matplotlib, no display needed), written atomically."""

import os

from kerasdistill.files import atomic_path


def _figure(columns=1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, columns, figsize=(6 * columns, 4.2), squeeze=False)


def _save(figure, path):
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    plt.close(figure)
    return os.fspath(path)


def training_curves(histories, path):
    """Accuracy and validation accuracy per epoch, one line pair per model.

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
    for label, history in histories.items():
        for axis, key in zip(axes[0], ("accuracy", "loss")):
            if key in history:
                epochs = range(1, len(history[key]) + 1)
                line = axis.plot(epochs, history[key], label=f"{label} (train)")[0]
                if f"val_{key}" in history:
                    axis.plot(epochs, history[f"val_{key}"], "--", color=line.get_color(), label=f"{label} (val)")
    from matplotlib.ticker import MaxNLocator

    for axis, title in zip(axes[0], ("accuracy", "loss")):
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    return _save(figure, path)


def accuracy_vs_size(rows, path):
    """Test accuracy against file size (and against latency where measured).

    Args:
        rows: dicts with `model`, `size_kb`, `accuracy` and optionally
            `latency_ms`.
        path: the `.png` file to write.

    Returns:
        The path.
    """
    with_latency = [r for r in rows if r.get("latency_ms") is not None]
    figure, axes = _figure(2 if with_latency else 1)
    panels = [("size_kb", "size (KiB, log scale)", rows)]
    if with_latency:
        panels.append(("latency_ms", "latency (ms/image)", with_latency))
    for axis, (key, label, points) in zip(axes[0], panels):
        points = [p for p in points if p.get(key)]
        axis.scatter([p[key] for p in points], [p["accuracy"] for p in points])
        for point in points:
            axis.annotate(point["model"], (point[key], point["accuracy"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if key == "size_kb":
            axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("test accuracy")
        axis.grid(alpha=0.3)
    return _save(figure, path)


def tuning_trials(trials, path):
    """Validation accuracy per tuning trial, the scratch baseline as a line.

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
    axis.bar(range(len(runs)), [t["val_accuracy"] for t in runs], color="tab:blue")
    axis.set_xticks(range(len(runs)), labels, fontsize=6)
    if scratch:
        axis.axhline(scratch[0]["val_accuracy"], color="tab:red", linestyle="--", label="scratch student")
        axis.legend(fontsize=8)
    low = min(t["val_accuracy"] for t in trials)
    axis.set_ylim(max(0.0, low - 0.05), 1.0)
    axis.set_ylabel("validation accuracy")
    axis.set_title("distillation settings tried")
    return _save(figure, path)
