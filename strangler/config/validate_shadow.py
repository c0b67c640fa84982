"""A route's ``shadow:``: its keys are read by pydantic with the route
(``described.RouteEntry.shadow``); the upstream it names is checked here
(``check_shadow``, from the nodes).

>>> from strangler.config.source import read_text
>>> node = read_text("shadow: {to: bling, percent: 5%}", "r.yaml").files[0].root.get("shadow")
>>> w = Walker("r.yaml")
>>> check_shadow(w, node, "route 'a'", upstreams={"legacy", "billing"}, own="legacy")
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
) -> None:
    """The upstream a route's ``shadow`` node names (``label`` names the route in
    messages, like ``route 'invoices'``) is declared and not ``own``. ``upstreams``:
    every declared upstream name. ``own``: the upstream that answers all of the
    route's traffic (its ``to`` when it has no canary, else ``None``); shadowing to it
    would compare an upstream with itself. Read from the node, so checked even when
    another key has a problem."""
    what = f"{label} shadow"
    target = node.get("to") if isinstance(node, Map) else node
    to = known_upstream(w, target, f"{what} sends to unknown upstream", upstreams)
    if to is not None and to == own and isinstance(target, Scalar):
        w.report(
            target.at,
            f"{what}.to is {to!r}, the upstream that already answers this route",
            "shadow to the other side (the new service, or legacy for a migrated route); "
            "compare.noise learns what differs between two answers of one upstream",
        )


def known_upstream(
    w: Walker, node: Node | None, problem: str, upstreams: Collection[str]
) -> str | None:
    """The name ``node`` gives, when it is one of ``upstreams``. Else ``None``: when it
    gives none (a blank string or not a string, for ``read_part`` to report), or after
    reporting ``{problem} 'name'`` with the known names and the closest one as hint."""
    if not isinstance(node, Scalar) or not isinstance(node.value, str) or not node.value.strip():
        return None
    name = node.value
    if name in upstreams:
        return name
    known = sorted(upstreams)
    hint = join_hints(
        f"known upstreams: {', '.join(known)}" if known else "declare it under upstreams",
        did_you_mean(name, known),
    )
    w.report(node.at, f"{problem} {name!r}", hint)
    return None
