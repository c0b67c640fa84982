"""The TLS keys' rules across keys, which the model cannot state.

``listen`` (``HOST:PORT`` or ``{address, tls, redirect_http}``) and ``upstreams.NAME.tls``
are read by pydantic (``ListenEntry``, ``ListenTls``, ``CertKey``, ``UpstreamTls``; the
files by the kinds of ``tls_files``: each must load, and each key fit its certificate).
What is left reads the nodes, so it is reported with the keys' own problems:

- ``listen.redirect_http`` needs ``listen.tls``, and an address of its own;
- an upstream's ``tls`` needs an https:// URL, and its ``cert`` and ``key`` go together.

>>> from strangler.config.source import read_text
>>> root = read_text("listen: {address: 127.0.0.1:0, redirect_http: 127.0.0.1:80}", "m.yaml")
>>> w = Walker("m.yaml")
>>> check_listen(w, root.files[0].root.get("listen"))
>>> print(w.problems[0].message)
listen.redirect_http needs listen.tls: it redirects to https://
"""

from __future__ import annotations

from strangler.config import kinds
from strangler.config.model import Location
from strangler.config.source import Map, Node, Scalar
from strangler.config.values import BadValue
from strangler.config.walker import Walker

__all__ = ["check_listen", "check_upstream_tls"]


def _address(node: Node | None) -> str | None:
    try:
        return str(kinds.LISTEN.parse(node.value)) if isinstance(node, Scalar) else None
    except BadValue:  # pydantic reports it
        return None


def check_listen(w: Walker, node: Node | None) -> None:
    """``listen.redirect_http`` against ``tls`` and ``address``."""
    redirect = node.given("redirect_http") if isinstance(node, Map) else None
    if not isinstance(node, Map) or redirect is None:
        return
    if node.given("tls") is None:
        w.report(
            redirect.at,
            "listen.redirect_http needs listen.tls: it redirects to https://",
            "add tls: {cert: FILE, key: FILE} to listen, or remove redirect_http",
        )
        return
    plain = _address(redirect)  # port 0: each takes a free port of its own
    if plain is not None and plain == _address(node.get("address")) and not plain.endswith(":0"):
        w.report(
            redirect.at,
            f"listen.redirect_http {plain} is the TLS listener's own address",
            "give plain HTTP its own port, for example 0.0.0.0:8080",
        )


def check_upstream_tls(w: Walker, name: str, node: Node) -> Location:
    """``upstreams.NAME.tls`` against the URL, and ``cert`` with ``key``; the line of
    ``verify`` (where ``strangler check`` warns about ``verify: false``)."""
    tls = node.get("tls") if isinstance(node, Map) else None
    if not isinstance(node, Map) or not isinstance(tls, Map):
        return node.at
    url = node.get("url")
    if isinstance(url, Scalar) and not str(url.value).lower().startswith("https://"):
        w.report(
            tls.at,
            f"upstreams.{name} has tls but its url {url.value!r} is not https://",
            "use an https:// URL, or remove tls",
        )
    cert, key = tls.given("cert"), tls.given("key")
    if cert is not None and key is None:
        w.report(
            cert.at,
            f"upstreams.{name}.tls has cert but no key",
            "add key: the certificate's private key file",
        )
    elif key is not None and cert is None:
        w.report(
            key.at,
            f"upstreams.{name}.tls has key but no cert",
            "add cert: the certificate chain file",
        )
    verify = tls.get("verify")
    return tls.at if verify is None else verify.at
