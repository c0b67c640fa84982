"""Validation: every problem collected with file:line and a hint, and the model built right.

The fixture files under ``tests/data/configs/`` drive two parametrized tests: every
``valid/*.yaml`` loads, and every ``invalid/*.yaml`` yields exactly the problems its
``# expect:`` comments list (see ``expectations``).
"""

from __future__ import annotations

import doctest
import hashlib
import os
import re
from pathlib import Path
from types import ModuleType

import pytest

import strangler.config
from strangler.config import (
    legacy_only,
    load_config,
    load_config_text,
    source,
    validate_routes,
    values,
    walker,
)
from strangler.config import validate as validate_module
from strangler.config.model import (
    AccessLog,
    Admin,
    Config,
    Forwarded,
    Limits,
    Listen,
    Location,
    Timeouts,
    ValueMatch,
)
from strangler.config.values import BadValue, check_path_template
from strangler.errors import ConfigError, Problem

DATA = Path(__file__).parent / "data" / "configs"
VALID = sorted((DATA / "valid").glob("*.yaml"))
INVALID = sorted((DATA / "invalid").glob("*.yaml"))

LEGACY = "upstreams: {legacy: http://127.0.0.1:8000}\n"


def load(text: str) -> Config:
    return load_config_text(text, "m.yaml")


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [str(p) for p in info.value.problems]


def one_problem(text: str) -> str:
    (problem,) = problems_of(text)
    return problem


def routes_yaml(*routes: str, upstreams: str = "legacy: http://l:8000") -> str:
    """A config with the given route mappings (flow style, one per line from line 3)."""
    return f"upstreams: {{{upstreams}}}\nroutes:\n" + "".join(f"  - {r}\n" for r in routes)


# ---------------------------------------------------------------------------- fixtures

_EXPECT = re.compile(r"#\s*expect:\s*(?P<body>.+?)\s*$")
_WHERE = re.compile(r"^(?:(?P<file>[\w./-]+\.ya?ml):)?(?P<line>\d+):\s*(?P<text>.+)$")


def expectations(path: Path) -> list[tuple[str, int, str]]:
    """``(file, line, text)`` from the ``# expect:`` comments of a fixture file.

    ``# expect: TEXT`` at the end of a line: a problem on that line whose message
    contains TEXT. ``# expect: LINE: TEXT`` names the line; ``# expect: FILE:LINE:
    TEXT`` a line of another file, relative to the fixture's directory.
    """
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = _EXPECT.search(line)
        if m is None:
            continue
        where = _WHERE.match(m.group("body"))
        if where is None:
            found.append((path.name, number, m.group("body")))
        else:
            found.append((where["file"] or path.name, int(where["line"]), where["text"]))
    return found


@pytest.mark.parametrize("path", VALID, ids=[p.name for p in VALID])
def test_valid_fixture_loads(path: Path) -> None:
    config = load_config(path)
    assert config.files[0] == str(path)
    assert "legacy" in config.upstreams


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_invalid_fixture_reports_exactly_its_expected_problems(path: Path) -> None:
    expected = expectations(path)
    assert expected, f"{path.name} states no '# expect:' problem"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    got = [(os.path.relpath(p.file, path.parent), p.line, p.message) for p in info.value.problems]
    unmatched = list(got)
    missing = []
    for file, line, text in expected:
        hit = next((g for g in unmatched if g[:2] == (file, line) and text in g[2]), None)
        if hit is None:
            missing.append((file, line, text))
        else:
            unmatched.remove(hit)
    assert (missing, unmatched) == ([], []), "\n".join(str(p) for p in info.value.problems)


