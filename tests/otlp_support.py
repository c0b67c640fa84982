"""A real OTLP/HTTP traces receiver for tests: the collector protocol decoded with the
opentelemetry-proto package, every span kept with the resource that sent it."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from pytest_aiohttp import AiohttpServer


@dataclass
class Receiver:
    """An OTLP/HTTP traces endpoint: every span it was sent, and the services and
    service instances (one per worker process) that sent them."""

    url: str = ""
    spans: list[Span] = field(default_factory=list)
    services: set[str] = field(default_factory=set)
    instances: set[str] = field(default_factory=set)

    def of_kind(self, kind: int) -> list[Span]:
        return [s for s in self.spans if s.kind == kind]


RECEIVER = web.AppKey("receiver", Receiver)


def attrs(span_or_resource: Span | list[KeyValue]) -> dict[str, object]:
    """Attributes as a plain dict."""

    def value(v: AnyValue) -> object:
        kind = v.WhichOneof("value")
        return getattr(v, kind) if kind else None

    items = span_or_resource.attributes if isinstance(span_or_resource, Span) else span_or_resource
    return {a.key: value(a.value) for a in items}


async def _export(request: web.Request) -> web.Response:
    data = await request.read()
    if request.headers.get("Content-Encoding") == "gzip":
        data = gzip.decompress(data)
    msg = ExportTraceServiceRequest.FromString(data)
    receiver = request.app[RECEIVER]
    for rs in msg.resource_spans:
        resource = attrs(list(rs.resource.attributes))
        receiver.services.add(str(resource.get("service.name")))
        receiver.instances.add(str(resource.get("service.instance.id")))
        for ss in rs.scope_spans:
            receiver.spans.extend(ss.spans)
    return web.Response(
        body=ExportTraceServiceResponse().SerializeToString(),
        content_type="application/x-protobuf",
    )


async def start_receiver(aiohttp_server: AiohttpServer) -> Receiver:
    """A receiver on 127.0.0.1; its ``url`` is what ``tracing.otlp`` takes."""
    app = web.Application()
    app[RECEIVER] = receiver = Receiver()
    app.router.add_post("/v1/traces", _export)
    server = await aiohttp_server(app)
    receiver.url = str(server.make_url("")).rstrip("/")
    return receiver
