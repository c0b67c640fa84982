"""``decide``: the release precedence table row by row, the plans, and fallback policy."""

from __future__ import annotations

import doctest
import importlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict, CIMultiDictProxy

import strangler.release
from strangler.config import load_config_text
from strangler.config.model import (
    LEGACY,
    UNROUTED,
    Canary,
    Fallback,
    MatchSpec,
    Overrides,
    Route,
    Slo,
    Sticky,
)
from strangler.release import (
    FAILURE_5XX,
    REASONS,
    Decision,
    ReleasePlan,
    ReleaseRequest,
    RouteState,
    bucket,
    compile_release,
    decide,
    fixed_plan,
)

UPSTREAMS = frozenset({"legacy", "billing", "v2", "other"})


@dataclass
class Req:
    """A request as ``decide`` sees it."""

    headers: CIMultiDictProxy[str] = field(default_factory=lambda: CIMultiDictProxy(CIMultiDict()))
    cookies: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    remote: str | None = "203.0.113.9"
    method: str = "GET"
    host: str = "shop.example.com"
    path: str = "/api/invoices/1"


def req(
    headers: dict[str, str] | None = None,
    cookies: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    remote: str | None = "203.0.113.9",
) -> Req:
    return Req(
        headers=CIMultiDictProxy(CIMultiDict(headers or {})),
        cookies=cookies or {},
        query=query or {},
        remote=remote,
    )


def route(**fields: object) -> Route:
    base: dict[str, object] = {
        "name": "invoices",
        "owner": "t",
        "match": MatchSpec(),
        "to": LEGACY,
        "index": 0,
    }
    return Route(**{**base, **fields})  # type: ignore[arg-type]


def plan_of(**fields: object) -> ReleasePlan:
    return compile_release(route(**fields), UPSTREAMS)


def never() -> float:
    raise AssertionError("rand() must not be called here")


def always(value: float) -> Callable[[], float]:
    return lambda: value


CANARY_ALL = Canary(to="billing", ratio=1.0, sticky=Sticky(kind="header", name="X-User"))
EVERYTHING = {
    "canary": CANARY_ALL,
    "overrides": Overrides(allow=("legacy", "billing", "v2")),
}
FORCE_V2 = {"X-Strangler-Backend": "v2", "X-User": "u1"}


def test_doctests() -> None:
    # the package's ``decide`` is the function; the module is strangler.release.decide
    module = importlib.import_module("strangler.release.decide")
    assert doctest.testmod(module).failed == 0


def test_the_package_surface() -> None:
    for name in strangler.release.__all__:
        assert hasattr(strangler.release, name), name


def test_an_aiohttp_request_is_a_release_request() -> None:
    def typed(request: web.BaseRequest) -> ReleaseRequest:
        return request  # mypy checks the Protocol here

    request = make_mocked_request(
        "GET",
        "/api/invoices/1?user=q1",
        headers={"X-User": "u7", "Cookie": "uid=c3; strangler_backend=v2"},
    )
    plan = plan_of(canary=Canary(to="billing", ratio=0.5, sticky=Sticky(kind="cookie", name="uid")))
    d = decide(plan, typed(request), RouteState(), never)
    assert d.cohort == bucket("c3", "invoices")
    forced = plan_of(overrides=Overrides(allow=("legacy", "v2")))
    assert decide(forced, typed(request), RouteState(), never) == Decision("v2", "override")


# ---------------------------------------------------------------------------- the table


def test_row_1_the_kill_switch_beats_everything() -> None:
    plan = plan_of(**EVERYTHING)
    state = RouteState(killed=True, guard_tripped=True, percent_override=1.0)
    assert decide(plan, req(FORCE_V2), state, never) == Decision("legacy", "killed")
    assert decide(plan, req(FORCE_V2), state, never) is plan.killed  # prebuilt


def test_row_2_a_tripped_guard_beats_overrides_and_canary() -> None:
    plan = plan_of(**EVERYTHING)
    state = RouteState(guard_tripped=True, guard_reason="error rate", percent_override=1.0)
    assert decide(plan, req(FORCE_V2), state, never) == Decision("legacy", "guard")


def test_row_3_an_override_beats_the_canary() -> None:
    plan = plan_of(**EVERYTHING)
    d = decide(plan, req(FORCE_V2), RouteState(percent_override=1.0), never)
    assert d == Decision("v2", "override")
    assert d is plan.overrides.decisions["v2"] if plan.overrides else False


