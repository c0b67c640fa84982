"""A route's ``migrate:`` plan (the autopilot): data only, frozen.

A plan is an ordered list of stages, each with its own gates, plus gates that compare
the new side with the primary on the same route over the same window::

    migrate:
      stages:
        - shadow: {min_compared: 1000, parity: 99.9%, for: 30m}
        - canary: {percent: [1%, 5%, 25%, 50%], step_every: 15m, min_requests: 500}
        - migrated: {hold: 24h}
      gates: {error_rate_vs_primary: +0.5%, p99_vs_primary: 1.2x, error_budget_left: 50%}
      on_breach: rollback          # or pause
      approval: [migrated]         # stages that wait for `strangler migrate approve`
      interval: 10s                # how often the plan is evaluated

Stages appear in that order (each at most once; at least one of canary and migrated).
The canary stage walks its percentages in order; ``migrated`` sends the whole route to
the new side and holds there. Shares are ratios in [0, 1], durations seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Final, Literal, TypeAlias

from strangler.config.model import NOWHERE, Location

__all__ = [
    "STAGE_KINDS",
    "CanaryStage",
    "Gates",
    "MigratePlan",
    "MigratedStage",
    "OnBreach",
    "ShadowStage",
    "Stage",
    "StageKind",
]

StageKind = Literal["shadow", "canary", "migrated"]
STAGE_KINDS: Final[tuple[StageKind, ...]] = ("shadow", "canary", "migrated")
OnBreach = Literal["rollback", "pause"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowStage:
    """Wait at 0% until shadow parity is proven: at least ``min_compared`` compared
    answers in the stage, parity at least ``parity``, held for ``hold`` seconds."""

    kind: ClassVar[StageKind] = "shadow"
    min_compared: int = 1000
    parity: float = 0.999
    hold: float = 0.0  # config key ``for``
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryStage:
    """Walk ``steps`` (ratios, strictly increasing, each in (0, 1)); stay at each for at
    least ``step_every`` seconds and until the new side answered ``min_requests``."""

    kind: ClassVar[StageKind] = "canary"
    steps: tuple[float, ...]
    step_every: float = 900.0
    min_requests: int = 500
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class MigratedStage:
    """The whole route on the new side, held ``hold`` seconds with the gates passing;
    then the plan is done and legacy's endpoint can be deleted."""

    kind: ClassVar[StageKind] = "migrated"
    hold: float = 86400.0
    at: Location = NOWHERE


Stage: TypeAlias = ShadowStage | CanaryStage | MigratedStage


@dataclass(frozen=True, slots=True, kw_only=True)
class Gates:
    """What the new side must show against the primary, over the current step's window.

    ``error_rate_vs_primary``: the new side's error ratio may exceed the primary's by
    at most this (absolute, ``+0.5%`` is 0.005). ``p99_vs_primary``: the new side's p99
    may be at most this many times the primary's (``1.2x``), and never fails below
    ``p99_floor`` seconds (histogram resolution). ``error_budget_left``: the route's
    ``slo`` must have at least this share of its error budget left (needs ``slo:``).
    ``min_primary``: answers the primary must have given in the window before a
    comparison with it counts (else: waiting for traffic). ``None``: not checked.
    """

    error_rate_vs_primary: float | None = 0.005
    p99_vs_primary: float | None = None
    p99_floor: float = 0.005
    error_budget_left: float | None = None
    min_primary: int = 100
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class MigratePlan:
    stages: tuple[Stage, ...]
    gates: Gates = Gates()
    on_breach: OnBreach = "rollback"
    approval: frozenset[StageKind] = frozenset()
    interval: float = 10.0
    at: Location = NOWHERE

    def stage_index(self, kind: StageKind) -> int | None:
        """The position of the stage of that kind, or ``None``."""
        for i, stage in enumerate(self.stages):
            if stage.kind == kind:
                return i
        return None
