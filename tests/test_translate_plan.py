"""The compiled Plan: onion order, body handling (encodings, charset, Content-Length),
what must be buffered, and every failure mode under ``on_error: fail`` and ``passthrough``."""

from __future__ import annotations

import doctest
import gzip
import importlib
import zlib
from collections.abc import Callable
from types import ModuleType

import pytest

from strangler.translate import build_plan
from strangler.translate.base import JSON, TranslateError, TranslateRequest, TranslateResponse
from strangler.translate.registry import EMPTY_PLAN
from tests.translate_support import dumps, loads, plan_of, request, response

brotli = importlib.import_module("brotli")  # untyped: no stubs

JSON_HEADERS = {"Content-Type": "application/json"}


# ---------------------------------------------------------------------------- hooks used here


def trace(msg: TranslateRequest | TranslateResponse, mark: str) -> None:
    msg.headers.add("X-Trace", mark)


def trace_a(msg: TranslateRequest) -> TranslateRequest:
    trace(msg, "a")
    return msg


def trace_b(msg: TranslateRequest) -> TranslateRequest:
    trace(msg, "b")
    return msg


def trace_a_response(msg: TranslateResponse) -> TranslateResponse:
    trace(msg, "a")
    return msg


def trace_b_response(msg: TranslateResponse) -> TranslateResponse:
    trace(msg, "b")
    return msg


def explode(msg: TranslateRequest | TranslateResponse) -> TranslateRequest | TranslateResponse:
    raise ValueError("the hook is broken")


HERE = __name__


# ---------------------------------------------------------------------------- order


ONION = f"""
translators:
  outer:
    request:
      - hook: {{call: "{HERE}:trace_a", body: false}}
      - json: [{{rename: {{from: a, to: b}}}}]
    response:
      - hook: {{call: "{HERE}:trace_a_response", body: false}}
      - json: [{{rename: {{from: a, to: b}}}}]
  inner:
    request:
      - hook: {{call: "{HERE}:trace_b", body: false}}
      - json: [{{rename: {{from: b, to: c}}}}]
    response:
      - hook: {{call: "{HERE}:trace_b_response", body: false}}
      - json: [{{rename: {{from: b, to: c}}}}]
translate: [{{use: outer}}, {{use: inner}}]
"""


def test_onion_request_in_order_response_in_reverse() -> None:
    plan = plan_of(ONION)
    req = plan.apply_request(request(method="POST", headers=JSON_HEADERS, body=b'{"a": 1}'))
    assert req.headers.getall("X-Trace") == ["a", "b"]
    assert loads(req.body) == {"c": 1}  # outer a→b, then inner b→c
    resp = plan.apply_response(response(headers=JSON_HEADERS, body=b'{"a": 1}'))
    assert resp.headers.getall("X-Trace") == ["b", "a"]
    assert loads(resp.body) == {"b": 1}  # inner b→c finds nothing, then outer a→b
    assert [t.step for t in plan.response] == [
        "[inner] response.hook",
        "[inner] response.json",
        "[outer] response.hook",
        "[outer] response.json",
    ]


def test_within_one_translator_each_list_runs_top_to_bottom() -> None:
    plan = plan_of(
        "translate: {response: [{json: [{rename: {from: a, to: b}}]}, "
        "{json: [{rename: {from: b, to: c}}]}]}"
    )
    assert loads(plan.apply_response(response(body=b'{"a": 1}')).body) == {"c": 1}
    assert [t.step for t in plan.response] == ["response[0].json", "response[1].json"]


def test_inline_layers_are_numbered() -> None:
    plan = plan_of(
        "translate: [{request: [{headers: {set: {A: '1'}}}]}, "
        "{request: [{headers: {set: {A: '2'}}}]}]"
    )
    assert [t.step for t in plan.request] == ["[#1] request.headers", "[#2] request.headers"]
    assert plan.apply_request(request()).headers["A"] == "2"


# ---------------------------------------------------------------------------- buffering


@pytest.mark.parametrize(
    ("text", "request_body", "response_body"),
    [
        ("translate: {request: [{path: {prefix: {add: /v2}}}, {headers: {remove: A}}]}",
         False, False),
        ("translate: {request: [{json: [{drop: [a]}]}]}", True, False),
        ("translate: {response: [{json: [{drop: [a]}]}]}", False, True),
        (f"translate: {{request: [{{hook: '{HERE}:trace_a'}}]}}", True, False),
        (f"translate: {{request: [{{hook: {{call: '{HERE}:trace_a', body: false}}}}]}}",
         False, False),
        ("translate: {response: [{status: {map: {201: 200}}}]}", False, False),
    ],
)  # fmt: skip
def test_what_needs_a_body(text: str, request_body: bool, response_body: bool) -> None:
    plan = plan_of(text)
    assert (plan.needs_request_body, plan.needs_response_body) == (request_body, response_body)


