"""The router: first match wins, every match key, params, laziness, and the index proved
against a naive linear first-match scan on random routes and requests."""

from __future__ import annotations

import dataclasses
import doctest
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import unquote

import pytest
from aiohttp import web
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient

import strangler.router.matcher
from strangler.config.model import EMPTY_MAP, MatchSpec, ValueMatch
from strangler.router.matcher import RequestLike, Router

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"

PRESENT = ValueMatch()
ABSENT = ValueMatch(present=False)


def is_(value: str) -> ValueMatch:
    return ValueMatch(value=value)


@dataclass(frozen=True)
class Req:
    path: str = "/"
    method: str = "GET"
    host: str = "example.com"
    headers: Mapping[str, str] = field(default_factory=CIMultiDict)
    query: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)


def spec(
    path: str | None = None,
    *,
    prefix: str | None = None,
    methods: Sequence[str] | None = None,
    host: str | None = None,
    headers: Mapping[str, ValueMatch] | None = None,
    query: Mapping[str, ValueMatch] | None = None,
    cookies: Mapping[str, ValueMatch] | None = None,
    query_only: Sequence[str] | None = None,
) -> MatchSpec:
    return MatchSpec(
        path=path,
        path_prefix=prefix,
        methods=None if methods is None else frozenset(methods),
        host=host,
        headers=MappingProxyType(dict(headers or {})),
        query=MappingProxyType(dict(query or {})),
        cookies=MappingProxyType(dict(cookies or {})),
        query_only=None if query_only is None else frozenset(query_only),
    )


def router(*specs: MatchSpec) -> Router[str]:
    """Payloads are "r0", "r1", … in declaration order; the default is "legacy"."""
    return Router.compile([(s, f"r{i}") for i, s in enumerate(specs)], default="legacy")


def winner(r: Router[str], req: RequestLike) -> str:
    return r.match(req)[0]


# --- first match wins ------------------------------------------------------------------


def test_no_routes_means_default_and_the_shared_empty_map() -> None:
    r: Router[str] = Router.compile([], default="legacy")
    payload, params = r.match(Req("/anything"))
    assert payload == "legacy"
    assert params is EMPTY_MAP
    assert len(r) == 0


def test_unmatched_request_gets_default() -> None:
    r = router(spec("/a"), spec("/b/{x}"), spec(prefix="/c"))
    payload, params = r.match(Req("/d"))
    assert (payload, params) == ("legacy", {})
    assert params is EMPTY_MAP
    assert len(r) == 3


@pytest.mark.parametrize(
    ("first", "second", "path"),
    [
        (spec("/api/users"), spec(prefix="/api"), "/api/users"),
        (spec(prefix="/api"), spec("/api/users"), "/api/users"),
        (spec("/api/{x}"), spec("/api/users"), "/api/users"),
        (spec("/api/users"), spec("/api/{x}"), "/api/users"),
        (spec(prefix="/api"), spec("/api/{x}"), "/api/users"),
        (spec("/api/{x}"), spec(prefix="/api"), "/api/users"),
        (spec(prefix="/api"), spec(prefix="/api/users"), "/api/users/1"),
        (spec(prefix="/api/users"), spec(prefix="/api"), "/api/users/1"),
        (spec(), spec("/api/users"), "/api/users"),
        (spec("/api/users"), spec(), "/api/users"),
        (spec("/api/{rest:path}"), spec("/api/users/{id}"), "/api/users/1"),
        (spec("/api/users/{id}"), spec("/api/{rest:path}"), "/api/users/1"),
        (spec("/{a}/users/{id}"), spec("/api/users/{id:int}"), "/api/users/1"),
        (spec("/api/users/{id:int}"), spec("/{a}/users/{id}"), "/api/users/1"),
    ],
)
def test_first_declared_match_wins_whatever_the_kinds(
    first: MatchSpec, second: MatchSpec, path: str
) -> None:
    assert winner(router(first, second), Req(path)) == "r0"
    assert winner(router(second, first), Req(path)) == "r0"
    # …and the later one answers when the earlier one steps aside.
    post_only = dataclasses.replace(first, methods=frozenset({"POST"}))
    assert winner(router(post_only, second), Req(path)) == "r1"


