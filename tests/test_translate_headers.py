"""``headers:`` steps on both sides, and ``rewrite_paths`` for Location/Content-Location/Link."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from strangler.translate.base import TranslateError, TranslateRequest
from strangler.translate.headers import rewrite_path
from tests.translate_support import plan_of, request, response

CASES = [
    # step, headers in, headers out (in order)
    ("{set: {X-Api-Version: '2'}}", [("x-api-version", "1"), ("X-Api-Version", "0"), ("A", "a")],
     [("X-Api-Version", "2"), ("A", "a")]),
    ("{rename: {X-Cust: X-Customer}}", [("X-Cust", "1"), ("X-Customer", "old"), ("x-cust", "2")],
     [("X-Customer", "1"), ("X-Customer", "2")]),
    ("{rename: {X-Absent: X-Other}}", [("X-Other", "kept")], [("X-Other", "kept")]),
    ("{remove: [X-Legacy, x-debug]}", [("X-Legacy", "1"), ("A", "a"), ("X-Debug", "2")],
     [("A", "a")]),
    ("{from_param: {X-Customer-Id: id}}", [], [("X-Customer-Id", "7")]),
    ("{remove: [A], set: {A: new}}", [("A", "old")], [("A", "new")]),
]  # fmt: skip


@pytest.mark.parametrize(("step", "before", "after"), CASES)
def test_request_headers(
    step: str, before: list[tuple[str, str]], after: list[tuple[str, str]]
) -> None:
    plan = plan_of(f"translate: {{request: [{{headers: {step}}}]}}", "/c/{id}")
    msg = plan.apply_request(request("/c/7", headers=before, params={"id": "7"}))
    assert list(msg.headers.items()) == after
    assert not plan.needs_request_body


def test_response_headers_and_from_param_uses_the_request() -> None:
    plan = plan_of(
        "translate: {response: [{headers: {set: {X-Served: strangler}, from_param: {X-Id: id}}}]}",
        "/c/{id}",
    )
    msg = plan.apply_response(response(req=request("/c/9", params={"id": "9"})))
    assert list(msg.headers.items()) == [("X-Served", "strangler"), ("X-Id", "9")]
    assert not plan.needs_response_body
    assert not plan.needs_response_body_for(200)


def test_from_param_without_the_parameter() -> None:
    plan = plan_of("translate: {request: [{headers: {from_param: {X-Id: id}}}]}", "/c/{id}")
    with pytest.raises(TranslateError, match=r"^request.headers: the route has no parameter 'id'$"):
        plan.apply_request(request("/c/7"))


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/customers/7", "/api/v1/customer/7"),
        ("/customers", "/api/v1/customer"),
        ("/customers/", "/api/v1/customer/"),
        ("/customersX/7", "/customersX/7"),
        ("/other/customers/7", "/other/customers/7"),
        ("http://proxy.example:8080/customers/7?x=1#f", "http://proxy.example:8080/api/v1/customer/7?x=1#f"),
        ("customers/7", "customers/7"),  # a relative reference is left alone
    ],
)  # fmt: skip
def test_rewrite_path(url: str, expected: str) -> None:
    assert rewrite_path(url, "/customers", "/api/v1/customer") == expected


def test_rewrite_paths_in_location_content_location_and_link() -> None:
    plan = plan_of(
        "translate: {response: [{headers: "
        "{rewrite_paths: {from: /customers, to: /api/v1/customer}}}]}"
    )
    msg = plan.apply_response(
        response(
            201,
            req=request("/api/v1/customer", headers={"Host": "h"}),
            headers=[
                ("Location", "/customers/7"),
                ("Content-Location", "http://new-crm:9000/customers/7"),
                ("Link", '</customers/7/orders>; rel="orders", </static/x>; rel="x"'),
                ("Link", "</customers?page=2>; rel=next"),
                ("X-Other", "/customers/7"),
            ],
        )
    )
    assert msg.headers.getall("Location") == ["/api/v1/customer/7"]
    # an absolute URL goes on the client's origin, never the new service's own host
    assert msg.headers["Content-Location"] == "http://h/api/v1/customer/7"
    assert msg.headers.getall("Link") == [
        '</api/v1/customer/7/orders>; rel="orders", </static/x>; rel="x"',
        "</api/v1/customer?page=2>; rel=next",
    ]
    assert msg.headers["X-Other"] == "/customers/7"


@pytest.mark.parametrize(
    ("absolute", "url", "expected"),
    [
        # unset: the new service's form, but never its own host
        ("", "/customers/7", "/api/v1/customer/7"),
        ("", "http://new-crm:9000/customers/7?a=1", "https://shop.example/api/v1/customer/7?a=1"),
        # true: what a legacy app answering absolute URLs sent, on the client's origin
        ("absolute: true", "/customers/7", "https://shop.example/api/v1/customer/7"),
        ("absolute: true", "http://new-crm:9000/customers/7", "https://shop.example/api/v1/customer/7"),
        # false: always relative
        ("absolute: false", "http://new-crm:9000/customers/7#x", "/api/v1/customer/7#x"),
        # outside `from`: left alone in every form
        ("absolute: true", "https://login.example/start", "https://login.example/start"),
    ],
)  # fmt: skip
def test_rewrite_paths_keeps_the_form_legacy_answers_with(
    absolute: str, url: str, expected: str
) -> None:
    plan = plan_of(
        "translate: {response: [{headers: "
        f"{{rewrite_paths: {{from: /customers, to: /api/v1/customer, {absolute}}}}}}}]}}"
    )
    req = TranslateRequest.from_target(
        "GET", "/api/v1/customer/7", CIMultiDict(), origin="https://shop.example"
    )
    msg = plan.apply_response(response(303, headers={"Location": url}, req=req))
    assert msg.headers["Location"] == expected


def test_without_an_origin_the_host_header_names_the_client_origin() -> None:
    plan = plan_of(
        "translate: {response: [{headers: "
        "{rewrite_paths: {from: /customers, to: /api/v1/customer, absolute: true}}}]}"
    )
    req = request("/api/v1/customer/7", headers={"Host": "proxy.example:8080"})
    msg = plan.apply_response(response(201, headers={"Location": "/customers/7"}, req=req))
    assert msg.headers["Location"] == "http://proxy.example:8080/api/v1/customer/7"
