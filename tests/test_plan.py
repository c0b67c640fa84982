"""strangler plan: traffic formats, the replay's figures, the report and the CLI gates."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import pytest

from strangler.cli import main
from strangler.config import load_config_text
from strangler.plan.replay import plan
from strangler.plan.report import format_text, to_json
from strangler.plan.traffic import Key, Traffic, TrafficError, read_sources
from strangler.plan.wire import config_from_json, config_to_json

UPSTREAMS = """
upstreams:
  legacy: http://127.0.0.1:8000
  billing: http://127.0.0.1:9001
  users: http://127.0.0.1:9002
"""

INVOICES = """
  - name: invoices
    owner: team-billing
    match: {path: "/api/invoices/{id}", methods: [GET]}
    to: billing
"""
USERS = """
  - name: users-read
    owner: team-users
    match: {path_prefix: /api/users, methods: [GET]}
    to: users
"""
CURRENT = UPSTREAMS + "routes:" + INVOICES + USERS

# The billing team adds a catch-all prefix above the users route: it shadows it.
BILLING_API = """
  - name: billing-api
    owner: team-billing
    match: {path_prefix: /api}
    to: legacy
    canary: {to: billing, percent: 10}
"""
SHADOWING = UPSTREAMS + "routes:" + INVOICES + BILLING_API + USERS

# A nginx "combined" access log as nginx writes it (log_format combined).
NGINX = """\
203.0.113.9 - - [03/Dec/2026:10:00:01 +0000] "GET /api/invoices/1001 HTTP/1.1" 200 512 "-" "Mozilla/5.0 (X11; Linux x86_64)"
203.0.113.9 - - [03/Dec/2026:10:00:01 +0000] "GET /api/invoices/1002 HTTP/1.1" 200 498 "https://app.example.com/" "Mozilla/5.0 (X11; Linux x86_64)"
198.51.100.4 - alice [03/Dec/2026:10:00:02 +0000] "GET /api/users/42?fields=name HTTP/1.1" 200 77 "-" "okhttp/4.12.0"
198.51.100.4 - - [03/Dec/2026:10:00:02 +0000] "GET /api/users/43 HTTP/1.1" 200 80 "-" "okhttp/4.12.0"
198.51.100.4 - - [03/Dec/2026:10:00:03 +0000] "POST /api/orders HTTP/1.1" 201 12 "-" "okhttp/4.12.0"
192.0.2.77 - - [03/Dec/2026:10:00:03 +0000] "GET /static/app.9f86d081884c7d65.js HTTP/2.0" 200 10240 "-" "Mozilla/5.0"
192.0.2.77 - - [03/Dec/2026:10:00:04 +0000] "GET /reports/2026-12-01/summary.csv HTTP/1.1" 200 900 "-" "curl/8.5.0"
192.0.2.77 - - [03/Dec/2026:10:00:04 +0000] "\\x16\\x03\\x01\\x00\\xa5\\x01" 400 157 "-" "-"
192.0.2.77 - - [03/Dec/2026:10:00:05 +0000] "GET /health HTTP/1.0" 200 2 "-" "kube-probe/1.29"
"""  # noqa: E501 (log lines are long)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_nginx_combined_log_is_read_with_query_and_bad_lines_counted(tmp_path: Path) -> None:
    t = read_sources([str(_write(tmp_path, "access.log", NGINX))])
    assert t.lines == 9
    assert t.bad == 1
    assert t.requests == 8
    bad = t.bad_lines[0]
    assert (bad.source.endswith("access.log"), bad.line) == (True, 8)
    assert t.formats == {"combined"}
    assert t.counts[Key("GET", "/api/users/42", query=(("fields", "name"),))] == 1
    assert t.counts[Key("GET", "/reports/2026-12-01/summary.csv")] == 1


def test_gzip_and_several_sources_add_up(tmp_path: Path) -> None:
    gz = tmp_path / "old.log.gz"
    gz.write_bytes(gzip.compress(NGINX.encode()))
    t = read_sources([str(gz), str(_write(tmp_path, "new.log", NGINX))])
    assert (t.requests, t.bad) == (16, 2)
    assert [b.line for b in t.bad_lines] == [8, 8]


def test_missing_source_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrafficError, match=r"nope\.log: cannot read"):
        read_sources([str(tmp_path / "nope.log")])


def test_har_carries_host_headers_query_and_cookies(tmp_path: Path) -> None:
    har = {
        "log": {
            "version": "1.2",
            "entries": [
                {
                    "request": {
                        "method": "GET",
                        "url": "https://shop.example.com/api/users/7?beta=1",
                        "headers": [{"name": "X-Beta", "value": "on"}],
                        "queryString": [{"name": "beta", "value": "1"}],
                        "cookies": [{"name": "sid", "value": "abc"}],
                    }
                },
                {"request": {"method": "GET"}},
            ],
        }
    }
    p = _write(tmp_path, "session.har", json.dumps(har, indent=2))
    t = read_sources([str(p)])
    assert t.formats == {"har"}
    assert (t.requests, t.bad, t.bad_lines[0].line) == (1, 1, 2)
    (key,) = t.counts
    assert key == Key(
        "GET",
        "/api/users/7",
        "shop.example.com",
        (("beta", "1"),),
        (("x-beta", "on"),),
        (("sid", "abc"),),
    )


def test_shadowing_route_is_an_owner_change_and_figures_move(tmp_path: Path) -> None:
    t = read_sources([str(_write(tmp_path, "access.log", NGINX))])
    result = plan(load_config_text(CURRENT), load_config_text(SHADOWING), t)
    # users (2) and the unrouted POST /api/orders (1) are now caught by billing-api.
    assert (result.requests, result.moved) == (8, 3)
    assert [
        (o.old_route, o.old_owner, o.new_route, o.new_owner, o.requests)
        for o in result.owner_changes
    ] == [("users-read", "team-users", "billing-api", "team-billing", 2)]
    groups = {(g.old_route, g.new_route): g for g in result.groups}
    assert groups[("users-read", "billing-api")].top == (("GET /api/users/{id}", 2),)
    assert groups[("(unrouted)", "billing-api")].old_backend == "legacy"
    assert result.idle_routes == ["users-read"]
    # before: 4 of 8 answered by new services; after: invoices 2, billing-api 10% of 3.
    assert result.before.migrated_share == pytest.approx(0.5)
    assert result.after.migrated_share == pytest.approx(2.3 / 8)
    assert (result.before.legacy_endpoints, result.after.legacy_endpoints) == (4, 3)
    rows = {r.route: r for r in result.release}
    assert rows["billing-api"].change == "added"
    assert rows["billing-api"].after == "canary 10% → billing"
    assert rows["billing-api"].requests == 3
    text = format_text(result, t)
    assert text.splitlines()[0] == "3 of 8 requests (37.5%) change route or backend"
    assert "users-read (team-users) → billing-api (team-billing)  2 requests" in text
    assert "access.log:8: not a combined/common log line" in text
    doc = to_json(result, t)
    assert doc["moved"] == 3
    assert doc["sample"]["bad_lines"] == 1


def test_a_change_that_moves_nothing_says_so(tmp_path: Path) -> None:
    t = read_sources([str(_write(tmp_path, "access.log", NGINX))])
    cfg = load_config_text(CURRENT)
    result = plan(cfg, cfg, t)
    assert (result.moved, result.owner_changes, result.groups) == (0, [], [])
    assert format_text(result, t).startswith(
        "No request of the 8 in the sample changes route or backend"
    )


def test_conditions_the_source_lacks_are_named() -> None:
    proposed = load_config_text(
        UPSTREAMS
        + """
