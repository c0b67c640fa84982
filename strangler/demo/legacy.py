"""The demo's legacy application: "Acme ERP, v1", a small in-memory JSON API.

``build_legacy_app()`` returns a fresh ``web.Application`` with its own store,
seeded from ``strangler.demo.data``; two apps never share state. Besides the JSON
API it keeps a few legacy habits a proxy must carry through untouched: a large
CSV download streamed in chunks (no Content-Length), a login page that sets two
cookies, a 302 redirect and an HTML index.

Guarantees: every response, errors included, carries ``X-Served-By: legacy``;
every error is JSON ``{"error": "..."}`` with a 4xx status (404 unknown id or
path, 405 wrong method, 409 conflict, 400 bad JSON or failed validation).
Quirks kept on purpose: ``PUT /api/v1/customers/{id}`` is a partial update, and
creating an order does not issue an invoice (invoices belong to billing).

Endpoints::

    GET  /                                   HTML index linking the endpoints
    GET  /health                             {"status": "ok", "service": "legacy"}
    GET  /api/v1/customers                   {"customers": [...]}
    POST /api/v1/customers                   201 + Location; body {name, email, country}
    GET  /api/v1/customers/{id}              one customer
    PUT  /api/v1/customers/{id}              partial update of name/email/country
    DELETE /api/v1/customers/{id}            204; 409 while the customer has orders
    GET  /api/v1/customers/{id}/invoices     {"customer_id": id, "invoices": [...]}
    GET  /api/v1/orders?customer_id=&status= {"orders": [...]}, filters optional
    POST /api/v1/orders                      201 + Location; body {customer_id, lines, currency?}
    GET  /api/v1/orders/{id}                 one order
    GET  /api/v1/invoices/{id}               one invoice
    GET  /legacy/report.csv                  ledger export, ~290 KB, chunked
    GET  /login                              HTML form; sets legacy_session and csrf_token
    POST /login                              form post; 303 to / and sets legacy_user
    GET  /old-home                           302 to /

Every GET also answers HEAD.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Final, final

from aiohttp import web

from strangler.demo.data import (
    CURRENCIES,
    ORDER_STATUSES,
    SEED_CUSTOMERS,
    SEED_INVOICES,
    SEED_ORDERS,
    Customer,
    Invoice,
    Order,
    OrderLine,
    customer_invoices_v1,
    customer_v1,
    invoice_v1,
    order_v1,
)

SERVED_BY: Final = "legacy"

Clock = Callable[[], datetime]

REPORT_ROWS: Final = 6000
"""Data rows in ``/legacy/report.csv`` (plus one header row)."""

REPORT_ROWS_PER_CHUNK: Final = 250
REPORT_HEADER: Final = b"row,date,customer_id,sku,quantity,unit_price_cents,amount_cents,status\n"
_REPORT_SKUS: Final = (
    ("GEAR-BRASS-12", 995),
    ("PUNCHCARD-BOX", 1999),
    ("TAPE-REEL-9T", 1450),
    ("RING-IDEAL", 12000),
    ("DOSIMETER", 3400),
    ("STATE-TABLE", 450),
    ("MOTH-TRAP", 799),
)
_REPORT_FIRST_DAY: Final = date(2023, 1, 1)
_REPORT_STATUSES: Final = ("PAID", "PAID", "OPEN", "PAID", "OVERDUE", "VOID")

_CUSTOMER_FIELDS: Final = ("name", "email", "country")
_MAX_ORDER_LINES: Final = 100
_MAX_QUANTITY: Final = 10_000


def iter_report_chunks() -> Iterator[bytes]:
    """Yield ``/legacy/report.csv`` as the app sends it: the header row, then
    ``REPORT_ROWS`` rows in chunks of ``REPORT_ROWS_PER_CHUNK``.

    Deterministic, so a test can compare what came through a proxy with
    ``b"".join(iter_report_chunks())``. A row looks like
    ``1,2023-01-01,2,PUNCHCARD-BOX,8,1999,15992,PAID``.
    """
    yield REPORT_HEADER
    rows: list[str] = []
    for i in range(1, REPORT_ROWS + 1):
        sku, price = _REPORT_SKUS[i % len(_REPORT_SKUS)]
        quantity = 1 + (i * 7) % 12
        day = _REPORT_FIRST_DAY + timedelta(days=i // 20)  # twenty ledger rows a day
        status = _REPORT_STATUSES[i % len(_REPORT_STATUSES)]
        customer = 1 + i % len(SEED_CUSTOMERS)
        amount = quantity * price
        rows.append(f"{i},{day},{customer},{sku},{quantity},{price},{amount},{status}\n")
        if len(rows) == REPORT_ROWS_PER_CHUNK:
            yield "".join(rows).encode()
            rows.clear()
    if rows:
        yield "".join(rows).encode()


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@final
class LegacyStore:
    """The legacy database: customers, orders and invoices, mutable, per app."""

    def __init__(self, clock: Clock = _utc_now) -> None:
        self._clock = clock
        self.customers: dict[int, Customer] = {c.id: c for c in SEED_CUSTOMERS}
        self.orders: dict[int, Order] = {o.id: o for o in SEED_ORDERS}
        self.invoices: dict[int, Invoice] = {i.id: i for i in SEED_INVOICES}
        self._next_customer_id = max(self.customers) + 1
        self._next_order_id = max(self.orders) + 1
        self._sessions_issued = 0

    def now(self) -> str:
        return _timestamp(self._clock())

    def customer(self, customer_id: int) -> Customer:
        """The customer, or ``ApiError`` 404."""
        try:
            return self.customers[customer_id]
        except KeyError:
            raise ApiError(404, f"customer {customer_id} not found") from None

    def add_customer(self, name: str, email: str, country: str) -> Customer:
        customer = Customer(
            id=self._next_customer_id,
            name=name,
            email=email,
            country=country,
            created_at=self.now(),
        )
        self._next_customer_id += 1
        self.customers[customer.id] = customer
        return customer

    def add_order(self, customer_id: int, currency: str, lines: tuple[OrderLine, ...]) -> Order:
        order = Order(
            id=self._next_order_id,
            customer_id=customer_id,
            status="OPEN",
            currency=currency,
            lines=lines,
            created_at=self.now(),
        )
        self._next_order_id += 1
        self.orders[order.id] = order
        return order

    def new_session(self) -> tuple[str, str]:
        """A fresh (session id, CSRF token) pair; deterministic per store."""
        self._sessions_issued += 1
        session = f"S-{self._sessions_issued:06d}"
        csrf = hashlib.sha256(f"acme-csrf:{session}".encode()).hexdigest()[:32]
        return session, csrf


LEGACY_STORE: Final = web.AppKey("legacy_store", LegacyStore)


# --- request parsing and validation (400s) ---


async def _json_object(request: web.Request) -> dict[str, object]:
    try:
        body: object = await request.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "request body must be a JSON object")
    return body


def _reject_unknown(body: dict[str, object], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(400, f"unknown field '{unknown[0]}'")


def _int(value: object, what: str, *, low: int, high: int | None = None) -> int:
    # bool is an int subclass; `true` is not a quantity.
    if not isinstance(value, int) or isinstance(value, bool):
        raise ApiError(400, f"{what} must be an integer")
    if value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(400, f"{what} must be {bounds}")
    return value


def _customer_field(field: str, value: object) -> str:
    if field == "name":
        if not isinstance(value, str) or not value.strip() or len(value) > 200:
            raise ApiError(400, "name must be a non-empty string of at most 200 characters")
        return value.strip()
    if field == "email":
        if not isinstance(value, str) or " " in value:
            raise ApiError(400, "email must be an email address")
        local, _, domain = value.partition("@")
        if not local or not domain or "@" in domain:
            raise ApiError(400, "email must be an email address")
        return value
    # country
    if not (isinstance(value, str) and len(value) == 2 and value.isascii() and value.isupper()):
        raise ApiError(400, "country must be a two-letter ISO code like 'DE'")
    return value


def _path_id(request: web.Request) -> int:
    # The route pattern only admits digits, so this cannot fail.
    return int(request.match_info["id"])


def _query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ApiError(400, f"{name} must be an integer")
    return int(raw)


# --- handlers ---


async def index(request: web.Request) -> web.Response:
    links = [
        ("/health", "Health check"),
        ("/api/v1/customers", "Customers"),
        ("/api/v1/customers/1", "Customer 1"),
        ("/api/v1/customers/1/invoices", "Invoices of customer 1"),
        ("/api/v1/orders", "Orders"),
        ("/api/v1/orders?status=OPEN", "Open orders"),
        ("/api/v1/orders/1001", "Order 1001"),
        ("/api/v1/invoices/5001", "Invoice 5001"),
        ("/legacy/report.csv", "Ledger report (CSV)"),
        ("/login", "Log in"),
        ("/old-home", "The old home page (redirects here)"),
    ]
    items = "\n".join(
        f'    <li><a href="{html.escape(href)}">{html.escape(label)}</a></li>'
        for href, label in links
    )
    page = (
        "<!doctype html>\n<html>\n<head><title>Acme ERP v1</title></head>\n<body>\n"
        "  <h1>Acme ERP, v1</h1>\n  <ul>\n"
        f"{items}\n"
        "  </ul>\n</body>\n</html>\n"
    )
    return web.Response(text=page, content_type="text/html")


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": SERVED_BY})


async def list_customers(request: web.Request) -> web.Response:
    store = request.app[LEGACY_STORE]
    return web.json_response(
        {"customers": [customer_v1(c) for _, c in sorted(store.customers.items())]}
    )


async def create_customer(request: web.Request) -> web.Response:
    store = request.app[LEGACY_STORE]
    body = await _json_object(request)
    _reject_unknown(body, _CUSTOMER_FIELDS)
    for field in _CUSTOMER_FIELDS:
        if field not in body:
            raise ApiError(400, f"missing field '{field}'")
    customer = store.add_customer(
        name=_customer_field("name", body["name"]),
        email=_customer_field("email", body["email"]),
        country=_customer_field("country", body["country"]),
    )
    return web.json_response(
        customer_v1(customer),
        status=201,
        headers={"Location": f"/api/v1/customers/{customer.id}"},
    )


async def get_customer(request: web.Request) -> web.Response:
    customer = request.app[LEGACY_STORE].customer(_path_id(request))
    return web.json_response(customer_v1(customer))


async def update_customer(request: web.Request) -> web.Response:
    store = request.app[LEGACY_STORE]
    customer = store.customer(_path_id(request))
    body = await _json_object(request)
    _reject_unknown(body, _CUSTOMER_FIELDS)
    if not body:
        raise ApiError(400, "body must set at least one of: name, email, country")
    changes = {field: _customer_field(field, value) for field, value in body.items()}
    updated = replace(
        customer,
        name=changes.get("name", customer.name),
        email=changes.get("email", customer.email),
        country=changes.get("country", customer.country),
    )
    store.customers[updated.id] = updated
    return web.json_response(customer_v1(updated))


async def delete_customer(request: web.Request) -> web.Response:
    store = request.app[LEGACY_STORE]
    customer = store.customer(_path_id(request))
    if any(o.customer_id == customer.id for o in store.orders.values()):
        raise ApiError(409, f"customer {customer.id} has orders and cannot be deleted")
    del store.customers[customer.id]
    return web.Response(status=204)


async def customer_invoices(request: web.Request) -> web.Response:
    store = request.app[LEGACY_STORE]
    customer = store.customer(_path_id(request))
    invoices = tuple(i for _, i in sorted(store.invoices.items()) if i.customer_id == customer.id)
    return web.json_response(customer_invoices_v1(customer.id, invoices))


async def list_orders(request: web.Request) -> web.Response:
    store = request.app[LEGACY_STORE]
    customer_id = _query_int(request, "customer_id")
    status = request.query.get("status") or None
    if status is not None and status not in ORDER_STATUSES:
        choices = ", ".join(sorted(ORDER_STATUSES))
        raise ApiError(400, f"status must be one of: {choices}")
    orders = [
        order_v1(o)
        for _, o in sorted(store.orders.items())
        if (customer_id is None or o.customer_id == customer_id)
        and (status is None or o.status == status)
    ]
    return web.json_response({"orders": orders})


async def get_order(request: web.Request) -> web.Response:
    order_id = _path_id(request)
    order = request.app[LEGACY_STORE].orders.get(order_id)
    if order is None:
        raise ApiError(404, f"order {order_id} not found")
    return web.json_response(order_v1(order))


def _order_line(index: int, raw: object) -> OrderLine:
    where = f"lines[{index}]"
    if not isinstance(raw, dict):
        raise ApiError(400, f"{where} must be an object")
    _reject_unknown(raw, ("sku", "quantity", "unit_price_cents"))
    sku = raw.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        raise ApiError(400, f"{where}.sku must be a non-empty string")
    return OrderLine(
        sku=sku.strip(),
        quantity=_int(raw.get("quantity"), f"{where}.quantity", low=1, high=_MAX_QUANTITY),
        unit_price_cents=_int(raw.get("unit_price_cents"), f"{where}.unit_price_cents", low=0),
    )


async def create_order(request: web.Request) -> web.Response:
    store = request.app[LEGACY_STORE]
    body = await _json_object(request)
    _reject_unknown(body, ("customer_id", "lines", "currency"))
    if "customer_id" not in body:
        raise ApiError(400, "missing field 'customer_id'")
    customer_id = _int(body["customer_id"], "customer_id", low=1)
    if customer_id not in store.customers:
        raise ApiError(400, f"unknown customer {customer_id}")
    raw_lines = body.get("lines")
    if not isinstance(raw_lines, list) or not 1 <= len(raw_lines) <= _MAX_ORDER_LINES:
        raise ApiError(400, f"lines must be a list of 1 to {_MAX_ORDER_LINES} order lines")
    lines = tuple(_order_line(n, raw) for n, raw in enumerate(raw_lines))
    currency = body.get("currency", "EUR")
    if not isinstance(currency, str) or currency not in CURRENCIES:
        raise ApiError(400, f"currency must be one of: {', '.join(sorted(CURRENCIES))}")
    order = store.add_order(customer_id, currency, lines)
    return web.json_response(
        order_v1(order), status=201, headers={"Location": f"/api/v1/orders/{order.id}"}
    )


async def get_invoice(request: web.Request) -> web.Response:
    invoice_id = _path_id(request)
    invoice = request.app[LEGACY_STORE].invoices.get(invoice_id)
    if invoice is None:
        raise ApiError(404, f"invoice {invoice_id} not found")
    return web.json_response(invoice_v1(invoice))


async def report_csv(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={"Content-Disposition": 'attachment; filename="report.csv"'}
    )
    response.content_type = "text/csv"
    response.charset = "utf-8"
    response.enable_chunked_encoding()  # the legacy exporter never knew the length up front
    await response.prepare(request)
    if request.method != "HEAD":
        for chunk in iter_report_chunks():
            await response.write(chunk)
    await response.write_eof()
    return response


async def login_form(request: web.Request) -> web.Response:
    session, csrf = request.app[LEGACY_STORE].new_session()
    page = (
        "<!doctype html>\n<html>\n<head><title>Acme ERP v1: log in</title></head>\n<body>\n"
        '  <form method="post" action="/login">\n'
        f'    <input type="hidden" name="csrf_token" value="{csrf}">\n'
        '    <label>User <input name="username"></label>\n'
        '    <label>Password <input name="password" type="password"></label>\n'
        '    <button type="submit">Log in</button>\n'
        "  </form>\n</body>\n</html>\n"
    )
    response = web.Response(text=page, content_type="text/html")
    # Two cookies, so two Set-Cookie headers: a proxy must not fold them into one.
    response.set_cookie("legacy_session", session, path="/", httponly=True, samesite="Lax")
    response.set_cookie("csrf_token", csrf, path="/login", samesite="Strict")
    return response


async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    token = form.get("csrf_token")
    if not token or token != request.cookies.get("csrf_token"):
        raise ApiError(400, "csrf token missing or does not match the csrf_token cookie")
    username = form.get("username")
    password = form.get("password")
    # Any non-empty password will do: this is a demo, not an identity provider.
    if not (isinstance(username, str) and username and isinstance(password, str) and password):
        raise ApiError(400, "username and password are required")
    response = web.Response(status=303, headers={"Location": "/"})
    response.set_cookie("legacy_user", username, path="/", httponly=True, samesite="Lax")
    return response


async def old_home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/")


# --- app-wide behaviour ---


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer ``ApiError`` and aiohttp's own 4xx (unknown path, wrong method, body
    too large) as ``{"error": ...}``; redirects and 5xx pass through unchanged."""
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response({"error": exc.message}, status=exc.status)
    except web.HTTPException as exc:
        if not 400 <= exc.status < 500:
            raise
        if exc.status == 404:
            message = f"no such endpoint: {request.path}"
        elif exc.status == 405:
            message = f"method {request.method} not allowed on {request.path}"
        else:
            message = exc.reason.lower()
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return web.json_response({"error": message}, status=exc.status, headers=headers)


