"""``strangler diff ROUTE``: a route's shadow comparison, read from the admin API.

Prints parity, counts (``unstable``: differences the primary's own second answer
repeated, a race with a write or noise, never in parity), the gate figures (parity
over the last N compared and over the last minutes), the most frequent differing JSON
paths, the paths compare ignores now and why (the config's ``ignore``, or learned
noise with its counts), and the latest samples (``--json``: the admin API's answer as
is). Exit codes: 0 shown, 1 the
admin API is unreachable or does not know the route (one clear line on stderr).
Standard library only (``urllib``), so it works wherever ``strangler`` is installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Final, TextIO
from urllib.parse import quote

from strangler.cli_admin import DEFAULT_ADMIN, AdminSetupError, add_admin_arguments, resolve_admin

__all__ = ["DEFAULT_ADMIN", "add_diff_command", "format_detail", "run_diff"]

_TIMEOUT: Final = 10.0
_SAMPLES_SHOWN: Final = 5


def add_diff_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``diff`` on the ``strangler`` subcommands; ``args.handler`` is
    ``run_diff`` (the CLI dispatches ``args.command == "diff"`` to it)."""
    diff = sub.add_parser(
        "diff",
        help="show a route's shadow comparison (parity, differing paths, samples)",
        description="Show how a route's shadow upstream compares with the answers users "
        "got: parity (in all, over the last N compared and over the last minutes), "
        "mismatches by kind, unstable answers (a race with a write, or noise), the most "
        "frequent differing JSON paths, the paths ignored now and why, and the latest "
        "samples. Reads the running proxy's admin API.",
    )
    diff.add_argument("route", help="the route's name, as in the config")
    add_admin_arguments(diff)
    diff.add_argument("--json", action="store_true", help="print the admin API's JSON")
    diff.add_argument("--top", type=int, default=10, help="differing paths to show (default 10)")
    diff.set_defaults(handler=run_diff)


def run_diff(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Fetch and print one route's shadow results; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        target = resolve_admin(args)
    except AdminSetupError as e:
        print(f"strangler diff: {e}", file=err)
        return 1
    base = target.url
    url = f"{base}/api/shadow/{quote(args.route, safe='')}?top={max(1, min(args.top, 200))}"
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT) as resp:
            detail = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        print(f"strangler diff: {_http_error(e, args.route)}", file=err)
        return 1
    except (urllib.error.URLError, OSError) as e:
        reason = e.reason if isinstance(e, urllib.error.URLError) else e
        print(f"strangler diff: {target.unreachable(_reason(reason))}", file=err)
        return 1
    except ValueError:
        print(f"strangler diff: {url} did not answer JSON; is --admin the admin port?", file=err)
        return 1
    if args.json:
        json.dump(detail, out, indent=2)
        out.write("\n")
    else:
        out.write(format_detail(detail, top=args.top))
    return 0


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason)


def _http_error(e: urllib.error.HTTPError, route: str) -> str:
    try:
        body = json.loads(e.read())
    except ValueError:
        body = {}
    if e.code == 404 and isinstance(body, dict) and "routes" in body:
        known = ", ".join(body["routes"]) or "none"
        return f"no shadow results for route {route!r} (routes with shadow: {known})"
    message = body.get("error") if isinstance(body, dict) else None
    return f"admin API answered {e.code}: {message or e.reason}"


def _pct(value: object) -> str:
    return f"{value * 100:.1f}%" if isinstance(value, int | float) else "n/a"


def _ms(value: object) -> str:
    return f"{value * 1000:.1f} ms" if isinstance(value, int | float) else "n/a"


