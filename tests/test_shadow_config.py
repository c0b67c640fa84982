"""The ``shadow:`` key of a route: defaults, every problem with file:line and a hint."""

from __future__ import annotations

import doctest
import re

import jsonschema
import pytest

import strangler.config.shadow_model as shadow_model
import strangler.config.validate_routes as validate_routes
from strangler.config.described import SHADOW, _plain, read_part, routes_schema
from strangler.config.shadow_model import (
    ANY,
    CompareRules,
    ConfirmSpec,
    JsonPath,
    NoiseSpec,
    ShadowSpec,
    parse_json_path,
)
from strangler.config.source import read_text
from strangler.config.validate_routes import RouteTable
from strangler.config.validate_translate import Translators
from strangler.config.values import BadValue
from strangler.config.walker import Walker

# the keys a route needs, for a shadow alone against the route file schema
A_ROUTE = {"name": "r", "owner": "t", "match": {"path": "/"}, "to": "legacy"}
UPSTREAMS = frozenset({"legacy", "billing", "billing-v2"})


def read(text: str, own: str | None = "legacy") -> tuple[ShadowSpec | None, list[str]]:
    """Validate ``text`` (YAML with a top-level ``shadow:``) as route 'r''s shadow."""
    src = read_text(text, "r.yaml")
    assert not src.problems
    root = src.files[0].root
    assert root is not None
    node = root.get("shadow")  # type: ignore[union-attr]
    assert node is not None
    w = Walker("r.yaml")
    spec = read_part(w, node, SHADOW, "route 'r' shadow")  # as the route reader does
    RouteTable(w, UPSTREAMS, (), Translators(w, None, {})).shadow(node, "route 'r'", own=own)
    return spec if not w.problems else None, [str(p) for p in w.problems]


def test_doctests() -> None:
    assert doctest.testmod(shadow_model).failed == 0
    assert doctest.testmod(validate_routes).failed == 0


def test_defaults() -> None:
    spec, problems = read("shadow: {to: billing}\n")
    assert problems == []
    assert spec is not None
    assert spec.to == "billing"
    assert (spec.ratio, spec.writes, spec.max_body) == (1.0, False, 1 << 20)
    assert (spec.concurrency, spec.queue, spec.timeout) == (16, 64, 30.0)
    c = spec.compare
    assert (c.status, c.headers, c.ignore, c.unordered_arrays) == (True, ("Content-Type",), (), ())
    assert c.float_tolerance == 1e-9
    assert (c.noise.enabled, c.noise.samples, c.noise.min_observations) == (False, 2, 20)
    assert (c.noise.share, c.noise.window) == (0.5, 600.0)
    assert (c.confirm.enabled, c.confirm.max_share) == (True, 0.1)  # on unless turned off
    assert spec.at.line == 1


def test_shorthand() -> None:
    spec, problems = read("shadow: billing\n")
    assert problems == []
    assert spec == ShadowSpec(to="billing", at=spec.at if spec else None)  # type: ignore[arg-type]


def test_full_spec() -> None:
    spec, problems = read(
        "shadow:\n"
        "  to: billing\n"
        "  percent: 25%\n"
        "  writes: true\n"
        "  max_body: 64kb\n"
        "  concurrency: 4\n"
        "  queue: 0\n"
        "  timeout: 250ms\n"
        "  compare:\n"
        "    status: false\n"
        "    headers: [Content-Type, Cache-Control]\n"
        "    ignore: [$.generated_at, '$.items[*].id']\n"
        "    float_tolerance: 1e-6\n"
        "    unordered_arrays: [$.tags]\n"
        "    noise: {enabled: true, samples: 3, min_observations: 10}\n"
    )
    assert problems == []
    assert spec is not None
    assert (spec.ratio, spec.writes, spec.max_body) == (0.25, True, 64_000)
    assert (spec.concurrency, spec.queue, spec.timeout) == (4, 0, 0.25)
    c = spec.compare
    assert c.status is False
    assert c.headers == ("Content-Type", "Cache-Control")
    assert c.ignore == (JsonPath(("generated_at",)), JsonPath(("items", ANY, "id")))
    assert c.float_tolerance == 1e-6
    assert c.unordered_arrays == (JsonPath(("tags",)),)
    assert c.noise == NoiseSpec(enabled=True, samples=3, min_observations=10)