def test_an_earlier_route_that_fails_a_later_condition_passes_the_turn() -> None:
    r = router(
        spec("/api/users", methods=["POST"]),
        spec(prefix="/api", headers={"X-Beta": PRESENT}),
        spec("/api/{x}", host="example.com"),
        spec(prefix="/"),
    )
    assert winner(r, Req("/api/users", method="POST")) == "r0"
    assert winner(r, Req("/api/users", headers=CIMultiDict({"X-Beta": "1"}))) == "r1"
    assert winner(r, Req("/api/users")) == "r2"
    assert winner(r, Req("/api/users", host="other.org")) == "r3"


def test_same_exact_path_twice_keeps_declaration_order() -> None:
    r = router(spec("/a", methods=["GET"]), spec("/a", methods=["GET", "POST"]), spec("/a"))
    assert winner(r, Req("/a", method="GET")) == "r0"
    assert winner(r, Req("/a", method="POST")) == "r1"
    assert winner(r, Req("/a", method="PUT")) == "r2"


# --- path ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "hit"),
    [("/health", True), ("/health/", False), ("/healthz", False), ("/Health", False)],
)
def test_exact_path(path: str, hit: bool) -> None:
    assert (winner(router(spec("/health")), Req(path)) == "r0") is hit


@pytest.mark.parametrize("prefix", ["/api", "/api/"])
@pytest.mark.parametrize(
    ("path", "hit"),
    [
        ("/api", True),
        ("/api/", True),
        ("/api/x", True),
        ("/api/x/y/z", True),
        ("/api//x", True),
        ("/apix", False),
        ("/ap", False),
        ("/", False),
        ("/v1/api", False),
        ("*", False),
    ],
)
def test_path_prefix_matches_whole_segments(prefix: str, path: str, hit: bool) -> None:
    assert (winner(router(spec(prefix=prefix)), Req(path)) == "r0") is hit


def test_deep_path_prefix() -> None:
    r = router(spec(prefix="/api/v1/users"))
    assert winner(r, Req("/api/v1/users")) == "r0"
    assert winner(r, Req("/api/v1/users/7/orders")) == "r0"
    assert winner(r, Req("/api/v1/user")) == "legacy"
    assert winner(r, Req("/api/v1")) == "legacy"


@pytest.mark.parametrize("path", ["/", "/x", "/a/b/c/", "*", ""])
def test_root_prefix_and_no_path_condition_match_every_path(path: str) -> None:
    assert winner(router(spec(prefix="/")), Req(path)) == "r0"
    assert winner(router(spec()), Req(path)) == "r0"


def test_template_params_come_back_as_strings() -> None:
    r = router(
        spec("/users/{id:int}/orders/{oid:uuid}"),
        spec("/users/{id}"),
        spec("/files/{rest:path}"),
    )
    assert r.match(Req(f"/users/7/orders/{UUID}")) == ("r0", {"id": "7", "oid": UUID})
    assert r.match(Req("/users/alice")) == ("r1", {"id": "alice"})
    assert r.match(Req("/files/a/b/c.txt")) == ("r2", {"rest": "a/b/c.txt"})
    assert r.match(Req("/users/7/orders/8")) == ("legacy", {})
    assert r.match(Req("/users/")) == ("legacy", {})
    assert r.match(Req("/users/1/2")) == ("legacy", {})
    assert r.match(Req("/files/")) == ("legacy", {})


def test_template_with_literals_after_parameters() -> None:
    r = router(
        spec("/users/{id}/orders"),
        spec("/users/{id}/profile"),
        spec("/users/{id}/orders/{oid:int}"),
    )
    assert r.match(Req("/users/1/orders")) == ("r0", {"id": "1"})
    assert r.match(Req("/users/1/profile")) == ("r1", {"id": "1"})
    assert r.match(Req("/users/1/orders/2")) == ("r2", {"id": "1", "oid": "2"})
    assert r.match(Req("/users/1/settings")) == ("legacy", {})


def test_template_without_static_prefix() -> None:
    r = router(spec("/{tenant}/users/{id:int}"))
    assert r.match(Req("/acme/users/3")) == ("r0", {"tenant": "acme", "id": "3"})
    assert r.match(Req("/acme/users/x")) == ("legacy", {})


