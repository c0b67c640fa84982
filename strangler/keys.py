"""Typed keys for state kept on aiohttp objects. A leaf module: imports nothing of ours
but types, so every module can use it without cycles."""
