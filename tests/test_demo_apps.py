"""The demo's sample services, served on real sockets, and its route files."""

from __future__ import annotations

import html
import io
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from importlib.resources import files
from pathlib import Path
from typing import Final

import pytest
import yaml
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient

from strangler.config import load_config
from strangler.demo.data import (
    INVOICE_STATES_V2,
    INVOICE_STATUSES,
    ORDER_STATUSES,
    SEED_CUSTOMERS,
    SEED_INVOICES,
    SEED_ORDERS,
    amount_v2,
    invoice_v1,
    invoice_v2,
)
from strangler.demo.legacy import (
    LEGACY_STORE,
    REPORT_HEADER,
    REPORT_ROWS,
    build_legacy_app,
    iter_report_chunks,
)
from strangler.demo.newsvc import build_new_app
from strangler.demo.run import DEMO_CONFIG
from strangler.translate import TranslateRequest, TranslateResponse, build_plan

Client = TestClient[web.Request, web.Application]

NOW: Final = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)
REPO: Final = Path(__file__).resolve().parents[1]
JSON: Final = "application/json"


@pytest.fixture
async def legacy(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(build_legacy_app(clock=lambda: NOW))


@pytest.fixture
async def new(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(build_new_app())


async def _json(resp: ClientResponse) -> object:
    """Assert the response is JSON and return the decoded body."""
    assert resp.content_type == JSON
    return await resp.json()


# --- the seed ---


def test_seed_is_consistent() -> None:
    orders = {o.id: o for o in SEED_ORDERS}
    customers = {c.id for c in SEED_CUSTOMERS}
    assert all(o.customer_id in customers for o in SEED_ORDERS)
    assert {o.status for o in SEED_ORDERS} == ORDER_STATUSES
    assert {i.status for i in SEED_INVOICES} == INVOICE_STATUSES
    for invoice in SEED_INVOICES:
        order = orders[invoice.order_id]
        assert order.invoice_id == invoice.id
        assert (invoice.customer_id, invoice.currency) == (order.customer_id, order.currency)
        assert invoice.net_cents == order.total_cents
    invoiced = {o.id for o in SEED_ORDERS if o.invoice_id is not None}
    assert invoiced == {i.order_id for i in SEED_INVOICES}


def test_invoice_wire_shape() -> None:
    assert invoice_v1(SEED_INVOICES[0]) == {
        "id": 5001,
        "number": "INV-2024-0001",
        "order_id": 1001,
        "customer_id": 1,
        "status": "PAID",
        "currency": "EUR",
        "net_cents": 12450,
        "tax_cents": 2490,
        "total_cents": 14940,
        "issued_on": "2024-01-16",
        "due_on": "2024-02-15",
        "paid_on": "2024-02-02",
    }


# --- legacy: pages and oddities ---


async def test_legacy_health(legacy: Client) -> None:
    resp = await legacy.get("/health")
    assert resp.status == 200
    assert await _json(resp) == {"status": "ok", "service": "legacy"}
    assert resp.headers["X-Served-By"] == "legacy"


async def test_legacy_index_links_endpoints_that_answer(legacy: Client) -> None:
    resp = await legacy.get("/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    links = [html.unescape(h) for h in re.findall(r'href="([^"]+)"', await resp.text())]
    assert "/api/v1/invoices/5001" in links
    assert "/legacy/report.csv" in links
    for link in links:
        linked = await legacy.get(link, allow_redirects=False)
        assert linked.status in (200, 302), link
        await linked.read()


async def test_legacy_old_home_redirects(legacy: Client) -> None:
    resp = await legacy.get("/old-home", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "/"
    assert resp.headers["X-Served-By"] == "legacy"

    followed = await legacy.get("/old-home")
    assert followed.status == 200
    assert followed.url.path == "/"
    assert "Acme ERP, v1" in await followed.text()


async def test_legacy_login_sets_two_cookies(legacy: Client) -> None:
    resp = await legacy.get("/login")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    set_cookies = resp.headers.getall("Set-Cookie")
    assert set_cookies == [
        "legacy_session=S-000001; HttpOnly; Path=/; SameSite=Lax",
        f"csrf_token={resp.cookies['csrf_token'].value}; Path=/login; SameSite=Strict",
    ]
    token = resp.cookies["csrf_token"].value
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert f'name="csrf_token" value="{token}"' in await resp.text()

    again = await legacy.get("/login")
    assert again.cookies["legacy_session"].value == "S-000002"
    assert again.cookies["csrf_token"].value != token


async def test_legacy_login_post(legacy: Client) -> None:
    token = (await legacy.get("/login")).cookies["csrf_token"].value
    form = {"csrf_token": token, "username": "ada", "password": "engine"}

    resp = await legacy.post("/login", data=form, allow_redirects=False)
    assert resp.status == 303
    assert resp.headers["Location"] == "/"
    assert resp.headers.getall("Set-Cookie") == ["legacy_user=ada; HttpOnly; Path=/; SameSite=Lax"]

    no_password = await legacy.post("/login", data={**form, "password": ""})
    assert no_password.status == 400
    assert await _json(no_password) == {"error": "username and password are required"}

    wrong_token = await legacy.post("/login", data={**form, "csrf_token": "0" * 32})
    assert wrong_token.status == 400
    legacy.session.cookie_jar.clear()
    no_cookie = await legacy.post("/login", data=form)
    assert no_cookie.status == 400
    assert await _json(no_cookie) == {
        "error": "csrf token missing or does not match the csrf_token cookie"
    }


async def test_legacy_report_is_streamed_csv(legacy: Client) -> None:
    chunks = list(iter_report_chunks())
    assert len(chunks) > 10  # the app writes it piece by piece

    resp = await legacy.get("/legacy/report.csv")
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    assert resp.charset == "utf-8"
    assert resp.headers["Content-Disposition"] == 'attachment; filename="report.csv"'
    assert resp.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in resp.headers
    assert resp.headers["X-Served-By"] == "legacy"
    body = await resp.read()
    assert body == b"".join(chunks)
    assert 200_000 < len(body) < 1_000_000
    lines = body.splitlines(keepends=True)
    assert lines[0] == REPORT_HEADER
    assert len(lines) == REPORT_ROWS + 1
    assert lines[1] == b"1,2023-01-01,2,PUNCHCARD-BOX,8,1999,15992,PAID\n"


async def test_legacy_report_head_has_no_body(legacy: Client) -> None:
    resp = await legacy.head("/legacy/report.csv")
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    assert await resp.read() == b""


# --- legacy: customers ---


async def test_list_customers(legacy: Client) -> None:
    resp = await legacy.get("/api/v1/customers")
    assert resp.status == 200
    body = await _json(resp)
    assert isinstance(body, dict)
    assert [c["id"] for c in body["customers"]] == [1, 2, 3, 4, 5, 6]


async def test_get_customer(legacy: Client) -> None:
    resp = await legacy.get("/api/v1/customers/3")
    assert resp.status == 200
    assert await _json(resp) == {
        "id": 3,
        "name": "Noether Algebra GmbH",
        "email": "buchhaltung@noether.example",
        "country": "DE",
        "created_at": "2020-01-10T08:15:00Z",
    }


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/api/v1/customers/99", "customer 99 not found"),
        ("/api/v1/customers/abc", "no such endpoint: /api/v1/customers/abc"),
        ("/api/v1/orders/42", "order 42 not found"),
        ("/api/v1/invoices/42", "invoice 42 not found"),
        ("/api/v1/customers/99/invoices", "customer 99 not found"),
        ("/api/v2/customers", "no such endpoint: /api/v2/customers"),
    ],
)
async def test_legacy_not_found(legacy: Client, path: str, error: str) -> None:
    resp = await legacy.get(path)
    assert resp.status == 404
    assert await _json(resp) == {"error": error}
    assert resp.headers["X-Served-By"] == "legacy"


async def test_create_customer(legacy: Client) -> None:
    new_customer = {"name": "Hypatia Geometry SA", "email": "a@hypatia.example", "country": "GR"}
    resp = await legacy.post("/api/v1/customers", json=new_customer)
    assert resp.status == 201
    assert resp.headers["Location"] == "/api/v1/customers/7"
    expected = {"id": 7, **new_customer, "created_at": "2024-05-01T12:30:15Z"}
    assert await _json(resp) == expected

    assert await _json(await legacy.get("/api/v1/customers/7")) == expected
    listed = await _json(await legacy.get("/api/v1/customers"))
    assert isinstance(listed, dict)
    assert listed["customers"][-1] == expected


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "request body is not valid JSON"),
        (b"", "request body is not valid JSON"),
        (b"\xff\xfe", "request body is not valid JSON"),
        (b"[1, 2]", "request body must be a JSON object"),
        (b'{"name": "X", "email": "x@y.z"}', "missing field 'country'"),
        (
            b'{"name": "X", "email": "x@y.z", "country": "DE", "id": 1}',
            "unknown field 'id'",
        ),
        (
            b'{"name": "  ", "email": "x@y.z", "country": "DE"}',
            "name must be a non-empty string of at most 200 characters",
        ),
        (
            b'{"name": 5, "email": "x@y.z", "country": "DE"}',
            "name must be a non-empty string of at most 200 characters",
        ),
        (b'{"name": "X", "email": "x.y.z", "country": "DE"}', "email must be an email address"),
        (b'{"name": "X", "email": "x@y@z", "country": "DE"}', "email must be an email address"),
        (b'{"name": "X", "email": null, "country": "DE"}', "email must be an email address"),
        (
            b'{"name": "X", "email": "x@y.z", "country": "de"}',
            "country must be a two-letter ISO code like 'DE'",
        ),
    ],
)
async def test_create_customer_rejects(legacy: Client, body: bytes, error: str) -> None:
    resp = await legacy.post(
        "/api/v1/customers", data=body, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert await _json(resp) == {"error": error}
    assert len(legacy.app[LEGACY_STORE].customers) == len(SEED_CUSTOMERS)


async def test_body_too_large_is_a_json_413(legacy: Client) -> None:
    too_big = io.BytesIO(b"x" * (1024**2 + 1))  # aiohttp's default client_max_size is 1 MiB
    resp = await legacy.post("/api/v1/customers", data=too_big)
    assert resp.status == 413
    assert await _json(resp) == {"error": "request entity too large"}


async def test_update_customer_is_partial(legacy: Client) -> None:
    resp = await legacy.put("/api/v1/customers/2", json={"email": "ar@hopper.example"})
    assert resp.status == 200
    body = await _json(resp)
    assert isinstance(body, dict)
    assert body["email"] == "ar@hopper.example"
    assert body["name"] == "Hopper Compilers Inc"
    assert await _json(await legacy.get("/api/v1/customers/2")) == body


@pytest.mark.parametrize(
    ("path", "body", "status", "error"),
    [
        ("/api/v1/customers/99", {"name": "X"}, 404, "customer 99 not found"),
        ("/api/v1/customers/2", {}, 400, "body must set at least one of: name, email, country"),
        ("/api/v1/customers/2", {"vat": "X"}, 400, "unknown field 'vat'"),
        (
            "/api/v1/customers/2",
            {"country": "USA"},
            400,
            "country must be a two-letter ISO code like 'DE'",
        ),
    ],
)
async def test_update_customer_rejects(
    legacy: Client, path: str, body: dict[str, object], status: int, error: str
) -> None:
    resp = await legacy.put(path, json=body)
    assert resp.status == status
    assert await _json(resp) == {"error": error}
    assert legacy.app[LEGACY_STORE].customers[2] == SEED_CUSTOMERS[1]


async def test_delete_customer(legacy: Client) -> None:
    resp = await legacy.delete("/api/v1/customers/6")
    assert resp.status == 204
    assert await resp.read() == b""
    assert resp.headers["X-Served-By"] == "legacy"
    assert (await legacy.get("/api/v1/customers/6")).status == 404
    assert (await legacy.delete("/api/v1/customers/6")).status == 404


async def test_delete_customer_with_orders_conflicts(legacy: Client) -> None:
    resp = await legacy.delete("/api/v1/customers/1")
    assert resp.status == 409
    assert await _json(resp) == {"error": "customer 1 has orders and cannot be deleted"}
    assert (await legacy.get("/api/v1/customers/1")).status == 200


async def test_apps_do_not_share_state(aiohttp_client: AiohttpClient) -> None:
    first = await aiohttp_client(build_legacy_app())
    second = await aiohttp_client(build_legacy_app())
    assert (await first.delete("/api/v1/customers/6")).status == 204
    assert (await second.get("/api/v1/customers/6")).status == 200


# --- legacy: orders ---


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("", [o.id for o in SEED_ORDERS]),
        ("?customer_id=2", [1004, 1005, 1006]),
        ("?status=OPEN", [1003, 1008, 1011]),
        ("?customer_id=1&status=SHIPPED", [1001, 1002]),
        ("?customer_id=6", []),
        ("?customer_id=&status=", [o.id for o in SEED_ORDERS]),
    ],
)
async def test_list_orders(legacy: Client, query: str, ids: list[int]) -> None:
    resp = await legacy.get("/api/v1/orders" + query)
    assert resp.status == 200
    body = await _json(resp)
    assert isinstance(body, dict)
    assert [o["id"] for o in body["orders"]] == ids


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("?customer_id=x", "customer_id must be an integer"),
        ("?customer_id=-1", "customer_id must be an integer"),
        ("?status=open", "status must be one of: CANCELLED, OPEN, SHIPPED"),
    ],
)
async def test_list_orders_rejects(legacy: Client, query: str, error: str) -> None:
    resp = await legacy.get("/api/v1/orders" + query)
    assert resp.status == 400
    assert await _json(resp) == {"error": error}


