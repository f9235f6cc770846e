"""Predictions and classification metrics: accuracy, macro precision/recall/F1, confusion matrix."""

import numpy as np
from keras import ops

from kerasdistill.batch import label_indices_numpy


def class_indices(y):
    """Class indices from sparse labels or one-hot rows."""
    return label_indices_numpy(y)


def classification_report(y_true, y_pred, num_classes=None):
    """Scores class predictions against labels.

    Args:
        y_true: labels, as class indices or one-hot rows.
        y_pred: predicted class indices, or scores (one row per sample; the
            arg-max is taken).
        num_classes: the number of classes; default: read from the data.

    Returns:
        A dict: `accuracy`, `precision_macro`, `recall_macro`, `f1_macro`
        (means over the classes that occur in the labels or predictions) and
        `confusion_matrix` (rows: true class, columns: predicted class).

    Example:

    ```python
    report = classification_report(y_test, model.predict(x_test))
    print(report["f1_macro"], report["confusion_matrix"][3][5])
    ```
    """
    y_true = class_indices(y_true)
    y_pred = np.asarray(y_pred)
    if y_pred.ndim > 1 and y_pred.shape[-1] > 1:
        num_classes = num_classes or y_pred.shape[-1]
        y_pred = np.argmax(y_pred, axis=-1)
    y_true, y_pred = y_true.reshape(-1).astype(np.int64), y_pred.reshape(-1).astype(np.int64)
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"Need as many predictions as labels, at least one; got {len(y_pred)} and {len(y_true)}.")
    num_classes = int(num_classes or max(y_true.max(), y_pred.max()) + 1)
    confusion = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    correct = np.diag(confusion).astype(np.float64)
    predicted, actual = confusion.sum(axis=0), confusion.sum(axis=1)
    present = (predicted + actual) > 0
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, actual, out=np.zeros_like(correct), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(correct), where=precision + recall > 0)
    return {
        "accuracy": float(correct.sum() / len(y_true)),
        "precision_macro": float(precision[present].mean()),
        "recall_macro": float(recall[present].mean()),
        "f1_macro": float(f1[present].mean()),
        "confusion_matrix": confusion.tolist(),
    }


def input_batches(x, batch_size):
    """`x` in batches of `batch_size`: slices of an array, or a stream's images read in order (never all at once)."""
    if hasattr(x, "batches"):
        return x.batches(batch_size)
    return (x[i : i + batch_size] for i in range(0, len(x), batch_size))


def keras_outputs(model, x, batch_size=256, prepare=None):
    """The Keras model's outputs on `x` (an array or a stream) in inference mode, as one numpy array; `prepare`
    maps each batch first."""
    prepare = prepare or (lambda batch: batch)
    return np.concatenate([ops.convert_to_numpy(model(prepare(batch), training=False)) for batch in input_batches(x, batch_size)])


def accuracy(model, x, y):
    """Top-1 accuracy of `model` (in inference mode) on `(x, y)`: arrays, or `x` a stream."""
    return float(np.mean(np.argmax(keras_outputs(model, x), axis=-1) == class_indices(y)))
