"""``json:`` operations, one table row per behaviour, and their error messages."""

from __future__ import annotations

import copy

import pytest

from strangler.translate.base import JSON, TranslateError
from tests.translate_support import dumps, loads, plan_of, request


def run(ops: str, doc: JSON, side: str = "request") -> JSON:
    """``ops`` (a YAML flow list) on ``doc`` through a whole plan, as a request body."""
    plan = plan_of(f"translate: {{{side}: [{{json: {ops}}}]}}")
    msg = request(method="POST", headers={"Content-Type": "application/json"}, body=dumps(doc))
    return loads(plan.apply_request(msg).body)


CASES: list[tuple[str, str, JSON, JSON]] = [
    # name, ops, input, expected
    (
        "rename across levels",
        "[{rename: {from: customer.name, to: name}}]",
        {"customer": {"name": "Ada", "id": 1}},
        {"customer": {"id": 1}, "name": "Ada"},
    ),
    (
        "rename an absent field does nothing",
        "[{rename: {from: customer.name, to: name}}]",
        {"other": 1},
        {"other": 1},
    ),
    (
        "move creates objects on the way",
        "[{move: {from: city, to: address.city}}]",
        {"city": "Oslo"},
        {"address": {"city": "Oslo"}},
    ),
    (
        "move into a null replaces it with an object",
        "[{move: {from: city, to: address.city}}]",
        {"city": "Oslo", "address": None},
        {"address": {"city": "Oslo"}},
    ),
    (
        "rename with [*] runs per element",
        "[{rename: {from: 'lines[*].price', to: 'lines[*].amount'}}]",
        {"lines": [{"price": 1}, {"sku": "x"}, {"price": 3}]},
        {"lines": [{"amount": 1}, {"sku": "x"}, {"amount": 3}]},
    ),
    (
        "$. prefix and an index",
        "[{rename: {from: '$.lines[0].price', to: '$.first_price'}}]",
        {"lines": [{"price": 5}, {"price": 6}]},
        {"lines": [{}, {"price": 6}], "first_price": 5},
    ),
    (
        "drop several, absent fine, wildcard",
        "[{drop: [internal, 'lines[*].cost', nothing.here]}]",
        {"internal": 1, "lines": [{"cost": 1, "sku": "a"}, {"sku": "b"}], "keep": True},
        {"lines": [{"sku": "a"}, {"sku": "b"}], "keep": True},
    ),
    (
        "drop array elements from the end",
        "[{drop: ['items[*]']}]",
        {"items": [1, 2, 3]},
        {"items": []},
    ),
    (
        "drop a negative index",
        "[{drop: ['items[-1]']}]",
        {"items": [1, 2, 3]},
        {"items": [1, 2]},
    ),
    (
        "set a nested value, objects copied fresh",
        "[{set: {path: meta.source, value: {system: legacy, tags: [a, b]}}}]",
        {},
        {"meta": {"source": {"system": "legacy", "tags": ["a", "b"]}}},
    ),
    (
        "set in every element",
        "[{set: {path: 'lines[*].currency', value: EUR}}]",
        {"lines": [{}, {"currency": "USD"}]},
        {"lines": [{"currency": "EUR"}, {"currency": "EUR"}]},
    ),
    (
        "default fills absent and null, keeps values",
        "[{default: {path: a, value: 1}}, {default: {path: b, value: 2}}, "
        "{default: {path: c, value: 3}}]",
        {"b": None, "c": 0},
        {"b": 2, "c": 0, "a": 1},
    ),
    ("wrap", "[{wrap: data}]", {"id": 1}, {"data": {"id": 1}}),
    ("wrap two levels", "[{wrap: result.data}]", [1, 2], {"result": {"data": [1, 2]}}),
    ("unwrap", "[{unwrap: data}]", {"data": {"id": 1}, "meta": {}}, {"id": 1}),
    ("unwrap two levels", "[{unwrap: result.data}]", {"result": {"data": 7}}, 7),
    (
        "map values, types kept apart",
        "[{map: {path: status, values: {OPEN: open, PAID: paid}}}, "
        "{map: {path: code, values: {1: one, '1': text-one, true: yes}}}]",
        {"status": "PAID", "code": 1},
        {"status": "paid", "code": "one"},
    ),
    (
        "map a string that looks like a number",
        "[{map: {path: code, values: {1: one, '1': text-one}}}]",
        {"code": "1"},
        {"code": "text-one"},
    ),
    (
        "map with other: keep",
        "[{map: {path: 'lines[*].state', values: {A: active}, other: keep}}]",
        {"lines": [{"state": "A"}, {"state": "Z"}]},
        {"lines": [{"state": "active"}, {"state": "Z"}]},
    ),
    (
        "map to null and to objects",
        "[{map: {path: a, values: {x: null}}}, {map: {path: b, values: {y: {k: [1]}}}}]",
        {"a": "x", "b": "y"},
        {"a": None, "b": {"k": [1]}},
    ),
    (
        "convert to string",
        "[{convert: {path: 'v[*]', to: string}}]",
        {"v": [7, 1.5, True, "s", None]},
        {"v": ["7", "1.5", "true", "s", None]},
    ),
    (
        "convert to int",
        "[{convert: {path: 'v[*]', to: int}}]",
        {"v": ["12", "-3", 4.0, 5, None]},
        {"v": [12, -3, 4, 5, None]},
    ),
    (
        "convert to float",
        "[{convert: {path: 'v[*]', to: float}}]",
        {"v": ["1.25", "-2", 3, "1e3"]},
        {"v": [1.25, -2.0, 3.0, 1000.0]},
    ),
    (
        "convert to bool",
        "[{convert: {path: 'v[*]', to: bool}}]",
        {"v": ["true", "false", "1", "0", 1, 0, False]},
        {"v": [True, False, True, False, True, False, False]},
    ),
    (
        "date strftime to iso8601 (a date)",
        "[{date: {path: issued_on, from: '%Y-%m-%d', to: iso8601}}]",
        {"issued_on": "2024-03-05"},
        {"issued_on": "2024-03-05"},
    ),
    (
        "date legacy format to iso8601 (a datetime)",
        "[{date: {path: at, from: '%d/%m/%Y %H:%M', to: iso8601}}]",
        {"at": "05/03/2024 17:45"},
        {"at": "2024-03-05T17:45:00"},
    ),
    (
        "date iso8601 with Z to a pattern",
        "[{date: {path: at, from: iso8601, to: '%d.%m.%Y %H:%M %z'}}]",
        {"at": "2024-03-05T17:45:00Z"},
        {"at": "05.03.2024 17:45 +0000"},
    ),
    (
        "date epoch both ways, null kept",
        "[{date: {path: a, from: epoch, to: iso8601}}, {date: {path: b, from: iso8601, "
        "to: epoch_ms}}, {date: {path: c, from: epoch_ms, to: iso8601}}, "
        "{date: {path: d, from: iso8601, to: epoch}}]",
        {"a": 0, "b": "1970-01-02T00:00:00.250+00:00", "c": -1500, "d": None},
        {
            "a": "1970-01-01T00:00:00+00:00",
            "b": 86400250,
            "c": "1969-12-31T23:59:58.500000+00:00",
            "d": None,
        },
    ),
    (
        "date: a date to epoch is midnight UTC",
        "[{date: {path: d, from: '%Y-%m-%d', to: epoch}}]",
        {"d": "2000-01-01"},
        {"d": 946684800},
    ),
    (
        "scale cents to a decimal string, moved",
        "[{scale: {path: total_cents, to: total, divide: 100}}]",
        {"total_cents": 1234},
        {"total": "12.34"},
    ),
    (
        "scale keeps the places of the divisor",
        "[{scale: {path: 'v[*]', divide: 100}}]",
        {"v": [1200, -5, 0, 7]},
        {"v": ["12.00", "-0.05", "0.00", "0.07"]},
    ),
    (
        "scale a decimal string to cents",
        "[{scale: {path: total, to: total_cents, multiply: 100}}]",
        {"total": "-12.30"},
        {"total_cents": -1230},
    ),
    (
        "scale a JSON number to cents",
        "[{scale: {path: total, multiply: 100, as: int}}]",
        {"total": 19.99},
        {"total": 1999},
    ),
    (
        "scale to a JSON number",
        "[{scale: {path: n, divide: 4, as: number}}]",
        {"n": 10},
        {"n": 2.5},
    ),
    (
        "scale to a number that a double holds exactly",
        "[{scale: {path: n, multiply: '1.5', as: number}}]",
        {"n": "2.4"},
        {"n": 3.6},
    ),
    (
        "scale with explicit places as a string",
        "[{scale: {path: n, multiply: '1.5', places: 3, as: decimal_string}}]",
        {"n": "2.5"},
        {"n": "3.750"},
    ),
    (
        "each runs nested operations on every element",
        "[{each: {path: lines, do: [{rename: {from: qty, to: quantity}}, "
        "{scale: {path: price_cents, to: price, divide: 100}}, {unwrap: item}]}}]",
        {"lines": [{"item": {"x": 1}, "qty": 2, "price_cents": 150}]},
        {"lines": [{"x": 1}]},
    ),
    (
        "each over an absent or null array does nothing",
        "[{each: {path: lines, do: [{drop: [x]}]}}, {each: {path: more, do: [{drop: [x]}]}}]",
        {"more": None},
        {"more": None},
    ),
    (
        "each with a wildcard path",
        "[{each: {path: 'orders[*].lines', do: [{set: {path: seen, value: true}}]}}]",
        {"orders": [{"lines": [{}, {}]}, {"lines": [{}]}]},
        {"orders": [{"lines": [{"seen": True}, {"seen": True}]}, {"lines": [{"seen": True}]}]},
    ),
    (
        "require passes when present, null counts",
        "[{require: [id, 'lines[*].sku', note]}]",
        {"id": 1, "lines": [{"sku": "a"}], "note": None},
        {"id": 1, "lines": [{"sku": "a"}], "note": None},
    ),
    (
        "operations run in order",
        "[{rename: {from: a, to: b}}, {rename: {from: b, to: c}}, {wrap: x}]",
        {"a": 1},
        {"x": {"c": 1}},
    ),
    (
        "unicode survives",
        "[{set: {path: name, value: Zoë}}]",
        {"city": "Zürich ✓"},
        {"city": "Zürich ✓", "name": "Zoë"},
    ),
]


