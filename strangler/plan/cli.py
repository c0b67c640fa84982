"""``strangler plan``: which traffic a config change moves, before it is applied.

::

    strangler plan --config NEW.yaml --current OLD.yaml --traffic access.log
    strangler plan --config NEW.yaml --admin http://127.0.0.1:8081 --traffic - < access.log
    strangler plan --record sample.jsonl --admin http://127.0.0.1:8081 --duration 60

Exit codes: 0 planned (or recorded); 1 a gate failed (``--fail-if-moved``,
``--fail-if-owner-changes``), or a config, traffic source or the admin API has a
problem (one line on stderr says which); 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Final, TextIO

import aiohttp

from strangler.cli_admin import ADMIN_ENV, DEFAULT_ADMIN, TOKEN_ENV, unreachable
from strangler.config.model import Config
from strangler.config.units import percent

__all__ = ["add_plan_command", "run_plan"]

TIMEOUT: Final = 10.0


class PlanFailure(Exception):
    """A problem to print as one line before exiting 1."""


def add_plan_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``plan`` on the ``strangler`` subcommands (``args.handler``)."""
    p = sub.add_parser(
        "plan",
        help="show which traffic a config change moves, before applying it",
        description="Replay a traffic sample (strangler's JSON access log, an nginx/Apache "
        "combined log, a HAR file, or a --record sample) through the current and the "
        "proposed config, with the proxy's own router, and report the requests that "
        "change route, backend or owner, idle routes, and migration progress before → "
        "after. With --record, capture a privacy-safe sample from a running proxy instead.",
    )
    p.add_argument("--config", "-c", type=Path, metavar="NEW.yaml", help="the proposed config")
    cur = p.add_mutually_exclusive_group()
    cur.add_argument("--current", type=Path, metavar="OLD.yaml", help="the current config")
    # dest admin_url: ``cli.main`` resolves ``args.admin`` for admin commands, using
    # --config's admin.listen; here --config is the proposed config, and --admin is
    # optional (it says where the *current* config comes from).
    cur.add_argument(
        "--admin",
        dest="admin_url",
        metavar="URL",
        help="take the current config from a running proxy's admin API "
        f"(GET /api/plan/config); with --record, the proxy to record (default "
        f"${ADMIN_ENV}, else {DEFAULT_ADMIN})",
    )
    p.add_argument(
        "--traffic",
        "-t",
        action="append",
        nargs="+",
        metavar="SOURCE",
        help="access log(s), HAR file(s) or a --record sample; .gz is read; '-' is stdin",
    )
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument(
        "--fail-if-moved",
        metavar="PCT",
        help="exit 1 when more than PCT of the requests change route or backend (e.g. 5%%)",
    )
    p.add_argument(
        "--fail-if-owner-changes",
        action="store_true",
        help="exit 1 when any request would be answered by another owner's route",
    )
    rec = p.add_argument_group("recording a sample (--record)")
    rec.add_argument("--record", type=Path, metavar="FILE", help="record a sample into FILE")
    rec.add_argument(
        "--rate", default="100%", metavar="PCT", help="share of requests to sample (default 100%%)"
    )
    rec.add_argument(
        "--max",
        type=int,
        default=10_000,
        metavar="N",
        help="stop after this many samples (default 10000)",
    )
    rec.add_argument(
        "--duration",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds to record (default 60)",
    )
    rec.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help=f"file holding the admin token (default: ${TOKEN_ENV})",
    )
    p.set_defaults(handler=run_plan)


