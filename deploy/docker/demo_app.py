"""Run one of strangler's bundled demo apps on its own: the compose file's legacy and
billing services (``python demo_app.py legacy --port 8001``).

``legacy`` is "Acme ERP v1" (``strangler.demo.legacy``), ``billing`` the new invoices
service (``strangler.demo.newsvc``). Stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from aiohttp import web

from strangler.demo.legacy import build_legacy_app
from strangler.demo.newsvc import build_new_app

APPS: dict[str, Callable[[], web.Application]] = {
    "legacy": build_legacy_app,
    "billing": build_new_app,
}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="run one of strangler's demo apps")
    p.add_argument("app", choices=sorted(APPS))
    p.add_argument("--host", default="0.0.0.0")  # the container's own interfaces
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    print(f"demo {args.app} listening on {args.host}:{args.port}", flush=True)
    web.run_app(APPS[args.app](), host=args.host, port=args.port, access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
