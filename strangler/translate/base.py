"""The anti-corruption layer's runtime model: messages, transforms, the compiled Plan.

- ``TranslateRequest`` / ``TranslateResponse``: what a transform (and a hook) sees and
  changes. Headers are a ``CIMultiDict``; the body is ``bytes`` or ``None`` (not
  read: the route streams); ``json`` parses the body once and keeps the document.
- ``RequestTransform`` / ``ResponseTransform``: one compiled step. Built once per
  route from the spec (``strangler.translate.registry``), holding no per-request
  state; ``needs_body`` says whether it reads the body.
- ``Plan``: a route's steps in run order and what the pipeline must know up front
  (``needs_request_body``, ``needs_response_body``, ``max_body``, ``on_error``).
  ``apply_request`` / ``apply_response`` do the whole job for one message: decode
  ``Content-Encoding``, run the steps, serialise the JSON once, encode again, fix
  ``Content-Length``.
- ``TranslateError(step, message)``: a step that could not translate a message.

Body contract inside a plan: transforms and hooks see the body *decoded* (no
``Content-Encoding`` applied, whatever the header says) and ``json`` decoded with the
``Content-Type`` charset (UTF-8 by default). Once ``json`` has been read, the document
is the truth: changing it in place is enough, and the plan writes it back once at the
end, in the charset and with the ``Content-Encoding`` the headers then name. A body no step
took to change (none ran, or only reading ones like ``require``) goes out byte for
byte as it came; one a step may have changed is written again even if it did not.

>>> from multidict import CIMultiDict
>>> msg = TranslateRequest.from_target("POST", "/a?x=1", CIMultiDict(), body=b'{"n": 1}')
>>> msg.json["n"] = 2
>>> msg.body, msg.target
(b'{"n":2}', '/a?x=1')
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import MappingProxyType
from typing import Final, Protocol, TypeAlias, TypeVar, final
from urllib.parse import parse_qsl, quote, urlencode

from multidict import CIMultiDict, istr

from strangler.config.translate_model import DEFAULT_MAX_BODY, OnError
from strangler.errors import TranslateError
from strangler.translate import codec

__all__ = [
    "JSON",
    "BodyError",
    "LegacyTypes",
    "Message",
    "Plan",
    "RequestTransform",
    "ResponseTransform",
    "TranslateError",
    "TranslateRequest",
    "TranslateResponse",
    "dump_json",
    "load_json",
    "reason_for",
]

JSON: TypeAlias = dict[str, "JSON"] | list["JSON"] | str | int | float | bool | None
"""A parsed JSON document: what ``json.loads`` returns."""

CONTENT_LENGTH: Final = istr("Content-Length")
CONTENT_TYPE: Final = istr("Content-Type")
_HOST_HEADER: Final = istr("Host")
_DIGESTS: Final = (istr("Content-MD5"), istr("Digest"), istr("Content-Digest"))
_EMPTY_PARAMS: Final[Mapping[str, str]] = MappingProxyType({})
_UTF: Final = frozenset({"utf-8", "utf-16", "utf-32", "utf-16-le", "utf-16-be", "utf-8-sig"})


class BodyError(ValueError):
    """The body is not what a body step needs (not read, not JSON, bad charset)."""


def reason_for(status: int) -> str:
    """The standard reason phrase, or ``""`` for a status without one."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# ---------------------------------------------------------------------------- JSON codec


def load_json(body: bytes, content_type: str | None) -> JSON:
    """Parse a body as JSON in the ``Content-Type``'s charset; raises ``BodyError``."""
    if not codec.is_json(content_type):
        raise BodyError(f"Content-Type {codec.media_type(content_type)!r} is not JSON")
    if not body:
        raise BodyError("the body is empty, not JSON")
    try:
        name = codec.charset(content_type)
        text: str | bytes = body if name is None else body.decode(name)
        value: JSON = json.loads(text, parse_constant=_no_constant)
    except codec.CodecError as err:
        raise BodyError(str(err)) from None
    except UnicodeDecodeError as err:
        raise BodyError(f"the body is not valid {err.encoding}: {err.reason}") from None
    except ValueError as err:  # json.JSONDecodeError, and _no_constant
        raise BodyError(f"the body is not valid JSON: {err}") from None
    return value


def _no_constant(name: str) -> JSON:
    raise ValueError(f"{name} is not a JSON value")


