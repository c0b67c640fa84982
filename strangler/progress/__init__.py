"""Migration progress: traffic share, routes moved, remaining legacy surface and
decommission readiness.

How it is split:

- ``tracker``: ``ProgressTracker``, one per worker; ``record`` runs on the request
  path, persistence (``save``/``load``/``run_flusher``) and peers around it;
- ``fold``: concrete path → endpoint template (``/users/123`` → ``/users/{id}``);
- ``topk``: the bounded Space-Saving table of learned legacy endpoints;
- ``state``: the counters as data, their JSON files and ``merge`` across workers;
- ``status``: the status / backlog / decommission models, built at read time;
- ``collector``: the scrape-time Prometheus collector;
- ``windows``: time-bucketed counts (the 5m/1h/24h windows) and their exact merge;
- ``history``: the migration over time, from those buckets;
- ``resets``: ``strangler progress reset``, a shared file applied at read time.

>>> from strangler.config import load_config_text
>>> from strangler.metrics import Metrics
>>> from strangler.runtime import compile_snapshot
>>> snap = compile_snapshot(load_config_text("upstreams: {legacy: http://127.0.0.1:1}"), Metrics())
>>> t = ProgressTracker(clock=lambda: 1706659200.0)
>>> t.record(snap.unrouted, "GET", "/users/42", 200)
>>> status = t.snapshot(snap)
>>> status["overall"]["legacy"], status["backlog"][0]["endpoint"]
(1, 'GET /users/{id}')
"""

from strangler.progress.collector import ProgressCollector
from strangler.progress.fold import fold_path
from strangler.progress.state import ProgressState, merge, merge_states
from strangler.progress.status import (
    BacklogJSON,
    DecommissionJSON,
    StatusJSON,
    backlog_model,
    decommission_model,
    status_model,
)
from strangler.progress.tracker import (
    DEFAULT_FLUSH_INTERVAL,
    DEFAULT_IDLE_AFTER,
    ProgressTracker,
)

__all__ = [
    "DEFAULT_FLUSH_INTERVAL",
    "DEFAULT_IDLE_AFTER",
    "BacklogJSON",
    "DecommissionJSON",
    "ProgressCollector",
    "ProgressState",
    "ProgressTracker",
    "StatusJSON",
    "backlog_model",
    "decommission_model",
    "fold_path",
    "merge",
    "merge_states",
    "status_model",
]
