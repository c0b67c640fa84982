"""``strangler check``: the report, shadowed routes across files, text and JSON output."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

from strangler.config import check, load_config
from strangler.config.check import CheckReport, format_json, format_text, run_check
from strangler.errors import ConfigError, Problem

DATA = Path(__file__).parent / "data" / "configs"

UPSTREAMS = "upstreams:\n  legacy: http://127.0.0.1:8000\n  billing: http://127.0.0.1:9000\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_config() -> None:
    path = DATA / "valid" / "full.yaml"
    report = run_check(path)
    assert report == CheckReport(
        path=str(path),
        ok=True,
        problems=(),
        version=load_config(path).version,
        upstreams=3,
        routes=6,
        files=4,
    )


def test_an_invalid_config_reports_what_load_config_raises() -> None:
    path = DATA / "invalid" / "include_bad_files.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    report = run_check(path)
    assert not report.ok
    assert report.problems == info.value.problems
    assert (report.version, report.upstreams, report.routes) == (None, 0, 0)
    assert report.files == 6  # the main file and the five route files it read


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "strangler.yaml"
    report = run_check(path)
    assert report == CheckReport(
        path=str(path),
        ok=False,
        problems=(Problem(str(path), 0, "cannot read the config file: No such file or directory"),),
    )


def test_a_route_that_can_never_match(tmp_path: Path) -> None:
    path = write(
        tmp_path / "main.yaml",
        UPSTREAMS
        + "routes:\n"
        + "  - {name: api, owner: t, match: {path_prefix: /api}, to: legacy}\n"
        + "  - {name: users, owner: t, match: {path: '/api/users/{id:int}'}, to: billing}\n"
        + "  - {name: health, owner: t, match: {path: /health}, to: legacy}\n",
    )
    report = run_check(path)
    assert not report.ok
    assert report.problems == (
        Problem(
            str(path),
            6,
            f"route 'users' can never match: route 'api' ({path}:5) above it matches every "
            "request it would",
            "move 'users' above 'api', or narrow 'api'",
        ),
    )
    # the config itself is well-formed: the report still describes it
    assert (report.version, report.upstreams, report.routes, report.files) == (
        load_config(path).version,
        2,
        3,
        1,
    )


def test_shadowing_across_files_points_into_the_route_file(tmp_path: Path) -> None:
    main = write(
        tmp_path / "main.yaml",
        UPSTREAMS
        + "include: [routes/*.yaml]\n"
        + "routes:\n"
        + "  - {name: billing-all, owner: t, match: {path_prefix: /billing}, to: billing}\n",
    )
    team = write(
        tmp_path / "routes" / "billing.yaml",
        "routes:\n"
        "  - name: invoices\n"
        "    owner: team-billing\n"
        "    match: {path: /billing/invoices, methods: [GET]}\n"
        "    to: billing\n"
        "  - name: refunds\n"
        "    owner: team-billing\n"
        "    match: {path: /refunds}\n"
        "    to: billing\n",
    )
    (problem,) = run_check(main).problems
    assert (problem.file, problem.line) == (str(team), 2)
    assert problem.message == (
        f"route 'invoices' can never match: route 'billing-all' ({main}:6) above it matches "
        "every request it would"
    )


def test_narrower_earlier_routes_are_fine(tmp_path: Path) -> None:
    path = write(
        tmp_path / "main.yaml",
        UPSTREAMS
        + "routes:\n"
        + "  - {name: reads, owner: t, match: {path_prefix: /api, methods: [GET]}, to: billing}\n"
        + "  - {name: all, owner: t, match: {path_prefix: /api}, to: legacy}\n"
        + "  - {name: beta, owner: t, match: {path: /x, headers: {X-Beta: true}}, to: billing}\n"
        + "  - {name: x, owner: t, match: {path: /x}, to: legacy}\n",
    )
    assert run_check(path).ok


def test_several_shadowed_routes_are_all_reported_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "main.yaml",
        UPSTREAMS
        + "routes:\n"
        + "  - {name: everything, owner: t, match: {}, to: legacy}\n"
        + "  - {name: a, owner: t, match: {path: /a}, to: billing}\n"
        + "  - {name: b, owner: t, match: {path_prefix: /b}, to: billing}\n",
    )
    report = run_check(path)
    assert [(p.line, p.message.split(":")[0]) for p in report.problems] == [
        (6, "route 'a' can never match"),
        (7, "route 'b' can never match"),
    ]


def test_format_text_ok() -> None:
    report = CheckReport(path="s.yaml", ok=True, version="abc", upstreams=1, routes=1, files=1)
    assert format_text(report) == "s.yaml: ok (version abc: 1 upstream, 1 route, 1 file)"


def test_format_text_problems() -> None:
    report = run_check(DATA / "invalid" / "duplicate_keys.yaml")
    path = DATA / "invalid" / "duplicate_keys.yaml"
    hint = "(hint: YAML would silently keep only the last one; remove one of them)"
    assert format_text(report).splitlines() == [
        f"{path}:3: duplicate key 'legacy' (first at line 2) {hint}",
        f"{path}:5: duplicate key 'routes' (first at line 4) {hint}",
        f"{path}: 2 problems",
    ]


def test_format_json() -> None:
    path = DATA / "invalid" / "ports.yaml"
    data = json.loads(format_json(run_check(path)))
    assert data == {
        "path": str(path),
        "ok": False,
        "version": None,
        "counts": {"upstreams": 0, "routes": 0, "files": 1},
        "problems": [
            {
                "file": str(path),
                "line": 2,
                "message": "admin.listen 127.0.0.1:8080 uses the same port as listen 0.0.0.0:8080",
                "hint": "give the admin API its own port, for example 127.0.0.1:8081",
            }
        ],
        "warnings": [],
    }
    ok = json.loads(format_json(run_check(DATA / "valid" / "minimal.yaml")))
    assert ok["ok"] is True
    assert ok["problems"] == []
    assert ok["counts"] == {"upstreams": 1, "routes": 0, "files": 1}
    assert isinstance(ok["version"], str)


def test_docstring_examples() -> None:
    result = doctest.testmod(check)
    assert result.attempted > 0
    assert result.failed == 0
