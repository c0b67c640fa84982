"""The demo's new service: "billing", which has taken over invoices from legacy.

``build_new_app()`` returns a fresh ``web.Application`` with its own read-only
store, seeded from the same records as the legacy app (``strangler.demo.data``).
Billing has its own model and its own API, not legacy's: its own paths (``/v2/...``),
field names, nesting, enum values, decimal amounts, UTC timestamps and error format
(``data.invoice_v2``). The proxy's anti-corruption layer (the ``translate:`` steps in
``routes/demo.yaml``) turns legacy's requests into billing's and billing's answers
back into legacy's shape, so clients of ``/api/v1/...`` see no difference.

Billing only knows the customers in the seed: a customer created or deleted
through legacy is not seen here. That is the divergence a shadow comparison is
meant to catch, so the demo keeps it.

Guarantees: every response, errors included, carries ``X-Served-By: new-billing``;
errors are JSON ``{"code": "NOT_FOUND", "message": "..."}`` (404 unknown id or path)
or ``{"code": "METHOD_NOT_ALLOWED", ...}`` (405), the message worded as legacy words
its ``{"error": "..."}``.

Endpoints (every GET also answers HEAD)::

    GET /health                     {"status": "ok", "service": "new-billing"}
    GET /v2/invoices/{id}           one invoice (``data.invoice_v2``)
    GET /v2/customers/{id}/invoices {"customer": {"id": id}, "count": n, "items": [...]}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, final

from aiohttp import web

from strangler.demo.data import (
    SEED_CUSTOMERS,
    SEED_INVOICES,
    Invoice,
    customer_invoices_v2,
    invoice_v2,
)

SERVED_BY: Final = "new-billing"


@final
class BillingStore:
    """Billing's own copy of the invoices, and the customer ids it knows."""

    def __init__(self) -> None:
        self.invoices: dict[int, Invoice] = {i.id: i for i in SEED_INVOICES}
        self.customer_ids: frozenset[int] = frozenset(c.id for c in SEED_CUSTOMERS)

    def for_customer(self, customer_id: int) -> tuple[Invoice, ...]:
        return tuple(i for _, i in sorted(self.invoices.items()) if i.customer_id == customer_id)


BILLING_STORE: Final = web.AppKey("billing_store", BillingStore)


def _error(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


def _not_found(message: str) -> web.Response:
    return _error(404, "NOT_FOUND", message)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": SERVED_BY})


async def get_invoice(request: web.Request) -> web.Response:
    invoice_id = int(request.match_info["id"])  # the route admits digits only
    invoice = request.app[BILLING_STORE].invoices.get(invoice_id)
    if invoice is None:
        return _not_found(f"invoice {invoice_id} not found")
    return web.json_response(invoice_v2(invoice))


async def customer_invoices(request: web.Request) -> web.Response:
    store = request.app[BILLING_STORE]
    customer_id = int(request.match_info["id"])
    if customer_id not in store.customer_ids:
        return _not_found(f"customer {customer_id} not found")
    return web.json_response(customer_invoices_v2(customer_id, store.for_customer(customer_id)))


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer aiohttp's own 404 and 405 in billing's error format."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _not_found(f"no such endpoint: {request.path}")
    except web.HTTPMethodNotAllowed as exc:
        return _error(
            405,
            "METHOD_NOT_ALLOWED",
            f"method {request.method} not allowed on {request.path}",
            Allow=exc.headers["Allow"],
        )


async def _mark_served_by(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["X-Served-By"] = SERVED_BY


def build_new_app() -> web.Application:
    """A fresh billing app with its own store under ``BILLING_STORE``."""
    app = web.Application(middlewares=[json_errors])
    app[BILLING_STORE] = BillingStore()
    app.on_response_prepare.append(_mark_served_by)
    app.add_routes(
        [
            web.get("/health", health),
            web.get(r"/v2/invoices/{id:\d+}", get_invoice),
            web.get(r"/v2/customers/{id:\d+}/invoices", customer_invoices),
        ]
    )
    return app
