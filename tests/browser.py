"""A tiny Chrome DevTools Protocol client for browser tests: Debian's headless
``chromium``, driven over its DevTools websocket with aiohttp (no other dependency).

    async with launch(find_chromium(), tmp_path / "profile") as browser:
        page = await browser.new_page(1280, 800)
        await page.goto("http://127.0.0.1:8081/")
        text = await page.wait_for("document.querySelector('h1')?.textContent")
        await page.screenshot(Path("artifacts/page.png"))

Waits happen in the page: ``wait_for`` resolves on the first DOM mutation that makes
its expression truthy (a ``MutationObserver``), bounded by a timeout; nothing sleeps.
Uncaught page errors and ``console.error`` calls are collected in ``Page.errors``,
and every URL the page requests in ``Page.requests``.

One websocket carries every session ("flat" mode, ``Target.attachToTarget`` with
``flatten``): each command and event names its ``sessionId``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, BinaryIO, Final

import aiohttp

__all__ = ["APT_PACKAGE", "Browser", "CDPError", "Page", "find_chromium", "launch"]

APT_PACKAGE: Final = "chromium"
FLAGS: Final = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)
START_TIMEOUT: Final = 30.0  # seconds for chromium to open its DevTools port
POLL_INTERVAL: Final = 0.05  # seconds between looks for the port file (waited on chromium)

Json = dict[str, Any]
Listener = Callable[[Json], None]


class CDPError(Exception):
    """A DevTools command failed, the page threw, or the browser went away."""


def find_chromium() -> str | None:
    """``$CHROMIUM``, else ``chromium`` on PATH, else ``/usr/bin/chromium``; ``None``
    when there is none."""
    for candidate in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class _Connection:
    """Commands out, answers and events in, over one DevTools websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._next_id = 0
        self._pending: dict[int, asyncio.Future[Json]] = {}
        self._listeners: dict[tuple[str | None, str], list[Listener]] = {}
        self._closed: str | None = None

    async def send(
        self, method: str, params: Json | None = None, session: str | None = None
    ) -> Json:
        if self._closed is not None:
            raise CDPError(f"{method}: {self._closed}")
        self._next_id += 1
        msg: Json = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            msg["sessionId"] = session
        fut: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = fut
        await self._ws.send_str(json.dumps(msg))
        return await fut

    def on(self, method: str, session: str | None, listener: Listener) -> Callable[[], None]:
        """Call ``listener(params)`` on each ``method`` event; returns the unsubscriber."""
        key = (session, method)
        self._listeners.setdefault(key, []).append(listener)

        def off() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.get(key, []).remove(listener)

        return off

    async def read_loop(self) -> None:
        try:
            async for msg in self._ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                data: Json = json.loads(msg.data)
                if "id" in data:
                    fut = self._pending.pop(data["id"], None)
                    if fut is None or fut.done():
                        continue
                    if "error" in data:
                        fut.set_exception(CDPError(json.dumps(data["error"])))
                    else:
                        fut.set_result(data.get("result", {}))
                else:
                    key = (data.get("sessionId"), data.get("method", ""))
                    for listener in list(self._listeners.get(key, ())):
                        listener(data.get("params", {}))
        finally:
            self._closed = "the browser connection closed"
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(CDPError(self._closed))
            self._pending.clear()


