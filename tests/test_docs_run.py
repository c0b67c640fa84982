"""The docs are run, or they rot.

- ``deploy/README.md``'s list of exported metrics is checked against a running proxy's
  ``/metrics`` (a route with a canary, an SLO and a shadow, so every family shows).
- ``docs/operator-guide.md`` is run: ``tests/docs_runner.py`` plays its code blocks
  (files to write, commands with their expected output) against real processes
  started on free ports; see ``test_operator_guide_runs``.
- ``README.md``'s shell blocks are run where they can be; the ones that cannot carry
  a ``<!-- not run: REASON -->`` comment, and ``README_NOT_RUN`` lists those reasons
  here too, so a block newly left out shows in review.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import aiohttp
import pytest

from tests.conftest import MakeProxy
from tests.docs_runner import Shell, Substitutions, blocks, matches, run_command, write_file
from tests.serve_support import free_port

ROOT: Final = Path(__file__).resolve().parent.parent
DEPLOY_README: Final = ROOT / "deploy" / "README.md"

METRICS_CONFIG: Final = """
listen: 127.0.0.1:0
admin: {listen: 127.0.0.1:0}
upstreams:
  legacy: http://127.0.0.1:9
  billing: http://127.0.0.1:9
routes:
  - name: every-feature
    owner: docs
    match: {path_prefix: /x}
    to: legacy
    canary: {to: billing, percent: 10%}
    slo: {error_rate: 1%, latency_p99: 300ms, window: 5m, min_requests: 100}
    shadow: {to: billing}
"""


def documented_metrics() -> set[str]:
    """The metric names in deploy/README.md's "Metrics the rules and the dashboard read"."""
    text = DEPLOY_README.read_text(encoding="utf-8")
    section = text.split("### Metrics the rules and the dashboard read", 1)[1]
    section = section.split("\n### ", 1)[0]
    return set(re.findall(r"`(strangler_[a-z_]+)(?:\{[^}]*\})?`", section))


async def test_deploy_readme_lists_only_metrics_that_exist(make_proxy: MakeProxy) -> None:
    proxy = await make_proxy(METRICS_CONFIG)
    async with aiohttp.ClientSession() as s, s.get(proxy.admin_url + "/metrics") as r:
        exposition = await r.text()
    # Samples, and the families declared without a sample yet (a counter counts from
    # its first event on: fallbacks, upstream errors, translate errors).
    exported = set(re.findall(r"^(strangler_[a-z_]+)[{ ]", exposition, re.M))
    for name, kind in re.findall(r"^# TYPE (strangler_[a-z_]+) (\w+)", exposition, re.M):
        exported |= {name, name + "_bucket"} if kind == "histogram" else {name}
    documented = documented_metrics()
    assert len(documented) >= 20
    assert documented - exported == set()
    assert "announced" not in DEPLOY_README.read_text(encoding="utf-8").lower()


# ---------------------------------------------------------------- the operator guide
GUIDE: Final = ROOT / "docs" / "operator-guide.md"
DEMO_APP: Final = ROOT / "deploy" / "docker" / "demo_app.py"
ADMIN_COMMANDS: Final = "routes|set|rollback|enable|status|backlog|diff"


async def _answering(port: int, proc: asyncio.subprocess.Process | None = None) -> None:
    """Wait until something accepts connections on ``port`` (bounded). Between tries,
    wait on ``proc`` itself, so an app that dies on start fails at once."""
    async with asyncio.timeout(15):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if proc is None:
                    await asyncio.sleep(0.05)  # a job inside bash: nothing to wait on
                    continue
                with contextlib.suppress(TimeoutError):
                    code = await asyncio.wait_for(proc.wait(), 0.05)
                    raise AssertionError(f"exited with {code} before listening on {port}") from None
                continue
            writer.close()
            await writer.wait_closed()
            return