async def test_get_order(legacy: Client) -> None:
    resp = await legacy.get("/api/v1/orders/1004")
    assert resp.status == 200
    assert await _json(resp) == {
        "id": 1004,
        "customer_id": 2,
        "status": "SHIPPED",
        "currency": "USD",
        "lines": [
            {
                "sku": "TAPE-REEL-9T",
                "quantity": 12,
                "unit_price_cents": 1450,
                "line_total_cents": 17400,
            },
            {
                "sku": "LICENSE-COBOL",
                "quantity": 1,
                "unit_price_cents": 49900,
                "line_total_cents": 49900,
            },
        ],
        "total_cents": 67300,
        "invoice_id": 5003,
        "created_at": "2024-01-28T18:20:00Z",
    }


async def test_create_order(legacy: Client) -> None:
    order = {"customer_id": 6, "lines": [{"sku": "GYRO", "quantity": 3, "unit_price_cents": 1250}]}
    resp = await legacy.post("/api/v1/orders", json=order)
    assert resp.status == 201
    assert resp.headers["Location"] == "/api/v1/orders/1012"
    created = await _json(resp)
    assert created == {
        "id": 1012,
        "customer_id": 6,
        "status": "OPEN",
        "currency": "EUR",
        "lines": [
            {"sku": "GYRO", "quantity": 3, "unit_price_cents": 1250, "line_total_cents": 3750}
        ],
        "total_cents": 3750,
        "invoice_id": None,
        "created_at": "2024-05-01T12:30:15Z",
    }
    assert await _json(await legacy.get("/api/v1/orders/1012")) == created
    # Orders do not issue invoices in legacy, and customer 6 now cannot be deleted.
    assert await _json(await legacy.get("/api/v1/customers/6/invoices")) == {
        "customer_id": 6,
        "invoices": [],
    }
    assert (await legacy.delete("/api/v1/customers/6")).status == 409


