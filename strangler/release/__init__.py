"""Release controls: which upstream answers each request, and the state behind it.

* ``compile_release(route, upstreams)`` → ``ReleasePlan`` once per snapshot;
  ``decide(plan, request, state, rand)`` → ``Decision(upstream, reason, cohort)``
  per request, by the precedence kill switch → guard → override → canary → ``to``
  (``decide``); ``plan.fallback`` says when a failed request may retry on the primary.
* ``bucket(key, salt)`` / ``in_canary(bucket, ratio)``: stable sticky cohorts (``sticky``).
* ``SloGuard`` / ``Guards``: per-route SLO windows that trip a rollback (``guard``).
* ``RouteState`` / ``RuntimeState``: kill switches, percent overrides, guard trips;
  ``FileStateStore`` keeps them on disk and shares them between workers
  (``update_routes``: several routes, a canary group, in one atomic write);
  ``AuditLog`` records who changed what, and why (``state``).
* ``ReleaseControls`` (``controls``): the writes; a canary group moves as one.
"""

from strangler.release.decide import (
    FAILURE_5XX,
    REASONS,
    Decision,
    FallbackPolicy,
    Reason,
    ReleasePlan,
    ReleaseRequest,
    compile_release,
    decide,
    fixed_plan,
)
from strangler.release.guard import Guards, GuardVerdict, SloGuard, Trip
from strangler.release.state import (
    AUDIT_FILE,
    STATE_FILE,
    AuditLog,
    FileStateStore,
    MemoryStateStore,
    RouteState,
    RuntimeState,
    StateChange,
    StateFileError,
    StateStore,
)
from strangler.release.sticky import BUCKETS, bucket, cutoff, in_canary

__all__ = [
    "AUDIT_FILE",
    "BUCKETS",
    "FAILURE_5XX",
    "REASONS",
    "STATE_FILE",
    "AuditLog",
    "Decision",
    "FallbackPolicy",
    "FileStateStore",
    "GuardVerdict",
    "Guards",
    "MemoryStateStore",
    "Reason",
    "ReleasePlan",
    "ReleaseRequest",
    "RouteState",
    "RuntimeState",
    "SloGuard",
    "StateChange",
    "StateFileError",
    "StateStore",
    "Trip",
    "bucket",
    "compile_release",
    "cutoff",
    "decide",
    "fixed_plan",
    "in_canary",
]