def dump_json(value: JSON, content_type: str | None) -> bytes:
    """Serialise compactly in the ``Content-Type``'s charset (UTF-8 by default);
    outside the UTF family, non-ASCII characters are written as ``\\u`` escapes.
    Raises ``BodyError`` (a NaN, a character the charset cannot hold...)."""
    try:
        name = codec.charset(content_type) or "utf-8"
        ascii_only = name not in _UTF
        text = json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"), allow_nan=False)
        return text.encode(name)
    except (ValueError, TypeError, codec.CodecError) as err:
        raise BodyError(f"cannot write the JSON body: {err}") from None


# ---------------------------------------------------------------------------- messages


class _Unread(enum.Enum):
    UNREAD = "unread"


_UNREAD: Final = _Unread.UNREAD


class Message:
    """Headers plus a body that is either bytes or a parsed JSON document."""

    __slots__ = ("_body", "_changed", "_doc", "_owned", "headers")

    def __init__(self, headers: CIMultiDict[str], body: bytes | None) -> None:
        self.headers = headers
        self._body = body
        self._doc: JSON | _Unread = _UNREAD
        self._owned = False  # True: the document is the truth, the bytes are stale
        self._changed = False

    @property
    def body(self) -> bytes | None:
        """The body bytes; ``None`` when the body was not read (the route streams).

        Reading it after ``json`` serialises the document (and forgets it: read
        ``json`` again to change it further). Setting it replaces the document too.
        """
        if self._owned:
            assert not isinstance(self._doc, _Unread)
            self._body = dump_json(self._doc, self.headers.get(CONTENT_TYPE))
            self._doc, self._owned = _UNREAD, False
        return self._body

    @body.setter
    def body(self, value: bytes | None) -> None:
        self._body, self._doc, self._owned, self._changed = value, _UNREAD, False, True

    @property
    def json(self) -> JSON:
        """The body as a JSON document, parsed on first use; change it in place or
        assign a new one. Raises ``BodyError`` when there is no body, it is empty,
        not JSON, or its ``Content-Type`` is not a JSON type."""
        doc = self.peek_json()
        self._owned = self._changed = True
        return doc

    @json.setter
    def json(self, value: JSON) -> None:
        self._doc, self._owned, self._changed = value, True, True

    def peek_json(self) -> JSON:
        """``json`` for reading only: the caller promises not to change the document,
        so an unchanged body still goes out byte for byte."""
        if isinstance(self._doc, _Unread):
            if self._body is None:
                raise BodyError("the body was not read (the route streams it)")
            self._doc = load_json(self._body, self.headers.get(CONTENT_TYPE))
        return self._doc

    @property
    def body_is_empty(self) -> bool:
        """True when the body was read and has no bytes (no JSON document either)."""
        return not self._owned and self._body is not None and not self._body

    @property
    def body_changed(self) -> bool:
        """Whether a step set the body or took the JSON document to change it."""
        return self._changed

    def _load(self, body: bytes | None) -> None:
        """Set the body as read, without counting it as a change."""
        self._body, self._doc, self._owned, self._changed = body, _UNREAD, False, False