class Page:
    """One tab. ``errors``: uncaught exceptions and ``console.error`` texts;
    ``requests``: every URL the page asked for."""

    def __init__(self, conn: _Connection, session: str) -> None:
        self._conn = conn
        self._session = session
        self.errors: list[str] = []
        self.requests: list[str] = []
        conn.on("Runtime.exceptionThrown", session, self._on_exception)
        conn.on("Runtime.consoleAPICalled", session, self._on_console)
        conn.on("Network.requestWillBeSent", session, self._on_request)

    def _on_exception(self, params: Json) -> None:
        details = params.get("exceptionDetails", {})
        exc = details.get("exception", {})
        self.errors.append(str(exc.get("description") or details.get("text")))

    def _on_console(self, params: Json) -> None:
        if params.get("type") == "error":
            args = params.get("args", [])
            self.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in args))

    def _on_request(self, params: Json) -> None:
        self.requests.append(str(params.get("request", {}).get("url", "")))

    async def send(self, method: str, params: Json | None = None) -> Json:
        return await self._conn.send(method, params, self._session)

    async def set_viewport(self, width: int, height: int) -> None:
        await self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    async def goto(self, url: str, within: float = 15.0) -> None:
        """Navigate and return once the page's ``load`` event fired."""
        loaded: asyncio.Future[Json] = asyncio.get_running_loop().create_future()

        def on_load(params: Json) -> None:
            if not loaded.done():
                loaded.set_result(params)

        off = self._conn.on("Page.loadEventFired", self._session, on_load)
        try:
            result = await self.send("Page.navigate", {"url": url})
            if result.get("errorText"):
                raise CDPError(f"navigating to {url}: {result['errorText']}")
            async with asyncio.timeout(within):
                await loaded
        finally:
            off()

    async def evaluate(self, expression: str) -> Any:
        """The value of a JS expression (promises are awaited); raises ``CDPError`` if
        it throws."""
        result = await self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"{text}\n  in: {expression}")
        return result.get("result", {}).get("value")

    async def wait_for(self, expression: str, within: float = 10.0) -> Any:
        """The first truthy value of ``expression``, re-checked on every DOM mutation;
        ``CDPError`` naming the expression (and its last value) after ``within`` seconds."""
        source = json.dumps(expression)
        script = f"""new Promise((resolve, reject) => {{
  let last;
  const check = () => {{
    try {{ last = ({expression}); }} catch (e) {{ last = String(e); return false; }}
    if (last) {{ resolve(last); return true; }}
    return false;
  }};
  if (check()) return;
  const obs = new MutationObserver(() => {{
    if (check()) {{ obs.disconnect(); clearTimeout(timer); }}
  }});
  obs.observe(document, {{subtree: true, childList: true, characterData: true, attributes: true}});
  const timer = setTimeout(() => {{
    obs.disconnect();
    reject(new Error("timed out after {within}s waiting for " + {source} +
      "; last value: " + JSON.stringify(last)));
  }}, {int(within * 1000)});
}})"""
        return await self.evaluate(script)

    async def screenshot(self, path: Path, *, full_page: bool = True) -> None:
        """Save a PNG of the viewport, or of the whole page."""
        params: Json = {"format": "png"}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            size = metrics["cssContentSize"]
            params["captureBeyondViewport"] = True
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
        shot = await self.send("Page.captureScreenshot", params)
        data = base64.b64decode(shot["data"])
        await asyncio.to_thread(_write, path, data)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class Browser:
    def __init__(self, conn: _Connection) -> None:
        self._conn = conn

    async def new_page(self, width: int = 1280, height: int = 800) -> Page:
        target = await self._conn.send("Target.createTarget", {"url": "about:blank"})
        attached = await self._conn.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        page = Page(self._conn, attached["sessionId"])
        for domain in ("Page", "Runtime", "Network"):
            await page.send(f"{domain}.enable")
        await page.set_viewport(width, height)
        # no CSS transitions: what a screenshot shows is the final state
        await page.send(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-reduced-motion", "value": "reduce"}]},
        )
        return page


async def _devtools_url(proc: asyncio.subprocess.Process, profile: Path, log: Path) -> str:
    """The browser's websocket address, from the ``DevToolsActivePort`` file chromium
    writes into its profile once it listens. Between looks it waits on the process
    itself, so a chromium that dies on start fails at once, with its log."""
    port_file = profile / "DevToolsActivePort"
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        with contextlib.suppress(FileNotFoundError):
            lines = (await asyncio.to_thread(port_file.read_text)).split()
            if len(lines) == 2:  # written whole: "PORT\n/devtools/browser/ID"
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(POLL_INTERVAL):
                code = await proc.wait()
            raise CDPError(f"chromium exited with {code} on start:\n{_tail(log)}")
    raise CDPError(f"chromium opened no DevTools port within {START_TIMEOUT}s:\n{_tail(log)}")


def _open_log(log: Path) -> BinaryIO:
    log.parent.mkdir(parents=True, exist_ok=True)
    return log.open("wb")


def _tail(log: Path) -> str:
    with contextlib.suppress(OSError):
        return "".join(log.read_text(errors="replace").splitlines(keepends=True)[-30:])
    return "(no log)"


@asynccontextmanager
async def launch(executable: str, profile: Path) -> AsyncIterator[Browser]:
    """Start headless chromium with a fresh profile in ``profile`` (its log goes to
    ``profile/chromium.log``); close it, and wait for the process, on exit."""
    log = profile / "chromium.log"
    out = await asyncio.to_thread(_open_log, log)
    with out:
        proc = await asyncio.create_subprocess_exec(
            executable,
            *FLAGS,
            f"--user-data-dir={profile}",
            "about:blank",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )
    reader: asyncio.Task[None] | None = None
    grace = 0.0  # seconds to let chromium exit by itself before it is killed
    try:
        url = await _devtools_url(proc, profile, log)
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url, max_msg_size=0)
            conn = _Connection(ws)
            reader = asyncio.get_running_loop().create_task(conn.read_loop(), name="cdp-reader")
            try:
                yield Browser(conn)
            finally:
                with contextlib.suppress(CDPError, ConnectionError, TimeoutError):
                    async with asyncio.timeout(5):
                        await conn.send("Browser.close")
                grace = 10.0
                await ws.close()
    finally:
        if proc.returncode is None:
            try:
                async with asyncio.timeout(grace):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
