"""TLS on both sides, with real certificates from a test CA and real sockets on 127.0.0.1:
a client through the proxy's TLS listener to an upstream that demands a client
certificate (mutual TLS); upstream certificates that must not verify (expired, wrong
host) give a one-line 502 naming the upstream; SNI; the HTTP→HTTPS redirect; and
certificate reloads on SIGHUP's path."""

from __future__ import annotations

import asyncio
import datetime
import io
import ssl
from pathlib import Path

import aiohttp
import pytest
import trustme
from pytest_aiohttp import AiohttpServer

from strangler.config import load_config
from strangler.config.model import ListenTls
from strangler.metrics import Metrics
from strangler.server import ProxyServer, ServeOptions
from tests.conftest import RECORDER, MakeProxy, Recorder, RunningProxy, Upstream, build_upstream
from tests.tls_support import Pems, client_context, peer_names, write_ca, write_leaf


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def proxy_pems(ca: trustme.CA, tmp_path: Path) -> Pems:
    return write_leaf(ca, tmp_path, "proxy", "127.0.0.1", "localhost")


def https_url(proxy: RunningProxy, path: str = "/") -> str:
    return f"https://127.0.0.1:{proxy.server.proxy_port}{path}"


async def tls_upstream(
    aiohttp_server: AiohttpServer, ca: trustme.CA, *identities: str, mtls: bool, **kw: object
) -> tuple[str, Recorder]:
    """An upstream serving TLS with a certificate for ``identities``; with ``mtls`` it
    refuses a client without a certificate from ``ca``."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*identities, **kw).configure_cert(ctx)  # type: ignore[arg-type]
    if mtls:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(ctx)
    app = build_upstream("billing")
    server = await aiohttp_server(app, ssl=ctx)
    return f"https://127.0.0.1:{server.port}", app[RECORDER]


async def test_client_to_tls_listener_to_mtls_upstream(
    make_proxy: MakeProxy,
    aiohttp_server: AiohttpServer,
    ca: trustme.CA,
    tmp_path: Path,
    proxy_pems: Pems,
) -> None:
    url, recorder = await tls_upstream(aiohttp_server, ca, "127.0.0.1", mtls=True)
    ca_file = write_ca(ca, tmp_path)
    client_pems = write_leaf(ca, tmp_path, "client", "strangler.client")
    proxy = await make_proxy(
        f"""
listen: {{address: 127.0.0.1:0, tls: {{cert: {proxy_pems.cert}, key: {proxy_pems.key}}}}}
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy:
    url: {url}
    tls: {{ca: {ca_file}, cert: {client_pems.cert}, key: {client_pems.key}}}
"""
    )
    assert proxy.server.tls is not None
    assert proxy.server.tls.context.minimum_version is ssl.TLSVersion.TLSv1_2
    async with (
        aiohttp.ClientSession() as s,
        s.get(https_url(proxy, "/hello?x=1"), ssl=client_context(ca)) as r,
    ):
        assert r.status == 200
        assert (await r.json())["raw_path"] == "/hello?x=1"
    seen = recorder.seen[-1]
    headers = {k.lower(): v for k, v in seen.headers}
    assert headers["x-forwarded-proto"] == "https"
    assert "proto=https" in headers["forwarded"]
    # plain HTTP to the TLS port is refused, never served in clear
    with pytest.raises(aiohttp.ClientError):
        async with aiohttp.ClientSession() as s:
            await s.get(f"http://127.0.0.1:{proxy.server.proxy_port}/")


async def test_an_upstream_without_the_client_certificate_is_refused_by_it(
    make_proxy: MakeProxy, aiohttp_server: AiohttpServer, ca: trustme.CA, tmp_path: Path
) -> None:
    url, _ = await tls_upstream(aiohttp_server, ca, "127.0.0.1", mtls=True)
    ca_file = write_ca(ca, tmp_path)
    proxy = await make_proxy(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {{url: {url}, tls: {{ca: {ca_file}}}}}
"""
    )
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/x") as r:
        assert r.status == 502
        assert "legacy" in await r.text()