async def _mark_served_by(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Served-By"] = SERVED_BY


def build_legacy_app(*, clock: Clock | None = None) -> web.Application:
    """A fresh legacy app with its own seeded store under ``LEGACY_STORE``.

    ``clock`` stamps ``created_at`` on customers and orders created through the API
    (default: the current UTC time); tests pass a fixed one.
    """
    app = web.Application(middlewares=[json_errors])
    app[LEGACY_STORE] = LegacyStore(clock or _utc_now)
    app.on_response_prepare.append(_mark_served_by)
    app.add_routes(
        [
            web.get("/", index),
            web.get("/health", health),
            web.get("/api/v1/customers", list_customers),
            web.post("/api/v1/customers", create_customer),
            web.get(r"/api/v1/customers/{id:\d+}", get_customer),
            web.put(r"/api/v1/customers/{id:\d+}", update_customer),
            web.delete(r"/api/v1/customers/{id:\d+}", delete_customer),
            web.get(r"/api/v1/customers/{id:\d+}/invoices", customer_invoices),
            web.get("/api/v1/orders", list_orders),
            web.post("/api/v1/orders", create_order),
            web.get(r"/api/v1/orders/{id:\d+}", get_order),
            web.get(r"/api/v1/invoices/{id:\d+}", get_invoice),
            web.get("/legacy/report.csv", report_csv),
            web.get("/login", login_form),
            web.post("/login", login_submit),
            web.get("/old-home", old_home),
        ]
    )
    return app
