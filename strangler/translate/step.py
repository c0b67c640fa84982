"""The translation's steps in a route's chain (``strangler.pipeline.compile_route``):
only the side a route translates for (its new side, or the shadow upstream of a route
that only mirrors) has them.

- ``TranslateRequestStep``: before sending, the request in the new service's shape
  (``x.outbound``), reading the body first when a request step needs it (up to the
  plan's ``max_body``); a failing step answers 400 (or the step's status).
- ``TranslatedRelay``: the end of the chain in place of ``Relay``: the answer back in
  the legacy shape, reading the body when a response step needs it for that status;
  when a fallback sent the request to the primary instead, the answer is relayed as
  it came.
"""

from __future__ import annotations

import logging
from typing import Final

from multidict import istr

from strangler.errors import BodyTooLarge, ForwardError
from strangler.exchange import NO_BODY, Exchange, RequestBody, Step, prefix_of
from strangler.forward.headers import end_to_end
from strangler.translate import Plan, TranslateError, TranslateRequest, TranslateResponse

log = logging.getLogger("strangler.proxy")

_CONTENT_LENGTH: Final = istr("Content-Length")


def untranslatable(x: Exchange, e: TranslateError, side: str) -> None:
    """Answer a failed translation step: counted, one line, no traceback."""
    route, request = x.route, x.request
    x.services.metrics.translate_errors.labels(route.name, side).inc()
    log.warning("%s %s: route %r: %s", request.method, request.path, route.name, e)
    status = e.status or (400 if side == "request" else 502)
    error = "http_request_error" if status < 500 else "proxy_internal_error"
    x.own(status, e.client_message(), error, f"translation: {e.step}")


class TranslateRequestStep(Step):
    """The request, translated for the new side (``x.outbound``); the original kept
    for the response steps when there are any (``x.original``)."""

    __slots__ = ("limit", "plan")

    def __init__(self, plan: Plan, limit: int) -> None:
        self.plan = plan
        self.limit = limit  # limits.max_body_bytes, for the 413

    async def run(self, x: Exchange) -> None:
        plan, request, body = self.plan, x.request, x.body
        pool = x.services.forwarder.pool(x.side.upstream)
        if plan.needs_request_body and isinstance(body, RequestBody):
            try:
                x.body = body = await body.buffer(plan.max_body)
            except BodyTooLarge:
                x.too_large(self.limit)
                return
        msg = TranslateRequest.from_target(
            request.method,
            request.raw_path,
            x.upstream_headers(pool),
            x.params,
            # b"": no body at all (steps and hooks run on an empty body); None: a
            # body too large to read whole (the plan then answers 413 or passes it on)
            body if isinstance(body, bytes) else b"" if body is None else prefix_of(body),
            origin=f"{request.scheme}://{request.host}",  # for absolute Location URLs
        )
        x.original = msg.copy() if plan.response else None
        try:
            x.outbound = plan.apply_request(msg)
        except TranslateError as e:
            untranslatable(x, e, "request")
            return
        await self.next.run(x)


class TranslatedRelay(Step):
    """Translate the new side's answer back into the legacy shape, then relay it."""

    __slots__ = ("on", "plan")

    def __init__(self, plan: Plan, on: str) -> None:
        self.plan = plan
        self.on = on  # the translated side's upstream

    async def run(self, x: Exchange) -> None:
        up = x.up
        assert up is not None
        if x.side.upstream.name != self.on:  # a fallback answered: untranslated
            if up.status >= 400:  # its errors teach the error steps legacy's types
                self.plan.observe_legacy(up.status, up.headers)
            await x.relay(up)
            return
        plan, request = self.plan, x.request
        capture = x.tap.response if x.tap is not None else None
        bodyless = request.method == "HEAD" or up.status in NO_BODY
        wants = plan.needs_response_body_for(up.status) and not bodyless
        body: bytes | None = b"" if bodyless else None
        prefix = b""
        if wants:
            parts: list[bytes] = []
            size = 0
            try:
                async for chunk in up.iter_body():
                    parts.append(chunk)
                    size += len(chunk)
                    if size > plan.max_body:
                        break
            except ForwardError as e:
                up.release()
                x.failed(e)
                return
            body = b"".join(parts)
            if size > plan.max_body and plan.on_error == "passthrough":
                # Too large to translate, and the route says pass it on as it is: the
                # head steps still apply, the body streams on untouched.
                prefix, body = body, None
        assert x.original is not None
        msg = TranslateResponse(
            status=up.status,
            reason=up.reason or None,
            headers=end_to_end(up.headers),
            request=x.original,
            body=body,
        )
        try:
            msg = plan.apply_response(msg)
        except TranslateError as e:
            up.release()
            untranslatable(x, e, "response")
            return
        if x.route.explain is not None:
            x.explain_into(msg.headers)
        if request.method == "HEAD" and plan.needs_response_body_for(up.status):
            # The GET answer's body would be translated: its length is unknown here.
            msg.headers.popall(_CONTENT_LENGTH, None)
        if body is None:  # the body was not read: stream it on under the translated head
            if up.complete and not prefix and _CONTENT_LENGTH in msg.headers:
                body = up.read_buffered()  # came whole with the head: one write
                msg.body = body
            else:
                await x.stream_out(up, capture, msg.status, msg.reason, msg.headers, prefix)
                return
        up.release()
        data = b"" if bodyless else (msg.body or b"")
        x.whole(msg.status, msg.reason, msg.headers, data, capture)
