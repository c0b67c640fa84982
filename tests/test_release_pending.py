"""Release changes the disk refused: applied in memory, shared between workers, stored
once the disk takes writes again (``strangler.release.pending``)."""

from __future__ import annotations

import doctest
import importlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from strangler.config.model import Slo
from strangler.release.controls import ReleaseControls
from strangler.release.pending import PendingChanges
from strangler.release.state import FileStateStore, MemoryStateStore, RouteState, StateChange


def test_doctests() -> None:
    module = importlib.import_module("strangler.release.pending")
    assert doctest.testmod(module).failed == 0


def worker(state_dir: Path, runtime: Path) -> ReleaseControls:
    controls = ReleaseControls(
        FileStateStore.in_dir(state_dir), None, pending=PendingChanges.in_dir(runtime)
    )
    controls.start({"inv": None, "other": None})
    return controls


def break_dir(directory: Path) -> None:
    for child in directory.iterdir():
        child.unlink()
    directory.rmdir()
    directory.write_text("")  # every write under it fails: ENOTDIR


def mend_dir(directory: Path) -> None:
    directory.unlink()
    directory.mkdir()


async def test_two_workers_share_a_refused_rollback_and_either_stores_it(tmp_path: Path) -> None:
    state_dir, runtime = tmp_path / "state", tmp_path / "run"
    state_dir.mkdir()
    runtime.mkdir()
    one, two = worker(state_dir, runtime), worker(state_dir, runtime)
    await one.kill("other", "test")  # stored normally
    assert await two.sync() == ["other"]

    break_dir(state_dir)
    change = await one.kill("inv", "test")
    assert not change.persisted
    assert change.not_persisted is not None
    assert "cannot write" in change.not_persisted
    assert one.state.for_route("inv").killed
    assert not one.store_up
    assert await two.sync() == ["inv"]  # the other worker, before any disk recovers
    assert two.state.for_route("inv").killed
    assert two.state.for_route("other").killed  # what was stored stays
    assert not two.store_up
    assert two.store_status()["pending"] == ["inv"]

    mend_dir(state_dir)  # emptied: the stored "other" kill is gone with the directory
    await two.sync()  # stores the pending change
    assert FileStateStore.in_dir(state_dir).load()["inv"].killed
    assert two.store_status()["up"] is True
    await one.sync()
    assert one.store_status()["up"] is True
    assert one.state.for_route("inv").killed


async def test_an_enable_on_a_full_disk_wins_over_a_stored_kill(tmp_path: Path) -> None:
    state_dir, runtime = tmp_path / "state", tmp_path / "run"
    state_dir.mkdir()
    runtime.mkdir()
    one = worker(state_dir, runtime)
    await one.kill("inv", "test")
    stored = FileStateStore.in_dir(state_dir)
    assert stored.load()["inv"].killed
    # The state dir turns read-only in effect: keep the file, refuse the writes.
    blocked = tmp_path / "state.json.saved"
    (state_dir / "state.json").rename(blocked)
    break_dir(state_dir)
    change = await one.enable("inv", "test")
    assert not change.persisted
    assert not one.state.for_route("inv").killed
    two = ReleaseControls(FileStateStore(blocked), None, pending=PendingChanges.in_dir(runtime))
    two.start({"inv": None})  # a worker restarted meanwhile
    assert not two.state.for_route("inv").killed  # the pending enable wins


async def test_a_refused_group_rollback_is_pending_for_every_route_and_stored_as_one(
    tmp_path: Path,
) -> None:
    state_dir, runtime = tmp_path / "state", tmp_path / "run"
    state_dir.mkdir()
    runtime.mkdir()
    routes: dict[str, Slo | None] = {"read": None, "pay": None, "other": None}
    groups = {"read": "checkout", "pay": "checkout"}
    one, two = (
        ReleaseControls(
            FileStateStore.in_dir(state_dir), None, pending=PendingChanges.in_dir(runtime)
        )
        for _ in range(2)
    )
    one.start(routes, groups)
    two.start(routes, groups)

    break_dir(state_dir)
    write = await one.kill("pay", "test")  # a route of the group: the whole group moves
    assert write.scope.group == "checkout"
    assert [c.route for c in write.changes] == ["read", "pay"]
    assert not write.persisted
    assert all(not c.persisted for c in write.changes)
    assert sorted(PendingChanges.in_dir(runtime).load()) == ["pay", "read"]  # one record
    assert one.state.for_route("read").killed
    assert one.state.for_route("pay").killed
    assert not one.state.for_route("other").killed
    assert sorted(await two.sync()) == ["pay", "read"]
    assert two.store_status()["pending"] == ["pay", "read"]

    mend_dir(state_dir)
    await two.sync()
    stored = FileStateStore.in_dir(state_dir).load()
    assert stored["read"].killed
    assert stored["pay"].killed
    assert "other" not in stored
    await one.sync()
    assert one.store_up
    assert two.store_up


class CountingStore:
    """A ``StateStore`` (a memory one) that records each ``update_routes`` call."""

    def __init__(self, inner: MemoryStateStore) -> None:
        self.inner = inner
        self.writes: list[list[str]] = []

    def load(self) -> dict[str, RouteState]:
        return self.inner.load()

    def save(self, routes: Mapping[str, RouteState]) -> None:
        self.inner.save(routes)

    def update(self, route: str, change: Callable[[RouteState], None]) -> StateChange:
        return self.update_routes((route,), change)[0]

    def update_routes(
        self, routes: Sequence[str], change: Callable[[RouteState], None]
    ) -> list[StateChange]:
        self.writes.append(list(routes))
        return self.inner.update_routes(routes, change)

    def changed(self) -> bool:
        return self.inner.changed()


def test_flush_stores_each_route_its_own_state_in_one_write() -> None:
    pending = PendingChanges(None)
    pending.add_routes(
        {
            "a": RouteState(killed=True, since=1.0),
            "b": RouteState(percent_override=0.25, since=2.0),
            "c": RouteState(),  # an enable that must clear a stored kill
        }
    )
    memory = MemoryStateStore()
    memory.update("c", lambda s: s.kill(True, at=0.5))
    store = CountingStore(memory)
    pending.flush(store)
    assert store.writes == [["a", "b", "c"]]  # one atomic write
    stored = memory.load()
    assert stored["a"] == RouteState(killed=True, since=1.0)
    assert stored["b"] == RouteState(percent_override=0.25, since=2.0)
    assert "c" not in stored
    assert not pending.active
