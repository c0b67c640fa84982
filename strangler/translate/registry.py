"""Step kind → factory, and ``build_plan``: a route's ``TranslateSpec`` compiled once.

``REQUEST_FACTORIES`` / ``RESPONSE_FACTORIES`` map the YAML key of a step (``path``,
``json``...) to the factory that builds its transform from the validated spec; the
validator's list of step kinds is these keys (a test keeps them in step). A factory
runs once per route, when the snapshot is compiled; the transform it returns holds no
per-request state.

``build_plan(spec)`` flattens the translators of a route into one ``Plan``: request
steps layer by layer in order, response steps layer by layer in *reverse* (the
onion, see ``strangler.config.translate_model``), each list top to bottom. Step names
in errors are ``{side}.{kind}`` (``{side}[i].{kind}`` when the kind appears more than
once in that list), prefixed with ``[NAME]`` for a named translator and ``[#n]`` for
the n-th inline one of several.

>>> from strangler.config.translate_model import StatusStep, TranslateSpec, Translator
>>> plan = build_plan(TranslateSpec(layers=(Translator(response=(StatusStep(map={201: 200}),)),)))
>>> plan.needs_request_body, plan.needs_response_body, [t.step for t in plan.response]
(False, False, ['response.status'])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeVar

from strangler.config.translate_model import (
    DEFAULT_MAX_BODY,
    ErrorStep,
    HeadersStep,
    HookStep,
    JsonStep,
    PathStep,
    QueryStep,
    RequestStep,
    ResponseStep,
    StatusRule,
    StatusStep,
    TranslateSpec,
    Translator,
)
from strangler.translate import headers, hooks, json_body, path, query, status
from strangler.translate.base import LegacyTypes, Plan, RequestTransform, ResponseTransform

__all__ = ["EMPTY_PLAN", "REQUEST_FACTORIES", "RESPONSE_FACTORIES", "Context", "build_plan"]

EMPTY_PLAN: Final = Plan()
"""The plan of a route without ``translate:``: nothing to do, everything streams."""


@dataclass(frozen=True, slots=True)
class Context:
    """What a factory knows besides its spec: the step's name in errors, and the
    ``when`` rules of the ``error:`` steps in the same list (``json`` skips those)."""

    step: str
    errors: tuple[StatusRule, ...] = ()
    legacy_types: LegacyTypes | None = None  # the plan's, for error steps


S = TypeVar("S")
T = TypeVar("T")


def _factory(kind: type[S], build: Callable[[S, Context], T]) -> Callable[[object, Context], T]:
    """A registry entry: ``build`` for specs of ``kind`` (anything else is a bug)."""

    def make(spec: object, ctx: Context) -> T:
        if not isinstance(spec, kind):
            raise TypeError(f"{ctx.step}: expected a {kind.__name__}, got {spec!r}")
        return build(spec, ctx)

    return make


RequestFactory = Callable[[object, Context], RequestTransform]
ResponseFactory = Callable[[object, Context], ResponseTransform]

REQUEST_FACTORIES: Final[Mapping[str, RequestFactory]] = MappingProxyType(
    {
        "path": _factory(PathStep, lambda s, c: path.build(s, c.step)),
        "query": _factory(QueryStep, lambda s, c: query.build(s, c.step)),
        "headers": _factory(HeadersStep, lambda s, c: headers.build(s, c.step)),
        "json": _factory(JsonStep, lambda s, c: json_body.build(s, c.step)),
        "hook": _factory(HookStep, lambda s, c: hooks.build_request(s, c.step)),
    }
)
RESPONSE_FACTORIES: Final[Mapping[str, ResponseFactory]] = MappingProxyType(
    {
        "status": _factory(StatusStep, lambda s, c: status.build_status(s, c.step)),
        "headers": _factory(HeadersStep, lambda s, c: headers.build(s, c.step)),
        "json": _factory(JsonStep, lambda s, c: json_body.build(s, c.step, c.errors)),
        "error": _factory(ErrorStep, lambda s, c: status.build_error(s, c.step, c.legacy_types)),
        "hook": _factory(HookStep, lambda s, c: hooks.build_response(s, c.step)),
    }
)


def _names(prefix: str, side: str, steps: Sequence[RequestStep | ResponseStep]) -> list[str]:
    counts = Counter(s.kind for s in steps)
    return [
        f"{prefix}{side}[{i}].{s.kind}" if counts[s.kind] > 1 else f"{prefix}{side}.{s.kind}"
        for i, s in enumerate(steps)
    ]


def _prefix(layer: Translator, index: int, count: int) -> str:
    if layer.name is not None:
        return f"[{layer.name}] "
    return f"[#{index + 1}] " if count > 1 else ""


def _has_body(layer: Translator) -> bool:
    steps: Sequence[RequestStep | ResponseStep] = (*layer.request, *layer.response)
    return any(
        isinstance(s, JsonStep | ErrorStep) or (isinstance(s, HookStep) and s.body) for s in steps
    )


def build_plan(spec: TranslateSpec | None) -> Plan:
    """Compile a route's translate spec (``None``: ``EMPTY_PLAN``).

    When layers disagree, the strictest wins: ``max_body`` is the smallest of the
    layers with a body step, ``on_error`` is ``fail`` if any of them says so.
    Raises nothing for a validated spec.
    """
    if spec is None or not spec.layers:
        return EMPTY_PLAN
    request: list[RequestTransform] = []
    response_layers: list[list[ResponseTransform]] = []
    learns = any(
        isinstance(s, ErrorStep) and s.content_type is None
        for layer in spec.layers
        for s in layer.response
    )
    legacy_types = LegacyTypes() if learns else None
    count = len(spec.layers)
    for n, layer in enumerate(spec.layers):
        prefix = _prefix(layer, n, count)
        for s, name in zip(layer.request, _names(prefix, "request", layer.request), strict=True):
            request.append(REQUEST_FACTORIES[s.kind](s, Context(name)))
        errors = tuple(s.when for s in layer.response if isinstance(s, ErrorStep))
        names = _names(prefix, "response", layer.response)
        response_layers.append(
            [
                RESPONSE_FACTORIES[s.kind](s, Context(name, errors, legacy_types))
                for s, name in zip(layer.response, names, strict=True)
            ]
        )
    body_layers = [layer for layer in spec.layers if _has_body(layer)] or list(spec.layers)
    return Plan(
        request=tuple(request),
        response=tuple(t for ts in reversed(response_layers) for t in ts),
        max_body=min((layer.max_body for layer in body_layers), default=DEFAULT_MAX_BODY),
        on_error="fail"
        if any(layer.on_error == "fail" for layer in body_layers)
        else "passthrough",
        legacy_types=legacy_types,
    )
