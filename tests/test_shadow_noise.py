"""``NoiseLearner``: a path differing in >= samples of >= min_observations pairs is noisy."""

from __future__ import annotations

import doctest
import json

from multidict import CIMultiDict

import strangler.shadow.noise as noise_module
from strangler.config.shadow_model import CompareRules, JsonPath, NoiseSpec
from strangler.config.validate_shadow import parse_json_path
from strangler.shadow.compare import Observed, Rules, compare
from strangler.shadow.noise import NoiseLearner
from strangler.shadow.samples import RouteResults

AT = parse_json_path("$.generated_at")
ID = parse_json_path("$.items[*].id")
PRICE = parse_json_path("$.price")


def spec(samples: int = 2, observations: int = 5) -> NoiseSpec:
    return NoiseSpec(enabled=True, samples=samples, min_observations=observations)


def test_doctests() -> None:
    assert doctest.testmod(noise_module).failed == 0


def test_nothing_is_noisy_before_min_observations() -> None:
    n = NoiseLearner(spec(samples=2, observations=5))
    for _ in range(4):
        assert n.observe([AT]) is False
    assert n.noisy == frozenset()
    assert n.as_dict()["learning"] is True
    assert n.observe([]) is True  # the 5th observation: judged now
    assert n.noisy == {AT}
    assert n.as_dict()["learning"] is False


def test_n_of_m() -> None:
    n = NoiseLearner(spec(samples=3, observations=4))
    n.observe([AT, PRICE])
    n.observe([AT])
    n.observe([])
    n.observe([PRICE])  # 4 observations: AT 2, PRICE 2 -> neither reaches 3
    assert n.noisy == frozenset()
    version = n.version
    assert n.observe([AT]) is True  # AT reaches 3
    assert n.noisy == {AT}
    assert n.version == version + 1
    assert n.observe([AT]) is False  # already noisy: no change
    d = n.as_dict()
    assert d["observations"] == 6
    assert d["noisy_paths"] == [{"path": "$.generated_at", "differed": 4}]


def test_bounded_number_of_paths() -> None:
    n = NoiseLearner(spec(samples=1, observations=1), max_paths=3)
    n.observe([JsonPath((f"k{i}",)) for i in range(10)])
    assert len(n.counts) == 3
    assert n.overflow == 7
    assert len(n.noisy) == 3


def test_configure_keeps_counts_and_rejudges() -> None:
    n = NoiseLearner(spec(samples=2, observations=2))
    n.observe([AT])
    n.observe([])
    assert n.noisy == frozenset()
    n.configure(spec(samples=1, observations=2))
    assert n.noisy == {AT}
    n.configure(spec(samples=1, observations=10))
    assert n.noisy == frozenset()


def obs(doc: dict[str, object]) -> Observed:
    return Observed(
        200, CIMultiDict({"Content-Type": "application/json"}), json.dumps(doc).encode()
    )


def test_learned_noise_is_excluded_from_parity_rules() -> None:
    """Two legacy answers that differ in generated_at and item ids teach the route to
    ignore those paths; a real difference (price) still shows."""
    base = Rules.from_spec(CompareRules())
    r = RouteResults("r", None, samples=5, noise=spec(samples=2, observations=3))
    for i in range(3):
        a = obs({"generated_at": i, "items": [{"id": i}, {"id": i + 1}], "price": 1})
        b = obs({"generated_at": i + 100, "items": [{"id": i + 7}, {"id": i + 8}], "price": 1})
        r.noise.observe(compare(a, b, base).patterns)
    assert r.noise.noisy == {AT, ID}
    rules = r.rules(base)
    assert rules is r.rules(base)  # compiled once per change
    primary = obs({"generated_at": 1, "items": [{"id": 1}], "price": 1})
    assert compare(primary, obs({"generated_at": 2, "items": [{"id": 9}], "price": 1}), rules).match
    v = compare(primary, obs({"generated_at": 2, "items": [{"id": 9}], "price": 2}), rules)
    assert [d.where for d in v.differences] == ["$.price"]
