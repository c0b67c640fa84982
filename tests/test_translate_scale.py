"""``scale`` is exact: integer cents ⇄ decimal strings over many values, never floats.

Property-style: a seeded generator gives thousands of values (negatives, zero, values
near the rounding edges, far beyond a double's 53 bits), each checked against a
result computed with integer arithmetic only.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from decimal import Decimal

import pytest

from strangler.translate.json_values import scale_value
from strangler.translate.jsonpath import OpError
from tests.translate_support import dumps, loads, plan_of, request


def integers(seed: int, count: int = 3000) -> Iterator[int]:
    rnd = random.Random(seed)
    yield from (0, 1, -1, 99, -99, 100, -100, 101, -101, 10**30 + 7, -(10**30) - 7, 2**53 + 1)
    for _ in range(count):
        digits = rnd.choice((1, 2, 3, 5, 9, 15, 17, 25, 40))
        yield rnd.randrange(-(10**digits), 10**digits)


def as_string(n: int, places: int) -> str:
    """``n / 10**places`` written with exactly ``places`` decimals, by integer arithmetic."""
    sign = "-" if n < 0 else ""
    whole, frac = divmod(abs(n), 10**places)
    return f"{sign}{whole}.{frac:0{places}d}" if places else f"{sign}{whole}"


@pytest.mark.parametrize("places", [0, 1, 2, 3, 6])
def test_integer_to_decimal_string_and_back(places: int) -> None:
    factor = Decimal(10**places)
    for n in integers(seed=places):
        text = scale_value(n, factor, divide=True, as_="decimal_string", places=places)
        assert text == as_string(n, places), n
        back = scale_value(text, factor, divide=False, as_="int", places=None)
        assert back == n, text
        assert type(back) is int


def test_decimal_strings_to_cents_and_back() -> None:
    rnd = random.Random(7)
    for _ in range(3000):
        whole = rnd.randrange(0, 10 ** rnd.choice((1, 3, 8, 20)))
        cents = rnd.randrange(0, 100)
        sign = rnd.choice(("", "-"))
        text = f"{sign}{whole}.{cents:02d}"
        n = scale_value(text, Decimal(100), divide=False, as_="int", places=None)
        assert n == (-1 if sign and (whole or cents) else 1) * (whole * 100 + cents)
        expected = text if n or not sign else text[1:]  # "-0.00" comes back as "0.00"
        assert scale_value(n, Decimal(100), divide=True, as_="decimal_string", places=2) == expected


def test_json_numbers_with_two_decimals_scale_exactly() -> None:
    """What a JSON producer writes for an amount (``0.07``) gives exactly its cents,
    although ``0.07 * 100`` in floats is ``7.000000000000001``."""
    assert 0.07 * 100 != 7  # the float trap this avoids
    rnd = random.Random(11)
    for _ in range(3000):
        cents = rnd.randrange(-(10**13), 10**13)
        number = json.loads(json.dumps(cents / 100))
        assert scale_value(number, Decimal(100), divide=False, as_="int", places=None) == cents


def test_leading_zeros_and_whole_strings() -> None:
    assert scale_value("007.50", Decimal(100), divide=False, as_="int", places=None) == 750
    assert scale_value("12", Decimal(100), divide=False, as_="int", places=None) == 1200
    assert scale_value("-0", Decimal(100), divide=False, as_="int", places=None) == 0


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (1, {"divide": True, "as_": "decimal_string", "places": None}, "1 / 3 is not an exact"),
        ("0.001", {"divide": False, "as_": "int", "places": None}, "0.300 is not a whole number"),
        ("1.00001", {"divide": False, "as_": "decimal_string", "places": 2}, "more than 2 decimal"),
        (" 1.00", {"divide": False, "as_": "int", "places": None}, "is not a decimal like"),
        ("1.", {"divide": False, "as_": "int", "places": None}, "is not a decimal like"),
        ("NaN", {"divide": False, "as_": "int", "places": None}, "is not a decimal like"),
        (None, {"divide": False, "as_": "int", "places": None}, "null is not a number"),
    ],
)
def test_never_rounds(value: str | int | None, kwargs: dict[str, object], message: str) -> None:
    factor = Decimal(3) if kwargs["divide"] else Decimal(300)
    with pytest.raises(OpError, match=message):
        scale_value(value, factor, **kwargs)  # type: ignore[arg-type]


def test_round_trip_through_two_plans() -> None:
    """Request side cents → "12.34" for the new service, response side back to cents."""
    to_new = plan_of(
        "translate: {request: [{json: [{scale: {path: total_cents, to: total, divide: 100}}]}]}"
    )
    to_old = plan_of(
        "translate: {request: [{json: [{scale: {path: total, to: total_cents, multiply: 100}}]}]}"
    )
    for n in integers(seed=99, count=300):
        there = to_new.apply_request(request(method="POST", body=dumps({"total_cents": n})))
        assert loads(there.body) == {"total": as_string(n, 2)}
        back = to_old.apply_request(request(method="POST", body=there.body))
        assert loads(back.body) == {"total_cents": n}