def _errors(proxy: RunningProxy, upstream: str) -> float:
    value = proxy.server.metrics.registry.get_sample_value(
        "strangler_upstream_errors_total",
        {"upstream": upstream, "kind": "tls", "stage": "connect"},
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("identities", "extra", "why"),
    [
        (
            ("127.0.0.1",),
            {"not_after": datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)},
            "certificate verify failed: certificate has expired",
        ),
        (
            ("other.example",),
            {},
            "certificate verify failed: IP address mismatch, certificate is not valid for "
            "'127.0.0.1'.",
        ),
    ],
    ids=["expired", "wrong-host"],
)
async def test_a_bad_upstream_certificate_is_a_clear_502(
    make_proxy: MakeProxy,
    aiohttp_server: AiohttpServer,
    ca: trustme.CA,
    tmp_path: Path,
    identities: tuple[str, ...],
    extra: dict[str, object],
    why: str,
) -> None:
    url, recorder = await tls_upstream(aiohttp_server, ca, *identities, mtls=False, **extra)
    ca_file = write_ca(ca, tmp_path)
    proxy = await make_proxy(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: http://127.0.0.1:9
  billing: {{url: {url}, tls: {{ca: {ca_file}}}}}
routes:
  - name: bills
    owner: team-billing
    match: {{path_prefix: /bills}}
    to: billing
"""
    )
    headers = {"X-Request-Id": "r-1"}
    async with aiohttp.ClientSession() as s, s.get(proxy.url + "/bills/1", headers=headers) as r:
        assert r.status == 502
        assert await r.text() == f"upstream 'billing': {why} (request id r-1)\n"
        assert r.headers["Proxy-Status"] == (
            "strangler; error=tls_certificate_error; details=\"upstream 'billing'\""
        )
    assert _errors(proxy, "billing") == 1
    assert recorder.seen == []


async def test_the_wrong_host_verifies_with_server_name_and_is_skipped_with_verify_false(
    make_proxy: MakeProxy, aiohttp_server: AiohttpServer, ca: trustme.CA, tmp_path: Path
) -> None:
    url, recorder = await tls_upstream(aiohttp_server, ca, "billing.internal", mtls=False)
    ca_file = write_ca(ca, tmp_path)
    proxy = await make_proxy(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {{url: {url}, tls: {{ca: {ca_file}, server_name: billing.internal}}}}
  other: {{url: {url}, tls: {{verify: false}}}}
routes:
  - name: o
    owner: t
    match: {{path_prefix: /other}}
    to: other
"""
    )
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url + "/a") as r:
            assert r.status == 200
        async with s.get(proxy.url + "/other") as r:
            assert r.status == 200
    assert len(recorder.seen) == 2


async def test_websocket_to_a_wss_upstream_uses_the_upstream_tls(
    make_proxy: MakeProxy, aiohttp_server: AiohttpServer, ca: trustme.CA, tmp_path: Path
) -> None:
    url, _ = await tls_upstream(aiohttp_server, ca, "127.0.0.1", mtls=True)
    ca_file = write_ca(ca, tmp_path)
    client_pems = write_leaf(ca, tmp_path, "client", "strangler.client")
    proxy = await make_proxy(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy:
    url: {url}
    tls: {{ca: {ca_file}, cert: {client_pems.cert}, key: {client_pems.key}}}
"""
    )
    async with aiohttp.ClientSession() as s, s.ws_connect(proxy.url + "/ws") as ws:
        await ws.send_str("hi")
        msg = await ws.receive()
        assert msg.data == "echo:hi"


async def test_a_wss_upstream_with_a_bad_certificate_is_a_tls_error(
    make_proxy: MakeProxy, aiohttp_server: AiohttpServer, ca: trustme.CA, tmp_path: Path
) -> None:
    url, _ = await tls_upstream(aiohttp_server, ca, "127.0.0.1", mtls=False)
    proxy = await make_proxy(  # no ca: the system store does not know the test CA
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {url}
"""
    )
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as err:
            await s.ws_connect(proxy.url + "/ws")
    assert err.value.status == 502
    assert _errors(proxy, "legacy") == 1