@final
class TranslateRequest(Message):
    """A request on its way to the new service.

    ``path`` is the raw (percent-encoded) path without the query; ``query`` the
    decoded parameters in order (repeats kept); ``params`` the route template's
    parameters (decoded); ``target`` the path and query to send: the query string as
    the client wrote it, byte for byte, unless ``query`` was changed. ``origin``:
    ``scheme://host[:port]`` as the client addressed the proxy (``None`` when unknown:
    then ``http://`` and the ``Host`` header).
    """

    __slots__ = (
        "_raw_query", "_raw_query_parsed", "method", "origin", "params", "path", "query",
    )  # fmt: skip

    def __init__(
        self,
        *,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: CIMultiDict[str],
        params: Mapping[str, str] = _EMPTY_PARAMS,
        body: bytes | None = None,
        raw_query: str | None = None,
        origin: str | None = None,
    ) -> None:
        super().__init__(headers, body)
        self.origin = origin
        self.method = method
        self.path = path
        self.query = query
        self.params = params
        self._raw_query = raw_query  # what ``query`` was parsed from, if given
        self._raw_query_parsed = tuple(query) if raw_query is not None else None

    @classmethod
    def from_target(
        cls,
        method: str,
        target: str,
        headers: CIMultiDict[str],
        params: Mapping[str, str] = _EMPTY_PARAMS,
        body: bytes | None = None,
        origin: str | None = None,
    ) -> TranslateRequest:
        """From a request target (``/path?query``, raw, as on the request line).

        >>> r = TranslateRequest.from_target("GET", "/a%20b?x=1&x=2&y", CIMultiDict())
        >>> r.path, r.query
        ('/a%20b', [('x', '1'), ('x', '2'), ('y', '')])
        """
        path, mark, raw = target.partition("?")
        query = parse_qsl(raw, keep_blank_values=True) if mark else []
        return cls(
            method=method,
            path=path,
            query=query,
            headers=headers,
            params=params,
            body=body,
            raw_query=raw if mark else None,
            origin=origin,
        )

    @property
    def query_string(self) -> str:
        """The query to send, without ``?``: the original text when ``query`` is as parsed."""
        if self._raw_query is not None and self._raw_query_parsed == tuple(self.query):
            return self._raw_query
        return urlencode(self.query, quote_via=quote)

    @property
    def target(self) -> str:
        """``path`` plus ``?query_string`` (no ``?`` for no query, unless the client sent one)."""
        query = self.query_string
        if query or (self._raw_query == "" and not self.query):
            return f"{self.path}?{query}"
        return self.path

    def client_origin(self) -> str:
        """``scheme://host`` the client used: ``origin``, else from ``Host``."""
        if self.origin is not None:
            return self.origin
        return "http://" + self.headers.get(_HOST_HEADER, "localhost")

    def copy(self) -> TranslateRequest:
        """A copy whose headers, query and body can change without touching this one."""
        clone = TranslateRequest(
            method=self.method,
            path=self.path,
            query=list(self.query),
            headers=self.headers.copy(),
            params=self.params,
            body=self.body,
            raw_query=self._raw_query,
            origin=self.origin,
        )
        clone._raw_query_parsed = self._raw_query_parsed
        return clone

    def __repr__(self) -> str:
        return f"<TranslateRequest {self.method} {self.target}>"