_LINE: Final = {"sku": "GYRO", "quantity": 1, "unit_price_cents": 100}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"lines": [_LINE]}, "missing field 'customer_id'"),
        ({"customer_id": "1", "lines": [_LINE]}, "customer_id must be an integer"),
        ({"customer_id": True, "lines": [_LINE]}, "customer_id must be an integer"),
        ({"customer_id": 99, "lines": [_LINE]}, "unknown customer 99"),
        ({"customer_id": 1}, "lines must be a list of 1 to 100 order lines"),
        ({"customer_id": 1, "lines": []}, "lines must be a list of 1 to 100 order lines"),
        ({"customer_id": 1, "lines": ["GYRO"]}, "lines[0] must be an object"),
        (
            {"customer_id": 1, "lines": [_LINE, {**_LINE, "sku": ""}]},
            "lines[1].sku must be a non-empty string",
        ),
        (
            {"customer_id": 1, "lines": [{**_LINE, "quantity": 0}]},
            "lines[0].quantity must be between 1 and 10000",
        ),
        (
            {"customer_id": 1, "lines": [{**_LINE, "quantity": 1.5}]},
            "lines[0].quantity must be an integer",
        ),
        (
            {"customer_id": 1, "lines": [{**_LINE, "unit_price_cents": -1}]},
            "lines[0].unit_price_cents must be at least 0",
        ),
        ({"customer_id": 1, "lines": [{**_LINE, "note": "x"}]}, "unknown field 'note'"),
        (
            {"customer_id": 1, "lines": [_LINE], "currency": "JPY"},
            "currency must be one of: EUR, GBP, USD",
        ),
    ],
)
async def test_create_order_rejects(legacy: Client, body: dict[str, object], error: str) -> None:
    resp = await legacy.post("/api/v1/orders", json=body)
    assert resp.status == 400
    assert await _json(resp) == {"error": error}
    assert len(legacy.app[LEGACY_STORE].orders) == len(SEED_ORDERS)


