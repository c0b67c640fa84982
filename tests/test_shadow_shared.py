"""Shadow results shared by workers (``shadow.shared``): every worker's answer is the
merge of all workers' figures, exact and the same from each; a replacement worker
keeps its predecessor's figures. Several ``SharedResults`` on one real directory stand
for the workers (the processes themselves: tests/integration/test_workers.py)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from multidict import CIMultiDict

from strangler.config.shadow_model import CompareRules
from strangler.shadow.compare import Observed, Rules, compare
from strangler.shadow.samples import Sample, ShadowResults, Side, merge_figures
from strangler.shadow.shared import SharedResults

JSON = CIMultiDict({"Content-Type": "application/json"})
RULES = Rules.from_spec(CompareRules())


def record(results: ShadowResults, *, matches: int, mismatches: int, t0: float) -> None:
    """``matches`` agreeing comparisons on route 'inv', then ``mismatches`` differing
    on ``$.price`` (each kept as a sample stamped ``t0 + i``), then one error."""
    r = results.route("inv")
    same = Observed(200, JSON, b'{"price": 1}')
    for _ in range(matches):
        r.record_verdict(compare(same, same, RULES), 0.001)
    for i in range(mismatches):
        other = Observed(200, JSON, json.dumps({"price": 2 + i}).encode())
        v = compare(same, other, RULES)
        sample = Sample(
            at=t0 + i,
            outcome="mismatch",
            method="GET",
            target=f"/inv/{t0 + i}",
            request_headers=(),
            primary=Side.of(200, JSON, same.body, 12),
            shadow=Side.of(200, JSON, other.body, 12),
            differences=v.differences,
            duration=0.002,
        )
        r.record_verdict(v, 0.002, sample)
    r.record_error(0.5)


def inv(w: SharedResults) -> dict[str, Any]:
    """Route 'inv' in ``w``'s summary."""
    routes: list[dict[str, Any]] = w.summary()["routes"]  # type: ignore[assignment]
    [found] = [r for r in routes if r["route"] == "inv"]
    return found


def workers(directory: Path, n: int) -> list[SharedResults]:
    out = []
    for i in range(n):
        results = ShadowResults(samples=5)
        results.route("inv")
        out.append(SharedResults(results, directory, i))
    return out


def test_merged_figures_are_exact_sums_with_the_newest_samples() -> None:
    a, b = ShadowResults(samples=5), ShadowResults(samples=5)
    record(a, matches=3, mismatches=4, t0=100.0)
    record(b, matches=2, mismatches=3, t0=102.5)
    merged = merge_figures([a.figures()["inv"], b.figures()["inv"]], 5)
    assert (merged["compared"], merged["matches"], merged["mismatches"]) == (12, 5, 7)
    assert merged["errors"] == 2
    assert merged["by_kind"] == {"status": 0, "header": 0, "body": 7}
    assert merged["paths"] == {"$.price": 7}
    assert merged["duration_sum"] == a.routes["inv"].duration_sum + b.routes["inv"].duration_sum
    assert merged["duration_max"] == 0.5
    # The newest 5 of the 7 samples, by time, across both.
    assert [s["at"] for s in merged["samples"]] == [102.0, 102.5, 103.0, 103.5, 104.5]


def test_every_worker_answers_the_same_merged_figures(tmp_path: Path) -> None:
    ws = workers(tmp_path, 3)
    for i, w in enumerate(ws):
        record(w.results, matches=i + 1, mismatches=2, t0=10.0 * i)
        assert w.publish()
        assert not w.publish()  # nothing new: nothing written
    summaries = {json.dumps(w.summary()) for w in ws}
    details = {json.dumps(w.detail("inv")) for w in ws}
    assert len(summaries) == len(details) == 1
    [route] = json.loads(summaries.pop())["routes"]
    assert (route["compared"], route["matches"], route["mismatches"]) == (12, 6, 6)
    assert route["errors"] == 3
    detail = json.loads(details.pop())
    assert [s["at"] for s in detail["samples"]] == [21.0, 20.0, 11.0, 10.0, 1.0]  # newest first
    assert detail["top_paths"] == [{"path": "$.price", "count": 6}]
    assert ws[0].detail("nope") is None


def test_a_worker_sees_its_own_comparisons_at_once_and_others_once_published(
    tmp_path: Path,
) -> None:
    a, b = workers(tmp_path, 2)
    record(a.results, matches=1, mismatches=0, t0=0.0)

    assert (inv(a)["compared"], inv(b)["compared"]) == (1, 0)
    a.publish()
    assert (inv(a)["compared"], inv(b)["compared"]) == (1, 1)


