"""Human units to base units: durations to seconds, sizes to bytes, percentages to ratios."""

from __future__ import annotations

import doctest

import pytest

from strangler.config import units


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("250ms", 0.25),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        (" 3 s ", 3.0),
        ("7", 7.0),
        (3, 3.0),
        (0, 0.0),
        (0.5, 0.5),
    ],
)
def test_duration(text: object, seconds: float) -> None:
    assert units.duration(text) == seconds


@pytest.mark.parametrize("bad", ["2 sec", "s", "", "-1s", "1d", "1e3s", None, [1], "2S"])
def test_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^expected a duration like '2s' or '250ms', got "):
        units.duration(bad)


def test_duration_rejects_booleans_and_negatives() -> None:
    # YAML's true is an int to Python: it must not pass as 1 second.
    with pytest.raises(ValueError, match=r"^expected a duration like '2s' or '250ms', got True$"):
        units.duration(True)
    with pytest.raises(ValueError, match=r"^a duration cannot be negative, got -1$"):
        units.duration(-1)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        (512, 512),
        ("10b", 10),
        ("10kb", 10_000),
        ("10KB", 10_000),
        ("1KiB", 1024),
        ("1MiB", 1 << 20),
        ("2mb", 2_000_000),
        ("1GiB", 1 << 30),
        ("3gb", 3 * 10**9),
        (0, 0),
    ],
)
def test_size(text: object, size: int) -> None:
    assert units.size(text) == size


@pytest.mark.parametrize("bad", ["1.5MiB", "lots", "1 TiB", "", 1.5, True, None, "-1kb"])
def test_size_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^expected a size like '1MiB' or '64kb', got "):
        units.size(bad)


def test_size_rejects_negative() -> None:
    with pytest.raises(ValueError, match=r"^a size cannot be negative, got -5$"):
        units.size(-5)


@pytest.mark.parametrize(
    ("text", "ratio"),
    [("10%", 0.1), ("0.1%", 0.001), (" 50 % ", 0.5), ("100%", 1.0), (0, 0.0), (25, 0.25)],
)
def test_percent(text: object, ratio: float) -> None:
    assert units.percent(text) == pytest.approx(ratio)


@pytest.mark.parametrize("bad", ["10", "ten%", "%", True, None, "1e2%", "nan%", "+5%", "5.%"])
def test_percent_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^expected a percentage like '10%', got "):
        units.percent(bad)


@pytest.mark.parametrize("bad", ["101%", -1, "-0.5%", 100.5])
def test_percent_out_of_range(bad: object) -> None:
    with pytest.raises(ValueError, match=r"^a percentage must be between 0% and 100%, got "):
        units.percent(bad)


def test_a_list_or_mapping_is_named_not_printed() -> None:
    with pytest.raises(ValueError, match=r"^expected a duration like '2s' or '250ms', got a list$"):
        units.duration(["2s"])
    with pytest.raises(ValueError, match=r"^expected a size like '1MiB' or '64kb', got a mapping$"):
        units.size({"kb": 1})
    with pytest.raises(ValueError, match=r"^expected a percentage like '10%', got a list$"):
        units.percent([5])


def test_docstring_examples() -> None:
    result = doctest.testmod(units)
    assert result.attempted > 0
    assert result.failed == 0
