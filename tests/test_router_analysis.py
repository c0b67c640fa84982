"""Shadowed-route analysis: the coverage rules one by one, and soundness on random routes
(every reported pair is checked against the real Router on requests built to match)."""

from __future__ import annotations

import doctest
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from multidict import CIMultiDict

import strangler.router
import strangler.router.analysis
from strangler.config.model import MatchSpec, ValueMatch
from strangler.router import Router, shadowed
from tests.test_router import spec

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
PRESENT = ValueMatch()
ABSENT = ValueMatch(present=False)


def is_(value: str) -> ValueMatch:
    return ValueMatch(value=value)


COVERED = True
OPEN = False


@pytest.mark.parametrize(
    ("earlier", "later", "covered"),
    [
        # exact paths
        (spec("/a"), spec("/a"), COVERED),
        (spec("/a"), spec("/b"), OPEN),
        (spec("/a"), spec("/a/"), OPEN),
        (spec("/a"), spec(prefix="/a"), OPEN),
        (spec("/a"), spec("/{x}"), OPEN),
        # prefixes
        (spec(prefix="/api"), spec("/api"), COVERED),
        (spec(prefix="/api"), spec("/api/x/y"), COVERED),
        (spec(prefix="/api/"), spec("/api/x"), COVERED),
        (spec(prefix="/api"), spec("/apix"), OPEN),
        (spec(prefix="/api"), spec("/"), OPEN),
        (spec(prefix="/api/"), spec(prefix="/api/v1"), COVERED),
        (spec(prefix="/api"), spec(prefix="/api/"), COVERED),
        (spec(prefix="/api/v1"), spec(prefix="/api"), OPEN),
        (spec(prefix="/api"), spec(prefix="/apix"), OPEN),
        (spec(prefix="/api"), spec("/api/{id}"), COVERED),
        (spec(prefix="/api"), spec("/api/{rest:path}"), COVERED),
        (spec(prefix="/api/users"), spec("/api/{id}/users"), OPEN),
        (spec(prefix="/api"), spec("/{v}/api"), OPEN),
        (spec(prefix="/"), spec("/anything/{x}"), COVERED),
        (spec(prefix="/"), spec(), COVERED),
        (spec(), spec(prefix="/x"), COVERED),
        (spec(prefix="/x"), spec(), OPEN),
        (spec(prefix="/x"), spec(prefix="/"), OPEN),
        # templates over exact paths and templates
        (spec("/users/{id}"), spec("/users/42"), COVERED),
        (spec("/users/{id}"), spec("/users/"), OPEN),
        (spec("/users/{id}"), spec("/users/42/x"), OPEN),
        (spec("/users/{id:int}"), spec("/users/42"), COVERED),
        (spec("/users/{id:int}"), spec("/users/abc"), OPEN),
        (spec("/users/{id:uuid}"), spec(f"/users/{UUID}"), COVERED),
        (spec("/users/{id}"), spec("/users/{id:int}"), COVERED),
        (spec("/users/{id}"), spec("/users/{oid:uuid}"), COVERED),
        (spec("/users/{id:int}"), spec("/users/{id}"), OPEN),
        (spec("/users/{id:int}"), spec("/users/{id:uuid}"), OPEN),
        (spec("/users/{id:int}"), spec("/users/{n:int}"), COVERED),
        (spec("/users/{id}"), spec("/users/{id}/x"), OPEN),
        (spec("/users/{id}"), spec("/users/{rest:path}"), OPEN),
        (spec("/{a}/{b}"), spec("/users/{id:int}"), COVERED),
        (spec("/{a}/{b}/c"), spec("/users/{id:int}/c"), COVERED),
        (spec("/{a}/{b}/c"), spec("/users/{id:int}/d"), OPEN),
        (spec("/{a}/{b}"), spec("/users/"), OPEN),
        # {x:path}
        (spec("/files/{rest:path}"), spec("/files/a/b"), COVERED),
        (spec("/files/{rest:path}"), spec("/files/{x}"), COVERED),
        (spec("/files/{rest:path}"), spec("/files/{x}/{y:path}"), COVERED),
        (spec("/files/{rest:path}"), spec("/files/{more:path}"), COVERED),
        (spec("/files/{rest:path}"), spec("/files/"), OPEN),
        (spec("/files/{rest:path}"), spec("/files//"), COVERED),
        (spec("/files/{rest:path}"), spec("/files//{x}"), COVERED),
        (spec("/files/{rest:path}"), spec("/files"), OPEN),
        (spec("/files/{rest:path}"), spec(prefix="/files"), OPEN),
        (spec("/files/{rest:path}"), spec(prefix="/files/"), OPEN),
        (spec("/files/{rest:path}"), spec(prefix="/files/a"), COVERED),
        (spec("/{x}/{rest:path}"), spec(prefix="/files/a/b"), COVERED),
        (spec("/{x:int}/{rest:path}"), spec(prefix="/files/a"), OPEN),
        (spec("/files/{x}/{rest:path}"), spec("/files/{rest:path}"), OPEN),
        (spec("/{rest:path}"), spec("/"), OPEN),
        (spec("/{x}/{rest:path}"), spec("/{x}/"), OPEN),
        (spec("/{x}/{rest:path}"), spec("/{x}//"), COVERED),
        (spec("/{x}/{rest:path}"), spec("/{x}/{y:int}/"), COVERED),
        (spec("/{rest:path}"), spec(prefix="/a"), COVERED),
        # percent-escapes in routes are decoded, as the request path is
        (spec("/a%20b"), spec("/a b"), COVERED),
        (spec(prefix="/caf%C3%A9"), spec("/café/{x}"), COVERED),
        (spec("/{x}/{y}"), spec("/a%2Fb"), COVERED),
        (spec("/{x}"), spec("/a%2Fb"), OPEN),
        # methods: HEAD is not implied by GET
        (spec("/a", methods=["GET", "POST"]), spec("/a", methods=["GET"]), COVERED),
        (spec("/a", methods=["GET"]), spec("/a", methods=["GET", "POST"]), OPEN),
        (spec("/a", methods=["GET"]), spec("/a", methods=["HEAD"]), OPEN),
        (spec("/a", methods=["GET"]), spec("/a"), OPEN),
        (spec("/a"), spec("/a", methods=["DELETE"]), COVERED),
        # host
        (spec("/a"), spec("/a", host="example.com"), COVERED),
        (spec("/a", host="example.com"), spec("/a"), OPEN),
        (spec("/a", host="Example.com"), spec("/a", host="example.COM"), COVERED),
        (spec("/a", host="example.com"), spec("/a", host="example.org"), OPEN),
        (spec("/a", host="*.example.com"), spec("/a", host="api.example.com"), COVERED),
        (spec("/a", host="*.example.com"), spec("/a", host="a.b.example.com"), COVERED),
        (spec("/a", host="*.example.com"), spec("/a", host="*.api.example.com"), COVERED),
        (spec("/a", host="*.example.com"), spec("/a", host="*.example.com"), COVERED),
        (spec("/a", host="*.example.com"), spec("/a", host="example.com"), OPEN),
        (spec("/a", host="*.example.com"), spec("/a", host="*.xexample.com"), OPEN),
        (spec("/a", host="*.api.example.com"), spec("/a", host="*.example.com"), OPEN),
        (spec("/a", host="api.example.com"), spec("/a", host="*.example.com"), OPEN),
        # headers (names case-insensitive), query and cookies (case-sensitive)
        (spec("/a"), spec("/a", headers={"X-A": PRESENT}), COVERED),
        (spec("/a", headers={"X-A": PRESENT}), spec("/a", headers={"x-a": is_("1")}), COVERED),
        (spec("/a", headers={"X-A": PRESENT}), spec("/a", headers={"X-A": PRESENT}), COVERED),
        (spec("/a", headers={"X-A": PRESENT}), spec("/a"), OPEN),
        (spec("/a", headers={"X-A": PRESENT}), spec("/a", headers={"X-A": ABSENT}), OPEN),
        (spec("/a", headers={"X-A": is_("1")}), spec("/a", headers={"X-A": PRESENT}), OPEN),
        (spec("/a", headers={"X-A": is_("1")}), spec("/a", headers={"X-A": is_("2")}), OPEN),
        (spec("/a", headers={"X-A": ABSENT}), spec("/a", headers={"x-A": ABSENT}), COVERED),
        (spec("/a", headers={"X-A": ABSENT}), spec("/a"), OPEN),
        (spec("/a", headers={"X-A": ABSENT}), spec("/a", headers={"X-B": ABSENT}), OPEN),
        (
            spec("/a", headers={"X-A": PRESENT}),
            spec("/a", headers={"X-A": is_("1"), "X-B": PRESENT}),
            COVERED,
        ),
        (spec("/a", query={"v": PRESENT}), spec("/a", query={"v": is_("2")}), COVERED),
        (spec("/a", query={"v": PRESENT}), spec("/a", query={"V": is_("2")}), OPEN),
        (spec("/a", query={"v": PRESENT}), spec("/a", headers={"v": PRESENT}), OPEN),
        (spec("/a", cookies={"c": is_("1")}), spec("/a", cookies={"c": is_("1")}), COVERED),
        # query_only: the earlier route refuses other parameters, so it covers only a
        # later route that refuses at least as many
        (spec("/a", query_only=["s"]), spec("/a"), OPEN),
        (spec("/a", query_only=["s"]), spec("/a", query_only=["s", "page"]), OPEN),
        (spec("/a", query_only=["s", "page"]), spec("/a", query_only=["s"]), COVERED),
        (spec("/a", query_only=[]), spec("/a", query={"v": PRESENT}, query_only=[]), OPEN),
        (spec("/a", query={"v": PRESENT}, query_only=[]), spec("/a", query_only=["v"]), OPEN),
        (spec("/a"), spec("/a", query_only=[]), COVERED),
        (spec("/a", cookies={"c": is_("1")}), spec("/a", query={"c": is_("1")}), OPEN),
        # everything at once
        (
            spec(
                prefix="/api", methods=["GET", "HEAD"], host="*.example.com", query={"v": PRESENT}
            ),
            spec(
                "/api/users/{id:int}",
                methods=["GET"],
                host="a.example.com",
                query={"v": is_("2")},
                headers={"X-A": PRESENT},
            ),
            COVERED,
        ),
        (
            spec(
                prefix="/api", methods=["GET", "HEAD"], host="*.example.com", query={"v": PRESENT}
            ),
            spec("/api/users/{id:int}", methods=["GET"], host="a.example.com"),
            OPEN,
        ),
    ],
)
def test_coverage_rules(earlier: MatchSpec, later: MatchSpec, covered: bool) -> None:
    assert shadowed([earlier, later]) == ([(1, 0)] if covered else [])
    # A route never shadows one declared before it.
    assert all(i > j for i, j in shadowed([later, earlier]))


