"""The access log: formats, escaping, batching, and never a secret."""

from __future__ import annotations

import io
import json

from strangler.accesslog import AccessLog, format_entry

ENTRY = (
    1764072000.5,
    "GET",
    '/a "quoted" päth',
    "r-1",
    "legacy",
    200,
    12,
    1.23456,
    "::1",
    "ab12-7",
)


def test_json_line_is_valid_json_with_escaping() -> None:
    line = json.loads(format_entry(ENTRY, "json"))
    assert line == {
        "time": "2025-11-25T12:00:00.500Z",
        "method": "GET",
        "path": '/a "quoted" päth',
        "route": "r-1",
        "backend": "legacy",
        "status": 200,
        "bytes": 12,
        "duration_ms": 1.235,
        "client": "::1",
        "request_id": "ab12-7",
    }


def test_text_line() -> None:
    assert format_entry(ENTRY, "text") == (
        '2025-11-25T12:00:00.500Z ::1 GET /a "quoted" päth 200 12 1.235ms r-1 legacy ab12-7'
    )


def test_lines_are_batched_and_all_written_on_close() -> None:
    out = io.StringIO()
    log = AccessLog("json", out)
    for i in range(1000):
        log.log((1764072000.0 + i / 1000, "GET", f"/{i}", "r", "legacy", 200, 1, 0.1, "c", "i"))
    log.close()
    lines = out.getvalue().splitlines()
    assert [json.loads(x)["path"] for x in lines] == [f"/{i}" for i in range(1000)]


def test_off_writes_nothing() -> None:
    out = io.StringIO()
    log = AccessLog("off", out)
    log.log(ENTRY)
    log.close()
    assert out.getvalue() == ""


def test_json_line_escapes_whatever_a_client_can_send() -> None:
    # The template skips json.dumps for plain values: every value that needs escaping
    # must still come out as valid JSON holding exactly the original text.
    nasty = ["/a\\b", "/x\ny", "/\x7f\x01", "/ü/€/😀", '"', "", "/plain"]
    for text in nasty:
        entry = (1764072000.0, text, text, text, text, 200, 0, 0.1, text, "id")
        line = format_entry(entry, "json")
        assert "\n" not in line
        got = json.loads(line)
        assert [got[k] for k in ("method", "path", "route", "backend", "client")] == [text] * 5


def test_timestamps_across_milliseconds_and_seconds() -> None:
    out = io.StringIO()
    log = AccessLog("json", out)
    stamps = [1764072000.9985, 1764072000.9989, 1764072000.9991, 1764072001.0004, 1764072001.25]
    for ts in stamps:
        log.log((ts, "GET", "/", "r", "legacy", 200, 1, 0.1, "c", "i"))
    log.close()
    times = [json.loads(x)["time"] for x in out.getvalue().splitlines()]
    assert times == [
        "2025-11-25T12:00:00.998Z",
        "2025-11-25T12:00:00.998Z",
        "2025-11-25T12:00:00.999Z",
        "2025-11-25T12:00:01.000Z",
        "2025-11-25T12:00:01.250Z",
    ]
