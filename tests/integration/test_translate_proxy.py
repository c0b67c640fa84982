"""The anti-corruption layer end to end: a legacy-shaped client, the proxy, a new-shaped service.

Every test runs a real proxy (``make_proxy``) in front of the shared ``legacy`` echo
upstream and a "new service" written here: an aiohttp app that speaks the NEW shape,
records every request it gets (method, raw path, headers, body as received) and
answers what the test scripts. The client speaks the LEGACY shape and never decodes
what it gets (no decompression, no cookie jar), so each test asserts two things:
what the new service received, and what the client got back.

Covered: every transform kind on the route's new side (path, query, headers both
ways, JSON body ops both ways, status, error, hooks, named translators and the onion
order), compressed bodies, every failure mode with its status, one-line message and
``strangler_translate_errors_total`` count, traffic that must not be translated
(kill switch, canary at 0 %, fallback to legacy), and streaming where no body step
needs the body.

The hooks the configs name live in this module (``tests.integration.test_translate_proxy:...``).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib
import json
import socket
import textwrap
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from pytest_aiohttp import AiohttpServer
from yarl import URL

from strangler.translate import TranslateRequest, TranslateResponse
from tests.conftest import MakeProxy, RunningProxy, Upstream

HOOKS: Final = "tests.integration.test_translate_proxy"
TOKEN: Final = "translate-test-admin-token"
AUTH: Final = {"Authorization": f"Bearer {TOKEN}"}
JSON_TYPE: Final = "application/json"
STEP_WAIT: Final = 5.0  # seconds: a stream that stalls this long was buffered, not streamed


class _Brotli(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


brotli: _Brotli = importlib.import_module("brotli")  # untyped; a strangler dependency

ENCODERS: Final[Mapping[str, Callable[[bytes], bytes]]] = {
    "gzip": gzip.compress,
    "br": brotli.compress,
    "deflate": zlib.compress,
}
DECODERS: Final[Mapping[str, Callable[[bytes], bytes]]] = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "deflate": zlib.decompress,
}


def compact(doc: object) -> bytes:
    """JSON as the translation writes it: compact, UTF-8, keys in document order."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


# ---------------------------------------------------------------------------- the new service


@dataclass
class Got:
    """One request as the new service received it."""

    method: str
    raw_path: str
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


Reply = Callable[[web.Request], Awaitable[web.StreamResponse]]


class NewService:
    """The new service: ``reply`` answers (set it per test); ``got`` is what arrived."""

    def __init__(self) -> None:
        self.url = ""
        self.got: list[Got] = []
        self.reply: Reply = self.answer({"ok": True})
        self.gate = asyncio.Event()  # a streaming test's "the client has the first bytes"
        self.first = asyncio.Event()  # a streaming test's "the first request bytes arrived"

    @property
    def last(self) -> Got:
        assert self.got, "the new service got no request"
        return self.got[-1]

    async def record(self, request: web.Request) -> Got:
        got = Got(request.method, request.raw_path, CIMultiDict(request.headers), b"")
        got.body = await request.read()
        self.got.append(got)
        return got

    def answer(
        self,
        body: object,
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        content_type: str = JSON_TYPE,
        encoding: str | None = None,
    ) -> Reply:
        """A reply that records the request and answers ``body`` (JSON unless bytes)."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        if encoding is not None:
            data = ENCODERS[encoding](data)

        async def reply(request: web.Request) -> web.StreamResponse:
            await self.record(request)
            out = CIMultiDict(headers or {})
            out["Content-Type"] = content_type
            if encoding is not None:
                out["Content-Encoding"] = encoding
            return web.Response(status=status, body=data, headers=out)

        return reply


NEW_SERVICE: Final = web.AppKey("new_service", NewService)


async def _dispatch(request: web.Request) -> web.StreamResponse:
    return await request.app[NEW_SERVICE].reply(request)


@pytest.fixture
async def new(aiohttp_server: AiohttpServer) -> NewService:
    svc = NewService()
    app = web.Application(client_max_size=1 << 30)
    app[NEW_SERVICE] = svc
    app.router.add_route("*", "/{tail:.*}", _dispatch)
    # auto_decompress=False: the new service records a compressed body as it came.
    server = await aiohttp_server(app, auto_decompress=False)
    svc.url = str(server.make_url("")).rstrip("/")
    return svc


# ---------------------------------------------------------------------------- the proxy


def config(legacy: Upstream | str, billing: str, routes: str, top: str = "") -> str:
    """A proxy config: upstreams ``legacy`` (or its URL) and ``billing``, ``top`` keys,
    ``routes``."""
    legacy_url = legacy if isinstance(legacy, str) else legacy.url
    return (
        "listen: 127.0.0.1:0\n"
        "admin: {listen: 127.0.0.1:0}\n"
        "access_log: {format: off}\n"
        f"upstreams:\n  legacy: {legacy_url}\n  billing: {billing}\n"
        + textwrap.dedent(top)
        + "routes:\n"
        + textwrap.indent(textwrap.dedent(routes).strip("\n"), "  ")
        + "\n"
    )


Start = Callable[..., Awaitable[RunningProxy]]


@pytest.fixture
def start(make_proxy: MakeProxy, legacy: Upstream, new: NewService) -> Start:
    """``await start(routes, top="", billing=new.url)``: a proxy with those routes."""

    async def go(routes: str, top: str = "", billing: str | None = None) -> RunningProxy:
        return await make_proxy(config(legacy, billing or new.url, routes, top))

    return go


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        yield session


@pytest.fixture
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("STRANGLER_ADMIN_TOKEN", TOKEN)
    return TOKEN


@dataclass
class Answer:
    status: int
    reason: str
    headers: CIMultiDictProxy[str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


async def call(
    s: aiohttp.ClientSession,
    proxy: RunningProxy,
    method: str,
    path: str,
    *,
    data: bytes | AsyncIterator[bytes] | None = None,
    json_body: object = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """One request through the proxy, read whole (never decoded)."""
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers = {"Content-Type": JSON_TYPE, **(headers or {})}
    url = URL(proxy.url + path, encoded=True)  # sent as written, not normalised
    async with s.request(method, url, data=data, headers=headers, allow_redirects=False) as r:
        return Answer(r.status, r.reason or "", r.headers, await r.read())


def errors(proxy: RunningProxy, route: str, side: str) -> float:
    """``strangler_translate_errors_total{route, side}`` (0 when never counted)."""
    value = proxy.server.metrics.registry.get_sample_value(
        "strangler_translate_errors_total", {"route": route, "side": side}
    )
    return value or 0.0


def one_line(answer: Answer, *starts: str) -> None:
    """The proxy's own failure answer: plain text, one line, starting with one of ``starts``."""
    assert answer.headers["Content-Type"].startswith("text/plain"), answer.headers
    assert answer.text.endswith("\n"), answer.text
    assert answer.text.count("\n") == 1, answer.text
    assert answer.text.startswith(starts), answer.text


def echoed(answer: Answer) -> Mapping[str, object]:
    """The shared ``legacy`` upstream's echo document."""
    doc = answer.json()
    assert isinstance(doc, dict)
    return doc