def test_routes_without_params_answer_with_the_shared_empty_map() -> None:
    r = router(spec("/a"), spec(prefix="/b"), spec("/c/{x}"), spec())
    for path in ("/a", "/b/1", "/zzz"):
        payload, params = r.match(Req(path))
        assert payload != "legacy"
        assert params is EMPTY_MAP


def test_unicode_and_percent_decoded_paths() -> None:
    # The router sees aiohttp's decoded path: "/caf%C3%A9/a%20b" arrives as "/café/a b".
    r = router(
        spec("/café/{name}"),
        spec(prefix="/日本"),
        spec("/files/{rest:path}"),
        spec("/exact path/ü"),
    )
    assert r.match(Req("/café/a b")) == ("r0", {"name": "a b"})
    assert r.match(Req("/café/naïve")) == ("r0", {"name": "naïve"})
    assert r.match(Req("/cafe/x")) == ("legacy", {})
    assert winner(r, Req("/日本/東京")) == "r1"
    assert winner(r, Req("/日本語")) == "legacy"
    # An encoded slash (%2F) is decoded too, so it splits segments like any "/".
    assert r.match(Req("/files/a/b")) == ("r2", {"rest": "a/b"})
    assert winner(r, Req("/exact path/ü")) == "r3"


def test_percent_escapes_in_routes_match_the_decoded_request_path() -> None:
    r = router(spec("/a%20b"), spec("/caf%C3%A9/{name}"), spec(prefix="/x%2Fy"))
    assert winner(r, Req("/a b")) == "r0"
    assert r.match(Req("/café/1")) == ("r1", {"name": "1"})
    assert winner(r, Req("/x/y/z")) == "r2"
    assert winner(r, Req("/a%20b")) == "legacy"


def test_exact_path_that_also_falls_under_templates_and_prefixes() -> None:
    # The exact-path shortcut must still see the earlier template and prefix candidates.
    r = router(
        spec("/api/{x}", methods=["POST"]),
        spec(prefix="/api", methods=["PUT"]),
        spec("/api/users"),
        spec(prefix="/", methods=["DELETE"]),
    )
    assert r.match(Req("/api/users", method="POST")) == ("r0", {"x": "users"})
    assert winner(r, Req("/api/users", method="PUT")) == "r1"
    assert winner(r, Req("/api/users", method="GET")) == "r2"
    assert winner(r, Req("/api/users", method="DELETE")) == "r2"
    assert winner(r, Req("/other", method="DELETE")) == "r3"


# --- methods, host ---------------------------------------------------------------------


def test_methods_and_head_is_not_implied_by_get() -> None:
    r = router(spec("/a", methods=["GET"]), spec("/a", methods=["HEAD", "OPTIONS"]))
    assert winner(r, Req("/a", method="GET")) == "r0"
    assert winner(r, Req("/a", method="HEAD")) == "r1"
    assert winner(r, Req("/a", method="POST")) == "legacy"
    assert winner(router(spec("/a")), Req("/a", method="PATCH")) == "r0"


