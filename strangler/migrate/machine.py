"""The autopilot's stage machine: where a route's ``migrate`` plan is, and what to do
next, as pure functions of (plan, state, figures, now).

Nothing here reads a clock, touches a file or sends a request: ``evaluate`` is given
the figures of the current window and the time, and returns the next state and the
canary share to apply (``Outcome.share``, ``None`` for "leave it"). The runner
(``strangler.migrate.runner``) gathers figures, holds the lease, applies shares
through the release controls and persists states. Tests drive it with a fake clock.

Positions and shares
--------------------
A position is (stage, step): the shadow stage is 0%, canary step *i* its *i*-th
share, migrated 100%. ``aborted`` is 0% (the route is back on its primary);
``done`` is 100% held long enough: legacy's endpoint can be deleted.

The promises (each has a named test in tests/test_migrate_machine.py)
----------------------------------------------------------------------
- **No traffic is never a pass.** A gate with fewer samples than it needs is
  *waiting* (with the count it has and needs); a NaN or missing figure is *waiting*
  too. Waiting never advances and never breaches: the plan stays where it is.
- **Advancing only ever grows the share** (sticky cohorts only ever gain users), one
  step at a time, after the step's ``step_every`` with every gate passing.
- **A breach steps back at once, never up**: ``on_breach: rollback`` goes to 0% and
  ``aborted``; ``pause`` goes to the previous safe share and ``paused``. The breach is
  recorded with the figures that caused it. A breach while paused or waiting for an
  approval still steps back: safety is never paused.
- **Abort always leaves 0%**, and an aborted plan can be retried from the start or
  from a chosen stage.
- **A reload that changes the plan** keeps the route where it is, or at the largest
  share of the new plan not above the current one, and restarts the window.
- **Approval**: a stage listed in ``approval`` is not entered until approved; the
  plan waits at the previous share meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Final, Literal

from strangler.config.migrate_model import (
    CanaryStage,
    MigratedStage,
    MigratePlan,
    ShadowStage,
    Stage,
)

__all__ = [
    "HISTORY",
    "Figures",
    "GateResult",
    "MigrationState",
    "Outcome",
    "Status",
    "Transition",
    "abort",
    "approve",
    "eta",
    "evaluate",
    "judge",
    "pause",
    "position_name",
    "reconcile",
    "resume",
    "retry",
    "share_of",
    "skip",
    "start",
]

Status = Literal["running", "waiting_approval", "paused", "aborted", "done"]
Verdict = Literal["pass", "fail", "waiting"]
HISTORY: Final = 50  # transitions kept per route

_EMPTY: Final[Mapping[str, float | int | None]] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Figures:
    """One route over the current window (since the step began). ``None``: unknown.

    ``new_*`` are the new side's answers (a failure rescued by a fallback counts as a
    new-side request and error); ``primary_*`` the primary's; ``compared``/``parity``
    the shadow comparisons (unstable ones excluded); ``budget_left`` the SLO's error
    budget left, as a ratio of the whole budget.
    """

    new_requests: int = 0
    new_errors: int = 0
    new_p99: float | None = None
    primary_requests: int = 0
    primary_errors: int = 0
    primary_p99: float | None = None
    compared: int = 0
    parity: float | None = None
    budget_left: float | None = None
    fallbacks: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True, kw_only=True)
class GateResult:
    name: str
    verdict: Verdict
    detail: str  # one human line: figure vs threshold, or have/need

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "verdict": self.verdict, "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class Transition:
    at: float
    from_: str
    to: str
    reason: str
    actor: str = "autopilot"
    figures: Mapping[str, float | int | None] = field(default_factory=lambda: _EMPTY)

    def as_dict(self) -> dict[str, object]:
        return {
            "at": self.at,
            "from": self.from_,
            "to": self.to,
            "reason": self.reason,
            "actor": self.actor,
            "figures": dict(self.figures),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Transition:
        figures = data.get("figures")
        return cls(
            at=float(_num(data.get("at"))),
            from_=str(data.get("from", "")),
            to=str(data.get("to", "")),
            reason=str(data.get("reason", "")),
            actor=str(data.get("actor", "autopilot")),
            figures=MappingProxyType(
                {str(k): v for k, v in figures.items() if v is None or isinstance(v, int | float)}
                if isinstance(figures, dict)
                else {}
            ),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationState:
    """Where one route's plan is. ``entered``: when the current window began (the step
    started, or the plan was reloaded/resumed); ``passing_since``: since when every gate
    has passed without a break (``None``: not passing now). ``baseline``: the primary's
    last measured (error ratio, p99), kept for the migrated stage, where the primary
    has no traffic left to compare with."""

    stage: int = 0
    step: int = 0
    status: Status = "running"
    entered: float = 0.0
    passing_since: float | None = None
    approved: bool = False  # the stage about to be entered was approved
    entry_pending: bool = False  # at its first position, not yet entered (0% until approved)
    note: str = ""  # why it is where it is (waiting for..., paused because...)
    baseline: tuple[float, float | None] | None = None
    history: tuple[Transition, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "step": self.step,
            "status": self.status,
            "entered": self.entered,
            "passing_since": self.passing_since,
            "approved": self.approved,
            "entry_pending": self.entry_pending,
            "note": self.note,
            "baseline": None if self.baseline is None else list(self.baseline),
            "history": [t.as_dict() for t in self.history],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> MigrationState:
        status = data.get("status")
        baseline = data.get("baseline")
        history = data.get("history")
        passing = data.get("passing_since")
        return cls(
            stage=int(_num(data.get("stage"))),
            step=int(_num(data.get("step"))),
            status=status if status in _STATUSES else "paused",
            entered=float(_num(data.get("entered"))),
            passing_since=None if passing is None else float(_num(passing)),
            approved=bool(data.get("approved", False)),
            entry_pending=bool(data.get("entry_pending", False)),
            note=str(data.get("note", "")),
            baseline=(
                (
                    float(_num(baseline[0])),
                    None if baseline[1] is None else float(_num(baseline[1])),
                )
                if isinstance(baseline, list) and len(baseline) == 2
                else None
            ),
            history=tuple(Transition.from_dict(t) for t in history if isinstance(t, dict))
            if isinstance(history, list)
            else (),
        )


_STATUSES: Final = ("running", "waiting_approval", "paused", "aborted", "done")


def _num(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"not a number: {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What ``evaluate`` (or an operator action) decided."""

    state: MigrationState
    share: float | None = None  # the canary share to apply now; None: leave it
    transition: Transition | None = None
    gates: tuple[GateResult, ...] = ()