def test_confirm_and_noise_window() -> None:
    spec, problems = read(
        "shadow:\n"
        "  to: billing\n"
        "  compare:\n"
        "    confirm: {max_share: 25%}\n"
        "    noise: {share: 80%, window: 5m}\n"
    )
    assert problems == []
    assert spec is not None
    c = spec.compare
    assert c.confirm == ConfirmSpec(enabled=True, max_share=0.25)
    assert (c.noise.enabled, c.noise.share, c.noise.window) == (True, 0.8, 300.0)
    spec, _ = read("shadow: {to: billing, compare: {confirm: false}}\n")
    assert spec is not None
    assert spec.compare.confirm.enabled is False


def test_noise_shorthands() -> None:
    spec, _ = read("shadow: {to: billing, compare: {noise: true}}\n")
    assert spec is not None
    assert spec.compare.noise.enabled
    spec, _ = read("shadow: {to: billing, compare: {noise: {samples: 5}}}\n")
    assert spec is not None
    assert (spec.compare.noise.enabled, spec.compare.noise.samples) == (True, 5)


PROBLEMS = [
    (
        "shadow: {to: biling}\n",
        "r.yaml:1: route 'r' shadow sends to unknown upstream 'biling' "
        "(hint: known upstreams: billing, billing-v2, legacy; did you mean 'billing'?)",
    ),
    ("shadow: {percent: 5%}\n", "r.yaml:1: route 'r' shadow is missing required key 'to'"),
    (
        "shadow: {to: legacy}\n",
        "r.yaml:1: route 'r' shadow.to is 'legacy', the upstream that already answers",
    ),
    (
        "shadow: {to: billing, percnt: 5%}\n",
        "r.yaml:1: unknown key 'percnt' in route 'r' shadow (hint: did you mean 'percent'?)",
    ),
    (
        "shadow: {to: billing, percent: 150%}\n",
        "r.yaml:1: route 'r' shadow.percent: a percentage must be between 0% and 100%",
    ),
    (
        "shadow: {to: billing, max_body: lots}\n",
        "r.yaml:1: route 'r' shadow.max_body: expected a size like '1MiB' or '64kb'",
    ),
    (
        "shadow: {to: billing, concurrency: 0}\n",
        "r.yaml:1: route 'r' shadow.concurrency must be at least 1, got 0",
    ),
    ("shadow: {to: billing, queue: -1}\n", "r.yaml:1: route 'r' shadow.queue must be at least 0"),
    (
        "shadow: {to: billing, writes: yes}\n",
        "r.yaml:1: route 'r' shadow.writes must be true or false, got 'yes'",
    ),
    (
        "shadow: {to: billing, timeout: 0s}\n",
        "r.yaml:1: route 'r' shadow.timeout must be more than 0 and at most 1h, got 0s",
    ),
    (
        "shadow: [billing]\n",
        "r.yaml:1: route 'r' shadow must be an upstream name or a mapping with to:, got a list",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    ignore: [generated_at]\n",
        "r.yaml:4: route 'r' shadow.compare.ignore entry: JSON path 'generated_at' must start "
        "with '$' "
        "(hint: did you mean '$.generated_at'?)",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    ignore: ['$..id']\n",
        "r.yaml:4: route 'r' shadow.compare.ignore entry: JSON path '$..id': recursive descent",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    unordered_arrays: ['$.a[x]']\n",
        "r.yaml:4: route 'r' shadow.compare.unordered_arrays entry: JSON path '$.a[x]': [x] is not "
        "an index, [*] or a quoted key (hint: quote a key: ['x'])",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    ignore: [$.a, $.a]\n",
        "r.yaml:4: route 'r' shadow.compare.ignore entry: '$.a' is listed twice",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    ignore: $.a\n",
        "r.yaml:4: route 'r' shadow.compare.ignore must be a list, got '$.a' "
        "(hint: write a list, like [$.generated_at])",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    headers: [Content-Type, content-type]\n",
        "r.yaml:4: route 'r' shadow.compare.headers entry: 'content-type' is listed twice "
        "(hint: header names are case-insensitive)",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    headers: ['bad header']\n",
        "r.yaml:4: route 'r' shadow.compare.headers entry: 'bad header' is not a valid header name",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    float_tolerance: 2\n",
        "r.yaml:4: route 'r' shadow.compare.float_tolerance must be at least 0 and below 1",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    ignored: [$.a]\n",
        "r.yaml:4: unknown key 'ignored' in route 'r' shadow.compare "
        "(hint: did you mean 'ignore'?)",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    noise: {samples: 30}\n",
        "r.yaml:4: route 'r' shadow.compare.noise: samples (30) cannot exceed "
        "min_observations (20)",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    noise: {min_observation: 3}\n",
        "r.yaml:4: unknown key 'min_observation' in route 'r' shadow.compare.noise "
        "(hint: did you mean 'min_observations'?)",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    confirm: {max_shar: 5%}\n",
        "r.yaml:4: unknown key 'max_shar' in route 'r' shadow.compare.confirm "
        "(hint: did you mean 'max_share'?)",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    confirm: sometimes\n",
        "r.yaml:4: route 'r' shadow.compare.confirm must be true, false or a mapping",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    confirm: {max_share: 150%}\n",
        "r.yaml:4: route 'r' shadow.compare.confirm.max_share",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    noise: {share: 0%}\n",
        "r.yaml:4: route 'r' shadow.compare.noise.share must be more than 0%",
    ),
    (
        "shadow:\n  to: billing\n  compare:\n    noise: {window: 500ms}\n",
        "r.yaml:4: route 'r' shadow.compare.noise.window must be from 1s to 24h, got 0.5s",
    ),
]


