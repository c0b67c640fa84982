"""Route lists to ``Route``s: each route's keys read with ``described.RouteEntry``, and
what a description cannot say.

``RouteTable`` reads the ``routes:`` list of the main file and of every included
route file, in that order, numbering routes in declaration order across all files
(``Route.index``: the first match wins). pydantic checks each route's keys (see
``RouteEntry`` and the ``kinds`` of ``MatchSpec``, ``Canary``...); this module adds the
rules across keys, read from the nodes so they are reported even when a key has a
problem of its own: a name taken twice, upstreams that exist, the sides of a release
(a canary to the route's own ``to``, a fallback to the side that failed, an slo with
nothing to watch, a shadow to the upstream that already answers), path with
path_prefix, and (``finish``, once every file is read) canary groups whose routes
disagree on the sticky key or the percentage. What a ``migrate`` plan needs of its
route is ``validate_migrate``'s, the names ``translate`` uses ``validate_translate``'s.

>>> from strangler.config.source import read_text
>>> node = read_text("shadow: {to: bling, percent: 5%}", "r.yaml").files[0].root.get("shadow")
>>> w = Walker("r.yaml")
>>> table = RouteTable(w, {"legacy", "billing"}, (), Translators(w, None, {}))
>>> table.shadow(node, "route 'a'", own="legacy")
>>> print(w.problems[0])
r.yaml:1: route 'a' shadow sends to unknown upstream 'bling' \
(hint: known upstreams: billing, legacy; did you mean 'billing'?)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from types import MappingProxyType
from typing import Any, Final

from strangler.config.described import RouteEntry, read_part
from strangler.config.model import LEGACY, Fallback, Location, Overrides, Route, Sticky
from strangler.config.source import Map, Node, Scalar, Seq, describe
from strangler.config.validate_migrate import check_migrate
from strangler.config.validate_translate import Translators
from strangler.config.values import NAME
from strangler.config.walker import Walker, did_you_mean, join_hints

__all__ = ["ROUTE_FILE_KEYS", "RouteTable"]

ROUTE_FILE_KEYS: Final = ("routes", "include")


class RouteTable:
    """Every route read so far, in declaration order, and the names they took.

    ``upstreams`` is every upstream name declared (even those with problems of their
    own, so a route pointing at them is not reported a second time); ``main_keys``
    the keys valid at the top of the main file.
    """

    def __init__(
        self,
        walker: Walker,
        upstreams: Collection[str],
        main_keys: Collection[str],
        translators: Translators,
    ) -> None:
        self.w = walker
        self.translators = translators
        self.upstreams = upstreams
        self.main_keys = main_keys  # for the hint on a main-file key in a route file
        self.routes: list[Route] = []
        self.count = 0  # routes seen, valid or not: the next route's index
        self.names: dict[str, Location] = {}

    def read_file(self, path: str, root: Node | None, *, unreadable: bool) -> None:
        """An included route file: a mapping with a ``routes:`` list (and ``include:``).

        ``unreadable``: the file had a syntax problem, already reported.
        """
        if root is None:
            if not unreadable:
                self.w.report(
                    Location(path, 1),
                    "an included route file must be a mapping with a 'routes:' list; "
                    "this one is empty",
                    "write 'routes: []' for a team with no routes yet",
                )
            return

        def elsewhere(key: str) -> str:
            if key in self.main_keys:
                return f"'{key}' belongs in the main config file; a route file holds routes"
            return ""

        f = self.w.fields(
            root,
            ROUTE_FILE_KEYS,
            subject="an included route file",
            where="at the top level of an included route file",
            required=("routes",),
            foreign_hint=elsewhere,
        )
        if f is not None and "routes" in f:
            self.read_list(f["routes"])

    def read_list(self, node: Node) -> None:
        """A ``routes:`` list."""
        if not isinstance(node, Seq):
            hint = "write 'routes: []' for none" if isinstance(node, Scalar) else ""
            self.w.report(node.at, f"routes must be a list of routes, got {describe(node)}", hint)
            return
        for item in node.items:
            route = self.route(item, self.count)
            self.count += 1
            if route is not None:
                self.routes.append(route)

    def route(self, node: Node, index: int) -> Route | None:
        """One route: its keys read with ``described.RouteEntry``, then the checks across
        keys (see the module docstring), reported even when a key has a problem."""
        f = dict((k.value, v) for k, v in node.entries) if isinstance(node, Map) else {}
        part = {key: value for key, value in f.items() if isinstance(value, Map)}
        written_name = f.get("name")
        shown = written_name.value if isinstance(written_name, Scalar) else None
        label = f"route {shown!r}" if isinstance(shown, str) and NAME.fullmatch(shown) else "route"
        before = len(self.w.problems)
        self.name(written_name)
        to = self.upstream(f.get("to"), f"{label} sends to unknown upstream")
        entry: RouteEntry | None = read_part(self.w, node, RouteEntry, label)
        if not isinstance(node, Map):
            return None
        canary_ok, canary = "canary" not in f, None
        if "canary" in part:
            canary_ok, canary = self.canary(part["canary"], f"{label} canary", to)
        new = canary or (None if to == LEGACY else to)  # the new side (model.Route.new_side)
        # the route sends to legacy and has no canary: not said when to or canary has a
        # problem of its own (the checks that need the sides are skipped, not guessed)
        nothing_new = to is not None and canary_ok and new is None
        if "fallback" in part:
            self.fallback(part["fallback"], f"{label} fallback", new, nothing_new=nothing_new)
        if "overrides" in part:
            self.overrides(part["overrides"], f"{label} overrides")
        if "slo" in part:
            self.slo(part["slo"], f"{label} slo", nothing_new=nothing_new)
        if "match" in part:
            self.match(part["match"], f"{label} match")
        if "shadow" in f:
            self.shadow(f["shadow"], label, own=to if canary is None else None)
        translate = None
        if "translate" in f:
            path = part["match"].get("path") if "match" in part else None
            template = path.value if isinstance(path, Scalar) else None  # as written
            translate = self.translators.spec(
                f["translate"],
                entry.translate if entry is not None else None,
                label=label,
                template=template if isinstance(template, str) else None,
            )
        if "migrate" in f:
            check_migrate(
                self.w,
                f["migrate"],
                label,
                has_canary=canary is not None,
                has_shadow=node.given("shadow") is not None,
                has_slo="slo" in f,
            )
        if entry is None or len(self.w.problems) != before:
            return None
        # true/false for a part (kinds.OR_BOOLEAN): on with its defaults, or off
        given: Any = entry.overrides
        overrides = Overrides() if given is True else None if given is False else given
        given = entry.fallback
        fallback = Fallback(enabled=given) if isinstance(given, bool) else given or Fallback()

        def at(value: Any, key: str) -> Any:
            return None if value is None else dataclasses.replace(value, at=f[key].at)

        return Route(
            name=entry.name,
            owner=entry.owner,
            match=dataclasses.replace(
                entry.match,
                headers=MappingProxyType(dict(entry.match.headers)),
                query=MappingProxyType(dict(entry.match.query)),
                cookies=MappingProxyType(dict(entry.match.cookies)),
            ),
            to=entry.to,
            index=index,
            at=node.at,
            canary=at(entry.canary, "canary"),
            overrides=at(overrides, "overrides"),
            fallback=fallback if "fallback" not in f else at(fallback, "fallback"),
            slo=at(entry.slo, "slo"),
            shadow=at(entry.shadow, "shadow"),
            translate=translate,
            migrate=at(entry.migrate, "migrate"),
            debug_headers=entry.debug_headers,
        )

    def name(self, node: Node | None) -> None:
        """A route name taken twice (``kinds.ROUTE_NAME`` checks how it is written)."""
        name = node.value if isinstance(node, Scalar) else None
        if node is None or not isinstance(name, str) or not NAME.fullmatch(name):
            return
        if name in self.names:
            self.w.report(
                node.at,
                f"duplicate route name {name!r} (first defined at {self.names[name]})",
                "route names must be unique: metrics, logs and the admin API use them",
            )
            return
        self.names[name] = node.at

    # -- release controls

    def finish(self) -> None:
        """Cross-route checks, once every route is read: canary groups must agree, and
        at most one route of a group carries the group's ``migrate`` plan."""
        first: dict[str, Route] = {}
        planned: dict[str, Route] = {}
        for route in self.routes:
            canary = route.canary
            if canary is None or canary.group is None:
                continue
            if route.migrate is not None:
                pilot = planned.setdefault(canary.group, route)
                if pilot is not route:
                    self.w.report(
                        route.migrate.at,
                        f"route {route.name!r} migrate: route {pilot.name!r} already carries "
                        f"the plan of canary group {canary.group!r}",
                        "a group moves as one unit: give the plan to one route of the group",
                    )
            lead = first.setdefault(canary.group, route)
            if lead is route or lead.canary is None:
                continue
            group, label = canary.group, f"route {route.name!r} canary group {canary.group!r}"
            other = f"route {lead.name!r} ({lead.canary.at})"
            if _sticky_key(canary.sticky) != _sticky_key(lead.canary.sticky):
                self.w.report(
                    canary.at,
                    f"{label} is sticky on {canary.sticky} but {other} on {lead.canary.sticky}",
                    f"every route of group {group!r} must use the same sticky key, so a user "
                    "gets one cohort for the whole group",
                )
            if canary.ratio != lead.canary.ratio:
                self.w.report(
                    canary.at,
                    f"{label} sends {canary.ratio * 100:g}% but {other} sends "
                    f"{lead.canary.ratio * 100:g}%",
                    f"give every route of group {group!r} the same percent, or a user would "
                    "be on the new side for some of them only",
                )

    def upstream(self, node: Node | None, problem: str) -> str | None:
        """The name ``node`` gives, when it is a declared upstream. Else ``None``: when it
        gives none (a blank string or not a string, for ``read_part`` to report), or after
        reporting ``{problem} 'name'`` with the known names and the closest one as hint."""
        if (
            not isinstance(node, Scalar)
            or not isinstance(node.value, str)
            or not node.value.strip()
        ):
            return None
        name = node.value
        if name in self.upstreams:
            return name
        known = sorted(self.upstreams)
        hint = join_hints(
            f"known upstreams: {', '.join(known)}" if known else "declare it under upstreams",
            did_you_mean(name, known),
        )
        self.w.report(node.at, f"{problem} {name!r}", hint)
        return None

    def canary(self, node: Map, what: str, to: str | None) -> tuple[bool, str | None]:
        """``(ok, canary.to)``: the canary names a declared upstream other than the
        route's own ``to``, and a group only with a sticky key."""
        name = self.upstream(node.get("to"), f"{what}.to: unknown upstream")
        if name is not None and name == to:
            self.w.report(
                node.key_at("to"),
                f"{what}.to is {name!r}, the route's own 'to'",
                "the canary names the new side; 'to' answers the rest",
            )
            return False, None
        if node.get("group") is not None and node.get("sticky") is None:
            self.w.report(
                node.key_at("group"),
                f"{what} has a group but no sticky key",
                "a group keeps a user in one cohort across routes: add sticky, like "
                "sticky: header:X-User-Id",
            )
            return False, name
        return name is not None, name

    def shadow(self, node: Node, label: str, *, own: str | None) -> None:
        """The upstream ``shadow`` (or ``shadow.to``) names is declared and not ``own``,
        the one answering all of the route's traffic (its ``to`` without a canary):
        shadowing to it would compare an upstream with itself."""
        what = f"{label} shadow"
        target = node.get("to") if isinstance(node, Map) else node
        to = self.upstream(target, f"{what} sends to unknown upstream")
        if to is not None and to == own and isinstance(target, Scalar):
            self.w.report(
                target.at,
                f"{what}.to is {to!r}, the upstream that already answers this route",
                "shadow to the other side (the new service, or legacy for a migrated route); "
                "compare.noise learns what differs between two answers of one upstream",
            )

    def overrides(self, node: Map, what: str) -> None:
        """``allow`` names declared upstreams; the header and the cookie are not both off."""
        allow = node.get("allow")
        for item in allow.items if isinstance(allow, Seq) else ():
            self.upstream(item, f"{what}.allow: unknown upstream")
        if _is_false(node.get("header")) and _is_false(node.get("cookie")):
            self.w.report(
                node.at,
                f"{what} turns off both the header and the cookie, so nothing can override",
                "remove overrides, or keep one of them",
            )

    def fallback(self, node: Map, what: str, new: str | None, *, nothing_new: bool) -> None:
        """``fallback.to`` names a declared upstream other than the new side ``new``, on
        a route that has one."""
        to = self.upstream(node.get("to"), f"{what}.to: unknown upstream")
        if to is not None and nothing_new:
            self.w.report(
                node.key_at("to"),
                f"{what}.to has no effect: the route sends to {LEGACY!r} and has no canary",
                "fallback.to names where a failed request to the new side goes",
            )
        elif to is not None and to == new:
            self.w.report(
                node.key_at("to"),
                f"{what}.to is {to!r}, the new side itself: a failed request would be "
                "sent back to the upstream that failed",
                f"name the primary, like {LEGACY!r}",
            )

    def slo(self, node: Map, what: str, *, nothing_new: bool) -> None:
        """At least one target, and a new side to watch."""
        if node.given("error_rate") is None and node.given("latency_p99") is None:
            self.w.report(
                node.at,
                f"{what} sets neither error_rate nor latency_p99, so it can never trip",
                "for example slo: {error_rate: 1%, latency_p99: 300ms}",
            )
        elif nothing_new:
            self.w.report(
                node.at,
                f"{what} has nothing to watch: the route sends to {LEGACY!r} and has no canary",
                "the guard watches the new side: canary.to, or a 'to' other than legacy",
            )

    def match(self, node: Map, what: str) -> None:
        """What spans a match's keys: path or path_prefix, a header named twice (names
        ignore case), query_only naming what query names."""
        if node.given("path") is not None and node.given("path_prefix") is not None:
            later = max(node.key_at("path"), node.key_at("path_prefix"), key=lambda a: a.line)
            self.w.report(
                later,
                f"{what} has both 'path' and 'path_prefix'",
                "use 'path' for one exact path or template, 'path_prefix' for a whole subtree",
            )
        headers = node.get("headers")
        if isinstance(headers, Map):
            seen: dict[str, Location] = {}
            for name, _ in headers.entries:
                if not isinstance(name.value, str):
                    continue
                first = seen.setdefault(name.value.lower(), name.at)
                if first is not name.at:
                    self.w.report(
                        name.at,
                        f"{what}.headers names header {name.value!r} twice (first at line "
                        f"{first.line})",
                        "header names are case-insensitive",
                    )
        query, only = node.get("query"), node.get("query_only")
        if isinstance(query, Map) and isinstance(only, Seq):
            named = {k.value for k, _ in query.entries}
            for item in only.items:
                if isinstance(item, Scalar) and item.value in named:
                    self.w.report(
                        item.at,
                        f"{what}.query_only: {item.value!r} is already named in match.query",
                        "list only the parameters match.query does not name",
                    )


# ---------------------------------------------------------------------------- helpers


def _is_false(node: Node | None) -> bool:
    return isinstance(node, Scalar) and node.value is False


def _sticky_key(sticky: Sticky | None) -> tuple[str, str | None] | None:
    """Sticky keys as compared across a group (header names ignore case)."""
    if sticky is None:
        return None
    name = sticky.name.lower() if sticky.kind == "header" and sticky.name else sticky.name
    return sticky.kind, name