# ---------------------------------------------------------------------------- positions


def share_of(plan: MigratePlan, stage: int, step: int) -> float:
    """The canary share at a position. Past the last stage (done): 100% after a
    migrated stage, else the last canary share (a plan may stop short of 100%)."""
    if stage >= len(plan.stages):
        last = plan.stages[-1]
        if isinstance(last, CanaryStage):
            return last.steps[-1]
        return 1.0 if isinstance(last, MigratedStage) else 0.0
    s = plan.stages[stage]
    if isinstance(s, CanaryStage):
        return s.steps[min(step, len(s.steps) - 1)]
    return 1.0 if isinstance(s, MigratedStage) else 0.0


def position_name(plan: MigratePlan, state: MigrationState) -> str:
    """``shadow``, ``canary 5%``, ``migrated``, ``legacy`` (aborted) or ``done``."""
    if state.status == "aborted" or state.entry_pending:
        return "legacy"
    if state.status == "done" or state.stage >= len(plan.stages):
        return "done"
    s = plan.stages[state.stage]
    if isinstance(s, CanaryStage):
        return f"canary {_pct(share_of(plan, state.stage, state.step))}"
    return s.kind


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.4g}%"


def _next(plan: MigratePlan, stage: int, step: int) -> tuple[int, int]:
    s = plan.stages[stage] if stage < len(plan.stages) else None
    if isinstance(s, CanaryStage) and step + 1 < len(s.steps):
        return stage, step + 1
    return stage + 1, 0


def _previous_safe(plan: MigratePlan, stage: int, step: int) -> tuple[int, int]:
    """The position just below: the previous canary step, else the last position of
    the previous stage; the first position stays (it is the safest the plan has)."""
    if step > 0:
        return stage, step - 1
    if stage == 0:
        return 0, 0
    prev = plan.stages[stage - 1]
    return stage - 1, len(prev.steps) - 1 if isinstance(prev, CanaryStage) else 0


