"""Router micro-benchmark: ns per ``Router.match`` for 10, 100 and 1,000 routes.

Not a test. Run it with ``python tests/bench/bench_router.py`` and read the table:
the router's column should stay roughly flat as the route count grows, while the
naive linear first-match scan (the same routes, checked one by one in order) grows
with it.

The routes are a mix like a real migration config: exact paths, templates with
``int`` / ``uuid`` / ``path`` parameters, subtree prefixes, method lists on some,
header, query or host conditions on a few. Each request kind is a set of distinct
requests spread over the whole declaration order, replayed in a loop.
"""

from __future__ import annotations

import argparse
import functools
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from multidict import CIMultiDict

from strangler.config.model import MatchSpec, ValueMatch
from strangler.router import RequestLike, Router, parse_template
from strangler.router.matcher import normalize_host, prefix_segments

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
SIZES = (10, 100, 1000)


@dataclass(frozen=True)
class Req:
    path: str
    method: str = "GET"
    host: str = "shop.example.com:8080"
    headers: Mapping[str, str] = field(
        default_factory=lambda: CIMultiDict({"User-Agent": "bench", "X-Beta": "1"})
    )
    query: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)


def build_routes(n: int, rng: random.Random) -> tuple[list[MatchSpec], dict[str, list[Req]]]:
    """``n`` route specs and, per request kind, requests that exercise them."""
    specs: list[MatchSpec] = []
    hits: dict[str, list[Req]] = {"exact": [], "template": [], "prefix": [], "conditions": []}
    for i in range(n):
        team, version = f"team{i}", f"v{i % 3 + 1}"
        roll = rng.random()
        methods = frozenset(rng.choice([["GET"], ["GET", "HEAD"], ["POST"]])) if i % 3 else None
        method = "GET" if methods is None or "GET" in methods else "POST"
        if roll < 0.35:
            path = f"/api/{version}/{team}/status"
            specs.append(MatchSpec(path=path, methods=methods))
            hits["exact"].append(Req(path, method))
        elif roll < 0.55:
            specs.append(MatchSpec(path=f"/api/{version}/{team}/items/{{id:int}}", methods=methods))
            hits["template"].append(Req(f"/api/{version}/{team}/items/42", method))
        elif roll < 0.65:
            specs.append(MatchSpec(path=f"/api/{version}/{team}/orders/{{oid:uuid}}/lines"))
            hits["template"].append(Req(f"/api/{version}/{team}/orders/{UUID}/lines"))
        elif roll < 0.72:
            specs.append(MatchSpec(path=f"/files/{team}/{{rest:path}}", methods=methods))
            hits["template"].append(Req(f"/files/{team}/a/b/c.pdf", method))
        elif roll < 0.9:
            specs.append(MatchSpec(path_prefix=f"/{team}/app", methods=methods))
            hits["prefix"].append(Req(f"/{team}/app/page/7", method))
        else:
            path, pick = f"/api/{version}/{team}/beta", rng.random()
            if pick < 0.5:
                beta = MappingProxyType({"X-Beta": ValueMatch(value="1")})
                specs.append(MatchSpec(path=path, headers=beta))
            elif pick < 0.8:
                specs.append(MatchSpec(path=path, query=MappingProxyType({"beta": ValueMatch()})))
            else:
                specs.append(MatchSpec(path=path, host="*.example.com"))
            hits["conditions"].append(Req(path, query={"beta": "1"}))
    return specs, hits


def misses(rng: random.Random) -> dict[str, list[Req]]:
    """Requests no route matches: legacy traffic, and near misses under route prefixes."""
    legacy = [Req(f"/legacy/page/{rng.randrange(10**6)}.php") for _ in range(64)]
    near = [Req(f"/api/v{rng.randint(1, 3)}/team{rng.randrange(5)}/items/x{k}") for k in range(64)]
    return {"miss: legacy": legacy, "miss: near": near}


# --- the naive baseline: the same routes, tried one by one in order -------------------


Check = Callable[[RequestLike], "Mapping[str, str] | None"]


def linear_check(spec: MatchSpec) -> Check:
    template = parse_template(spec.path) if spec.path is not None else None
    prefix = prefix_segments(spec.path_prefix) if spec.path_prefix is not None else None
    joined = "/" + "/".join(prefix) if prefix else None
    host = None if spec.host is None else normalize_host(spec.host)

    def check(req: RequestLike) -> Mapping[str, str] | None:
        if spec.methods is not None and req.method not in spec.methods:
            return None
        params: Mapping[str, str] | None = {}
        if template is not None:
            params = template.match(req.path)
        elif joined is not None and not (req.path == joined or req.path.startswith(joined + "/")):
            return None
        if params is None:
            return None
        if host is not None:
            have = normalize_host(req.host)
            if host.startswith("*."):
                if not have.endswith(host[1:]):
                    return None
            elif have != host:
                return None
        for conds, got in (
            (spec.headers, req.headers),
            (spec.query, req.query),
            (spec.cookies, req.cookies),
        ):
            for name, vm in conds.items():
                value = got.get(name)
                if (value is None) == vm.present or (vm.value is not None and value != vm.value):
                    return None
        return params

    return check


def linear_match(checks: Sequence[Check], req: RequestLike) -> int:
    for i, check in enumerate(checks):
        if check(req) is not None:
            return i
    return -1


# --- timing ---------------------------------------------------------------------------


def ns_per_call(call: Callable[[RequestLike], object], reqs: Sequence[Req], budget: float) -> float:
    """Best mean ns per call over 20 short runs that replay ``reqs`` (~``budget`` s in all).

    The minimum, not the mean: on a shared machine other work only ever adds time.
    """
    runs = 20
    rounds = 1
    while True:  # calibrate one run to about budget / runs
        start = time.perf_counter_ns()
        for _ in range(rounds):
            for req in reqs:
                call(req)
        if time.perf_counter_ns() - start > budget * 1e9 / runs or rounds > 1 << 20:
            break
        rounds *= 2
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter_ns()
        for _ in range(rounds):
            for req in reqs:
                call(req)
        best = min(best, (time.perf_counter_ns() - start) / (rounds * len(reqs)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per measurement")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rows: list[tuple[int, str, int, float, float]] = []
    for n in SIZES:
        rng = random.Random(args.seed)
        specs, hits = build_routes(n, rng)
        kinds = {**hits, **misses(rng)}
        router = Router.compile([(s, i) for i, s in enumerate(specs)], default=-1)
        checks = [linear_check(s) for s in specs]
        for kind, reqs in kinds.items():
            if not reqs:
                continue
            reqs = (reqs * (64 // len(reqs) + 1))[:64]
            for req in reqs:  # both agree, or the numbers mean nothing
                assert router.match(req)[0] == linear_match(checks, req), (kind, req)
            fast = ns_per_call(router.match, reqs, args.budget)
            slow = ns_per_call(functools.partial(linear_match, checks), reqs, args.budget)
            rows.append((n, kind, len({(r.method, r.path) for r in reqs}), fast, slow))

    print(f"{'routes':>6}  {'request':<14} {'distinct':>8}  {'router ns':>10}  {'linear ns':>10}")
    for n, kind, distinct, fast, slow in rows:
        print(f"{n:>6}  {kind:<14} {distinct:>8}  {fast:>10,.0f}  {slow:>10,.0f}")


if __name__ == "__main__":
    main()
