"""The malloc thresholds set at start: a streamed chunk comes from the heap, not mmap."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a fresh interpreter: allocate a 2 MiB chunk and count mmap-ed blocks (mallinfo2).
_PROBE = """
import ctypes, sys
from strangler.malloc import tune_malloc

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "tuned":
    assert tune_malloc()
before = libc.mallinfo2().hblks
chunk = bytearray(2 << 20)
print(libc.mallinfo2().hblks - before)
"""


def _mmapped_blocks(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_a_large_chunk_comes_from_the_heap_once_tuned() -> None:
    try:
        untuned = _mmapped_blocks("default")
    except subprocess.CalledProcessError:
        pytest.skip("this libc has no mallinfo2")
    assert untuned == 1  # glibc's default: a 2 MiB chunk is mmap-ed (and unmapped when freed)
    assert _mmapped_blocks("tuned") == 0