def start(plan: MigratePlan, now: float) -> Outcome:
    """A plan with no state yet begins at its first position."""
    return _enter_first(plan, MigrationState(entered=now), 0)


def _enter_first(plan: MigratePlan, state: MigrationState, index: int) -> Outcome:
    """At ``index``'s first position: entered now, or held at 0% for its approval."""
    kind = plan.stages[index].kind
    if kind in plan.approval:
        note = f"waiting for approval to enter {kind}: strangler migrate approve"
        held = replace(state, status="waiting_approval", entry_pending=True, note=note)
        return Outcome(state=held, share=0.0)
    return Outcome(state=state, share=share_of(plan, index, 0))


def eta(plan: MigratePlan, state: MigrationState, now: float) -> float | None:
    """Seconds until ``done`` if every gate keeps passing from now on; ``None`` when it
    is not knowable (waiting for traffic or an approval, paused, aborted). A lower
    bound: it assumes every window gets its traffic in time.

    >>> p = MigratePlan(stages=(CanaryStage(steps=(0.1, 0.5), step_every=60.0),
    ...                         MigratedStage(hold=600.0)))
    >>> eta(p, MigrationState(stage=0, step=0, entered=0.0), now=20.0)
    700.0
    """
    if state.status != "running" or state.entry_pending or state.note.startswith("waiting"):
        return None
    if state.stage >= len(plan.stages):
        return 0.0
    left = 0.0
    for i in range(state.stage, len(plan.stages)):
        s = plan.stages[i]
        if isinstance(s, CanaryStage):
            first = state.step if i == state.stage else 0
            left += s.step_every * (len(s.steps) - first)
        else:
            left += s.hold
        if i + 1 < len(plan.stages) and plan.stages[i + 1].kind in plan.approval:
            return None  # an approval ahead: not knowable
    return max(0.0, left - (now - state.entered))


# ---------------------------------------------------------------------------- gates


def _bad(value: float | None) -> bool:
    return value is None or math.isnan(value) or math.isinf(value)


def judge(plan: MigratePlan, state: MigrationState, f: Figures) -> tuple[GateResult, ...]:
    """Every gate of the current stage over the window ``f``."""
    if state.stage >= len(plan.stages):
        return ()
    stage = plan.stages[state.stage]
    out: list[GateResult] = []
    if isinstance(stage, ShadowStage):
        out.append(_parity(stage, f))
        return tuple(out)
    need = stage.min_requests if isinstance(stage, CanaryStage) else plan.gates.min_primary
    if f.new_requests < need:
        out.append(
            GateResult(
                name="traffic",
                verdict="waiting",
                detail=f"waiting for traffic: {f.new_requests} of {need} new-side answers",
            )
        )
    else:
        out.append(GateResult(name="traffic", verdict="pass", detail=f"{f.new_requests} answers"))
    gates = plan.gates
    primary = _primary(plan, state, f, isinstance(stage, MigratedStage))
    if gates.error_rate_vs_primary is not None:
        out.append(_error_rate(gates.error_rate_vs_primary, f, need, primary))
    if gates.p99_vs_primary is not None:
        out.append(_p99(gates.p99_vs_primary, gates.p99_floor, f, need, primary))
    if gates.error_budget_left is not None:
        left = f.budget_left
        if _bad(left):
            out.append(
                GateResult(name="error_budget", verdict="waiting", detail="no SLO figure yet")
            )
        else:
            assert left is not None
            verdict: Verdict = "pass" if left >= gates.error_budget_left else "fail"
            out.append(
                GateResult(
                    name="error_budget",
                    verdict=verdict,
                    detail=f"{_pct(left)} of the budget left "
                    f"(needs {_pct(gates.error_budget_left)})",
                )
            )
    return tuple(out)


def _primary(
    plan: MigratePlan, state: MigrationState, f: Figures, migrated: bool
) -> tuple[float, float | None] | None:
    """The primary's (error ratio, p99) to compare with: this window's when it has
    enough answers, else (in the migrated stage, where it has none) the baseline."""
    if f.primary_requests >= plan.gates.min_primary:
        return f.primary_errors / f.primary_requests, f.primary_p99
    return state.baseline if migrated else None


