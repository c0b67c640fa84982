"""``query:`` steps: rename, drop, set, map; order and bytes kept when untouched."""

from __future__ import annotations

import pytest

from tests.translate_support import plan_of, request

CASES = [
    # step, target, expected
    ("{rename: {cust: customer_id}}", "/o?a=1&cust=7&cust=8", "/o?a=1&customer_id=7&customer_id=8"),
    ("{drop: [debug, trace]}", "/o?debug=1&a=2&trace&debug=3", "/o?a=2"),
    ("{drop: debug}", "/o?debug", "/o"),
    ("{set: {v: '2'}}", "/o?v=1&a=x&v=3", "/o?v=2&a=x"),
    ("{set: {v: '2'}}", "/o?a=x", "/o?a=x&v=2"),
    ("{set: {v: '2'}}", "/o", "/o?v=2"),
    ("{map: {status: {OPEN: open, PAID: paid}}}", "/o?status=OPEN&status=ALL&s=OPEN",
     "/o?status=open&status=ALL&s=OPEN"),
    ("{set: {q: 'a b&c'}}", "/o", "/o?q=a%20b%26c"),
    ("{rename: {a: b}, drop: [b]}", "/o?a=1&b=2", "/o"),
    ("{drop: [b], rename: {a: b}}", "/o?a=1&b=2", "/o?b=1"),
]  # fmt: skip


@pytest.mark.parametrize(("step", "target", "expected"), CASES)
def test_query_step(step: str, target: str, expected: str) -> None:
    plan = plan_of(f"translate: {{request: [{{query: {step}}}]}}")
    assert plan.apply_request(request(target)).target == expected
    assert not plan.needs_request_body


@pytest.mark.parametrize("target", ["/o?b=%7E&a=1+2&c", "/o?", "/o?x=%2f"])
def test_an_untouched_query_goes_on_byte_for_byte(target: str) -> None:
    plan = plan_of("translate: {request: [{query: {drop: [absent]}}]}")
    assert plan.apply_request(request(target)).target == target