async def test_wrong_method_is_a_json_405(legacy: Client) -> None:
    resp = await legacy.delete("/api/v1/orders/1001")
    assert resp.status == 405
    assert set(resp.headers["Allow"].split(",")) == {"GET", "HEAD"}
    assert await _json(resp) == {"error": "method DELETE not allowed on /api/v1/orders/1001"}
    assert resp.headers["X-Served-By"] == "legacy"


# --- legacy: invoices ---


async def test_legacy_invoices(legacy: Client) -> None:
    resp = await legacy.get("/api/v1/invoices/5003")
    assert resp.status == 200
    assert await _json(resp) == invoice_v1(SEED_INVOICES[2])

    resp = await legacy.get("/api/v1/customers/2/invoices")
    assert resp.status == 200
    assert await _json(resp) == {
        "customer_id": 2,
        "invoices": [invoice_v1(SEED_INVOICES[2]), invoice_v1(SEED_INVOICES[3])],
    }


# --- the new billing service: its own model (v2) ---


def test_invoice_v2_shape() -> None:
    assert invoice_v2(SEED_INVOICES[0]) == {
        "invoiceId": 5001,
        "reference": "INV-2024-0001",
        "orderId": 1001,
        "customer": {"id": 1},
        "state": "paid",
        "amounts": {"net": "124.50", "tax": "24.90", "total": "149.40", "currency": "EUR"},
        "issuedAt": "2024-01-16T00:00:00Z",
        "dueDate": "2024-02-15",
        "paidAt": "2024-02-02T00:00:00Z",
    }
    assert invoice_v2(SEED_INVOICES[1])["paidAt"] is None