def _parity(stage: ShadowStage, f: Figures) -> GateResult:
    if f.compared < stage.min_compared or _bad(f.parity):
        return GateResult(
            name="parity",
            verdict="waiting",
            detail=f"waiting for traffic: {f.compared} of {stage.min_compared} compared",
        )
    assert f.parity is not None
    ok = f.parity >= stage.parity
    return GateResult(
        name="parity",
        verdict="pass" if ok else "fail",
        detail=f"parity {f.parity:.4%} over {f.compared} compared (needs {stage.parity:.4%})",
    )


def _error_rate(
    allowed: float, f: Figures, need: int, primary: tuple[float, float | None] | None
) -> GateResult:
    if f.new_requests < need:
        return GateResult(name="error_rate", verdict="waiting", detail="waiting for traffic")
    if primary is None:
        return GateResult(
            name="error_rate", verdict="waiting", detail="waiting for primary traffic to compare"
        )
    new = f.new_errors / f.new_requests
    ok = new <= primary[0] + allowed
    return GateResult(
        name="error_rate",
        verdict="pass" if ok else "fail",
        detail=f"new {_pct(new)} vs primary {_pct(primary[0])} (allowed +{_pct(allowed)})",
    )


def _p99(
    factor: float,
    floor: float,
    f: Figures,
    need: int,
    primary: tuple[float, float | None] | None,
) -> GateResult:
    if f.new_requests < need or _bad(f.new_p99):
        return GateResult(name="p99", verdict="waiting", detail="waiting for traffic")
    if primary is None or _bad(primary[1]):
        return GateResult(
            name="p99", verdict="waiting", detail="waiting for primary traffic to compare"
        )
    assert f.new_p99 is not None
    assert primary[1] is not None
    limit = max(primary[1] * factor, floor)
    ok = f.new_p99 <= limit
    return GateResult(
        name="p99",
        verdict="pass" if ok else "fail",
        detail=f"new {f.new_p99 * 1000:.4g}ms vs limit {limit * 1000:.4g}ms "
        f"({factor:g}x primary {primary[1] * 1000:.4g}ms)",
    )


# ---------------------------------------------------------------------------- evaluate


def evaluate(plan: MigratePlan, state: MigrationState, f: Figures, now: float) -> Outcome:
    """One evaluation of the plan over the window ``f`` at time ``now``."""
    if state.status in ("aborted", "done") or state.stage >= len(plan.stages):
        return Outcome(state=state)
    gates = judge(plan, state, f)
    failed = [g for g in gates if g.verdict == "fail"]
    if f.primary_requests >= plan.gates.min_primary:
        state = replace(state, baseline=(f.primary_errors / f.primary_requests, f.primary_p99))
    if failed:
        return _breach(plan, state, f, now, gates, "; ".join(g.detail for g in failed))
    if state.status in ("paused", "waiting_approval"):
        return Outcome(state=state, gates=gates)
    waiting = [g for g in gates if g.verdict == "waiting"]
    if waiting:
        note = waiting[0].detail
        return Outcome(state=replace(state, passing_since=None, note=note), gates=gates)
    stage = plan.stages[state.stage]
    if isinstance(stage, MigratedStage) and f.fallbacks:
        # The primary still answered some of this route: legacy is not yet dispensable.
        note = f"{f.fallbacks} fallbacks to the primary in the window: the hold restarts"
        return Outcome(
            state=replace(state, entered=now, passing_since=None, note=note), gates=gates
        )
    since = state.passing_since if state.passing_since is not None else now
    state = replace(state, passing_since=since)
    ready, note = _ready(stage, state, now)
    if not ready:
        return Outcome(state=replace(state, note=note), gates=gates)
    return _advance(plan, state, f, now, gates, "gates passed", "autopilot")


def _ready(stage: Stage, state: MigrationState, now: float) -> tuple[bool, str]:
    if isinstance(stage, CanaryStage):
        left = stage.step_every - (now - state.entered)
        return left <= 0, f"gates pass; next step in {left:.0f}s"
    hold = stage.hold
    since = state.passing_since if state.passing_since is not None else now
    left = hold - (now - since)
    return left <= 0, f"gates pass; held {now - since:.0f}s of {hold:.0f}s"


