"""``status:`` maps and ``error:`` bodies, and which responses must be buffered."""

from __future__ import annotations

import pytest

from strangler.translate.base import JSON
from tests.translate_support import dumps, loads, plan_of, request, response

ERROR = (
    "translate: {response: ["
    "{json: [{unwrap: data}]}, "
    "{error: {when: '>=400', body: {error: '$.message', detail: {code: '$.code', all: '$', "
    "lit: '$$money', n: 1, items: '$.items[*].id'}}}}]}"
)


@pytest.mark.parametrize(
    ("mapping", "status", "expected"),
    [("{201: 200}", 201, (200, "OK")), ("{201: 200}", 204, (204, "No Content")),
     ("{'409': 400, 299: 200}", 409, (400, "Bad Request")), ("{200: 299}", 200, (299, ""))],
)  # fmt: skip
def test_status_map(mapping: str, status: int, expected: tuple[int, str]) -> None:
    plan = plan_of(f"translate: {{response: [{{status: {{map: {mapping}}}}}]}}")
    msg = plan.apply_response(response(status, body=b"kept"))
    assert (msg.status, msg.reason, msg.body) == (*expected, b"kept")
    assert not plan.needs_response_body


def test_error_body_from_the_new_services_error() -> None:
    plan = plan_of(ERROR)
    body: JSON = {"message": "no such customer", "code": "E404", "items": [{"id": 1}, {"id": 2}]}
    msg = plan.apply_response(
        response(404, headers={"Content-Type": "application/problem+json"}, body=dumps(body))
    )
    expected: JSON = {
        "error": "no such customer",
        "detail": {"code": "E404", "all": body, "lit": "$money", "n": 1, "items": [1, 2]},
    }
    assert loads(msg.body) == expected
    assert msg.headers["Content-Type"] == "application/json; charset=utf-8"  # the default
    assert msg.headers["Content-Length"] == str(len(msg.body or b""))
    assert msg.status == 404


def test_error_body_when_the_error_is_not_json() -> None:
    plan = plan_of(ERROR)
    msg = plan.apply_response(
        response(502, headers={"Content-Type": "text/html"}, body=b"<h1>Bad gateway</h1>")
    )
    assert loads(msg.body) == {
        "error": None,
        "detail": {"code": None, "all": "<h1>Bad gateway</h1>", "lit": "$money", "n": 1,
                   "items": None},
    }  # fmt: skip


def test_error_body_for_an_empty_error_and_a_status() -> None:
    plan = plan_of(
        "translate: {response: [{error: {when: [404, 410], status: 400, body: {ok: false}}}]}"
    )
    msg = plan.apply_response(response(410, body=b""))
    assert (msg.status, msg.reason, loads(msg.body)) == (400, "Bad Request", {"ok": False})
    head = plan.apply_response(response(404, body=b"", req=request(method="HEAD")))
    assert (head.status, head.body) == (400, b"")  # a HEAD answer never gets a body


def test_success_skips_error_and_errors_skip_json() -> None:
    plan = plan_of(ERROR)
    ok = plan.apply_response(response(200, body=b'{"data": {"id": 1}}'))
    assert loads(ok.body) == {"id": 1}
    # The json step (unwrap data) does not run on an error: it would fail there.
    err = plan.apply_response(response(500, body=b'{"message": "boom"}'))
    assert loads(err.body)["error"] == "boom"  # type: ignore[index, call-overload]


def test_only_error_responses_need_buffering() -> None:
    plan = plan_of(
        "translate: {response: [{status: {map: {500: 404}}}, "
        "{error: {when: 4xx, body: {e: '$.m'}}}]}"
    )
    assert plan.needs_response_body
    assert [s for s in (200, 302, 404, 500, 503) if plan.needs_response_body_for(s)] == [404, 500]
    streaming = plan.apply_response(response(200, body=None))  # not read: the route streams it
    assert streaming.body is None
    assert streaming.status == 200