def test_v2_states_cover_every_legacy_status_once() -> None:
    assert set(INVOICE_STATES_V2) == INVOICE_STATUSES
    assert len(set(INVOICE_STATES_V2.values())) == len(INVOICE_STATUSES)
    assert INVOICE_STATES_V2["OVERDUE"] == "past_due"


@pytest.mark.parametrize(
    ("cents", "text"),
    [(0, "0.00"), (5, "0.05"), (99, "0.99"), (100, "1.00"), (14940, "149.40"), (-1205, "-12.05")],
)
def test_amount_v2_is_exact(cents: int, text: str) -> None:
    assert amount_v2(cents) == text
    assert Decimal(text) * 100 == cents  # the way back is exact too


async def test_new_health(new: Client) -> None:
    resp = await new.get("/health")
    assert resp.status == 200
    assert await _json(resp) == {"status": "ok", "service": "new-billing"}
    assert resp.headers["X-Served-By"] == "new-billing"


async def test_new_invoices(new: Client) -> None:
    for invoice in SEED_INVOICES:
        resp = await new.get(f"/v2/invoices/{invoice.id}")
        assert resp.status == 200
        assert resp.headers["X-Served-By"] == "new-billing"
        assert await _json(resp) == invoice_v2(invoice)

    resp = await new.get("/v2/customers/2/invoices")
    assert resp.status == 200
    assert await _json(resp) == {
        "customer": {"id": 2},
        "count": 2,
        "items": [invoice_v2(SEED_INVOICES[2]), invoice_v2(SEED_INVOICES[3])],
    }

    resp = await new.get("/v2/customers/6/invoices")
    assert resp.status == 200
    assert await _json(resp) == {"customer": {"id": 6}, "count": 0, "items": []}


