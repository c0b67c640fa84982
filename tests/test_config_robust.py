"""Hostile configs: ``strangler check`` reports each as a problem with file:line, never
a traceback, and never prints a password."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler.cli import main
from strangler.config import source, units
from strangler.config.check import run_check
from strangler.config.values import hide_userinfo

UP = "upstreams:\n  legacy: http://127.0.0.1:1\n"


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    assert main(["check", str(path)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    return [line.removeprefix(f"{path}") for line in captured.out.splitlines()]


def test_nesting_5000_deep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = check(tmp_path, UP + "routes: " + "[" * 5000 + "]" * 5000 + "\n", capsys)
    assert lines[0] == (
        ":3: lists and mappings nested more than 64 deep (hint: a strangler config needs "
        "far fewer levels (aliases count where they are used))"
    )


def test_nesting_through_aliases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = UP + "a0: &a0 " + "[" * 40 + "]" * 40 + "\n"
    text += "".join(f"a{i}: &a{i} {'[' * 40}*a{i - 1}{']' * 40}\n" for i in range(1, 30))
    lines = check(tmp_path, text, capsys)
    assert lines[0].startswith(":4: lists and mappings nested more than 64 deep")
    assert len(lines) == 2  # that problem and the count, no noise after it


def test_a_billion_laughs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = UP + "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
    text += "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))
    lines = check(tmp_path, text, capsys)
    assert lines[0].startswith(":8: this expands to more than 1,000,000 values")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            '"http://[::1"',
            "upstreams.legacy: URL 'http://[::1' is not a valid URL: Invalid IPv6 URL",
        ),
        ('"http://[::1]:99999"', "upstreams.legacy: URL 'http://[::1]:99999' has an invalid port"),
    ],
)
def test_bad_upstream_urls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    lines = check(tmp_path, f"upstreams:\n  legacy: {value}\n", capsys)
    assert lines[0].startswith(f":2: {message}")


def test_bad_redis_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = UP + 'state:\n  backend: redis\n  redis: {url: "redis://:pw@[::1"}\n'
    lines = check(tmp_path, text, capsys)
    assert lines[0].startswith(
        ":5: state.redis.url: 'redis://***@[::1' is not a valid URL: Invalid IPv6 URL"
    )


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1e400", "1e400"),
        ("-1e400", "-1e400"),
        ("1" + "0" * 400, "10000000000000000000...00000000"),
        ("1" + "0" * 5000, "10000000000000000000...00000000"),
        ("9223372036854775808", "9223372036854775808"),
    ],
)
def test_numbers_too_large(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, shown: str
) -> None:
    lines = check(tmp_path, f"{UP}drain: {value}\n", capsys)
    assert lines[0] == (
        f":3: the number {shown} is too large (hint: numbers must fit in 64 bits; "
        "durations and sizes take units, like 5m or 1GiB)"
    )


def test_numbers_that_fit_still_work() -> None:
    assert source.read_text("a: 9223372036854775807\nb: .inf\nc: 1e300\n").problems == ()


@pytest.mark.parametrize("value", [".inf", "1e300", '"99999999999h"'])
def test_durations_are_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    lines = check(tmp_path, f"{UP}drain: {value}\n", capsys)
    assert lines[0].startswith(":3: drain: a duration must be at most a year (366 days), got ")


def test_durations_up_to_a_year() -> None:
    assert units.duration("8784h") == 366 * 24 * 3600.0


def test_a_file_too_large(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    with path.open("wb") as f:
        f.write(UP.encode())
        f.write(b"#" * source.MAX_FILE_BYTES)
    report = run_check(path)
    assert [p.message for p in report.problems] == [
        "cannot read the config file: larger than 16 MiB: not a config file"
    ]


def test_an_included_file_too_large_is_a_problem_at_its_include(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(UP + "include: [big.yaml]\n")
    with (tmp_path / "big.yaml").open("wb") as f:
        f.truncate(source.MAX_FILE_BYTES + 1)  # sparse: no 16 MiB written
    report = run_check(tmp_path / "s.yaml")
    assert [(p.line, p.message) for p in report.problems] == [
        (
            UP.count("\n") + 1,
            f"cannot read included file {tmp_path}/big.yaml: larger than 16 MiB: not a config file",
        )
    ]


@pytest.mark.parametrize(
    "url",
    [
        "http://alice:hunter2@127.0.0.1:1",
        "http://hunter2@127.0.0.1:1",
        "http://alice:hunter2@127.0.0.1:99999",
        "http://alice:hunter2@[::1",
        "ftp://alice:hunter2@127.0.0.1:1",
        "alice:hunter2@127.0.0.1:1",
    ],
)
def test_a_password_is_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    lines = check(tmp_path, f'upstreams:\n  legacy: "{url}"\n', capsys)
    assert "hunter2" not in "\n".join(lines)
    assert "***@127.0.0.1" in lines[0] or "***@[::1" in lines[0]


def test_hide_userinfo() -> None:
    assert hide_userinfo("http://a:b@h:1/p?q#f") == "http://***@h:1/p?q#f"
    assert hide_userinfo("http://h:1/p@x") == "http://h:1/p@x"  # an @ in the path stays
    assert hide_userinfo("a:b@h") == "***@h"