# ---------------------------------------------------------------------------- hooks


def stamp_request(msg: TranslateRequest) -> TranslateRequest:
    """Request hook: count the lines into a header and the body; name the legacy client."""
    doc = msg.json
    assert isinstance(doc, dict)
    lines = doc.get("lines")
    assert isinstance(lines, list)
    doc["lineCount"] = len(lines)
    msg.headers["X-Line-Count"] = str(len(lines))
    msg.headers["X-Client-Shape"] = "legacy"
    return msg


def stamp_response(msg: TranslateResponse) -> TranslateResponse:
    """Response hook: add the path the client asked for (before translation)."""
    doc = msg.json
    assert isinstance(doc, dict)
    doc["requested"] = msg.request.path
    msg.headers["X-Hooked"] = "response"
    if msg.status == 201:
        msg.status, msg.reason = 200, "OK"
    return msg


def mark_request(msg: TranslateRequest) -> TranslateRequest:
    """Request hook that only sets a header (declared with the default ``body: true``)."""
    msg.headers["X-Hooked"] = "request"
    return msg


def head_only(msg: TranslateResponse) -> TranslateResponse:
    """Response hook declared ``body: false``: sees no body, leaves the stream alone."""
    msg.headers["X-Body-Seen"] = "none" if msg.body is None else str(len(msg.body))
    return msg


def explode(msg: TranslateRequest | TranslateResponse) -> TranslateRequest | TranslateResponse:
    raise RuntimeError("the hook blew up")


def explode_two_lines(
    msg: TranslateRequest | TranslateResponse,
) -> TranslateRequest | TranslateResponse:
    raise RuntimeError("the hook blew up\nand said so on two lines")


# ============================================================================ path


@pytest.mark.parametrize(
    ("match", "step", "sent", "received", "host"),
    [
        pytest.param(
            'path: "/api/v1/customers/{cid:int}/invoices/{inv}"',
            'rewrite: "/v2/invoices/{inv}/of/{cid}"',
            "/api/v1/customers/7/invoices/A%20B?x=1&y=%7e",
            "/v2/invoices/A%20B/of/7?x=1&y=%7e",  # params re-encoded; query byte for byte
            None,
            id="rewrite-template",
        ),
        pytest.param(
            'path: "/api/v1/files/{rest:path}"',
            'rewrite: "/files/{rest}"',
            "/api/v1/files/a/b%20c.txt",
            "/files/a/b%20c.txt",  # a {x:path} parameter keeps its slashes
            None,
            id="rewrite-path-param",
        ),
        pytest.param(
            "path_prefix: /api/v1",
            "prefix: {strip: /api/v1, add: /v2}",
            "/api/v1/orders/9?q",
            "/v2/orders/9?q",
            None,
            id="prefix",
        ),
        pytest.param(
            "path_prefix: /legacy",
            "regex: {pattern: '^/legacy/order\\.php/(\\d+)$', replace: '/v2/orders/\\1'}",
            "/legacy/order.php/12?full=1",
            "/v2/orders/12?full=1",
            None,
            id="regex",
        ),
        pytest.param(
            "path_prefix: /api/v1",
            "{prefix: {strip: /api/v1, add: /v2}, host: billing.internal:9000}",
            "/api/v1/x",
            "/v2/x",
            "billing.internal:9000",
            id="prefix-and-host",
        ),
    ],
)
async def test_path(
    start: Start,
    new: NewService,
    legacy: Upstream,
    client: aiohttp.ClientSession,
    match: str,
    step: str,
    sent: str,
    received: str,
    host: str | None,
) -> None:
    step_yaml = step if step.startswith("{") else "{" + step + "}"
    proxy = await start(
        f"""
        - name: inv
          owner: billing
          match: {{{match}}}
          to: billing
          translate:
            request:
              - path: {step_yaml}
        """
    )
    got = await call(client, proxy, "GET", sent)
    assert got.status == 200
    assert got.json() == {"ok": True}
    assert new.last.raw_path == received
    proxy_host = proxy.url.removeprefix("http://")
    assert new.last.headers["Host"] == (host or proxy_host)  # host_header: preserve
    assert not legacy.recorder.seen


