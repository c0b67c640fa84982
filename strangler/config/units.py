"""Human units in config files to base units: durations to seconds, sizes to bytes,
percentages to ratios.

>>> duration("250ms"), duration("2s"), duration("5m"), duration(3)
(0.25, 2.0, 300.0, 3.0)
>>> size("1MiB"), size("10kb"), size(512)
(1048576, 10000, 512)
>>> percent("10%"), percent(0.1), percent("0.1%")
(0.1, 0.001, 0.001)

Each function raises ``ValueError`` with a message meant for a human.

A config file is read with the stricter ``config_percent`` and, for durations whose
plausible values are small, ``bare_seconds_below(limit)``: a bare number that a
person may have meant in another unit is refused with both readings, so
``latency_p99: 300`` (300 seconds? or 300 ms?) does not pass silently.

>>> config_percent(0.5)
Traceback (most recent call last):
...
ValueError: 0.5 is ambiguous: 0.5% or a ratio (50%)? write 0.5% or 50%
>>> bare_seconds_below(10)(300)
Traceback (most recent call last):
...
ValueError: 300 seconds? write 300ms or 300s
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Final

_DURATION: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_SCALE: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_DURATION: Final = 366 * 24 * 3600.0
"""The longest duration (a year): longer ones overflow event-loop timers."""
_PERCENT: Final = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*%\s*$")
_SIZE: Final = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_SCALE: Final = {
    "b": 1, "kb": 10**3, "kib": 1 << 10, "mb": 10**6, "mib": 1 << 20,
    "gb": 10**9, "gib": 1 << 30, None: 1,
}  # fmt: skip


def _got(value: object) -> str:
    """``value`` as a message shows it: a list or a mapping is named, not printed."""
    if isinstance(value, list | dict):
        return "a list" if isinstance(value, list) else "a mapping"
    return repr(value)


def duration(value: object) -> float:
    """``"250ms"``, ``"2s"``, ``"5m"``, ``"1h"`` or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like '2s' or '250ms', got {_got(value)}")
    seconds: float | None = None
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _DURATION_SCALE[m.group(2)]
    if seconds is None:
        raise ValueError(f"expected a duration like '2s' or '250ms', got {_got(value)}")
    if not (math.isfinite(seconds) and seconds <= MAX_DURATION):  # .inf, 1e999s
        raise ValueError(f"a duration must be at most a year (366 days), got {value!r}")
    return seconds


def size(value: object) -> int:
    """``"10kb"``, ``"1MiB"`` or a bare number of bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value!r}")
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        unit = m.group(2).lower() if m.group(2) else None
        return int(m.group(1)) * _SIZE_SCALE[unit]
    raise ValueError(f"expected a size like '1MiB' or '64kb', got {_got(value)}")


def percent(value: object) -> float:
    """``"10%"`` or a bare number of percent (``10``), as a ratio in [0, 1]."""
    if isinstance(value, bool):
        raise ValueError(f"expected a percentage like '10%', got {_got(value)}")
    number: float
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and (m := _PERCENT.match(value)):
        number = float(m.group(1))  # not 1e2%, nan%, +5%: the schema's pattern refuses them
    else:
        raise ValueError(f"expected a percentage like '10%', got {_got(value)}")
    if not 0.0 <= number <= 100.0 or str(value).lstrip().startswith("-"):  # -0%
        raise ValueError(f"a percentage must be between 0% and 100%, got {value!r}")
    return number / 100.0


def config_percent(value: object) -> float:
    """``percent`` for config files: a bare number from 0 to 1 (``0.5``, ``1``) is
    refused, since it reads as a percentage and as a ratio alike."""
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1:
        shown, as_ratio = f"{value:g}", f"{value * 100:g}%"
        raise ValueError(
            f"{shown} is ambiguous: {shown}% or a ratio ({as_ratio})? write {shown}% or {as_ratio}"
        )
    return percent(value)


def bare_seconds_below(limit: float) -> Callable[[object], float]:
    """``duration`` for a key whose values are small: a bare number of ``limit`` or
    more is refused (likely meant as milliseconds); one with a unit always passes."""

    def parse(value: object) -> float:
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= limit:
            raise ValueError(f"{value:g} seconds? write {value:g}ms or {value:g}s")
        return duration(value)

    return parse
