"""Release changes the disk refused: applied in memory, shared between workers, stored
once the disk takes writes again (``strangler.release.pending``)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

from strangler.release.controls import ReleaseControls
from strangler.release.pending import PendingChanges
from strangler.release.state import FileStateStore


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
