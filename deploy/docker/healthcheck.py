"""The container's HEALTHCHECK: exit 0 when strangler's admin ``/healthz`` answers 200.

Standard library only (the slim image has no curl). Runs inside the container, so the
admin listener can stay on 127.0.0.1. ``STRANGLER_HEALTHCHECK_URL`` (default
``http://127.0.0.1:8081/healthz``) follows a changed ``admin.listen``.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8081/healthz"


def main() -> int:
    url = os.environ.get("STRANGLER_HEALTHCHECK_URL", DEFAULT_URL)
    try:
        with urllib.request.urlopen(url, timeout=2.0) as response:
            status: int = response.status
    except (urllib.error.URLError, OSError) as e:  # refused, timed out, or an HTTP error
        print(f"unhealthy: {url}: {e}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