def format_detail(d: Mapping[str, object], top: int = 10) -> str:
    """The human report for one route's detail (``GET /api/shadow/{route}``)."""
    lines = []
    kinds = d.get("mismatches_by_kind")
    by_kind = (
        ", ".join(f"{k} {n}" for k, n in kinds.items() if n) if isinstance(kinds, dict) else ""
    )
    lines.append(
        f"route {d.get('route')}: parity {_pct(d.get('parity'))} "
        f"({d.get('matches')} of {d.get('compared')} compared)"
    )
    lines.append(
        f"  mismatches {d.get('mismatches')}"
        + (f" ({by_kind})" if by_kind else "")
        + f", unstable {d.get('unstable', 0)}, errors {d.get('errors')}"
        + f", dropped {d.get('dropped')}, skipped {d.get('skipped')}"
        + f", truncated {d.get('truncated')}"
    )
    lines.extend(_gate_lines(d.get("gate")))
    lines.append(
        f"  shadow latency: mean {_ms(d.get('duration_mean'))}, max {_ms(d.get('duration_max'))}"
    )
    paths = d.get("top_paths")
    if isinstance(paths, list) and paths:
        lines.append("top differing paths:")
        for p in paths[:top]:
            if isinstance(p, dict):
                lines.append(f"  {p.get('count'):>7}  {p.get('path')}")
    noise = d.get("noise")
    if isinstance(noise, dict):
        lines.extend(_noise_lines(noise))
    samples = d.get("samples")
    if isinstance(samples, list) and samples:
        lines.append("latest samples:")
        for s in samples[:_SAMPLES_SHOWN]:
            if isinstance(s, dict):
                lines.extend(_sample_lines(s))
    return "\n".join(lines) + "\n"


def _window(w: object) -> str:
    if not isinstance(w, dict):
        return "n/a"
    return (
        f"parity {_pct(w.get('parity'))} ({w.get('matches')} of {w.get('compared')}), "
        f"unstable {w.get('unstable')}"
    )


def _seconds(value: object) -> str:
    if not isinstance(value, int | float):
        return "?"
    return f"{value / 60:g}m" if value >= 60 and value % 60 == 0 else f"{value:g}s"


def _gate_lines(gate: object) -> list[str]:
    """The gate figures: the last N compared, and the last minutes."""
    if not isinstance(gate, dict):
        return []
    last = gate.get("last")
    span = last.get("seconds") if isinstance(last, dict) else None
    over = f" (over {_seconds(round(span))})" if isinstance(span, int | float) and span else ""
    return [
        f"  last {gate.get('last_n')} compared: {_window(last)}{over}",
        f"  last {_seconds(gate.get('window_seconds'))}: {_window(gate.get('recent'))}",
    ]


def _noise_lines(noise: Mapping[str, object]) -> list[str]:
    """What compare ignores now and why, then the state of noise learning."""
    out = []
    ignored = noise.get("ignored")
    if isinstance(ignored, list) and ignored:
        out.append("ignored now:")
        out.extend(f"  {i.get('path')}  ({i.get('why')})" for i in ignored if isinstance(i, dict))
    if noise.get("observations"):
        state = "learning" if noise.get("learning") else "learned"
        noisy = noise.get("noisy_paths")
        out.append(
            f"noise ({state}, {noise.get('observations')} observations in the last "
            f"{_seconds(noise.get('window_seconds'))}; noisy: differed in at least "
            f"{noise.get('samples')} and {_pct(noise.get('share'))} of at least "
            f"{noise.get('min_observations')}): "
            + (
                f"{len(noisy)} noisy paths"
                if isinstance(noisy, list) and noisy
                else "no noisy paths"
            )
        )
    return out


def _sample_lines(s: Mapping[str, object]) -> list[str]:
    at = s.get("at")
    when = time.strftime("%H:%M:%S", time.localtime(at)) if isinstance(at, int | float) else "?"
    head = f"  {when} {s.get('outcome')} {s.get('method')} {s.get('target')}"
    if s.get("truncated"):
        head += " (body over max_body: status and headers only)"
    out = [head]
    if s.get("error"):
        out.append(f"      {s.get('error')}")
    diffs = s.get("differences")
    if isinstance(diffs, list):
        for diff in diffs[:5]:
            if isinstance(diff, dict):
                out.append(
                    f"      {diff.get('kind')} {diff.get('where')}: "
                    f"{diff.get('primary')} -> {diff.get('shadow')}"
                )
        more = len(diffs) - 5 + int(str(s.get("more") or 0))
        if more > 0:
            out.append(f"      ... and {more} more")
    return out