async def test_path_prefix_missing_is_a_400(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    """A prefix step whose prefix the route's path does not have: the route is wrong."""
    proxy = await start(
        """
        - name: inv
          owner: billing
          match: {path_prefix: /api}
          to: billing
          translate: {request: [{path: {prefix: {strip: /api/v1, add: /v2}}}]}
        """
    )
    got = await call(client, proxy, "GET", "/api/v2/x")
    assert got.status == 400
    one_line(got, "translation failed: request.path: the path '/api/v2/x' does not start")
    assert not new.got
    assert errors(proxy, "inv", "request") == 1


# ============================================================================ query


QUERY_ROUTE: Final = """
- name: orders
  owner: billing
  match: {path: /api/v1/orders}
  to: billing
  translate:
    request:
      - query:
          rename: {cust: customer_id}
          drop: [debug]
          set: {v: "2"}
          map: {status: {OPEN: open, SHIPPED: shipped}}
"""


async def test_query_rename_drop_set_map(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(QUERY_ROUTE)
    await call(
        client,
        proxy,
        "GET",
        "/api/v1/orders?cust=1&debug=1&status=OPEN&status=VOID&v=1&v=9&q=a+b",
    )
    # In the order written: renamed in place, dropped, the first v set and later ones
    # gone, values mapped (an unknown one kept); a changed query is re-encoded.
    assert new.last.raw_path == "/api/v1/orders?customer_id=1&status=open&status=VOID&v=2&q=a%20b"
    await call(client, proxy, "GET", "/api/v1/orders?z=1")
    assert new.last.raw_path == "/api/v1/orders?z=1&v=2"  # set appends when absent


async def test_untouched_query_goes_byte_for_byte(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        """
        - name: orders
          owner: billing
          match: {path: /api/v1/orders}
          to: billing
          translate: {request: [{query: {rename: {cust: customer_id}, drop: [debug]}}]}
        """
    )
    await call(client, proxy, "GET", "/api/v1/orders?a=%7e&b&c=x+y&d=%2F")
    assert new.last.raw_path == "/api/v1/orders?a=%7e&b&c=x+y&d=%2F"


# ============================================================================ headers


async def test_request_headers_set_rename_remove_from_param(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        """
        - name: inv
          owner: billing
          match: {path: "/api/v1/invoices/{id:int}"}
          to: billing
          translate:
            request:
              - headers:
                  set: {X-Api-Version: "2"}
                  rename: {X-Cust: X-Customer}
                  remove: [X-Legacy-Session]
                  from_param: {X-Invoice-Id: id}
        """
    )
    got = await call(
        client,
        proxy,
        "GET",
        "/api/v1/invoices/5001",
        headers={"X-Api-Version": "1", "X-Cust": "42", "X-Legacy-Session": "s3", "X-Keep": "k"},
    )
    assert got.status == 200
    h = new.last.headers
    assert h.getall("X-Api-Version") == ["2"]
    assert h.getall("X-Customer") == ["42"]
    assert "X-Cust" not in h
    assert "X-Legacy-Session" not in h
    assert h["X-Invoice-Id"] == "5001"
    assert h["X-Keep"] == "k"
    assert h["X-Forwarded-For"] == "127.0.0.1"  # the proxy's own headers still come


async def test_response_headers_rewrite_paths_and_ops(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        """
        - name: inv
          owner: billing
          match: {path_prefix: /api/v1/invoices}
          to: billing
          translate:
            request:
              - path: {prefix: {strip: /api/v1/invoices, add: /v2/invoices}}
            response:
              - headers:
                  rewrite_paths: {from: /v2/invoices, to: /api/v1/invoices}
                  remove: [X-Internal]
                  rename: {X-Billing-Trace: X-Trace}
                  set: {X-Api: v1}
        """
    )
    new.reply = new.answer(
        {"created": 9},
        status=201,
        headers={
            "Location": f"{new.url}/v2/invoices/9?x=1#top",
            "Content-Location": "/v2/invoices/9",
            "Link": '</v2/invoices/9>; rel="self", </v2/invoices?page=2>; rel="next", '
            '</v2/invoicesX/1>; rel="other", </help>; rel="help"',
            "X-Internal": "secret",
            "X-Billing-Trace": "t-1",
        },
    )
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body={"n": 1})
    assert new.last.raw_path == "/v2/invoices"
    assert got.status == 201
    # an absolute URL is put on the client's origin: the new service's host never leaks
    assert got.headers["Location"] == f"{proxy.url}/api/v1/invoices/9?x=1#top"
    assert got.headers["Content-Location"] == "/api/v1/invoices/9"
    assert got.headers["Link"] == (
        '</api/v1/invoices/9>; rel="self", </api/v1/invoices?page=2>; rel="next", '
        '</v2/invoicesX/1>; rel="other", </help>; rel="help"'  # whole segments only
    )
    assert "X-Internal" not in got.headers
    assert got.headers["X-Trace"] == "t-1"
    assert "X-Billing-Trace" not in got.headers
    assert got.headers["X-Api"] == "v1"
    assert got.json() == {"created": 9}


# ============================================================================ JSON bodies


JSON_REQUEST_ROUTE: Final = """
- name: inv
  owner: billing
  match: {path: /api/v1/invoices, methods: [POST]}
  to: billing
  translate:
    request:
      - path: {rewrite: /v2/invoices}
      - json:
          - require: [customer_id, lines]
          - move: {from: customer_id, to: customer.id}
          - rename: {from: customer_name, to: customer.name}
          - drop: [debug, internal.trace]
          - set: {path: source, value: {system: legacy, via: strangler}}
          - default: {path: currency, value: EUR}
          - default: {path: note, value: none}
          - map: {path: status, values: {OPEN: open, PAID: paid, OVERDUE: past_due}}
          - scale: {path: total_cents, to: amounts.total, divide: 100, as: decimal_string}
          - date: {path: issued_on, from: "%d/%m/%Y", to: iso8601}
          - date: {path: created, from: epoch, to: iso8601}
          - convert: {path: qty, to: int}
          - convert: {path: paid, to: bool}
          - each:
              path: lines
              do:
                - scale: {path: unit_price_cents, to: unitPrice, divide: 100, as: decimal_string}
                - convert: {path: qty, to: int}
          - wrap: data
"""


async def test_json_request_body_ops(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(JSON_REQUEST_ROUTE)
    legacy_doc = {
        "customer_id": 7,
        "customer_name": "Ada",
        "status": "OVERDUE",
        "total_cents": -1205,
        "issued_on": "16/01/2024",
        "created": 1705363200,
        "qty": "3",
        "paid": 0,
        "currency": None,
        "note": "keep me",
        "debug": True,
        "internal": {"trace": "t", "keep": 1},
        "lines": [
            {"sku": "A", "unit_price_cents": 995, "qty": "2"},
            {"sku": "B", "unit_price_cents": 5, "qty": 1.0},
        ],
    }
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body=legacy_doc)
    assert got.status == 200, got.text
    received = new.last
    assert received.raw_path == "/v2/invoices"
    assert received.body == compact(
        {
            "data": {
                "status": "past_due",
                "issued_on": "2024-01-16",
                "created": "2024-01-16T00:00:00+00:00",
                "qty": 3,
                "paid": False,
                "currency": "EUR",  # null counts as absent for default
                "note": "keep me",
                "internal": {"keep": 1},
                "lines": [
                    {"sku": "A", "qty": 2, "unitPrice": "9.95"},
                    {"sku": "B", "qty": 1, "unitPrice": "0.05"},
                ],
                "customer": {"id": 7, "name": "Ada"},
                "source": {"system": "legacy", "via": "strangler"},
                "amounts": {"total": "-12.05"},
            }
        }
    )
    assert received.headers["Content-Length"] == str(len(received.body))
    assert received.headers["Content-Type"] == JSON_TYPE


JSON_RESPONSE_ROUTE: Final = """
- name: inv
  owner: billing
  match: {path: "/api/v1/invoices/{id:int}"}
  to: billing
  translate:
    request:
      - path: {rewrite: "/v2/invoices/{id}"}
    response:
      - json:
          - unwrap: data
          - require: [invoiceId, amounts.total]
          - rename: {from: invoiceId, to: id}
          - move: {from: customer.id, to: customer_id}
          - rename: {from: customer.name, to: customer_name}
          - map: {path: state, values: {open: OPEN, paid: PAID, past_due: OVERDUE}}
          - rename: {from: state, to: status}
          - scale: {path: amounts.total, to: total_cents, multiply: 100, as: int}
          - scale: {path: amounts.tax, to: tax_rate, divide: 1, as: number}
          - date: {path: issuedAt, from: iso8601, to: "%Y-%m-%d"}
          - rename: {from: issuedAt, to: issued_on}
          - date: {path: dueAt, from: epoch_ms, to: "%d/%m/%Y"}
          - convert: {path: paid, to: bool}
          - convert: {path: number, to: string}
          - default: {path: currency, value: EUR}
          - set: {path: api, value: 1}
          - each:
              path: lines
              do:
                - scale: {path: unitPrice, to: unit_price_cents, multiply: 100, as: int}
                - map: {path: kind, values: {good: GOODS}, other: keep}
          - drop: [customer, amounts, internal]
"""


async def test_json_response_body_ops(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(JSON_RESPONSE_ROUTE)
    new.reply = new.answer(
        {
            "data": {
                "invoiceId": 9,
                "customer": {"id": 7, "name": "Ada"},
                "state": "past_due",
                "amounts": {"total": "149.40", "tax": "0.25"},
                "issuedAt": "2024-01-16T00:00:00Z",
                "dueAt": 1707955200000,
                "paid": "true",
                "number": 12,
                "internal": {"shard": 3},
                "lines": [
                    {"unitPrice": "9.95", "kind": "good"},
                    {"unitPrice": "0.05", "kind": "service"},
                ],
            },
            "meta": {"v": 2},
        }
    )
    got = await call(client, proxy, "GET", "/api/v1/invoices/9")
    assert new.last.raw_path == "/v2/invoices/9"
    assert got.status == 200, got.text
    assert got.body == compact(
        {
            "dueAt": "15/02/2024",
            "paid": True,
            "number": "12",
            "lines": [
                {"kind": "GOODS", "unit_price_cents": 995},
                {"kind": "service", "unit_price_cents": 5},
            ],
            "id": 9,
            "customer_id": 7,
            "customer_name": "Ada",
            "status": "OVERDUE",
            "total_cents": 14940,
            "tax_rate": 0.25,
            "issued_on": "2024-01-16",
            "currency": "EUR",
            "api": 1,
        }
    )
    assert got.headers["Content-Length"] == str(len(got.body))
    assert got.headers["Content-Type"] == JSON_TYPE


async def test_exact_scale_both_ways(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    """cents → "12.34" on the way in, "12.34" → cents on the way out: exact, never a float."""
    proxy = await start(
        """
        - name: pay
          owner: billing
          match: {path: /api/v1/payments}
          to: billing
          translate:
            request:
              - json: [{scale: {path: amount_cents, to: amount, divide: 100, as: decimal_string}}]
            response:
              - json: [{scale: {path: amount, to: amount_cents, multiply: 100, as: int}}]
        """
    )
    for cents in (0, 1, 10, 99, 100, 1999, 123456789012345678, -5):
        amount = f"{'-' if cents < 0 else ''}{abs(cents) // 100}.{abs(cents) % 100:02d}"
        new.reply = new.answer({"amount": amount})
        got = await call(
            client, proxy, "POST", "/api/v1/payments", json_body={"amount_cents": cents}
        )
        assert new.last.json() == {"amount": amount}
        assert got.json() == {"amount_cents": cents}
    # Not exact in cents: an error, never a rounded amount.
    new.reply = new.answer({"amount": "0.005"})
    got = await call(client, proxy, "POST", "/api/v1/payments", json_body={"amount_cents": 1})
    assert got.status == 502
    one_line(got, "translation failed: response.json[0] scale amount: ")
    assert errors(proxy, "pay", "response") == 1


async def test_wrap_and_unwrap_both_ways(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        """
        - name: inv
          owner: billing
          match: {path: /api/v1/invoices}
          to: billing
          translate:
            request: [{json: [{unwrap: invoice.draft}]}]
            response: [{json: [{wrap: result.invoice}]}]
        """
    )
    new.reply = new.answer({"id": 1})
    got = await call(
        client, proxy, "POST", "/api/v1/invoices", json_body={"invoice": {"draft": {"n": 1}}}
    )
    assert new.last.json() == {"n": 1}
    assert got.json() == {"result": {"invoice": {"id": 1}}}
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body={"invoice": {}})
    assert got.status == 400  # unwrap: an absent key is an error
    one_line(got, "translation failed: request.json[0] unwrap invoice.draft: no 'draft' in invoice")


# ============================================================================ status, error


async def test_status_map(start: Start, new: NewService, client: aiohttp.ClientSession) -> None:
    proxy = await start(
        """
        - name: inv
          owner: billing
          match: {path_prefix: /api/v1/invoices}
          to: billing
          translate: {response: [{status: {map: {201: 200, 202: 200}}}]}
        """
    )
    new.reply = new.answer({"id": 1}, status=201)
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body={})
    assert (got.status, got.reason, got.json()) == (200, "OK", {"id": 1})
    new.reply = new.answer({"id": 2}, status=203)
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body={})
    assert (got.status, got.json()) == (203, {"id": 2})


