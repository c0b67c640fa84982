"""Which routes take the plain request path: decided once, when the config is compiled."""

from __future__ import annotations

from strangler.config import load_config_text
from strangler.metrics import Metrics
from strangler.runtime import compile_snapshot

CONFIG = """
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
upstreams:
  legacy: http://127.0.0.1:9
  billing: http://127.0.0.1:9
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
"""


def test_only_routes_without_translation_shadow_or_fallback_are_plain() -> None:
    snap = compile_snapshot(load_config_text(CONFIG), Metrics())
    plain = {r.name: r.plain for r in snap.routes}
    assert plain == {
        "legacy-only": True,
        "migrated": False,  # fallback is on by default for a route with a new side
        "migrated-no-fallback": True,
        "canary": True,  # a release decision is not an extra step of the exchange
        "translated": False,
        "shadowed": False,
        "fallback": False,
    }
    assert snap.unrouted.plain
