"""``NoiseLearner``: a path is noisy while it differed in >= samples and >= share of the
>= min_observations pairs of the last window; a fake clock moves the window."""

from __future__ import annotations

import doctest
import json

from multidict import CIMultiDict

import strangler.shadow.noise as noise_module
from strangler.config.shadow_model import CompareRules, JsonPath, NoiseSpec, parse_json_path
from strangler.shadow.compare import Observed, Rules, compare
from strangler.shadow.noise import NoiseLearner, learnable
from strangler.shadow.samples import RouteResults

AT = parse_json_path("$.generated_at")
ID = parse_json_path("$.items[*].id")
PRICE = parse_json_path("$.price")


class Clock:
    """A fake monotonic clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spec(
    samples: int = 2, observations: int = 5, share: float = 0.5, window: float = 600.0
) -> NoiseSpec:
    return NoiseSpec(
        enabled=True, samples=samples, min_observations=observations, share=share, window=window
    )


def test_doctests() -> None:
    assert doctest.testmod(noise_module).failed == 0


def test_nothing_is_noisy_before_min_observations() -> None:
    n = NoiseLearner(spec(samples=2, observations=5), clock=Clock())
    for _ in range(4):
        assert n.observe([AT]) is False
    assert n.noisy == frozenset()
    assert n.as_dict()["learning"] is True
    assert n.observe([]) is True  # the 5th observation: judged now
    assert n.noisy == {AT}
    assert n.as_dict()["learning"] is False


def test_samples_and_share_both_count() -> None:
    n = NoiseLearner(spec(samples=3, observations=4, share=0.5), clock=Clock())
    n.observe([AT, PRICE])
    n.observe([AT])
    n.observe([])
    n.observe([PRICE])  # 4 observations: AT 2, PRICE 2 -> neither reaches 3
    assert n.noisy == frozenset()
    version = n.version
    assert n.observe([AT]) is True  # AT: 3 of 5
    assert n.noisy == {AT}
    assert n.version == version + 1
    assert n.observe([AT]) is False  # already noisy: no change
    d = n.as_dict()
    assert d["observations"] == 6
    assert d["noisy_paths"] == [{"path": "$.generated_at", "differed": 4, "share": 4 / 6}]
    for _ in range(3):  # AT stops flipping: 4 of 9 is under half
        n.observe([])
    assert n.noisy == frozenset()


def test_a_rare_race_never_becomes_noise() -> None:
    """A record that a user's write changed between the two primary reads, now and
    then, is not noise: it never reaches the share, however long it runs."""
    n = NoiseLearner(spec(samples=2, observations=20, share=0.5), clock=Clock())
    state = parse_json_path("$[2].state")
    for i in range(500):
        n.observe([state] if i % 50 == 0 else [])
    assert n.noisy == frozenset()


def test_noise_decays_when_a_path_stops_flipping() -> None:
    clock = Clock()
    n = NoiseLearner(spec(samples=2, observations=3, window=60.0), clock=clock)
    for _ in range(5):
        n.observe([AT])
        clock.now += 1
    assert n.noisy == {AT}
    # The field stops flipping (a fix shipped); traffic goes on.
    for _ in range(30):
        clock.now += 2
        n.observe([])
    assert n.noisy == frozenset()  # its flips have left the 60 s window
    assert n.as_dict()["noisy_paths"] == []
    # With no traffic at all, the window empties out: learning again.
    clock.now += 61
    assert n.observations == 0
    assert n.as_dict()["learning"] is True


def test_decay_without_any_observation() -> None:
    """The set of noisy paths is read fresh: an idle route forgets its noise too."""
    clock = Clock()
    n = NoiseLearner(spec(samples=1, observations=1, window=60.0), clock=clock)
    n.observe([AT])
    assert n.noisy == {AT}
    version = n.version
    clock.now += 50  # within the window (it moves on a slot, window / 10, at a time)
    assert n.noisy == {AT}
    clock.now += 11  # past it
    assert n.noisy == frozenset()
    assert n.version == version + 1


def test_whole_elements_and_the_root_are_never_learned() -> None:
    """An element added or removed (``$[5]``) flips often on a list that users write
    to; learning it would blind the comparison of the whole array."""
    n = NoiseLearner(spec(samples=1, observations=1), clock=Clock())
    element = parse_json_path("$[5]")
    leaf = parse_json_path("$[5].updated_at")
    n.observe([element, JsonPath(()), leaf, ID])  # ID has a wildcard: never from compare
    assert n.noisy == {leaf}
    assert not learnable(element)
    assert learnable(leaf)


def test_bounded_number_of_paths() -> None:
    n = NoiseLearner(spec(samples=1, observations=1), max_paths=3, clock=Clock())
    n.observe([JsonPath((f"k{i}",)) for i in range(10)])
    assert len(n.totals) == 3
    assert n.overflow == 7
    assert len(n.noisy) == 3


def test_configure_keeps_counts_and_rejudges() -> None:
    n = NoiseLearner(spec(samples=2, observations=2), clock=Clock())
    n.observe([AT])
    n.observe([])
    assert n.noisy == frozenset()
    n.configure(spec(samples=1, observations=2))
    assert n.noisy == {AT}
    n.configure(spec(samples=1, observations=10))
    assert n.noisy == frozenset()
    n.configure(spec(samples=1, observations=1, window=30.0))  # a new window: start over
    assert n.observations == 0


def test_as_dict_says_why_each_path_is_ignored() -> None:
    n = NoiseLearner(spec(samples=1, observations=1, window=60.0), clock=Clock())
    n.configured = (PRICE,)
    n.observe([AT])
    assert n.as_dict()["ignored"] == [
        {"path": "$.price", "why": "config: compare.ignore"},
        {
            "path": "$.generated_at",
            "why": "noise: the primary's own two answers differed in 1 of 1 pairs in the last 60s",
        },
    ]


def obs(doc: dict[str, object]) -> Observed:
    return Observed(
        200, CIMultiDict({"Content-Type": "application/json"}), json.dumps(doc).encode()
    )


def test_learned_noise_is_excluded_from_parity_rules() -> None:
    """Two legacy answers that differ in generated_at and item ids teach the route to
    ignore those paths (each index on its own); a real difference (price) still shows."""
    base = Rules.from_spec(CompareRules())
    r = RouteResults("r", None, samples=5, noise=spec(samples=2, observations=3))
    for i in range(3):
        a = obs({"generated_at": i, "items": [{"id": i}, {"id": i + 1}], "price": 1})
        b = obs({"generated_at": i + 100, "items": [{"id": i + 7}, {"id": i + 8}], "price": 1})
        r.noise.observe(compare(a, b, base).paths)
    first, second = parse_json_path("$.items[0].id"), parse_json_path("$.items[1].id")
    assert r.noise.noisy == {AT, first, second}
    rules = r.rules(base)
    assert rules is r.rules(base)  # compiled once per change
    primary = obs({"generated_at": 1, "items": [{"id": 1}], "price": 1})
    assert compare(primary, obs({"generated_at": 2, "items": [{"id": 9}], "price": 1}), rules).match
    v = compare(primary, obs({"generated_at": 2, "items": [{"id": 9}], "price": 2}), rules)
    assert [d.where for d in v.differences] == ["$.price"]
