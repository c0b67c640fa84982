"""The shadow tap in a route's chain (``strangler.pipeline.compile_route``): only a
route with ``shadow:`` has it, and only on the sides that are not the shadow upstream.

When the draw selects the request (``ShadowService.selects``), a job is submitted that
mirrors it and waits for the primary's answer: the body streams to the job as it goes
to the primary (a bounded copy, never waited on), and the relay feeds the answer to
``x.tap``. Whatever happens to the rest of the chain, the tap is closed at the end.
"""

from __future__ import annotations

from strangler.exchange import Exchange, RequestBody, Step
from strangler.shadow.service import CompiledShadow
from strangler.translate import Plan


class ShadowTapStep(Step):
    """Start mirroring a selected request. ``translate``: the route's plan when it
    translates for the shadow upstream (the job translates); ``primary_translate``:
    when it translates for this side's upstream (a confirming re-read is translated as
    the user's request was)."""

    __slots__ = ("primary_translate", "shadow", "translate")

    def __init__(
        self, shadow: CompiledShadow, translate: Plan | None, primary_translate: Plan | None
    ) -> None:
        self.shadow = shadow
        self.translate = translate
        self.primary_translate = primary_translate

    async def run(self, x: Exchange) -> None:
        service, sh = x.services.shadow, self.shadow
        if not service.selects(sh, x.request, x.side.upstream):
            await self.next.run(x)
            return
        body = x.body
        tap = x.tap = service.begin(
            sh,
            x.request,
            x.upstream_headers(x.services.forwarder.pool(sh.upstream)),
            x.side.upstream,
            body=body if isinstance(body, bytes) else None,
            translate=self.translate,
            params=x.params,
            primary_translate=self.primary_translate,
        )
        if tap is None:
            await self.next.run(x)
            return
        if tap.request is not None and isinstance(body, RequestBody):
            body.tee = tap.request
        try:
            await self.next.run(x)
        finally:
            tap.close(False)  # a no-op when the answer was already handed over
