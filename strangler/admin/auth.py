"""The admin write token: read once, kept out of reprs and logs, compared in constant time."""

from __future__ import annotations

import hmac
import os
from pathlib import Path
from typing import Final

from aiohttp import web

from strangler.config.model import Admin


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