ERROR_ROUTE: Final = """
- name: inv
  owner: billing
  match: {path_prefix: /api/v1/invoices}
  to: billing
  fallback: false
  translate:
    response:
      - json: [{require: [invoiceId]}, {rename: {from: invoiceId, to: id}}]
      - error: {when: 422, status: 400, body: {error: "$.message", field: "$.details[0].field"}}
      - error: {when: [404, 5xx], body: {error: "$.message", code: "$.code", raw: "$"}}
"""


async def test_error_body_mapping(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(ERROR_ROUTE)
    new.reply = new.answer({"code": "NOT_FOUND", "message": "invoice 9 not found"}, status=404)
    got = await call(client, proxy, "GET", "/api/v1/invoices/9")
    assert got.status == 404
    assert got.headers["Content-Type"] == "application/json; charset=utf-8"  # the default
    assert got.json() == {
        "error": "invoice 9 not found",
        "code": "NOT_FOUND",
        "raw": {"code": "NOT_FOUND", "message": "invoice 9 not found"},
    }
    assert got.headers["Content-Length"] == str(len(got.body))

    new.reply = new.answer(
        {"code": "INVALID", "message": "bad total", "details": [{"field": "total"}]}, status=422
    )
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body={"total": -1})
    assert (got.status, got.reason) == (400, "Bad Request")
    assert got.json() == {"error": "bad total", "field": "total"}
    assert got.headers["Content-Length"] == str(len(got.body))

    new.reply = new.answer(b"down for maintenance", status=503, content_type="text/plain")
    got = await call(client, proxy, "GET", "/api/v1/invoices/9")
    assert got.status == 503
    assert got.json() == {"error": None, "code": None, "raw": "down for maintenance"}

    # A success still takes the json step the error steps skip.
    new.reply = new.answer({"invoiceId": 9})
    got = await call(client, proxy, "GET", "/api/v1/invoices/9")
    assert (got.status, got.json()) == (200, {"id": 9})
    assert errors(proxy, "inv", "response") == 0


# ============================================================================ hooks


async def test_request_and_response_hooks(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        f"""
        - name: orders
          owner: billing
          match: {{path: /api/v1/orders}}
          to: billing
          translate:
            request:
              - json: [{{rename: {{from: items, to: lines}}}}]
              - hook: {HOOKS}:stamp_request
            response:
              - hook: "{HOOKS}.stamp_response"
              - json: [{{rename: {{from: orderId, to: id}}}}]
        """
    )
    new.reply = new.answer({"orderId": 3}, status=201)
    got = await call(client, proxy, "POST", "/api/v1/orders", json_body={"items": [1, 2, 3]})
    assert new.last.json() == {"lines": [1, 2, 3], "lineCount": 3}
    assert new.last.headers["X-Line-Count"] == "3"
    assert new.last.headers["X-Client-Shape"] == "legacy"
    assert new.last.headers["Content-Length"] == str(len(new.last.body))
    assert (got.status, got.reason) == (200, "OK")
    assert got.headers["X-Hooked"] == "response"
    assert got.json() == {"requested": "/api/v1/orders", "id": 3}  # the client's own path


