"""Request ids: keep the client's ``X-Request-Id`` when it is safe, else make one.

An incoming id is kept when it is 1 to 128 characters of ``A-Z a-z 0-9 . _ ~ : / + = @ -``
(no spaces, quotes, backslashes or control characters), so it cannot split or forge
an access-log line, a header or a ``Proxy-Status`` parameter. Any other value is
replaced, and the replacement is what the upstream, the access log and strangler's
own error answers see.

A made id is a per-process random prefix and a counter, ``"9f2c41d7-1a"``: unique
across the workers and restarts of a deployment (32 random bits per process), and
cheap (one counter step and one string format per request, no system call).

>>> ids = RequestIds(prefix="p")
>>> ids.take("abc-123"), ids.take(None), ids.take("bad id"), ids.take("x" * 129)
(('abc-123', False), ('p-1', True), ('p-2', True), ('p-3', True))
"""

from __future__ import annotations

import itertools
import os
import re
from typing import Final

from multidict import istr

__all__ = ["REQUEST_ID", "RequestIds"]

REQUEST_ID: Final = istr("X-Request-Id")
_SAFE: Final = re.compile(r"[A-Za-z0-9._~:/+=@-]{1,128}")


class RequestIds:
    """The id source of one process (one ``Proxy``)."""

    __slots__ = ("_next", "_prefix")

    def __init__(self, prefix: str | None = None) -> None:
        self._prefix = (prefix if prefix is not None else os.urandom(4).hex()) + "-"
        self._next = itertools.count(1).__next__

    def take(self, given: str | None) -> tuple[str, bool]:
        """The request's id, and whether it is new (so the upstream must be told)."""
        if given is not None and _SAFE.fullmatch(given):
            return given, False
        return f"{self._prefix}{self._next():x}", True