@pytest.fixture
async def demo_apps() -> AsyncIterator[tuple[int, int]]:
    """The guide's "existing app" and "new service": the bundled demo apps, as the
    guide starts them (``deploy/docker/demo_app.py``), on free ports."""
    legacy, billing = free_port(), free_port()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(DEMO_APP), app, "--host", "127.0.0.1", "--port", str(port),
            stdout=asyncio.subprocess.DEVNULL,
        )
        for app, port in (("legacy", legacy), ("billing", billing))
    ]  # fmt: skip
    try:
        await _answering(legacy, procs[0])
        await _answering(billing, procs[1])
        yield legacy, billing
    finally:
        for p in procs:
            p.terminate()
            await p.wait()


def guide_substitutions(tmp: Path, legacy: int, billing: int) -> Substitutions:
    """The guide's paths and ports, as this test runs it."""
    log = tmp / "var" / "log" / "strangler.log"
    log.parent.mkdir(parents=True)
    return Substitutions(
        pairs={
            "/etc/strangler": str(tmp / "etc" / "strangler"),
            "/var/lib/strangler": str(tmp / "var" / "lib" / "strangler"),
            "/var/log/strangler.log": str(log),
            "/var/log/strangler-access.log": str(log.with_name("strangler-access.log")),
            "/opt/strangler/venv/bin": str(Path(sys.executable).parent),
            "127.0.0.1:8000": f"127.0.0.1:{legacy}",
            "127.0.0.1:9000": f"127.0.0.1:{billing}",
            "127.0.0.1:8080": f"127.0.0.1:{free_port()}",
            "127.0.0.1:8081": f"127.0.0.1:{free_port()}",
        }
    )