async def test_request_hook_runs_on_a_request_without_a_body(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(_route(f"{{request: [{{hook: '{HOOKS}:mark_request'}}]}}"))
    await call(client, proxy, "POST", "/api/v1/invoices", json_body={"n": 1})
    assert new.last.headers.get("X-Hooked") == "request"  # with a body it runs
    await call(client, proxy, "GET", "/api/v1/invoices/1")
    assert new.last.headers.get("X-Hooked") == "request"


async def test_head_only_hook_keeps_streaming(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        f"""
        - name: big
          owner: billing
          match: {{path: /api/v1/export}}
          to: billing
          translate:
            response: [{{hook: {{call: "{HOOKS}:head_only", body: false}}}}]
        """
    )
    new.reply = _chunked_reply(new, chunks=8, size=16 * 1024)
    got = await call(client, proxy, "GET", "/api/v1/export")
    assert got.headers["X-Body-Seen"] == "none"
    assert got.headers["Transfer-Encoding"] == "chunked"
    assert got.body == _chunked_body(8, 16 * 1024)


# ============================================================================ named translators


NAMED: Final = """
translators:
  v2-paths:
    request:
      - path: {prefix: {strip: /api/v1, add: /x}}
      - headers: {set: {X-Layer: outer}}
    response:
      - json: [{rename: {from: amount, to: total}}]
      - headers: {set: {X-Layer: outer}}
  v2-body:
    request:
      - path: {prefix: {strip: /x, add: /v2}}
      - headers: {set: {X-Layer: inner}}
    response:
      - json: [{rename: {from: sum, to: amount}}]
      - headers: {set: {X-Layer: inner}}
"""


async def test_named_translators_onion(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        """
        - name: a
          owner: billing
          match: {path_prefix: /api/v1/a}
          to: billing
          translate: [{use: v2-paths}, {use: v2-body}]
        - name: b
          owner: billing
          match: {path_prefix: /api/v1/b}
          to: billing
          translate: {use: v2-paths}
        """,
        top=NAMED,
    )
    new.reply = new.answer({"sum": 5})
    got = await call(client, proxy, "GET", "/api/v1/a/1")
    # Requests: outer then inner (/api/v1/a/1 → /x/a/1 → /v2/a/1); the inner layer's
    # header set wins. Responses: inner then outer (sum → amount → total).
    assert new.last.raw_path == "/v2/a/1"
    assert new.last.headers["X-Layer"] == "inner"
    assert got.json() == {"total": 5}
    assert got.headers["X-Layer"] == "outer"
    # The same named translator, reused alone by another route.
    new.reply = new.answer({"amount": 6})
    got = await call(client, proxy, "GET", "/api/v1/b/2")
    assert new.last.raw_path == "/x/b/2"
    assert got.json() == {"total": 6}


# ============================================================================ compression


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
async def test_compressed_response_is_translated_and_encoded_again(
    start: Start, new: NewService, client: aiohttp.ClientSession, encoding: str
) -> None:
    proxy = await start(
        """
        - name: inv
          owner: billing
          match: {path_prefix: /api/v1/invoices}
          to: billing
          translate:
            response:
              - json:
                  - rename: {from: invoiceId, to: id}
                  - map: {path: state, values: {open: OPEN}}
        """
    )
    doc = {"invoiceId": 1, "state": "open", "pad": "x" * 5000}
    new.reply = new.answer(doc, encoding=encoding)
    got = await call(client, proxy, "GET", "/api/v1/invoices/1")
    assert got.status == 200
    # The plan keeps the coding the new service chose, and Content-Length is the
    # length of the new encoded bytes.
    assert got.headers["Content-Encoding"] == encoding
    assert got.headers["Content-Length"] == str(len(got.body))
    assert len(got.body) < 1000  # really compressed, not identity under the header
    assert DECODERS[encoding](got.body) == compact({"state": "OPEN", "pad": "x" * 5000, "id": 1})


@pytest.mark.parametrize("encoding", ["gzip", "br"])
async def test_compressed_request_is_translated_and_encoded_again(
    start: Start, new: NewService, client: aiohttp.ClientSession, encoding: str
) -> None:
    proxy = await start(
        """
        - name: inv
          owner: billing
          match: {path_prefix: /api/v1/invoices}
          to: billing
          translate:
            request: [{json: [{rename: {from: customer_id, to: customerId}}]}]
        """
    )
    raw = ENCODERS[encoding](json.dumps({"customer_id": 3, "pad": "y" * 4000}).encode())
    got = await call(
        client,
        proxy,
        "POST",
        "/api/v1/invoices",
        data=raw,
        headers={"Content-Type": JSON_TYPE, "Content-Encoding": encoding},
    )
    assert got.status == 200
    received = new.last
    assert received.headers["Content-Encoding"] == encoding
    assert received.headers["Content-Length"] == str(len(received.body))
    assert DECODERS[encoding](received.body) == compact({"pad": "y" * 4000, "customerId": 3})


async def test_undecodable_body_is_a_clear_error(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        """
        - name: inv
          owner: billing
          match: {path_prefix: /api/v1/invoices}
          to: billing
          translate: {response: [{json: [{drop: [x]}]}]}
        """
    )
    new.reply = new.answer(b"not gzip at all", headers={"Content-Encoding": "gzip"})
    got = await call(client, proxy, "GET", "/api/v1/invoices/1")
    assert got.status == 502
    one_line(got, "translation failed: response body: the body is not valid gzip")
    assert errors(proxy, "inv", "response") == 1


# ============================================================================ failures


def _route(translate: str, name: str = "inv", extra: str = "") -> str:
    return f"""
    - name: {name}
      owner: billing
      match: {{path_prefix: /api/v1/invoices}}
      to: billing
      {extra}
      translate: {translate}
    """


async def test_invalid_json_from_the_new_service_is_a_502(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(_route("{response: [{json: [{rename: {from: a, to: b}}]}]}"))
    new.reply = new.answer(b'{"a": 1,', headers={"X-From": "new"})
    got = await call(client, proxy, "GET", "/api/v1/invoices/1")
    assert got.status == 502
    one_line(got, "translation failed: response.json: the body is not valid JSON")
    assert "X-From" not in got.headers
    assert errors(proxy, "inv", "response") == 1
    assert errors(proxy, "inv", "request") == 0


async def test_invalid_json_passthrough_goes_untouched(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        _route(
            "{on_error: passthrough, response: [{json: [{rename: {from: a, to: b}}]},"
            " {headers: {set: {X-Translated: 'yes'}}}, {status: {map: {200: 203}}}]}"
        )
    )
    new.reply = new.answer(b'{"a": 1,', headers={"X-From": "new"})
    got = await call(client, proxy, "GET", "/api/v1/invoices/1")
    # The body as it came; the steps that do not touch the body still ran.
    assert (got.status, got.body) == (203, b'{"a": 1,')
    assert got.headers["Content-Length"] == "8"
    assert got.headers["X-Translated"] == "yes"
    assert got.headers["X-From"] == "new"
    assert errors(proxy, "inv", "response") == 0


async def test_missing_required_field(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        _route(
            "{request: [{json: [{require: [customer_id]}]}],"
            " response: [{json: [{require: [data.invoiceId]}]}]}"
        )
    )
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body={"total": 1})
    assert got.status == 400
    one_line(got, "translation failed: request.json[0] require: required field customer_id")
    assert not new.got  # an untranslatable request never reaches the new service
    assert errors(proxy, "inv", "request") == 1

    new.reply = new.answer({"data": {"id": 1}})
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body={"customer_id": 1})
    assert got.status == 502
    one_line(got, "translation failed: response.json[0] require: required field data.invoiceId")
    assert errors(proxy, "inv", "response") == 1


