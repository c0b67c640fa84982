"""The demo's new service: "billing", which has taken over invoices from legacy.

``build_new_app()`` returns a fresh ``web.Application`` with its own read-only
store, seeded from the same records as the legacy app (``strangler.demo.data``),
so for now it answers the invoice endpoints with byte-identical JSON: same shape,
same data, same error bodies. A later step gives billing its own model and puts a
translation layer in the proxy.

Billing only knows the customers in the seed: a customer created or deleted
through legacy is not seen here. That is the divergence a shadow comparison is
meant to catch, so the demo keeps it.

Guarantees: every response, errors included, carries ``X-Served-By: new-billing``;
errors are JSON ``{"error": "..."}`` (404 unknown id or path, 405 wrong method).

Endpoints (every GET also answers HEAD)::

    GET /health                          {"status": "ok", "service": "new-billing"}
    GET /api/v1/invoices/{id}            one invoice
    GET /api/v1/customers/{id}/invoices  {"customer_id": id, "invoices": [...]}
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final, final

from aiohttp import web

from strangler.demo.data import (
    SEED_CUSTOMERS,
    SEED_INVOICES,
    Invoice,
    customer_invoices_v1,
    invoice_v1,
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


def _not_found(message: str) -> web.Response:
    return web.json_response({"error": message}, status=404)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "service": SERVED_BY})


async def get_invoice(request: web.Request) -> web.Response:
    invoice_id = int(request.match_info["id"])  # the route admits digits only
    invoice = request.app[BILLING_STORE].invoices.get(invoice_id)
    if invoice is None:
        return _not_found(f"invoice {invoice_id} not found")
    return web.json_response(invoice_v1(invoice))


async def customer_invoices(request: web.Request) -> web.Response:
    store = request.app[BILLING_STORE]
    customer_id = int(request.match_info["id"])
    if customer_id not in store.customer_ids:
        return _not_found(f"customer {customer_id} not found")
    return web.json_response(customer_invoices_v1(customer_id, store.for_customer(customer_id)))


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Answer aiohttp's own 404 and 405 as ``{"error": ...}``, worded as legacy does."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _not_found(f"no such endpoint: {request.path}")
    except web.HTTPMethodNotAllowed as exc:
        return web.json_response(
            {"error": f"method {request.method} not allowed on {request.path}"},
            status=405,
            headers={"Allow": exc.headers["Allow"]},
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
            web.get(r"/api/v1/invoices/{id:\d+}", get_invoice),
            web.get(r"/api/v1/customers/{id:\d+}/invoices", customer_invoices),
        ]
    )
    return app
