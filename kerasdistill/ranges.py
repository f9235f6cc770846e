"""The one range check behind every numeric argument, config key and flag.

Callers word their own errors (they know the argument's name and meaning);
whether a value is allowed is decided here only.
"""

import math
import numbers


def in_range(value, low=None, high=None, low_open=False, whole=False):
    """True when `value` is a finite real number (a whole one with `whole`) in the range.

    Args:
        value: anything; booleans and non-numbers are out of every range.
        low: the lower bound, or None.
        high: the upper bound (included), or None.
        low_open: exclude `low` itself.
        whole: accept integers only.
    """
    kind = numbers.Integral if whole else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return high is None or value <= high


def describe(low=None, high=None, low_open=False):
    """The range in words for an error message: `in (0, 100]`, `>= 1`, ..."""
    if high is None:
        return f"{'>' if low_open else '>='} {_text(low)}"
    if low is None:
        return f"<= {_text(high)}"
    return f"in {'(' if low_open else '['}{_text(low)}, {_text(high)}]"


def batch_split(batch_size, labeled_share):
    """The labeled and unlabeled rows of each transfer-set batch, `(labeled, unlabeled)`.

    Raises:
        ValueError: naming both values, when the rounding leaves a batch no
            unlabeled row, or no labeled row for a `labeled_share` above 0.
    """
    labeled = int(round(batch_size * labeled_share))
    if labeled < batch_size and (labeled or not labeled_share):
        return labeled, batch_size - labeled
    missing = "unlabeled" if labeled == batch_size else "labeled"
    fix = (
        f"a labeled_share from 1/{batch_size} to {batch_size - 1}/{batch_size} (0 for no labels), or a larger batch_size"
        if batch_size > 1
        else "a batch_size of at least 2 (a labeled and an unlabeled row), or labeled_share 0"
    )
    raise ValueError(
        f"batch_size {batch_size} with labeled_share {labeled_share:g} gives {labeled} labeled and "
        f"{batch_size - labeled} unlabeled rows per batch: no {missing} rows. Give {fix}."
    )


def _text(number):
    return str(number) if isinstance(number, numbers.Integral) else f"{number:g}"