def test_the_fixture_reader_understands_all_three_forms(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 1  # expect: first\n# expect: 7: second\n# expect: p/q.yaml:3: third\n")
    assert expectations(path) == [
        ("x.yaml", 1, "first"),
        ("x.yaml", 7, "second"),
        ("p/q.yaml", 3, "third"),
    ]


# ---------------------------------------------------------------------------- the model


def test_full_fixture_builds_the_whole_model() -> None:
    path = DATA / "valid" / "full.yaml"
    config = load_config(path)
    base = str(DATA / "valid")
    assert config.listen == Listen(host="127.0.0.1", port=8080)
    assert config.admin == Admin(
        listen=Listen(host="127.0.0.1", port=8081),
        token_env="MY_ADMIN_TOKEN",
        token_file=f"{base}/secrets/admin-token",
    )
    assert list(config.upstreams) == ["legacy", "billing", "orders"]
    legacy, billing, orders = config.upstreams.values()
    assert legacy.url == "http://legacy.internal:8000"  # trailing slash dropped
    assert legacy.timeouts == Timeouts()
    assert legacy.at == Location(str(path), 8)
    assert billing.url == "https://billing.internal:9443/v2"
    assert billing.timeouts == Timeouts(connect=0.25, read=2.0, total=30.0)
    assert (billing.max_connections, billing.host_header) == (64, "upstream")
    assert orders.timeouts == Timeouts(connect=0.25, read=2.0, total=None)  # merged, then null
    assert orders.host_header == "preserve"

    # main file's routes first, then the included files in include order, depth first
    assert [(r.index, r.name, r.to) for r in config.routes] == [
        (0, "health", "legacy"),
        (1, "reports", "legacy"),
        (2, "invoices-read", "billing"),
        (3, "invoice-files", "billing"),
        (4, "refunds", "billing"),
        (5, "orders", "orders"),
    ]
    health, reports, invoices, _files, refunds, _orders = config.routes
    assert health.at == Location(str(path), 21)
    assert health.owner == "team-platform"
    assert health.match.path == "/healthz"
    assert health.match.methods == frozenset({"GET", "HEAD"})  # upper-cased
    assert reports.match.path_prefix == "/api/reports"
    assert reports.match.host == "*.example.com"
    assert dict(reports.match.headers) == {
        "X-Beta": ValueMatch(value="on"),  # a string, not YAML 1.1's true
        "X-Debug": ValueMatch(present=False),
        "Authorization": ValueMatch(present=True),
    }
    assert dict(reports.match.query) == {"format": ValueMatch(value="csv")}
    assert dict(reports.match.cookies) == {"session": ValueMatch()}
    assert invoices.match.path == "/api/invoices/{id:int}"
    assert invoices.at == Location(f"{base}/full/routes/billing.yaml", 4)
    assert refunds.at.file == f"{base}/full/routes/nested/refunds.yaml"

    assert config.limits == Limits(
        max_header_bytes=16 * 1024, max_headers=64, max_body_bytes=10_000_000
    )
    assert config.forwarded == Forwarded(
        trusted=("10.0.0.0/8", "127.0.0.1/32", "fd00::/8"), headers=False
    )
    assert config.access_log == AccessLog(format="off", path=f"{base}/logs/access.log")
    assert config.drain_seconds == 45.0

    assert config.files == (
        str(path),
        f"{base}/full/routes/billing.yaml",
        f"{base}/full/routes/nested/refunds.yaml",
        f"{base}/full/routes/orders.yaml",
    )
    digest = hashlib.sha256(b"".join(Path(f).read_bytes() for f in config.files))
    assert config.version == digest.hexdigest()[:12]


def test_the_model_is_read_only() -> None:
    config = load_config(DATA / "valid" / "full.yaml")
    with pytest.raises(TypeError):
        config.upstreams["x"] = config.upstreams["legacy"]  # type: ignore[index]
    with pytest.raises(TypeError):
        config.routes[1].match.headers["X"] = ValueMatch()  # type: ignore[index]


def test_defaults() -> None:
    config = load_config_text(LEGACY)
    assert config == Config(upstreams=config.upstreams, files=("<string>",), version=config.version)
    assert config.upstreams["legacy"].at == Location("<string>", 1)


def test_version_follows_the_bytes_of_every_file(tmp_path: Path) -> None:
    main = tmp_path / "main.yaml"
    team = tmp_path / "team.yaml"
    main.write_text(LEGACY + "include: [team.yaml]\n")
    team.write_text("routes: []\n")
    first = load_config(main).version
    assert re.fullmatch(r"[0-9a-f]{12}", first)
    assert load_config(main).version == first
    team.write_text("routes: []  # a comment changes the bytes\n")
    assert load_config(main).version != first


def test_text_config_with_a_file_name_resolves_includes_from_its_directory(
    tmp_path: Path,
) -> None:
    (tmp_path / "routes").mkdir()
    (tmp_path / "routes" / "a.yaml").write_text(
        "routes: [{name: a, owner: t, match: {path: /a}, to: legacy}]\n"
    )
    config = load_config_text(LEGACY + "include: [routes/*.yaml]\n", str(tmp_path / "main.yaml"))
    assert [r.name for r in config.routes] == ["a"]
    assert config.files == (str(tmp_path / "main.yaml"), str(tmp_path / "routes" / "a.yaml"))


def test_relative_paths_in_text_resolve_against_the_current_directory() -> None:
    config = load_config_text(LEGACY + "admin: {token_file: t.txt}\naccess_log: {path: a.log}\n")
    assert (config.admin.token_file, config.access_log.path) == ("t.txt", "a.log")


def test_null_timeouts_mean_no_limit_and_absent_ones_keep_defaults() -> None:
    config = load(
        "upstreams:\n  legacy:\n    url: http://l\n    timeout: {read: null, total: 1m}\n"
    )
    assert config.upstreams["legacy"].timeouts == Timeouts(connect=5.0, read=None, total=60.0)


def test_zero_body_limit_means_unlimited_and_is_allowed() -> None:
    assert load(LEGACY + "limits: {max_body_bytes: 0}\n").limits.max_body_bytes == 0


def test_a_route_may_match_everything_explicitly() -> None:
    (route,) = load(routes_yaml("{name: all, owner: t, match: {}, to: legacy}")).routes
    assert route.match.path is None
    assert route.match.path_prefix is None
    assert route.match.methods is None


# ---------------------------------------------------------------------------- messages


def test_unknown_upstream_message_matches_the_documented_example(tmp_path: Path) -> None:
    routes = tmp_path / "routes"
    routes.mkdir()
    (routes / "billing.yaml").write_text(
        "routes:\n  - name: invoices\n    owner: team-billing\n"
        "    match: {path: /api/invoices}\n    to: biling\n"
    )
    main = tmp_path / "main.yaml"
    main.write_text(
        "upstreams:\n  legacy: http://l\n  billing: http://b\ninclude: [routes/billing.yaml]\n"
    )
    with pytest.raises(
        ConfigError,
        match=re.escape(
            f"{routes}/billing.yaml:5: route 'invoices' sends to unknown upstream 'biling' "
            "(hint: known upstreams: billing, legacy; did you mean 'billing'?)"
        ),
    ):
        load_config(main)


def test_unknown_upstream_without_a_close_name() -> None:
    assert one_problem(routes_yaml("{name: a, owner: t, match: {}, to: zzz}")) == (
        "m.yaml:3: route 'a' sends to unknown upstream 'zzz' (hint: known upstreams: legacy)"
    )


def test_unknown_key_hints() -> None:
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "m.yaml:3: unknown key 'path_prefx' in route 'a' match "
            "(hint: did you mean 'path_prefix'?)"
        ),
    ):
        load(routes_yaml("{name: a, owner: t, match: {path_prefx: /a}, to: legacy}"))
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "m.yaml:2: unknown key 'canary' at the top level (hint: valid keys here: "
            "listen, admin, upstreams, include, routes, limits, forwarded, access_log, drain, "
            "state, translators, debug_headers, progress, tracing)"
        ),
    ):
        load(LEGACY + "canary: {percent: 10}\n")