async def test_sni_picks_the_certificate(
    make_proxy: MakeProxy, legacy: Upstream, ca: trustme.CA, tmp_path: Path, proxy_pems: Pems
) -> None:
    api = write_leaf(ca, tmp_path, "api", "api.example.com")
    star = write_leaf(ca, tmp_path, "star", "*.example.org")
    proxy = await make_proxy(
        f"""
listen:
  address: 127.0.0.1:0
  tls:
    cert: {proxy_pems.cert}
    key: {proxy_pems.key}
    sni:
      api.example.com: {{cert: {api.cert}, key: {api.key}}}
      "*.example.org": {{cert: {star.cert}, key: {star.key}}}
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
"""
    )
    port = proxy.server.proxy_port
    assert await peer_names(port, ca, "API.example.com") == ["api.example.com"]
    assert await peer_names(port, ca, "www.example.org") == ["*.example.org"]
    assert await peer_names(port, ca, "localhost") == ["127.0.0.1", "localhost"]


async def test_plain_http_redirects_to_https(
    make_proxy: MakeProxy, legacy: Upstream, proxy_pems: Pems
) -> None:
    proxy = await make_proxy(
        f"""
listen:
  address: 127.0.0.1:0
  tls: {{cert: {proxy_pems.cert}, key: {proxy_pems.key}}}
  redirect_http: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
"""
    )
    assert proxy.server.tls is not None
    port = proxy.server.tls.redirect_port
    async with (
        aiohttp.ClientSession() as s,
        s.post(f"http://127.0.0.1:{port}/a/b?c=1%202", allow_redirects=False) as r,
    ):
        assert r.status == 308
        assert r.headers["Location"] == (f"https://127.0.0.1:{proxy.server.proxy_port}/a/b?c=1%202")


async def serve_file(config: Path) -> ProxyServer:
    """A proxy started from a config file, so that ``reload()`` (SIGHUP's work) reads it."""
    server = ProxyServer(
        load_config(config),
        ServeOptions(config_path=config, watch_interval=0, state_dir=config.parent / "state"),
        metrics=Metrics(),
        access_stream=io.StringIO(),
    )
    await server.start()
    return server