def run_plan(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        if args.record is not None:
            return _record(args, out)
        return _plan(args, out, err)
    except _Usage as e:
        print(f"strangler plan: {e}", file=err)
        return 2
    except PlanFailure as e:
        print(f"strangler plan: {e}", file=err)
        return 1


class _Usage(Exception):
    pass


def _plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from strangler.plan.replay import plan
    from strangler.plan.report import format_text, to_json
    from strangler.plan.traffic import TrafficError, read_sources

    if args.config is None:
        raise _Usage("--config NEW.yaml is required (or --record FILE)")
    if args.current is None and args.admin_url is None:
        raise _Usage("say what runs now: --current OLD.yaml or --admin URL")
    if not args.traffic:
        raise _Usage("--traffic SOURCE is required ('-' for stdin)")
    limit = None
    if args.fail_if_moved is not None:
        try:
            limit = percent(args.fail_if_moved)
        except ValueError as e:
            raise _Usage(f"--fail-if-moved: {e}") from None
    proposed = _load(args.config)
    runtime: dict[str, str] = {}
    if args.current is not None:
        current = _load(args.current)
    else:
        current, runtime = _from_admin(args.admin_url)
    try:
        traffic = read_sources([s for group in args.traffic for s in group])
    except TrafficError as e:
        raise PlanFailure(str(e)) from None
    result = plan(current, proposed, traffic, runtime=runtime)
    if args.json:
        print(json.dumps(to_json(result, traffic), indent=2), file=out)
    else:
        print(format_text(result, traffic), file=out)
    code = 0
    if limit is not None and result.moved_share > limit:
        print(
            f"strangler plan: {result.moved_share * 100:.1f}% of requests move, "
            f"more than --fail-if-moved {args.fail_if_moved}",
            file=err,
        )
        code = 1
    if args.fail_if_owner_changes and result.owner_changes:
        n = sum(o.requests for o in result.owner_changes)
        print(f"strangler plan: {n:,} requests change owner (--fail-if-owner-changes)", file=err)
        code = 1
    return code


def _load(path: Path) -> Config:
    from strangler.config import load_config
    from strangler.errors import ConfigError

    try:
        return load_config(path)
    except ConfigError as e:
        raise PlanFailure(f"{path} has problems:\n{e}") from None


def _base(url: str) -> str:
    url = url.strip()
    return ("http://" + url if "://" not in url else url).rstrip("/")


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, body: object = None, token: str = ""
) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with session.request(method, url, json=body, headers=headers) as resp:
            if resp.status >= 400:
                text = (await resp.text()).strip()
                raise PlanFailure(f"{method} {url}: {resp.status} {text}")
            doc = await resp.json()
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as e:
        raise PlanFailure(unreachable(url, e)) from None
    if not isinstance(doc, dict):
        raise PlanFailure(f"{url}: expected a JSON object")
    return doc


def _session() -> aiohttp.ClientSession:
    # trust_env=False: the admin API is local, an http_proxy variable must not catch it.
    # One connection, kept alive: with --workers N every worker listens on the admin
    # port, and a recording lives in the worker that started it.
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=TIMEOUT),
        trust_env=False,
        connector=aiohttp.TCPConnector(limit=1),
    )


def _from_admin(admin: str) -> tuple[Config, dict[str, str]]:
    from strangler.plan.wire import WireError, config_from_json

    async def fetch() -> dict[str, object]:
        async with _session() as s:
            return await _call(s, "GET", _base(admin) + "/api/plan/config")

    doc = asyncio.run(fetch())
    try:
        config = config_from_json(doc)
    except WireError as e:
        raise PlanFailure(
            f"the admin API at {admin} answered a config this plan cannot read: {e}"
        ) from None
    runtime = doc.get("runtime")
    notes = {str(k): str(v) for k, v in runtime.items()} if isinstance(runtime, dict) else {}
    return config, notes


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            return str(args.token_file.read_text(encoding="utf-8").strip())
        except OSError as e:
            raise PlanFailure(f"cannot read --token-file {args.token_file}: {e.strerror}") from None
    return os.environ.get(TOKEN_ENV, "").strip()


def _same_worker(started: dict[str, object], now: dict[str, object]) -> None:
    if now.get("pid") != started.get("pid") or not now.get("recording"):
        raise PlanFailure(
            f"the recording in worker {started.get('pid')} was lost (answered by "
            f"{now.get('pid')}, recording: {now.get('recording')}): the admin connection "
            "was reset, or the proxy restarted; try again"
        )


def _record(args: argparse.Namespace, out: TextIO) -> int:
    try:
        rate = percent(args.rate)
    except ValueError as e:
        raise _Usage(f"--rate: {e}") from None
    if rate <= 0.0:
        raise _Usage("--rate must be above 0%")
    if args.max < 1 or args.duration <= 0:
        raise _Usage("--max must be at least 1 and --duration above 0")
    base = _base(args.admin_url or os.environ.get(ADMIN_ENV) or DEFAULT_ADMIN)
    token = _token(args)

    async def record() -> list[object]:
        async with _session() as s:
            body = {"rate": rate, "max": args.max, "seconds": args.duration + 30.0}
            started = await _call(s, "POST", base + "/api/plan/record", body, token)
            deadline = time.monotonic() + args.duration
            try:
                while time.monotonic() < deadline:
                    await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                    status = await _call(s, "GET", base + "/api/plan/record")
                    _same_worker(started, status)
                    if status.get("full"):
                        break
            finally:
                done = await _call(s, "POST", base + "/api/plan/record/stop", {}, token)
            _same_worker(started, done)
        samples = done.get("samples")
        return samples if isinstance(samples, list) else []

    samples = asyncio.run(record())
    try:
        with args.record.open("w", encoding="utf-8") as f:
            for sample in samples:
                f.write(json.dumps(sample, separators=(",", ":")) + "\n")
    except OSError as e:
        raise PlanFailure(f"cannot write {args.record}: {e.strerror}") from None
    print(f"recorded {len(samples):,} requests into {args.record}", file=out)
    return 0
