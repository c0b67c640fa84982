"""The demo's own users: a small, steady stream of reads through the proxy, so the
route on autopilot has traffic to judge and the status page shows a migration moving.

Bounded by construction: one request at a time, ``rate`` requests a second at most
(5 by default), only to the demo's proxy on 127.0.0.1, until the demo stops. Each
request is a sticky user (``X-User-Id``) reading a customer's invoices or an invoice;
every answer is read whole and dropped. A failed request is counted, never raised:
the demo keeps running whatever the proxy answers.
"""

from __future__ import annotations

import asyncio
from typing import Final

import aiohttp

__all__ = ["DemoTraffic"]

_PATHS: Final = (
    "/api/v1/customers/{n}/invoices",
    "/api/v1/customers/{n}/invoices",
    "/api/v1/customers/{n}/invoices",
    "/api/v1/invoices/500{n}",
    "/api/v1/customers/{n}",
)
_CUSTOMERS: Final = 5
_USERS: Final = 200


class DemoTraffic:
    def __init__(self, base: str, rate: float = 5.0) -> None:
        self.base = base.rstrip("/")
        self.interval = 1.0 / rate
        self.sent = 0
        self.failed = 0

    def target(self, i: int) -> tuple[str, dict[str, str]]:
        """The ``i``-th request: a path and its sticky user.

        >>> DemoTraffic("http://127.0.0.1:8080").target(7)
        ('/api/v1/customers/3/invoices', {'X-User-Id': 'user-7'})
        """
        path = _PATHS[i % len(_PATHS)].format(n=i % _CUSTOMERS + 1)
        return path, {"X-User-Id": f"user-{i % _USERS}"}

    async def run(self) -> None:
        """Send until cancelled."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                path, headers = self.target(self.sent)
                self.sent += 1
                try:
                    async with session.get(self.base + path, headers=headers) as resp:
                        await resp.read()
                except (aiohttp.ClientError, TimeoutError):
                    self.failed += 1
                await asyncio.sleep(self.interval)  # the pace itself, not a wait for an event
