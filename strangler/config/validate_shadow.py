"""A route's ``shadow:`` node to a ``ShadowSpec``, problem by problem.

``read_shadow`` is called by the route reader for a route that has a ``shadow`` key.
It reports, with file:line and a hint: unknown keys at every level (with the closest
valid key), a missing or unknown ``to`` upstream, a shadow to the upstream that
already answers the whole route, percentages and sizes that do not parse, counts
below their minimum, header names that are not tokens, JSON paths that do not parse
(``parse_json_path``), and paths listed twice. It returns ``None`` when anything was
wrong, so a route with a bad ``shadow`` is left out rather than half-built.

>>> from strangler.config.source import read_text
>>> root = read_text("shadow: {to: billing, percent: 5%, compare: {ignore: [$.at]}}", "r.yaml")
>>> node = root.files[0].root.get("shadow")
>>> w = Walker("r.yaml")
>>> spec = read_shadow(w, node, "route 'a'", upstreams={"legacy", "billing"}, own="legacy")
>>> spec.to, spec.ratio, [str(p) for p in spec.compare.ignore], w.problems
('billing', 0.05, ['$.at'], [])
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from typing import Final, TypeVar

from strangler.config import units
from strangler.config.shadow_model import (
    ANY,
    CompareRules,
    ConfirmSpec,
    JsonPath,
    NoiseSpec,
    ShadowSpec,
    Step,
)
from strangler.config.source import Map, Node, Scalar, Seq, describe
from strangler.config.values import BadValue
from strangler.config.walker import Walker, did_you_mean, join_hints

__all__ = [
    "COMPARE_KEYS",
    "CONFIRM_KEYS",
    "NOISE_KEYS",
    "SHADOW_KEYS",
    "parse_json_path",
    "read_shadow",
]

SHADOW_KEYS: Final = (
    "to", "percent", "writes", "max_body", "concurrency", "queue", "timeout", "compare",
)  # fmt: skip
COMPARE_KEYS: Final = (
    "status", "headers", "ignore", "float_tolerance", "unordered_arrays", "confirm", "noise",
)  # fmt: skip
CONFIRM_KEYS: Final = ("enabled", "max_share")
NOISE_KEYS: Final = ("enabled", "samples", "min_observations", "share", "window")

_PATH_HINT: Final = "write a JSON path like $.generated_at or $.items[*].id"
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_NAME_CHARS: Final = re.compile(r"[^.\[\]\s'\"]+")
_MAX_TIMEOUT: Final = 3600.0
_MAX_NOISE_WINDOW: Final = 86400.0

T = TypeVar("T")


def parse_json_path(text: str) -> JsonPath:
    """A JSON path in the subset strangler supports, or ``BadValue`` saying why not.

    ``$`` is the whole document; then ``.name``, ``['any key']`` (or double quotes),
    ``[3]`` (an array index) and the wildcards ``[*]`` / ``.*``.

    >>> parse_json_path("$.items[*].id").steps
    ('items', <Wildcard.ANY: '*'>, 'id')
    >>> parse_json_path("$['a.b'][0]").steps
    ('a.b', 0)
    >>> parse_json_path("items.id")
    Traceback (most recent call last):
    ...
    strangler.config.values.BadValue: JSON path 'items.id' must start with '$'
    """
    text = text.strip()
    if not text.startswith("$"):
        hint = f"did you mean '$.{text}'?" if text and text[0] not in ".[" else _PATH_HINT
        raise BadValue(f"JSON path {text!r} must start with '$'", hint)
    steps: list[Step] = []
    i, n = 1, len(text)
    while i < n:
        c = text[i]
        if c == ".":
            if text.startswith("..", i):
                raise BadValue(
                    f"JSON path {text!r}: recursive descent '..' is not supported",
                    "write every step, using [*] for any element: $.items[*].id",
                )
            i += 1
            if i < n and text[i] == "*":
                steps.append(ANY)
                i += 1
                continue
            m = _NAME_CHARS.match(text, i)
            if m is None:
                raise BadValue(
                    f"JSON path {text!r}: expected a name after '.' at position {i}",
                    "quote unusual keys: $['a key']",
                )
            steps.append(m.group())
            i = m.end()
        elif c == "[":
            close, step = _bracket(text, i)
            steps.append(step)
            i = close + 1
        else:
            raise BadValue(
                f"JSON path {text!r}: unexpected {c!r} at position {i}",
                "steps are .name, ['key'], [3] or [*]",
            )
    return JsonPath(tuple(steps))


def _bracket(text: str, start: int) -> tuple[int, Step]:
    """The step in ``[...]`` at ``start``: (index of ``]``, step)."""
    i = start + 1
    if i < len(text) and text[i] in "'\"":
        quote, i = text[i], i + 1
        out: list[str] = []
        while i < len(text) and text[i] != quote:
            if text[i] == "\\" and i + 1 < len(text):
                i += 1
            out.append(text[i])
            i += 1
        if i + 1 >= len(text) or text[i + 1] != "]":
            raise BadValue(f"JSON path {text!r}: unterminated quoted key at position {start}")
        return i + 1, "".join(out)
    close = text.find("]", i)
    if close < 0:
        raise BadValue(f"JSON path {text!r}: '[' at position {start} is never closed")
    inner = text[i:close].strip()
    if inner == "*":
        return close, ANY
    if inner.isascii() and inner.isdigit():
        return close, int(inner)
    if inner.startswith("-") and inner[1:].isdigit():
        raise BadValue(
            f"JSON path {text!r}: negative index [{inner}] is not supported",
            "use [*] to match every element",
        )
    raise BadValue(
        f"JSON path {text!r}: [{inner}] is not an index, [*] or a quoted key",
        f"quote a key: ['{inner}']",
    )


def read_shadow(
    w: Walker,
    node: Node,
    label: str,
    *,
    upstreams: Collection[str],
    own: str | None,
) -> ShadowSpec | None:
    """A route's ``shadow`` node (``label`` names the route in messages, like
    ``route 'invoices'``). ``upstreams``: every declared upstream name. ``own``: the
    upstream that answers all of the route's traffic (its ``to`` when it has no
    canary, else ``None``); shadowing to it would compare an upstream with itself."""
    what = f"{label} shadow"
    before = len(w.problems)
    if isinstance(node, Scalar) and isinstance(node.value, str):  # shadow: billing
        short = _target(w, node, what, upstreams, own)
        return None if short is None else ShadowSpec(to=short, at=node.at)
    if not isinstance(node, Map):
        w.report(
            node.at,
            f"{what} must be a mapping, got {describe(node)}",
            "for example shadow: {to: billing, percent: 10%}",
        )
        return None
    f = w.entries(node, SHADOW_KEYS, subject=what, where=f"in the shadow of {label}")
    to: str | None = None
    if "to" in f:
        to = _target(w, f["to"], what, upstreams, own)
    else:
        w.report(
            node.at,
            f"{what} is missing required key 'to'",
            "name the upstream that gets the copy, like to: billing",
        )
    spec = ShadowSpec(to="", at=node.at)
    ratio = spec.ratio
    if "percent" in f:
        ratio = _or(w.unit(f["percent"], f"{what}.percent", units.config_percent), ratio)
    writes = spec.writes
    if "writes" in f:
        writes = _or(w.boolean(f["writes"], f"{what}.writes"), writes)
    max_body = spec.max_body
    if "max_body" in f:
        max_body = _or(w.unit(f["max_body"], f"{what}.max_body", units.size), max_body)
    concurrency = spec.concurrency
    if "concurrency" in f:
        concurrency = _or(w.count(f["concurrency"], f"{what}.concurrency", minimum=1), concurrency)
    queue = spec.queue
    if "queue" in f:
        queue = _or(w.count(f["queue"], f"{what}.queue", minimum=0), queue)
    timeout = spec.timeout
    if "timeout" in f:
        timeout = _or(_timeout(w, f["timeout"], f"{what}.timeout"), timeout)
    compare = spec.compare
    if "compare" in f:
        compare = _or(_compare(w, f["compare"], what), compare)
    if len(w.problems) != before or to is None:
        return None
    return ShadowSpec(
        to=to,
        ratio=ratio,
        writes=writes,
        max_body=max_body,
        concurrency=concurrency,
        queue=queue,
        timeout=timeout,
        compare=compare,
        at=node.at,
    )


def _or(value: T | None, default: T) -> T:
    """``value`` unless the reader reported a problem (``None``): then ``default``, so
    the rest of the node is still checked."""
    return default if value is None else value


def _target(
    w: Walker, node: Node, what: str, upstreams: Collection[str], own: str | None
) -> str | None:
    to = w.string(node, f"{what}.to", hint="the name of an upstream, like 'billing'")
    if to is None:
        return None
    if to not in upstreams:
        known = sorted(upstreams)
        hint = join_hints(
            f"known upstreams: {', '.join(known)}" if known else "declare it under upstreams",
            did_you_mean(to, known),
        )
        w.report(node.at, f"{what} sends to unknown upstream {to!r}", hint)
        return None
    if to == own:
        w.report(
            node.at,
            f"{what}.to is {to!r}, the upstream that already answers this route",
            "shadow to the other side (the new service, or legacy for a migrated route); "
            "compare.noise learns what differs between two answers of one upstream",
        )
        return None
    return to


def _timeout(w: Walker, node: Node, what: str) -> float | None:
    seconds = w.unit(node, what, units.duration)
    if seconds is None:
        return None
    if not 0.0 < seconds <= _MAX_TIMEOUT:
        w.report(node.at, f"{what} must be more than 0s and at most 1h, got {seconds:g}s")
        return None
    return seconds


def _compare(w: Walker, node: Node, what: str) -> CompareRules | None:
    where = f"{what}.compare"
    if not isinstance(node, Map):
        w.report(
            node.at,
            f"{where} must be a mapping, got {describe(node)}",
            "for example compare: {ignore: [$.generated_at]}",
        )
        return None
    f = w.entries(node, COMPARE_KEYS, subject=where, where=f"in {where}")
    rules = CompareRules(at=node.at)
    status = rules.status
    if "status" in f:
        status = _or(w.boolean(f["status"], f"{where}.status"), status)
    headers = rules.headers
    if "headers" in f:
        headers = _or(_headers(w, f["headers"], f"{where}.headers"), headers)
    ignore = rules.ignore
    if "ignore" in f:
        ignore = _or(_paths(w, f["ignore"], f"{where}.ignore"), ignore)
    tolerance = rules.float_tolerance
    if "float_tolerance" in f:
        tolerance = _or(_tolerance(w, f["float_tolerance"], f"{where}.float_tolerance"), tolerance)
    unordered = rules.unordered_arrays
    if "unordered_arrays" in f:
        unordered = _or(_paths(w, f["unordered_arrays"], f"{where}.unordered_arrays"), unordered)
    confirm = rules.confirm
    if "confirm" in f:
        confirm = _or(_confirm(w, f["confirm"], f"{where}.confirm"), confirm)
    noise = rules.noise
    if "noise" in f:
        noise = _or(_noise(w, f["noise"], f"{where}.noise"), noise)
    return CompareRules(
        status=status,
        headers=headers,
        ignore=ignore,
        float_tolerance=tolerance,
        unordered_arrays=unordered,
        confirm=confirm,
        noise=noise,
        at=node.at,
    )


def _headers(w: Walker, node: Node, what: str) -> tuple[str, ...] | None:
    if not isinstance(node, Seq):
        w.report(
            node.at,
            f"{what} must be a list of header names, got {describe(node)}",
            "for example headers: [Content-Type, Cache-Control]; [] compares none",
        )
        return None
    out: list[str] = []
    seen: set[str] = set()
    ok = True
    for item in node.items:
        name = item.value if isinstance(item, Scalar) else None
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            w.report(item.at, f"{what}: {describe(item)} is not a header name")
            ok = False
        elif name.lower() in seen:
            w.report(item.at, f"{what} lists {name!r} twice", "header names are case-insensitive")
            ok = False
        else:
            seen.add(name.lower())
            out.append(name)
    return tuple(out) if ok else None


def _paths(w: Walker, node: Node, what: str) -> tuple[JsonPath, ...] | None:
    if not isinstance(node, Seq):
        w.report(node.at, f"{what} must be a list of JSON paths, got {describe(node)}", _PATH_HINT)
        return None
    out: list[JsonPath] = []
    ok = True
    for item in node.items:
        text = item.value if isinstance(item, Scalar) else None
        if not isinstance(text, str):
            w.report(item.at, f"{what}: expected a JSON path, got {describe(item)}", _PATH_HINT)
            ok = False
            continue
        path = w.checked(item, what, parse_json_path, text)
        if path is None:
            ok = False
        elif path in out:
            w.report(item.at, f"{what} lists {str(path)!r} twice")
            ok = False
        else:
            out.append(path)
    return tuple(out) if ok else None


def _tolerance(w: Walker, node: Node, what: str) -> float | None:
    value = node.value if isinstance(node, Scalar) else None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            value = None
    if not isinstance(value, int | float) or isinstance(value, bool):
        w.report(node.at, f"{what} must be a number, got {describe(node)}", "for example 1e-9")
        return None
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        w.report(
            node.at,
            f"{what} must be at least 0 and below 1, got {value!r}",
            "it is relative and absolute: 1e-9 forgives float formatting, 0 wants exact",
        )
        return None
    return float(value)


def _switch(w: Walker, node: Node, what: str, example: str) -> bool | Map | None:
    """A ``true | false | {...}`` node: the boolean, the mapping, or ``None`` (reported)."""
    if isinstance(node, Scalar) and isinstance(node.value, bool):
        return node.value
    if not isinstance(node, Map):
        w.report(
            node.at,
            f"{what} must be true, false or a mapping, got {describe(node)}",
            f"for example {example}",
        )
        return None
    return node


def _confirm(w: Walker, node: Node, what: str) -> ConfirmSpec | None:
    got = _switch(w, node, what, "confirm: {enabled: true, max_share: 10%}")
    if not isinstance(got, Map):
        return None if got is None else ConfirmSpec(enabled=got, at=node.at)
    f = w.entries(got, CONFIRM_KEYS, subject=what, where=f"in {what}")
    spec = ConfirmSpec(enabled=True, at=node.at)
    enabled = spec.enabled
    if "enabled" in f:
        enabled = _or(w.boolean(f["enabled"], f"{what}.enabled"), enabled)
    share = spec.max_share
    if "max_share" in f:
        share = _or(w.unit(f["max_share"], f"{what}.max_share", units.percent), share)
    return ConfirmSpec(enabled=enabled, max_share=share, at=node.at)


def _noise(w: Walker, node: Node, what: str) -> NoiseSpec | None:
    got = _switch(
        w,
        node,
        what,
        "noise: {enabled: true, samples: 2, min_observations: 20, share: 50%, window: 10m}",
    )
    if not isinstance(got, Map):
        return None if got is None else NoiseSpec(enabled=got, at=node.at)
    f = w.entries(got, NOISE_KEYS, subject=what, where=f"in {what}")
    spec = NoiseSpec(enabled=True, at=node.at)
    enabled = spec.enabled
    if "enabled" in f:
        enabled = _or(w.boolean(f["enabled"], f"{what}.enabled"), enabled)
    samples = spec.samples
    if "samples" in f:
        samples = _or(w.count(f["samples"], f"{what}.samples", minimum=1), samples)
    observations = spec.min_observations
    if "min_observations" in f:
        observations = _or(
            w.count(f["min_observations"], f"{what}.min_observations", minimum=1), observations
        )
    share = spec.share
    if "share" in f:
        share = _or(_share(w, f["share"], f"{what}.share"), share)
    window = spec.window
    if "window" in f:
        window = _or(_window(w, f["window"], f"{what}.window"), window)
    if samples > observations:
        w.report(
            node.at,
            f"{what}: samples ({samples}) cannot exceed min_observations ({observations})",
            "a path is noisy when it differed in 'samples' of at least 'min_observations' pairs",
        )
        return None
    return NoiseSpec(
        enabled=enabled,
        samples=samples,
        min_observations=observations,
        share=share,
        window=window,
        at=node.at,
    )


def _share(w: Walker, node: Node, what: str) -> float | None:
    share = w.unit(node, what, units.percent)
    if share is not None and share <= 0.0:
        w.report(
            node.at,
            f"{what} must be more than 0%",
            "the share of pairs a path must differ in to be noisy, like 50%",
        )
        return None
    return share


def _window(w: Walker, node: Node, what: str) -> float | None:
    seconds = w.unit(node, what, units.duration)
    if seconds is None:
        return None
    if not 1.0 <= seconds <= _MAX_NOISE_WINDOW:
        w.report(
            node.at,
            f"{what} must be from 1s to 24h, got {seconds:g}s",
            "how far back noise is remembered, like 10m",
        )
        return None
    return seconds