@pytest.mark.parametrize("key", ["sticky", "weight"])
def test_keys_that_are_not_route_keys(key: str) -> None:
    text = routes_yaml(f"{{name: a, owner: t, match: {{}}, to: legacy, {key}: {{}}}}")
    assert one_problem(text) == (
        f"m.yaml:3: unknown key '{key}' in route 'a' "
        "(hint: valid keys here: name, owner, match, to, canary, overrides, fallback, slo, "
        "shadow, translate, migrate, debug_headers)"
    )
    assert one_problem(LEGACY + f"{key}: {{}}\n").startswith(
        f"m.yaml:2: unknown key '{key}' at the top level"
    )


def test_a_misspelt_required_key_is_reported_once() -> None:
    assert one_problem(routes_yaml("{nmae: a, owner: t, match: {}, to: legacy}")) == (
        "m.yaml:3: unknown key 'nmae' in route (hint: did you mean 'name'?)"
    )


EXAMPLE = " (hint: for example {name: invoices, owner: billing, match: {path: /i}, to: legacy})"


def test_every_missing_route_key() -> None:
    """The hint is the route's example (described.RouteEntry.EXAMPLE)."""
    assert problems_of(routes_yaml("{name: lonely}")) == [
        f"m.yaml:3: route 'lonely' is missing required key 'owner'{EXAMPLE}",
        f"m.yaml:3: route 'lonely' is missing required key 'match'{EXAMPLE}",
        f"m.yaml:3: route 'lonely' is missing required key 'to'{EXAMPLE}",
    ]


