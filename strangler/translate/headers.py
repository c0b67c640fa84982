"""``headers:`` steps (either side): set, rename, remove, from_param, rewrite_paths.

Header-phase only: a headers step never reads the body, so a route whose steps are
all like this keeps streaming. Operations run in the order written. Names compare
case-insensitively. ``set`` replaces every value with one, at the first one's place
(or at the end); ``rename`` moves the values to the end under the new name, replacing
any the new name had; ``from_param`` sets like ``set``.

``rewrite_paths: {from: /customers, to: /api/v1/customer}`` (response side) rewrites
the URL paths the new service hands out back to the legacy form, in ``Location``,
``Content-Location`` and every ``<URI>`` of ``Link``: a path that starts with the
whole segments of ``from`` gets ``to`` in their place; query and fragment stay. An
absolute URL is put on the client's origin (the new service's own host never leaks);
``absolute: true`` makes every rewritten URL absolute on it (what a legacy app that
answers absolute URLs sent), ``absolute: false`` relative.

>>> rewrite_path("/customers/7?x=1", "/customers", "/api/v1/customer")
'/api/v1/customer/7?x=1'
>>> rewrite_path("http://h/customersX/7", "/customers", "/api/v1/customer")
'http://h/customersX/7'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar, cast, final
from urllib.parse import urlsplit, urlunsplit

from multidict import CIMultiDict, istr

from strangler.config.translate_model import HeadersStep, RewritePaths
from strangler.translate.base import TranslateError, TranslateRequest, TranslateResponse

__all__ = ["HeadersTransform", "build", "rewrite_path"]

M = TypeVar("M", TranslateRequest, TranslateResponse)

_URL_HEADERS: Final = (istr("Location"), istr("Content-Location"))
_LINK: Final = istr("Link")
_LINK_URI: Final = re.compile(r"<([^>]*)>")


def rewrite_path(
    url: str, from_: str, to: str, origin: str | None = None, absolute: bool | None = None
) -> str:
    """``url`` with its path's leading ``from_`` segments replaced by ``to``; a URL
    outside ``from_`` is returned as it is.

    Its form: ``absolute=None`` keeps relative URLs relative and puts absolute ones on
    ``origin`` (``scheme://host``, when given); ``True`` makes it absolute on
    ``origin``; ``False`` makes it relative.

    >>> rewrite_path("http://new:9000/c/7", "/c", "/api/c", "https://shop.example")
    'https://shop.example/api/c/7'
    >>> rewrite_path("/c/7#f", "/c", "/api/c", "http://shop.example:8080", absolute=True)
    'http://shop.example:8080/api/c/7#f'
    """
    parts = urlsplit(url)
    path = parts.path
    base = from_.rstrip("/")
    if path != base and not path.startswith(base + "/"):
        return url
    parts = parts._replace(path=to.rstrip("/") + path[len(base) :] or "/")
    if absolute is False:
        return urlunsplit(parts._replace(scheme="", netloc=""))
    if origin is None or (absolute is None and not parts.netloc):
        return urlunsplit(parts)
    scheme, _, netloc = origin.partition("://")
    return urlunsplit(parts._replace(scheme=scheme, netloc=netloc))


def _rewrite_op(op: RewritePaths) -> Callable[[CIMultiDict[str], str], None]:
    from_, to, absolute = op.from_, op.to, op.absolute

    def run(headers: CIMultiDict[str], origin: str) -> None:
        def sub_link(m: re.Match[str]) -> str:
            return f"<{rewrite_path(m.group(1), from_, to, origin, absolute)}>"

        for name in _URL_HEADERS:
            values = headers.getall(name, ())
            if values:
                headers.popall(name)
                for v in values:
                    headers.add(name, rewrite_path(v.strip(), from_, to, origin, absolute))
        links = headers.getall(_LINK, ())
        if links:
            headers.popall(_LINK)
            for v in links:
                headers.add(_LINK, _LINK_URI.sub(sub_link, v))

    return run


Op = Callable[[TranslateRequest | TranslateResponse, CIMultiDict[str]], None]


def _compile(kind: str, op: Any, step: str) -> Op:
    if kind == "set":
        values = tuple((istr(k), v) for k, v in cast(Mapping[str, str], op).items())

        def set_(msg: TranslateRequest | TranslateResponse, h: CIMultiDict[str]) -> None:
            for name, value in values:
                h[name] = value

        return set_
    if kind == "rename":
        names = tuple((istr(a), istr(b)) for a, b in cast(Mapping[str, str], op).items())

        def rename(msg: TranslateRequest | TranslateResponse, h: CIMultiDict[str]) -> None:
            for old, new in names:
                moved = h.popall(old, [])
                if moved:
                    h.popall(new, None)
                    h.extend((new, v) for v in moved)

        return rename
    if kind == "remove":
        gone = tuple(istr(n) for n in cast(Sequence[str], op))

        def remove(msg: TranslateRequest | TranslateResponse, h: CIMultiDict[str]) -> None:
            for name in gone:
                h.popall(name, None)

        return remove
    if kind == "from_param":
        params = tuple((istr(k), p) for k, p in cast(Mapping[str, str], op).items())

        def from_param(msg: TranslateRequest | TranslateResponse, h: CIMultiDict[str]) -> None:
            source = msg.request.params if isinstance(msg, TranslateResponse) else msg.params
            for name, param in params:
                if param not in source:
                    raise TranslateError(step, f"the route has no parameter {param!r}")
                h[name] = source[param]

        return from_param
    rewrite = _rewrite_op(cast(RewritePaths, op))

    def rewrite_paths(msg: TranslateRequest | TranslateResponse, h: CIMultiDict[str]) -> None:
        request = msg.request if isinstance(msg, TranslateResponse) else msg
        rewrite(h, request.client_origin())

    return rewrite_paths


@final
class HeadersTransform:
    """A compiled ``headers:`` step."""

    __slots__ = ("_ops", "step")

    needs_body: Final = False

    def __init__(self, spec: HeadersStep, step: str) -> None:
        self.step = step
        self._ops = tuple(_compile(kind, op, step) for kind, op in spec.ops)

    def apply(self, msg: M, /) -> M:
        headers = msg.headers
        for op in self._ops:
            op(msg, headers)
        return msg

    def reads_body(self, status: int | None, /) -> bool:
        return False

    def next_status(self, status: int | None, /) -> int | None:
        return status


def build(spec: HeadersStep, step: str) -> HeadersTransform:
    """The factory: a ``HeadersTransform`` for ``spec``."""
    return HeadersTransform(spec, step)