async def test_the_publisher_writes_within_its_interval(tmp_path: Path) -> None:
    a, b = workers(tmp_path, 2)
    task = asyncio.create_task(a.run(interval=0.01))
    try:
        record(a.results, matches=2, mismatches=1, t0=0.0)
        for _ in range(100):  # bounded: 100 x the interval
            if inv(b)["compared"] == 3:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("b never saw a's figures")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_replacement_worker_keeps_its_predecessors_figures(tmp_path: Path) -> None:
    a, b = workers(tmp_path, 2)
    record(a.results, matches=4, mismatches=1, t0=0.0)
    record(b.results, matches=1, mismatches=1, t0=5.0)
    a.publish()
    b.publish()
    for round_ in range(2):  # worker 0 replaced twice: both predecessors count
        [a] = workers(tmp_path, 1)
        record(a.results, matches=1, mismatches=0, t0=50.0 + round_)
        a.publish()
    assert inv(b)["compared"] == 5 + 2 + 1 + 1
    assert json.dumps(a.summary()) == json.dumps(b.summary())
    assert json.dumps(a.detail("inv")) == json.dumps(b.detail("inv"))
    samples: list[dict[str, Any]] = b.detail("inv")["samples"]  # type: ignore[index,assignment]
    assert [s["at"] for s in samples] == [5.0, 0.0]  # the first worker's sample is kept
    # One set of files per live worker and one retired set for index 0: a figures
    # file and a samples file per route.
    assert sorted(p.name.split(".")[0] for p in tmp_path.iterdir()) == [
        "retired-0",
        "retired-0",
        "worker-0",
        "worker-0",
        "worker-1",
        "worker-1",
    ]


def test_published_samples_are_the_ring_as_it_is_now(tmp_path: Path) -> None:
    [w] = workers(tmp_path, 1)
    record(w.results, matches=0, mismatches=3, t0=0.0)
    w.publish()
    record(w.results, matches=0, mismatches=4, t0=10.0)  # pushes the first 3 out
    w.publish()
    [samples_file] = tmp_path.glob("worker-0.samples.*.json")
    ring = [s.as_dict() for s in w.results.routes["inv"].samples]
    assert json.loads(samples_file.read_text()) == ring
    data = json.loads((tmp_path / "worker-0.json").read_text())
    assert data["routes"]["inv"] == w.results.routes["inv"].figures(samples=False, tail=True)
    assert w.detail("inv", 5) == w.results.detail("inv", 5)


def test_a_route_no_longer_shadowed_leaves_no_samples_file(tmp_path: Path) -> None:
    [w] = workers(tmp_path, 1)
    record(w.results, matches=0, mismatches=1, t0=0.0)
    w.publish()
    w.results.configure({})  # a reload dropped the route's shadow
    w.publish()
    assert [p.name for p in tmp_path.iterdir()] == ["worker-0.json"]


def test_one_process_answers_its_own_figures() -> None:
    results = ShadowResults(samples=5)
    record(results, matches=2, mismatches=2, t0=0.0)
    shared = SharedResults(results, None)
    assert shared.summary() == results.summary()
    assert shared.detail("inv", 5) == results.detail("inv", 5)
    assert not shared.publish()


def test_the_last_n_compared_are_the_proxys_whichever_worker_compared_them(
    tmp_path: Path,
) -> None:
    """``last 10 compared`` over two workers is the proxy's newest 10 comparisons, by
    time, not each worker's last 10 summed; a replacement worker's merge stays exact."""
    now = [0.0]

    def worker(index: int) -> SharedResults:
        results = ShadowResults(samples=5, gate_last=10, clock=lambda: now[0])
        return SharedResults(results, tmp_path, index)

    a, b = worker(0), worker(1)
    same = Observed(200, JSON, b'{"price": 1}')
    other = Observed(200, JSON, b'{"price": 2}')
    for t in range(1, 9):  # worker 0: 8 agreeing answers at t = 1..8
        now[0] = float(t)
        a.results.route("inv").record_verdict(compare(same, same, RULES), 0.001)
    now[0] = 8.5  # worker 1: one unstable, then 6 differing answers at t = 9..14
    b.results.route("inv").record_unstable(0.001)
    for t in range(9, 15):
        now[0] = float(t)
        b.results.route("inv").record_verdict(compare(same, other, RULES), 0.001)
    a.publish()
    b.publish()

    def last(w: SharedResults) -> dict[str, Any]:
        gate: dict[str, Any] = w.detail("inv")["gate"]  # type: ignore[index,assignment]
        assert "tail" not in gate  # the rings stay between the workers
        return dict(gate["last"])

    expected = {"compared": 10, "matches": 4, "mismatches": 6, "unstable": 1, "parity": 0.4}
    assert last(a) == last(b) == expected  # summed per worker, it was 14 compared
    a = worker(0)  # worker 0 replaced: its ring is folded into the retired files
    for t in (15, 16):
        now[0] = float(t)
        a.results.route("inv").record_verdict(compare(same, same, RULES), 0.001)
    a.publish()
    assert last(a) == last(b) == expected  # 15, 16, 9..14 and 7, 8; 8.5 between
    now[0] = 17.0
    for _ in range(3):
        b.results.route("inv").record_unstable(0.001)
    b.publish()
    assert last(a) == last(b) == {**expected, "unstable": 4}
