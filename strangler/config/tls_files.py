"""TLS contexts from PEM files, with one clear line for every way a file can be wrong.

Used twice, so that ``strangler check`` and the running proxy agree: by validation
(the kinds ``CERT``, ``KEY``, ``CA``: does every file load, and ``FITS``: does each
key fit its certificate?) and by ``strangler.tls`` when it builds the listener's and
the upstreams' ``ssl.SSLContext`` (at start, and again when the files change).

Every function raises ``BadValue`` (message + hint), never an ``ssl`` traceback.
An encrypted private key is refused up front: OpenSSL would otherwise ask for its
passphrase on the terminal.

>>> try:
...     KEY.parse("no-such.key", "/etc")
... except BadValue as err:
...     print(err, "|", err.hint)
file '/etc/no-such.key' does not exist | the path to a private key (PEM)
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from strangler.config import kinds
from strangler.config.values import BadValue

if TYPE_CHECKING:
    from strangler.config.model import TlsVersion, UpstreamTls

__all__ = [
    "CA",
    "CERT",
    "FITS",
    "KEY",
    "LISTEN_FORMS",
    "TLS_VERSIONS",
    "VERSION",
    "check_pem",
    "client_context",
    "server_context",
]

TLS_VERSIONS: Final[dict[str, ssl.TLSVersion]] = {
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
    if kind != "key":  # a key loads only with its certificate: FITS
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
        except ssl.SSLError as e:
            raise BadValue(f"cannot load {what} from {path!r}: {_reason(e)}") from None


def _reason(e: ssl.SSLError) -> str:
    """``[SSL: KEY_VALUES_MISMATCH] key values mismatch (_ssl.c:...)`` → ``key values
    mismatch``."""
    if e.reason:
        return str(e.reason).lower().replace("_", " ")
    text = re.sub(r"^\[\w+\] | \(_ssl\.c:\d+\)$", "", str(e.strerror or e))
    return "its PEM block does not decode" if text == "PEM lib" else text


def _no_passphrase() -> bytes:
    raise BadValue("the private key is encrypted")  # check_pem reports it first


def load_pair(ctx: ssl.SSLContext, cert: str, key: str) -> None:
    """Load ``cert`` and its ``key`` into ``ctx``; a key that does not fit its
    certificate is a ``BadValue``."""
    check_pem(cert, "cert")
    check_pem(key, "key")
    try:
        ctx.load_cert_chain(cert, key, password=_no_passphrase)
    except ssl.SSLError as e:
        hint = (
            "the key must be the one the certificate was issued for"
            if "mismatch" in _reason(e)
            else "both must be PEM: the certificate chain, then its private key"
        )
        raise BadValue(
            f"cannot use certificate {cert!r} with key {key!r}: {_reason(e)}", hint
        ) from None


def server_context(cert: str, key: str, min_version: TlsVersion = "1.2") -> ssl.SSLContext:
    """A listener context serving ``cert`` with ``key``, at least TLS ``min_version``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = TLS_VERSIONS[min_version]
    ctx.set_alpn_protocols(["http/1.1"])  # the listener speaks HTTP/1.1 only
    load_pair(ctx, cert, key)
    return ctx


def client_context(tls: UpstreamTls) -> ssl.SSLContext:
    """The context for an https:// upstream: verifies against ``tls.ca`` (only) or the
    system store, checks the host name, presents ``tls.cert`` when given; TLS 1.2+."""
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
    if tls.cert is not None and tls.key is not None:
        load_pair(ctx, tls.cert, tls.key)
    return ctx


# ---------------------------------------------------------------- the kinds (model.py)


def _pem(kind: str) -> kinds.Kind:
    """A PEM file holding ``kind`` that loads (``check_pem``), relative to the main file."""

    def parse(value: object, base_dir: str) -> str:
        path: str = kinds.FILE.parse(value, base_dir)
        check_pem(path, kind)
        return path

    example = {"cert": "certs/proxy.pem", "key": "certs/proxy.key", "ca": "certs/ca.pem"}[kind]
    return kinds.Kind(parse, {**kinds.FILE.schema, "examples": [example]}, with_base=True)


CERT: Final = _pem("cert")
KEY: Final = _pem("key")
CA: Final = _pem("ca")


class _Fits:
    """On a ``key`` field: the key is the one its sibling ``cert`` was issued for (not
    checked when ``cert`` has a problem of its own, or is not given)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def check(key: str, info: Any) -> str:
            cert = info.data.get("cert")
            if cert is not None:
                load_pair(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), cert, key)
            return key

        return core_schema.with_info_after_validator_function(check, handler(source))


FITS: Final = _Fits()


class _Before:
    """The value as written, ``convert``ed before pydantic reads it; the schema allows
    what is written that way (``written``) too."""

    def __init__(self, convert: Callable[[object], object], written: dict[str, Any]) -> None:
        self.convert = convert
        self.written = written

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(self.convert, handler(source))

    def __get_pydantic_json_schema__(self, core: Any, handler: Any) -> dict[str, Any]:
        return {"anyOf": [dict(self.written), handler(core)]}


VERSION: Final = _Before(
    lambda value: f"{value:g}" if isinstance(value, float) else value,  # YAML read 1.2
    {"enum": [float(version) for version in TLS_VERSIONS]},
)
LISTEN_FORMS: Final = _Before(
    # HOST:PORT, and anything but a mapping, is the address: its kind says what is wrong
    lambda value: value if isinstance(value, dict) else {"address": value},
    {"type": "string", "examples": ["0.0.0.0:8443"]},
)
