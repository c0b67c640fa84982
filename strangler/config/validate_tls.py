"""The TLS keys: ``listen`` in its mapping form, and ``upstreams.NAME.tls``.

``listen`` is ``host:port`` (plain HTTP) or a mapping::

    listen:
      address: 0.0.0.0:8443
      tls:
        cert: certs/proxy.pem           # the certificate chain (PEM)
        key: certs/proxy.key            # its private key (PEM, unencrypted)
        min_version: "1.2"              # or "1.3"
        sni:                            # other certificates, by the client's SNI name
          api.example.com: {cert: certs/api.pem, key: certs/api.key}
          "*.example.org": {cert: certs/org.pem, key: certs/org.key}
      redirect_http: 0.0.0.0:8080       # plain HTTP here answers 308 to https://

An https:// upstream takes ``tls: {ca, cert, key, server_name, verify}``. Every file
is resolved against the main config file's directory and loaded here, as the server
would load it (``tls_files``): a missing file, a file that is not PEM, a key that does
not fit its certificate, a ``cert`` without its ``key`` are problems at their line.

>>> from strangler.config.source import read_text
>>> root = read_text("listen: {address: 127.0.0.1:0, tls: {cert: a.pem}}", "m.yaml")
>>> w = Walker("m.yaml")
>>> TlsReader(w).listen(root.files[0].root.get("listen")) is None
True
>>> print(w.problems[0])
m.yaml:1: listen.tls has cert but no key (hint: add key: the certificate's private key file)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, cast

from strangler.config.model import CertKey, Listen, ListenTls, Location, TlsVersion, UpstreamTls
from strangler.config.source import Map, Node, Scalar, describe
from strangler.config.tls_files import TLS_VERSIONS, check_pem, client_context, server_context
from strangler.config.values import BadValue, check_host
from strangler.config.walker import Walker

__all__ = ["LISTEN_KEYS", "LISTEN_TLS_KEYS", "UPSTREAM_TLS_KEYS", "TlsReader"]

LISTEN_KEYS: Final = ("address", "tls", "redirect_http")
LISTEN_TLS_KEYS: Final = ("cert", "key", "min_version", "sni")
UPSTREAM_TLS_KEYS: Final = ("ca", "cert", "key", "server_name", "verify")
_PAIR_KEYS: Final = ("cert", "key")


class TlsReader:
    """Reads the TLS keys, reporting through ``walker``; ``None`` after a problem."""

    def __init__(self, walker: Walker) -> None:
        self.w = walker

    # -- the listener ------------------------------------------------------------------
    def listen(self, node: Node) -> Listen | None:
        """``listen``: ``host:port``, or ``{address, tls, redirect_http}``."""
        if not isinstance(node, Map):
            return self.w.listen(node, "listen")
        f = self.w.fields(
            node, LISTEN_KEYS, subject="listen", where="in listen", required=("address",)
        )
        if f is None:
            return None
        # read on without an address, so one run shows every problem
        address = self.w.listen(f["address"], "listen.address") if "address" in f else None
        tls = None if "tls" not in f else self.listen_tls(f["tls"])
        redirect = None
        if "redirect_http" in f:
            redirect = self.w.listen(f["redirect_http"], "listen.redirect_http")
            if "tls" not in f:
                self.w.report(
                    f["redirect_http"].at,
                    "listen.redirect_http needs listen.tls: it redirects to https://",
                    "add tls: {cert: FILE, key: FILE} to listen, or remove redirect_http",
                )
                return None
            if redirect is not None and redirect.port and str(redirect) == str(address):
                self.w.report(
                    f["redirect_http"].at,
                    f"listen.redirect_http {redirect} is the TLS listener's own address",
                    "give plain HTTP its own port, for example 0.0.0.0:8080",
                )
                return None
            if redirect is None:
                return None
        if address is None or ("tls" in f and tls is None):
            return None
        return Listen(host=address.host, port=address.port, tls=tls, redirect_http=redirect)

    def listen_tls(self, node: Node) -> ListenTls | None:
        f = self.w.fields(node, LISTEN_TLS_KEYS, subject="listen.tls", where="in listen.tls")
        if f is None:
            return None
        default = self.server_pair(self.pair(node, f, "listen.tls", required=True), "listen.tls")
        version: str | None = "1.2"
        if "min_version" in f:
            version = self._version(f["min_version"])
        sni: list[tuple[str, CertKey]] = []
        ok = True
        if "sni" in f:
            got = self.sni(f["sni"])
            ok = got is not None
            sni = got or []
        if default is None or version is None or not ok:
            return None
        tls_version = cast(TlsVersion, version)
        return ListenTls(default=default, sni=tuple(sni), min_version=tls_version, at=node.at)

    def server_pair(self, pair: CertKey | None, what: str) -> CertKey | None:
        """``pair`` if the listener can serve it (the key fits the certificate)."""
        if pair is None or not self._checked(pair.at, what, server_context, pair):
            return None
        return pair

    def _version(self, node: Node) -> str | None:
        # YAML reads 1.2 as a float: take it the way it was meant
        if isinstance(node, Scalar) and isinstance(node.value, float):
            node = Scalar(f"{node.value:g}", node.at)
        return self.w.choice(node, "listen.tls.min_version", tuple(TLS_VERSIONS))

    def sni(self, node: Node) -> list[tuple[str, CertKey]] | None:
        """``sni: {host: {cert, key}}``: exact host names or ``*.example.com``."""
        if not isinstance(node, Map):
            self.w.report(
                node.at,
                f"listen.tls.sni must map host names to {{cert, key}}, got {describe(node)}",
                "for example sni: {api.example.com: {cert: api.pem, key: api.key}}",
            )
            return None
        out: list[tuple[str, CertKey]] = []
        ok = True
        for key, value in node.entries:
            name = key.value
            host = None
            if isinstance(name, str):
                host = self.w.checked(key, "listen.tls.sni", check_host, name)
            else:
                self.w.report(key.at, f"listen.tls.sni: {describe(key)} is not a host name")
            what = f"listen.tls.sni {name!r}"
            f = self.w.fields(value, _PAIR_KEYS, subject=what, where=f"in {what}")
            pair = None if f is None else self.pair(value, f, what, required=True)
            pair = self.server_pair(pair, what)
            if host is None or pair is None:
                ok = False
                continue
            out.append((host.lower(), pair))
        return out if ok else None

    # -- upstreams ---------------------------------------------------------------------
    def upstream_tls(self, node: Node, subject: str, url: str | None) -> UpstreamTls | None:
        """``upstreams.NAME.tls``: only for an https:// URL."""
        what = f"{subject} tls"
        f = self.w.fields(node, UPSTREAM_TLS_KEYS, subject=what, where=f"in {what}")
        if f is None:
            return None
        if url is not None and not url.startswith("https://"):
            self.w.report(
                node.at,
                f"{subject} has tls but its url {url!r} is not https://",
                "use an https:// URL, or remove tls",
            )
            return None
        ok = True
        ca = None
        if "ca" in f:
            ca = self.w.path(f["ca"], f"{what}.ca")
            if ca is not None and not self._checked(f["ca"].at, f"{what}.ca", check_pem, ca, "ca"):
                ca = None
            ok = ca is not None
        client = self.pair(node, f, what, required=False)  # None when neither is given
        if ("cert" in f or "key" in f) and client is None:
            ok = False
        server_name = None
        if "server_name" in f:
            text = self.w.string(f["server_name"], f"{what}.server_name")
            server_name = (
                None
                if text is None
                else self.w.checked(f["server_name"], f"{what}.server_name", check_host, text)
            )
            ok = ok and server_name is not None
        verify, verify_at = True, node.at
        if "verify" in f:
            flag = self.w.boolean(f["verify"], f"{what}.verify")
            ok = ok and flag is not None
            verify = True if flag is None else flag
            verify_at = f["verify"].at
        if not ok:
            return None
        tls = UpstreamTls(
            ca=ca, client=client, server_name=server_name, verify=verify, verify_at=verify_at
        )
        return tls if self._checked(node.at, what, client_context, tls) else None

    # -- shared ------------------------------------------------------------------------
    def pair(self, node: Node, f: dict[str, Node], what: str, *, required: bool) -> CertKey | None:
        """``cert`` and ``key`` of ``f``: both files checked; one without the other is
        a problem (``required``: neither is one too)."""
        if "cert" not in f and "key" not in f and not required:
            return None
        missing = [k for k in _PAIR_KEYS if k not in f]
        if missing == ["key"]:
            self.w.report(
                f["cert"].at,
                f"{what} has cert but no key",
                "add key: the certificate's private key file",
            )
            return None
        if missing == ["cert"]:
            self.w.report(
                f["key"].at, f"{what} has key but no cert", "add cert: the certificate chain file"
            )
            return None
        if missing:
            self.w.report(node.at, f"{what} needs cert and key", "cert: FILE, key: FILE (PEM)")
            return None
        paths: dict[str, str] = {}
        for k in _PAIR_KEYS:
            path = self.w.path(f[k], f"{what}.{k}")
            if path is not None and self._checked(f[k].at, f"{what}.{k}", check_pem, path, k):
                paths[k] = path
        if len(paths) != len(_PAIR_KEYS):
            return None
        return CertKey(cert=paths["cert"], key=paths["key"], at=f["cert"].at)

    def _checked(
        self, at: Location, what: str, check: Callable[..., object], *args: object
    ) -> bool:
        try:
            check(*args)
        except BadValue as err:
            self.w.report(at, f"{what}: {err}", err.hint)
            return False
        return True
