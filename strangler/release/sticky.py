"""Stable cohort hashing: a sticky key (a user id, say) to a bucket in 0..9999.

Guarantees:

- **Stable**: ``bucket(key, salt)`` depends only on its arguments: the same in every
  worker, after every restart and on every machine (BLAKE2b, never Python's salted
  ``hash()``). A test pins known values: changing them would move users between
  cohorts on upgrade.
- **Uniform**: over many keys each bucket gets about 1/10,000 of them.
- **Monotonic**: a key is in the canary when ``bucket < cutoff(ratio)``, and the
  cutoff only grows with the ratio, so raising the percentage only ever adds users;
  lowering it only removes users.
- **Independent per salt**: the salt is the canary's group if it has one, else the
  route's name. Routes of one group share cohorts (a user is in for all or none of
  them); unrelated routes put a user in unrelated cohorts, so one unlucky user is not
  on every canary at once.

Resolution is 0.01% (one bucket): ``cutoff`` rounds a finer share up to whole
buckets. A request without the sticky key gets no bucket: ``decide`` tosses a coin
for it instead (per request).

>>> bucket("user-42", "checkout") == bucket("user-42", "checkout")
True
>>> cutoff(0.1), cutoff(0.001), cutoff(0.29), cutoff(1.0)
(1000, 10, 2900, 10000)
>>> in_canary(999, 0.1), in_canary(1000, 0.1)
(True, False)
"""

from __future__ import annotations

import hashlib
import math
from typing import Final, final

__all__ = ["BUCKETS", "Cohorts", "bucket", "cutoff", "in_canary"]

BUCKETS: Final = 10_000
"""Cohorts per salt; a canary share is a whole number of them (0.01% each)."""

_DIGEST_SIZE: Final = 8


@final
class Cohorts:
    """``bucket`` for one salt, with the salt hashed once (built at compile time).

    >>> Cohorts("invoices")("user-42") == bucket("user-42", "invoices")
    True
    """

    __slots__ = ("_base", "salt")

    def __init__(self, salt: str) -> None:
        self.salt = salt
        raw = salt.encode("utf-8", "surrogatepass")
        # The salt's length first: ("ab", "c") and ("a", "bc") must not collide.
        self._base = hashlib.blake2b(len(raw).to_bytes(4, "big") + raw, digest_size=_DIGEST_SIZE)

    def __call__(self, key: str) -> int:
        """The bucket of ``key``, in ``0..BUCKETS-1``."""
        h = self._base.copy()
        # surrogatepass: header values aiohttp could not decode never raise here
        h.update(key.encode("utf-8", "surrogatepass"))
        return int.from_bytes(h.digest(), "big") % BUCKETS

    def __repr__(self) -> str:
        return f"Cohorts({self.salt!r})"


def bucket(key: str, salt: str) -> int:
    """The cohort bucket of ``key`` under ``salt``: an int in ``0..9999``."""
    return Cohorts(salt)(key)


def cutoff(ratio: float) -> int:
    """How many buckets a canary share takes: ``ceil(ratio * 10000)``, clamped.

    Float noise is rounded away first (``0.001 * 10000`` is ``10.000000000000002``,
    which must give 10, not 11); a share finer than a bucket rounds up to one.
    """
    scaled = round(ratio * BUCKETS, 6)
    return min(BUCKETS, max(0, math.ceil(scaled)))


def in_canary(bucket: int, ratio: float) -> bool:
    """Whether ``bucket`` is in a canary of ``ratio``: ``bucket < cutoff(ratio)``."""
    return bucket < cutoff(ratio)
