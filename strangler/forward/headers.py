"""Header rules for a proxy hop: which headers stop at the proxy, and which it adds.

Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection, so they are
dropped in both directions, together with every header named in ``Connection``.
The forwarded headers tell the upstream who the client was:

>>> peer = ForwardedFor("203.0.113.7", "http", "shop.example", trusted=False)
>>> h = CIMultiDict({"X-Forwarded-For": "6.6.6.6"})
>>> peer.apply(h, h.copy())
>>> h["X-Forwarded-For"], h["Forwarded"]
('203.0.113.7', 'for=203.0.113.7;proto=http;host=shop.example')

An untrusted client's own ``X-Forwarded-For`` is replaced, never appended to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from multidict import CIMultiDict, CIMultiDictProxy, istr

HOP_BY_HOP: Final[frozenset[str]] = frozenset(
    istr(h)
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
    )
)
_FORWARDED_NAMES: Final = frozenset(
    istr(h) for h in ("X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded")
)
_CONNECTION: Final = istr("Connection")


def connection_tokens(headers: Mapping[str, str]) -> frozenset[str]:
    """Header names listed in ``Connection`` (lower-cased), which are hop-by-hop too."""
    value = headers.get(_CONNECTION)
    if not value:
        return frozenset()
    return frozenset(t.strip().lower() for t in value.split(",") if t.strip())


def end_to_end(
    headers: CIMultiDictProxy[str] | CIMultiDict[str], drop: Iterable[str] = ()
) -> CIMultiDict[str]:
    """A copy of ``headers`` without hop-by-hop ones (and without ``drop``), names
    compared case-insensitively (``keep-alive`` is ``Keep-Alive``).

    Copy, then remove: the copy and ``popall`` are the multidict's C code, cheaper per
    request than a Python loop over every header."""
    out = CIMultiDict(headers)
    listed = out.get(_CONNECTION)
    for name in HOP_BY_HOP:
        out.popall(name, None)
    if listed:
        for token in listed.split(","):
            if token := token.strip():
                out.popall(token, None)
    for name in drop:
        out.popall(name, None)
    return out


def strip_forwarded(headers: CIMultiDict[str]) -> None:
    for name in _FORWARDED_NAMES:
        headers.popall(name, None)


def _forwarded_node(ip: str) -> str:
    # RFC 7239: IPv6 addresses are bracketed and the whole value quoted.
    return f'"[{ip}]"' if ":" in ip else forwarded_value(ip)


@dataclass(frozen=True, slots=True)
class ForwardedFor:
    """What one request adds to the forwarded headers."""

    client_ip: str
    proto: str
    host: str
    trusted: bool  # the peer is a trusted proxy: keep and append to its headers

    def apply(
        self, out: CIMultiDict[str], incoming: Mapping[str, str], style: str = "both"
    ) -> None:
        """Set X-Forwarded-For/-Proto/-Host and/or Forwarded on ``out`` (``style``:
        ``both``, ``x-forwarded`` or ``rfc7239``)."""
        if self.trusted:
            prior_xff = ", ".join(v for k, v in _items(incoming) if k == "x-forwarded-for")
            prior_fwd = ", ".join(v for k, v in _items(incoming) if k == "forwarded")
            proto = incoming.get("X-Forwarded-Proto") or self.proto
            host = incoming.get("X-Forwarded-Host") or self.host
        else:
            prior_xff = prior_fwd = ""
            proto, host = self.proto, self.host
        strip_forwarded(out)
        if style != "rfc7239":
            xff = f"{prior_xff}, {self.client_ip}" if prior_xff else self.client_ip
            out["X-Forwarded-For"] = xff
            out["X-Forwarded-Proto"] = proto
            if host:
                out["X-Forwarded-Host"] = host
        if style == "x-forwarded":
            return
        node = f"for={_forwarded_node(self.client_ip)};proto={forwarded_value(self.proto)}"
        if self.host:
            node += f";host={forwarded_value(self.host)}"
        out["Forwarded"] = f"{prior_fwd}, {node}" if prior_fwd else node


_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def forwarded_value(value: str) -> str:
    r"""``value`` as an RFC 7239 value: a token as it is, anything else a quoted-string
    (with ``"`` and ``\`` escaped), so no client-sent host can add a ``,``-separated
    element or a ``;``-separated pair of its own.

    >>> forwarded_value("shop.example"), forwarded_value("x:8080")
    ('shop.example', '"x:8080"')
    >>> forwarded_value('x, for=6.6.6.6;by="a"')
    '"x, for=6.6.6.6;by=\\"a\\""'
    """
    if _TOKEN.fullmatch(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _items(headers: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    # A multidict's items() yields every repeated header, a dict's the one value.
    return ((k.lower(), v) for k, v in headers.items())


class TrustedNetworks:
    """Client networks whose forwarded headers are believed. Empty: nobody's."""

    __slots__ = ("_cache", "_nets")

    def __init__(self, cidrs: Iterable[str]) -> None:
        self._nets = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self._nets)

    def __contains__(self, ip: object) -> bool:
        if not self._nets or not isinstance(ip, str):
            return False
        hit = self._cache.get(ip)
        if hit is None:
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                return False
            hit = any(addr in net for net in self._nets)
            if len(self._cache) < 4096:  # bounded: peers are few, but never trust that
                self._cache[ip] = hit
        return hit