def test_reports_the_lowest_shadowing_route_once() -> None:
    specs = [
        spec(prefix="/a", methods=["POST"]),  # 0: covers nothing below (methods)
        spec("/a/b"),  # 1
        spec(prefix="/a"),  # 2: not covered by 0 or 1
        spec("/a/b"),  # 3: covered by 1 and by 2: report 1
        spec("/a/{x}"),  # 4: covered by 2
        spec("/c"),  # 5
    ]
    assert shadowed(specs) == [(3, 1), (4, 2)]


def test_a_shadowed_route_still_shadows_later_ones() -> None:
    specs = [spec(prefix="/"), spec(prefix="/a"), spec("/a/b")]
    assert shadowed(specs) == [(1, 0), (2, 0)]


def test_no_routes() -> None:
    assert shadowed([]) == []


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (spec("/users/{id:float}"), "route #1: path template .* unknown converter 'float'"),
        (spec("/a", prefix="/a"), "route #1: set either 'path' or 'path_prefix', not both"),
        (spec(prefix="a"), "route #1: path prefix 'a': must start with '/'"),
    ],
)
def test_malformed_specs_raise_naming_the_route(bad: MatchSpec, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        shadowed([spec("/ok"), bad])


def test_docstring_examples() -> None:
    result = doctest.testmod(strangler.router.analysis)
    assert result.attempted > 0
    assert result.failed == 0


def test_package_exports() -> None:
    assert sorted(strangler.router.__all__) == [
        "RequestLike",
        "Router",
        "Template",
        "parse_template",
        "shadowed",
    ]
    for name in strangler.router.__all__:
        assert getattr(strangler.router, name) is not None


# --- soundness: a reported pair really is shadowed ---------------------------------------


@dataclass(frozen=True)
class Req:
    path: str
    method: str
    host: str
    headers: Mapping[str, str] = field(default_factory=CIMultiDict)
    query: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)


