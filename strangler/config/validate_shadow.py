"""A route's ``shadow:``: its keys are read by pydantic with the route
(``described.RouteEntry.shadow``); the upstream it names is checked here
(``check_shadow``, from the nodes).

>>> from strangler.config.source import read_text
>>> node = read_text("shadow: {to: bling, percent: 5%}", "r.yaml").files[0].root.get("shadow")
>>> w = Walker("r.yaml")
>>> check_shadow(w, node, "route 'a'", upstreams={"legacy", "billing"}, own="legacy")
False
>>> print(w.problems[0])
r.yaml:1: route 'a' shadow sends to unknown upstream 'bling' \
(hint: known upstreams: billing, legacy; did you mean 'billing'?)
"""

from __future__ import annotations

from collections.abc import Collection

from strangler.config.source import Map, Node, Scalar
from strangler.config.walker import Walker, did_you_mean, join_hints

__all__ = ["check_shadow", "known_upstream"]


def check_shadow(
    w: Walker, node: Node, label: str, *, upstreams: Collection[str], own: str | None
) -> bool:
    """The upstream a route's ``shadow`` node names (``label`` names the route in
    messages, like ``route 'invoices'``) is declared and not ``own``; false after
    reporting. ``upstreams``: every declared upstream name. ``own``: the upstream that
    answers all of the route's traffic (its ``to`` when it has no canary, else
    ``None``); shadowing to it would compare an upstream with itself. Read from the
    node, so checked even when another key has a problem."""
    what = f"{label} shadow"
    target = node.get("to") if isinstance(node, Map) else node
    to = target.value if isinstance(target, Scalar) else None
    if not isinstance(target, Scalar) or not isinstance(to, str) or not to.strip():
        return True
    if not known_upstream(w, target, f"{what} sends to unknown upstream", upstreams):
        return False
    if to == own:
        w.report(
            target.at,
            f"{what}.to is {to!r}, the upstream that already answers this route",
            "shadow to the other side (the new service, or legacy for a migrated route); "
            "compare.noise learns what differs between two answers of one upstream",
        )
        return False
    return True


def known_upstream(w: Walker, node: Scalar, problem: str, upstreams: Collection[str]) -> bool:
    """``node`` names one of ``upstreams``; else the problem ``{problem} 'name'``, with
    the known names and the closest one as the hint."""
    name = str(node.value)
    if name in upstreams:
        return True
    known = sorted(upstreams)
    hint = join_hints(
        f"known upstreams: {', '.join(known)}" if known else "declare it under upstreams",
        did_you_mean(name, known),
    )
    w.report(node.at, f"{problem} {name!r}", hint)
    return False
