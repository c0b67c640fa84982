"""The chain of steps each route gets when a snapshot is compiled: a route runs only the
steps of the features it uses."""

from __future__ import annotations

from strangler.config import load_config_text
from strangler.exchange import Step, steps_of
from strangler.metrics import Metrics
from strangler.pipeline import compile_chains
from strangler.requestid import RequestIds
from strangler.runtime import compile_snapshot
from strangler.steps import Decide, Relay

CONFIG = """
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
upstreams:
  legacy: http://127.0.0.1:9
  billing: http://127.0.0.1:9
  slow: {url: http://127.0.0.1:9, timeout: {total: 5s}}
translators:
  t:
    response:
      - status: {map: {201: 200}}
routes:
  - {name: legacy-only, owner: o, match: {path: /a}, to: legacy}
  - {name: migrated, owner: o, match: {path: /m}, to: billing}
  - {name: migrated-no-fallback, owner: o, match: {path: /n}, to: billing, fallback: false}
  - name: canary
    owner: o
    match: {path: /b}
    to: legacy
    canary: {to: billing, percent: 10%, sticky: header:X-User-Id}
    fallback: false
  - {name: translated, owner: o, match: {path: /c}, to: billing, translate: {use: t}}
  - {name: shadowed, owner: o, match: {path: /d}, to: legacy, shadow: {to: billing, percent: 10%}}
  - name: fallback
    owner: o
    match: {path: /e}
    to: legacy
    canary: {to: billing, percent: 100%}
    fallback: {methods: [GET], on: [refused]}
  - {name: bounded, owner: o, match: {path: /f}, to: slow, fallback: false}
  - name: translated-canary
    owner: o
    match: {path: /g}
    to: legacy
    canary: {to: billing, percent: 5%}
    translate: {use: t}
    shadow: {to: billing, percent: 1%}
"""


def names(first: Step) -> list[str]:
    return [type(s).__name__ for s in steps_of(first)]


def chains() -> dict[str, dict[str, list[str]]]:
    """Per route, per upstream it may send to: the names of the steps after ``Decide``."""
    snap = compile_snapshot(load_config_text(CONFIG), Metrics())
    out = {}
    for name, first in compile_chains(snap, RequestIds()).items():
        head = steps_of(first)
        assert names(first) == ["Record", "Decide"]
        decide = head[1]
        assert isinstance(decide, Decide)
        out[name] = {up: names(side) for up, side in decide.sides.items()}
    return out


PLAIN = ["Upgrade", "BodyLimit", "Send", "Relay"]
NEW_WITH_FALLBACK = ["Upgrade", "BodyLimit", "KeepForFallback", "SendWithFallback", "Relay"]
TRANSLATED = [
    "Upgrade", "BodyLimit", "KeepForFallback", "TranslateRequestStep", "SendWithFallback",
    "TranslatedRelay",
]  # fmt: skip
SHADOWED = ["Upgrade", "BodyLimit", "ShadowTapStep", "Send", "Relay"]


def test_a_route_runs_only_the_steps_of_the_features_it_uses() -> None:
    c = chains()
    assert c["legacy-only"] == {"legacy": PLAIN}
    assert c["(unrouted)"] == {"legacy": PLAIN}
    # a route with a new side may still answer from legacy (the kill switch)
    assert c["migrated-no-fallback"] == {"billing": PLAIN, "legacy": PLAIN}
    # a release decision is not an extra step of the exchange: each side is plain
    assert c["canary"] == {"legacy": PLAIN, "billing": PLAIN}
    # fallback is on by default for a route with a new side: its new side keeps the
    # body for a replay and may send twice; the primary it falls back to does neither
    assert c["migrated"] == {"billing": NEW_WITH_FALLBACK, "legacy": PLAIN}
    assert c["fallback"] == {"billing": NEW_WITH_FALLBACK, "legacy": PLAIN}
    # translation only on the translated side, whose relay translates the answer back
    assert c["translated"] == {"billing": TRANSLATED, "legacy": PLAIN}
    # the shadow tap only where the primary is not the shadow upstream itself
    assert c["shadowed"] == {"legacy": SHADOWED}
    assert c["translated-canary"] == {"billing": TRANSLATED, "legacy": SHADOWED}
    # the upstream's total timeout bounds everything after the upgrade check
    assert c["bounded"] == {
        "slow": ["Upgrade", "Deadline", "BodyLimit", "Send", "Relay"],
        "legacy": PLAIN,
    }


def test_only_the_untranslated_side_of_a_translated_route_teaches_legacy_error_types() -> None:
    snap = compile_snapshot(load_config_text(CONFIG), Metrics())
    first = compile_chains(snap, RequestIds())
    observing = {}
    for route in ("legacy-only", "translated"):
        decide = steps_of(first[route])[1]
        assert isinstance(decide, Decide)
        relay = steps_of(decide.sides["legacy"])[-1]
        assert isinstance(relay, Relay)
        observing[route] = relay.observe is not None
    assert observing == {"legacy-only": False, "translated": True}
