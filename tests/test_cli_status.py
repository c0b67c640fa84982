"""``strangler status`` / ``strangler backlog`` against a real admin server on
127.0.0.1 (the CLI's blocking urllib calls run in a thread)."""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
from pathlib import Path

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpServer

from strangler.cli_status import add_status_commands, backlog_main, bar, status_main
from tests.test_progress import IDLE, T0
from tests.test_progress_api import make_world


async def admin_url(aiohttp_server: AiohttpServer, tmp_path: Path) -> str:
    app, _tracker, _holder, clock = make_world(tmp_path)
    clock.t = T0 + 3600
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="strangler")
    add_status_commands(p.add_subparsers(dest="command", required=True))
    return p


def test_bar() -> None:
    from strangler.cli_status import _Paint

    plain = _Paint(False)
    assert bar(0.52, plain) == "[██████████░░░░░░░░░░]"
    assert bar(0.0, plain) == "[░░░░░░░░░░░░░░░░░░░░]"
    assert bar(1.0, plain) == "[████████████████████]"
    assert bar(0.999, plain) == "[███████████████████░]"  # full only at 100 %
    assert bar(0.001, plain) == "[█░░░░░░░░░░░░░░░░░░░]"  # empty only at 0 %
    assert bar(0.5, _Paint(True)).count("\x1b[32m") == 1


async def test_status_prints_progress(
    aiohttp_server: AiohttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await admin_url(aiohttp_server, tmp_path)
    assert await asyncio.to_thread(status_main, url, color=False) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Migration progress: 44.4% of 9 requests answered by new services"
    assert lines[1].startswith("Routes migrated: 1 of 2 (config ")
    assert "  invoices-read  team-billing  [████████████████████]  100% new  4 req" in out
    assert "  customers      team-crm      [░░░░░░░░░░░░░░░░░░░░]    0% new  1 req" in out
    assert "Remaining legacy surface (top 2 of 2):" in out
    assert "  33.3%  3  GET /users/{id}  last seen 60m ago" in out
    assert "No deletion candidates (nothing idle on legacy for over 14 days)." in out
    assert "\x1b[" not in out


async def test_status_colour_json_and_candidates(
    aiohttp_server: AiohttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app, _tracker, _holder, clock = make_world(tmp_path)
    clock.t = T0 + IDLE + 2 * 86400
    url = str((await aiohttp_server(app)).make_url("")).rstrip("/")
    assert await asyncio.to_thread(status_main, url, color=True) == 0
    out = capsys.readouterr().out
    assert "\x1b[32m" in out
    assert "Deletion candidates (legacy idle for over 14 days):" in out
    assert "  route     customers        idle 16.0 days  (last legacy answer " in out
    assert "  endpoint  GET /old-home    idle 16.0 days" in out
    assert await asyncio.to_thread(status_main, url, color=False, as_json=True) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["overall"]["requests"] == 9


async def test_backlog_text_and_json(
    aiohttp_server: AiohttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await admin_url(aiohttp_server, tmp_path)
    assert await asyncio.to_thread(backlog_main, url, 1, False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "Remaining legacy surface: 1 of 2 endpoints (share of all 9 requests)",
        "   33.3%  3  GET /users/{id}  last seen 60m ago",
    ]
    assert await asyncio.to_thread(backlog_main, url, 50, True) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [e["endpoint"] for e in doc["endpoints"]] == ["GET /users/{id}", "GET /old-home"]


async def test_unreachable_admin_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    assert await asyncio.to_thread(status_main, url, color=False) == 1
    assert await asyncio.to_thread(backlog_main, url, 10, False) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.splitlines()
    assert len(err) == 2
    for line in err:
        assert line.startswith(f"strangler: cannot reach the admin API at {url} (from --admin): ")
        assert line.endswith(
            "is strangler running? (give the address with --admin URL, STRANGLER_ADMIN=URL "
            "or --config FILE)"
        )


async def test_admin_without_progress_routes(
    aiohttp_server: AiohttpServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = await aiohttp_server(web.Application())
    url = str(server.make_url("")).rstrip("/")
    assert await asyncio.to_thread(status_main, url, color=False) == 1
    assert capsys.readouterr().err == (
        f"strangler: the admin API at {url} answered 404 Not Found for /api/status\n"
    )


async def test_subcommands_parse_and_run(
    aiohttp_server: AiohttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = await admin_url(aiohttp_server, tmp_path)
    host_port = url.removeprefix("http://")  # a scheme-less --admin works too
    args = parser().parse_args(["backlog", "--admin", host_port, "--limit", "1", "--json"])
    assert await asyncio.to_thread(args.func, args) == 0
    assert len(json.loads(capsys.readouterr().out)["endpoints"]) == 1
    args = parser().parse_args(["status", "--admin", url, "--color", "never", "--limit", "1"])
    assert await asyncio.to_thread(args.func, args) == 0
    assert "Remaining legacy surface (top 1 of 2):" in capsys.readouterr().out
    defaults = parser().parse_args(["status"])
    assert (defaults.admin, defaults.json, defaults.limit) == (None, False, 10)
    with pytest.raises(SystemExit):
        parser().parse_args(["backlog", "--limit", "-3"])