async def test_failing_hooks(start: Start, new: NewService, client: aiohttp.ClientSession) -> None:
    proxy = await start(
        _route(f"{{request: [{{hook: '{HOOKS}:explode'}}]}}", name="req")
        + _route(f"{{response: [{{hook: '{HOOKS}:explode'}}]}}", name="resp").replace(
            "/api/v1/invoices", "/api/v1/other"
        )
    )
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body={"n": 1})
    assert got.status == 500
    one_line(
        got,
        f"translation failed: request.hook: hook {HOOKS}:explode failed: "
        "RuntimeError: the hook blew up",
    )
    assert not new.got
    assert errors(proxy, "req", "request") == 1

    got = await call(client, proxy, "GET", "/api/v1/other/1")
    assert got.status == 502
    one_line(got, f"translation failed: response.hook: hook {HOOKS}:explode failed")
    assert len(new.got) == 1
    assert errors(proxy, "resp", "response") == 1


async def test_failing_response_hook_passthrough(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        _route(f"{{on_error: passthrough, response: [{{hook: '{HOOKS}:explode'}}]}}")
    )
    new.reply = new.answer({"as": "it came"})
    got = await call(client, proxy, "GET", "/api/v1/invoices/1")
    assert (got.status, got.json()) == (200, {"as": "it came"})
    assert errors(proxy, "inv", "response") == 0


async def test_failing_hook_message_stays_one_line(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(_route(f"{{request: [{{hook: '{HOOKS}:explode_two_lines'}}]}}"))
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body={"n": 1})
    assert got.status == 500
    one_line(got, "translation failed: request.hook")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_request_body_over_max_body_is_a_413(
    start: Start, new: NewService, client: aiohttp.ClientSession, chunked: bool
) -> None:
    proxy = await start(
        _route("{max_body: 1kb, request: [{json: [{drop: [x]}]}]}", extra="fallback: false")
    )
    body = json.dumps({"x": "z" * 3000}).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 500):
            yield body[i : i + 500]

    got = await call(
        client,
        proxy,
        "POST",
        "/api/v1/invoices",
        data=chunks() if chunked else body,
        headers={"Content-Type": JSON_TYPE},
    )
    assert got.status == 413
    one_line(got, "translation failed: request body: ")
    assert "1000 bytes" in got.text or "1024 bytes" in got.text
    assert not new.got
    assert errors(proxy, "inv", "request") == 1