def test_a_route_without_translate_streams() -> None:
    assert build_plan(None) is EMPTY_PLAN
    assert not EMPTY_PLAN.needs_request_body
    assert not EMPTY_PLAN.needs_response_body_for(200)
    msg = request("/x?y", body=None)
    assert EMPTY_PLAN.apply_request(msg) is msg


def test_body_steps_skip_a_body_that_was_not_read() -> None:
    plan = plan_of("translate: {request: [{json: [{require: [id]}]}, {headers: {set: {A: '1'}}}]}")
    msg = plan.apply_request(request(method="POST", body=None))
    assert (msg.body, msg.headers["A"]) == (None, "1")


def test_an_empty_body_has_no_json_to_change() -> None:
    plan = plan_of("translate: {request: [{json: [{set: {path: a, value: 1}}]}]}")
    msg = plan.apply_request(request(method="POST", headers={"Content-Length": "0"}, body=b""))
    assert (msg.body, msg.headers["Content-Length"]) == (b"", "0")


# ---------------------------------------------------------------------------- bodies


def test_content_length_is_fixed_and_digests_dropped() -> None:
    plan = plan_of("translate: {request: [{json: [{set: {path: added, value: yes}}]}]}")
    body = b'{"a": 1}'
    msg = plan.apply_request(
        request(
            method="POST",
            headers={**JSON_HEADERS, "Content-Length": str(len(body)), "Content-MD5": "x"},
            body=body,
        )
    )
    assert msg.body == b'{"a":1,"added":"yes"}'
    assert msg.headers["Content-Length"] == str(len(msg.body))
    assert "Content-MD5" not in msg.headers


def test_an_unchanged_body_goes_on_byte_for_byte() -> None:
    plan = plan_of("translate: {request: [{json: [{require: [a]}]}, {headers: {set: {A: b}}}]}")
    body = b'{ "a" : 1.50,  "z": "\\u00fc" }'
    msg = plan.apply_request(request(method="POST", headers={"Content-Length": "99"}, body=body))
    assert msg.body == body
    assert msg.headers["Content-Length"] == "99"


def _gzip_members(data: bytes) -> bytes:
    half = len(data) // 2
    return gzip.compress(data[:half]) + gzip.compress(data[half:])


ENCODINGS = [
    ("gzip", gzip.compress, lambda b: gzip.decompress(b)),
    ("x-gzip", gzip.compress, lambda b: gzip.decompress(b)),
    ("gzip", _gzip_members, lambda b: gzip.decompress(b)),
    ("deflate", zlib.compress, zlib.decompress),
    ("deflate", lambda b: zlib.compress(b, wbits=-15), zlib.decompress),  # raw deflate in
    ("br", brotli.compress, brotli.decompress),
    ("gzip, br", lambda b: brotli.compress(gzip.compress(b)),
     lambda b: gzip.decompress(brotli.decompress(b))),
]  # fmt: skip


@pytest.mark.parametrize(("coding", "compress", "decompress"), ENCODINGS)
def test_compressed_bodies_round_trip(
    coding: str, compress: Callable[[bytes], bytes], decompress: Callable[[bytes], bytes]
) -> None:
    plan = plan_of(
        "translate: {response: [{json: [{unwrap: data}, {set: {path: seen, value: true}}]}]}"
    )
    original: JSON = {"data": {"name": "Zoë", "lines": list(range(50))}}
    wire = compress(dumps(original))
    msg = plan.apply_response(
        response(
            headers={**JSON_HEADERS, "Content-Encoding": coding, "Content-Length": str(len(wire))},
            body=wire,
        )
    )  # fmt: skip
    assert msg.headers["Content-Encoding"] == coding
    assert msg.body is not None
    assert msg.headers["Content-Length"] == str(len(msg.body))
    assert loads(decompress(msg.body)) == {"name": "Zoë", "lines": list(range(50)), "seen": True}


def test_a_compressed_body_no_step_changed_keeps_its_bytes() -> None:
    plan = plan_of("translate: {response: [{json: [{require: [id]}]}]}")
    wire = gzip.compress(b'{"id": 1}', mtime=12345)
    msg = plan.apply_response(response(headers={"Content-Encoding": "gzip"}, body=wire))
    assert msg.body == wire


