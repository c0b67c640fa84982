"""Scalar conversions for ``json:`` operations: ``convert``, ``date`` and exact ``scale``.

Pure functions on one JSON value each; a value that cannot be converted exactly raises
``OpError`` (never a rounded or guessed result). ``scale`` works in ``decimal.Decimal``
with ``Inexact`` trapped, so integer cents ⇄ decimal strings are exact both ways.

>>> convert_value("12", "int"), convert_value(True, "string")
(12, 'true')
>>> write_date(read_date("2024-03-05", "%Y-%m-%d"), "iso8601")
'2024-03-05'
>>> scale_value(-1205, Decimal(100), divide=True, as_="decimal_string", places=2)
'-12.05'
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime, timedelta
from decimal import (
    Clamped,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from typing import Final

from strangler.config.translate_model import ConvertTo
from strangler.translate.base import JSON
from strangler.translate.jsonpath import OpError, kind, show

__all__ = ["convert_value", "read_date", "scale_value", "to_decimal", "write_date"]

_DECIMAL: Final = re.compile(r"-?\d+(?:\.\d+)?")
_INTEGER: Final = re.compile(r"-?\d+")
_FLOAT: Final = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_TIME_FIELDS: Final = re.compile(r"%[HIMSfpXcTRrzZ]")
_MAX_EXACT_FLOAT_INT: Final = 2**53


def convert_value(value: JSON, to: ConvertTo) -> JSON:
    """``value`` as ``to`` (see ``JsonConvert``); ``null`` stays ``null``."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise OpError(f"cannot convert {kind(value)} to {to}")
    if to == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        return value if isinstance(value, str) else repr(value)
    if to == "int":
        if isinstance(value, bool):
            raise OpError(f"{show(value)} is a boolean, not a whole number")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INTEGER.fullmatch(value):
            return int(value)
        raise OpError(f"{show(value)} is not a whole number")
    if to == "float":
        if isinstance(value, bool):
            raise OpError(f"{show(value)} is a boolean, not a number")
        if isinstance(value, int):
            if abs(value) > _MAX_EXACT_FLOAT_INT:
                raise OpError(f"{value} is too large for an exact float")
            return float(value)
        if isinstance(value, float):
            return value
        if _FLOAT.fullmatch(value) and math.isfinite(number := float(value)):
            return number
        raise OpError(f"{show(value)} is not a number")
    # bool
    if isinstance(value, bool):
        return value
    if value in (0, 1) and isinstance(value, int):
        return value == 1
    if value in ("true", "false", "1", "0"):
        return value in ("true", "1")
    raise OpError(f'{show(value)} is not true/false, 0/1 or "true"/"false"')


# ---------------------------------------------------------------------------- dates


def _has_time(fmt: str) -> bool:
    return fmt in ("epoch", "epoch_ms") or (
        fmt != "iso8601" and _TIME_FIELDS.search(fmt) is not None
    )


def read_date(value: JSON, fmt: str) -> date | datetime:
    if fmt in ("epoch", "epoch_ms"):
        if isinstance(value, str) and not _DECIMAL.fullmatch(value):
            raise OpError(f"{show(value)} is not an epoch time")
        micros = to_decimal(value) * (1_000_000 if fmt == "epoch" else 1_000)
        if micros != micros.to_integral_value():
            raise OpError(f"{show(value)} is finer than a microsecond")
        try:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
        except OverflowError:
            raise OpError(f"{show(value)} is out of range") from None
    if not isinstance(value, str):
        raise OpError(f"{show(value)} is not a date string")
    try:
        if fmt == "iso8601":
            if "T" not in value and " " not in value and len(value) <= 10:
                return date.fromisoformat(value)
            return datetime.fromisoformat(value)
        parsed = datetime.strptime(value, fmt)
    except ValueError as err:
        raise OpError(f"{show(value)} does not fit {fmt!r}: {err}") from None
    return parsed if _has_time(fmt) else parsed.date()


def write_date(moment: date | datetime, fmt: str) -> JSON:
    if fmt == "iso8601":
        return moment.isoformat()
    if fmt in ("epoch", "epoch_ms"):
        if not isinstance(moment, datetime):
            moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        unit = 1_000_000 if fmt == "epoch" else 1_000
        if micros % unit:
            finer = "epoch_ms" if fmt == "epoch" else "iso8601"
            raise OpError(f"{moment.isoformat()} has a fraction of a {fmt} unit; write {finer}")
        return micros // unit
    return moment.strftime(fmt)


# ---------------------------------------------------------------------------- scale

_TRAPS: Final = [Inexact, InvalidOperation, DivisionByZero, Overflow, Clamped]


def to_decimal(value: JSON) -> Decimal:
    """An exact decimal from a JSON integer, a decimal string (``"-12.34"``: no exponent,
    no spaces) or a JSON number (the shortest decimal giving back its double)."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise OpError(f"{show(value)} is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise OpError(f"{value!r} is not a finite number")
        return Decimal(repr(value))
    if not _DECIMAL.fullmatch(value):
        raise OpError(f'{show(value)} is not a decimal like "-12.34"')
    return Decimal(value)


def scale_value(
    value: JSON, factor: Decimal, *, divide: bool, as_: str, places: int | None
) -> JSON:
    """``value`` times (or divided by) ``factor``, exactly, written ``as_``; raises
    ``OpError`` rather than round.

    >>> scale_value(1234, Decimal(100), divide=True, as_="decimal_string", places=2)
    '12.34'
    >>> scale_value("-0.05", Decimal(100), divide=False, as_="int", places=None)
    -5
    """
    number = to_decimal(value)
    digits = len(number.as_tuple().digits) + len(factor.as_tuple().digits)
    ctx = Context(prec=digits + 64, traps=_TRAPS)
    try:
        result = ctx.divide(number, factor) if divide else ctx.multiply(number, factor)
    except Inexact:
        raise OpError(f"{show(value)} / {factor} is not an exact decimal") from None
    if places is not None:
        try:
            result = result.quantize(Decimal(1).scaleb(-places), context=ctx)
        except (Inexact, InvalidOperation):
            raise OpError(f"{result} has more than {places} decimal places") from None
    if result.is_zero():
        result = result.copy_abs()  # no "-0.00"
    if as_ == "decimal_string":
        return format(result, "f")
    if result != result.to_integral_value():
        if as_ == "int":
            raise OpError(f"{format(result, 'f')} is not a whole number")
        as_float = float(result)
        if Decimal(repr(as_float)) != result:
            raise OpError(f"{result} has no exact JSON number; write as: decimal_string")
        return as_float
    return int(result)
