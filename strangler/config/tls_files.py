"""TLS contexts from PEM files, with one clear line for every way a file can be wrong.

Used twice, so that ``strangler check`` and the running proxy agree: by validation
(does every certificate, key and CA file load, and does each key fit its
certificate?) and by ``strangler.tls`` when it builds the listener's and the
upstreams' ``ssl.SSLContext`` (at start, and again when the files change).

Every function raises ``BadValue`` (message + hint), never an ``ssl`` traceback.
An encrypted private key is refused up front: OpenSSL would otherwise ask for its
passphrase on the terminal.
"""

from __future__ import annotations

import ssl
from typing import Final

from strangler.config.model import CertKey, TlsVersion, UpstreamTls
from strangler.config.values import BadValue

__all__ = ["TLS_VERSIONS", "check_pem", "client_context", "server_context"]

TLS_VERSIONS: Final[dict[TlsVersion, ssl.TLSVersion]] = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
_WHAT: Final = {
    "cert": (b"CERTIFICATE-----", "a certificate"),
    "key": (b"PRIVATE KEY-----", "a private key"),
    "ca": (b"CERTIFICATE-----", "a CA certificate"),
}


def check_pem(path: str, kind: str) -> None:
    """Raise ``BadValue`` unless ``path`` is a readable PEM file holding ``kind``
    (``cert``, ``key`` or ``ca``)."""
    marker, what = _WHAT[kind]
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise BadValue(f"file {path!r} does not exist", f"the path to {what} (PEM)") from None
    except IsADirectoryError:
        raise BadValue(f"{path!r} is a directory, not a file", f"the path to {what}") from None
    except OSError as e:
        raise BadValue(f"cannot read {path!r}: {e.strerror or e}") from None
    except ValueError:  # open() refuses a path with a NUL byte
        raise BadValue(f"{path!r} is not a file path", f"the path to {what} (PEM)") from None
    if b"-----BEGIN " not in data or marker not in data:
        raise BadValue(
            f"{path!r} does not hold {what} in PEM form",
            f"expected a '-----BEGIN ...{marker.decode()}' block",
        )
    if kind == "key" and b"ENCRYPTED" in data:
        raise BadValue(
            f"the private key {path!r} is encrypted",
            "strangler needs it unencrypted: openssl pkey -in KEY -out KEY.plain",
        )


def _reason(e: ssl.SSLError) -> str:
    """``[SSL: KEY_VALUES_MISMATCH] key values mismatch (_ssl.c:...)`` → ``key values
    mismatch``."""
    if e.reason:
        return str(e.reason).lower().replace("_", " ")
    return str(e.strerror or e)


def _no_passphrase() -> bytes:
    raise BadValue("the private key is encrypted")  # check_pem reports it first


def load_pair(ctx: ssl.SSLContext, pair: CertKey) -> None:
    """Load ``pair`` into ``ctx``; a key that does not fit its certificate is a
    ``BadValue``."""
    check_pem(pair.cert, "cert")
    check_pem(pair.key, "key")
    try:
        ctx.load_cert_chain(pair.cert, pair.key, password=_no_passphrase)
    except ssl.SSLError as e:
        hint = (
            "the key must be the one the certificate was issued for"
            if "mismatch" in _reason(e)
            else "both must be PEM: the certificate chain, then its private key"
        )
        raise BadValue(
            f"cannot use certificate {pair.cert!r} with key {pair.key!r}: {_reason(e)}", hint
        ) from None


def server_context(pair: CertKey, min_version: TlsVersion = "1.2") -> ssl.SSLContext:
    """A listener context serving ``pair``, at least TLS ``min_version``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[min_version]
    ctx.set_alpn_protocols(["http/1.1"])  # the listener speaks HTTP/1.1 only
    load_pair(ctx, pair)
    return ctx


def client_context(tls: UpstreamTls) -> ssl.SSLContext:
    """The context for an https:// upstream: verifies against ``tls.ca`` (only) or the
    system store, checks the host name, presents ``tls.client`` when given; TLS 1.2+."""
    if tls.ca is not None:
        check_pem(tls.ca, "ca")
    try:
        ctx = ssl.create_default_context(cafile=tls.ca)
    except ssl.SSLError as e:
        raise BadValue(f"cannot use CA file {tls.ca!r}: {_reason(e)}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if not tls.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.client is not None:
        load_pair(ctx, tls.client)
    return ctx
