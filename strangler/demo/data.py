"""The demo's shared seed data and its two wire shapes: legacy's v1 and billing's v2.

Both demo services load the same records from here, so before any write they hold
the same invoices, each service in its own shape. Everything here is immutable:
records are frozen dataclasses and the seed is tuples. Each service copies the seed
into its own store object when its app is built.

Amounts are integer cents and statuses are upper-case strings, as in the legacy
database. For example, ``invoice_v1(SEED_INVOICES[0])`` returns::

    {"id": 5001, "number": "INV-2024-0001", "order_id": 1001, "customer_id": 1,
     "status": "PAID", "currency": "EUR", "net_cents": 12450, "tax_cents": 2490,
     "total_cents": 14940, "issued_on": "2024-01-16", "due_on": "2024-02-15",
     "paid_on": "2024-02-02"}

The new billing service has its own model of the same invoices (v2): camelCase
names, the customer and the amounts nested, amounts as exact decimal strings,
lower-case states (``OVERDUE`` is ``past_due``), times in UTC. ``invoice_v2`` of the
same invoice returns::

    {"invoiceId": 5001, "reference": "INV-2024-0001", "orderId": 1001,
     "customer": {"id": 1}, "state": "paid",
     "amounts": {"net": "124.50", "tax": "24.90", "total": "149.40", "currency": "EUR"},
     "issuedAt": "2024-01-16T00:00:00Z", "dueDate": "2024-02-15",
     "paidAt": "2024-02-02T00:00:00Z"}

The proxy's anti-corruption layer (``routes/demo.yaml``) turns v2 back into v1.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final, final

ORDER_STATUSES: Final = frozenset({"OPEN", "SHIPPED", "CANCELLED"})
INVOICE_STATUSES: Final = frozenset({"OPEN", "PAID", "OVERDUE", "VOID"})
CURRENCIES: Final = frozenset({"EUR", "USD", "GBP"})


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Customer:
    id: int
    name: str
    email: str
    country: str  # ISO 3166 alpha-2
    created_at: str  # ISO 8601, UTC, seconds: "2019-03-04T10:00:00Z"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price_cents: int

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_price_cents


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    id: int
    customer_id: int
    status: str  # one of ORDER_STATUSES
    currency: str
    lines: tuple[OrderLine, ...]
    created_at: str
    invoice_id: int | None = None

    @property
    def total_cents(self) -> int:
        return sum(line.total_cents for line in self.lines)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Invoice:
    id: int
    number: str
    order_id: int
    customer_id: int
    status: str  # one of INVOICE_STATUSES
    currency: str
    net_cents: int
    tax_cents: int
    issued_on: str  # ISO 8601 date
    due_on: str
    paid_on: str | None

    @property
    def total_cents(self) -> int:
        return self.net_cents + self.tax_cents


# --- wire shape (v1): key order is part of the contract, it decides the JSON bytes ---


def customer_v1(customer: Customer) -> dict[str, object]:
    return {
        "id": customer.id,
        "name": customer.name,
        "email": customer.email,
        "country": customer.country,
        "created_at": customer.created_at,
    }


def order_v1(order: Order) -> dict[str, object]:
    return {
        "id": order.id,
        "customer_id": order.customer_id,
        "status": order.status,
        "currency": order.currency,
        "lines": [
            {
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price_cents": line.unit_price_cents,
                "line_total_cents": line.total_cents,
            }
            for line in order.lines
        ],
        "total_cents": order.total_cents,
        "invoice_id": order.invoice_id,
        "created_at": order.created_at,
    }


def invoice_v1(invoice: Invoice) -> dict[str, object]:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "order_id": invoice.order_id,
        "customer_id": invoice.customer_id,
        "status": invoice.status,
        "currency": invoice.currency,
        "net_cents": invoice.net_cents,
        "tax_cents": invoice.tax_cents,
        "total_cents": invoice.total_cents,
        "issued_on": invoice.issued_on,
        "due_on": invoice.due_on,
        "paid_on": invoice.paid_on,
    }


def customer_invoices_v1(customer_id: int, invoices: tuple[Invoice, ...]) -> dict[str, object]:
    """The body of ``GET /api/v1/customers/{id}/invoices``; ``invoices`` sorted by id."""
    return {"customer_id": customer_id, "invoices": [invoice_v1(i) for i in invoices]}


# --- the new billing service's model (v2) ---

INVOICE_STATES_V2: Final = MappingProxyType(
    {"OPEN": "open", "PAID": "paid", "OVERDUE": "past_due", "VOID": "void"}
)
"""Legacy status → billing's ``state``."""


