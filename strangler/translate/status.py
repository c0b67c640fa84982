"""``status:`` and ``error:`` steps (response only): the legacy status codes and error format.

- ``StatusTransform`` maps a status (``{201: 200}``) and sets the standard reason
  phrase for the new one. Header-phase: it never reads the body.
- ``ErrorTransform`` rebuilds the body of an error response in the legacy shape from
  a template (``{error: "$.message"}``: a ``"$..."`` string is that value of the new
  service's error body, ``null`` when absent or when that body is not JSON; ``"$"``
  is the whole body, as JSON or, when it is not JSON, as text). It runs only for
  the statuses in ``when``. A ``HEAD`` answer and a 204/304 keep their empty body
  (the status still changes when ``status`` says so).

>>> from strangler.config.translate_model import StatusRule
>>> rule = StatusRule(ranges=((400, 599),), text=">=400")
>>> [s for s in (200, 399, 400, 404, 503) if matches_status(rule, s)]
[400, 404, 503]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, final

from multidict import istr

from strangler.config.translate_model import BodyTemplate, ErrorStep, JsonPath, StatusStep
from strangler.translate import codec
from strangler.translate.base import (
    JSON,
    BodyError,
    LegacyTypes,
    TranslateResponse,
    reason_for,
)
from strangler.translate.json_body import matches_status
from strangler.translate.jsonpath import OpError, get_values

__all__ = ["ErrorTransform", "StatusTransform", "build_error", "build_status", "matches_status"]

_CONTENT_TYPE: Final = istr("Content-Type")
_NO_BODY: Final = frozenset({204, 304})
DEFAULT_ERROR_TYPE: Final = "application/json; charset=utf-8"


@final
class StatusTransform:
    """A compiled ``status: {map: {...}}``."""

    __slots__ = ("_map", "step")

    needs_body: Final = False

    def __init__(self, spec: StatusStep, step: str) -> None:
        self.step = step
        self._map = dict(spec.map)

    def apply(self, msg: TranslateResponse, /) -> TranslateResponse:
        new = self._map.get(msg.status)
        if new is not None:
            msg.status, msg.reason = new, reason_for(new)
        return msg

    def reads_body(self, status: int | None, /) -> bool:
        return False

    def next_status(self, status: int | None, /) -> int | None:
        return None if status is None else self._map.get(status, status)


def _fill(template: BodyTemplate, doc: JSON, is_json: bool, text: str) -> JSON:
    """The template with its paths replaced by values of ``doc``."""
    if isinstance(template, JsonPath):
        if not template.segments:
            return doc if is_json else text
        if not is_json:
            return None
        try:
            found = get_values(doc, template)
        except OpError:
            return None  # a path through the wrong kind of value: the value is not there
        if template.has_wildcard:
            return [value for _, value in found]
        return found[0][1] if found else None
    if isinstance(template, tuple):
        return [_fill(t, doc, is_json, text) for t in template]
    if isinstance(template, Mapping):
        return {k: _fill(t, doc, is_json, text) for k, t in template.items()}
    return template


@final
class ErrorTransform:
    """A compiled ``error: {when, body, status}``."""

    __slots__ = ("_legacy", "_spec", "step")

    needs_body: Final = True

    def __init__(self, spec: ErrorStep, step: str, legacy: LegacyTypes | None = None) -> None:
        self.step = step
        self._spec = spec
        self._legacy = legacy

    def apply(self, msg: TranslateResponse, /) -> TranslateResponse:
        spec = self._spec
        if not matches_status(spec.when, msg.status):
            return msg
        if spec.status is not None:
            msg.status, msg.reason = spec.status, reason_for(spec.status)
        if msg.request.method == "HEAD" or msg.status in _NO_BODY:
            return msg
        doc: JSON = None
        text = ""
        is_json = False
        if not msg.body_is_empty:
            try:
                doc, is_json = msg.peek_json(), True
            except BodyError:
                text = self._text(msg)
        body = _fill(spec.body, doc, is_json, text)
        msg.headers[_CONTENT_TYPE] = self._content_type(msg.status)
        msg.json = body
        return msg

    def _content_type(self, status: int) -> str:
        """The type written: the step's own, else what legacy answered this status
        with on the route (when JSON), else JSON in UTF-8."""
        if self._spec.content_type is not None:
            return self._spec.content_type
        learned = None if self._legacy is None else self._legacy.get(status)
        if learned is not None and codec.is_json(learned):
            return learned
        return DEFAULT_ERROR_TYPE

    @staticmethod
    def _text(msg: TranslateResponse) -> str:
        raw = msg.body or b""
        try:
            name = codec.charset(msg.headers.get(_CONTENT_TYPE)) or "utf-8"
        except codec.CodecError:
            name = "utf-8"
        return raw.decode(name, errors="replace")

    def reads_body(self, status: int | None, /) -> bool:
        return status is None or matches_status(self._spec.when, status)

    def next_status(self, status: int | None, /) -> int | None:
        if status is None or self._spec.status is None:
            return status
        return self._spec.status if matches_status(self._spec.when, status) else status


def build_status(spec: StatusStep, step: str) -> StatusTransform:
    return StatusTransform(spec, step)


def build_error(spec: ErrorStep, step: str, legacy: LegacyTypes | None = None) -> ErrorTransform:
    return ErrorTransform(spec, step, legacy)
