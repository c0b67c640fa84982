"""Fuzzed configs never make ``strangler check`` or a live reload raise.

The mutator (tests/fuzz_support.py) bends the README's examples and
tests/data/configs out of shape, seeded so a failure reproduces by its case number.
``STRANGLER_FUZZ_CASES`` sets how many cases the check test runs (default 2,000, a
few seconds); tests/bench/fuzz_config.py runs 10,000 and more.
"""

from __future__ import annotations

import io
import os
import shutil
import traceback
from pathlib import Path

import aiohttp
import pytest

from strangler.config import load_config
from strangler.metrics import Metrics
from strangler.server import ProxyServer, ServeOptions
from tests.conftest import Upstream
from tests.fuzz_support import DATA, cases, check_text

CASES = int(os.environ.get("STRANGLER_FUZZ_CASES", "2000"))
RELOAD_CASES = 150


def test_fuzzed_configs_never_raise_in_check() -> None:
    failures: list[str] = []
    for case in cases(CASES, seed=20261203):
        try:
            check_text(case.text, case.file)
        except Exception as err:
            where = traceback.format_exception(err)[-2].strip().splitlines()[0]
            failures.append(f"case {case.number} (from {case.seed}): {err!r} at {where}")
    assert failures == [], f"{len(failures)} of {CASES} cases raised:\n" + "\n".join(failures[:10])


GOOD = """
listen: 127.0.0.1:0
admin: {{listen: 127.0.0.1:0}}
upstreams:
  legacy: {legacy}
routes:
  - {{name: things, owner: t, match: {{path_prefix: /things}}, to: legacy}}
"""


async def test_fuzzed_configs_through_live_reload(tmp_path: Path, legacy: Upstream) -> None:
    """Every mutated config reloads as applied, unchanged or rejected, and the proxy
    keeps answering on the old or the new config."""
    tree = tmp_path / "configs"
    shutil.copytree(DATA, tree)  # so a seed's include globs find its route files
    path = tree / "valid" / "live.yaml"
    path.write_text(GOOD.format(legacy=legacy.url))
    server = ProxyServer(
        load_config(path),
        ServeOptions(config_path=path, watch_interval=0, state_dir=tmp_path / "state"),
        metrics=Metrics(),
        access_stream=io.StringIO(),
    )
    await server.start()
    seen: dict[str, int] = {}
    try:
        async with aiohttp.ClientSession() as session:
            for case in cases(RELOAD_CASES, seed=7):
                path.write_text(case.text)
                result, message = await server.reload()
                assert result in ("applied", "unchanged", "rejected"), (case.number, message)
                seen[result] = seen.get(result, 0) + 1
                admin = f"http://127.0.0.1:{server.admin_port}/healthz"
                async with session.get(admin) as r:
                    assert r.status == 200, case.number
            path.write_text(GOOD.format(legacy=legacy.url))
            assert (await server.reload())[0] == "applied"
            async with session.get(f"http://127.0.0.1:{server.proxy_port}/things/1") as r:
                assert r.status == 200
                assert r.headers["X-Served-By"] == "legacy"
    finally:
        await server.stop()
    assert seen.get("rejected", 0) > RELOAD_CASES // 2  # the mutator does break configs
    reloads = server.metrics.registry.get_sample_value(
        "strangler_config_reloads_total", {"result": "rejected"}
    )
    assert reloads == seen["rejected"]


@pytest.mark.parametrize("seed", range(3))
def test_the_mutator_is_reproducible(seed: int) -> None:
    assert [c.text for c in cases(20, seed)] == [c.text for c in cases(20, seed)]