async def test_new_head_has_no_body(new: Client) -> None:
    resp = await new.head("/v2/invoices/5001")
    assert resp.status == 200
    assert await resp.read() == b""


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "message"),
    [
        ("GET", "/v2/invoices/4999", 404, "NOT_FOUND", "invoice 4999 not found"),
        ("GET", "/v2/customers/7/invoices", 404, "NOT_FOUND", "customer 7 not found"),
        ("GET", "/v2/invoices/abc", 404, "NOT_FOUND", "no such endpoint: /v2/invoices/abc"),
        # Billing does not speak legacy's API: that is the proxy's job.
        (
            "GET",
            "/api/v1/invoices/5001",
            404,
            "NOT_FOUND",
            "no such endpoint: /api/v1/invoices/5001",
        ),
        ("GET", "/legacy/report.csv", 404, "NOT_FOUND", "no such endpoint: /legacy/report.csv"),
        (
            "PUT",
            "/v2/invoices/5001",
            405,
            "METHOD_NOT_ALLOWED",
            "method PUT not allowed on /v2/invoices/5001",
        ),
    ],
)
async def test_new_errors(
    new: Client, method: str, path: str, status: int, code: str, message: str
) -> None:
    resp = await new.request(method, path)
    assert resp.status == status
    assert await _json(resp) == {"code": code, "message": message}
    assert resp.headers["X-Served-By"] == "new-billing"
    if status == 405:
        assert resp.headers["Allow"] == "GET,HEAD"


async def test_new_does_not_share_state_with_legacy(legacy: Client, new: Client) -> None:
    # A customer created through legacy is unknown to billing (the divergence a
    # shadow comparison is meant to catch).
    resp = await legacy.post(
        "/api/v1/customers", json={"name": "N", "email": "n@x.example", "country": "SE"}
    )
    assert resp.status == 201
    created = await _json(resp)
    assert isinstance(created, dict)
    resp = await new.get(f"/v2/customers/{created['id']}/invoices")
    assert resp.status == 404


# --- the route files ---

_PACKAGE: Final = files("strangler.demo")


def test_route_file_copies_are_byte_identical() -> None:
    packaged = _PACKAGE.joinpath("routes/demo.yaml").read_bytes()
    assert (REPO / "routes" / "demo.yaml").read_bytes() == packaged