PATHS = ["/a", "/a/b", "/a/1", "/b", "/a/", "/files//x"]
TEMPLATES = [
    "/a/{x}",
    "/a/{x:int}",
    "/a/{x:uuid}",
    "/{x}/b",
    "/a/{r:path}",
    "/{x}/{r:path}",
    "/a/{x}/b",
    "/{x}",
    "/{r:path}",
    "/files/{r:path}",
    "/{x}/",
    "/{x}//",
    "/a/{x:int}/{r:path}",
]
PREFIXES = ["/", "/a", "/a/", "/a/b", "/b", "/files"]
METHOD_SETS: list[list[str] | None] = [None, ["GET"], ["GET", "POST"], ["POST"], ["HEAD"]]
HOSTS = [None, "example.com", "*.example.com", "a.example.com", "*.a.example.com"]
CONDS: list[dict[str, ValueMatch]] = [{}, {"k": PRESENT}, {"k": is_("1")}, {"k": ABSENT}]


def random_spec(rng: random.Random) -> MatchSpec:
    kind = rng.randrange(4)
    header = rng.choice(CONDS)
    return spec(
        rng.choice(PATHS) if kind == 0 else rng.choice(TEMPLATES) if kind == 1 else None,
        prefix=rng.choice(PREFIXES) if kind == 2 else None,
        methods=rng.choice(METHOD_SETS),
        host=rng.choice(HOSTS) if rng.random() < 0.4 else None,
        headers={("X-K" if rng.random() < 0.5 else "x-k"): v for v in header.values()},
        query=rng.choice(CONDS) if rng.random() < 0.3 else {},
        cookies=rng.choice(CONDS) if rng.random() < 0.3 else {},
        query_only=rng.choice([[], ["j"]]) if rng.random() < 0.15 else None,
    )