def amount_v2(cents: int) -> str:
    """Integer cents as billing's exact decimal string: ``14940`` → ``"149.40"``."""
    return format(Decimal(cents).scaleb(-2), "f")


def _moment_v2(day: str | None) -> str | None:
    """A legacy ISO date as billing's UTC timestamp (midnight): ``"2024-01-16T00:00:00Z"``."""
    return None if day is None else f"{day}T00:00:00Z"


def invoice_v2(invoice: Invoice) -> dict[str, object]:
    """One invoice as billing's ``GET /v2/invoices/{id}`` answers it."""
    return {
        "invoiceId": invoice.id,
        "reference": invoice.number,
        "orderId": invoice.order_id,
        "customer": {"id": invoice.customer_id},
        "state": INVOICE_STATES_V2[invoice.status],
        "amounts": {
            "net": amount_v2(invoice.net_cents),
            "tax": amount_v2(invoice.tax_cents),
            "total": amount_v2(invoice.total_cents),
            "currency": invoice.currency,
        },
        "issuedAt": _moment_v2(invoice.issued_on),
        "dueDate": invoice.due_on,
        "paidAt": _moment_v2(invoice.paid_on),
    }


def customer_invoices_v2(customer_id: int, invoices: tuple[Invoice, ...]) -> dict[str, object]:
    """The body of billing's ``GET /v2/customers/{id}/invoices``; ``invoices`` sorted by id."""
    return {
        "customer": {"id": customer_id},
        "count": len(invoices),
        "items": [invoice_v2(i) for i in invoices],
    }


# --- the seed ---

SEED_CUSTOMERS: Final[tuple[Customer, ...]] = (
    Customer(
        id=1,
        name="Lovelace Analytical Engines Ltd",
        email="accounts@lovelace.example",
        country="GB",
        created_at="2019-03-04T10:00:00Z",
    ),
    Customer(
        id=2,
        name="Hopper Compilers Inc",
        email="billing@hopper.example",
        country="US",
        created_at="2019-07-22T14:30:00Z",
    ),
    Customer(
        id=3,
        name="Noether Algebra GmbH",
        email="buchhaltung@noether.example",
        country="DE",
        created_at="2020-01-10T08:15:00Z",
    ),
    Customer(
        id=4,
        name="Curie Isotopes SARL",
        email="compta@curie.example",
        country="FR",
        created_at="2020-11-02T16:45:00Z",
    ),
    Customer(
        id=5,
        name="Turing Machines BV",
        email="finance@turing.example",
        country="NL",
        created_at="2021-05-18T09:00:00Z",
    ),
    Customer(
        id=6,
        name="Hamilton Guidance LLC",
        email="ap@hamilton.example",
        country="US",
        created_at="2023-09-01T12:00:00Z",
    ),
)


def _lines(*lines: tuple[str, int, int]) -> tuple[OrderLine, ...]:
    return tuple(OrderLine(sku=s, quantity=q, unit_price_cents=p) for s, q, p in lines)


