# SPDX-License-Identifier: Apache-2.0
"""Argument checks for Loader and pack: exact, and naming the argument and
its range, so a value the C types cannot hold is refused here, in words,
instead of being truncated or wrapped on its way in."""
import math
import numbers

# int_arg(name, value, lo, hi, *, none=False): value as an int in lo..hi, or
# None when `none` allows it; anything with __index__ (numpy integers too)
# but bool: True as a batch size is a mistake, not a 1. TypeError or
# ValueError naming the argument. The extension's own check, so Python and
# C take an integer by one rule.
from ._numafeed import int_arg  # noqa: F401

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1


def seconds_arg(name, value):
    """value as seconds >= 0 (a float; inf allowed), or None."""
    if value is None:
        return None
    want = f"{name} must be None or a number of seconds >= 0"
    if isinstance(value, bool):
        raise TypeError(f"{want}, not a bool ({value!r})")
    if not isinstance(value, numbers.Real):
        raise TypeError(f"{want}, not {value!r}")
    v = float(value)
    if math.isnan(v) or v < 0:
        raise ValueError(f"{want}, not {v}")
    return v
