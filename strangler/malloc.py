"""glibc malloc thresholds for a process that streams large chunks.

Streaming moves bodies in chunks of up to a few hundred KiB, each a fresh ``bytes``.
With glibc's defaults such a chunk is first ``mmap``-ed and ``munmap``-ed per chunk;
then the dynamic threshold rises, and the heap top is trimmed back to the kernel and
grown again per chunk (``brk`` system calls and page faults for every chunk). Fixed
thresholds stop both: chunks below ``MMAP_THRESHOLD`` come from the heap, and the top
is returned to the kernel only when more than ``TRIM_THRESHOLD`` of it is free, which
bounds what the process keeps beyond its peak need.

On a libc without ``mallopt`` (musl, macOS) this does nothing.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Final

log = logging.getLogger("strangler.malloc")

# mallopt parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD: Final = -1
_M_TOP_PAD: Final = -2
_M_MMAP_THRESHOLD: Final = -3

MMAP_THRESHOLD: Final = 4 << 20  # above any chunk the proxy reads or relays
TRIM_THRESHOLD: Final = 8 << 20  # free heap top kept for the next chunks
TOP_PAD: Final = 1 << 20  # grow the heap by at least this much at a time


def tune_malloc() -> bool:
    """Set the thresholds; ``False`` when this libc has no ``mallopt``."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = all(
        mallopt(param, value) == 1  # glibc: 1 on success
        for param, value in (
            (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (_M_TOP_PAD, TOP_PAD),
        )
    )
    if not ok:
        log.debug("mallopt refused a threshold; keeping glibc's defaults for it")
    return ok