routes:
  - name: beta-users
    owner: team-users
    match: {path_prefix: /api/users, headers: {x-beta: "on"}, query: {v: "2"}}
    to: users
"""
    )
    t = Traffic()
    t.formats.add("combined")
    result = plan(load_config_text(CURRENT), proposed, t)
    assert [(u.route, u.condition) for u in result.unevaluated] == [("beta-users", "header x-beta")]


def test_wire_round_trip_routes_the_same() -> None:
    cfg = load_config_text(SHADOWING)
    back = config_from_json(json.loads(json.dumps(config_to_json(cfg))))
    assert [r.match for r in back.routes] == [r.match for r in cfg.routes]
    canaries = [(r.canary.to, r.canary.ratio) if r.canary else None for r in cfg.routes]
    assert [(r.canary.to, r.canary.ratio) if r.canary else None for r in back.routes] == canaries


def test_cli_gates_exit_1_for_ci(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cur = _write(tmp_path, "current.yaml", CURRENT)
    new = _write(tmp_path, "new.yaml", SHADOWING)
    log = _write(tmp_path, "access.log", NGINX)
    base = ["plan", "--config", str(new), "--current", str(cur), "--traffic", str(log)]
    assert main([*base, "--fail-if-moved", "50%"]) == 0
    assert main([*base, "--fail-if-moved", "5%"]) == 1
    assert "37.5% of requests move, more than --fail-if-moved 5%" in capsys.readouterr().err
    assert main([*base, "--fail-if-owner-changes"]) == 1
    assert main(["plan", "--config", str(cur), "--current", str(cur), "--traffic", str(log),
                 "--fail-if-owner-changes", "--fail-if-moved", "0%"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main([*base, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["owner_changes"][0]["new_route"] == "billing-api"


def test_cli_reads_stdin_and_reports_bad_configs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cur = _write(tmp_path, "current.yaml", CURRENT)
    broken = _write(tmp_path, "broken.yaml", UPSTREAMS + "routes: [{name: x}]\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(NGINX))
    assert main(["plan", "-c", str(cur), "--current", str(cur), "--traffic", "-"]) == 0
    assert "No request of the 8" in capsys.readouterr().out
    assert main(["plan", "-c", str(broken), "--current", str(cur), "-t", "-"]) == 1
    assert "broken.yaml has problems" in capsys.readouterr().err
    assert main(["plan", "-c", str(cur), "-t", "-"]) == 2
    assert "--current OLD.yaml or --admin URL" in capsys.readouterr().err


def test_strangler_log_paths_are_unescaped_and_odd_lines_still_read(tmp_path: Path) -> None:
    from strangler.accesslog import format_entry

    own = format_entry(
        (0.0, "GET", '/files/a "b"/\u00e9', "r", "legacy", 200, 1, 1.0, "::1", "rid-1"), "json"
    )
    text = format_entry(
        (0.0, "DELETE", "/a b/c", "r", "legacy", 204, 0, 1.5, "10.0.0.1", "rid-2"), "text"
    )
    log = own + "\n\n" + " " + NGINX.splitlines()[0] + "\n" + '{"method": "GET"}\n' + text
    t = read_sources([str(_write(tmp_path, "mixed.log", log))])
    assert t.counts[Key("GET", '/files/a "b"/\u00e9')] == 1
    assert t.counts[Key("GET", "/api/invoices/1001")] == 1
    assert t.counts[Key("DELETE", "/a b/c")] == 1
    assert (t.lines, t.bad, t.bad_lines[0].line) == (4, 1, 4)
    assert t.bad_lines[0].reason == "no method and path"


def test_sampler_keeps_names_only_and_stays_bounded() -> None:
    from multidict import CIMultiDict, MultiDict

    from strangler.plan.record import Sampler

    class Req:
        method = "GET"
        path = "/api/users/7"
        query = MultiDict([("token", "secret"), ("page", "2")])
        headers = CIMultiDict([("X-Beta", "on"), ("Authorization", "Bearer x")])

    now = [0.0]
    tosses = iter([0.05, 0.5, 0.05, 0.05, 0.05])
    s = Sampler(0.1, 2, 60.0, ("x-beta",), clock=lambda: now[0], rand=lambda: next(tosses))
    s.offer(Req(), "users")  # 0.05 < 0.1: kept
    s.offer(Req(), "users")  # 0.5: not sampled
    assert s.samples == [
        {
            "method": "GET",
            "path": "/api/users/7",
            "query_keys": ["page", "token"],
            "route": "users",
            "header_names": ["x-beta"],
        }
    ]
    now[0] = 61.0  # expired: takes nothing more, even below the limit
    s.offer(Req(), "users")
    assert (len(s.samples), s.full) == (1, True)
    assert "secret" not in json.dumps(s.samples)


def test_unreachable_admin_api_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cur = _write(tmp_path, "current.yaml", CURRENT)
    log = _write(tmp_path, "access.log", NGINX)
    dead = "http://127.0.0.1:9"  # discard port: nothing listens on 127.0.0.1
    assert main(["plan", "-c", str(cur), "--admin", dead, "-t", str(log)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("strangler plan: cannot reach the admin API at http://127.0.0.1:9")
    assert "\n" not in err
    assert main(["plan", "--record", str(tmp_path / "s.jsonl"), "--admin", dead]) == 1
    assert main(["plan", "--record", str(tmp_path / "s.jsonl"), "--rate", "0%"]) == 2
