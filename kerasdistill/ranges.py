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


def _text(number):
    return str(number) if isinstance(number, numbers.Integral) else f"{number:g}"