def _advance(
    plan: MigratePlan,
    state: MigrationState,
    f: Figures | None,
    now: float,
    gates: tuple[GateResult, ...],
    reason: str,
    actor: str,
) -> Outcome:
    frm = position_name(plan, state)
    stage, step = _next(plan, state.stage, state.step)
    if stage >= len(plan.stages):
        new = replace(
            state, stage=stage, step=0, status="done", entered=now, passing_since=None, note=""
        )
        t = _transition(now, frm, "done", reason, actor, f)
        return Outcome(
            state=_log(new, t), share=share_of(plan, stage, 0), transition=t, gates=gates
        )
    entering = plan.stages[stage]
    if stage != state.stage and entering.kind in plan.approval and not state.approved:
        note = f"waiting for approval to enter {entering.kind}: strangler migrate approve"
        new = replace(state, status="waiting_approval", note=note)
        t = _transition(now, frm, frm, f"{reason}; {entering.kind} needs approval", actor, f)
        return Outcome(state=_log(new, t), transition=t, gates=gates)
    new = replace(
        state,
        stage=stage,
        step=step,
        status="running",
        entered=now,
        passing_since=None,
        approved=False,
        note="",
    )
    to = position_name(plan, new)
    t = _transition(now, frm, to, reason, actor, f)
    return Outcome(state=_log(new, t), share=share_of(plan, stage, step), transition=t, gates=gates)


def _breach(
    plan: MigratePlan,
    state: MigrationState,
    f: Figures,
    now: float,
    gates: tuple[GateResult, ...],
    why: str,
) -> Outcome:
    frm = position_name(plan, state)
    if plan.on_breach == "rollback":
        new = replace(
            state, status="aborted", entered=now, passing_since=None, approved=False, note=why
        )
        t = _transition(now, frm, "legacy", f"breach: {why}", "autopilot", f)
        return Outcome(state=_log(new, t), share=0.0, transition=t, gates=gates)
    stage, step = _previous_safe(plan, state.stage, state.step)
    new = replace(
        state,
        stage=stage,
        step=step,
        status="paused",
        entered=now,
        passing_since=None,
        approved=False,
        note=f"paused after a breach: {why}",
    )
    t = _transition(now, frm, position_name(plan, new), f"breach: {why}", "autopilot", f)
    return Outcome(state=_log(new, t), share=share_of(plan, stage, step), transition=t, gates=gates)


def _transition(
    now: float, frm: str, to: str, reason: str, actor: str, f: Figures | None
) -> Transition:
    figures = _EMPTY if f is None else MappingProxyType(f.as_dict())
    return Transition(at=now, from_=frm, to=to, reason=reason, actor=actor, figures=figures)


def _log(state: MigrationState, t: Transition) -> MigrationState:
    return replace(state, history=(*state.history, t)[-HISTORY:])


# ---------------------------------------------------------------------------- operators


class ActionError(ValueError):
    """An operator action that does not apply to the plan's state (a 409 for the API)."""


def pause(plan: MigratePlan, state: MigrationState, now: float, actor: str, reason: str) -> Outcome:
    if state.status in ("aborted", "done", "paused"):
        raise ActionError(f"the plan is {state.status}: nothing to pause")
    name = position_name(plan, state)
    t = _transition(now, name, name, f"paused: {reason}" if reason else "paused", actor, None)
    note = f"paused by {actor}" + (f": {reason}" if reason else "")
    new = replace(state, status="paused", note=note)
    return Outcome(state=_log(new, t), transition=t)


def resume(
    plan: MigratePlan, state: MigrationState, now: float, actor: str, reason: str
) -> Outcome:
    if state.status != "paused":
        raise ActionError(f"the plan is {state.status}, not paused")
    name = position_name(plan, state)
    t = _transition(now, name, name, f"resumed: {reason}" if reason else "resumed", actor, None)
    # A fresh window: figures from before the pause say nothing about now. The
    # position's share is applied again (a reload may have held the route below it).
    new = replace(state, status="running", entered=now, passing_since=None, note="")
    return Outcome(state=_log(new, t), share=share_of(plan, state.stage, state.step), transition=t)


def approve(
    plan: MigratePlan, state: MigrationState, now: float, actor: str, reason: str
) -> Outcome:
    if state.status != "waiting_approval":
        raise ActionError(f"the plan is {state.status}: nothing waits for an approval")
    why = f"approved: {reason}" if reason else "approved"
    if state.entry_pending:  # the plan's first stage (or a retry's) waited: enter it now
        entered = replace(
            state, status="running", entry_pending=False, entered=now, passing_since=None, note=""
        )
        t = _transition(now, "legacy", position_name(plan, entered), why, actor, None)
        share = share_of(plan, state.stage, state.step)
        return Outcome(state=_log(entered, t), share=share, transition=t)
    return _advance(
        plan, replace(state, approved=True, status="running"), None, now, (), why, actor
    )