def test_row_4_the_canary_beats_the_route_target() -> None:
    plan = plan_of(**EVERYTHING)
    d = decide(plan, req({"X-User": "u1"}), RouteState(), never)
    assert d == Decision("billing", "canary", None)  # 100%: no hashing needed


def test_row_5_otherwise_the_route_target() -> None:
    plan = plan_of(**EVERYTHING)
    assert decide(plan, req({"X-User": "u1"}), RouteState(percent_override=0.0), never) == (
        Decision("legacy", "primary")
    )
    assert decide(plan_of(), req(), RouteState(), never) == Decision("legacy", "primary")


# ---------------------------------------------------------------------------- primary


@pytest.mark.parametrize(
    ("fields", "killed_to"),
    [
        ({"to": "billing"}, "legacy"),  # migrated: step back to legacy
        ({"to": "billing", "fallback": Fallback(to="other")}, "other"),
        ({"to": "billing", "canary": Canary(to="v2", ratio=0.5)}, "billing"),
        ({"to": "legacy", "canary": Canary(to="v2", ratio=0.5)}, "legacy"),
    ],
)
def test_kill_and_guard_go_to_the_primary(fields: dict[str, object], killed_to: str) -> None:
    plan = plan_of(**fields)
    assert plan.primary == killed_to
    assert decide(plan, req(), RouteState(killed=True), never) == Decision(killed_to, "killed")
    assert decide(plan, req(), RouteState(guard_tripped=True), never) == Decision(
        killed_to, "guard"
    )


def test_a_plain_route_is_a_prebuilt_decision() -> None:
    plan = plan_of(to="billing")
    assert plan.simple
    first = decide(plan, req(), RouteState(), never)
    assert first is plan.default
    assert first == Decision("billing", "primary")
    assert decide(plan, req(), RouteState(), never) is first
    assert not plan_of(canary=Canary(to="billing", ratio=0.1)).simple
    assert not plan_of(overrides=Overrides()).simple


def test_a_percent_override_on_a_route_without_canary_is_ignored() -> None:
    plan = plan_of(to="billing", overrides=Overrides(allow=("billing",)))
    assert decide(plan, req(), RouteState(percent_override=1.0), never) is plan.default


# ---------------------------------------------------------------------------- overrides


OVERRIDABLE = {
    "canary": Canary(to="billing", ratio=0.0),
    "overrides": Overrides(allow=("billing", "legacy"), networks=("10.0.0.0/8", "fd00::/8")),
}


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (req({"X-Strangler-Backend": "billing"}, remote="10.1.2.3"), "billing"),
        (req({"x-strangler-backend": " billing "}, remote="10.1.2.3"), "billing"),
        (req(cookies={"strangler_backend": "billing"}, remote="10.1.2.3"), "billing"),
        (req({"X-Strangler-Backend": "billing"}, remote="::ffff:10.0.0.1"), "billing"),
        (req({"X-Strangler-Backend": "billing"}, remote="fd00::1"), "billing"),
        # the header wins over the cookie
        (
            req(
                {"X-Strangler-Backend": "legacy"},
                {"strangler_backend": "billing"},
                remote="10.0.0.1",
            ),
            "legacy",
        ),
    ],
)
def test_an_override_from_an_allowed_network(request_: Req, expected: str) -> None:
    assert decide(plan_of(**OVERRIDABLE), request_, RouteState(), never) == Decision(
        expected, "override"
    )


@pytest.mark.parametrize(
    "request_",
    [
        req({"X-Strangler-Backend": "billing"}, remote="203.0.113.9"),  # not an allowed network
        req({"X-Strangler-Backend": "billing"}, remote=None),
        req({"X-Strangler-Backend": "billing"}, remote="not-an-ip"),
        req({"X-Strangler-Backend": "v2"}, remote="203.0.113.9"),  # mistaken, not allowed in
        req({"X-Other": "billing"}, remote="10.0.0.1"),
        req(cookies={"strangler_backend": "v2"}, remote="10.0.0.1"),  # meant for another route
        req(query={"strangler_backend": "billing"}, remote="10.0.0.1"),  # no query overrides
    ],
)
def test_an_override_that_does_not_count_falls_through(request_: Req) -> None:
    plan = plan_of(**OVERRIDABLE)
    assert decide(plan, request_, RouteState(), never) is plan.default


