"""``compare``: the structural diff of two answers, table by table."""

from __future__ import annotations

import doctest
import json

import pytest
from multidict import CIMultiDict

import strangler.shadow.compare as compare_module
from strangler.config.shadow_model import ANY, CompareRules, JsonPath, parse_json_path
from strangler.shadow.compare import (
    ABSENT,
    MAX_DIFFERENCES,
    REPR_LIMIT,
    Observed,
    Rules,
    Verdict,
    compare,
)

JSON = CIMultiDict({"Content-Type": "application/json"})


def rules(**kw: object) -> Rules:
    """Rules from keyword arguments; JSON paths given as text."""
    for key in ("ignore", "unordered_arrays"):
        if key in kw:
            kw[key] = tuple(parse_json_path(str(p)) for p in kw[key])  # type: ignore[attr-defined]
    return Rules.from_spec(CompareRules(**kw))  # type: ignore[arg-type]


def js(doc: object, status: int = 200, headers: CIMultiDict[str] = JSON) -> Observed:
    return Observed(status, headers, json.dumps(doc).encode())


def diffs(v: Verdict) -> list[tuple[str, str, str, str]]:
    return [(d.kind, d.where, d.primary, d.shadow) for d in v.differences]


def test_doctests() -> None:
    assert doctest.testmod(compare_module).failed == 0


