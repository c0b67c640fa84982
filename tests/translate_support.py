"""Helpers for the translate tests: specs from YAML text, plans, messages."""

from __future__ import annotations

import json
from collections.abc import Mapping

from multidict import CIMultiDict

from strangler.config.source import Map, read_text
from strangler.config.translate_model import TranslateSpec
from strangler.config.validate_translate import Translators
from strangler.config.walker import Walker
from strangler.translate import build_plan
from strangler.translate.base import JSON, Plan, TranslateRequest, TranslateResponse

FILE = "t.yaml"


def read(text: str, template: str | None = None) -> tuple[TranslateSpec | None, list[str]]:
    """The spec of ``text`` (a YAML mapping with ``translate:`` and optional
    ``translators:``) and the problems, as ``str(Problem)``."""
    sources = read_text(text, FILE)
    assert not sources.problems, sources.problems
    root = sources.files[0].root
    assert isinstance(root, Map)
    w = Walker(FILE)
    reader = Translators.read(w, root.get("translators"))
    node = root.get("translate")
    assert node is not None
    spec = reader.route(node, label="route 'r'", template=template)
    return spec, [str(p) for p in w.problems]


def spec_of(text: str, template: str | None = None) -> TranslateSpec:
    spec, problems = read(text, template)
    assert not problems, problems
    assert spec is not None
    return spec


def plan_of(text: str, template: str | None = None) -> Plan:
    return build_plan(spec_of(text, template))


def problems_of(text: str, template: str | None = None) -> list[str]:
    spec, problems = read(text, template)
    assert spec is None, "a spec with problems must not be built"
    return problems


def request(
    target: str = "/",
    *,
    method: str = "GET",
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    params: Mapping[str, str] | None = None,
) -> TranslateRequest:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    return TranslateRequest.from_target(method, target, CIMultiDict(pairs), params or {}, body)


def response(
    status: int = 200,
    *,
    headers: Mapping[str, str] | list[tuple[str, str]] | None = None,
    body: bytes | None = None,
    req: TranslateRequest | None = None,
) -> TranslateResponse:
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    return TranslateResponse(
        status=status, headers=CIMultiDict(pairs), request=req or request(), body=body
    )


def dumps(doc: JSON) -> bytes:
    return json.dumps(doc).encode()


def loads(body: bytes | None) -> JSON:
    assert body is not None
    value: JSON = json.loads(body)
    return value
