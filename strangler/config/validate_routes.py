"""Route lists to ``Route``s: names, owners, targets and match specs, problem by problem.

``RouteTable`` reads the ``routes:`` list of the main file and of every included
route file, in that order, numbering routes in declaration order across all files
(``Route.index``: the first match wins). It reports, among others: a missing
``name``/``owner``/``match``/``to``, a duplicate name (pointing at the first one
too), a ``to`` naming an unknown upstream (listing the known ones), a ``match``
with both ``path`` and ``path_prefix``, malformed paths and templates, unknown
methods, bad hosts, and header/query/cookie conditions that are not a string
(exact value), ``true`` (must be present) or ``false`` (must be absent).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Final

from strangler.config.model import Location, MatchSpec, Route, ValueMatch
from strangler.config.source import Map, Node, Scalar, Seq, describe
from strangler.config.values import (
    METHODS,
    NAME,
    BadValue,
    check_host,
    check_path,
    check_path_template,
)
from strangler.config.walker import Walker, did_you_mean, join_hints

__all__ = ["MATCH_KEYS", "ROUTE_FILE_KEYS", "ROUTE_KEYS", "RouteTable"]

ROUTE_FILE_KEYS: Final = ("routes", "include")
ROUTE_KEYS: Final = ("name", "owner", "match", "to")
MATCH_KEYS: Final = ("path", "path_prefix", "methods", "host", "headers", "query", "cookies")

_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # header and cookie names
_KINDS: Final = {"headers": "header", "query": "query parameter", "cookies": "cookie"}
_EMPTY: Final[Mapping[str, ValueMatch]] = MappingProxyType({})


class RouteTable:
    """Every route read so far, in declaration order, and the names they took.

    ``upstreams`` is every upstream name declared (even those with problems of their
    own, so a route pointing at them is not reported a second time); ``main_keys``
    the keys valid at the top of the main file.
    """

    def __init__(
        self, walker: Walker, upstreams: Collection[str], main_keys: Collection[str]
    ) -> None:
        self.w = walker
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
            index = self.count
            self.count += 1
            route = self.route(item, index)
            if route is not None:
                self.routes.append(route)

    def route(self, node: Node, index: int) -> Route | None:
        if not isinstance(node, Map):
            self.w.report(
                node.at,
                f"a route must be a mapping with name, owner, match and to, got {describe(node)}",
            )
            return None
        name_node = node.get("name")
        name = None if name_node is None else self.name(name_node)
        shown = name_node.value if isinstance(name_node, Scalar) else None
        label = f"route {shown!r}" if isinstance(shown, str) and shown.strip() else "route"
        f = self.w.entries(
            node, ROUTE_KEYS, subject=label, where=f"in {label}", required=ROUTE_KEYS
        )
        owner = None if "owner" not in f else self.w.string(f["owner"], f"{label} owner")
        match = None if "match" not in f else self.match(f["match"], label)
        to = None if "to" not in f else self.target(f["to"], label)
        if name is None or owner is None or match is None or to is None:
            return None
        return Route(name=name, owner=owner, match=match, to=to, index=index, at=node.at)

    def name(self, node: Node) -> str | None:
        name = self.w.string(node, "route name")
        if name is None:
            return None
        if not NAME.fullmatch(name):
            self.w.report(
                node.at,
                f"route name {name!r} must be letters, digits, '.', '_' and '-', "
                "starting with a letter or digit",
                "names appear in metrics, logs and admin URLs, like 'invoices-read'",
            )
            return None
        if name in self.names:
            self.w.report(
                node.at,
                f"duplicate route name {name!r} (first defined at {self.names[name]})",
                "route names must be unique: metrics, logs and the admin API use them",
            )
            return None
        self.names[name] = node.at
        return name

    def target(self, node: Node, label: str) -> str | None:
        to = self.w.string(node, f"{label} to", hint="the name of an upstream, like 'legacy'")
        if to is None or to in self.upstreams:
            return to
        known = sorted(self.upstreams)
        hint = join_hints(
            f"known upstreams: {', '.join(known)}" if known else "declare it under upstreams",
            did_you_mean(to, known),
        )
        self.w.report(node.at, f"{label} sends to unknown upstream {to!r}", hint)
        return None

    # -- match

    def match(self, node: Node, label: str) -> MatchSpec | None:
        if not isinstance(node, Map):
            hint = "for example match: {path_prefix: /api/invoices, methods: [GET]}"
            self.w.report(node.at, f"{label} match must be a mapping, got {describe(node)}", hint)
            return None
        f = self.w.entries(
            node, MATCH_KEYS, subject=f"{label} match", where=f"in the match of {label}"
        )
        ok = True
        if "path" in f and "path_prefix" in f:
            later = max(node.key_at("path"), node.key_at("path_prefix"), key=lambda a: a.line)
            self.w.report(
                later,
                f"{label} match has both 'path' and 'path_prefix'",
                "use 'path' for one exact path or template, 'path_prefix' for a whole subtree",
            )
            ok = False
        path = prefix = host = None
        methods: frozenset[str] | None = None
        if "path" in f:
            path = self.path(f["path"], label)
            ok = ok and path is not None
        if "path_prefix" in f:
            prefix = self.prefix(f["path_prefix"], label)
            ok = ok and prefix is not None
        if "methods" in f:
            methods = self.methods(f["methods"], label)
            ok = ok and methods is not None
        if "host" in f:
            host = self.host(f["host"], label)
            ok = ok and host is not None
        headers, query, cookies = (
            _EMPTY if key not in f else self.conditions(f[key], label, key) for key in _KINDS
        )
        if not ok or headers is None or query is None or cookies is None:
            return None
        return MatchSpec(
            path=path,
            path_prefix=prefix,
            methods=methods,
            host=host,
            headers=headers,
            query=query,
            cookies=cookies,
        )

    def path(self, node: Node, label: str) -> str | None:
        what = f"{label} match.path"
        path = self.w.string(node, what)
        if path is None or self.w.checked(node, what, check_path_template, path) is None:
            return None
        return path

    def prefix(self, node: Node, label: str) -> str | None:
        what = f"{label} match.path_prefix"
        prefix = self.w.string(node, what)
        if prefix is None:
            return None
        try:
            check_path(prefix)
            if "{" in prefix or "}" in prefix:
                raise BadValue(
                    f"{prefix!r}: a prefix cannot hold parameters",
                    "use match.path with a template, like /users/{id}/{rest:path}",
                )
        except BadValue as err:
            self.w.report(node.at, f"{what}: {err}", err.hint)
            return None
        return prefix

    def host(self, node: Node, label: str) -> str | None:
        what = f"{label} match.host"
        host = self.w.string(node, what, hint="like api.example.com or *.example.com")
        return None if host is None else self.w.checked(node, what, check_host, host)

    def methods(self, node: Node, label: str) -> frozenset[str] | None:
        """Upper-cased; ``[get]`` is ``GET``."""
        what = f"{label} match.methods"
        if not isinstance(node, Seq):
            hint = "write a list, like [GET, HEAD]; leave methods out to match any"
            self.w.report(node.at, f"{what} must be a list, got {describe(node)}", hint)
            return None
        if not node.items:
            hint = "leave methods out to match any"
            self.w.report(node.at, f"{what} is empty, so the route would match nothing", hint)
            return None
        found: set[str] = set()
        ok = True
        for item in node.items:
            if not (isinstance(item, Scalar) and isinstance(item.value, str)):
                self.w.report(item.at, f"{what}: expected a method like GET, got {describe(item)}")
                ok = False
                continue
            method = item.value.upper()
            if method not in METHODS:
                hint = did_you_mean(method, METHODS) or f"known methods: {', '.join(METHODS)}"
                self.w.report(item.at, f"{what}: unknown HTTP method {item.value!r}", hint)
                ok = False
            elif method in found:
                self.w.report(item.at, f"{what} lists {method} twice")
                ok = False
            found.add(method)
        return frozenset(found) if ok else None

    def conditions(self, node: Node, label: str, key: str) -> Mapping[str, ValueMatch] | None:
        """``headers``/``query``/``cookies``: name → ``"exact"`` | ``true`` | ``false``."""
        what = f"{label} match.{key}"
        kind = _KINDS[key]
        if not isinstance(node, Map):
            hint = f"for example {key}: {{name: value}}"
            self.w.report(node.at, f"{what} must be a mapping, got {describe(node)}", hint)
            return None
        result: dict[str, ValueMatch] = {}
        seen: dict[str, Location] = {}
        ok = True
        for name_node, value in node.entries:
            name = name_node.value
            if not isinstance(name, str) or not (
                _TOKEN.fullmatch(name) if key != "query" else name
            ):
                self.w.report(name_node.at, f"{what}: {name!r} is not a valid {kind} name")
                ok = False
                continue
            folded = name.lower() if key == "headers" else name
            if folded in seen:
                self.w.report(
                    name_node.at,
                    f"{what} names {kind} {name!r} twice (first at line {seen[folded].line})",
                    "header names are case-insensitive" if key == "headers" else "",
                )
                ok = False
                continue
            seen[folded] = name_node.at
            condition = _condition(value)
            if condition is None:
                number = isinstance(value, Scalar) and isinstance(value.value, int | float)
                self.w.report(
                    value.at,
                    f"{what}.{name}: expected a string (exact value), true (must be present) "
                    f"or false (must be absent), got {describe(value)}",
                    f'quote it to match the exact text: "{value.value}"'
                    if number and isinstance(value, Scalar)
                    else "",
                )
                ok = False
                continue
            result[name] = condition
        return MappingProxyType(result) if ok else None


def _condition(node: Node) -> ValueMatch | None:
    """``"x"``: exactly x; ``true``: present with any value; ``false``: absent."""
    if not isinstance(node, Scalar):
        return None
    if isinstance(node.value, bool):
        return ValueMatch(present=node.value)
    if isinstance(node.value, str):
        return ValueMatch(value=node.value)
    return None