def skip(plan: MigratePlan, state: MigrationState, now: float, actor: str, reason: str) -> Outcome:
    """Move to the next position without waiting for the gates (counts as approval)."""
    if state.status in ("aborted", "done"):
        raise ActionError(f"the plan is {state.status}: retry it instead")
    if not reason:
        raise ActionError("skip needs a reason (--reason)")
    if state.entry_pending:
        return approve(plan, state, now, actor, f"skipped: {reason}")
    moving = replace(state, approved=True, status="running")
    return _advance(plan, moving, None, now, (), f"skipped: {reason}", actor)


def abort(plan: MigratePlan, state: MigrationState, now: float, actor: str, reason: str) -> Outcome:
    """Back to the primary (0%), always, whatever the state."""
    if state.status == "aborted":
        raise ActionError("the plan is already aborted")
    why = f"aborted: {reason}" if reason else "aborted"
    t = _transition(now, position_name(plan, state), "legacy", why, actor, None)
    new = replace(
        state,
        status="aborted",
        entered=now,
        passing_since=None,
        approved=False,
        entry_pending=False,
        note=f"aborted by {actor}",
    )
    return Outcome(state=_log(new, t), share=0.0, transition=t)


def retry(
    plan: MigratePlan,
    state: MigrationState,
    now: float,
    actor: str,
    reason: str,
    stage: str | None = None,
) -> Outcome:
    """After an abort (or when done, to run it again): start from the first stage, or
    from the stage named ``stage``."""
    if state.status not in ("aborted", "done"):
        raise ActionError(f"the plan is {state.status}: abort it before retrying")
    index = 0
    if stage is not None:
        kinds = [s.kind for s in plan.stages]
        if stage not in kinds:
            raise ActionError(f"the plan has no stage {stage!r} (it has {', '.join(kinds)})")
        index = kinds.index(stage)
    frm = position_name(plan, state)
    new = replace(
        state,
        stage=index,
        step=0,
        status="running",
        entered=now,
        passing_since=None,
        approved=False,
        note="",
    )
    why = f"retry: {reason}" if reason else "retry"
    t = _transition(now, frm, position_name(plan, new), why, actor, None)
    out = _enter_first(plan, _log(new, t), index)
    return replace(out, transition=t)


def reconcile(
    old: MigratePlan | None, new: MigratePlan, state: MigrationState, now: float
) -> Outcome:
    """A reload changed the plan: keep the route where it is, or move it to the largest
    share of the new plan not above the current one; restart the window."""
    if old == new:
        return Outcome(state=state)
    current = share_of(old, state.stage, state.step) if old is not None else 0.0
    if state.status == "aborted":
        current = 0.0
    if state.status in ("aborted", "done"):
        stage = min(state.stage, len(new.stages))
        return Outcome(state=replace(state, stage=stage, step=0, entered=now, passing_since=None))
    best: tuple[int, int] | None = None
    for i, s in enumerate(new.stages):
        steps = s.steps if isinstance(s, CanaryStage) else (share_of(new, i, 0),)
        for j, share in enumerate(steps):
            if share <= current + 1e-12:
                best = (i, j)
    if best is None:  # every position of the new plan is above the current share
        first = share_of(new, 0, 0)
        note = (
            f"the plan changed: its first share, {_pct(first)}, is above the current "
            f"{_pct(current)}; resume to start it"
        )
        held = replace(state, stage=0, step=0, status="paused", entered=now, note=note)
        return Outcome(state=replace(held, passing_since=None))
    kind = (
        old.stages[state.stage].kind if old is not None and state.stage < len(old.stages) else None
    )
    stage, step = best
    if kind is not None and kind != new.stages[stage].kind:
        note = f"the plan changed: {kind} is now {new.stages[stage].kind}"
    else:
        note = "the plan changed: evaluation restarts"
    moved = replace(state, stage=stage, step=step, entered=now, passing_since=None, note=note)
    share = share_of(new, stage, step)
    return Outcome(state=moved, share=share if abs(share - current) > 1e-12 else None)
