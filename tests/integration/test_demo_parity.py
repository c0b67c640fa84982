"""The demo's anti-corruption layer: through the proxy, billing (v2) answers as legacy (v1).

Both demo apps run on free 127.0.0.1 ports, and a real proxy runs the packaged
``demo.yaml`` with its packaged ``routes/demo.yaml`` (only the addresses changed).
For every seeded invoice and customer, plus unknown ids, the answer legacy gives
directly is compared with the answer the proxy gives from billing, translated.

What "equal" means here: same status, same ``Content-Type``, and a body that is the
same JSON document with the same keys in the same order. The bytes differ only in
insignificant whitespace: legacy writes ``{"id": 5001, ...}`` (Python's default
separators), the translation writes compact JSON (``{"id":5001,...}``); the test
checks the translated bytes are exactly legacy's document written compactly.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Final

import aiohttp
import pytest
from multidict import CIMultiDictProxy
from pytest_aiohttp import AiohttpServer

from strangler.demo.data import SEED_CUSTOMERS, SEED_INVOICES
from strangler.demo.legacy import build_legacy_app
from strangler.demo.newsvc import build_new_app
from strangler.demo.run import DEMO_CONFIG
from tests.conftest import MakeProxy, RunningProxy

ROUTES: Final = DEMO_CONFIG.parent / "routes" / "demo.yaml"

INVOICE_PATHS: Final = [
    *(f"/api/v1/invoices/{i.id}" for i in SEED_INVOICES),
    *(f"/api/v1/invoices/{n}" for n in (0, 4999, 5008, 7, 99999999999)),
    "/api/v1/invoices/05001",  # a zero-padded id is still an id: 5001
]
CUSTOMER_PATHS: Final = [
    *(f"/api/v1/customers/{c.id}/invoices" for c in SEED_CUSTOMERS),
    *(f"/api/v1/customers/{n}/invoices" for n in (0, 7, 99)),
]
TRANSLATED: Final = [*INVOICE_PATHS, *CUSTOMER_PATHS]
# Not claimed by the billing routes (no int id, or another method): legacy answers.
UNTRANSLATED: Final = [("GET", "/api/v1/invoices/abc"), ("POST", "/api/v1/invoices/5001")]


class Demo:
    """Legacy and billing (demo apps) and the proxy with the demo's routes."""

    def __init__(self, legacy: str, billing: str, proxy: RunningProxy) -> None:
        self.legacy = legacy
        self.billing = billing
        self.proxy = proxy