def test_duplicate_route_names_point_at_both_lines() -> None:
    text = routes_yaml(
        "{name: a, owner: t, match: {path: /a}, to: legacy}",
        "{name: b, owner: t, match: {path: /b}, to: legacy}",
        "{name: a, owner: t, match: {path: /c}, to: legacy}",
    )
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "m.yaml:5: duplicate route name 'a' (first defined at m.yaml:3) "
            "(hint: route names must be unique: metrics, logs and the admin API use them)"
        ),
    ):
        load(text)


def test_path_and_path_prefix_together() -> None:
    text = routes_yaml("{name: a, owner: t, match: {path: /a, path_prefix: /a}, to: legacy}")
    assert one_problem(text) == (
        "m.yaml:3: route 'a' match has both 'path' and 'path_prefix' (hint: use 'path' for one "
        "exact path or template, 'path_prefix' for a whole subtree)"
    )


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("users", "'users' must start with '/'"),
        ("/users/{id", "'/users/{id': unbalanced braces in segment '{id'"),
        ("/users/}id{", "'/users/}id{': unbalanced braces in segment '}id{'"),
        ("/users/{{id}}", "'/users/{{id}}': segment '{{id}}' mixes a parameter with other text"),
        ("/users/{a}{b}", "'/users/{a}{b}': segment '{a}{b}' mixes a parameter with other text"),
        ("/users/{id:float}", "'/users/{id:float}': unknown converter 'float' for parameter 'id'"),
        ("/a/{id}/b/{id:int}", "'/a/{id}/b/{id:int}': parameter name 'id' is used twice"),
        ("/a/{rest:path}/b", "'/a/{rest:path}/b': '{rest:path}' must be the last segment"),
        ("/a/{}", "'/a/{}': bad parameter name an empty name in '{}'"),
        ("/a/{1x}", "'/a/{1x}': bad parameter name '1x' in '{1x}'"),
        ("/a b", "'/a b' must not contain spaces"),
        ("/a#b", "'/a#b' must not contain '#'"),
    ],
)
def test_malformed_paths(path: str, message: str) -> None:
    text = routes_yaml(f"{{name: a, owner: t, match: {{path: '{path}'}}, to: legacy}}")
    with pytest.raises(ConfigError, match=re.escape(f"m.yaml:3: route 'a' match.path: {message}")):
        load(text)


@pytest.mark.parametrize(
    "template",
    [
        "/",
        "/users",
        "/users/",
        "/users/{id}",
        "/users/{id:str}",
        "/users/{id:int}/orders/{order:uuid}",
        "/files/{rest:path}",
        "/a/{x}/{y}/{z:path}",
        "/users/{id",
        "/users/id}",
        "/users/{id:float}",
        "/a/{id}/b/{id}",
        "/a/{rest:path}/b",
        "/report.{fmt}",
        "/{a}{b}",
        "/{}",
        "/{_ok}",
        "/{9}",
        "relative",
    ],
)
def test_template_rules_agree_with_the_router(template: str) -> None:
    """The validator checks templates itself (config depends on nothing of ours); the
    router parses them again at compile time. Both must accept exactly the same ones."""
    from strangler.router.template import parse_template

    try:
        parse_template(template)
        router_ok = True
    except ValueError:
        router_ok = False
    try:
        check_path_template(template)
        config_ok = True
    except BadValue:
        config_ok = False
    assert config_ok == router_ok


def test_methods() -> None:
    text = routes_yaml("{name: a, owner: t, match: {methods: [GET, FETCH, 7]}, to: legacy}")
    assert problems_of(text) == [
        "m.yaml:3: route 'a' match.methods entry: unknown HTTP method 'FETCH' "
        "(hint: did you mean 'PATCH'?)",
        "m.yaml:3: route 'a' match.methods entry: expected a method like GET, got the number 7",
    ]
    text = routes_yaml("{name: a, owner: t, match: {methods: GET}, to: legacy}")
    assert one_problem(text) == (
        "m.yaml:3: route 'a' match.methods must be a list, got 'GET' "
        "(hint: write a list, like [GET, HEAD])"
    )


