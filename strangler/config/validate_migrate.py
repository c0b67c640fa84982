"""A route's ``migrate:`` node to a ``MigratePlan``, problem by problem.

``read_migrate`` is called by the route reader for a route with a ``migrate`` key,
after its ``canary``, ``slo`` and ``shadow`` were read: a plan moves the canary's
share, so it needs a ``canary``; a ``shadow`` stage needs the route's ``shadow``; an
``error_budget_left`` gate needs its ``slo``. Every problem has file:line and a hint,
and a plan with any problem is left out (``None``).

>>> from strangler.config.source import read_text
>>> text = "migrate: {stages: [{canary: {percent: [5%, 50%], step_every: 1m}}, migrated]}"
>>> node = read_text(text, "r.yaml").files[0].root.get("migrate")
>>> w = Walker("r.yaml")
>>> plan = read_migrate(w, node, "route 'a'", has_canary=True, has_shadow=False, has_slo=False)
>>> [s.kind for s in plan.stages], plan.stages[0].steps, plan.on_breach, w.problems
(['canary', 'migrated'], (0.05, 0.5), 'rollback', [])
"""

from __future__ import annotations

from typing import Final

from strangler.config import units
from strangler.config.migrate_model import (
    STAGE_KINDS,
    CanaryStage,
    Gates,
    MigratedStage,
    MigratePlan,
    OnBreach,
    ShadowStage,
    Stage,
    StageKind,
)
from strangler.config.source import Map, Node, Scalar, Seq, describe
from strangler.config.walker import Walker, did_you_mean

__all__ = ["GATE_KEYS", "MIGRATE_KEYS", "read_migrate"]

MIGRATE_KEYS: Final = ("stages", "gates", "on_breach", "approval", "interval")
GATE_KEYS: Final = (
    "error_rate_vs_primary", "p99_vs_primary", "p99_floor", "error_budget_left", "min_primary",
)  # fmt: skip
_STAGE_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "shadow": ("min_compared", "parity", "for"),
    "canary": ("percent", "step_every", "min_requests"),
    "migrated": ("hold",),
}
_EXAMPLE: Final = "like stages: [{canary: {percent: [5%, 25%, 50%], step_every: 15m}}, migrated]"
_MIN_INTERVAL: Final = 0.05


def read_migrate(
    w: Walker, node: Node, label: str, *, has_canary: bool, has_shadow: bool, has_slo: bool
) -> MigratePlan | None:
    what = f"{label} migrate"
    f = w.fields(node, MIGRATE_KEYS, subject=what, where=f"in {what}", required=("stages",))
    if f is None or "stages" not in f:
        return None
    before = len(w.problems)
    if not has_canary:
        w.report(
            node.at,
            f"{what} needs the route's canary: the plan moves the canary's share",
            "add canary: {to: NEW, percent: 0%, sticky: header:X-User-Id}",
        )
    stages = _stages(w, f["stages"], what, has_shadow)
    gates = Gates() if "gates" not in f else _gates(w, f["gates"], what, has_slo)
    on_breach: OnBreach = "rollback"
    if "on_breach" in f:
        choice = w.choice(f["on_breach"], f"{what}.on_breach", ("rollback", "pause"))
        on_breach = "pause" if choice == "pause" else "rollback"
    approval: frozenset[StageKind] = frozenset()
    if "approval" in f and stages is not None:
        approval = _approval(w, f["approval"], what, stages)
    interval = 10.0
    if "interval" in f:
        value = w.unit(f["interval"], f"{what}.interval", units.duration)
        if value is not None and value < _MIN_INTERVAL:
            w.report(f["interval"].at, f"{what}.interval must be at least 50ms, got {value:g}s")
        interval = value if value is not None else interval
    if len(w.problems) != before or stages is None or gates is None:
        return None
    return MigratePlan(
        stages=stages,
        gates=gates,
        on_breach=on_breach,
        approval=approval,
        interval=interval,
        at=node.at,
    )


