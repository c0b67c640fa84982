"""Release controls in the config: canary, overrides, fallback, slo, state; and the sides.

``tests/data/configs/{valid,invalid}/release.yaml`` are also run by the fixture tests
of ``test_config_validate.py``; here the model they build is checked field by field,
with the hints the fixture comments do not show.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from strangler.config import legacy_only, load_config, load_config_text
from strangler.config.model import (
    FALLBACK_ON,
    IDEMPOTENT_METHODS,
    LEGACY,
    Canary,
    Config,
    Fallback,
    Location,
    MatchSpec,
    Overrides,
    Route,
    Slo,
    StateFiles,
    Sticky,
)
from strangler.errors import ConfigError

DATA = Path(__file__).parent / "data" / "configs"
UPSTREAMS = "legacy: http://l:8000, billing: http://b:9000, v2: http://v:9001"


def load(text: str) -> Config:
    return load_config_text(text, "m.yaml")


def one_route(fields: str, upstreams: str = UPSTREAMS) -> Route:
    """The route ``{name: r, owner: t, match: {}, <fields>}`` (written on line 3)."""
    (route,) = load(route_yaml(fields, upstreams)).routes
    return route


def route_yaml(fields: str, upstreams: str = UPSTREAMS) -> str:
    route = f"{{name: r, owner: t, match: {{}}, {fields}}}"
    return f"upstreams: {{{upstreams}}}\nroutes:\n  - {route}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [str(p) for p in info.value.problems]


def one_problem(fields: str) -> str:
    (problem,) = problems(route_yaml(fields))
    return problem


# ---------------------------------------------------------------------------- fixture


def test_release_fixture_builds_the_model() -> None:
    path = DATA / "valid" / "release.yaml"
    config = load_config(path)
    invoices, orders, reports, v2, tiny = config.routes

    assert invoices.canary == Canary(
        to="billing",
        ratio=0.1,
        sticky=Sticky(kind="header", name="X-User-Id"),
        group="checkout",
        at=Location(str(path), 13),
    )
    assert invoices.overrides == Overrides(
        header="X-Strangler-Backend",
        cookie="strangler_backend",
        allow=("billing", "legacy"),
        networks=("10.0.0.0/8", "127.0.0.1/32"),
        at=Location(str(path), 14),
    )
    assert invoices.fallback == Fallback(
        enabled=True,
        methods=frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}),
        on=frozenset({"refused", "timeout", "5xx"}),
        buffer_bytes=64_000,
        at=Location(str(path), 15),
    )
    assert invoices.slo == Slo(
        error_rate=0.01,
        latency_p99=0.3,
        window=300.0,
        min_requests=100,
        at=Location(str(path), 16),
    )
    assert (invoices.primary, invoices.new_side) == ("legacy", "billing")

    # a bare number is percent; group members may spell the header name in any case
    assert orders.canary is not None
    assert (orders.canary.ratio, orders.canary.group) == (0.1, "checkout")
    # overrides: true → the defaults (allow: () is the route's own sides, see compile_release)
    assert orders.overrides == Overrides(at=Location(str(path), 22))
    assert orders.fallback == Fallback()  # not written: the defaults
    assert orders.slo is None

    # migrated route: fallback.to names the primary
    assert reports.canary is None
    assert (reports.primary, reports.new_side) == ("billing-v2", "billing")
    assert reports.slo == Slo(latency_p99=2.0, at=Location(str(path), 28))

    assert v2.canary is not None
    assert v2.canary.ratio == pytest.approx(0.001)
    assert v2.canary.sticky == Sticky(kind="client_ip")
    assert str(v2.canary.sticky) == "client_ip"
    assert v2.fallback.enabled is False
    assert (v2.primary, v2.new_side) == ("billing", "billing-v2")

    assert tiny.canary is not None
    assert tiny.canary.ratio == 0.0
    assert tiny.overrides is not None
    assert (tiny.overrides.header, tiny.overrides.cookie) == ("X-Strangler-Backend", None)

    assert config.state == StateFiles(
        dir=os.path.normpath(str(DATA / "valid" / "run" / "state")), file_poll=0.25
    )


# ---------------------------------------------------------------------------- the sides


@pytest.mark.parametrize(
    ("fields", "primary", "new_side"),
    [
        ("to: legacy", "legacy", None),
        ("to: legacy, canary: {to: billing, percent: 5%}", "legacy", "billing"),
        ("to: billing", "legacy", "billing"),
        ("to: billing, fallback: {to: v2}", "v2", "billing"),
        ("to: billing, canary: {to: v2, percent: 5%}", "billing", "v2"),
        ("to: billing, canary: {to: v2, percent: 5%}, fallback: {to: legacy}", "legacy", "v2"),
    ],
)
def test_primary_and_new_side(fields: str, primary: str, new_side: str | None) -> None:
    route = one_route(fields)
    assert (route.primary, route.new_side) == (primary, new_side)


def test_a_route_built_in_code_has_the_defaults() -> None:
    route = Route(name="r", owner="t", match=MatchSpec(), to=LEGACY, index=0)
    assert (route.canary, route.overrides, route.slo) == (None, None, None)
    assert route.fallback == Fallback(
        enabled=True,
        to=None,
        methods=IDEMPOTENT_METHODS,
        on=frozenset(FALLBACK_ON),
        buffer_bytes=65536,
    )
    assert "POST" not in route.fallback.methods
    assert "PATCH" not in route.fallback.methods


# ---------------------------------------------------------------------------- canary


@pytest.mark.parametrize(
    ("written", "ratio"),
    [("10%", 0.1), ("0.1%", 0.001), ("0.01%", 0.0001), ("100%", 1.0), ("0%", 0.0), ("25", 0.25)],
)
def test_canary_percent(written: str, ratio: float) -> None:
    route = one_route(f"to: legacy, canary: {{to: billing, percent: {written}}}")
    assert route.canary is not None
    assert route.canary.ratio == pytest.approx(ratio)
    assert route.canary.sticky is None  # no sticky: a coin toss per request


@pytest.mark.parametrize(
    ("written", "sticky"),
    [
        ("header:X-User-Id", Sticky(kind="header", name="X-User-Id")),
        ("cookie:uid", Sticky(kind="cookie", name="uid")),
        ("query:user", Sticky(kind="query", name="user")),
        ("'query:user id'", Sticky(kind="query", name="user id")),
        ("client_ip", Sticky(kind="client_ip")),
    ],
)
def test_sticky_forms(written: str, sticky: Sticky) -> None:
    route = one_route(f"to: legacy, canary: {{to: billing, percent: 1%, sticky: {written}}}")
    assert route.canary is not None
    assert route.canary.sticky == sticky
    assert str(sticky) == written.strip("'")


def test_canary_problems_have_hints() -> None:
    assert one_problem("to: legacy, canary: {to: biling, percent: 1%}") == (
        "m.yaml:3: route 'r' canary.to: unknown upstream 'biling' "
        "(hint: known upstreams: billing, legacy, v2; did you mean 'billing'?)"
    )
    assert one_problem("to: legacy, canary: {to: legacy, percent: 1%}") == (
        "m.yaml:3: route 'r' canary.to is 'legacy', the route's own 'to' "
        "(hint: the canary names the new side; 'to' answers the rest)"
    )
    assert one_problem("to: legacy, canary: {to: billing, percent: -1%}") == (
        "m.yaml:3: route 'r' canary.percent: a percentage must be between 0% and 100%, got '-1%'"
    )
    assert one_problem("to: legacy, canary: {to: billing, percent: 1%, sticky: cookie}") == (
        "m.yaml:3: route 'r' canary.sticky: 'cookie' needs a name (hint: like cookie:X-User-Id)"
    )
    assert one_problem("to: legacy, canary: {to: billing, percent: 1%, sticky: 'ip'}") == (
        "m.yaml:3: route 'r' canary.sticky: 'ip' is not a sticky key "
        "(hint: write header:NAME, cookie:NAME, query:NAME or client_ip)"
    )
    assert one_problem("to: legacy, canary: {to: billing}") == (
        "m.yaml:3: route 'r' canary is missing required key 'percent' (hint: for example "
        "canary: {to: billing, percent: 10%, sticky: header:X-User-Id})"
    )
    assert one_problem("to: legacy, canary: {to: billing, percnt: 1%}") == (
        "m.yaml:3: unknown key 'percnt' in route 'r' canary (hint: did you mean 'percent'?)"
    )


def test_release_sections_are_checked_even_when_to_is_bad() -> None:
    found = problems(route_yaml("to: nope, canary: {to: billing, percent: 200%}, slo: 1"))
    assert found == [
        "m.yaml:3: route 'r' sends to unknown upstream 'nope' "
        "(hint: known upstreams: billing, legacy, v2)",
        "m.yaml:3: route 'r' canary.percent: a percentage must be between 0% and 100%, got '200%'",
        "m.yaml:3: route 'r' slo must be a mapping, got the number 1 (hint: for example slo: "
        "{error_rate: 1%, latency_p99: 300ms, window: 5m})",
    ]


GROUP = "upstreams: {" + UPSTREAMS + "}\nroutes:\n"


def group_route(name: str, canary: str) -> str:
    match = f"{{path: /{name}}}"
    return f"  - {{name: {name}, owner: t, match: {match}, to: legacy, canary: {canary}}}\n"


def test_a_group_must_share_sticky_key_and_percent() -> None:
    ok = load(
        GROUP
        + group_route("a", "{to: billing, percent: 5%, sticky: header:X-User, group: g}")
        + group_route("b", "{to: v2, percent: 5%, sticky: header:x-user, group: g}")
        + group_route("c", "{to: v2, percent: 50%, sticky: cookie:u, group: other}")
    )
    assert [r.canary.group for r in ok.routes if r.canary] == ["g", "g", "other"]
    found = problems(
        GROUP
        + group_route("a", "{to: billing, percent: 5%, sticky: header:X-User, group: g}")
        + group_route("b", "{to: billing, percent: 5%, sticky: query:X-User, group: g}")
        + group_route("c", "{to: billing, percent: 6%, sticky: header:X-User, group: g}")
    )
    assert found == [
        "m.yaml:4: route 'b' canary group 'g' is sticky on query:X-User but route 'a' (m.yaml:3) "
        "on header:X-User (hint: every route of group 'g' must use the same sticky key, so a user "
        "gets one cohort for the whole group)",
        "m.yaml:5: route 'c' canary group 'g' sends 6% but route 'a' (m.yaml:3) sends 5% "
        "(hint: give every route of group 'g' the same percent, or a user would be on the new "
        "side for some of them only)",
    ]


def test_groups_span_files(tmp_path: Path) -> None:
    (tmp_path / "team.yaml").write_text(
        "routes:\n" + group_route("b", "{to: billing, percent: 7%, sticky: cookie:u, group: g}")
    )
    main = tmp_path / "main.yaml"
    main.write_text(
        GROUP.replace("routes:\n", "include: [team.yaml]\nroutes:\n")
        + group_route("a", "{to: billing, percent: 5%, sticky: cookie:u, group: g}")
    )
    with pytest.raises(ConfigError) as info:
        load_config(main)
    (problem,) = info.value.problems
    assert (problem.file, problem.line) == (str(tmp_path / "team.yaml"), 2)
    assert problem.message == (
        f"route 'b' canary group 'g' sends 7% but route 'a' ({main}:4) sends 5%"
    )


# ---------------------------------------------------------------------------- overrides


def test_overrides_true_false_and_defaults() -> None:
    route = one_route("to: legacy, canary: {to: billing, percent: 1%}, overrides: true")
    assert route.overrides == Overrides(at=Location("m.yaml", 3))  # allow: the route's sides
    assert one_route("to: legacy, overrides: false").overrides is None
    route = one_route("to: billing, overrides: {networks: [127.0.0.1, '::1']}")
    assert route.overrides is not None
    assert route.overrides.networks == ("127.0.0.1/32", "::1/128")
    route = one_route("to: billing, overrides: {header: X-Pick, allow: [v2]}")
    assert route.overrides is not None
    assert (route.overrides.header, route.overrides.allow) == ("X-Pick", ("v2",))


def test_override_problems() -> None:
    assert one_problem("to: legacy, overrides: {allow: []}") == (
        "m.yaml:3: route 'r' overrides.allow is empty, so nothing could be forced "
        "(hint: leave allow out for the route's own upstreams)"
    )
    assert one_problem("to: legacy, overrides: {allow: [bling]}") == (
        "m.yaml:3: route 'r' overrides.allow: unknown upstream 'bling' "
        "(hint: known upstreams: billing, legacy, v2; did you mean 'billing'?)"
    )
    assert one_problem("to: legacy, overrides: {networks: [intranet]}") == (
        "m.yaml:3: route 'r' overrides.networks entry: 'intranet' is not an IP network "
        "(hint: like 10.0.0.0/8, 192.168.1.7 or fd00::/8)"
    )
    assert one_problem("to: legacy, overrides: {cookie: 'a;b'}") == (
        "m.yaml:3: route 'r' overrides.cookie: 'a;b' is not a valid name "
        "(hint: a name, or false to turn it off)"
    )
    assert one_problem("to: legacy, overrides: {headr: X}") == (
        "m.yaml:3: unknown key 'headr' in route 'r' overrides (hint: did you mean 'header'?)"
    )


# ---------------------------------------------------------------------------- fallback


def test_fallback_forms() -> None:
    assert one_route("to: billing, fallback: false").fallback == Fallback(
        enabled=False, at=Location("m.yaml", 3)
    )
    assert one_route("to: billing, fallback: true").fallback == Fallback(at=Location("m.yaml", 3))
    route = one_route(
        "to: billing, fallback: {methods: [get, post], on: [reset, protocol], buffer: 0}"
    )
    assert route.fallback == Fallback(
        methods=frozenset({"GET", "POST"}),
        on=frozenset({"reset", "protocol"}),
        buffer_bytes=0,
        at=Location("m.yaml", 3),
    )


def test_fallback_problems() -> None:
    assert one_problem("to: billing, fallback: {to: billing}") == (
        "m.yaml:3: route 'r' fallback.to is 'billing', the new side itself: a failed request "
        "would be sent back to the upstream that failed (hint: name the primary, like 'legacy')"
    )
    assert one_problem("to: legacy, canary: {to: v2, percent: 1%}, fallback: {to: v2}") == (
        "m.yaml:3: route 'r' fallback.to is 'v2', the new side itself: a failed request "
        "would be sent back to the upstream that failed (hint: name the primary, like 'legacy')"
    )
    assert one_problem("to: billing, fallback: {on: [refused, refused]}") == (
        "m.yaml:3: route 'r' fallback.on entry: 'refused' is listed twice"
    )
    assert one_problem("to: billing, fallback: {on: []}") == (
        "m.yaml:3: route 'r' fallback.on is empty, so no request could fall back "
        "(hint: write fallback: false)"
    )
    assert one_problem("to: billing, fallback: {to: lgacy}") == (
        "m.yaml:3: route 'r' fallback.to: unknown upstream 'lgacy' "
        "(hint: known upstreams: billing, legacy, v2; did you mean 'legacy'?)"
    )


# ---------------------------------------------------------------------------- slo


def test_slo_defaults_and_units() -> None:
    route = one_route("to: billing, slo: {error_rate: 0.5%, window: 30s, min_requests: 5}")
    assert route.slo == Slo(
        error_rate=0.005, latency_p99=None, window=30.0, min_requests=5, at=Location("m.yaml", 3)
    )


def test_slo_problems() -> None:
    assert one_problem("to: billing, slo: {error_rate: 1%, min_requests: 2.5}") == (
        "m.yaml:3: route 'r' slo.min_requests must be a whole number, got the number 2.5"
    )
    assert one_problem("to: billing, slo: {latency_p99: fast}") == (
        "m.yaml:3: route 'r' slo.latency_p99: expected a duration like '2s' or '250ms', got 'fast'"
    )
    assert one_problem("to: billing, slo: {error_rate: 1%, windw: 1m}") == (
        "m.yaml:3: unknown key 'windw' in route 'r' slo (hint: did you mean 'window'?)"
    )


# ---------------------------------------------------------------------------- state


def test_state_dir_defaults_next_to_the_main_file(tmp_path: Path) -> None:
    main = tmp_path / "conf" / "strangler.yaml"
    main.parent.mkdir()
    main.write_text("upstreams: {legacy: http://l:8000}\n")
    assert load_config(main).state == StateFiles(dir=str(tmp_path / "conf" / ".strangler"))
    main.write_text(f"upstreams: {{legacy: http://l:8000}}\nstate: {{dir: {tmp_path}/abs}}\n")
    assert load_config(main).state == StateFiles(dir=f"{tmp_path}/abs", file_poll=0.5)


def test_state_dir_for_legacy_only_is_the_current_directory() -> None:
    assert legacy_only("http://127.0.0.1:8000").state == StateFiles(dir=".strangler")
    assert load("upstreams: {legacy: http://l:8000}").state.dir == ".strangler"


def test_state_problems() -> None:
    found = problems("upstreams: {legacy: http://l:8000}\nstate: {file_poll: 0s, dri: x}\n")
    assert found == [
        "m.yaml:2: unknown key 'dri' in state (hint: did you mean 'dir'?)",
        "m.yaml:2: state.file_poll must be more than 0 and at most 60s, got 0s "
        "(hint: how often each worker looks for another worker's changes, like 500ms)",
    ]
    assert re.search(
        "state must be a mapping", problems("upstreams: {legacy: http://l:8000}\nstate: x\n")[0]
    )