@pytest.fixture
async def demo(aiohttp_server: AiohttpServer, make_proxy: MakeProxy) -> Demo:
    legacy = str((await aiohttp_server(build_legacy_app())).make_url("")).rstrip("/")
    billing = str((await aiohttp_server(build_new_app())).make_url("")).rstrip("/")
    text = DEMO_CONFIG.read_text(encoding="utf-8")
    for old, new in (
        ("127.0.0.1:8080", "127.0.0.1:0"),
        ("127.0.0.1:8081", "127.0.0.1:0"),
        ("http://127.0.0.1:8001", legacy),
        ("http://127.0.0.1:8002", billing),
        ("include: [routes/demo.yaml]", f"include: [{ROUTES}]"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    proxy = await make_proxy(text)
    routes = {r.name for r in proxy.server.holder.current.routes}
    assert {"invoices-read", "customer-invoices"} <= routes
    return Demo(legacy, billing, proxy)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as s:
        yield s


# customer-invoices is on autopilot (it starts on legacy): a tester's override sends the
# request to billing, so the translation is what answers. Routes without overrides
# ignore the header, and legacy ignores it too.
TO_BILLING: Final = {"X-Strangler-Backend": "billing"}


async def fetch(
    s: aiohttp.ClientSession, method: str, url: str
) -> tuple[int, CIMultiDictProxy[str], bytes]:
    async with s.request(method, url, allow_redirects=False, headers=TO_BILLING) as r:
        return r.status, r.headers, await r.read()


def compact(body: bytes) -> bytes:
    """Legacy's JSON document, written as the translation writes JSON."""
    doc = json.loads(body)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def ordered(body: bytes) -> object:
    """The document with every object as its list of (key, value) pairs: order counts."""
    return json.loads(body, object_pairs_hook=list)


@pytest.mark.parametrize("path", TRANSLATED)
async def test_translated_answers_equal_legacy(
    demo: Demo, session: aiohttp.ClientSession, path: str
) -> None:
    old_status, old_headers, old_body = await fetch(session, "GET", demo.legacy + path)
    status, headers, body = await fetch(session, "GET", demo.proxy.url + path)
    # Billing answered (a failure on the new side would fall back to legacy and make
    # this comparison trivially true), and billing itself does not speak v1.
    assert headers["X-Served-By"] == "new-billing", body
    assert old_headers["X-Served-By"] == "legacy"
    assert status == old_status, body
    assert (
        headers["Content-Type"] == old_headers["Content-Type"] == "application/json; charset=utf-8"
    )
    assert ordered(body) == ordered(old_body)
    assert body == compact(old_body)
    assert headers["Content-Length"] == str(len(body))
    assert "Content-Encoding" not in headers


async def test_billing_itself_answers_in_its_own_shape(
    demo: Demo, session: aiohttp.ClientSession
) -> None:
    """The parity above is the proxy's work: billing's own answers differ from legacy's."""
    status, _, body = await fetch(session, "GET", demo.billing + "/v2/invoices/5004")
    assert status == 200
    doc = json.loads(body)
    assert (doc["invoiceId"], doc["state"], doc["amounts"]["total"]) == (5004, "past_due", "23.97")
    status, _, body = await fetch(session, "GET", demo.legacy + "/api/v1/invoices/5004")
    assert json.loads(body)["status"] == "OVERDUE"
    for path in (INVOICE_PATHS[0], CUSTOMER_PATHS[0]):
        status, _, body = await fetch(session, "GET", demo.billing + path)
        assert status == 404
        assert json.loads(body)["code"] == "NOT_FOUND"


@pytest.mark.parametrize("path", [INVOICE_PATHS[0], "/api/v1/invoices/4999", CUSTOMER_PATHS[0]])
async def test_head_status_and_type_equal_legacy(
    demo: Demo, session: aiohttp.ClientSession, path: str
) -> None:
    old_status, old_headers, old_body = await fetch(session, "HEAD", demo.legacy + path)
    status, headers, body = await fetch(session, "HEAD", demo.proxy.url + path)
    assert headers["X-Served-By"] == "new-billing"
    assert status == old_status
    assert body == old_body == b""
    assert headers["Content-Type"] == old_headers["Content-Type"]


async def test_head_content_length_is_the_translated_gets(
    demo: Demo, session: aiohttp.ClientSession
) -> None:
    path = INVOICE_PATHS[0]
    _, headers, _ = await fetch(session, "HEAD", demo.proxy.url + path)
    _, _, body = await fetch(session, "GET", demo.proxy.url + path)
    assert headers.get("Content-Length") in (None, str(len(body)))


@pytest.mark.parametrize(("method", "path"), UNTRANSLATED)
async def test_unclaimed_invoice_requests_stay_on_legacy(
    demo: Demo, session: aiohttp.ClientSession, method: str, path: str
) -> None:
    old = await fetch(session, method, demo.legacy + path)
    status, headers, body = await fetch(session, method, demo.proxy.url + path)
    assert headers["X-Served-By"] == "legacy"
    assert (status, body) == (old[0], old[2])
    assert status in (404, 405)


async def test_no_translation_failed(demo: Demo, session: aiohttp.ClientSession) -> None:
    for path in TRANSLATED:
        await fetch(session, "GET", demo.proxy.url + path)
    registry = demo.proxy.server.metrics.registry
    for route in ("invoices-read", "customer-invoices"):
        for side in ("request", "response"):
            labels = {"route": route, "side": side}
            assert not registry.get_sample_value("strangler_translate_errors_total", labels)
        assert not registry.get_sample_value(
            "strangler_fallbacks_total", {"route": route, "failure": "5xx"}
        )
