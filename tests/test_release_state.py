"""Runtime release state: RouteState, RuntimeState, the file store (atomic, locked,
polled across processes) and the audit log."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import json
import os
import stat
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from strangler.release import (
    AUDIT_FILE,
    STATE_FILE,
    AuditLog,
    FileStateStore,
    MemoryStateStore,
    RouteState,
    RuntimeState,
    StateFileError,
    StateStore,
)


def test_doctests() -> None:
    assert doctest.testmod(importlib.import_module("strangler.release.state")).failed == 0


# ---------------------------------------------------------------------------- RouteState


def test_route_state_changes_stamp_since() -> None:
    state = RouteState()
    assert state.is_default
    state.kill(True, at=10.0)
    assert (state.killed, state.since, state.is_default) == (True, 10.0, False)
    state.kill(False, at=11.0)
    assert state.is_default
    state.set_percent(0.25, at=12.0)
    assert (state.percent_override, state.since) == (0.25, 12.0)
    state.set_percent(None, at=13.0)
    state.trip("error rate 5%", at=14.0)
    assert (state.guard_tripped, state.guard_reason) == (True, "error rate 5%")
    state.reset_guard(at=15.0)
    assert (state.guard_tripped, state.guard_reason, state.since) == (False, None, 15.0)
    assert state.is_default


@pytest.mark.parametrize("bad", [-0.1, 1.01, float("nan"), float("inf")])
def test_a_percent_override_is_a_ratio(bad: float) -> None:
    with pytest.raises(ValueError, match="a ratio from 0 to 1"):
        RouteState().set_percent(bad, at=0.0)


def test_route_state_round_trips_and_compares() -> None:
    state = RouteState(killed=True, percent_override=0.5, guard_reason="x", since=3.0)
    assert RouteState.from_dict(state.to_dict()) == state
    assert RouteState.from_dict({}) == RouteState()
    assert RouteState.from_dict({"killed": True, "future_field": 1}) == RouteState(killed=True)
    assert state != RouteState()
    twin = state.copy()
    assert twin == state
    assert twin is not state
    assert "killed=True" in repr(state)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be an object"),
        ({"killed": "yes"}, "killed and guard_tripped must be true or false"),
        ({"percent_override": 2}, "percent_override must be null or from 0 to 1"),
        ({"percent_override": True}, "percent_override must be null or from 0 to 1"),
        ({"guard_reason": 5}, "guard_reason must be null or a string"),
        ({"since": "now"}, "since must be a number"),
    ],
)
def test_route_state_from_bad_data(data: object, message: str) -> None:
    with pytest.raises(StateFileError, match=message):
        RouteState.from_dict(data)


# ---------------------------------------------------------------------------- RuntimeState


def test_for_route_creates_once_and_keeps_the_object() -> None:
    runtime = RuntimeState()
    first = runtime.for_route("a")
    assert runtime.for_route("a") is first
    assert runtime.get("a") is first
    assert runtime.get("nope") is None


def test_reconcile_keeps_adds_and_drops() -> None:
    runtime = RuntimeState()
    runtime.reconcile(["a", "b"])
    a = runtime.for_route("a")
    a.kill(True, at=1.0)
    runtime.reconcile(["a", "c"])
    assert runtime.names() == ("a", "c")
    assert runtime.for_route("a") is a
    assert a.killed
    assert runtime.get("b") is None


def test_apply_updates_in_place_and_reports_changes() -> None:
    runtime = RuntimeState()
    runtime.reconcile(["a", "b", "c"])
    a, b = runtime.for_route("a"), runtime.for_route("b")
    b.kill(True, at=1.0)
    changed = runtime.apply(
        {"a": RouteState(percent_override=0.5, since=2.0), "zzz": RouteState(killed=True)}
    )
    assert changed == ["a", "b"]  # a set, b back to default (absent from the store)
    assert runtime.for_route("a") is a
    assert a.percent_override == 0.5
    assert b.is_default
    assert runtime.get("zzz") is None  # not a route of this config...
    assert runtime.for_route("zzz").killed  # ...until it becomes one
    runtime.reconcile(["a", "new"])
    assert runtime.for_route("new").is_default
    assert runtime.apply({"a": RouteState(percent_override=0.5, since=2.0)}) == []


def test_reconcile_picks_up_the_stored_state_of_a_new_route() -> None:
    runtime = RuntimeState()
    runtime.apply({"later": RouteState(killed=True, since=5.0)})
    runtime.reconcile(["later"])
    assert runtime.for_route("later") == RouteState(killed=True, since=5.0)


def test_to_dict_lists_only_routes_not_at_default() -> None:
    runtime = RuntimeState()
    runtime.reconcile(["a", "b"])
    runtime.for_route("b").trip("slow", at=9.0)
    assert runtime.to_dict() == {
        "b": {
            "killed": False,
            "percent_override": None,
            "guard_tripped": True,
            "guard_reason": "slow",
            "since": 9.0,
        }
    }
    assert [name for name, _ in runtime] == ["a", "b"]


# ---------------------------------------------------------------------------- stores


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "file":
        return FileStateStore(tmp_path / "state" / STATE_FILE)
    return MemoryStateStore()


def kill(state: RouteState) -> None:
    state.kill(True, at=100.0)


def unkill(state: RouteState) -> None:
    state.kill(False, at=101.0)


def test_a_store_starts_empty_and_round_trips(store: StateStore) -> None:
    assert store.load() == {}
    store.save({"a": RouteState(killed=True, since=1.0), "b": RouteState()})
    assert store.load() == {"a": RouteState(killed=True, since=1.0)}  # defaults left out


def test_update_is_a_read_modify_write(store: StateStore) -> None:
    change = store.update("a", kill)
    assert change.route == "a"
    assert change.before == RouteState()
    assert change.after == RouteState(killed=True, since=100.0)
    assert change.changed
    assert dict(change.routes) == {"a": RouteState(killed=True, since=100.0)}
    assert store.update("a", kill).changed is False
    back = store.update("a", unkill)
    assert back.before.killed
    assert dict(back.routes) == {}  # back at default: dropped from the store
    assert store.load() == {}


def test_changed_sees_other_writers_not_its_own(store: StateStore) -> None:
    assert not store.changed()
    store.update("a", kill)
    assert not store.changed()  # our own write
    store.load()
    assert not store.changed()


def test_two_workers_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    one, two = FileStateStore(path), FileStateStore(path)
    one_state, two_state = RuntimeState(), RuntimeState()
    for runtime in (one_state, two_state):
        runtime.reconcile(["a", "b"])
    assert not one.changed()
    assert not two.changed()

    change = one.update("a", kill)
    one_state.apply(change.routes)
    assert not one.changed()
    assert two.changed()  # worker two's poll sees it...
    two_state.apply(two.load())  # ...loads it...
    assert not two.changed()
    assert two_state.for_route("a").killed  # ...and serves it

    # worker two, not having polled since, changes another route: nothing is lost
    two.update("b", lambda s: s.set_percent(0.3, at=102.0))
    assert one.changed()
    assert set(one.load()) == {"a", "b"}


def test_the_file_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / STATE_FILE
    store = FileStateStore(path)
    store.update("invoices", kill)
    body = json.loads(path.read_text())
    assert body == {
        "version": 1,
        "routes": {
            "invoices": {
                "killed": True,
                "percent_override": None,
                "guard_tripped": False,
                "guard_reason": None,
                "since": 100.0,
            }
        },
    }
    inode = path.stat().st_ino
    store.update("orders", kill)
    assert path.stat().st_ino != inode  # replaced, never rewritten in place
    leftovers = {p.name for p in path.parent.iterdir()}
    assert leftovers == {STATE_FILE, STATE_FILE + ".lock"}  # no temp files left


def test_in_dir_names_the_files(tmp_path: Path) -> None:
    assert FileStateStore.in_dir(tmp_path).path == tmp_path / STATE_FILE
    assert AuditLog.in_dir(tmp_path).path == tmp_path / AUDIT_FILE


def test_a_deleted_file_is_a_change_and_loads_empty(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / STATE_FILE)
    store.update("a", kill)
    (tmp_path / STATE_FILE).unlink()
    assert store.changed()
    assert store.load() == {}
    assert not store.changed()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must be an object like"),
        ('{"routes": []}', "must be an object like"),
        ('{"version": 2, "routes": {}}', "has format version 2; this strangler reads 1"),
        ('{"routes": {"a": {"killed": 1}}}', "route 'a': killed and guard_tripped"),
    ],
)
def test_a_bad_file_is_an_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / STATE_FILE
    path.write_text(text)
    with pytest.raises(StateFileError, match=message):
        FileStateStore(path).load()
    with pytest.raises(StateFileError, match=message):
        FileStateStore(path).update("a", kill)  # never overwrites what it cannot read
    assert path.read_text() == text


def test_an_empty_file_holds_nothing(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text("")
    assert FileStateStore(tmp_path / STATE_FILE).load() == {}


def test_threads_do_not_lose_updates(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / STATE_FILE)

    def work(n: int) -> None:
        # two store objects per path, as two event loops' to_thread calls might have
        target = store if n % 2 else FileStateStore(tmp_path / STATE_FILE)
        target.update(f"route-{n}", kill)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(40)))
    assert set(store.load()) == {f"route-{n}" for n in range(40)}


def test_processes_do_not_lose_updates(tmp_path: Path) -> None:
    path = tmp_path / STATE_FILE
    script = textwrap.dedent(
        f"""
        import sys
        from strangler.release import FileStateStore
        store = FileStateStore({str(path)!r})
        worker = sys.argv[1]
        for n in range(15):
            store.update(f"w{{worker}}-{{n}}", lambda s: s.kill(True, at=1.0))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(w)], stderr=subprocess.PIPE)
        for w in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    assert set(FileStateStore(path).load()) == {f"w{w}-{n}" for w in range(4) for n in range(15)}