def _demo_config() -> dict[str, object]:
    config = yaml.safe_load(_PACKAGE.joinpath("demo.yaml").read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


def _demo_routes() -> list[dict[str, object]]:
    text = _PACKAGE.joinpath("routes/demo.yaml").read_text(encoding="utf-8")
    routes = yaml.safe_load(text)["routes"]
    assert isinstance(routes, list)
    return routes


def test_demo_config() -> None:
    config = _demo_config()
    assert config["listen"] == "127.0.0.1:8080"
    assert config["admin"] == {"listen": "127.0.0.1:8081"}
    assert config["upstreams"] == {
        "legacy": "http://127.0.0.1:8001",
        "billing": "http://127.0.0.1:8002",
    }
    # The include is relative to demo.yaml, and resolves to the packaged route file.
    assert config["include"] == ["routes/demo.yaml"]
    assert _PACKAGE.joinpath("routes/demo.yaml").is_file()


def test_demo_routes() -> None:
    routes = _demo_routes()
    upstreams = _demo_config()["upstreams"]
    assert isinstance(upstreams, dict)
    by_name = {r["name"]: r for r in routes}
    assert len(by_name) == len(routes)
    autopilot = {"canary", "overrides", "shadow", "migrate"}  # a route moving by itself
    for route in routes:
        # Whatever billing answers goes through the anti-corruption layer.
        to_billing = route["to"] == "billing" or "canary" in route
        translated = {"translate"} if to_billing else set()
        moving = autopilot if "migrate" in route else set()
        assert set(route) == {"name", "owner", "match", "to", *translated, *moving}
        assert route["to"] in upstreams
    pilot = by_name["customer-invoices"]
    assert pilot["to"] == "legacy"
    assert pilot["canary"] == {"to": "billing", "percent": "0%", "sticky": "header:X-User-Id"}
    plan = pilot["migrate"]
    assert isinstance(plan, dict)
    assert [next(iter(stage)) for stage in plan["stages"]] == [
        "shadow",
        "canary",
        "migrated",
    ]
    invoices = dict(by_name["invoices-read"])
    assert invoices.pop("translate")
    assert invoices == {
        "name": "invoices-read",
        "owner": "team-billing",
        "match": {"path": "/api/v1/invoices/{id:int}", "methods": ["GET", "HEAD"]},
        "to": "billing",
    }
    assert by_name["orders"] == {
        "name": "orders",
        "owner": "team-orders",
        "match": {"path_prefix": "/api/v1/orders"},
        "to": "legacy",
    }


def test_demo_config_is_valid() -> None:
    config = load_config(DEMO_CONFIG)
    assert {r.name for r in config.routes if r.translate is not None} == {
        "invoices-read",
        "customer-invoices",
    }


_SAMPLE_ID: Final = {"invoices-read": ("5001", "4999"), "customer-invoices": ("1", "99")}


async def test_every_billing_route_translates_to_an_endpoint_of_the_new_app(
    legacy: Client, new: Client
) -> None:
    """Each billing route's translation, run by hand (no proxy): the request lands on a
    billing endpoint, and the answer comes back as legacy's document."""
    billing = [r for r in load_config(DEMO_CONFIG).routes if r.new_side == "billing"]
    assert {r.name for r in billing} == set(_SAMPLE_ID)
    for route in billing:
        plan = build_plan(route.translate)
        assert route.match.path is not None
        assert route.match.methods == frozenset({"GET", "HEAD"})
        for sample in _SAMPLE_ID[route.name]:
            path = route.match.path.replace("{id:int}", sample)
            for method in sorted(route.match.methods):
                original = TranslateRequest.from_target(method, path, CIMultiDict(), {"id": sample})
                out = plan.apply_request(original.copy())
                assert out.target.startswith("/v2/")
                got = await new.request(method, out.target)
                body = await got.read()
                answer = plan.apply_response(
                    TranslateResponse(
                        status=got.status,
                        headers=CIMultiDict(got.headers),
                        request=original,
                        body=None if method == "HEAD" else body,
                    )
                )
                old = await legacy.request(method, path)
                assert answer.status == old.status, (method, path)
                if method == "GET":
                    assert answer.body is not None
                    assert json.loads(answer.body) == json.loads(await old.read()), path