def test_value_conditions() -> None:
    text = routes_yaml(
        "{name: a, owner: t, to: legacy, match: {headers: {X-A: 1, X-B: null, X-C: []}}}"
    )
    assert problems_of(text) == [
        "m.yaml:3: route 'a' match.headers.X-A: expected a string (exact value), true (must be "
        "present) or false (must be absent), got the number 1 (hint: quote it to match the "
        'exact text: "1")',
        "m.yaml:3: route 'a' match.headers.X-B: expected a string (exact value), true (must be "
        "present) or false (must be absent), got nothing (null)",
        "m.yaml:3: route 'a' match.headers.X-C: expected a string (exact value), true (must be "
        "present) or false (must be absent), got a list",
    ]


def test_query_names_may_be_any_text_but_cookie_names_must_be_tokens() -> None:
    ok = routes_yaml("{name: a, owner: t, to: legacy, match: {query: {'a b[]': x}}}")
    (route,) = load(ok).routes
    assert dict(route.match.query) == {"a b[]": ValueMatch(value="x")}
    bad = routes_yaml("{name: a, owner: t, to: legacy, match: {cookies: {'a b': x}}}")
    assert one_problem(bad) == "m.yaml:3: route 'a' match.cookies: 'a b' is not a valid cookie name"


def test_query_only() -> None:
    only = "{name: a, owner: t, to: legacy, match: {query: {v: '2'}, query_only: %s}}"
    (route,) = load(routes_yaml(only % "true")).routes
    assert route.match.query_only == frozenset()
    (route,) = load(routes_yaml(only % "[status, sort]")).routes
    assert route.match.query_only == frozenset({"status", "sort"})
    (route,) = load(routes_yaml("{name: a, owner: t, to: legacy, match: {path: /a}}")).routes
    assert route.match.query_only is None
    assert problems_of(routes_yaml(only % "false", only.replace("a,", "b,") % "[v]")) == [
        "m.yaml:3: route 'a' match.query_only: false is the default; leave the key out (hint: "
        "true (only the parameters match.query names), or a list of the others allowed)",
        "m.yaml:4: route 'b' match.query_only: 'v' is already named in match.query (hint: "
        "list only the parameters match.query does not name)",
    ]
    assert one_problem(routes_yaml(only % "3")) == (
        "m.yaml:3: route 'a' match.query_only must be true or a list of names (hint: true "
        "(only the parameters match.query names), or a list of the others allowed)"
    )


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("http://api.example.com/", "'http://api.example.com/' is a URL, not a host name"),
        ("api.example.com:8080", "'api.example.com:8080' must not have a port"),
        ("api..example.com", "'api..example.com' is not a host name"),
        ("*.*.example.com", "'*.*.example.com' is not a host name"),
        ("[::1]", "'[::1]': IPv6 hosts are not supported in match.host"),
    ],
)
def test_bad_hosts(host: str, message: str) -> None:
    text = routes_yaml(f"{{name: a, owner: t, to: legacy, match: {{host: '{host}'}}}}")
    with pytest.raises(ConfigError, match=re.escape(f"m.yaml:3: route 'a' match.host: {message}")):
        load(text)