async def run_document(
    name: str, markdown: str, shell: Shell, subs: Substitutions
) -> tuple[list[str], int]:
    """Play the document's blocks in order: the blocks not run (with the reasons), and
    how many commands ran."""
    skipped: list[str] = []
    ran = 0
    for block in blocks(markdown):
        where = f"{name}:{block.line}"
        if block.not_run is not None:
            skipped.append(f"{where}: {block.not_run}")
            continue
        if block.file is not None:
            write_file(block, subs, shell.cwd)
            continue
        if block.lang == "console":
            for cmd in block.commands():
                await run_command(shell, cmd, subs, loose=block.loose)
                ran += 1
    return skipped, ran


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_operator_guide_runs(tmp_path: Path, demo_apps: tuple[int, int]) -> None:
    """Every command of docs/operator-guide.md, in order, prints what the guide shows.

    The "existing app" and the "new service" are the bundled demo apps on free ports;
    /etc, /var and /opt paths are under tmp_path; the CLI's admin commands are pointed
    at this run's admin port (a shell function adds ``--admin``).
    """
    subs = guide_substitutions(tmp_path, *demo_apps)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRANGLER_")}
    env |= {"HOME": str(tmp_path), "LC_ALL": "C.UTF-8", "NO_COLOR": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    work = tmp_path / "work"
    work.mkdir()
    shell = Shell(work, env)
    await shell.start()
    try:
        admin = subs.apply("http://127.0.0.1:8081")
        rc, _ = await shell.run(
            f'strangler() {{ case "$1" in {ADMIN_COMMANDS}) local c=$1; shift; '
            f'command strangler "$c" --admin {admin} "$@";; *) command strangler "$@";; esac; }}'
        )
        assert rc == 0
        skipped, ran = await run_document(
            GUIDE.name, GUIDE.read_text(encoding="utf-8"), shell, subs
        )
    finally:
        await shell.stop()
    # What is not run says why, in the guide; almost everything runs.
    assert len(skipped) <= 2, skipped
    assert ran >= 40


def test_runner_reads_directives_and_commands() -> None:
    doc = (
        "<!-- not run: needs docker -->\n```console\n# docker ps\n```\n\n"
        "<!-- file: /etc/x.yaml -->\n```yaml\na: 1\n```\n\n"
        "<!-- output: loose -->\n```console\n# echo 1\n1\n# cat f\n# not a command?\n```\n"
        "```sh\nstrangler check x.yaml   # a comment\n# only a comment\n```\n"
    )
    skipped, file, loose, sh = blocks(doc)
    assert skipped.not_run == "needs docker"
    assert (file.file, file.body) == ("/etc/x.yaml", "a: 1")
    assert loose.loose
    # "# " always starts a command: files are shown in file blocks, never with cat.
    assert [(c.text, c.expected) for c in loose.commands()] == [
        ("echo 1", ("1",)),
        ("cat f", ()),
        ("not a command?", ()),
    ]
    assert [c.text for c in sh.commands()] == ["strangler check x.yaml   # a comment"]


def test_runner_output_matching_is_strict_where_it_matters() -> None:
    shown = ("HTTP/1.1 200 OK", "X-Served-By: new-billing")
    assert matches(shown, ["HTTP/1.1 200 OK", "Date: now", "X-Served-By: new-billing"], loose=False)
    assert not matches(shown, ["HTTP/1.1 404 Not Found", "X-Served-By: new-billing"], loose=False)
    assert not matches(shown, ["X-Served-By: new-billing", "HTTP/1.1 200 OK"], loose=False)
    assert not matches(
        ("    181 X-Served-By: legacy",), ["    200 X-Served-By: legacy"], loose=False
    )
    assert matches(("    181 X-Served-By: legacy",), ["    200 X-Served-By: legacy"], loose=True)
    # A JSON answer may gain fields; the ones shown must stay.
    ready = ('{"ready": true, "pid": 24375, "version": "ad9164983d19"}',)
    assert matches(
        ready, ['{"ready": true, "pid": 7, "version": "0123456789ab", "x": 1}'], loose=False
    )
    assert not matches(
        ready, ['{"ready": false, "pid": 7, "version": "0123456789ab"}'], loose=False
    )


# ------------------------------------------------------------------------ README.md
README: Final = ROOT / "README.md"
README_NOT_RUN: Final = frozenset(
    {
        "the demo runs until Ctrl-C (tests/test_demo_run.py runs it); "
        "./dev test is the suite itself",
        "needs a route with a canary; docs/operator-guide.md runs these commands (steps 5, 7)",
        "needs a route with a migrate plan and traffic; tests/integration/test_autopilot.py "
        "runs these commands against a running proxy",
    }
)


async def test_readme_shell_blocks_run(tmp_path: Path, demo_apps: tuple[int, int]) -> None:
    """README.md's ```sh blocks: each command exits 0; ``strangler serve`` runs in the
    background until its admin port answers, then stops on SIGTERM with status 0. The
    ``<!-- file: -->`` blocks (the five-minute config) are written first, in order. The
    "existing app" on 8000 and the new service on 9000 are the demo apps."""
    legacy, billing = demo_apps
    admin = free_port()
    subs = Substitutions(
        pairs={
            "127.0.0.1:8000": f"127.0.0.1:{legacy}",
            "127.0.0.1:9000": f"127.0.0.1:{billing}",
            "0.0.0.0:8080": f"127.0.0.1:{free_port()}",
        }
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRANGLER_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    shell = Shell(tmp_path, env)
    await shell.start()
    skipped: list[str] = []
    served = 0
    try:
        # The admin API on a free port, not the default 8081. ``exec``: serve only ever
        # runs in the background here (a subshell), and $! must be strangler itself.
        rc, _ = await shell.run(
            'strangler() { if [ "$1" = serve ]; then exec strangler "$@" '
            f'--admin-listen 127.0.0.1:{admin}; else command strangler "$@"; fi; }}'
        )
        assert rc == 0
        for block in blocks(README.read_text(encoding="utf-8")):
            if block.not_run is not None:
                skipped.append(block.not_run)
            elif block.file is not None:
                write_file(block, subs, tmp_path)
            elif block.lang == "sh":
                for cmd in block.commands():
                    text = subs.apply(cmd.text)
                    if not cmd.text.startswith("strangler serve"):
                        rc, out = await shell.run(text)
                        assert rc == 0, f"README.md:{cmd.line}: {text}\n" + "\n".join(out)
                        continue
                    rc, _ = await shell.run(f"{text} &")
                    assert rc == 0
                    await _answering(admin)
                    rc, out = await shell.run("kill -TERM $! && wait $!")
                    assert rc == 0, f"README.md:{cmd.line}: {text}\n" + "\n".join(out)
                    served += 1
    finally:
        await shell.stop()
    assert served == 2  # the zero-config proxy and the one with the five-minute config
    assert set(skipped) == README_NOT_RUN
