"""The admin write token: read once, kept out of reprs and logs, compared in constant time;
and the start-up check that the admin API's open reads are not exposed by mistake."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from pathlib import Path
from typing import Final

from aiohttp import web

from strangler.config.model import Admin
from strangler.errors import StranglerError

log = logging.getLogger("strangler.admin")


class Secret:
    """A string that never shows itself in ``repr``/``str`` (logs, tracebacks)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def matches(self, candidate: str) -> bool:
        return hmac.compare_digest(self._value.encode(), candidate.encode())


def load_token(admin: Admin) -> Secret | None:
    """The token from ``admin.token_file`` if set, else from env ``admin.token_env``.

    ``None`` means no token is configured: every write is refused.
    """
    if admin.token_file:
        value = Path(admin.token_file).read_text(encoding="utf-8").strip()
    else:
        value = os.environ.get(admin.token_env, "").strip()
    return Secret(value) if value else None


_BEARER: Final = "bearer "


def require_token(request: web.Request, token: Secret | None) -> None:
    """Raise 403 when writes are disabled, 401 when the bearer token is missing or wrong."""
    if token is None:
        raise web.HTTPForbidden(
            text="admin writes are disabled: no admin token is configured "
            "(set STRANGLER_ADMIN_TOKEN or admin.token_file)\n"
        )
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith(_BEARER) or not token.matches(auth[len(_BEARER) :].strip()):
        raise web.HTTPUnauthorized(
            text="missing or wrong admin token (send 'Authorization: Bearer TOKEN')\n",
            headers={"WWW-Authenticate": 'Bearer realm="strangler-admin"'},
        )


class AdminExposed(StranglerError):
    """``admin.listen`` is reachable from the network, there is no token, and nobody
    said that open reads there are fine (``admin.allow_public_reads``)."""


def is_loopback(host: str) -> bool:
    """``127.0.0.0/8``, ``::1`` and ``localhost``; any other name may resolve elsewhere.

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(admin: Admin, token: Secret | None) -> None:
    """Refuse (``AdminExposed``, one line) a non-loopback admin listener without a
    token unless ``admin.allow_public_reads``; warn once when it is allowed.

    Reads (routes, upstream URLs, metrics, the audit log, the backlog) need no token,
    so such a listener shows them to anyone who can reach it."""
    host = admin.listen.host
    if is_loopback(host):
        return
    if token is None and not admin.allow_public_reads:
        raise AdminExposed(
            f"admin.listen {admin.listen} is not a loopback address and no admin token is "
            "set, so routes, upstream URLs, metrics and the audit log would be open to the "
            f"network: set {admin.token_env} (or admin.token_file), listen on 127.0.0.1, "
            "or set admin.allow_public_reads: true"
        )
    log.warning(
        "the admin API on %s answers reads (routes, upstream URLs, metrics, audit log) "
        "without a token; only writes need one",
        admin.listen,
    )