def _stages(w: Walker, node: Node, what: str, has_shadow: bool) -> tuple[Stage, ...] | None:
    here = f"{what}.stages"
    if not isinstance(node, Seq) or not node.items:
        w.report(node.at, f"{here} must be a non-empty list of stages", _EXAMPLE)
        return None
    out: list[Stage] = []
    seen: dict[StageKind, int] = {}
    for i, item in enumerate(node.items):
        kind, body = _stage_head(w, item, f"{here}[{i}]")
        if kind is None:
            continue
        where = f"{here}[{i}] {kind}"
        if kind in seen:
            w.report(item.at, f"{where}: the plan has a {kind} stage already", "one of each")
            continue
        if any(STAGE_KINDS.index(k) > STAGE_KINDS.index(kind) for k in seen):
            w.report(item.at, f"{where} comes too late", "stages go shadow, canary, migrated")
            continue
        seen[kind] = i
        if kind == "shadow" and not has_shadow:
            w.report(
                item.at,
                f"{where} needs the route's shadow: it waits for shadow parity",
                "add shadow: {to: NEW, percent: 20%}, or drop this stage",
            )
            continue
        stage = _stage(w, kind, body, where, item)
        if stage is not None:
            out.append(stage)
    if "canary" not in seen and "migrated" not in seen:
        w.report(node.at, f"{here} needs a canary or a migrated stage", _EXAMPLE)
        return None
    return tuple(out)


def _stage_head(w: Walker, item: Node, where: str) -> tuple[StageKind | None, Node | None]:
    """``migrated`` (a bare name) or ``{kind: {...}}``: the kind and its settings."""
    if isinstance(item, Scalar) and isinstance(item.value, str):
        key, body = item.value, None
    elif isinstance(item, Map) and len(item.entries) == 1:
        key_node, body = item.entries[0]
        key = str(key_node.value)
    else:
        w.report(item.at, f"{where} must be one stage, got {describe(item)}", _EXAMPLE)
        return None, None
    if key not in STAGE_KINDS:
        hint = did_you_mean(key, STAGE_KINDS) or f"stages: {', '.join(STAGE_KINDS)}"
        w.report(item.at, f"{where}: unknown stage {key!r}", hint)
        return None, None
    kind: StageKind = "shadow" if key == "shadow" else "canary" if key == "canary" else "migrated"
    return kind, body


def _stage(w: Walker, kind: StageKind, body: Node | None, where: str, item: Node) -> Stage | None:
    f: dict[str, Node] = {}
    if body is not None and not (isinstance(body, Scalar) and body.value is None):
        got = w.fields(body, _STAGE_KEYS[kind], subject=where, where=f"in {where}")
        if got is None:
            return None
        f = got
    before = len(w.problems)
    if kind == "shadow":
        stage: Stage = ShadowStage(
            min_compared=_count(w, f, "min_compared", where, 1000),
            parity=_ratio(w, f, "parity", where, 0.999),
            hold=_duration(w, f, "for", where, 0.0),
            at=item.at,
        )
    elif kind == "canary":
        if "percent" not in f:
            w.report(item.at, f"{where} is missing required key 'percent'", _EXAMPLE)
            return None
        steps = _steps(w, f["percent"], f"{where}.percent")
        stage = CanaryStage(
            steps=steps or (),
            step_every=_duration(w, f, "step_every", where, 900.0),
            min_requests=_count(w, f, "min_requests", where, 500),
            at=item.at,
        )
    else:
        stage = MigratedStage(hold=_duration(w, f, "hold", where, 86400.0), at=item.at)
    return stage if len(w.problems) == before else None


def _steps(w: Walker, node: Node, what: str) -> tuple[float, ...] | None:
    items = node.items if isinstance(node, Seq) else [node]
    if not items:
        w.report(node.at, f"{what} is empty", "list the shares in order, like [1%, 5%, 25%]")
        return None
    steps: list[float] = []
    for item in items:
        value = w.unit(item, what, units.percent)
        if value is None:
            return None
        if not 0.0 < value < 1.0:
            w.report(
                item.at,
                f"{what}: {value:.4%} is not a canary share",
                "each share is above 0% and below 100%; the migrated stage is 100%",
            )
            return None
        if steps and value <= steps[-1]:
            w.report(item.at, f"{what} must grow step by step", "sticky cohorts only ever grow")
            return None
        steps.append(value)
    return tuple(steps)


