"""The checks of a loss's arguments: its temperature and its weight."""

from kerasdistill.defaults import MAX_TEMPERATURE
from kerasdistill.ranges import in_range


def check_temperature(temperature, allow_none=False):
    """Returns `temperature` as a float, or raises a ValueError saying what to pass."""
    if temperature is None and allow_none:
        return None
    if not in_range(temperature, 0.0, MAX_TEMPERATURE, low_open=True):
        raise ValueError(
            f"temperature must be a number in (0, {MAX_TEMPERATURE:g}] (typical values 1 to 10; above "
            f"{MAX_TEMPERATURE:g} float32 loses the loss); got {temperature!r}."
        )
    return float(temperature)


def check_weight(weight, what="weight"):
    """Returns a loss weight as a float, or raises a ValueError saying what to pass."""
    if not in_range(weight, 0.0):
        raise ValueError(f"{what} must be a finite number >= 0; got {weight!r}.")
    return float(weight)
