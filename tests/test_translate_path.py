"""``path:`` steps: rewrite from the route's parameters, regex, prefix strip/add, host."""

from __future__ import annotations

import pytest

from strangler.translate.base import TranslateError
from tests.translate_support import plan_of, request

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