def _gates(w: Walker, node: Node, what: str, has_slo: bool) -> Gates | None:
    here = f"{what}.gates"
    f = w.fields(node, GATE_KEYS, subject=here, where=f"in {here}")
    if f is None:
        return None
    before = len(w.problems)
    error_rate: float | None = Gates().error_rate_vs_primary
    if "error_rate_vs_primary" in f:
        error_rate = _signed_percent(w, f["error_rate_vs_primary"], f"{here}.error_rate_vs_primary")
    p99: float | None = None
    if "p99_vs_primary" in f:
        p99 = _factor(w, f["p99_vs_primary"], f"{here}.p99_vs_primary")
    budget: float | None = None
    if "error_budget_left" in f:
        budget = w.unit(f["error_budget_left"], f"{here}.error_budget_left", units.percent)
        if not has_slo:
            w.report(
                f["error_budget_left"].at,
                f"{here}.error_budget_left needs the route's slo (the budget is its error_rate)",
                "add slo: {error_rate: 1%, window: 5m}",
            )
    gates = Gates(
        error_rate_vs_primary=error_rate,
        p99_vs_primary=p99,
        p99_floor=_duration(w, f, "p99_floor", here, 0.005),
        error_budget_left=budget,
        min_primary=_count(w, f, "min_primary", here, 100),
        at=node.at,
    )
    return gates if len(w.problems) == before else None


def _signed_percent(w: Walker, node: Node, what: str) -> float | None:
    """``+0.5%`` (the sign is optional): an allowed increase, as a ratio."""
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, str) and value.strip().startswith("+"):
        value = value.strip()[1:]
    try:
        return units.percent(value)
    except ValueError as err:
        w.report(node.at, f"{what}: {err}", "an allowed increase, like +0.5%")
        return None


def _factor(w: Walker, node: Node, what: str) -> float | None:
    """``1.2x`` or ``1.2``: at least 1."""
    value = node.value if isinstance(node, Scalar) else None
    text = value.strip().lower().removesuffix("x") if isinstance(value, str) else value
    try:
        number = float(text) if isinstance(text, str | int | float) else float("nan")
    except ValueError:
        number = float("nan")
    if isinstance(value, bool) or not number >= 1.0 or number == float("inf"):
        w.report(
            node.at,
            f"{what}: expected a factor of at least 1, like 1.2x, got {describe(node)}",
            "the new side's p99 may be at most this many times the primary's",
        )
        return None
    return number


def _approval(w: Walker, node: Node, what: str, stages: tuple[Stage, ...]) -> frozenset[StageKind]:
    here = f"{what}.approval"
    items = node.items if isinstance(node, Seq) else [node]
    kinds = {s.kind for s in stages}
    out: set[StageKind] = set()
    for item in items:
        name = item.value if isinstance(item, Scalar) else None
        if not isinstance(name, str) or name not in kinds:
            shown = ", ".join(k for k in STAGE_KINDS if k in kinds) or "none valid"
            hint = did_you_mean(str(name), kinds) or f"this plan's stages: {shown}"
            w.report(item.at, f"{here}: {describe(item)} is not a stage of this plan", hint)
            continue
        out.add(next(s.kind for s in stages if s.kind == name))
    return frozenset(out)


def _count(w: Walker, f: dict[str, Node], key: str, where: str, default: int) -> int:
    if key not in f:
        return default
    value = w.count(f[key], f"{where}.{key}", minimum=1)
    return default if value is None else value


def _ratio(w: Walker, f: dict[str, Node], key: str, where: str, default: float) -> float:
    if key not in f:
        return default
    value = w.unit(f[key], f"{where}.{key}", units.percent)
    if value is not None and value <= 0.0:
        w.report(f[key].at, f"{where}.{key} must be above 0%")
    return default if value is None else value


def _duration(w: Walker, f: dict[str, Node], key: str, where: str, default: float) -> float:
    if key not in f:
        return default
    value = w.unit(f[key], f"{where}.{key}", units.duration)
    return default if value is None else value
