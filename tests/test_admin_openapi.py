"""The OpenAPI document served by the admin port describes every admin route."""

from __future__ import annotations

import aiohttp
import yaml

from tests.conftest import MakeProxy, Upstream


async def test_every_admin_route_is_documented(legacy: Upstream, make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(
        f"""
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy.url}
"""
    )
    async with (
        aiohttp.ClientSession() as s,
        s.get(proxy.admin_url + "/openapi.yaml") as r,
    ):
        assert r.status == 200
        doc = yaml.safe_load(await r.text())
    documented = {
        (path, method.upper())
        for path, ops in doc["paths"].items()
        for method in ops
        if method in {"get", "post", "put", "delete", "patch"}
    }
    runner = proxy.server._admin_runner
    assert runner is not None
    served = set()
    for route in runner.app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        assert isinstance(path, str)
        served.add((path, route.method))
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
