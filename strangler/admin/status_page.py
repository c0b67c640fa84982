"""Placeholder replaced by the status page module (registers GET /)."""

from __future__ import annotations

from aiohttp import web


def add_status_page(app: web.Application) -> None:
    """Register the status page at ``/`` (filled in by the status page work)."""
    del app
