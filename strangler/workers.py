"""What ``--workers N`` processes share so they answer as one proxy.

The supervisor makes one private runtime directory (``mkdtemp``: mode 0700, removed
when it exits) and hands it to every worker it forks::

    <run dir>/metrics/         prometheus-client multiprocess files, and each live
                               worker's config version (``metrics.live_workers``)
    <run dir>/shadow/          each worker's shadow results (``shadow.shared``)
    <run dir>/accepted-config  the last config a worker accepted (pickled)
    <run dir>/release-pending.json  release changes the state disk refused, until
                               stored (``release.pending``; only while it refuses)

A worker that replaces one that exited must serve what the others serve, not the
config the supervisor started with: it loads the config files as they are now
(``respawn_config``). If they do not load (someone is halfway through an edit, or
saved a broken file), it serves the last config any worker accepted instead, which
is what the others still serve; the supervisor's start-up config is only the last
resort, when no accepted config can be read. It never exits over a bad file, so a
broken file cannot make the supervisor's restart loop spin.

Every worker records each config it swaps in with ``save_accepted`` (one small file
per reload, written whole and renamed into place). Release state needs nothing more
here: a new worker reads the state store (and the pending changes) before it accepts
a connection.
"""

from __future__ import annotations

import copyreg
import ctypes
import ctypes.util
import io
import logging
import os
import pickle
import signal
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strangler.config import load_config
from strangler.config.model import Config
from strangler.errors import ConfigError

__all__ = ["RunDir", "respawn_config"]

log = logging.getLogger("strangler")


def _mapping_proxy(items: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    return types.MappingProxyType(items)


def _reduce_mapping_proxy(m: types.MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return (_mapping_proxy, (dict(m),))


@dataclass(frozen=True, slots=True, kw_only=True)
class RunDir:
    """The supervisor's runtime directory (see the module docstring)."""

    path: Path

    @property
    def metrics(self) -> Path:
        return self.path / "metrics"

    @property
    def shadow(self) -> Path:
        return self.path / "shadow"

    @property
    def accepted(self) -> Path:
        return self.path / "accepted-config"

    def create(self) -> RunDir:
        self.metrics.mkdir(parents=True, exist_ok=True)
        self.shadow.mkdir(parents=True, exist_ok=True)
        return self

    def save_accepted(self, config: Config) -> bool:
        """Record ``config`` as the one the workers serve (atomic: write, rename).
        Never raises: a config that cannot be recorded (a hook object that does not
        pickle, a full disk) is logged, and a replacement worker would fall back to
        the one recorded before."""
        try:
            self._save(config)
        except (OSError, pickle.PicklingError, TypeError, AttributeError) as e:
            log.warning(
                "cannot record config version %s for replacement workers: %s", config.version, e
            )
            return False
        return True

    def _save(self, config: Config) -> None:
        buf = io.BytesIO()
        pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
        # The model's read-only mappings do not pickle by themselves; a dispatch table
        # on this pickler (not the process-wide copyreg) teaches it how.
        pickler.dispatch_table = {
            **copyreg.dispatch_table,
            types.MappingProxyType: _reduce_mapping_proxy,
        }
        pickler.dump(config)
        tmp = self.path / f".accepted-config.{os.getpid()}.tmp"
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, self.accepted)

    def load_accepted(self) -> Config | None:
        """The last accepted config, or ``None`` when there is none to read. The file
        is written only by this supervisor's workers, in a directory only its user
        can open."""
        try:
            data = self.accepted.read_bytes()
            config = pickle.loads(data)  # our own file, see above
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            return None
        return config if isinstance(config, Config) else None


def respawn_config(path: Path | None, run_dir: RunDir, started_with: Config) -> Config:
    """The config a replacement worker serves: the files as they are now; if they do
    not load, the last config a worker accepted; the start-up config last of all."""
    if path is None:  # a fixed config (zero-config form): nothing on disk to follow
        return started_with
    try:
        config = load_config(path)
    except ConfigError as e:
        accepted = run_dir.load_accepted()
        fallback = accepted or started_with
        log.error(
            "replacement worker: the config on disk is rejected, serving version %s, "
            "the last one the workers accepted:\n%s",
            fallback.version,
            e,
        )
        return fallback
    log.info("replacement worker: config version %s, loaded from disk", config.version)
    run_dir.save_accepted(config)
    return config


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_supervisor(supervisor: int) -> None:
    """Ask the kernel for SIGTERM when the supervisor dies (Linux ``PR_SET_PDEATHSIG``),
    so a supervisor killed with SIGKILL (OOM killer, ``kill -9``) leaves no workers
    serving on behind its back: each drains and exits as on a normal stop. Where the
    call is not available the worker carries on as before (logged at debug)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    except (OSError, AttributeError) as e:
        log.debug("cannot ask to be stopped with the supervisor: %s", e)
        return
    if os.getppid() != supervisor:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
