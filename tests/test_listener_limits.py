"""The listener's ``limits:`` keys (validated with file:line problems) and the
connection cap fitted to the open-file limit."""

from __future__ import annotations

import pytest

from strangler.config import load_config_text
from strangler.config.model import Limits
from strangler.errors import ConfigError
from strangler.listener import DEFAULT_CONNECTIONS, FD_RESERVE, connection_cap, listener_limits

LEGACY = "upstreams: {legacy: http://127.0.0.1:8000}\n"


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "m.yaml")
    return [str(p) for p in info.value.problems]


def test_defaults() -> None:
    limits = load_config_text(LEGACY, "m.yaml").limits
    assert (
        limits.max_head_bytes,
        limits.header_timeout,
        limits.keepalive_timeout,
        limits.body_timeout,
        limits.max_connections,
        limits.underscore_headers,
    ) == (32768, 30.0, 75.0, 60.0, 0, "drop")


def test_keys_read_with_units() -> None:
    text = LEGACY + (
        "limits: {max_head_bytes: 64KiB, header_timeout: 10s, keepalive_timeout: 2m,\n"
        "         body_timeout: 500ms, max_connections: 2000, underscore_headers: keep}\n"
    )
    assert load_config_text(text, "m.yaml").limits == Limits(
        max_head_bytes=65536,
        header_timeout=10.0,
        keepalive_timeout=120.0,
        body_timeout=0.5,
        max_connections=2000,
        underscore_headers="keep",
    )


def test_bad_values_are_problems_with_lines() -> None:
    text = LEGACY + (
        "limits:\n"
        "  header_timeout: 0s\n"
        "  keepalive_timeout: soon\n"
        "  max_head_bytes: 0\n"
        "  max_connections: -1\n"
        "  underscore_headers: dorp\n"
    )
    got = problems_of(text)
    assert got[0] == "m.yaml:3: limits.header_timeout must be more than 0"
    assert got[1].startswith("m.yaml:4: limits.keepalive_timeout: ")
    assert got[2] == "m.yaml:5: limits.max_head_bytes must be more than 0"
    assert got[3] == "m.yaml:6: limits.max_connections must be at least 0, got -1"
    assert got[4].startswith(
        "m.yaml:7: limits.underscore_headers must be one of drop, keep, reject"
    )
    assert "drop" in got[4].split("hint", 1)[1]
    assert len(got) == 5


@pytest.mark.parametrize(
    ("configured", "fd_limit", "cap"),
    [
        (0, 1 << 20, DEFAULT_CONNECTIONS),  # auto: the default when there is room
        (0, 1024, (1024 - FD_RESERVE) // 2),  # auto: what the descriptors allow
        (500, 1 << 20, 500),
        (5000, 4096, (4096 - FD_RESERVE) // 2),  # lowered to fit, with a warning
        (5000, 100, 16),  # never below 16
    ],
)
def test_connection_cap_fits_the_open_file_limit(configured: int, fd_limit: int, cap: int) -> None:
    assert connection_cap(configured, fd_limit) == cap
    assert listener_limits(Limits(max_connections=configured), fd_limit).max_connections == cap
