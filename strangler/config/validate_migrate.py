"""A route's ``migrate:``: its keys are read by pydantic with the route
(``described.RouteEntry.migrate``); what a plan needs of its route, and the stages'
order, are checked here (``check_migrate``, from the nodes). A plan with any
problem is left out.

>>> from strangler.config.source import read_text
>>> text = "migrate: {stages: [migrated, {canary: {percent: [5%]}}], approval: shadow}"
>>> node = read_text(text, "r.yaml").files[0].root.get("migrate")
>>> w = Walker("r.yaml")
>>> check_migrate(w, node, "route 'a'", has_canary=True, has_shadow=False, has_slo=False)
>>> for p in w.problems:
...     print(p)
r.yaml:1: route 'a' migrate.stages[1] canary comes too late \
(hint: stages go shadow, canary, migrated)
r.yaml:1: route 'a' migrate.approval: 'shadow' is not a stage of this plan \
(hint: this plan's stages: canary, migrated)
"""

from __future__ import annotations

from strangler.config.kinds import STAGES_EXAMPLE
from strangler.config.migrate_model import STAGE_KINDS
from strangler.config.source import Map, Node, Scalar, Seq
from strangler.config.walker import Walker, did_you_mean

__all__ = ["check_migrate"]


def check_migrate(
    w: Walker, node: Node, label: str, *, has_canary: bool, has_shadow: bool, has_slo: bool
) -> None:
    """What a plan needs of its route (a canary; a shadow for a shadow stage; an slo
    for an ``error_budget_left`` gate), the stages' order and repeats, ``approval``
    naming the plan's stages."""
    what = f"{label} migrate"
    if not isinstance(node, Map):
        return
    if not has_canary:
        w.report(
            node.at,
            f"{what} needs the route's canary: the plan moves the canary's share",
            "add canary: {to: NEW, percent: 0%, sticky: header:X-User-Id}",
        )
    stages = node.get("stages")
    kinds = _stages(w, stages, f"{what}.stages", has_shadow) if isinstance(stages, Seq) else []
    gates = node.get("gates")
    if isinstance(gates, Map) and gates.get("error_budget_left") is not None and not has_slo:
        w.report(
            gates.key_at("error_budget_left"),
            f"{what}.gates.error_budget_left needs the route's slo (the budget is its error_rate)",
            "add slo: {error_rate: 1%, window: 5m}",
        )
    approval = node.get("approval")
    for item in approval.items if isinstance(approval, Seq) else [approval] if approval else []:
        name = item.value if isinstance(item, Scalar) else None
        if name in STAGE_KINDS and name not in kinds:
            shown = ", ".join(k for k in STAGE_KINDS if k in kinds) or "none valid"
            hint = did_you_mean(str(name), kinds) or f"this plan's stages: {shown}"
            w.report(item.at, f"{what}.approval: {name!r} is not a stage of this plan", hint)


def _stages(w: Walker, node: Seq, what: str, has_shadow: bool) -> list[str]:
    """The stages' kinds, in order; reports repeats, the order and what each needs."""
    seen: list[str] = []
    for i, item in enumerate(node.items):
        kind = item.value if isinstance(item, Scalar) else None
        if isinstance(item, Map) and len(item.entries) == 1:
            kind = item.entries[0][0].value
        if kind not in STAGE_KINDS:
            continue  # the model says why
        where = f"{what}[{i}] {kind}"
        if kind in seen:
            w.report(item.at, f"{where}: the plan has a {kind} stage already", "one of each")
        elif any(STAGE_KINDS.index(k) > STAGE_KINDS.index(kind) for k in seen):
            w.report(item.at, f"{where} comes too late", "stages go shadow, canary, migrated")
        elif kind == "shadow" and not has_shadow:
            w.report(
                item.at,
                f"{where} needs the route's shadow: it waits for shadow parity",
                "add shadow: {to: NEW, percent: 20%}, or drop this stage",
            )
        seen.append(str(kind))
    if seen and "canary" not in seen and "migrated" not in seen:
        w.report(node.at, f"{what} needs a canary or a migrated stage", STAGES_EXAMPLE)
    return seen
