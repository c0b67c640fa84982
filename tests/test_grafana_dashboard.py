"""``deploy/grafana``: the dashboard JSON is well formed and provisionable, names no
datasource, has the panels the migration-progress issue asks for, and every PromQL
expression in it (and in the Prometheus rules) uses only metrics strangler exports,
metrics announced for the coming release, or names the recording rules record.
The expressions are parsed by promtool (Debian package ``prometheus``), the real
PromQL parser; ``tests/integration/test_prometheus.py`` also runs them on a live
Prometheus.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from itertools import combinations
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from strangler.metrics import Metrics

ROOT: Final = Path(__file__).resolve().parents[1]
DASHBOARD: Final = ROOT / "deploy" / "grafana" / "strangler-dashboard.json"
PROVISIONING: Final = ROOT / "deploy" / "grafana" / "provisioning"
RULES: Final = ROOT / "deploy" / "prometheus" / "rules"
DS_REF: Final = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
GRID_WIDTH: Final = 24

# Exported today: must match what strangler.metrics really exports (checked below).
EXPORTED_NOW: Final = frozenset(
    {
        "strangler_requests_total",
        "strangler_request_duration_seconds_bucket",
        "strangler_request_duration_seconds_sum",
        "strangler_request_duration_seconds_count",
        "strangler_response_bytes_total",
        "strangler_upstream_errors_total",
        "strangler_config_reloads_total",
        "strangler_config_info",
        "strangler_build_info",
    }
)
# From scrape-time collectors or announced for the release controls / shadow issues
# (the names are final). The progress collector's three (strangler/progress) are live:
# tests/integration/test_prometheus.py reads strangler_routes from a real process.
COMING_SOON: Final = frozenset(
    {
        "strangler_routes",  # gauge {state="legacy|canary|migrated"}
        "strangler_route_migrated",  # 0/1 {route}
        "strangler_route_decommission_candidate",  # 0/1 {route}
        "strangler_fallbacks_total",  # counter {route}
        "strangler_guard_tripped",  # 0/1 {route}
        "strangler_error_budget_remaining_ratio",  # {route}
        "strangler_route_canary_ratio",  # configured share to new, 0..1 {route}
        "strangler_shadow_requests_total",  # {route, outcome="match|mismatch|error|dropped"}
        # the autopilot (strangler/migrate): a counter and scrape-time gauges
        "strangler_migration_transitions_total",  # {route, from, to, reason}
        "strangler_migration_share",  # {route}
        "strangler_migration_gate",  # 1 pass, 0 fail, -1 waiting {route, gate}
    }
)

# fmt: off
PROMQL_WORDS: Final = frozenset({
    # aggregation operators and keywords
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
    "topk", "quantile", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "and", "or", "unless", "inf", "nan",
    # functions
    "abs", "absent", "absent_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
    "day_of_month", "day_of_week", "day_of_year", "days_in_month", "delta", "deriv", "exp",
    "floor", "histogram_quantile", "holt_winters", "hour", "idelta", "increase", "irate",
    "label_join", "label_replace", "ln", "log2", "log10", "minute", "month", "predict_linear",
    "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "time", "timestamp",
    "vector", "year", "avg_over_time", "min_over_time", "max_over_time", "sum_over_time",
    "count_over_time", "quantile_over_time", "stddev_over_time", "stdvar_over_time",
    "last_over_time", "present_over_time",
})
# fmt: on
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:$])[A-Za-z_:][\w:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.*),\s*\w+\s*\)\s*$", re.S)
_GRAFANA_VAR = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label
    matchers, ranges, grouping clauses and PromQL's own words are taken out."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    return {t for t in _IDENT.findall(text) if t.lower() not in PROMQL_WORDS}


def substitute(expr: str, **values: str) -> str:
    """Replace Grafana variables as Grafana would before sending the query."""
    builtins = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}

    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return values.get(name, builtins.get(name, ".*"))

    return _GRAFANA_VAR.sub(one, expr)


def load_dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text())
    assert isinstance(data, dict)
    return data


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # collapsed rows keep their panels inside


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) for every query: panel targets, annotations, variables."""
    out: list[tuple[str, str]] = []
    for panel in all_panels(dashboard):
        for t in panel.get("targets", []):
            out.append((f"panel {panel['id']} {panel['title']!r} {t['refId']}", t["expr"]))
    for ann in dashboard["annotations"]["list"]:
        if "expr" in ann:
            out.append((f"annotation {ann['name']!r}", ann["expr"]))
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            m = _LABEL_VALUES.match(var["query"])
            assert m, f"variable {var['name']}: expected label_values(selector, label)"
            out.append((f"variable ${var['name']}", m.group("selector")))
    return out


def recorded_names() -> set[str]:
    doc = yaml.safe_load((RULES / "strangler-recording.yml").read_text())
    return {rule["record"] for group in doc["groups"] for rule in group["rules"]}