@pytest.mark.parametrize("host", ["api.example.com", "*.example.com", "localhost", "10.0.0.1"])
def test_good_hosts(host: str) -> None:
    text = routes_yaml(f"{{name: a, owner: t, to: legacy, match: {{host: '{host}'}}}}")
    assert load(text).routes[0].match.host == host


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://x", "URL 'ftp://x' has scheme 'ftp'; only http and https work"),
        ("x:8000", "URL 'x:8000' must start with http:// or https:// "),
        ("http://", "URL 'http://' has no host"),
        ("http://x/?a=1", "URL 'http://x/?a=1' must not have a query string"),
        ("http://x/?", "URL 'http://x/?' must not have a query string"),
        ("http://x#f", "URL 'http://x#f' must not have a fragment (#...)"),
        ("http://u:p@x", "URL 'http://***@x' must not contain credentials"),
        ("http://x:0x50", "URL 'http://x:0x50' has an invalid port"),
        ("http://x y", "URL 'http://x y' must not be empty or contain spaces"),
    ],
)
def test_bad_upstream_urls(url: str, message: str) -> None:
    text = f"upstreams:\n  legacy: '{url}'\n"
    with pytest.raises(ConfigError, match=re.escape(f"m.yaml:2: upstreams.legacy: {message}")):
        load(text)


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("http://x", "http://x"),
        ("HTTPS://x:8443/", "https://x:8443"),
        ("http://x/base/path/", "http://x/base/path"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_good_upstream_urls(url: str, normalised: str) -> None:
    config = load(f"upstreams: {{legacy: '{url}'}}\n")
    assert config.upstreams["legacy"].url == normalised


def test_legacy_is_required() -> None:
    assert one_problem("upstreams:\n  billing: http://b\n") == (
        "m.yaml:1: upstreams must include 'legacy', the app that answers every request no "
        "route claims (hint: add: legacy: http://127.0.0.1:8000)"
    )
    assert one_problem("listen: 0.0.0.0:80\n") == (
        "m.yaml:1: the config has no 'upstreams' "
        "(hint: add at least: upstreams: {legacy: http://127.0.0.1:8000})"
    )


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        (
            "8080",
            "listen must be host:port, got the number 8080 (hint: for example '0.0.0.0:8080')",
        ),
        (
            "9000",
            "listen must be host:port, got the number 9000 (hint: for example '0.0.0.0:9000')",
        ),
        ("-1", "listen must be host:port, got the number -1 (hint: for example '0.0.0.0:8080')"),
        ("0.5", "listen must be host:port, got the number 0.5 (hint: for example '0.0.0.0:8080')"),
        ("localhost", "listen: expected host:port, got 'localhost'"),
        ("0.0.0.0:http", "listen: the port in '0.0.0.0:http' must be a number from 0 to 65535"),
        ("0.0.0.0:65536", "listen: the port in '0.0.0.0:65536' must be a number from 0 to 65535"),
        ("'::1:80'", "listen: '::1:80': an IPv6 address needs brackets"),
        ("'[nope]:80'", "listen: 'nope' in '[nope]:80' is not an IPv6 address"),
        ("'a b:80'", "listen: 'a b' in 'a b:80' is not a host name or IP address"),
    ],
)
def test_bad_listen(listen: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"m.yaml:2: {message}")):
        load(LEGACY + f"listen: {listen}\n")


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:8080", Listen(host="0.0.0.0", port=8080)),
        ("localhost:0", Listen(host="localhost", port=0)),
        ("'[::]:8080'", Listen(host="::", port=8080)),
        (":8080", Listen(host="0.0.0.0", port=8080)),  # no host: every interface
        ("':8080'", Listen(host="0.0.0.0", port=8080)),
    ],
)
def test_good_listen(listen: str, expected: Listen) -> None:
    assert load(LEGACY + f"listen: {listen}\n").listen == expected


def test_admin_port_must_differ_from_the_proxy_port() -> None:
    assert one_problem(LEGACY + "listen: 0.0.0.0:9000\nadmin: {listen: 127.0.0.1:9000}\n") == (
        "m.yaml:3: admin.listen 127.0.0.1:9000 uses the same port as listen 0.0.0.0:9000 "
        "(hint: give the admin API its own port, for example 127.0.0.1:8081)"
    )
    # different hosts, neither a wildcard: fine; port 0 picks a free port each
    load(LEGACY + "listen: 127.0.0.1:9000\nadmin: {listen: 127.0.0.2:9000}\n")
    load(LEGACY + "listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0}\n")


def test_durations_and_sizes_use_units() -> None:
    assert problems_of(
        LEGACY + "drain: -1\nlimits: {max_header_bytes: 0, max_body_bytes: 2 GB}\n"
    ) == [
        "m.yaml:2: drain: a duration cannot be negative, got -1",
        "m.yaml:3: limits.max_header_bytes must be more than 0",
    ]
    config = load(LEGACY + "drain: 0\nlimits: {max_body_bytes: 2 GB}\n")
    assert (config.drain_seconds, config.limits.max_body_bytes) == (0.0, 2 * 10**9)


def test_wrong_section_types() -> None:
    assert problems_of(
        LEGACY + "admin: []\nlimits: 5\nforwarded: {trusted: 10.0.0.0/8}\naccess_log: json\n"
    ) == [
        "m.yaml:2: admin must be a mapping, got a list",
        "m.yaml:3: limits must be a mapping, got the number 5",
        "m.yaml:4: forwarded.trusted must be a list, got '10.0.0.0/8' "
        "(hint: write a list, like [10.0.0.0/8, 127.0.0.1])",
        "m.yaml:5: access_log must be a mapping, got 'json'",
    ]