@pytest.mark.parametrize(
    ("charset", "text"),
    [("iso-8859-1", "Zürich"), ("utf-16", "Zürich ✓"), ("windows-1252", "€ 5"), ("utf-8", "✓")],
)
def test_charset_is_respected_both_ways(charset: str, text: str) -> None:
    plan = plan_of("translate: {request: [{json: [{rename: {from: city, to: town}}]}]}")
    content_type = f"application/json; charset={charset}"
    body = f'{{"city": "{text}"}}'.encode(charset)
    msg = plan.apply_request(
        request(method="POST", headers={"Content-Type": content_type}, body=body)
    )
    assert msg.body is not None
    assert msg.body.decode(charset) in (f'{{"town":"{text}"}}', f'{{"town":{_escaped(text)}}}')
    assert msg.headers["Content-Type"] == content_type


def _escaped(text: str) -> str:
    import json

    return json.dumps(text)  # outside the UTF family, non-ASCII is written as \\u escapes


def test_hooks_see_the_decoded_body_and_changes_are_encoded_once() -> None:
    plan = plan_of(f"translate: {{response: [{{hook: '{HERE}:upper_name'}}]}}")
    wire = gzip.compress(b'{"name": "ada"}')
    msg = plan.apply_response(response(headers={"Content-Encoding": "gzip"}, body=wire))
    assert gzip.decompress(msg.body or b"") == b'{"name":"ADA"}'


def upper_name(msg: TranslateResponse) -> TranslateResponse:
    assert msg.body == b'{"name": "ada"}'  # decoded for the hook
    doc = msg.json
    assert isinstance(doc, dict)
    assert isinstance(doc["name"], str)
    doc["name"] = doc["name"].upper()  # in place: enough
    return msg


# ---------------------------------------------------------------------------- failures

FAILURES = [
    # name, steps (request side), body, headers, fail: (status, message)
    ("invalid JSON", "[{json: [{set: {path: a, value: 1}}]}]", b'{"a": ', JSON_HEADERS,
     (400, "request[1].json: the body is not valid JSON: Expecting value: line 1 column 7 "
           "(char 6)")),
    ("not JSON at all", "[{json: [{drop: [a]}]}]", b"<html/>", {"Content-Type": "text/html"},
     (400, "request[1].json: Content-Type 'text/html' is not JSON")),
    ("NaN is not JSON", "[{json: [{drop: [a]}]}]", b'{"a": NaN}', JSON_HEADERS,
     (400, "request[1].json: the body is not valid JSON: NaN is not a JSON value")),
    ("bad bytes for the charset", "[{json: [{drop: [a]}]}]", b'{"a": "\xff"}', JSON_HEADERS,
     (400, "request[1].json: the body is not valid utf-8: invalid start byte")),
    ("unknown charset", "[{json: [{drop: [a]}]}]", b"{}",
     {"Content-Type": "application/json; charset=klingon"},
     (400, "request[1].json: unknown charset 'klingon' in Content-Type")),
    ("missing required field", "[{json: [{require: [id]}]}]", b'{"name": "x"}', JSON_HEADERS,
     (400, "request[2].json[0] require: required field id is missing")),
    ("failing hook", f"[{{hook: '{HERE}:explode'}}]", b'{"a": 1}', JSON_HEADERS,
     (500, f"request.hook: hook {HERE}:explode failed: ValueError: the hook is broken")),
    ("body over max_body", "[{json: [{drop: [a]}]}]", b'{"a": "' + b"x" * 200 + b'"}', JSON_HEADERS,
     (413, "request body: the decoded body is larger than 100 bytes")),
    ("decoded body over max_body", "[{json: [{drop: [a]}]}]",
     gzip.compress(b'{"a": "' + b"x" * 5000 + b'"}'), {**JSON_HEADERS, "Content-Encoding": "gzip"},
     (413, "request body: the decoded body is larger than 100 bytes")),
    ("broken gzip", "[{json: [{drop: [a]}]}]", b"\x1f\x8bnot really", {"Content-Encoding": "gzip"},
     (400, "request body: the body is not valid gzip: Error -3 while decompressing data: "
           "unknown compression method")),
    ("unknown encoding", "[{json: [{drop: [a]}]}]", b"...", {"Content-Encoding": "zstd"},
     (400, "request body: cannot decode Content-Encoding 'zstd' (known: gzip, deflate, br)")),
]  # fmt: skip


def _failing_plan(steps: str, on_error: str) -> str:
    # Header steps before and after the failing one (those always apply), and a json
    # step before it whose change must be undone: request[0] to request[3].
    return (
        f"translate: {{max_body: 100, on_error: {on_error}, request: ["
        f"{{headers: {{set: {{X-Before: '1'}}}}}}, {{json: [{{set: {{path: early, value: 1}}}}]}}, "
        f"*steps, {{headers: {{set: {{X-After: '1'}}}}}}]}}"
    ).replace("*steps", steps[1:-1])