@final
class TranslateResponse(Message):
    """A response on its way back from the new service.

    ``request`` is the request as the client sent it (before translation): read it,
    do not change it.
    """

    __slots__ = ("reason", "request", "status")

    def __init__(
        self,
        *,
        status: int,
        headers: CIMultiDict[str],
        request: TranslateRequest,
        reason: str | None = None,
        body: bytes | None = None,
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason_for(status) if reason is None else reason
        self.request = request

    def __repr__(self) -> str:
        return f"<TranslateResponse {self.status} {self.reason}>"


Msg = TypeVar("Msg", TranslateRequest, TranslateResponse)
M = TypeVar("M", TranslateRequest, TranslateResponse)


# ---------------------------------------------------------------------------- transforms


class _Transform(Protocol[M]):
    """What the plan needs of any step (``RequestTransform``/``ResponseTransform`` have it)."""

    @property
    def step(self) -> str: ...

    @property
    def needs_body(self) -> bool: ...

    def apply(self, msg: M, /) -> M: ...


class RequestTransform(Protocol):
    """One compiled request step; built once per route, no per-request state."""

    @property
    def step(self) -> str:
        """Its name in errors: ``request.query``, ``request.json[3] map status``..."""
        ...

    @property
    def needs_body(self) -> bool:
        """Whether ``apply`` reads or writes the body."""
        ...

    def apply(self, msg: TranslateRequest, /) -> TranslateRequest:
        """Translate ``msg`` (usually in place) and return it; raise ``TranslateError``."""
        ...


class ResponseTransform(Protocol):
    """One compiled response step; built once per route, no per-request state."""

    @property
    def step(self) -> str: ...

    @property
    def needs_body(self) -> bool: ...

    def apply(self, msg: TranslateResponse, /) -> TranslateResponse: ...

    def reads_body(self, status: int | None, /) -> bool:
        """Whether ``apply`` reads the body of a response with ``status`` when the step
        runs (``None``: not known)."""
        ...

    def next_status(self, status: int | None, /) -> int | None:
        """The status after this step (``None``: not known before it runs)."""
        ...


# ---------------------------------------------------------------------------- the plan


@final
class LegacyTypes:
    """The ``Content-Type`` legacy answered each error status with, on one route.

    Fed from the route's untranslated answers (``Plan.observe_legacy``) so an ``error:``
    step can write the error body in the exact type legacy sends (a client, or a shadow
    comparison, then sees no difference). At most one entry per status code; a snapshot
    starts empty, so a reload forgets (and relearns from the next answers).
    """

    __slots__ = ("_types",)

    def __init__(self) -> None:
        self._types: dict[int, str] = {}

    def learn(self, status: int, content_type: str | None) -> None:
        if content_type is not None and status >= 400 and len(content_type) <= 200:
            self._types[status] = content_type

    def get(self, status: int) -> str | None:
        return self._types.get(status)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """A route's compiled translation: build with ``registry.build_plan``.

    ``request`` runs in order; ``response`` is already in run order (the onion
    reversed, see ``strangler.config.translate_model``). The pipeline reads a body
    only when ``needs_request_body`` / ``needs_response_body_for(status)`` says so,
    at most ``max_body + 1`` bytes, and passes ``body=None`` otherwise.
    """

    request: tuple[RequestTransform, ...] = ()
    response: tuple[ResponseTransform, ...] = ()
    max_body: int = DEFAULT_MAX_BODY
    on_error: OnError = "fail"
    legacy_types: LegacyTypes | None = None  # set when an error step copies legacy's type

    def observe_legacy(self, status: int, headers: Mapping[str, str]) -> None:
        """An untranslated (legacy) answer of the route: learn its error types."""
        if self.legacy_types is not None and status >= 400:
            self.legacy_types.learn(status, headers.get(CONTENT_TYPE))

    @property
    def needs_request_body(self) -> bool:
        """Whether a request step reads the body: buffer it (up to ``max_body``)."""
        return any(t.needs_body for t in self.request)

    @property
    def needs_response_body(self) -> bool:
        """Whether some response step may read the body (for some status)."""
        return any(t.needs_body for t in self.response)

    def needs_response_body_for(self, status: int) -> bool:
        """Whether a response arriving with ``status`` must be buffered. A route with
        only an ``error:`` step, say, streams its 200s."""
        current: int | None = status
        for t in self.response:
            if t.reads_body(current):
                return True
            current = t.next_status(current)
        return False

    @property
    def is_empty(self) -> bool:
        return not self.request and not self.response

    def apply_request(self, msg: TranslateRequest) -> TranslateRequest:
        """Translate a request; returns it (possibly a new object from a hook).

        ``msg.body``: the body as received (``None`` when not read, in which case the
        body steps are skipped). Raises ``TranslateError`` with ``status`` 400, 413
        (body over ``max_body`` with ``on_error: fail``) or 500 (a hook failed).
        """
        if not self.request:
            return msg
        return self._run(msg, self.request, "request", 400, self.needs_request_body)

    def apply_response(self, msg: TranslateResponse) -> TranslateResponse:
        """Translate a response; returns it. Raises ``TranslateError`` (status 502)."""
        if not self.response:
            return msg
        wants = self.needs_response_body_for(msg.status)
        return self._run(msg, self.response, "response", 502, wants)

    def _run(
        self, msg: Msg, steps: Sequence[_Transform[Msg]], side: str, status: int, wants: bool
    ) -> Msg:
        wire = msg.body
        body_on = wants and wire is not None
        if body_on and wire:
            try:
                if len(wire) > self.max_body:
                    raise codec.TooLarge(self.max_body)
                msg._load(codec.decode(wire, codec.codings(msg.headers), self.max_body))
            except codec.CodecError as err:
                if self.on_error == "fail":
                    large = isinstance(err, codec.TooLarge) and side == "request"
                    raise TranslateError(
                        f"{side} body", str(err), status=413 if large else status
                    ) from None
                body_on = False
        for t in steps:
            if t.needs_body and not body_on:
                continue
            try:
                msg = t.apply(msg)
            except TranslateError as err:
                err.status = err.status or status
                if self.on_error == "fail" or not (t.needs_body or err.recoverable):
                    raise
                if t.needs_body:  # the body goes on as it came; later body steps skip
                    msg._load(wire)
                    body_on = False
        if body_on:
            self._finish(msg, wire, side, status)
        return msg

    def _finish(self, msg: Msg, wire: bytes | None, side: str, status: int) -> None:
        """Write the body back: the original bytes if unchanged, else encoded again."""
        if not msg.body_changed:
            msg._load(wire)
            return
        try:
            data = msg.body
            if data is None:
                raise BodyError("a step set the body to None")
            encoded = codec.encode(data, codec.codings(msg.headers))
        except (BodyError, codec.CodecError) as err:
            if self.on_error == "passthrough":
                msg._load(wire)
                return
            raise TranslateError(f"{side} body", str(err), status=status) from None
        msg._load(encoded)
        msg.headers[CONTENT_LENGTH] = str(len(encoded))
        for name in _DIGESTS:  # checksums of the old bytes would now be wrong
            msg.headers.popall(name, None)