SEED_ORDERS: Final[tuple[Order, ...]] = (
    Order(
        id=1001,
        customer_id=1,
        status="SHIPPED",
        currency="EUR",
        lines=_lines(("GEAR-BRASS-12", 10, 995), ("CRANK-STEEL", 1, 2500)),
        created_at="2024-01-15T09:12:00Z",
        invoice_id=5001,
    ),
    Order(
        id=1002,
        customer_id=1,
        status="SHIPPED",
        currency="EUR",
        lines=_lines(("PUNCHCARD-BOX", 4, 1999)),
        created_at="2024-02-03T11:40:00Z",
        invoice_id=5002,
    ),
    Order(
        id=1003,
        customer_id=1,
        status="OPEN",
        currency="EUR",
        lines=_lines(("GEAR-BRASS-12", 25, 995)),
        created_at="2024-03-20T15:05:00Z",
    ),
    Order(
        id=1004,
        customer_id=2,
        status="SHIPPED",
        currency="USD",
        lines=_lines(("TAPE-REEL-9T", 12, 1450), ("LICENSE-COBOL", 1, 49900)),
        created_at="2024-01-28T18:20:00Z",
        invoice_id=5003,
    ),
    Order(
        id=1005,
        customer_id=2,
        status="SHIPPED",
        currency="USD",
        lines=_lines(("MOTH-TRAP", 3, 799)),
        created_at="2024-02-14T10:00:00Z",
        invoice_id=5004,
    ),
    Order(
        id=1006,
        customer_id=2,
        status="CANCELLED",
        currency="USD",
        lines=_lines(("TAPE-REEL-9T", 100, 1450)),
        created_at="2024-02-29T23:59:00Z",
    ),
    Order(
        id=1007,
        customer_id=3,
        status="SHIPPED",
        currency="EUR",
        lines=_lines(("RING-IDEAL", 2, 12000), ("FIELD-EXT", 1, 8800)),
        created_at="2024-03-01T07:30:00Z",
        invoice_id=5005,
    ),
    Order(
        id=1008,
        customer_id=3,
        status="OPEN",
        currency="EUR",
        lines=_lines(("RING-IDEAL", 1, 12000)),
        created_at="2024-04-11T13:25:00Z",
    ),
    Order(
        id=1009,
        customer_id=4,
        status="SHIPPED",
        currency="EUR",
        lines=_lines(("DOSIMETER", 5, 3400), ("LEAD-APRON", 5, 6150)),
        created_at="2024-02-06T08:05:00Z",
        invoice_id=5006,
    ),
    Order(
        id=1010,
        customer_id=5,
        status="SHIPPED",
        currency="EUR",
        lines=_lines(("TAPE-INFINITE", 1, 99999)),
        created_at="2024-03-12T16:16:00Z",
        invoice_id=5007,
    ),
    Order(
        id=1011,
        customer_id=5,
        status="OPEN",
        currency="EUR",
        lines=_lines(("STATE-TABLE", 7, 450), ("HEAD-RW", 2, 2675)),
        created_at="2024-04-02T10:48:00Z",
    ),
)
# Customer 6 has no orders (and so no invoices): the empty-list case, and the one
# customer the legacy app lets you DELETE out of the box.


def _invoice(
    *,
    id: int,
    order_id: int,
    status: str,
    tax_bp: int,
    issued_on: str,
    due_on: str,
    paid_on: str | None,
) -> Invoice:
    """An invoice for a seeded order: net is the order total, tax is ``tax_bp`` basis
    points of it rounded half up (2000 = 20 %)."""
    order = next(o for o in SEED_ORDERS if o.id == order_id)
    net = order.total_cents
    return Invoice(
        id=id,
        number=f"INV-2024-{id - 5000:04d}",
        order_id=order_id,
        customer_id=order.customer_id,
        status=status,
        currency=order.currency,
        net_cents=net,
        tax_cents=(net * tax_bp + 5000) // 10000,
        issued_on=issued_on,
        due_on=due_on,
        paid_on=paid_on,
    )


SEED_INVOICES: Final[tuple[Invoice, ...]] = (
    _invoice(
        id=5001,
        order_id=1001,
        status="PAID",
        tax_bp=2000,
        issued_on="2024-01-16",
        due_on="2024-02-15",
        paid_on="2024-02-02",
    ),
    _invoice(
        id=5002,
        order_id=1002,
        status="OPEN",
        tax_bp=2000,
        issued_on="2024-02-04",
        due_on="2024-03-05",
        paid_on=None,
    ),
    _invoice(
        id=5003,
        order_id=1004,
        status="PAID",
        tax_bp=0,
        issued_on="2024-01-29",
        due_on="2024-02-28",
        paid_on="2024-02-20",
    ),
    _invoice(
        id=5004,
        order_id=1005,
        status="OVERDUE",
        tax_bp=0,
        issued_on="2024-02-15",
        due_on="2024-03-16",
        paid_on=None,
    ),
    _invoice(
        id=5005,
        order_id=1007,
        status="PAID",
        tax_bp=1900,
        issued_on="2024-03-02",
        due_on="2024-04-01",
        paid_on="2024-03-28",
    ),
    _invoice(
        id=5006,
        order_id=1009,
        status="VOID",
        tax_bp=2000,
        issued_on="2024-02-07",
        due_on="2024-03-08",
        paid_on=None,
    ),
    _invoice(
        id=5007,
        order_id=1010,
        status="OPEN",
        tax_bp=2100,
        issued_on="2024-03-13",
        due_on="2024-04-12",
        paid_on=None,
    ),
)