@pytest.mark.parametrize(
    ("steps", "body", "headers", "expected"),
    [f[1:] for f in FAILURES],
    ids=[f[0] for f in FAILURES],
)
def test_failure_with_on_error_fail(
    steps: str, body: bytes, headers: dict[str, str], expected: tuple[int, str]
) -> None:
    plan = plan_of(_failing_plan(steps, "fail"))
    with pytest.raises(TranslateError) as info:
        plan.apply_request(request(method="POST", headers=headers, body=body))
    assert (info.value.status, str(info.value)) == expected
    assert info.value.client_message() == f"translation failed: {expected[1]}"


@pytest.mark.parametrize(
    ("steps", "body", "headers"), [f[1:4] for f in FAILURES], ids=[f[0] for f in FAILURES]
)
def test_failure_with_on_error_passthrough(
    steps: str, body: bytes, headers: dict[str, str]
) -> None:
    plan = plan_of(_failing_plan(steps, "passthrough"))
    msg = plan.apply_request(request(method="POST", headers=headers, body=body))
    assert msg.body == body  # untouched: the earlier json step's change is gone too
    assert "Content-Length" not in msg.headers
    assert (msg.headers["X-Before"], msg.headers["X-After"]) == ("1", "1")


def test_response_failures_are_502() -> None:
    plan = plan_of(
        f"translate: {{max_body: 10, response: "
        f"[{{hook: {{call: '{HERE}:explode', body: false}}}}]}}"
    )
    with pytest.raises(TranslateError) as info:
        plan.apply_response(response())
    assert info.value.status == 502
    too_big = plan_of("translate: {max_body: 10, response: [{json: [{drop: [a]}]}]}")
    with pytest.raises(TranslateError) as info:
        too_big.apply_response(response(body=b'{"a": "long enough"}'))
    assert (info.value.status, str(info.value)) == (
        502,
        "response body: the decoded body is larger than 10 bytes",
    )


def test_passthrough_steps_over_a_failing_hook_without_body() -> None:
    plan = plan_of(
        f"translate: {{on_error: passthrough, response: [{{hook: {{call: '{HERE}:explode', "
        f"body: false}}}}, {{status: {{map: {{201: 200}}}}}}]}}"
    )
    assert plan.apply_response(response(201)).status == 200


def test_a_hook_must_return_the_message() -> None:
    plan = plan_of(f"translate: {{request: [{{hook: '{HERE}:returns_none'}}]}}")
    with pytest.raises(TranslateError) as info:
        plan.apply_request(request(method="POST", body=b"{}"))
    assert str(info.value) == (
        f"request.hook: hook {HERE}:returns_none returned NoneType, not the TranslateRequest "
        "(return the message)"
    )


def returns_none(msg: TranslateRequest) -> None:
    msg.headers["X"] = "1"


def test_a_hook_may_return_a_new_message() -> None:
    plan = plan_of(
        f"translate: {{request: [{{hook: '{HERE}:replace'}}, {{json: [{{drop: [b]}}]}}]}}"
    )
    msg = plan.apply_request(request("/old", method="POST", body=b'{"a": 1, "b": 2}'))
    assert (msg.method, msg.target, loads(msg.body)) == ("PUT", "/new?x=1", {"a": 1})


def replace(msg: TranslateRequest) -> TranslateRequest:
    return TranslateRequest.from_target("PUT", "/new?x=1", msg.headers, body=msg.body)


# ---------------------------------------------------------------------------- messages


def test_request_copy_is_independent() -> None:
    msg = request("/a?x=1", headers={"A": "1"}, body=b'{"k": 1}')
    clone = msg.copy()
    clone.headers["A"] = "2"
    clone.query.append(("y", "2"))
    clone.json = {"k": 2}
    assert (msg.headers["A"], msg.target, msg.body) == ("1", "/a?x=1", b'{"k": 1}')
    assert clone.target == "/a?x=1&y=2"


def test_json_then_body_then_json() -> None:
    msg = request(method="POST", body=b'{"a": 1}')
    msg.json["a"] = 2  # type: ignore[index, call-overload]
    assert msg.body == b'{"a":2}'
    msg.json = [1]
    assert msg.body == b"[1]"
    assert msg.body_changed


# ---------------------------------------------------------------------------- doctests

MODULES = [
    "strangler.translate.base",
    "strangler.translate.codec",
    "strangler.translate.headers",
    "strangler.translate.json_body",
    "strangler.translate.json_values",
    "strangler.translate.jsonpath",
    "strangler.translate.path",
    "strangler.translate.query",
    "strangler.translate.registry",
    "strangler.translate.status",
    "strangler.translate.cli",
    "strangler.config.translate_values",
    "strangler.config.validate_translate",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module: ModuleType = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