@pytest.mark.parametrize(
    ("request_", "why"),
    [
        (
            req({"X-Strangler-Backend": "v2"}, remote="10.0.0.1"),
            "header X-Strangler-Backend: 'v2' is not an upstream this route allows "
            "(billing, legacy)",
        ),
        (
            req({"X-Strangler-Backend": "Billing"}, remote="10.0.0.1"),  # names are exact
            "header X-Strangler-Backend: 'Billing' is not an upstream this route allows "
            "(billing, legacy)",
        ),
        (
            req(cookies={"strangler_backend": "biling"}, remote="10.0.0.1"),
            "cookie strangler_backend: 'biling' is not an upstream this route allows "
            "(billing, legacy)",
        ),
    ],
)
def test_a_mistaken_override_from_an_allowed_network_is_rejected(request_: Req, why: str) -> None:
    plan = plan_of(**OVERRIDABLE)
    assert decide(plan, request_, RouteState(), never) == Decision("legacy", "rejected")
    assert plan.overrides is not None
    assert plan.overrides.rejection(request_) == why


def test_a_mistaken_header_is_rejected_even_with_an_allowed_cookie() -> None:
    # The header is read first; if it is present it decides (even when not allowed).
    plan = plan_of(overrides=Overrides(allow=("billing",)))
    both = req({"X-Strangler-Backend": "nope"}, {"strangler_backend": "billing"}, remote="::1")
    assert decide(plan, both, RouteState(), never).reason == "rejected"


@pytest.mark.parametrize(
    ("remote", "reason"),
    [
        ("127.0.0.1", "rejected"),
        ("192.168.1.9", "rejected"),
        ("::ffff:172.16.0.1", "rejected"),
        ("203.0.113.9", "primary"),  # public: ignored, as before; no upstream names shown
        (None, "primary"),
    ],
)
def test_without_networks_only_private_clients_hear_of_a_mistake(
    remote: str | None, reason: str
) -> None:
    plan = plan_of(overrides=Overrides(allow=("billing",)))
    mistaken = req({"X-Strangler-Backend": "biling"}, remote=remote)
    assert decide(plan, mistaken, RouteState(), never).reason == reason
    valid = req({"X-Strangler-Backend": "billing"}, remote=remote)
    assert decide(plan, valid, RouteState(), never).reason == "override"  # anyone may override


def test_override_header_or_cookie_turned_off() -> None:
    plan = plan_of(overrides=Overrides(header=None, allow=("billing",)))
    assert decide(plan, req({"X-Strangler-Backend": "billing"}), RouteState(), never).reason == (
        "primary"
    )
    assert decide(plan, req(cookies={"strangler_backend": "billing"}), RouteState(), never) == (
        Decision("billing", "override")
    )
    plan = plan_of(overrides=Overrides(header="X-Pick", cookie=None, allow=("billing",)))
    assert decide(plan, req({"X-Pick": "billing"}), RouteState(), never).reason == "override"
    assert decide(plan, req(cookies={"strangler_backend": "billing"}), RouteState(), never) == (
        Decision("legacy", "primary")
    )


def test_override_allow_defaults_to_the_route_sides() -> None:
    # A route built in code (validation has not filled allow): to, canary.to, primary.
    plan = plan_of(to="billing", canary=Canary(to="v2", ratio=0.0), overrides=Overrides())
    assert plan.overrides is not None
    assert set(plan.overrides.decisions) == {"billing", "v2"}
    # a migrated route may force its primary (legacy) too, or fallback.to when given
    plan = plan_of(to="billing", overrides=Overrides())
    assert plan.overrides is not None
    assert set(plan.overrides.decisions) == {"billing", "legacy"}
    plan = plan_of(to="billing", fallback=Fallback(to="v2"), overrides=Overrides())
    assert plan.overrides is not None
    assert set(plan.overrides.decisions) == {"billing", "v2"}


# ---------------------------------------------------------------------------- canary


STICKY = Canary(to="billing", ratio=0.3, sticky=Sticky(kind="header", name="X-User"))


def test_a_sticky_canary_uses_the_key_bucket() -> None:
    plan = plan_of(canary=STICKY)
    seen = {"canary": 0, "primary": 0}
    for n in range(2000):
        key = f"user-{n}"
        b = bucket(key, "invoices")
        d = decide(plan, req({"X-User": key}), RouteState(), never)
        assert d.cohort == b
        assert d == (
            Decision("billing", "canary", b) if b < 3000 else Decision("legacy", "primary", b)
        )
        seen[d.reason] += 1
    assert 500 < seen["canary"] < 700  # 600 expected