@pytest.mark.parametrize(
    ("ops", "doc", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_operation(ops: str, doc: JSON, expected: JSON) -> None:
    assert run(ops, doc) == expected


def test_a_set_value_is_a_fresh_copy_each_time() -> None:
    plan = plan_of("translate: {request: [{json: [{set: {path: tags, value: [a]}}]}]}")
    first = plan.apply_request(request(method="POST", body=b"{}"))
    doc = first.json
    assert isinstance(doc, dict)
    tags = doc["tags"]
    assert isinstance(tags, list)
    tags.append("changed")
    second = plan.apply_request(request(method="POST", body=b"{}"))
    assert second.json == {"tags": ["a"]}


ERRORS: list[tuple[str, str, JSON, str]] = [
    (
        "map: value not in the map",
        "[{map: {path: status, values: {OPEN: open}}}]",
        {"status": "VOID"},
        "request.json[0] map status: value 'VOID' not in the map",
    ),
    (
        "map in an array names the element",
        "[{require: [id]}, {map: {path: 'lines[*].status', values: {OPEN: open}}}]",
        {"id": 1, "lines": [{"status": "OPEN"}, {"status": None}]},
        "request.json[1] map lines[*].status: lines[1].status: value null not in the map",
    ),
    (
        "require: missing",
        "[{require: [id, name]}]",
        {"id": 1},
        "request.json[0] require: required field name is missing",
    ),
    (
        "require: missing in one element",
        "[{require: ['lines[*].sku']}]",
        {"lines": [{"sku": "a"}, {}]},
        "request.json[0] require: required field lines[1].sku is missing (of lines[*].sku)",
    ),
    (
        "unwrap: absent",
        "[{unwrap: data}]",
        {"error": "x"},
        "request.json[0] unwrap data: no 'data' in the body",
    ),
    (
        "a key into a string",
        "[{rename: {from: customer.name, to: name}}]",
        {"customer": "Ada"},
        "request.json[0] rename customer.name: customer is a string, not an object "
        "(looking for 'name')",
    ),
    (
        "an index into an object",
        "[{drop: ['lines[0]']}]",
        {"lines": {"a": 1}},
        "request.json[0] drop: lines is an object, not an array (looking for [0])",
    ),
    (
        "set into a missing array element",
        "[{set: {path: 'lines[3].x', value: 1}}]",
        {"lines": []},
        "request.json[0] set lines[3].x: lines[3] does not exist (the array has 0)",
    ),
    (
        "convert: not a whole number",
        "[{convert: {path: n, to: int}}]",
        {"n": "12.5"},
        "request.json[0] convert n: '12.5' is not a whole number",
    ),
    (
        "convert: an object",
        "[{convert: {path: n, to: string}}]",
        {"n": {}},
        "request.json[0] convert n: cannot convert an object to string",
    ),
    (
        "convert: not a bool",
        "[{convert: {path: n, to: bool}}]",
        {"n": "yes"},
        'request.json[0] convert n: \'yes\' is not true/false, 0/1 or "true"/"false"',
    ),
    (
        "date: does not fit the format",
        "[{date: {path: d, from: '%Y-%m-%d', to: iso8601}}]",
        {"d": "05/03/2024"},
        "request.json[0] date d: '05/03/2024' does not fit '%Y-%m-%d': "
        "time data '05/03/2024' does not match format '%Y-%m-%d'",
    ),
    (
        "date: epoch loses a fraction",
        "[{date: {path: d, from: iso8601, to: epoch}}]",
        {"d": "2024-01-01T00:00:00.5+00:00"},
        "request.json[0] date d: 2024-01-01T00:00:00.500000+00:00 has a fraction of a epoch "
        "unit; write epoch_ms",
    ),
    (
        "scale: inexact division",
        "[{scale: {path: n, divide: 3}}]",
        {"n": 10},
        "request.json[0] scale n: 10 / 3 is not an exact decimal",
    ),
    (
        "scale: more places than allowed",
        "[{scale: {path: n, divide: 100}}]",
        {"n": "12.345"},
        "request.json[0] scale n: 0.12345 has more than 2 decimal places",
    ),
    (
        "scale: not whole for int",
        "[{scale: {path: n, multiply: 100}}]",
        {"n": "0.125"},
        "request.json[0] scale n: 12.500 is not a whole number",
    ),
    (
        "scale: not a decimal",
        "[{scale: {path: n, multiply: 100}}]",
        {"n": "1e3"},
        "request.json[0] scale n: '1e3' is not a decimal like \"-12.34\"",
    ),
    (
        "scale: a boolean",
        "[{scale: {path: n, multiply: 100}}]",
        {"n": True},
        "request.json[0] scale n: True is not a number",
    ),
    (
        "scale: no exact JSON number",
        "[{scale: {path: n, divide: 10, as: number}}]",
        {"n": 12345678901234567},
        "request.json[0] scale n: 1234567890123456.7 has no exact JSON number; "
        "write as: decimal_string",
    ),
    (
        "each: not an array",
        "[{each: {path: lines, do: [{drop: [x]}]}}]",
        {"lines": {"x": 1}},
        "request.json[0] each lines: lines is an object, not an array",
    ),
    (
        "each: a nested failure names the element and the operation",
        "[{each: {path: lines, do: [{require: [sku]}]}}]",
        {"lines": [{"sku": 1}, {"qty": 2}]},
        "request.json[0] each lines: lines[1]: do[0] require: required field sku is missing",
    ),
]


@pytest.mark.parametrize(
    ("ops", "doc", "message"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_operation_error(ops: str, doc: JSON, message: str) -> None:
    before = copy.deepcopy(doc)
    with pytest.raises(TranslateError) as info:
        run(ops, doc)
    assert str(info.value) == message
    assert info.value.status == 400  # a request the proxy cannot translate
    assert doc == before


def test_response_side_errors_name_the_response_step() -> None:
    plan = plan_of(
        "translate: {response: [{status: {map: {201: 200}}}, "
        "{json: [{unwrap: data}, {require: [id]}, {map: {path: status, values: {OPEN: open}}}]}]}"
    )
    from tests.translate_support import response

    msg = response(body=b'{"data": {"id": 1, "status": "VOID"}}')
    with pytest.raises(TranslateError) as info:
        plan.apply_response(msg)
    assert str(info.value) == "response.json[2] map status: value 'VOID' not in the map"
    assert info.value.status == 502
