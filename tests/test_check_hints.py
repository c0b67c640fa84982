"""``strangler check`` in the middle of an incident: bare numbers that read two ways,
YAML indentation and tab slips, and ``listen: :8080``; through the real command."""

from __future__ import annotations

from pathlib import Path

import pytest

from strangler.cli import main as cli_main
from strangler.config import units

HEAD = (
    "listen: :8080\nupstreams:\n  legacy: http://127.0.0.1:8000\n  billing: http://127.0.0.1:9000\n"
)


def check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "strangler.yaml"
    path.write_text(text, encoding="utf-8")
    code = cli_main(["check", str(path)])
    out = capsys.readouterr().out.replace(str(path), "s.yaml")
    assert "Traceback" not in out
    return code, out


def route(release: str) -> str:
    return (
        f"routes:\n  - {{name: r, owner: t, match: {{path_prefix: /r}}, to: legacy, {release}}}\n"
    )


def route_problems(tmp_path: Path, section: str, capsys: pytest.CaptureFixture[str]) -> str:
    """What check says of a route with ``section`` (it must find a problem)."""
    text = HEAD + route(section).replace("to: legacy, to: billing", "to: billing")
    code, out = check(tmp_path, text, capsys)
    assert code == 1
    return out


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        (
            "canary: {to: billing, percent: [5%]}",
            "s.yaml:6: route 'r' canary.percent: expected a percentage like '10%', got a list",
        ),
        (
            "to: billing, slo: {latency_p99: {ms: 300}}",
            "s.yaml:6: route 'r' slo.latency_p99: expected a duration like '2s' or '250ms', "
            "got a mapping",
        ),
        (
            "fallback: {buffer: [1MiB]}",
            "s.yaml:6: route 'r' fallback.buffer: expected a size like '1MiB' or '64kb', "
            "got a list",
        ),
    ],
)
def test_a_list_or_mapping_for_a_unit_names_the_unit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, problem: str
) -> None:
    assert problem in route_problems(tmp_path, section, capsys)


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        (
            "canary: {to: billing, percent: 0.5}",
            "s.yaml:6: route 'r' canary.percent: 0.5 is ambiguous: 0.5% or a ratio (50%)? "
            "write 0.5% or 50%",
        ),
        (
            "to: billing, slo: {error_rate: 1}",
            "s.yaml:6: route 'r' slo.error_rate: 1 is ambiguous: 1% or a ratio (100%)? "
            "write 1% or 100%",
        ),
        (
            "to: billing, slo: {latency_p99: 300}",
            "s.yaml:6: route 'r' slo.latency_p99: 300 seconds? write 300ms or 300s",
        ),
    ],
)
def test_ambiguous_bare_numbers_are_flagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str, problem: str
) -> None:
    assert problem in route_problems(tmp_path, section, capsys)


def test_unambiguous_numbers_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    release = (
        "canary: {to: billing, percent: 5}, "  # 5 percent: a ratio cannot be 5
        "slo: {error_rate: 2%, latency_p99: 0.3, window: 300}"
    )
    code, out = check(tmp_path, HEAD + route(release), capsys)
    assert code == 0, out


def test_ambiguous_timeouts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = HEAD.replace(
        "billing: http://127.0.0.1:9000",
        "billing: {url: 'http://127.0.0.1:9000', timeout: {connect: 500, read: 30, total: 5000}}",
    )
    code, out = check(tmp_path, text, capsys)
    assert code == 1
    assert "timeout.connect: 500 seconds? write 500ms or 500s" in out
    assert "timeout.total: 5000 seconds? write 5000ms or 5000s" in out
    assert "timeout.read" not in out  # 30 seconds reads one way


def test_yaml_slips_get_plain_hints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(tmp_path, HEAD + "routes:\n\t- {name: r}\n", capsys)
    assert code == 1
    assert "s.yaml:6: invalid YAML: a tab character (hint: YAML indents with spaces only" in out
    code, out = check(tmp_path, HEAD.replace("  billing", " billing"), capsys)
    assert code == 1
    assert "s.yaml:4: invalid YAML: this line's indentation does not fit" in out


def test_listen_without_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = check(tmp_path, HEAD, capsys)
    assert code == 0, out


def test_units_helpers() -> None:
    assert units.config_percent(0) == 0.0
    assert units.config_percent("0.5%") == 0.005
    assert units.config_percent(50) == 0.5
    assert units.bare_seconds_below(10)(9.5) == 9.5
    assert units.bare_seconds_below(10)("300ms") == 0.3
    assert units.percent(0.5) == 0.005  # the plain reader (admin API) is unchanged


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        (
            "upstreams:\n  legacy: {url: 'http://x:1', zzz: 1}\n",
            "url, timeout, max_connections, host_header, tls",
        ),
        (
            "upstreams: {legacy: 'http://x:1'}\ntranslators: {t: {request: [{query: {zzz: 1}}]}}\n",
            "rename, drop, set, map",
        ),
    ],
)
def test_valid_keys_hints_leave_out_the_fields_a_file_cannot_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, valid: str
) -> None:
    """An upstream's ``name`` and a step's ``order`` are the model's, not keys."""
    code, out = check(tmp_path, text, capsys)
    assert code == 1
    assert f"(hint: valid keys here: {valid})" in out