async def test_store_calls_run_in_a_thread(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / STATE_FILE)
    change = await asyncio.to_thread(store.update, "a", kill)
    assert change.after.killed
    assert not await asyncio.to_thread(store.changed)
    assert await asyncio.to_thread(store.load) == {"a": RouteState(killed=True, since=100.0)}


# ---------------------------------------------------------------------------- audit log


def test_audit_entries_are_json_lines(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "logs" / AUDIT_FILE, clock=lambda: 1767225600.25)
    before = RouteState().to_dict()
    after = RouteState(killed=True, since=1767225600.25).to_dict()
    entry = log.append("admin@127.0.0.1", "kill", "invoices-read", before, after)
    assert entry == {
        "time": "2026-01-01T00:00:00.250Z",
        "who": "admin@127.0.0.1",
        "action": "kill",
        "target": "invoices-read",
        "before": before,
        "after": after,
    }
    log.append("guard", "trip", "orders", None, {"guard_tripped": True})
    lines = log.path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [entry, log.tail()[1]]
    assert json.loads(lines[1])["before"] is None
    assert stat.S_IMODE(os.stat(log.path).st_mode) == 0o600


def test_audit_never_writes_secret_looking_values(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / AUDIT_FILE, clock=lambda: 0.0)
    log.append(
        "admin",
        "set",
        "r",
        {"Authorization": "Bearer abc", "nested": {"api-key": "k", "ok": [{"password": "p"}]}},
        {"admin_token": "t", "percent": 0.1, "Cookie": "s=1"},
    )
    text = (tmp_path / AUDIT_FILE).read_text()
    for secret in ("Bearer abc", '"k"', '"p"', '"t"', "s=1"):
        assert secret not in text
    entry = json.loads(text)
    assert entry["before"] == {
        "Authorization": "[redacted]",
        "nested": {"api-key": "[redacted]", "ok": [{"password": "[redacted]"}]},
    }
    assert entry["after"] == {"admin_token": "[redacted]", "percent": 0.1, "Cookie": "[redacted]"}


def test_audit_tail(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / AUDIT_FILE, clock=lambda: 0.0)
    assert log.tail() == []
    for n in range(1500):  # well over one 64 KiB read
        log.append("admin", "kill", f"route-{n}", {"pad": "x" * 40}, None)
    with open(log.path, "a") as f:
        f.write("not json\n")
    tail = log.tail(3)
    assert [e["target"] for e in tail] == ["route-1497", "route-1498", "route-1499"]
    assert [e["target"] for e in log.tail(1200)][:2] == ["route-300", "route-301"]
    assert len(log.tail(5000)) == 1500
    assert log.tail(0) == []


def test_two_writers_append_whole_lines(tmp_path: Path) -> None:
    logs = [AuditLog(tmp_path / AUDIT_FILE) for _ in range(4)]

    def work(n: int) -> None:
        logs[n % 4].append(f"w{n % 4}", "kill", f"r{n}", {"big": "y" * 2000}, None)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(200)))
    lines = (tmp_path / AUDIT_FILE).read_text().splitlines()
    assert sorted(json.loads(line)["target"] for line in lines) == sorted(
        f"r{n}" for n in range(200)
    )