@pytest.mark.parametrize(
    ("route_host", "request_host", "hit"),
    [
        ("example.com", "example.com", True),
        ("example.com", "EXAMPLE.com", True),
        ("example.com", "example.com:8080", True),
        ("example.com", "example.com.", True),
        ("Example.COM", "example.com", True),
        ("example.com", "www.example.com", False),
        ("example.com", "example.org", False),
        ("*.example.com", "api.example.com", True),
        ("*.example.com", "a.b.example.com", True),
        ("*.example.com", "API.Example.com:443", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", ".example.com", False),
        ("*.example.com", "evilexample.com", False),
        ("*.example.com", "example.com.evil.org", False),
        ("[::1]", "[::1]:8080", True),
        ("127.0.0.1", "127.0.0.1:80", True),
    ],
)
def test_host(route_host: str, request_host: str, hit: bool) -> None:
    r = router(spec("/a", host=route_host))
    assert (winner(r, Req("/a", host=request_host)) == "r0") is hit


# --- headers, query, cookies -----------------------------------------------------------


@pytest.mark.parametrize(
    ("cond", "value", "hit"),
    [
        (PRESENT, "1", True),
        (PRESENT, "", True),
        (PRESENT, None, False),
        (ABSENT, None, True),
        (ABSENT, "1", False),
        (is_("on"), "on", True),
        (is_("on"), "ON", False),
        (is_("on"), None, False),
    ],
)
def test_value_conditions(cond: ValueMatch, value: str | None, hit: bool) -> None:
    have = {} if value is None else {"beta": value}
    by_header = router(spec("/a", headers={"X-Beta": cond}))
    by_query = router(spec("/a", query={"beta": cond}))
    by_cookie = router(spec("/a", cookies={"beta": cond}))
    headers = CIMultiDict({"X-Beta": value} if value is not None else {})
    assert (winner(by_header, Req("/a", headers=headers)) == "r0") is hit
    assert (winner(by_query, Req("/a", query=have)) == "r0") is hit
    assert (winner(by_cookie, Req("/a", cookies=have)) == "r0") is hit


def test_header_names_are_case_insensitive_and_query_names_are_not() -> None:
    r = router(spec("/a", headers={"X-Beta": is_("1")}), spec("/b", query={"Beta": PRESENT}))
    assert winner(r, Req("/a", headers=CIMultiDict({"x-beta": "1"}))) == "r0"
    assert winner(r, Req("/a", headers=CIMultiDict({"X-BETA": "1"}))) == "r0"
    assert winner(r, Req("/b", query={"Beta": "1"})) == "r1"
    assert winner(r, Req("/b", query={"beta": "1"})) == "legacy"


@pytest.mark.parametrize(
    ("query", "hit"),
    [
        ({}, True),
        ({"status": "open"}, True),
        ({"status": "open", "page": "2"}, False),
        ({"q": "x"}, False),
    ],
)
def test_query_only_refuses_parameters_the_route_does_not_name(
    query: dict[str, str], hit: bool
) -> None:
    r = router(spec("/orders", query_only=["status"]))
    assert (winner(r, Req("/orders", query=query)) == "r0") is hit


def test_query_only_allows_the_names_match_query_requires() -> None:
    r = router(spec("/orders", query={"v": is_("2")}, query_only=[]))
    assert winner(r, Req("/orders", query={"v": "2"})) == "r0"
    assert winner(r, Req("/orders", query={"v": "2", "page": "1"})) == "legacy"


def test_query_only_without_query_conditions_means_no_query_at_all() -> None:
    r = router(spec("/orders", query_only=[]), spec("/orders"))
    assert winner(r, Req("/orders")) == "r0"
    assert winner(r, Req("/orders", query={"page": "2"})) == "r1"


def test_all_conditions_must_hold() -> None:
    r = router(
        spec(
            "/api/{x}",
            methods=["GET"],
            host="*.example.com",
            headers={"X-Beta": is_("1"), "X-Old": ABSENT},
            query={"v": is_("2")},
            cookies={"session": PRESENT},
        )
    )
    good = Req(
        "/api/1",
        host="api.example.com",
        headers=CIMultiDict({"X-Beta": "1"}),
        query={"v": "2"},
        cookies={"session": "s"},
    )
    assert r.match(good) == ("r0", {"x": "1"})
    spoiled = [
        Req("/api/1/2", good.method, good.host, good.headers, good.query, good.cookies),
        Req(good.path, "POST", good.host, good.headers, good.query, good.cookies),
        Req(good.path, good.method, "example.com", good.headers, good.query, good.cookies),
        Req(good.path, good.method, good.host, CIMultiDict(), good.query, good.cookies),
        Req(
            good.path,
            good.method,
            good.host,
            CIMultiDict({"X-Beta": "1", "X-Old": "y"}),
            good.query,
            good.cookies,
        ),
        Req(good.path, good.method, good.host, good.headers, {"v": "3"}, good.cookies),
        Req(good.path, good.method, good.host, good.headers, good.query, {}),
    ]
    for req in spoiled:
        assert winner(r, req) == "legacy", req


# --- laziness: the expensive request attributes are read only when needed -------------


class Watched:
    """A request that records which lazily parsed attributes the router read."""

    def __init__(self, path: str, method: str = "GET") -> None:
        self.path = path
        self.method = method
        self.read: set[str] = set()

    @property
    def host(self) -> str:
        self.read.add("host")
        return "example.com"

    @property
    def headers(self) -> Mapping[str, str]:
        self.read.add("headers")
        return CIMultiDict({"X-Beta": "1"})

    @property
    def query(self) -> Mapping[str, str]:
        self.read.add("query")
        return {"v": "1"}

    @property
    def cookies(self) -> Mapping[str, str]:
        self.read.add("cookies")
        return {"c": "1"}


def test_host_headers_query_cookies_are_read_only_when_a_candidate_needs_them() -> None:
    r = router(
        spec("/plain"),
        spec("/api/{x}"),
        spec(prefix="/static"),
        spec("/h", headers={"X-Beta": PRESENT}),
        spec("/q/{x}", query={"v": PRESENT}),
        spec(prefix="/c", cookies={"c": PRESENT}),
        spec("/host", host="example.com"),
        spec("/all", methods=["POST"], host="example.com", headers={"X-Beta": PRESENT}),
    )
    expectations = [
        ("/plain", "GET", "r0", set()),
        ("/api/1", "GET", "r1", set()),
        ("/static/app.js", "GET", "r2", set()),
        ("/nowhere", "GET", "legacy", set()),
        ("/h", "GET", "r3", {"headers"}),
        ("/q/1", "GET", "r4", {"query"}),
        ("/c/x", "GET", "r5", {"cookies"}),
        ("/host", "GET", "r6", {"host"}),
        ("/all", "GET", "legacy", set()),  # the method fails first
        ("/all", "POST", "r7", {"host", "headers"}),
    ]
    for path, method, expected, read in expectations:
        req = Watched(path, method)
        assert winner(r, req) == expected, path
        assert req.read == read, path


# --- compile errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (spec("/users/{id"), r"route #1: path template '/users/\{id': unbalanced braces"),
        (spec("/users/{id:float}"), "route #1: path template .* unknown converter 'float'"),
        (spec("users"), "route #1: path template 'users': must start with '/'"),
        (spec(prefix="api"), "route #1: path prefix 'api': must start with '/'"),
        (spec("/a", prefix="/a"), "route #1: set either 'path' or 'path_prefix', not both"),
    ],
)
def test_compile_rejects_bad_specs_naming_the_route(bad: MatchSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        router(spec("/ok"), bad)


def test_docstring_examples() -> None:
    result = doctest.testmod(strangler.router.matcher)
    assert result.attempted > 0
    assert result.failed == 0


# --- a real aiohttp request satisfies RequestLike ---------------------------------------


async def test_aiohttp_request_is_request_like(aiohttp_client: AiohttpClient) -> None:
    r = router(
        spec("/users/{id:int}", methods=["GET"], host="*.example.com"),
        spec("/café/{name}", headers={"X-Beta": is_("1")}),
        spec(prefix="/api", query={"v": is_("2")}, cookies={"beta": PRESENT}),
    )

    async def handle(request: web.Request) -> web.Response:
        req: RequestLike = request  # checked by mypy: aiohttp's Request fits the Protocol
        payload, params = r.match(req)
        return web.json_response({"route": payload, "params": dict(params)})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    client = await aiohttp_client(app)

    async def ask(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> object:
        async with client.request(method, path, headers=headers) as resp:
            assert resp.status == 200
            return await resp.json()

    host = {"Host": "API.Example.com:8080"}
    assert await ask("/users/42", headers=host) == {"route": "r0", "params": {"id": "42"}}
    assert await ask("/users/42", "POST", headers=host) == {"route": "legacy", "params": {}}
    assert await ask("/users/42") == {"route": "legacy", "params": {}}  # Host: 127.0.0.1:port
    assert await ask("/caf%C3%A9/na%C3%AFve", headers={"x-beta": "1"}) == {
        "route": "r1",
        "params": {"name": "naïve"},
    }
    assert await ask("/caf%C3%A9/x") == {"route": "legacy", "params": {}}
    assert await ask("/api/x?v=2", headers={"Cookie": "beta=yes"}) == {"route": "r2", "params": {}}
    assert await ask("/api/x?v=3", headers={"Cookie": "beta=yes"}) == {
        "route": "legacy",
        "params": {},
    }
    assert await ask("/api/x?v=2") == {"route": "legacy", "params": {}}


# --- the index agrees with a naive linear first-match scan ------------------------------


def ref_host(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        host = host[: host.index("]") + 1]
    elif host.count(":") == 1:
        host = host.split(":")[0]
    return host.removesuffix(".")


def ref_segment_ok(converter: str, segment: str) -> bool:
    if converter == "int":
        return segment != "" and all(c in "0123456789" for c in segment)
    if converter == "uuid":
        return (
            len(segment) == 36
            and all(segment[i] == "-" for i in (8, 13, 18, 23))
            and all(
                c in string.hexdigits for i, c in enumerate(segment) if i not in (8, 13, 18, 23)
            )
        )
    return segment != ""


def ref_path(s: MatchSpec, path: str) -> dict[str, str] | None:
    if s.path_prefix is not None:
        p = unquote(s.path_prefix).rstrip("/")
        return {} if p == "" or path == p or path.startswith(p + "/") else None
    if s.path is None:
        return {}
    # Literal text in routes is percent-decoded, as the request path already is.
    want = [w for part in s.path.split("/") for w in _decode_literal(part)]
    have = path.split("/")
    params: dict[str, str] = {}
    for k, part in enumerate(want):
        if not part.startswith("{"):
            if k >= len(have) or have[k] != part:
                return None
            continue
        name, _, converter = part[1:-1].partition(":")
        if converter == "path":
            rest = "/".join(have[k:])
            if not rest:
                return None
            params[name] = rest
            return params
        if k >= len(have) or not ref_segment_ok(converter, have[k]):
            return None
        params[name] = have[k]
    return params if len(have) == len(want) else None


def _decode_literal(part: str) -> list[str]:
    return [part] if part.startswith("{") else unquote(part).split("/")


def ref_values(conds: Mapping[str, ValueMatch], have: Mapping[str, str]) -> bool:
    for name, vm in conds.items():
        got = have.get(name)
        if not vm.present:
            if got is not None:
                return False
        elif got is None or (vm.value is not None and got != vm.value):
            return False
    return True


def reference_match(specs: Sequence[MatchSpec], req: Req) -> tuple[str, dict[str, str]]:
    """The obviously correct, obviously slow router: try every route in order."""
    for i, s in enumerate(specs):
        if s.methods is not None and req.method not in s.methods:
            continue
        params = ref_path(s, req.path)
        if params is None:
            continue
        if s.host is not None:
            want, host = s.host.lower(), ref_host(req.host)
            if want.startswith("*."):
                if not (host.endswith(want[1:]) and len(host) > len(want) - 1):
                    continue
            elif host != want:
                continue
        if not (
            ref_values(s.headers, req.headers)
            and ref_values(s.query, req.query)
            and ref_values(s.cookies, req.cookies)
        ):
            continue
        return f"r{i}", params
    return "legacy", {}


WORDS = ["api", "users", "v1", "42", "7", "orders", "café", "a b", "", UUID, "x", "0042"]
ROUTE_WORDS = [*WORDS, "caf%C3%A9", "a%20b", "v1%2F42"]  # routes may percent-encode
PARAMS = ["{p}", "{p:int}", "{p:uuid}"]
METHODS = ["GET", "POST", "HEAD", "DELETE", "PUT"]
ROUTE_HOSTS = ["example.com", "*.example.com", "API.example.com", "*.api.example.com"]
REQUEST_HOSTS = [
    "example.com",
    "EXAMPLE.com:8080",
    "api.example.com",
    "a.api.example.com",
    "other.org",
    "example.com.",
    "xexample.com",
    ".example.com",
]


def random_template(rng: random.Random) -> str:
    parts = [rng.choice(ROUTE_WORDS) for _ in range(rng.randint(0, 3))]
    n_params = rng.randint(1, 2)
    for k in range(n_params):
        at = rng.randint(0, len(parts))
        parts.insert(at, rng.choice(PARAMS).replace("{p", f"{{p{k}"))
    if rng.random() < 0.25:
        parts.append("{tail:path}")
    return "/" + "/".join(parts)


def random_spec(rng: random.Random) -> MatchSpec:
    kind = rng.random()
    path = prefix = None
    if kind < 0.3:
        path = "/" + "/".join(rng.choice(ROUTE_WORDS) for _ in range(rng.randint(1, 3)))
    elif kind < 0.65:
        path = random_template(rng)
    elif kind < 0.98:
        words = [w for w in ROUTE_WORDS if w not in ("", UUID)]
        prefix = "/" + "/".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.2:
            prefix = "/" if rng.random() < 0.2 else prefix + "/"
    methods = rng.sample(METHODS, rng.randint(1, 2)) if rng.random() < 0.4 else None
    if path is None and (prefix is None or prefix.strip("/") == "") and methods is None:
        methods = [rng.choice(METHODS)]  # an unconditional catch-all would end every scan

    def conds(name: str) -> dict[str, ValueMatch]:
        if rng.random() > 0.15:
            return {}
        return {name: rng.choice([PRESENT, ABSENT, is_("1")])}

    return spec(
        path,
        prefix=prefix,
        methods=methods,
        host=rng.choice(ROUTE_HOSTS) if rng.random() < 0.15 else None,
        headers=conds(rng.choice(["X-Beta", "x-beta"])),
        query=conds("v"),
        cookies=conds("c"),
    )


def fill(rng: random.Random, template: str) -> str:
    """A path built from a template, its parameters filled with mostly fitting values."""
    out = []
    for part in template.split("/"):
        if part.startswith("{"):
            converter = part[1:-1].partition(":")[2]
            choices = {
                "int": ["7", "0042", "x"],
                "uuid": [UUID, UUID.upper(), "7"],
                "path": ["a", "a/b", "a/", "", "café/x"],
            }.get(converter, ["x", "42", "a b", ""])
            out.append(rng.choice(choices))
        else:
            out.append(unquote(part))  # the request path arrives decoded
    return "/".join(out)


def random_request(rng: random.Random, specs: Sequence[MatchSpec]) -> Req:
    s = rng.choice(specs)
    if rng.random() < 0.6 and s.path is not None:
        path = fill(rng, s.path)
    elif rng.random() < 0.6 and s.path_prefix is not None:
        path = unquote(s.path_prefix).rstrip("/") + rng.choice(["", "/", "/x", "/x/y", "x"])
    else:
        path = "/" + "/".join(rng.choice(WORDS) for _ in range(rng.randint(0, 5)))
    if rng.random() < 0.1:
        path += "/"
    if rng.random() < 0.02:
        path = "*"
    pick = rng.choice([None, "1", "0"])
    return Req(
        path=path,
        method=rng.choice(METHODS),
        host=rng.choice(REQUEST_HOSTS),
        headers=CIMultiDict({} if pick is None else {rng.choice(["X-BETA", "x-beta"]): pick}),
        query=rng.choice([{}, {"v": "1"}, {"v": "2"}]),
        cookies=rng.choice([{}, {"c": "1"}, {"c": ""}]),
    )


@pytest.mark.parametrize("seed", range(9))
def test_router_agrees_with_a_linear_first_match_scan(seed: int) -> None:
    rng = random.Random(seed)
    specs = [random_spec(rng) for _ in range((5, 50, 300)[seed % 3])]
    r = router(*specs)
    winners: set[str] = set()
    with_params = 0
    for _ in range(3000):
        req = random_request(rng, specs)
        expected = reference_match(specs, req)
        payload, params = r.match(req)
        assert (payload, dict(params)) == expected, (req, expected)
        if not params:
            assert params is EMPTY_MAP
        winners.add(payload)
        with_params += bool(params)
    # The generator must reach many routes, templates and misses, or this proves little.
    if len(specs) <= 50:  # with 300 random routes some catch-all may take every miss
        assert "legacy" in winners
    assert len(winners) > min(len(specs), 100) // 2
    if any(s.path is not None and "{" in s.path for s in specs):
        assert with_params > 0
