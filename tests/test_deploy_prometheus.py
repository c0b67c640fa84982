"""``deploy/prometheus``: promtool validates the config and the rules, runs the rules'
unit tests (``deploy/prometheus/tests``), and those unit tests cover every rule and
catch a broken one.

promtool comes with the Debian package ``prometheus``. Nothing here is skipped: a
missing promtool fails with the install command.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

DEPLOY: Final = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"
CONFIG: Final = DEPLOY / "prometheus.yml"
RECORDING: Final = DEPLOY / "rules" / "strangler-recording.yml"
ALERTS: Final = DEPLOY / "rules" / "strangler-alerts.yml"
UNIT_TESTS: Final = sorted((DEPLOY / "tests").glob("*.yml"))


def promtool(*args: str | Path, cwd: Path = DEPLOY) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is missing: run `apt-get install prometheus` "
            "(Debian package 'prometheus' ships /usr/bin/promtool; ./dev test installs it)"
        )
    return subprocess.run(
        [exe, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load(path)["groups"] for rule in group["rules"]]


def test_rule_files_pass_promtool_check_rules() -> None:
    result = promtool("check", "rules", RECORDING, ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout + result.stderr
    assert f"SUCCESS: {len(rules(RECORDING))} rules found" in out
    assert f"SUCCESS: {len(rules(ALERTS))} rules found" in out


def test_prometheus_yml_passes_promtool_check_config() -> None:
    result = promtool("check", "config", CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr
    # it loads both rule files (paths relative to prometheus.yml) and scrapes strangler
    config = load(CONFIG)
    assert {(CONFIG.parent / f).resolve() for f in config["rule_files"]} == {RECORDING, ALERTS}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["strangler"].get("metrics_path", "/metrics") == "/metrics"


def test_rule_unit_tests_pass() -> None:
    assert UNIT_TESTS, "no promtool unit tests in deploy/prometheus/tests"
    result = promtool("test", "rules", *UNIT_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(UNIT_TESTS), result.stdout


def test_every_rule_has_a_unit_test() -> None:
    tested_exprs: list[str] = []
    firing: set[str] = set()  # alerts with a case that expects them to fire
    quiet: set[str] = set()  # alerts with a case that expects them not to fire
    for path in UNIT_TESTS:
        doc = load(path)
        for rule_file in doc["rule_files"]:
            assert (path.parent / rule_file).resolve() in {RECORDING, ALERTS}, rule_file
        for case in doc["tests"]:
            tested_exprs += [t["expr"] for t in case.get("promql_expr_test", [])]
            for t in case.get("alert_rule_test", []):
                (firing if t.get("exp_alerts") else quiet).add(t["alertname"])

    for rule in rules(RECORDING):
        name = rule["record"]
        pattern = re.compile(rf"(?<![\w:]){re.escape(name)}(?![\w:])")
        assert any(pattern.search(e) for e in tested_exprs), f"recording rule {name} untested"
    alerts = {rule["alert"] for rule in rules(ALERTS)}
    assert alerts - firing == set(), "alerts with no firing test case"
    assert alerts - quiet == set(), "alerts with no must-not-fire test case"


def test_rules_keep_job_and_carry_severity_and_summary() -> None:
    for rule in rules(RECORDING):
        assert re.fullmatch(r"strangler:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
        assert "by (job" in rule["expr"], f"{rule['record']} aggregates `job` away"
    for rule in rules(ALERTS):
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description"} <= rule["annotations"].keys(), rule["alert"]


# Each mutation breaks one rule the way a careless edit would; the unit tests must fail.
REC, ALR = "recording", "alerts"
MUTATIONS: Final = [
    pytest.param(
        REC,
        'by (job) (rate(strangler_requests_total{target="new"}',
        'by (job) (rate(strangler_requests_total{target="legacy"}',
        id="migration-ratio-counts-legacy",
    ),
    pytest.param(
        REC,
        'by (job) (strangler_requests_total{target="new"})',
        'by (job) (strangler_requests_total{target="new", status_class="5xx"})',
        id="migration-total-counts-errors",
    ),
    pytest.param(
        REC,
        "or\n              0 * sum by (job, route) (rate(",
        "or\n              1 * sum by (job, route) (rate(",
        id="route-ratio-fallback-not-zero",
    ),
    pytest.param(REC, 'status_class=~"5xx|aborted"', 'status_class="5xx"', id="aborted-not-error"),
    pytest.param(REC, "histogram_quantile(0.99,", "histogram_quantile(0.9,", id="p99-is-p90"),
    pytest.param(
        REC,
        'outcome="mismatch"}[5m]))\n            or',
        'outcome=~"mismatch|error"}[5m]))\n            or',
        id="shadow-errors-as-mismatch",
    ),
    pytest.param(ALR, ") > 0.01", ") > 0.1", id="error-budget-10pct"),
    pytest.param(
        ALR,
        'target="new", status_class=~"5xx|aborted"',
        'status_class=~"5xx|aborted"',
        id="error-budget-any-target",
    ),
    pytest.param(ALR, "for: 15m", "for: 1m", id="shadow-parity-no-for"),
    pytest.param(
        ALR,
        "count by (job, route) (max by (job, instance, route)",
        "max by (job, route) (max by (job, instance, route)",
        id="guard-replicas-not-counted",
    ),
    pytest.param(
        ALR,
        "count by (job, route) (max by (job, instance, route) (strangler_guard_tripped) == 1)",
        "count by (job, route) (strangler_guard_tripped == 1)",
        id="guard-counts-workers",
    ),
    pytest.param(
        ALR,
        "(strangler_route_migrated) == 1)",
        "(strangler_route_migrated) >= 0)",
        id="legacy-traffic-on-any-route",
    ),
    pytest.param(
        ALR,
        'strangler_config_reloads_total{result="rejected"}',
        "strangler_config_reloads_total",
        id="reload-any-result",
    ),
    pytest.param(
        ALR,
        "(strangler_config_info == 1)) > 1",
        "(strangler_config_info == 1)) > 0",
        id="drift-with-one-version",
    ),
]


@pytest.mark.parametrize(("which", "old", "new"), MUTATIONS)
def test_unit_tests_catch_a_broken_rule(tmp_path: Path, which: str, old: str, new: str) -> None:
    copy = tmp_path / "prometheus"
    shutil.copytree(DEPLOY, copy)
    target = copy / "rules" / f"strangler-{which}.yml"
    text = target.read_text()
    assert text.count(old) == 1, f"mutation anchor not found once in {target.name}: {old!r}"
    target.write_text(text.replace(old, new))
    assert promtool("check", "rules", target, cwd=copy).returncode == 0  # still valid rules
    result = promtool("test", "rules", *sorted((copy / "tests").glob("*.yml")), cwd=copy)
    assert result.returncode != 0, f"the unit tests did not notice: {old!r} -> {new!r}"
    assert "FAILED" in result.stdout + result.stderr