# (primary, shadow, rules kwargs, expected differences)
STRUCTURAL: list[tuple[str, object, object, dict[str, object], list[tuple[str, str, str]]]] = [
    ("identical", {"a": 1}, {"a": 1}, {}, []),
    ("key order never matters", {"a": 1, "b": 2}, {"b": 2, "a": 1}, {}, []),
    ("changed value", {"a": 1}, {"a": 2}, {}, [("$.a", "1", "2")]),
    ("missing in shadow", {"a": 1, "b": 2}, {"a": 1}, {}, [("$.b", "2", ABSENT)]),
    ("extra in shadow", {"a": 1}, {"a": 1, "c": [1]}, {}, [("$.c", ABSENT, "[1]")]),
    ("null is not absent", {"a": None}, {}, {}, [("$.a", "null", ABSENT)]),
    ("string vs number", {"a": "1"}, {"a": 1}, {}, [("$.a", '"1"', "1")]),
    ("true is not 1", {"a": True}, {"a": 1}, {}, [("$.a", "true", "1")]),
    ("1 equals 1.0", {"a": 1}, {"a": 1.0}, {}, []),
    ("object vs array", {"a": {}}, {"a": []}, {}, [("$.a", "{}", "[]")]),
    ("nested", {"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2}}}, {}, [("$.a.b.c", "1", "2")]),
    ("arrays in order", [1, 2], [2, 1], {}, [("$[0]", "1", "2"), ("$[1]", "2", "1")]),
    ("longer primary array", [1, 2, 3], [1, 2], {}, [("$[2]", "3", ABSENT)]),
    ("longer shadow array", [1], [1, {"x": 1}], {}, [("$[1]", ABSENT, '{"x": 1}')]),
    ("float within default tolerance", {"t": 0.1 + 0.2}, {"t": 0.3}, {}, []),
    (
        "float exact when tolerance 0",
        {"t": 0.1 + 0.2},
        {"t": 0.3},
        {"float_tolerance": 0.0},
        [("$.t", "0.30000000000000004", "0.3")],
    ),
    ("relative tolerance", {"t": 1000.0}, {"t": 1000.5}, {"float_tolerance": 1e-3}, []),
    (
        "beyond tolerance",
        {"t": 1.0},
        {"t": 1.1},
        {"float_tolerance": 1e-3},
        [("$.t", "1.0", "1.1")],
    ),
    (
        "huge ints compare exactly",
        {"n": 10**400},
        {"n": 10**400 + 1},
        {},
        [("$.n", "1" + "0" * 198 + "…", "1" + "0" * 198 + "…")],
    ),
    ("ignored member", {"a": 1, "at": "x"}, {"a": 1, "at": "y"}, {"ignore": ["$.at"]}, []),
    ("ignored member absent on one side", {"a": 1, "at": "x"}, {"a": 1}, {"ignore": ["$.at"]}, []),
    (
        "ignore with wildcard",
        {"items": [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}]},
        {"items": [{"id": 7, "n": "a"}, {"id": 8, "n": "c"}]},
        {"ignore": ["$.items[*].id"]},
        [("$.items[1].n", '"b"', '"c"')],
    ),
    (
        "ignore one index only",
        {"items": [1, 2, 3]},
        {"items": [9, 2, 9]},
        {"ignore": ["$.items[0]"]},
        [("$.items[2]", "3", "9")],
    ),
    (
        "object wildcard",
        {"m": {"x": {"ts": 1, "v": 1}, "y": {"ts": 2, "v": 2}}},
        {"m": {"x": {"ts": 5, "v": 1}, "y": {"ts": 6, "v": 3}}},
        {"ignore": ["$.m.*.ts"]},
        [("$.m.y.v", "2", "3")],
    ),
    ("quoted key", {"a.b": 1}, {"a.b": 2}, {}, [("$['a.b']", "1", "2")]),
    ("quoted key ignored", {"a.b": 1}, {"a.b": 2}, {"ignore": ["$['a.b']"]}, []),
    (
        "unordered array",
        {"tags": ["a", "b", "c"]},
        {"tags": ["c", "a", "b"]},
        {"unordered_arrays": ["$.tags"]},
        [],
    ),
    (
        "unordered multiset counts",
        {"tags": ["a", "a", "b"]},
        {"tags": ["a", "b", "b"]},
        {"unordered_arrays": ["$.tags"]},
        [("$.tags[1]", '"a"', ABSENT), ("$.tags[2]", ABSENT, '"b"')],
    ),
    (
        "unordered objects, ignore inside",
        {"items": [{"id": 1, "n": "a"}, {"id": 2, "n": "b"}]},
        {"items": [{"id": 9, "n": "b"}, {"id": 8, "n": "a"}]},
        {"unordered_arrays": ["$.items"], "ignore": ["$.items[*].id"]},
        [],
    ),
    (
        "unordered with float tolerance",
        {"v": [1.0, 0.1 + 0.2]},
        {"v": [0.3, 1]},
        {"unordered_arrays": ["$.v"]},
        [],
    ),
    (
        "unordered nested in unordered",
        {"g": [[1, 2], [3, 4]]},
        {"g": [[4, 3], [2, 1]]},
        {"unordered_arrays": ["$.g", "$.g[*]"]},
        [],
    ),
    (
        "ordered inner array of unordered outer",
        {"g": [[1, 2]]},
        {"g": [[2, 1]]},
        {"unordered_arrays": ["$.g"], "float_tolerance": 0.0},
        [("$.g[0]", "[1, 2]", ABSENT), ("$.g[0]", ABSENT, "[2, 1]")],
    ),
    (
        "unordered elsewhere keeps order here",
        {"a": [1, 2]},
        {"a": [2, 1]},
        {"unordered_arrays": ["$.b"]},
        [("$.a[0]", "1", "2"), ("$.a[1]", "2", "1")],
    ),
]


@pytest.mark.parametrize(
    ("primary", "shadow", "kw", "expected"),
    [pytest.param(p, s, kw, e, id=name) for name, p, s, kw, e in STRUCTURAL],
)
def test_json_bodies(
    primary: object, shadow: object, kw: dict[str, object], expected: list[tuple[str, str, str]]
) -> None:
    v = compare(js(primary), js(shadow), rules(**kw))
    assert v.body == "json"
    assert [(w, p, s) for _, w, p, s in diffs(v)] == expected
    assert v.match is (not expected)
    assert v.kinds == (frozenset({"body"}) if expected else frozenset())


def test_status_and_headers() -> None:
    a = Observed(200, CIMultiDict({"Content-Type": "text/plain", "ETag": "1"}), b"x")
    b = Observed(201, CIMultiDict({"content-type": "text/plain; charset=utf-8"}), b"x")
    v = compare(a, b, rules(headers=("Content-Type", "ETag", "X-Absent")))
    assert diffs(v) == [
        ("status", "status", "200", "201"),
        ("header", "Content-Type", "text/plain", "text/plain; charset=utf-8"),
        ("header", "ETag", "1", ABSENT),
    ]
    assert v.kinds == {"status", "header"}
    assert compare(a, b, rules(status=False, headers=())).match


def test_repeated_header_values_compared_in_order() -> None:
    a = Observed(200, CIMultiDict([("Vary", "A"), ("Vary", "B")]), b"")
    b = Observed(200, CIMultiDict([("Vary", "B"), ("Vary", "A")]), b"")
    v = compare(a, b, rules(headers=("Vary",)))
    assert diffs(v) == [("header", "Vary", '["A", "B"]', '["B", "A"]')]


def test_bytes_bodies_by_sha256() -> None:
    text = CIMultiDict({"Content-Type": "text/csv"})
    assert compare(Observed(200, text, b"a,b\n"), Observed(200, text, b"a,b\n"), rules()).match
    v = compare(Observed(200, text, b"a,b\n"), Observed(200, text, b"a,c\n"), rules())
    assert v.body == "bytes"
    [d] = v.differences
    assert (d.kind, d.where) == ("body", "sha256")
    assert d.primary.startswith("4 bytes, sha256 ")
    assert "'a,b\\n'" in d.primary


def test_json_detected_without_content_type() -> None:
    plain = CIMultiDict[str]()
    v = compare(Observed(200, plain, b' {"a": 1}'), Observed(200, plain, b'{"a":1}'), rules())
    assert (v.body, v.match) == ("json", True)


def test_json_against_non_json() -> None:
    v = compare(Observed(200, JSON, b'{"a": 1}'), Observed(200, JSON, b"<html>"), rules())
    assert v.body == "bytes"
    assert [d.where for d in v.differences] == ["sha256"]


def test_invalid_json_with_json_type_falls_back_to_bytes() -> None:
    v = compare(Observed(200, JSON, b"{nope"), Observed(200, JSON, b"{nope"), rules())
    assert (v.body, v.match) == ("bytes", True)


def test_truncated_body_compares_status_and_headers_only() -> None:
    v = compare(Observed(200, JSON, None), js({"a": 2}), rules())
    assert (v.match, v.truncated, v.body) == (True, True, "skipped")
    v = compare(Observed(500, JSON, None), js({"a": 2}), rules())
    assert (v.match, v.truncated) == (False, True)


def test_ignoring_the_root_skips_bodies() -> None:
    v = compare(js({"a": 1}), js({"a": 2}), rules(ignore=["$"]))
    assert (v.match, v.body) == (True, "skipped")


def test_long_values_are_cut() -> None:
    v = compare(js({"s": "x" * 10_000}), js({"s": "y"}), rules())
    [d] = v.differences
    assert len(d.primary) == REPR_LIMIT
    assert d.primary.endswith("…")
    assert d.shadow == '"y"'


def test_huge_subtree_rendered_without_encoding_it_all() -> None:
    big = list(range(1_000_000))
    v = compare(js({"a": big}), js({}), rules())
    [d] = v.differences
    assert len(d.primary) <= REPR_LIMIT


def test_many_differences_are_capped_and_patterns_generalised() -> None:
    a = {"items": [{"id": i, "price": i} for i in range(500)]}
    b = {"items": [{"id": i, "price": i + 1} for i in range(500)]}
    v = compare(js(a), js(b), rules())
    assert len(v.differences) == MAX_DIFFERENCES
    assert v.more == 500 - MAX_DIFFERENCES
    assert v.differences[3].where == "$.items[3].price"
    assert v.patterns == {JsonPath(("items", ANY, "price"))}
    assert v.kinds == {"body"}


def test_with_ignored_adds_noise_paths() -> None:
    base = rules()
    noisy = base.with_ignored([JsonPath(("request_id",))])
    a, b = js({"request_id": "1", "v": 1}), js({"request_id": "2", "v": 1})
    assert not compare(a, b, base).match
    assert compare(a, b, noisy).match
    assert noisy.with_ignored([JsonPath(("request_id",))]) is noisy


def test_nan_equals_nan() -> None:
    v = compare(Observed(200, JSON, b'{"x": NaN}'), Observed(200, JSON, b'{"x": NaN}'), rules())
    assert v.match


def test_very_deep_documents_fall_back_to_bytes() -> None:
    deep = b"[" * 5000 + b"]" * 5000
    v = compare(Observed(200, JSON, deep), Observed(200, JSON, deep), rules())
    assert v.match
    assert v.body == "bytes"


def test_verdict_as_dict_is_json() -> None:
    v = compare(js({"a": 1}, status=200), js({"a": 2}, status=404), rules())
    d = v.as_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["match"] is False
    assert [x["kind"] for x in d["differences"]] == ["status", "body"]  # type: ignore[attr-defined]