def rule_exprs() -> list[tuple[str, str]]:
    out = []
    for path in sorted(RULES.glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((rule.get("record") or rule["alert"], rule["expr"]))
    return out


def exported_by_the_code() -> set[str]:
    """Sample names a real ``Metrics`` exposes once every labelled metric has a child."""
    m = Metrics()
    m.bind_route("r", "legacy", "legacy")
    m.upstream_errors.labels("legacy", "refused", "connect")
    m.set_config_version("v1")
    return {s.name for family in m.registry.collect() for s in family.samples}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def test_metric_names_extractor() -> None:
    expr = """
      histogram_quantile(0.99,
        sum by (job, le) (rate(x_bucket{job=~"$job", a="b c"}[$__rate_interval])))
      and on (job) (sum by (job) (y:rec:rate5m offset 5m) > 1e-3) or vector(0)
      unless label_replace(z, "dst", "$1", "src", "(.*)") / ignoring (le) group_left (q) w
    """
    assert metric_names(expr) == {"x_bucket", "y:rec:rate5m", "z", "w"}
    assert metric_names('count(up{job="strangler_requests_total"} == 1)') == {"up"}


def test_exported_now_matches_the_code() -> None:
    """A metric renamed or dropped in ``strangler.metrics`` fails here, not on a blank
    dashboard panel. (When a COMING_SOON metric lands, move it up to EXPORTED_NOW.)"""
    exported = exported_by_the_code()
    assert EXPORTED_NOW - exported == set()


def test_dashboard_is_valid_provisionable_json(dashboard: dict[str, Any]) -> None:
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"]
    assert dashboard.get("id") is None  # provisioning assigns ids
    assert "__inputs" not in dashboard  # file provisioning does not resolve __inputs
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    ds = variables["DS_PROMETHEUS"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    assert {"job", "route"} <= variables.keys()


def test_no_datasource_is_hard_coded(dashboard: dict[str, Any]) -> None:
    refs: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource":
                    refs.append(value)
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(dashboard)
    builtin = {"type": "grafana", "uid": "-- Grafana --"}  # the built-in annotations
    assert refs
    assert all(ref in (DS_REF, builtin) for ref in refs), [
        r for r in refs if r not in (DS_REF, builtin)
    ]


def test_panels_have_ids_grid_positions_and_targets(dashboard: dict[str, Any]) -> None:
    panels = list(all_panels(dashboard))
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    boxes: list[tuple[int, int, int, int, str]] = []
    for p in panels:
        assert p["type"], p
        assert p["title"], p
        pos = p["gridPos"]
        assert all(isinstance(pos[k], int) for k in ("x", "y", "w", "h")), p["title"]
        assert min(pos["w"], pos["h"]) > 0, p["title"]
        assert min(pos["x"], pos["y"]) >= 0, p["title"]
        assert pos["x"] + pos["w"] <= GRID_WIDTH, p["title"]
        boxes.append((pos["x"], pos["y"], pos["w"], pos["h"], p["title"]))
        if p["type"] == "row":
            continue
        assert p["datasource"] == DS_REF, p["title"]
        targets = p["targets"]
        assert targets, f"panel {p['title']!r} has no queries"
        assert len({t["refId"] for t in targets}) == len(targets), p["title"]
        assert all(t["expr"].strip() for t in targets), p["title"]
    for a, b in combinations(boxes, 2):
        overlap = (
            a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]
        )
        assert not overlap, f"panels {a[4]!r} and {b[4]!r} overlap"


def _panels_reading(dashboard: dict[str, Any], name: str, types: set[str]) -> list[str]:
    return [
        p["title"]
        for p in all_panels(dashboard)
        if p["type"] in types and any(name in metric_names(t["expr"]) for t in p["targets"])
    ]


@pytest.mark.parametrize(
    ("what", "metric", "types"),
    [
        ("overall migration ratio over time", "strangler:migration_ratio:rate5m", {"timeseries"}),
        ("routes migrated", "strangler_routes", {"stat"}),
        ("per-route share to new", "strangler:route_migration_ratio:rate5m", {"bargauge"}),
        ("new vs legacy error ratio", "strangler:route_error_ratio:rate5m", {"timeseries"}),
        ("p99 latency by route", "strangler:request_duration_seconds:p99_rate5m", {"timeseries"}),
        ("fallbacks", "strangler_fallbacks_total", {"timeseries"}),
        ("guard trips", "strangler_guard_tripped", {"state-timeline", "timeseries"}),
        ("shadow parity", "strangler:route_shadow_mismatch_ratio:rate5m", {"timeseries"}),
    ],
)
def test_required_panel(dashboard: dict[str, Any], what: str, metric: str, types: set[str]) -> None:
    assert _panels_reading(dashboard, metric, types), f"no {'/'.join(types)} panel for {what}"


def test_dashboard_queries_use_known_metrics_only(dashboard: dict[str, Any]) -> None:
    known = EXPORTED_NOW | COMING_SOON | recorded_names()
    queries = dashboard_queries(dashboard)
    assert len(queries) > 20
    unknown = {where: metric_names(q) - known for where, q in queries if metric_names(q) - known}
    assert unknown == {}
    assert all(metric_names(q) for _, q in queries), "a query that reads no metric"


def test_dashboard_queries_filter_on_the_job_variable(dashboard: dict[str, Any]) -> None:
    for where, query in dashboard_queries(dashboard):
        if where == "variable $job":
            continue
        assert 'job=~"$job"' in query, f"{where} ignores $job: {query}"


def test_rules_use_known_metrics_only() -> None:
    known = EXPORTED_NOW | COMING_SOON | recorded_names()
    unknown = {name: metric_names(e) - known for name, e in rule_exprs() if metric_names(e) - known}
    assert unknown == {}


def test_dashboard_queries_parse_with_promtool(tmp_path: Path, dashboard: dict[str, Any]) -> None:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool is missing: run `apt-get install prometheus` (Debian package)")
    queries = dashboard_queries(dashboard)
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": substitute(q, job="strangler")}
        for i, (_, q) in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [exe, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, (
        out + "\n" + "\n".join(f"{i}: {w}" for i, (w, _) in enumerate(queries))
    )
    assert f"SUCCESS: {len(rules)} rules found" in out


def test_grafana_provisioning_files() -> None:
    ds = yaml.safe_load((PROVISIONING / "datasources" / "strangler-prometheus.yml").read_text())
    assert ds["apiVersion"] == 1
    assert [d["type"] for d in ds["datasources"]] == ["prometheus"]
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "strangler.yml").read_text())
    assert providers["apiVersion"] == 1
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")