def test_the_same_user_always_gets_the_same_side() -> None:
    plan = plan_of(canary=STICKY)
    for n in range(200):
        r = req({"X-User": f"u{n}"})
        first = decide(plan, r, RouteState(), never)
        assert all(decide(plan, r, RouteState(), never) == first for _ in range(3))


@pytest.mark.parametrize(
    ("sticky", "request_", "key"),
    [
        (Sticky(kind="header", name="X-User"), req({"x-user": "k1"}), "k1"),
        (Sticky(kind="cookie", name="uid"), req(cookies={"uid": "k2"}), "k2"),
        (Sticky(kind="query", name="user"), req(query={"user": "k3"}), "k3"),
        (Sticky(kind="client_ip"), req(remote="198.51.100.4"), "198.51.100.4"),
    ],
)
def test_sticky_key_kinds(sticky: Sticky, request_: Req, key: str) -> None:
    plan = plan_of(canary=Canary(to="billing", ratio=0.5, sticky=sticky))
    assert decide(plan, request_, RouteState(), never).cohort == bucket(key, "invoices")


@pytest.mark.parametrize(
    "request_",
    [req(), req({"X-User": ""}), req(cookies={"X-User": "cookie-is-not-the-header"})],
)
def test_without_the_sticky_key_a_coin_toss_per_request(request_: Req) -> None:
    plan = plan_of(canary=STICKY)
    assert decide(plan, request_, RouteState(), always(0.2999)) == Decision("billing", "canary")
    assert decide(plan, request_, RouteState(), always(0.3)) == Decision("legacy", "primary")


def test_a_random_canary_calls_rand_once_per_request() -> None:
    plan = plan_of(canary=Canary(to="billing", ratio=0.1))
    calls = []
    rng = random.Random(7)

    def rand() -> float:
        calls.append(1)
        return rng.random()

    picks = [decide(plan, req(), RouteState(), rand) for _ in range(20_000)]
    assert len(calls) == 20_000
    share = sum(d.reason == "canary" for d in picks) / len(picks)
    assert 0.09 < share < 0.11
    assert all(d.cohort is None for d in picks)


def test_a_percent_override_replaces_the_share() -> None:
    plan = plan_of(canary=STICKY)
    keys = [f"user-{n}" for n in range(3000)]
    share = {
        ratio: sum(
            decide(plan, req({"X-User": k}), RouteState(percent_override=ratio), never).reason
            == "canary"
            for k in keys
        )
        for ratio in (0.0, 0.05, 0.3, 0.8, 1.0)
    }
    assert share[0.0] == 0
    assert share[1.0] == 3000
    assert share[0.05] < share[0.3] < share[0.8]
    # the config's 30% and an override to 30% place every user alike
    for k in keys[:300]:
        r = req({"X-User": k})
        assert decide(plan, r, RouteState(), never) == decide(
            plan, r, RouteState(percent_override=0.3), never
        )


def test_raising_the_share_only_adds_users() -> None:
    plan = plan_of(canary=STICKY)
    keys = [f"user-{n}" for n in range(3000)]

    def inside(ratio: float) -> set[str]:
        state = RouteState(percent_override=ratio)
        return {
            k for k in keys if decide(plan, req({"X-User": k}), state, never).reason == "canary"
        }

    assert inside(0.1) < inside(0.2) < inside(0.5)


def test_a_group_shares_cohorts_across_routes() -> None:
    sticky = Sticky(kind="cookie", name="uid")
    a = compile_release(
        route(name="a", canary=Canary(to="billing", ratio=0.2, sticky=sticky, group="g")),
        UPSTREAMS,
    )
    b = compile_release(
        route(name="b", canary=Canary(to="v2", ratio=0.2, sticky=sticky, group="g")), UPSTREAMS
    )
    lone = compile_release(
        route(name="c", canary=Canary(to="v2", ratio=0.2, sticky=sticky)), UPSTREAMS
    )
    differ = 0
    for n in range(2000):
        r = req(cookies={"uid": f"u{n}"})
        da, db, dc = (decide(p, r, RouteState(), never) for p in (a, b, lone))
        assert da.cohort == db.cohort == bucket(f"u{n}", "g")
        assert da.reason == db.reason
        assert dc.cohort == bucket(f"u{n}", "c")
        differ += da.reason != dc.reason
    assert differ > 100  # without the group, cohorts are independent


def test_a_zero_percent_canary_never_hashes() -> None:
    plan = plan_of(canary=Canary(to="billing", ratio=0.0, sticky=Sticky(kind="header", name="X")))
    assert decide(plan, req({"X": "u"}), RouteState(), never) is plan.default


