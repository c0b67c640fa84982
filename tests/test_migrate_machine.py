"""The autopilot's stage machine with a fake clock and fake figures: each trap that
Flagger and Argo Rollouts users met is a named test here."""

from __future__ import annotations

import doctest
import json
import math
from dataclasses import replace

import pytest

import strangler.config.validate_migrate
from strangler.config.migrate_model import (
    CanaryStage,
    Gates,
    MigratedStage,
    MigratePlan,
    ShadowStage,
)
from strangler.migrate import machine
from strangler.migrate.machine import (
    ActionError,
    Figures,
    MigrationState,
    Outcome,
    abort,
    approve,
    evaluate,
    pause,
    position_name,
    reconcile,
    resume,
    retry,
    share_of,
    skip,
    start,
)

PLAN = MigratePlan(
    stages=(
        ShadowStage(min_compared=100, parity=0.999, hold=60.0),
        CanaryStage(steps=(0.01, 0.05, 0.25, 0.5), step_every=30.0, min_requests=50),
        MigratedStage(hold=120.0),
    ),
    gates=Gates(error_rate_vs_primary=0.005, p99_vs_primary=1.2, min_primary=50),
)
HEALTHY = Figures(
    new_requests=500,
    new_errors=1,
    new_p99=0.050,
    primary_requests=5000,
    primary_errors=10,
    primary_p99=0.050,
    compared=1000,
    parity=1.0,
)
SICK = replace(HEALTHY, new_errors=100)  # 20% errors against the primary's 0.2%


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def tick(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def run(
    plan: MigratePlan, state: MigrationState, f: Figures, clock: Clock, every: float, n: int
) -> tuple[MigrationState, list[Outcome]]:
    outs = []
    for _ in range(n):
        out = evaluate(plan, state, f, clock.tick(every))
        outs.append(out)
        state = out.state
    return state, outs


def shares(outs: list[Outcome]) -> list[float]:
    return [o.share for o in outs if o.share is not None]


def test_a_healthy_route_walks_every_stage_to_done_and_the_share_only_grows() -> None:
    clock = Clock()
    first = start(PLAN, clock.now)
    assert first.share == 0.0
    assert position_name(PLAN, first.state) == "shadow"
    state, outs = run(PLAN, first.state, HEALTHY, clock, 10.0, 60)
    assert shares(outs) == [0.01, 0.05, 0.25, 0.5, 1.0, 1.0]
    assert state.status == "done"
    names = [(t.from_, t.to) for t in state.history]
    assert names == [
        ("shadow", "canary 1%"),
        ("canary 1%", "canary 5%"),
        ("canary 5%", "canary 25%"),
        ("canary 25%", "canary 50%"),
        ("canary 50%", "migrated"),
        ("migrated", "done"),
    ]
    assert all(t.figures["new_requests"] == 500 for t in state.history)


def test_no_traffic_waits_and_is_never_a_pass() -> None:
    """flagger#1689: a rollout without traffic stalls; here it says so, with counts."""
    clock = Clock()
    state = replace(start(PLAN, clock.now).state, stage=1)
    state, outs = run(PLAN, state, Figures(new_requests=3), clock, 10.0, 100)
    assert shares(outs) == []
    assert state.stage == 1
    assert state.step == 0
    assert state.note == "waiting for traffic: 3 of 50 new-side answers"
    assert {g.verdict for g in outs[-1].gates} == {"waiting"}


@pytest.mark.parametrize(
    "figures",
    [
        replace(HEALTHY, new_p99=math.nan),
        replace(HEALTHY, primary_p99=None),
        replace(HEALTHY, primary_requests=0),
        replace(HEALTHY, new_p99=math.inf),
    ],
)
def test_a_nan_or_missing_figure_is_never_a_pass(figures: Figures) -> None:
    """flagger#1098, #1581: an empty or NaN query read as a pass promoted a canary."""
    clock = Clock()
    state = replace(start(PLAN, clock.now).state, stage=1)
    state, outs = run(PLAN, state, figures, clock, 10.0, 50)
    assert shares(outs) == []
    assert any(g.verdict == "waiting" for g in outs[-1].gates)
    assert not any(g.verdict == "fail" for g in outs[-1].gates)


def test_a_nan_parity_waits_in_the_shadow_stage() -> None:
    clock = Clock()
    state, outs = run(
        PLAN, start(PLAN, clock.now).state, replace(HEALTHY, parity=math.nan), clock, 10.0, 30
    )
    assert shares(outs) == []
    assert position_name(PLAN, state) == "shadow"


def test_inconclusive_windows_never_promote() -> None:
    """argo#3850: analysis kept recreating inconclusive runs until one promoted. Here a
    window that never has enough samples never advances, however long it lasts."""
    clock = Clock()
    state = replace(start(PLAN, clock.now).state, stage=1)
    thin = replace(HEALTHY, new_requests=49, primary_requests=49)
    state, outs = run(PLAN, state, thin, clock, 1.0, 10_000)
    assert shares(outs) == []
    assert (state.stage, state.step) == (1, 0)


def test_a_breach_rolls_back_to_legacy_at_once_with_the_figures() -> None:
    clock = Clock()
    state = replace(start(PLAN, clock.now).state, stage=1, step=2)  # at 25%
    out = evaluate(PLAN, state, SICK, clock.tick(1.0))
    assert out.share == 0.0
    assert out.state.status == "aborted"
    assert position_name(PLAN, out.state) == "legacy"
    assert out.transition is not None
    assert (out.transition.from_, out.transition.to) == ("canary 25%", "legacy")
    assert out.transition.reason.startswith("breach: new 20% vs primary 0.2%")
    assert out.transition.figures["new_errors"] == 100
    # and it stays there: an aborted plan never moves by itself
    state, outs = run(PLAN, out.state, HEALTHY, clock, 10.0, 50)
    assert shares(outs) == []
    assert state.status == "aborted"


def test_pause_on_breach_steps_back_one_step_never_up() -> None:
    """argo PR#4612: a fast rollback sent 70% of the traffic to a canary sized for 5%."""
    plan = replace(PLAN, on_breach="pause")
    clock = Clock()
    state = replace(start(plan, clock.now).state, stage=1, step=2)  # 25%
    out = evaluate(plan, state, SICK, clock.tick(1.0))
    assert out.share == 0.05
    assert out.state.status == "paused"
    assert out.state.note.startswith("paused after a breach: new 20%")
    # a breach during the pause still steps back (safety is never paused) ...
    out2 = evaluate(plan, out.state, SICK, clock.tick(1.0))
    assert out2.share == 0.01
    # ... down to the first position, never below 0 and never up
    seen: list[float | None] = [out.share, out2.share]
    state = out2.state
    for _ in range(5):
        o = evaluate(plan, state, SICK, clock.tick(1.0))
        seen.append(o.share)
        state = o.state
    # at 0% (the shadow stage) only parity is judged: nothing is left to step back from
    assert seen == [0.05, 0.01, 0.0, None, None, None, None]
    assert state.status == "paused"
    assert position_name(plan, state) == "shadow"


def test_a_paused_plan_waits_for_resume_with_a_fresh_window() -> None:
    clock = Clock()
    state = replace(start(PLAN, clock.now).state, stage=1)
    paused = pause(PLAN, state, clock.now, "ops@127.0.0.1", "incident 42").state
    state, outs = run(PLAN, paused, HEALTHY, clock, 10.0, 20)
    assert shares(outs) == []
    assert state.status == "paused"
    resumed = resume(PLAN, state, clock.tick(1.0), "ops@127.0.0.1", "").state
    assert resumed.status == "running"
    assert resumed.entered == clock.now
    assert [t.reason for t in resumed.history] == ["paused: incident 42", "resumed"]


def test_abort_always_leaves_zero_percent_from_every_position() -> None:
    """argo#4841: an abort left a non-zero weight."""
    clock = Clock()
    for stage, step in [(0, 0), (1, 0), (1, 3), (2, 0)]:
        state = replace(start(PLAN, clock.now).state, stage=stage, step=step)
        statuses: tuple[machine.Status, ...] = ("running", "paused", "waiting_approval")
        for status in statuses:
            out = abort(PLAN, replace(state, status=status), clock.now, "ops", "bad")
            assert out.share == 0.0
            assert out.state.status == "aborted"
    done = replace(start(PLAN, clock.now).state, stage=3, status="done")
    assert abort(PLAN, done, clock.now, "ops", "").share == 0.0


def test_an_aborted_plan_can_be_retried_from_the_start_or_a_chosen_stage() -> None:
    """argo#3120: an aborted rollout could not be retried."""
    clock = Clock()
    state = replace(start(PLAN, clock.now).state, stage=1, step=2)
    aborted = evaluate(PLAN, state, SICK, clock.tick(1.0)).state
    again = retry(PLAN, aborted, clock.tick(1.0), "ops", "fixed in v2")
    assert again.share == 0.0
    assert position_name(PLAN, again.state) == "shadow"
    assert again.state.status == "running"
    canary = retry(PLAN, aborted, clock.tick(1.0), "ops", "", stage="canary")
    assert canary.share == 0.01
    assert position_name(PLAN, canary.state) == "canary 1%"
    with pytest.raises(ActionError, match="no stage 'canry'"):
        retry(PLAN, aborted, clock.now, "ops", "", stage="canry")
    with pytest.raises(ActionError, match="abort it before retrying"):
        retry(PLAN, canary.state, clock.now, "ops", "")
    # the retried plan runs to done again
    final, _ = run(PLAN, again.state, HEALTHY, clock, 10.0, 60)
    assert final.status == "done"


def test_a_stage_that_needs_approval_waits_at_the_previous_share() -> None:
    plan = replace(PLAN, approval=frozenset({"migrated"}))
    clock = Clock()
    state = replace(start(plan, clock.now).state, stage=1, step=3)  # 50%, last step
    state, outs = run(plan, state, HEALTHY, clock, 10.0, 20)
    assert shares(outs) == []
    assert state.status == "waiting_approval"
    assert state.note == "waiting for approval to enter migrated: strangler migrate approve"
    out = approve(plan, state, clock.tick(1.0), "lead@127.0.0.1", "signed off")
    assert out.share == 1.0
    assert position_name(plan, out.state) == "migrated"
    assert out.transition is not None
    assert out.transition.actor == "lead@127.0.0.1"
    with pytest.raises(ActionError, match="nothing waits for an approval"):
        approve(plan, out.state, clock.now, "x", "")


def test_a_first_stage_that_needs_approval_is_held_at_zero() -> None:
    plan = replace(PLAN, approval=frozenset({"shadow"}))
    clock = Clock()
    out = start(plan, clock.now)
    assert out.share == 0.0
    assert out.state.entry_pending
    assert position_name(plan, out.state) == "legacy"
    state, outs = run(plan, out.state, HEALTHY, clock, 10.0, 10)
    assert shares(outs) == []
    entered = approve(plan, state, clock.tick(1.0), "lead", "")
    assert position_name(plan, entered.state) == "shadow"
    assert entered.state.status == "running"


def test_skip_moves_on_without_the_gates_but_needs_a_reason() -> None:
    clock = Clock()
    state = start(PLAN, clock.now).state
    with pytest.raises(ActionError, match="needs a reason"):
        skip(PLAN, state, clock.now, "ops", "")
    out = skip(PLAN, state, clock.now, "ops", "no shadow-safe reads on this route")
    assert out.share == 0.01
    assert out.transition is not None
    assert out.transition.reason == "skipped: no shadow-safe reads on this route"


def test_a_reload_mid_stage_keeps_the_share_or_goes_lower() -> None:
    clock = Clock()
    state = replace(start(PLAN, clock.now).state, stage=1, step=2, entered=10.0)  # 25%
    same = reconcile(PLAN, PLAN, state, clock.now)
    assert same.state is state
    assert same.share is None
    finer = replace(
        PLAN,
        stages=(
            PLAN.stages[0],
            CanaryStage(steps=(0.1, 0.2, 0.3), step_every=30.0),
            PLAN.stages[2],
        ),
    )
    out = reconcile(PLAN, finer, state, clock.now)
    assert out.share == 0.2
    assert position_name(finer, out.state) == "canary 20%"
    assert out.state.entered == clock.now  # the window restarts
    kept = replace(PLAN, gates=Gates(error_rate_vs_primary=0.01))
    out = reconcile(PLAN, kept, state, clock.now)
    assert out.share is None
    assert position_name(kept, out.state) == "canary 25%"
    no_shadow = replace(PLAN, stages=PLAN.stages[1:])
    out = reconcile(PLAN, no_shadow, replace(state, stage=0, step=0), clock.now)
    assert out.share is None
    assert out.state.status == "paused"
    assert out.state.note == (
        "the plan changed: its first share, 1%, is above the current 0%; resume to start it"
    )


def test_fallbacks_in_the_migrated_window_restart_the_hold() -> None:
    clock = Clock()
    state = replace(start(PLAN, clock.now).state, stage=2, baseline=(0.002, 0.05))
    rescued = replace(HEALTHY, fallbacks=2, primary_requests=2, primary_errors=0)
    state, outs = run(PLAN, state, rescued, clock, 10.0, 50)
    assert shares(outs) == []
    assert state.stage == 2
    assert state.note == "2 fallbacks to the primary in the window: the hold restarts"


def test_the_migrated_stage_compares_with_the_primarys_last_baseline() -> None:
    """At 100% the primary has no traffic left; the gates use its last figures."""
    clock = Clock()
    state = replace(start(PLAN, clock.now).state, stage=1, step=3)
    state = evaluate(PLAN, state, HEALTHY, clock.tick(1.0)).state
    assert state.baseline == (0.002, 0.050)
    alone = replace(HEALTHY, primary_requests=0, primary_errors=0, primary_p99=None)
    migrated = replace(state, stage=2, step=0)
    assert {g.verdict for g in evaluate(PLAN, migrated, alone, clock.tick(1.0)).gates} == {"pass"}
    slow = replace(alone, new_p99=0.5)
    out = evaluate(PLAN, migrated, slow, clock.tick(1.0))
    assert out.state.status == "aborted"
    assert out.share == 0.0


def test_a_state_round_trips_through_json() -> None:
    clock = Clock()
    state, _ = run(PLAN, start(PLAN, clock.now).state, HEALTHY, clock, 10.0, 12)
    text = json.dumps(state.as_dict())
    assert MigrationState.from_dict(json.loads(text)) == state


def test_share_of_every_position() -> None:
    assert [
        share_of(PLAN, 0, 0),
        share_of(PLAN, 1, 1),
        share_of(PLAN, 2, 0),
        share_of(PLAN, 3, 0),
    ] == [
        0.0,
        0.05,
        1.0,
        1.0,
    ]


@pytest.mark.parametrize("module", [machine, strangler.config.validate_migrate])
def test_doctests(module: object) -> None:
    assert doctest.testmod(module).failed == 0  # type: ignore[arg-type]


def test_a_plan_that_stops_short_of_migrated_holds_its_last_share_when_done() -> None:
    plan = MigratePlan(stages=(CanaryStage(steps=(0.1, 0.3), step_every=30.0, min_requests=50),))
    clock = Clock()
    first = start(plan, clock.now)
    state, outs = run(plan, first.state, HEALTHY, clock, 10.0, 20)
    assert state.status == "done"
    assert shares(outs) == [0.3, 0.3]  # to 30%, then done at 30%: never 100% unasked
    assert share_of(plan, 1, 0) == 0.3
