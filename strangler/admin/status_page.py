"""The migration status page on the admin port: ``GET /`` and its two assets.

=========================== ==========================================================
``GET /``                   ``static/status.html``; ``?refresh=N`` sets the refresh
                            period in seconds (1 to 300, default 5)
``GET /static/{name}``      ``status.css``, ``status.js`` or ``autopilot.js``; any other
                            name is 404
=========================== ==========================================================

The page is self-contained (no CDN, no web fonts: it works offline and on an
air-gapped admin network). Its script fetches ``api/status``, ``api/routes`` and
``api/progress/history`` (drawn as an inline SVG chart), relative to the page, every
few seconds; ``?window=5m|1h|24h|all`` (default ``1h``) picks the shares shown.
``autopilot.js`` fills the Autopilot panel from ``api/migrate`` (hidden without plans). Bars
are drawn at their final width at once (no animation), so a capture at any moment is
true. It fills the page in with DOM text nodes only (route names and learned legacy
paths come from config and from clients, so nothing is ever parsed as HTML).

Every answer carries a strict Content-Security-Policy: scripts, styles and fetches
from this origin only, no inline script, no framing. The files are read once, when
the routes are added, so a missing asset fails the start instead of a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web

__all__ = ["ASSETS", "STATIC_DIR", "add_status_page"]

STATIC_DIR: Final = Path(__file__).with_name("static")
PAGE: Final = "status.html"
ASSETS: Final = {
    "status.css": "text/css",
    "status.js": "text/javascript",
    "autopilot.js": "text/javascript",
}
"""The files ``/static/{name}`` serves, with their content types; nothing else is."""

CSP: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate: an upgraded proxy serves its own page
}


@dataclass(frozen=True, slots=True)
class _Files:
    page: bytes
    assets: dict[str, bytes]

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(
            body=self.page, content_type="text/html", charset="utf-8", headers=HEADERS
        )

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = self.assets.get(name)
        if body is None:
            raise web.HTTPNotFound(text=f"no asset named {name!r}\n")
        return web.Response(body=body, content_type=ASSETS[name], charset="utf-8", headers=HEADERS)


def add_status_page(app: web.Application) -> None:
    """Add ``GET /`` (the status page) and ``GET /static/{name}`` to the admin app
    (before it starts). Raises ``OSError`` if a page file is missing."""
    files = _Files(
        page=(STATIC_DIR / PAGE).read_bytes(),
        assets={name: (STATIC_DIR / name).read_bytes() for name in ASSETS},
    )
    app.router.add_get("/", files.index)
    app.router.add_get("/static/{name}", files.asset)