# ---------------------------------------------------------------------------- plans


def test_plans_from_a_loaded_config() -> None:
    config = load_config_text(
        "upstreams: {legacy: http://l:1, billing: http://b:1, v2: http://v:1}\n"
        "routes:\n"
        "  - {name: a, owner: t, match: {path: /a}, to: legacy,"
        " canary: {to: billing, percent: 0.1%, sticky: 'header:X-User'}, overrides: true,"
        " slo: {error_rate: 1%}}\n"
        "  - {name: b, owner: t, match: {path: /b}, to: billing, fallback: false}\n"
    )
    a, b = (compile_release(r, config.upstreams) for r in config.routes)
    assert (a.to, a.primary, a.new, a.observed) == ("legacy", "legacy", "billing", "billing")
    assert a.canary is not None
    assert (a.canary.cutoff, a.canary.cohorts.salt) == (10, "a")
    assert a.upstreams == {"legacy", "billing"}
    assert a.slo is not None
    assert (b.new, b.primary, b.fallback, b.observed) == ("billing", "legacy", None, None)


def test_compile_rejects_unknown_upstreams() -> None:
    with pytest.raises(ValueError, match="route 'invoices' names unknown upstreams: nope"):
        plan_of(canary=Canary(to="nope", ratio=0.1))
    with pytest.raises(ValueError, match="unknown upstreams: gone"):
        plan_of(overrides=Overrides(allow=("gone",)))


def test_fixed_plan_for_unrouted_traffic() -> None:
    plan = fixed_plan(UNROUTED)
    assert decide(plan, req(), RouteState(), never) is plan.default
    assert plan.default == Decision("legacy", "primary")
    assert decide(plan, req(), RouteState(killed=True), never) == Decision("legacy", "killed")
    assert (plan.fallback, plan.observed, plan.upstreams) == (None, None, frozenset({"legacy"}))


def test_reasons_are_a_fixed_set() -> None:
    assert REASONS == (
        "primary", "canary", "override", "killed", "guard", "fallback", "rejected"
    )  # fmt: skip


# ---------------------------------------------------------------------------- fallback


def test_fallback_goes_from_the_new_side_to_the_primary() -> None:
    plan = plan_of(canary=Canary(to="billing", ratio=0.5))
    policy = plan.fallback
    assert policy is not None
    assert (policy.new, policy.to, policy.buffer_bytes) == ("billing", "legacy", 65536)
    assert policy.decision == Decision("legacy", "fallback")
    assert policy.applies(Decision("billing", "canary", 12), "GET")
    assert policy.applies(Decision("billing", "canary"), "PUT")
    assert not policy.applies(Decision("billing", "canary"), "POST")  # not idempotent
    assert not policy.applies(Decision("billing", "override"), "GET")  # forced: show it
    assert not policy.applies(Decision("legacy", "primary"), "GET")  # already the primary
    for failure in ("refused", "reset", "timeout", "protocol", FAILURE_5XX):
        assert policy.triggers(failure)


def test_fallback_on_a_migrated_route() -> None:
    policy = plan_of(
        to="billing", fallback=Fallback(methods=frozenset({"GET"}), on=frozenset({"refused"}))
    ).fallback
    assert policy is not None
    assert (policy.new, policy.to) == ("billing", "legacy")
    assert policy.applies(Decision("billing", "primary"), "GET")
    assert not policy.applies(Decision("billing", "primary"), "HEAD")
    assert policy.triggers("refused")
    assert not policy.triggers("timeout")
    assert not policy.triggers(FAILURE_5XX)
    named = plan_of(to="billing", fallback=Fallback(to="other")).fallback
    assert named is not None
    assert named.decision == Decision("other", "fallback")


@pytest.mark.parametrize(
    "fields",
    [
        {"to": "legacy"},  # no new side
        {"to": "billing", "fallback": Fallback(enabled=False)},
        {
            "to": "legacy",
            "canary": Canary(to="billing", ratio=0.1),
            "fallback": Fallback(enabled=False),
        },
    ],
)
def test_no_fallback(fields: dict[str, object]) -> None:
    assert plan_of(**fields).fallback is None


def test_the_guard_observes_the_new_side_only_with_an_slo() -> None:
    assert plan_of(to="billing", slo=Slo(error_rate=0.01)).observed == "billing"
    assert plan_of(canary=Canary(to="v2", ratio=0.1), slo=Slo(latency_p99=1.0)).observed == "v2"
    assert plan_of(to="billing").observed is None