def satisfy(rng: random.Random, values: Mapping[str, ValueMatch], name: str) -> dict[str, str]:
    out = {} if rng.random() < 0.5 else {name: rng.choice(["1", "2"])}
    for vm in values.values():
        if not vm.present:
            out.pop(name, None)
        else:
            out[name] = vm.value if vm.value is not None else rng.choice(["1", "2", ""])
    return out


def request_matching(rng: random.Random, s: MatchSpec) -> Req:
    """A random request that ``s`` matches (checked by the caller with the Router)."""
    if s.path is not None:
        parts = []
        for part in s.path.split("/"):
            converter = part[1:-1].partition(":")[2] if part.startswith("{") else None
            if converter is None:
                parts.append(part)
            elif converter == "int":
                parts.append(rng.choice(["1", "42"]))
            elif converter == "uuid":
                parts.append(UUID)
            elif converter == "path":
                parts.append(rng.choice(["a", "a/b", "1/", "x/y/z", "/"]))
            else:
                parts.append(rng.choice(["a", "b", "1", "files"]))
        path = "/".join(parts)
    elif s.path_prefix is not None:
        path = s.path_prefix.rstrip("/") + rng.choice(["", "/", "/a", "/b/c", "/1"])
        path = path or "/"
    else:
        path = rng.choice(["/", "/a", "/zz/top", "*"])
    methods = sorted(s.methods) if s.methods else ["GET", "POST", "PUT", "HEAD"]
    if s.host is None:
        host = rng.choice(["example.com", "a.example.com", "b.a.example.com", "other.org"])
    elif s.host.startswith("*."):
        host = rng.choice(["q", "a.q", "A"]) + s.host[1:]
    else:
        host = s.host.upper() if rng.random() < 0.3 else s.host
    if rng.random() < 0.3:
        host += ":8080"
    query = satisfy(rng, s.query, "k")
    if s.query_only is not None and "k" not in s.query:
        query.pop("k", None)  # a name query_only does not allow
    if (s.query_only is None or "j" in s.query_only) and rng.random() < 0.5:
        query["j"] = "1"
    return Req(
        path=path,
        method=rng.choice(methods),
        host=host,
        headers=CIMultiDict(satisfy(rng, s.headers, "X-K")),
        query=query,
        cookies=satisfy(rng, s.cookies, "k"),
    )


@pytest.mark.parametrize("seed", range(4))
def test_every_reported_pair_is_really_shadowed(seed: int) -> None:
    rng = random.Random(seed)
    reported = 0
    for _ in range(4000):
        earlier, later = random_spec(rng), random_spec(rng)
        if shadowed([earlier, later]) != [(1, 0)]:
            continue
        reported += 1
        alone: Router[bool] = Router.compile([(later, True)], default=False)
        first: Router[bool] = Router.compile([(earlier, True)], default=False)
        for _ in range(25):
            req = request_matching(rng, later)
            assert alone.match(req)[0], (later, req)  # the generator did its job
            assert first.match(req)[0], (earlier, later, req)
    assert reported > 100  # the vocabulary is small on purpose: plenty of real overlap


@pytest.mark.parametrize("seed", range(4))
def test_a_shadowed_route_never_wins(seed: int) -> None:
    rng = random.Random(seed)
    specs = [random_spec(rng) for _ in range(120)]
    pairs = shadowed(specs)
    assert len(pairs) > 10
    whole: Router[int] = Router.compile([(s, i) for i, s in enumerate(specs)], default=-1)
    for i, j in pairs:
        assert j < i
        for _ in range(25):
            assert whole.match(request_matching(rng, specs[i]))[0] != i
    # Conservative is not silent: a repeated spec is always reported.
    for i, s in enumerate(specs):
        if s in specs[:i]:
            assert any(k == i for k, _ in pairs), (i, s)


@pytest.mark.parametrize("seed", range(3))
def test_the_lowest_shadowing_route_is_the_first_pairwise_one(seed: int) -> None:
    rng = random.Random(seed)
    specs = [random_spec(rng) for _ in range(80)]
    expected = []
    for i in range(len(specs)):
        covering = (j for j in range(i) if shadowed([specs[j], specs[i]]) == [(1, 0)])
        j = next(covering, None)
        if j is not None:
            expected.append((i, j))
    assert shadowed(specs) == expected
