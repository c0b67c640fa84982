"""The kill switch works when the disk does not: a rollback with ``state.dir`` on a full
or unwritable file system takes effect at once (every worker), answers 200 with a
warning, shows in ``/readyz`` and ``strangler_state_store_up``, and is stored once the
disk takes writes again.

Two ways to break the disk without root tricks that fool nobody (root ignores chmod):
the state directory replaced by a file (every write fails, ``ENOTDIR``), and, as root,
a real 64 KiB tmpfs filled to the last byte (``ENOSPC``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from strangler.cli import main as cli_main
from strangler.release.pending import PendingChanges
from strangler.release.state import FileStateStore, RouteState, StateNotPersisted
from tests.conftest import MakeProxy, RunningProxy, Upstream
from tests.integration.test_release import AUTH, admin, config, served_by
from tests.serve_support import free_port, serve, worker_pids

ROUTE = (
    "  - {name: inv, owner: t, match: {path_prefix: /inv}, to: legacy,"
    " canary: {to: billing, percent: 100%}}"
)


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", AUTH["Authorization"].removeprefix("Bearer "))


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@contextlib.contextmanager
def replaced_by_a_file(directory: Path) -> Iterator[None]:
    """Every write under ``directory`` fails (ENOTDIR) until the block ends."""
    blocker = directory.with_name(directory.name + ".file")
    blocker.write_text("not a directory\n")
    for _ in range(20):  # the proxy may re-create the directory between the two steps
        shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.rename(blocker, directory)
            break
    assert directory.is_file()
    try:
        yield
    finally:
        directory.unlink()
        # The proxy retries its pending writes meanwhile and may create it first.
        directory.mkdir(exist_ok=True)


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs (root only: mounting needs it; CI runs the suite as root)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs to fill needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; returns it (delete it to recover)."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while os.write(fd, b"\0" * 1024):  # unbuffered: nothing left to flush
                pass
    finally:
        os.close(fd)
    return filler


def store_up(proxy: RunningProxy) -> float | None:
    return proxy.server.metrics.registry.get_sample_value(
        "strangler_state_store_up", {"backend": "file"}
    )


async def check_rollback_without_disk(
    proxy: RunningProxy, session: aiohttp.ClientSession, reason: str
) -> None:
    status, body = await admin(session, proxy, "POST", "/api/routes/inv/rollback", headers=AUTH)
    assert status == 200, body
    assert "not persisted" in str(body["warning"])
    assert reason in str(body["warning"])
    assert body["changes"][0]["persisted"] is False  # type: ignore[index]
    assert await served_by(session, proxy.url + "/inv/1") == "legacy"  # at once
    status, ready = await admin(session, proxy, "GET", "/readyz")
    assert status == 200
    assert ready["state_store"] == {
        "backend": "file",
        "up": False,
        "pending": ["inv"],
        "last_error": ready["state_store"]["last_error"],  # type: ignore[index]
    }
    assert store_up(proxy) == 0


async def check_stored_after_recovery(proxy: RunningProxy, state_dir: Path) -> None:
    await proxy.server.release.sync()  # the next poll's work, done now
    stored = FileStateStore.in_dir(state_dir).load()
    assert stored["inv"].killed
    assert store_up(proxy) == 1
    assert proxy.server.release.store_status()["pending"] == []


async def test_rollback_with_the_state_dir_replaced_by_a_file(
    tmp_path: Path,
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    proxy = await make_proxy(config(legacy, newsvc.url, ROUTE), state_dir=state_dir)
    assert await served_by(session, proxy.url + "/inv/1") == "new"
    assert store_up(proxy) == 1
    with replaced_by_a_file(state_dir):
        await check_rollback_without_disk(proxy, session, "cannot write")
        await proxy.server.release.sync()  # retried while the disk still refuses
        assert store_up(proxy) == 0
        assert await served_by(session, proxy.url + "/inv/1") == "legacy"
        capsys.readouterr()
        args = ["rollback", "inv", "--admin", proxy.admin_url]
        assert await asyncio.to_thread(cli_main, args) == 0
        out = capsys.readouterr().out
        assert "\nwarning: applied on every worker but not persisted (cannot write" in out
    await check_stored_after_recovery(proxy, state_dir)
    assert await served_by(session, proxy.url + "/inv/1") == "legacy"


async def test_rollback_on_a_full_disk(
    tiny_tmpfs: Path,
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: None,
) -> None:
    state_dir = tiny_tmpfs / "state"
    proxy = await make_proxy(config(legacy, newsvc.url, ROUTE), state_dir=state_dir)
    assert await served_by(session, proxy.url + "/inv/1") == "new"
    filler = fill(tiny_tmpfs)
    await check_rollback_without_disk(proxy, session, "No space left on device")
    # An enable while still full: also in memory, and it wins over the pending kill.
    status, body = await admin(session, proxy, "POST", "/api/routes/inv/enable", headers=AUTH)
    assert status == 200
    assert "warning" in body
    assert await served_by(session, proxy.url + "/inv/1") == "new"
    status, body = await admin(session, proxy, "POST", "/api/routes/inv/rollback", headers=AUTH)
    assert status == 200
    assert "warning" in body
    filler.unlink()
    await check_stored_after_recovery(proxy, state_dir)


GROUP = (
    "  - {name: co-read, owner: t, match: {path_prefix: /co/read}, to: legacy,"
    " canary: {to: billing, percent: 100%, sticky: header:X-User, group: checkout}}\n"
    "  - {name: co-pay, owner: t, match: {path_prefix: /co/pay}, to: legacy,"
    " canary: {to: billing, percent: 100%, sticky: header:X-User, group: checkout}}\n" + ROUTE
)


async def test_a_group_rollback_without_disk_moves_the_whole_group_and_is_stored_later(
    tmp_path: Path,
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    proxy = await make_proxy(config(legacy, newsvc.url, GROUP), state_dir=state_dir)
    urls = {"co-read": proxy.url + "/co/read/1", "co-pay": proxy.url + "/co/pay"}
    for url in urls.values():
        assert await served_by(session, url, **{"X-User": "u1"}) == "new"
    with replaced_by_a_file(state_dir):  # the audit log cannot be appended to either
        status, body = await admin(
            session,
            proxy,
            "POST",
            "/api/groups/checkout/rollback",
            headers=AUTH,
            json={"reason": "checkout 500s"},
        )
        assert status == 200, body
        assert body["group"] == "checkout"
        assert body["persisted"] is False
        assert "not persisted (cannot write" in str(body["warning"])
        changes = body["changes"]
        assert isinstance(changes, list)
        assert [c["route"] for c in changes] == ["co-read", "co-pay"]
        assert all(c["persisted"] is False and c["after"]["killed"] for c in changes)
        assert body["lines"] == [
            "group checkout (co-read, co-pay): canary 100% -> 0% (rolled back) "
            'by admin@127.0.0.1, reason: "checkout 500s"'
        ]
        for url in urls.values():  # at once, for every route of the group
            assert await served_by(session, url, **{"X-User": "u1"}) == "legacy"
        assert await served_by(session, proxy.url + "/inv/1") == "new"  # not in the group
        status, ready = await admin(session, proxy, "GET", "/readyz")
        assert ready["state_store"]["pending"] == ["co-pay", "co-read"]  # type: ignore[index]
        assert store_up(proxy) == 0
        await proxy.server.release.sync()  # a poll while the disk still refuses
        assert store_up(proxy) == 0
        capsys.readouterr()
        args = ["rollback", "--group", "checkout", "--admin", proxy.admin_url]
        assert await asyncio.to_thread(cli_main, args) == 0
        out = capsys.readouterr().out
        assert out.startswith("group checkout (co-read, co-pay): canary 0% -> 0% (rolled back")
        assert "\nwarning: applied on every worker but not persisted (cannot write" in out
    await proxy.server.release.sync()  # the next poll's work, done now
    stored = FileStateStore.in_dir(state_dir).load()
    assert stored["co-read"].killed
    assert stored["co-pay"].killed
    assert "inv" not in stored
    assert store_up(proxy) == 1
    assert proxy.server.release.store_status()["pending"] == []
    for url in urls.values():
        assert await served_by(session, url, **{"X-User": "u1"}) == "legacy"


async def test_a_change_that_cannot_even_be_shared_is_503(
    tmp_path: Path,
    legacy: Upstream,
    newsvc: Upstream,
    make_proxy: MakeProxy,
    session: aiohttp.ClientSession,
    token: None,
) -> None:
    """With workers, a refused change goes to the shared runtime dir; if that fails
    too, nothing is applied and the answer names both causes."""
    state_dir, runtime = tmp_path / "state", tmp_path / "run"
    state_dir.mkdir()
    runtime.mkdir()
    proxy = await make_proxy(
        config(legacy, newsvc.url, ROUTE), state_dir=state_dir, runtime_dir=runtime
    )
    with replaced_by_a_file(state_dir), replaced_by_a_file(runtime):
        status, body = await admin(session, proxy, "POST", "/api/routes/inv/rollback", headers=AUTH)
        assert status == 503
        assert "cannot write" in str(body["text"])
        assert "the other workers cannot be told" in str(body["text"])
        assert await served_by(session, proxy.url + "/inv/1") == "new"


def test_pending_changes_are_shared_through_the_file(tmp_path: Path) -> None:
    one, two = PendingChanges.in_dir(tmp_path), PendingChanges.in_dir(tmp_path)
    assert two.load() == {}
    assert not two.changed()
    one.add("inv", RouteState(killed=True, since=5.0))
    assert two.changed()
    assert two.load() == {"inv": RouteState(killed=True, since=5.0)}
    broken = FileStateStore(tmp_path / "file" / "state.json")
    (tmp_path / "file").write_text("")
    with pytest.raises(StateNotPersisted):
        two.flush(broken)
    assert one.active  # nothing lost
    store = FileStateStore(tmp_path / "ok" / "state.json")
    two.flush(store)
    assert store.load()["inv"].killed
    assert one.changed()
    assert not one.active


async def test_every_worker_applies_a_rollback_the_disk_refused(
    tmp_path: Path, legacy: Upstream, newsvc: Upstream, token: None
) -> None:
    port, admin_port = free_port(), free_port()
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    cfg = tmp_path / "strangler.yaml"
    cfg.write_text(
        config(legacy, newsvc.url, ROUTE)
        .replace("listen: 127.0.0.1:0", f"listen: 127.0.0.1:{port}", 1)
        .replace("{listen: 127.0.0.1:0}", f"{{listen: 127.0.0.1:{admin_port}}}")
        + f"state: {{dir: {state_dir}, file_poll: 100ms}}\n"
    )
    async with serve("--config", str(cfg), workers=2) as running:
        pids = await worker_pids(admin_port, 2)
        with replaced_by_a_file(state_dir):
            async with (
                aiohttp.ClientSession() as s,
                s.post(f"http://127.0.0.1:{admin_port}/api/routes/inv/rollback", headers=AUTH) as r,
            ):
                assert r.status == 200
                assert "not persisted" in (await r.json())["warning"]
            # Each worker reports the pending rollback once it applied it (an external
            # process: poll, bounded; file_poll is 100 ms).
            pending: set[int] = set()
            for _ in range(200):
                async with (
                    aiohttp.ClientSession() as s,
                    s.get(f"http://127.0.0.1:{admin_port}/readyz") as r,
                ):
                    ready = await r.json()
                if ready["state_store"]["pending"] == ["inv"]:
                    pending.add(int(ready["worker_pid"]))  # "pid": the supervisor
                if pending == pids:
                    break
                await asyncio.sleep(0.02)
            assert pending == pids
            for _ in range(20):  # fresh connections: both workers answer some
                async with aiohttp.ClientSession() as s:
                    assert await served_by(s, f"http://127.0.0.1:{port}/inv/1") == "legacy"
        # The disk is back: some worker stores it (an external process: poll, bounded).
        state_file = state_dir / "state.json"
        stored: dict[str, dict[str, object]] = {}
        for _ in range(200):
            if state_file.exists():
                stored = json.loads(state_file.read_text() or "{}").get("routes", {})
            if stored.get("inv", {}).get("killed"):
                break
            await asyncio.sleep(0.02)
        assert stored["inv"]["killed"] is True
        assert await running.stop() == 0
