"""How the CLI finds a running proxy's admin API and token: ``--admin``,
``STRANGLER_ADMIN``, ``--config FILE``; against a real proxy and admin API on
127.0.0.1 (the CLI's blocking urllib calls run in a thread)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import pytest

from strangler.cli import main as cli_main
from strangler.cli_admin import AdminSetupError, resolve_admin, resolve_token
from tests.conftest import MakeProxy, RunningProxy, Upstream
from tests.test_cli_status import closed_port

TOKEN = "cli-admin-test-token"


async def start(
    make_proxy: MakeProxy, legacy: Upstream, monkeypatch: pytest.MonkeyPatch
) -> RunningProxy:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", TOKEN)  # read once, when the proxy starts
    proxy = await make_proxy(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
  billing: {legacy.url}
routes:
  - {{name: inv, owner: team-billing, match: {{path_prefix: /inv}}, to: billing}}
"""
    )
    monkeypatch.delenv("STRANGLER_ADMIN_TOKEN")
    monkeypatch.delenv("STRANGLER_ADMIN", raising=False)
    return proxy


async def run(*argv: str) -> int:
    return await asyncio.to_thread(cli_main, list(argv))


async def test_admin_address_from_the_environment(
    legacy: Upstream,
    make_proxy: MakeProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    proxy = await start(make_proxy, legacy, monkeypatch)
    monkeypatch.setenv("STRANGLER_ADMIN", proxy.admin_url.removeprefix("http://"))
    assert await run("routes") == 0
    assert "team-billing" in capsys.readouterr().out
    assert await run("status", "--color", "never") == 0
    assert "Migration progress" in capsys.readouterr().out
    # --admin wins over the environment
    assert await run("routes", "--admin", f"http://127.0.0.1:{closed_port()}") == 1
    assert "(from --admin)" not in capsys.readouterr().err  # release commands: no source


async def test_admin_address_from_the_config_file(
    legacy: Upstream,
    make_proxy: MakeProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    proxy = await start(make_proxy, legacy, monkeypatch)
    port = proxy.server.admin_port
    config = tmp_path / "strangler.yaml"
    # a wildcard listen address means: this machine; the rest of the file is not read
    config.write_text(f"admin: {{listen: '0.0.0.0:{port}'}}\nupstreams: [broken\n")
    with pytest.raises(AdminSetupError, match="is not valid YAML"):
        resolve_admin(argparse.Namespace(admin=None, config=config), {})
    config.write_text(f"admin:\n  listen: '0.0.0.0:{port}'\n  token_file: token.txt\n")
    (tmp_path / "token.txt").write_text(TOKEN + "\n")
    assert await run("backlog", "--config", str(config)) == 0
    assert await run("diff", "inv", "--config", str(config)) == 1  # reached: no shadow there
    assert "no shadow results for route 'inv'" in capsys.readouterr().err
    # the token comes from the config's admin.token_file (relative to the config)
    assert await run("rollback", "inv", "--config", str(config)) == 0
    assert "(rolled back)" in capsys.readouterr().out
    assert proxy.server.release.state.for_route("inv").killed


async def test_unreachable_names_the_source_and_the_ways_to_point(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("STRANGLER_ADMIN", url)
    assert await run("status") == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"strangler: cannot reach the admin API at {url} (from $STRANGLER_ADMIN): "
    )
    assert err.endswith(
        "is strangler running? (give the address with --admin URL, STRANGLER_ADMIN=URL "
        "or --config FILE)\n"
    )
    assert err.count("\n") == 1


async def test_a_missing_token_says_how_to_give_it(
    legacy: Upstream,
    make_proxy: MakeProxy,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    proxy = await start(make_proxy, legacy, monkeypatch)
    assert await run("rollback", "inv", "--admin", proxy.admin_url) == 1
    assert capsys.readouterr().err == (
        "strangler: this needs the admin token: set STRANGLER_ADMIN_TOKEN or pass "
        "--token-file FILE\n"
    )
    wrong = tmp_path / "wrong"
    wrong.write_text("nope")
    assert await run("rollback", "inv", "--admin", proxy.admin_url, "--token-file", str(wrong)) == 1
    assert "refused the admin token" in capsys.readouterr().err
    missing = tmp_path / "missing"
    assert (
        await run("rollback", "inv", "--admin", proxy.admin_url, "--token-file", str(missing)) == 1
    )
    assert capsys.readouterr().err.startswith(
        "strangler: cannot read the admin token (--token-file): "
    )
    assert not proxy.server.release.state.for_route("inv").killed


def test_resolution_order(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("admin: {listen: ':9191', token_env: MY_TOKEN}\n")
    ns = argparse.Namespace(admin=None, config=config, token_file=None)
    target = resolve_admin(ns, {})
    assert (target.url, target.source) == ("http://127.0.0.1:9191", f"admin.listen in {config}")
    assert resolve_admin(ns, {"STRANGLER_ADMIN": "10.0.0.5:81/"}).url == "http://10.0.0.5:81"
    assert resolve_admin(argparse.Namespace(admin="h:1", config=config), {}).url == "http://h:1"
    assert resolve_admin(argparse.Namespace(), {}).url == "http://127.0.0.1:8081"
    assert resolve_token(ns, {"MY_TOKEN": " t1 "}) == "t1"
    assert resolve_token(ns, {"MY_TOKEN": "t1", "STRANGLER_ADMIN_TOKEN": "t2"}) == "t2"
    assert resolve_token(ns, {}) is None
    config.write_text("admin: {listen: '[::]:9191'}\n")
    assert resolve_admin(ns, {}).url == "http://[::1]:9191"
    config.write_text("admin: {listen: 'nohost'}\n")
    with pytest.raises(AdminSetupError, match=r"c.yaml: admin.listen: expected host:port"):
        resolve_admin(ns, {})