def test_an_empty_routes_key() -> None:
    assert one_problem(LEGACY + "routes:\n") == (
        "m.yaml:2: routes must be a list of routes, got nothing (null) "
        "(hint: write 'routes: []' for none)"
    )


def test_problems_are_collected_across_files_in_file_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text("routes:\n  - {name: b, owner: t, match: {}, to: nope}\n")
    (tmp_path / "a.yaml").write_text("routes: 3\n")
    main = tmp_path / "main.yaml"
    main.write_text("include: [b.yaml, a.yaml]\nupstreams: {legacy: http://l}\nbogus: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(main)
    assert [(Path(p.file).name, p.line, p.message) for p in info.value.problems] == [
        ("main.yaml", 3, "unknown key 'bogus' at the top level"),
        ("b.yaml", 2, "route 'b' sends to unknown upstream 'nope'"),
        ("a.yaml", 1, "routes must be a list of routes, got the number 3"),
    ]


def test_missing_main_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "strangler.yaml"
    with pytest.raises(
        ConfigError,
        match=re.escape(f"{path}: cannot read the config file: No such file or directory"),
    ) as info:
        load_config(path)
    assert info.value.problems == (
        Problem(str(path), 0, "cannot read the config file: No such file or directory"),
    )


def test_yaml_syntax_error_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"^m\.yaml:2: invalid YAML: "):
        load("upstreams:\n  legacy: [http://l\n")


def test_a_bad_tag_is_reported_once() -> None:
    assert one_problem("upstreams: {legacy: !env URL}\n") == (
        "m.yaml:1: unsupported YAML tag '!env' "
        "(hint: use plain strings, numbers, true/false, lists and mappings)"
    )


# ---------------------------------------------------------------------------- legacy_only


def test_legacy_only() -> None:
    config = legacy_only("http://127.0.0.1:8000/")
    assert list(config.upstreams) == ["legacy"]
    assert config.upstreams["legacy"].url == "http://127.0.0.1:8000"
    assert config.routes == ()
    assert config.listen == Listen(host="0.0.0.0", port=8080)
    assert legacy_only("http://l", "127.0.0.1:9999").listen == Listen(host="127.0.0.1", port=9999)


def test_legacy_only_problems_name_the_option() -> None:
    with pytest.raises(ConfigError) as info:
        legacy_only("ftp://l", "nowhere")
    assert [str(p) for p in info.value.problems] == [
        "--legacy: URL 'ftp://l' has scheme 'ftp'; only http and https work",
        "--listen: expected host:port, got 'nowhere' (hint: for example '0.0.0.0:8080')",
    ]
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "--legacy: URL 'localhost:8000' must start with http:// or https:// "
            "(hint: did you mean 'http://localhost:8000'?)"
        ),
    ):
        legacy_only("localhost:8000")


def test_parse_listen_is_importable_from_validate() -> None:
    # the CLI imports it from there for --listen and --admin-listen overrides
    assert validate_module.parse_listen("127.0.0.1:1") == Listen(host="127.0.0.1", port=1)
    with pytest.raises(ValueError, match="expected host:port"):
        validate_module.parse_listen("nope")


@pytest.mark.parametrize(
    "module",
    [strangler.config, validate_module, validate_routes, values, walker, source],
    ids=lambda m: m.__name__,
)
def test_docstring_examples(module: ModuleType) -> None:
    result = doctest.testmod(module)
    assert result.failed == 0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "upstreams: {legacy: http://l, 5: http://x}\n",
            "m.yaml:1: upstreams: name 5 must be letters, digits, '.', '_' and '-', "
            "starting with a letter or digit "
            "(hint: names appear in metrics and logs, like 'billing' or 'legacy')",
        ),
        ("upstreams: null\n", "m.yaml:1: upstreams must be a mapping, got nothing (null)"),
        (
            LEGACY + "limits:\n  max_headers: 1\n  7: 2\n",
            "m.yaml:4: unknown key 7 in limits (hint: valid keys here: max_header_bytes, "
            "max_headers, max_body_bytes, max_head_bytes, header_timeout, keepalive_timeout, "
            "body_timeout, max_connections, underscore_headers)",
        ),
    ],
)
def test_keys_that_are_not_strings_and_a_null_section(text: str, problem: str) -> None:
    """pydantic reads the nodes as data: a key 5 must stay 5 (not the name '5')."""
    assert one_problem(text) == problem