async def test_reload_reads_a_rotated_upstream_ca(
    aiohttp_server: AiohttpServer, ca: trustme.CA, tmp_path: Path
) -> None:
    url, recorder = await tls_upstream(aiohttp_server, ca, "127.0.0.1", mtls=False)
    ca_file = write_ca(trustme.CA(), tmp_path)  # not the upstream's CA yet
    config = tmp_path / "strangler.yaml"
    config.write_text(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {{url: {url}, tls: {{ca: {ca_file}}}}}
"""
    )
    server = await serve_file(config)
    try:
        proxy_url = f"http://127.0.0.1:{server.proxy_port}/x"
        async with aiohttp.ClientSession() as s:
            async with s.get(proxy_url) as r:
                assert r.status == 502
                assert "certificate verify failed" in await r.text()
            write_ca(ca, tmp_path)
            assert (await server.reload())[0] == "unchanged"
            async with s.get(proxy_url) as r:
                assert r.status == 200
            # a CA file that does not load: the reload is refused, the context stays
            ca_file.write_text("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
            assert (await server.reload())[0] == "rejected"
            async with s.get(proxy_url) as r:
                assert r.status == 200
        assert len(recorder.seen) == 2
    finally:
        await server.stop()


async def test_sighup_reload_picks_up_new_certificate_files_and_keeps_old_ones_when_broken(
    legacy: Upstream, ca: trustme.CA, tmp_path: Path, proxy_pems: Pems
) -> None:
    config = tmp_path / "strangler.yaml"
    config.write_text(
        f"""
listen: {{address: 127.0.0.1:0, tls: {{cert: {proxy_pems.cert}, key: {proxy_pems.key}}}}}
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
"""
    )
    server = await serve_file(config)
    try:
        tls = server.tls
        assert tls is not None
        port = server.proxy_port
        url = f"https://127.0.0.1:{port}"
        # an open keep-alive connection must survive the rotation
        connector = aiohttp.TCPConnector(ssl=client_context(ca), limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(url + "/1") as r:
                assert r.status == 200
            write_leaf(ca, tmp_path, "proxy", "127.0.0.1", "rotated.example")
            result, _ = await server.reload()  # what SIGHUP runs
            assert result == "unchanged"  # the config is the same: only the files changed
            assert tls.reloads == 1
            assert "rotated.example" in await peer_names(port, ca, "127.0.0.1")
            # a key that does not fit: the previous certificate keeps serving
            other = write_leaf(ca, tmp_path, "other", "broken.example")
            proxy_pems.key.write_bytes(other.key.read_bytes())
            await server.reload()
            assert tls.reloads == 1
            assert "rotated.example" in await peer_names(port, ca, "127.0.0.1")
            async with session.get(url + "/2") as r:
                assert r.status == 200
        assert len(legacy.recorder.seen) == 2
    finally:
        await server.stop()


async def test_changed_files_are_reloaded_by_the_watcher(
    make_proxy: MakeProxy, legacy: Upstream, ca: trustme.CA, tmp_path: Path, proxy_pems: Pems
) -> None:
    proxy = await make_proxy(
        f"""
listen: {{address: 127.0.0.1:0, tls: {{cert: {proxy_pems.cert}, key: {proxy_pems.key}}}}}
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
""",
        watch_interval=0.02,
    )
    tls = proxy.server.tls
    assert tls is not None
    write_leaf(ca, tmp_path, "proxy", "127.0.0.1", "watched.example")
    await tls.wait_until(lambda t: t.reloads >= 1)
    assert "watched.example" in await peer_names(proxy.server.proxy_port, ca, "127.0.0.1")


def test_listen_tls_spec_is_hashable() -> None:
    from strangler.config.model import CertKey

    spec = ListenTls(cert="a", key="b", sni={"x": CertKey(cert="c", key="d")})
    assert hash(spec) == hash(ListenTls(cert="a", key="b", sni={"x": CertKey(cert="c", key="d")}))


async def test_min_version_is_enforced(
    make_proxy: MakeProxy, legacy: Upstream, ca: trustme.CA, proxy_pems: Pems
) -> None:
    async def handshake(port: int, maximum: ssl.TLSVersion) -> str | None:
        ctx = client_context(ca)
        ctx.maximum_version = maximum
        _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        await writer.wait_closed()
        return str(version)

    ports = {}
    for minimum in ("1.2", "1.3"):
        proxy = await make_proxy(
            f"""
listen:
  address: 127.0.0.1:0
  tls: {{cert: {proxy_pems.cert}, key: {proxy_pems.key}, min_version: "{minimum}"}}
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
"""
        )
        ports[minimum] = proxy.server.proxy_port
    assert await handshake(ports["1.2"], ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert await handshake(ports["1.3"], ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    with pytest.raises((ssl.SSLError, ConnectionError)):  # uvloop may see only the reset
        await handshake(ports["1.3"], ssl.TLSVersion.TLSv1_2)


async def test_a_stalled_handshake_is_closed(
    make_proxy: MakeProxy, legacy: Upstream, proxy_pems: Pems, monkeypatch: pytest.MonkeyPatch
) -> None:
    import strangler.listener

    monkeypatch.setattr(strangler.listener, "TLS_HANDSHAKE_TIMEOUT", 0.2)
    proxy = await make_proxy(
        f"""
listen: {{address: 127.0.0.1:0, tls: {{cert: {proxy_pems.cert}, key: {proxy_pems.key}}}}}
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
"""
    )
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.server.proxy_port)
    try:
        async with asyncio.timeout(5):  # the default would be 60s
            assert await reader.read() == b""  # closed without a ClientHello
    finally:
        writer.close()
