"""The exception tree. Every error a user can cause has a class here and a clear message.

StranglerError
 ├── ConfigError(problems)        a config that does not load; carries every Problem found
 ├── ForwardError(stage, upstream) an upstream exchange that failed; the stage decides
 │    │                           502 vs 504 and whether a fallback is allowed
 ├── BodyTooLarge(limit)          a body over the configured limit (413)
 └── TranslateError(step, status) a translation step failed; ``status`` is the answer
                                  (400/413/500 on the request side, 502 on the response)
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config: where, what, and how to fix it.

    >>> str(Problem("routes/a.yaml", 12, "unknown upstream 'billing'", "declare it"))
    "routes/a.yaml:12: unknown upstream 'billing' (hint: declare it)"
    """

    file: str
    line: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}" + (f" (hint: {self.hint})" if self.hint else "")

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "message": self.message, "hint": self.hint}


class StranglerError(Exception):
    """Base of every error strangler raises on purpose."""


class ConfigError(StranglerError):
    """A config that cannot be loaded. ``problems`` lists all of them, in file order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid config")


class ForwardStage(enum.Enum):
    """Where an upstream exchange failed.

    Before ``RESPONSE_HEADERS`` nothing reached the client: the proxy may answer 502/504
    or fall back. After it, the client has a status line; the only honest move is to
    abort the connection.
    """

    CONNECT = "connect"  # refused, DNS, connect timeout
    SEND = "send"  # reset while sending the request
    RESPONSE_HEADERS = "response_headers"  # no (valid) response head in time
    RESPONSE_BODY = "response_body"  # reset or timeout while streaming the body


class ForwardErrorKind(enum.Enum):
    REFUSED = "refused"
    RESET = "reset"
    TIMEOUT = "timeout"
    PROTOCOL = "protocol"
    TLS = "tls"  # the handshake failed: a certificate that does not verify, no common version


class ForwardError(StranglerError):
    """An upstream exchange failed at ``stage``; ``kind`` says how."""

    def __init__(
        self, upstream: str, stage: ForwardStage, kind: ForwardErrorKind, detail: str = ""
    ) -> None:
        self.upstream = upstream
        self.stage = stage
        self.kind = kind
        self.detail = detail
        super().__init__(f"upstream {upstream!r}: {kind.value} during {stage.value}: {detail}")

    @property
    def status(self) -> int:
        """The status to answer with when no byte has reached the client yet."""
        return 504 if self.kind is ForwardErrorKind.TIMEOUT else 502

    def client_message(self) -> str:
        """One plain line for the client (no newline): names the upstream, never a
        traceback."""
        if self.kind is ForwardErrorKind.TLS:  # the reason is the whole point
            return f"upstream {self.upstream!r}: {self.detail}"
        what: Final = {
            ForwardErrorKind.REFUSED: "refused the connection",
            ForwardErrorKind.RESET: "closed the connection",
            ForwardErrorKind.TIMEOUT: "timed out",
            ForwardErrorKind.PROTOCOL: "sent an invalid response",
            ForwardErrorKind.TLS: "failed the TLS handshake",
        }[self.kind]
        return f"upstream {self.upstream!r} {what}"

    @property
    def proxy_status(self) -> str:
        """The RFC 9209 error type for this failure (``Proxy-Status: ...; error=TYPE``)."""
        if self.kind is ForwardErrorKind.TIMEOUT:
            return _TIMEOUT_TYPES[self.stage]
        if self.kind is ForwardErrorKind.PROTOCOL:
            return (
                "http_response_incomplete"
                if self.stage is ForwardStage.RESPONSE_BODY
                else "http_protocol_error"
            )
        if self.kind is ForwardErrorKind.REFUSED:
            return "connection_refused"
        if self.kind is ForwardErrorKind.TLS:
            return (
                "tls_certificate_error"
                if self.detail.startswith("certificate verify failed")
                else "tls_protocol_error"
            )
        return "connection_terminated"


_TIMEOUT_TYPES: Final = {
    ForwardStage.CONNECT: "connection_timeout",
    ForwardStage.SEND: "connection_write_timeout",
    ForwardStage.RESPONSE_HEADERS: "http_response_timeout",
    ForwardStage.RESPONSE_BODY: "connection_read_timeout",
}


class BodyTooLarge(StranglerError):
    """A request or response body exceeded ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        super().__init__(f"body larger than {limit} bytes")


class TranslateError(StranglerError):
    """A translation step failed: ``step`` names it, ``message`` says why.

    ``str(err)`` is ``"response.json[2] map status: value 'VOID' not in the map"``.
    ``status`` is what the proxy should answer instead, set by the ``Plan``: 400 when
    the client's request cannot be translated, 413 when its body is over
    ``max_body``, 500 when a request hook fails, 502 for anything on the response
    side (0 until a plan has set it). ``recoverable``: ``on_error: passthrough`` may
    step over this failure even though the step does not touch the body (a hook's);
    under ``passthrough`` a failing body step is always stepped over.
    """

    def __init__(
        self, step: str, message: str, *, status: int = 0, recoverable: bool = False
    ) -> None:
        self.step = step
        self.message = message
        self.status = status
        self.recoverable = recoverable
        super().__init__(f"{step}: {message}")

    def client_message(self) -> str:
        """One plain line for the client (no newline); never a traceback."""
        return f"translation failed: {' '.join(str(self).split())}"  # one line, always
