"""Slow clients, the connection cap and a large upload sequence against the
experimental llhttp listener (``STRANGLER_LISTENER=llhttp``): the same test functions
as for the aiohttp listener, collected again with the switch on."""

from __future__ import annotations

import pytest

from tests.integration.test_slow_clients import (  # noqa: F401
    fd_room,
    test_accept_pauses_at_max_connections_and_admin_stays_reachable,
    test_connection_is_closed_after_its_timeout,
    test_idle_and_slowloris_are_closed_while_normal_clients_are_answered,
    test_idle_connections_make_room_at_max_connections,
    test_slow_but_steady_upload_is_not_cut,
)
from tests.integration.test_upload_sequence import (  # noqa: F401
    test_large_upload_then_expect_then_form_never_hangs,
)


@pytest.fixture(autouse=True)
def llhttp_listener(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRANGLER_LISTENER", "llhttp")
