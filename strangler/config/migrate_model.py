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
from typing import Annotated, ClassVar, Final, Literal, TypeAlias, get_args

from strangler.config.model import NOWHERE, READ, Location

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
STAGE_KINDS: Final[tuple[StageKind, ...]] = get_args(StageKind)
OnBreach = Literal["rollback", "pause"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ShadowStage:
    """Wait at 0% until shadow parity is proven."""

    kind: ClassVar[StageKind] = "shadow"
    EXAMPLE: ClassVar[str] = "shadow: {min_compared: 1000, parity: 99.9%, for: 30m}"
    min_compared: Annotated[int, kinds.Count(1)] = 1000
    """Compared answers the stage needs before it judges parity."""
    parity: Annotated[float, kinds.PARITY] = 0.999
    """The share of compared answers that must agree."""
    hold: Annotated[float, kinds.key("for"), kinds.DURATION] = 0.0
    """How long parity must hold."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CanaryStage:
    """Raise the canary's share step by step."""

    kind: ClassVar[StageKind] = "canary"
    EXAMPLE: ClassVar[str] = "canary: {percent: [1%, 5%, 25%, 50%], step_every: 15m}"
    steps: Annotated[tuple[float, ...], kinds.key("percent"), kinds.CANARY_STEPS]
    """The canary's shares, growing, each above 0% and below 100%."""
    step_every: Annotated[float, kinds.DURATION] = 900.0
    """The shortest stay at each share."""
    min_requests: Annotated[int, kinds.Count(1)] = 500
    """Answers of the new side each share needs before the next."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MigratedStage:
    """The whole route on the new side: once held, legacy's endpoint can be deleted."""

    kind: ClassVar[StageKind] = "migrated"
    EXAMPLE: ClassVar[str] = "migrated: {hold: 24h}"
    hold: Annotated[float, kinds.DURATION] = 86400.0
    """How long the whole route stays on the new side, gates passing, before done."""


Stage: TypeAlias = ShadowStage | CanaryStage | MigratedStage


@dataclass(frozen=True, slots=True, kw_only=True)
class Gates:
    """What the new side must show against the primary, over the current step's window
    (``None``: not checked); an error-rate increase is absolute: ``+0.5%`` is 0.005."""

    EXAMPLE: ClassVar[str] = "gates: {error_rate_vs_primary: +0.5%, p99_vs_primary: 1.2x}"
    error_rate_vs_primary: Annotated[float, kinds.INCREASE] | None = 0.005
    """How much the new side's error ratio may exceed the primary's, like +0.5%."""
    p99_vs_primary: Annotated[float, kinds.FACTOR] | None = None
    """How many times the primary's p99 the new side's may be, like 1.2x."""
    p99_floor: Annotated[float, kinds.DURATION] = 0.005
    """A p99 below this never fails (histogram resolution)."""
    error_budget_left: Annotated[float, kinds.PERCENT] | None = None
    """The share of the route's slo error budget that must be left (needs slo)."""
    min_primary: Annotated[int, kinds.Count(1)] = 100
    """Answers the primary must have given in the window before a comparison counts."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MigratePlan:
    """The autopilot: stages that move the route's canary share, gated."""

    __pydantic_config__: ClassVar[dict[str, object]] = READ
    EXAMPLE: ClassVar[str] = "migrate: {stages: [{canary: {percent: [5%, 50%]}}, migrated]}"

    stages: Annotated[
        tuple[
            Annotated[
                Stage,
                kinds.OneKey(
                    {"shadow": ShadowStage, "canary": CanaryStage, "migrated": MigratedStage},
                    kinds.STAGES_EXAMPLE,
                ),
            ],
            ...,
        ],
        kinds.NonEmpty(kinds.STAGES_EXAMPLE),
    ]
    """In order: shadow, canary, migrated (each at most once; canary or migrated)."""
    gates: Gates = Gates()
    """What the new side must show against the primary."""
    on_breach: OnBreach = "rollback"
    """rollback: to 0% at once; pause: one step back, then wait for resume."""
    approval: Annotated[frozenset[StageKind], kinds.ONE_OR_MORE] = frozenset()
    """Stages not entered until `strangler migrate approve`."""
    interval: Annotated[float, kinds.INTERVAL] = 10.0
    """How often the plan is evaluated (at least 50ms)."""
    at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE

    def stage_index(self, kind: StageKind) -> int | None:
        """The position of the stage of that kind, or ``None``."""
        for i, stage in enumerate(self.stages):
            if stage.kind == kind:
                return i
        return None


# Last: kinds reads values, which reads model. The field annotations above are strings,
# resolved only when pydantic reads them.
from strangler.config import kinds  # noqa: E402