@pytest.mark.parametrize(("text", "expected"), PROBLEMS)
def test_problems(text: str, expected: str) -> None:
    spec, problems = read(text)
    assert spec is None
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_every_problem_is_reported_at_once() -> None:
    spec, problems = read(
        "shadow:\n"
        "  to: nope\n"
        "  percent: 200%\n"
        "  compare:\n"
        "    ignore: [x, $.ok, '$[']\n"
        "    float_tolerance: -1\n"
    )
    assert spec is None
    assert sorted(int(p.split(":")[1]) for p in problems) == [2, 3, 5, 5, 6]


def test_shadow_to_own_upstream_is_fine_with_a_canary() -> None:
    spec, problems = read("shadow: {to: legacy}\n", own=None)
    assert problems == []
    assert spec is not None


@pytest.mark.parametrize(
    ("text", "steps"),
    [
        ("$", ()),
        ("$.a", ("a",)),
        ("$.a.b-c", ("a", "b-c")),
        ("$.items[*].id", ("items", ANY, "id")),
        ("$.items[12]", ("items", 12)),
        ("$.*", (ANY,)),
        ("$['a.b']", ("a.b",)),
        ('$["x y"][0]', ("x y", 0)),
        ("$['it\\'s']", ("it's",)),
        ("$['*']", ("*",)),
        (" $.a ", ("a",)),
    ],
)
def test_parse_json_path(text: str, steps: tuple[object, ...]) -> None:
    path = parse_json_path(text)
    assert path.steps == steps
    assert parse_json_path(str(path)) == path  # str() writes it back


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a.b", "must start with '$'"),
        ("$.", "expected a name after '.'"),
        ("$..a", "recursive descent"),
        ("$[", "is never closed"),
        ("$['a", "unterminated quoted key"),
        ("$[-1]", "negative index"),
        ("$[a]", "is not an index"),
        ("$a", "unexpected 'a'"),
    ],
)
def test_bad_json_paths(text: str, message: str) -> None:
    with pytest.raises(BadValue, match=re.escape(message)):
        parse_json_path(text)


def test_generalized_path() -> None:
    p = parse_json_path("$.a[3].b[0]")
    assert str(p.generalized()) == "$.a[*].b[*]"
    q = parse_json_path("$.a")
    assert q.generalized() is q


def test_compare_rules_default_is_shared_and_frozen() -> None:
    assert ShadowSpec(to="x").compare == CompareRules()
    with pytest.raises(AttributeError):
        ShadowSpec(to="x").to = "y"  # type: ignore[misc]


def test_the_schema_rejects_what_the_reader_rejects_but_the_upstream() -> None:
    """The route file schema (described.RouteEntry.shadow) describes every key of shadow: it
    finds each problem above but those naming upstreams (cross-references) or across
    keys (samples against min_observations); a JSON Schema's uniqueItems is exact, so
    header names that differ in case only are check's, as are a duration's bounds
    written with units (500ms)."""
    validator = jsonschema.Draft202012Validator(routes_schema())
    across = (
        "unknown upstream",
        "already answers",
        "cannot exceed",
        "case-insensitive",
        "1s to 24h",
    )

    def errors(text: str) -> list[object]:
        root = read_text(text, "r.yaml").files[0].root
        assert root is not None
        return list(validator.iter_errors({"routes": [{**A_ROUTE, **_plain(root)}]}))

    for text, expected in PROBLEMS:
        assert bool(errors(text)) != any(a in expected for a in across), text
    for text in ("shadow: billing\n", "shadow: {to: b, compare: {noise: true, confirm: false}}\n"):
        assert errors(text) == []
