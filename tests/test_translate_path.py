"""``path:`` steps: rewrite from the route's parameters, regex, prefix strip/add, host."""

from __future__ import annotations

import pytest

from strangler.translate.base import TranslateError
from tests.translate_support import plan_of, problems_of, request

TEMPLATE = "/api/v1/customers/{id:int}/{rest:path}"

CASES = [
    # step, target, params, expected target
    ('{rewrite: "/customers/{id}"}', "/api/v1/customers/7?x=1", {"id": "7"}, "/customers/7?x=1"),
    ('{rewrite: "/customers/{id:int}/files"}', "/c/7", {"id": "7"}, "/customers/7/files"),
    ('{rewrite: "/c/{id}/{rest}"}', "/x", {"id": "a b/ü", "rest": "d/e f"},
     "/c/a%20b/%C3%BC/d/e%20f"),
    ("{prefix: {strip: /api/v1, add: /v2}}", "/api/v1/customers/7?a=b", {}, "/v2/customers/7?a=b"),
    ("{prefix: {strip: /api/v1/}}", "/api/v1/customers", {}, "/customers"),
    ("{prefix: {strip: /api/v1, add: /v2}}", "/api/v1", {}, "/v2"),
    ("{prefix: {add: /v2/}}", "/customers", {}, "/v2/customers"),
    ("{regex: {pattern: '^/api/v1/(\\w+)/(?P<id>\\d+)$', replace: '/\\1/\\g<id>/x'}}",
     "/api/v1/orders/9", {}, "/orders/9/x"),
    ("{regex: {pattern: '^/nomatch'}}", "/api/v1/orders/9", {}, "/api/v1/orders/9"),
    ("{host: new.example}", "/same?q", {}, "/same?q"),
]  # fmt: skip


@pytest.mark.parametrize(("step", "target", "params", "expected"), CASES)
def test_path_step(step: str, target: str, params: dict[str, str], expected: str) -> None:
    plan = plan_of(f"translate: {{request: [{{path: {step}}}]}}", TEMPLATE)
    msg = plan.apply_request(request(target, params=params, headers={"Host": "legacy"}))
    assert msg.target == expected
    assert msg.headers["Host"] == ("new.example" if "host" in step else "legacy")
    assert not plan.needs_request_body  # path steps never hold the body back


def test_host_with_a_rewrite() -> None:
    plan = plan_of(
        'translate: {request: [{path: {rewrite: "/c/{id}", host: "new:8443"}}]}', TEMPLATE
    )
    msg = plan.apply_request(request("/api/v1/customers/3", params={"id": "3"}))
    assert (msg.target, msg.headers["Host"]) == ("/c/3", "new:8443")


def test_strip_must_match_whole_segments() -> None:
    plan = plan_of("translate: {request: [{path: {prefix: {strip: /api/v1}}}]}")
    with pytest.raises(TranslateError) as info:
        plan.apply_request(request("/api/v10/x"))
    assert str(info.value) == "request.path: the path '/api/v10/x' does not start with '/api/v1'"
    assert info.value.status == 400


def test_rewrite_without_the_parameter_fails_clearly() -> None:
    plan = plan_of('translate: {request: [{path: {rewrite: "/c/{id}"}}]}', TEMPLATE)
    with pytest.raises(TranslateError, match=r"^request\.path: the route has no parameter 'id'$"):
        plan.apply_request(request("/x"))


# ----------------------------------------------------------- moving values between path and query

MOVES = [
    # path -> query: the client's own parameters are kept, the template's are set
    ('{rewrite: "/v2/orders?customer={id}"}', "/customers/7/orders", {"id": "7"},
     "/v2/orders?customer=7"),
    ('{rewrite: "/v2/orders?customer={id}"}', "/customers/7/orders?status=open&customer=9",
     {"id": "7"}, "/v2/orders?status=open&customer=7"),
    ('{rewrite: "/v2/orders?customer={id}&v=2"}', "/customers/a%20b/orders?page=2",
     {"id": "a b"}, "/v2/orders?page=2&customer=a%20b&v=2"),
    # query -> path: the parameter moves out of the query into the path
    ('{rewrite: "/customers/{query.customer}/orders"}', "/v2/orders?customer=7&status=open", {},
     "/customers/7/orders?status=open"),
    ('{rewrite: "/c/{query.c}/{id}"}', "/x?c=a/b&c=z", {"id": "1"}, "/c/a/b/1"),
]  # fmt: skip


@pytest.mark.parametrize(("step", "target", "params", "expected"), MOVES)
def test_rewrite_moves_values_between_path_and_query(
    step: str, target: str, params: dict[str, str], expected: str
) -> None:
    plan = plan_of(f"translate: {{request: [{{path: {step}}}]}}", "/customers/{id}/orders")
    assert plan.apply_request(request(target, params=params)).target == expected


def test_query_set_takes_route_parameters() -> None:
    plan = plan_of(
        'translate: {request: [{path: {rewrite: /v2/orders}}, {query: {set: {customer: "{id}",'
        ' v: "2"}}}]}',
        "/customers/{id:int}/orders",
    )
    msg = plan.apply_request(request("/customers/7/orders?v=1&page=3", params={"id": "7"}))
    assert msg.target == "/v2/orders?v=2&page=3&customer=7"


def test_moving_a_missing_query_parameter_is_a_400() -> None:
    plan = plan_of('translate: {request: [{path: {rewrite: "/customers/{query.customer}"}}]}')
    with pytest.raises(TranslateError) as info:
        plan.apply_request(request("/v2/orders?status=open"))
    assert str(info.value) == "request.path: the request has no query parameter 'customer'"
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("step", "problem"),
    [
        ("{rewrite: '/v2/orders?customer'}",
         "t.yaml:1: route 'r' translate.request[0].path.rewrite: 'customer' in the query part is "
         "not name=value (hint: like /v2/orders?customer={id}&v=2)"),
        ("{rewrite: '/v2/orders?c={nope}'}",
         "t.yaml:1: route 'r' translate: parameter 'nope', which the route's path template does "
         "not have (hint: its match.path '/c/{id}' has id)"),
        ("{rewrite: '/v2/{query.}'}",
         "t.yaml:1: route 'r' translate.request[0].path.rewrite: '/v2/{query.}' has a malformed "
         "parameter (hint: parameters look like {id} (a parameter of the route's match.path) or "
         "{query.name} (a query parameter, moved into the path))"),
        ("{rewrite: '/v2#x'}",
         "t.yaml:1: route 'r' translate.request[0].path.rewrite: '/v2#x' must be a path starting "
         "with '/', without spaces or '#' (hint: a query part like ?customer={id} is set on the "
         "client's query string)"),
        ("{regex: {pattern: '^/o/(\\d+)$', replace: '/v2/orders?id=\\1'}}",
         "t.yaml:1: route 'r' translate.request[0].path.regex.replace: '/v2/orders?id=\\\\1' must "
         "not contain spaces, '?' or '#' (hint: change the query with a query step, or use "
         "rewrite: /path?name={param})"),
    ],
)  # fmt: skip
def test_path_problems(step: str, problem: str) -> None:
    assert problems_of(f"translate: {{request: [{{path: {step}}}]}}", "/c/{id}") == [problem]


def test_query_set_parameter_is_checked_against_the_route() -> None:
    assert problems_of('translate: {request: [{query: {set: {c: "{idd}"}}}]}', "/c/{id}") == [
        "t.yaml:1: route 'r' translate: parameter 'idd', which the route's path template does "
        "not have (hint: did you mean 'id'?; its match.path '/c/{id}' has id)"
    ]
