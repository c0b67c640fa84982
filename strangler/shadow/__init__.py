"""Shadow traffic: mirror a share of a route's requests to a second upstream in the
background, compare its answers with the ones users got, and report parity.

The user's response never waits on any of it: jobs run in a bounded per-route lane
(``runner``), the primary's body is teed into a bounded capture that never
back-pressures (``capture``), and a full lane drops and counts. Modules:

- ``service``: ``ShadowService`` (lanes + results; ``begin`` on the request path),
  ``compile_shadow``;
- ``job``: ``should_shadow``, ``ShadowJob``, ``run``, ``ConfirmBudget``;
- ``runner``: ``ShadowRunner``, the only place background tasks are created;
- ``capture``: ``Capture``, ``decode`` (gzip, deflate, br);
- ``compare``: ``compare(primary, shadow, rules) -> Verdict``;
- ``noise``: ``NoiseLearner``;
- ``samples``: ``ShadowResults`` (counts, parity, top paths, redacted samples);
  ``merge_figures`` (several workers' figures as one);
- ``gate``: ``OutcomeWindow`` -> ``Gate`` (parity, compared, unstable per window);
- ``shared``: ``SharedResults`` (with ``--workers N``: published per worker, read merged);
- ``metrics``: ``ShadowMetrics`` (Prometheus);
- ``api``: ``add_shadow_routes`` (admin); ``cli``: ``add_diff_command`` (``strangler diff``).

``compare`` the function is not re-exported here: it would hide the ``compare`` module
(``from strangler.shadow.compare import compare``).
"""

from __future__ import annotations

from strangler.shadow.capture import Capture, Undecodable, decode
from strangler.shadow.compare import Difference, Observed, Rules, Verdict
from strangler.shadow.gate import Gate, OutcomeWindow, WindowFigures
from strangler.shadow.job import SAFE_METHODS, ConfirmBudget, ShadowJob, run, should_shadow
from strangler.shadow.metrics import ShadowMetrics
from strangler.shadow.noise import NoiseLearner
from strangler.shadow.runner import ShadowRunner
from strangler.shadow.samples import RouteResults, Sample, ShadowResults
from strangler.shadow.service import CompiledShadow, ShadowService, ShadowTap, compile_shadow

__all__ = [
    "SAFE_METHODS",
    "Capture",
    "CompiledShadow",
    "ConfirmBudget",
    "Difference",
    "Gate",
    "NoiseLearner",
    "Observed",
    "OutcomeWindow",
    "RouteResults",
    "Rules",
    "Sample",
    "ShadowJob",
    "ShadowMetrics",
    "ShadowResults",
    "ShadowRunner",
    "ShadowService",
    "ShadowTap",
    "Undecodable",
    "Verdict",
    "WindowFigures",
    "compile_shadow",
    "decode",
    "run",
    "should_shadow",
]
