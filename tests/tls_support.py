"""Real certificates for the TLS tests, made by a throwaway CA (``trustme``).

``write_leaf`` writes a certificate chain and its key as PEM files, the way an
operator's files look; ``client_context`` trusts the test CA only.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trustme


@dataclass(frozen=True)
class Pems:
    cert: Path
    key: Path


def issue(ca: trustme.CA, *identities: str, **kw: Any) -> tuple[bytes, bytes]:
    """A new certificate chain and its key, as PEM bytes."""
    leaf = ca.issue_cert(*identities, **kw)
    return b"".join(b.bytes() for b in leaf.cert_chain_pems), leaf.private_key_pem.bytes()


def replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, as a careful rotation does."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_leaf(ca: trustme.CA, directory: Path, name: str, *identities: str, **kw: Any) -> Pems:
    """Issue a certificate for ``identities`` and write ``name.pem`` and ``name.key``
    into ``directory`` (each replaced atomically, cert first)."""
    cert, key = issue(ca, *identities, **kw)
    pems = Pems(directory / f"{name}.pem", directory / f"{name}.key")
    replace(pems.cert, cert)
    replace(pems.key, key)
    return pems


def write_ca(ca: trustme.CA, directory: Path) -> Path:
    path = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def server_context(ca: trustme.CA, *identities: str, **kw: Any) -> ssl.SSLContext:
    """A server context with a certificate from ``ca`` for ``identities``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*identities, **kw).configure_cert(ctx)
    return ctx


async def peer_names(port: int, ca: trustme.CA, server_hostname: str) -> list[str]:
    """The DNS/IP names of the certificate the listener on ``port`` presents."""
    import asyncio

    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(ca), server_hostname=server_hostname
    )
    try:
        cert = writer.get_extra_info("peercert")
        return [value for _, value in cert["subjectAltName"]]
    finally:
        writer.close()
        await writer.wait_closed()