async def test_request_body_within_max_body_is_translated(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(_route("{max_body: 4kb, request: [{json: [{drop: [x]}]}]}"))
    got = await call(client, proxy, "POST", "/api/v1/invoices", json_body={"x": "z" * 3000, "k": 1})
    assert got.status == 200
    assert new.last.json() == {"k": 1}


async def test_response_over_max_body_is_a_502(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(_route("{max_body: 1kb, response: [{json: [{drop: [x]}]}]}"))
    new.reply = _chunked_reply(new, chunks=16, size=1024)
    got = await call(client, proxy, "GET", "/api/v1/invoices/1")
    assert got.status == 502
    one_line(got, "translation failed: response body: ")
    assert errors(proxy, "inv", "response") == 1


async def test_response_over_max_body_passthrough_streams_it(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        _route("{max_body: 1kb, on_error: passthrough, response: [{json: [{drop: [x]}]}]}")
    )
    new.reply = _chunked_reply(new, chunks=64, size=8 * 1024)
    got = await call(client, proxy, "GET", "/api/v1/invoices/1")
    assert got.status == 200
    assert got.headers["Transfer-Encoding"] == "chunked"
    assert got.body == _chunked_body(64, 8 * 1024)
    assert errors(proxy, "inv", "response") == 0


async def test_response_over_max_body_passthrough_still_runs_head_steps(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        _route(
            "{max_body: 1kb, on_error: passthrough, response: [{json: [{drop: [x]}]},"
            " {status: {map: {200: 203}}}, {headers: {set: {X-Translated: 'yes'}}}]}"
        )
    )
    new.reply = _chunked_reply(new, chunks=4, size=1024)
    got = await call(client, proxy, "GET", "/api/v1/invoices/1")
    assert got.body == _chunked_body(4, 1024)
    assert (got.status, got.headers.get("X-Translated")) == (203, "yes")


# ============================================================================ HEAD


async def test_head_gets_the_error_steps_status(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        _route("{response: [{error: {when: 404, status: 410, body: {error: '$.message'}}}]}")
    )
    new.reply = new.answer({"message": "gone"}, status=404)
    get = await call(client, proxy, "GET", "/api/v1/invoices/1")
    assert get.status == 410
    head = await call(client, proxy, "HEAD", "/api/v1/invoices/1")
    assert head.status == 410


async def test_head_content_length_matches_the_translated_get(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        _route("{response: [{json: [{rename: {from: invoiceIdentifier, to: id}}]}]}")
    )
    new.reply = new.answer({"invoiceIdentifier": 1})
    get = await call(client, proxy, "GET", "/api/v1/invoices/1")
    assert get.json() == {"id": 1}
    head = await call(client, proxy, "HEAD", "/api/v1/invoices/1")
    assert head.status == 200
    assert head.headers.get("Content-Length") in (None, str(len(get.body)))


# ============================================================================ legacy traffic


LEGACY_ROUTE: Final = """
- name: inv
  owner: billing
  match: {path: "/api/v1/invoices/{id:int}"}
  to: billing
  translate:
    request:
      - path: {rewrite: "/v2/invoices/{id}"}
      - query: {rename: {cust: customer}}
      - headers: {rename: {X-Cust: X-Customer}}
      - json: [{rename: {from: total_cents, to: total}}]
    response:
      - json: [{drop: [served_by]}, {set: {path: translated, value: true}}]
"""


def _untranslated_by_legacy(legacy: Upstream, got: Answer, body: bytes) -> None:
    """Legacy got the client's request as it was, and the client legacy's answer."""
    assert got.status == 200
    doc = echoed(got)
    assert doc["served_by"] == "legacy"  # the response json step would have dropped it
    assert "translated" not in doc
    seen = legacy.recorder.seen[-1]
    assert seen.raw_path == "/api/v1/invoices/5?cust=1"
    assert legacy.recorder.header(len(legacy.recorder.seen) - 1, "X-Cust") == ["7"]
    assert seen.body == body


async def test_kill_switch_sends_legacy_the_untranslated_request(
    start: Start,
    new: NewService,
    legacy: Upstream,
    client: aiohttp.ClientSession,
    token: str,
) -> None:
    proxy = await start(LEGACY_ROUTE)
    body = json.dumps({"total_cents": 5}).encode()
    headers = {"X-Cust": "7", "Content-Type": JSON_TYPE}
    new.reply = new.answer({"served_by": "new"})
    got = await call(client, proxy, "PUT", "/api/v1/invoices/5?cust=1", data=body, headers=headers)
    assert got.json() == {"translated": True}
    assert new.last.raw_path == "/v2/invoices/5?customer=1"
    assert new.last.json() == {"total": 5}

    async with client.post(proxy.admin_url + "/api/routes/inv/rollback") as r:
        assert r.status == 401  # the kill switch needs the token
    async with client.post(proxy.admin_url + "/api/routes/inv/rollback", headers=AUTH) as r:
        assert r.status == 200, await r.text()
    got = await call(client, proxy, "PUT", "/api/v1/invoices/5?cust=1", data=body, headers=headers)
    _untranslated_by_legacy(legacy, got, body)
    assert len(new.got) == 1
    assert errors(proxy, "inv", "request") == errors(proxy, "inv", "response") == 0


async def test_canary_at_zero_percent_is_untranslated_legacy(
    make_proxy: MakeProxy,
    new: NewService,
    legacy: Upstream,
    client: aiohttp.ClientSession,
) -> None:
    routes = LEGACY_ROUTE.replace(
        "  to: billing\n", "  to: legacy\n  canary: {to: billing, percent: 0%}\n  overrides: true\n"
    )
    proxy = await make_proxy(config(legacy, new.url, routes))
    body = json.dumps({"total_cents": 5}).encode()
    headers = {"X-Cust": "7", "Content-Type": JSON_TYPE}
    for _ in range(20):
        got = await call(
            client, proxy, "PUT", "/api/v1/invoices/5?cust=1", data=body, headers=headers
        )
        _untranslated_by_legacy(legacy, got, body)
    assert not new.got
    # A tester forcing the new side gets the translation: it is configured, and on
    # that side only.
    got = await call(
        client,
        proxy,
        "PUT",
        "/api/v1/invoices/5?cust=1",
        data=body,
        headers={**headers, "X-Strangler-Backend": "billing"},
    )
    assert got.json() == {"ok": True, "translated": True}
    assert new.last.raw_path == "/v2/invoices/5?customer=1"


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_fallback_when_the_new_side_is_down_sends_the_original(
    start: Start, legacy: Upstream, client: aiohttp.ClientSession
) -> None:
    proxy = await start(LEGACY_ROUTE, billing=f"http://127.0.0.1:{_dead_port()}")
    body = json.dumps({"total_cents": 5}).encode()
    headers = {"X-Cust": "7", "Content-Type": JSON_TYPE}
    got = await call(client, proxy, "PUT", "/api/v1/invoices/5?cust=1", data=body, headers=headers)
    _untranslated_by_legacy(legacy, got, body)
    registry = proxy.server.metrics.registry
    assert (
        registry.get_sample_value(
            "strangler_fallbacks_total", {"route": "inv", "failure": "refused"}
        )
        == 1
    )


async def test_fallback_on_5xx_sends_legacy_the_original(
    start: Start, new: NewService, legacy: Upstream, client: aiohttp.ClientSession
) -> None:
    proxy = await start(LEGACY_ROUTE)
    new.reply = new.answer({"message": "boom"}, status=503)
    body = json.dumps({"total_cents": 5}).encode()
    headers = {"X-Cust": "7", "Content-Type": JSON_TYPE}
    got = await call(client, proxy, "PUT", "/api/v1/invoices/5?cust=1", data=body, headers=headers)
    assert new.last.raw_path == "/v2/invoices/5?customer=1"  # it had the translated one
    assert new.last.json() == {"total": 5}
    _untranslated_by_legacy(legacy, got, body)


async def test_body_over_the_fallback_buffer_is_translated_whole(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    # When the whole body came in the fallback buffering's reads, the plan is given
    # b"" and the new service the original Content-Length: it would wait for its
    # read timeout. A short one makes this xfail quick.
    proxy = await start(
        _route("{request: [{json: [{rename: {from: a, to: b}}]}]}"),
        billing=f"{{url: '{new.url}', timeout: {{read: 500ms}}}}",
    )
    doc = {"a": 1, "pad": "p" * 100_000}  # over fallback.buffer (64kb), under max_body (1MiB)
    got = await call(client, proxy, "PUT", "/api/v1/invoices/1", json_body=doc)
    assert got.status == 200, got.text
    assert new.last.json() == {"pad": "p" * 100_000, "b": 1}


async def test_body_over_the_fallback_buffer_without_fallback_is_translated(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(
        _route("{request: [{json: [{rename: {from: a, to: b}}]}]}", extra="fallback: false")
    )
    doc = {"a": 1, "pad": "p" * 100_000}
    got = await call(client, proxy, "PUT", "/api/v1/invoices/1", json_body=doc)
    assert got.status == 200, got.text
    assert new.last.json() == {"pad": "p" * 100_000, "b": 1}


# ============================================================================ streaming


def _chunked_body(chunks: int, size: int) -> bytes:
    return b"".join(bytes([65 + i % 26]) * size for i in range(chunks))


def _chunked_reply(
    svc: NewService, *, chunks: int, size: int, gate_after_first: bool = False
) -> Reply:
    """Records the request, then answers ``chunks`` chunks of ``size`` bytes, chunked
    (no Content-Length). ``gate_after_first``: wait for ``svc.gate`` after chunk one."""

    async def reply(request: web.Request) -> web.StreamResponse:
        await svc.record(request)
        resp = web.StreamResponse(headers={"Content-Type": JSON_TYPE})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i in range(chunks):
            await resp.write(bytes([65 + i % 26]) * size)
            if i == 0 and gate_after_first:
                await svc.gate.wait()
        await resp.write_eof()
        return resp

    return reply


HEAD_ONLY: Final = """
- name: export
  owner: billing
  match: {path_prefix: /api/v1/export}
  to: billing
  translate:
    request:
      - path: {prefix: {strip: /api/v1, add: /v2}}
      - headers: {set: {X-Api-Version: "2"}}
    response:
      - status: {map: {201: 200}}
      - headers: {set: {X-Translated: "yes"}, remove: [X-Internal]}
      - error: {when: ">=400", body: {error: "$.message"}}
"""


async def read_streamed(
    s: aiohttp.ClientSession, proxy: RunningProxy, path: str, new: NewService
) -> tuple[int, CIMultiDictProxy[str], int, bytes]:
    """GET a ``gate_after_first`` answer: the first bytes must arrive while the new
    service still holds the rest (a buffering proxy never gets them, and the wait
    fails); then open the gate and read on. Returns status, headers, size, sha256."""
    digest = hashlib.sha256()
    async with s.get(URL(proxy.url + path, encoded=True)) as r:
        first = await asyncio.wait_for(r.content.readany(), STEP_WAIT)
        assert first
        digest.update(first)
        total = len(first)
        new.gate.set()
        async for part in r.content.iter_any():
            digest.update(part)
            total += len(part)
        return r.status, r.headers, total, digest.digest()


async def test_large_chunked_response_streams_through_head_only_translation(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(HEAD_ONLY)
    chunks, size = 64, 64 * 1024  # 4 MiB, well over max_body (1 MiB): not buffered
    new.reply = _chunked_reply(new, chunks=chunks, size=size, gate_after_first=True)
    status, headers, total, digest = await read_streamed(client, proxy, "/api/v1/export/all", new)
    assert status == 200
    assert headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in headers
    assert headers["X-Translated"] == "yes"
    assert total == chunks * size
    assert digest == hashlib.sha256(_chunked_body(chunks, size)).digest()
    assert new.last.raw_path == "/v2/export/all"
    assert new.last.headers["X-Api-Version"] == "2"


async def test_request_body_streams_without_request_body_steps(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    proxy = await start(HEAD_ONLY)
    part = b"r" * (256 * 1024)

    async def upload(request: web.Request) -> web.StreamResponse:
        got = Got(request.method, request.raw_path, CIMultiDict(request.headers), b"")
        first = await request.content.readany()
        new.first.set()
        got.body = first + await request.read()
        new.got.append(got)
        return web.json_response({"got": len(got.body)})

    new.reply = upload

    async def body() -> AsyncIterator[bytes]:
        yield part
        # The rest only once the new service has the first part: a proxy that
        # buffered the upload would wait here for ever.
        await asyncio.wait_for(new.first.wait(), STEP_WAIT)
        for _ in range(7):
            yield part

    got = await call(client, proxy, "POST", "/api/v1/export/in", data=body())
    assert got.status == 200
    assert got.json() == {"got": 8 * len(part)}
    assert new.last.headers["Transfer-Encoding"] == "chunked"
    assert new.last.body == part * 8


async def test_error_only_route_streams_successes_and_translates_errors(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    """An ``error:`` step needs the body of errors only: a 200 keeps streaming."""
    proxy = await start(HEAD_ONLY)
    new.reply = _chunked_reply(new, chunks=8, size=4096, gate_after_first=True)
    status, headers, total, _ = await read_streamed(client, proxy, "/api/v1/export/x", new)
    assert (status, total) == (200, 8 * 4096)
    assert headers["Transfer-Encoding"] == "chunked"
    new.reply = new.answer({"message": "nope"}, status=404, headers={"X-Internal": "i"})
    got = await call(client, proxy, "GET", "/api/v1/export/x")
    assert (got.status, got.json()) == (404, {"error": "nope"})
    assert got.headers["X-Translated"] == "yes"
    assert "X-Internal" not in got.headers


@pytest.fixture
async def one_write_upstream() -> AsyncIterator[str]:
    """A bare HTTP/1.1 upstream that answers every request with one small chunked
    response written in a single write (so it arrives complete with its head)."""
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


async def test_chunked_framing_is_kept_without_translation(
    start: Start, client: aiohttp.ClientSession, one_write_upstream: str
) -> None:
    """The transparency contract, on the same route without translate: for reference."""
    proxy = await start(
        """
        - name: export
          owner: billing
          match: {path_prefix: /api/v1/export}
          to: billing
        """,
        billing=one_write_upstream,
    )
    got = await call(client, proxy, "GET", "/api/v1/export/x")
    assert got.body == b"hello world"
    assert got.headers.get("Transfer-Encoding") == "chunked"


async def test_chunked_framing_is_kept_through_head_only_translation(
    start: Start, client: aiohttp.ClientSession, one_write_upstream: str
) -> None:
    proxy = await start(HEAD_ONLY, billing=one_write_upstream)
    got = await call(client, proxy, "GET", "/api/v1/export/x")
    assert (got.body, got.headers["X-Translated"]) == (b"hello world", "yes")
    assert got.headers.get("Transfer-Encoding") == "chunked"


async def test_a_path_parameter_moves_into_the_query_and_location_keeps_legacy_form(
    start: Start, new: NewService, client: aiohttp.ClientSession
) -> None:
    """``GET /customers/{id}/orders`` → ``GET /v2/orders?customer={id}`` with the client's
    own query kept; a ``Location`` the new service answers relative comes back absolute
    on the client's origin, as the legacy app wrote it."""
    proxy = await start(
        """
        - name: customer-orders
          owner: orders
          match: {path: "/customers/{id:int}/orders", query_only: [status]}
          to: billing
          translate:
            request:
              - path: {rewrite: "/v2/orders?customer={id}"}
            response:
              - headers: {rewrite_paths: {from: /v2/orders, to: /orders, absolute: true}}
        """
    )
    new.reply = new.answer({"items": []}, headers={"Location": "/v2/orders/77"})
    got = await call(client, proxy, "GET", "/customers/7/orders?status=open")
    assert new.last.raw_path == "/v2/orders?status=open&customer=7"
    assert got.headers["Location"] == f"{proxy.url}/orders/77"
    # query_only: a paging call this route does not translate stays on legacy
    before = len(new.got)
    paged = await call(client, proxy, "GET", "/customers/7/orders?page=2")
    assert len(new.got) == before
    assert paged.headers["X-Served-By"] == "legacy"


PROBLEM_TYPE: Final = "application/problem+json;charset=UTF-8"


async def test_the_error_step_answers_in_the_type_legacy_uses_for_that_status(
    make_proxy: MakeProxy,
    aiohttp_server: AiohttpServer,
    new: NewService,
    client: aiohttp.ClientSession,
) -> None:
    """Before legacy has answered a 404 on the route, the error step writes JSON in
    UTF-8; once it has, the translated 404s carry legacy's exact Content-Type, so a
    client (or a shadow comparison) sees no difference. An explicit content_type wins."""

    async def missing(request: web.Request) -> web.Response:
        return web.Response(
            status=404, body=b'{"error":"no such order"}', headers={"Content-Type": PROBLEM_TYPE}
        )

    app = web.Application()
    app.router.add_get("/{tail:.*}", missing)
    legacy = await aiohttp_server(app)
    routes = """
        - name: orders
          owner: orders
          match: {path: "/orders/{id}"}
          to: legacy
          canary: {to: billing, percent: 0}
          overrides: true
          translate:
            response:
              - error: {when: 404, body: {error: "$.message"}}
        - name: invoices
          owner: billing
          match: {path: "/invoices/{id}"}
          to: legacy
          canary: {to: billing, percent: 0}
          overrides: true
          translate:
            response:
              - error: {when: 404, body: {error: "$.message"}, content_type: application/json}
        """
    proxy = await make_proxy(config(str(legacy.make_url("")).rstrip("/"), new.url, routes))
    new.reply = new.answer({"message": "no such order"}, status=404)
    forced = {"X-Strangler-Backend": "billing"}
    first = await call(client, proxy, "GET", "/orders/1", headers=forced)
    assert first.headers["Content-Type"] == "application/json; charset=utf-8"
    from_legacy = await call(client, proxy, "GET", "/orders/1")
    assert (from_legacy.status, from_legacy.headers["Content-Type"]) == (404, PROBLEM_TYPE)
    after = await call(client, proxy, "GET", "/orders/2", headers=forced)
    assert (after.status, after.headers["Content-Type"]) == (404, PROBLEM_TYPE)
    assert after.json() == {"error": "no such order"}
    await call(client, proxy, "GET", "/invoices/1")  # legacy's 404 on the other route
    explicit = await call(client, proxy, "GET", "/invoices/1", headers=forced)
    assert explicit.headers["Content-Type"] == "application/json"
