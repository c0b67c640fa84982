"""Checks of single translate values: JSON paths, status rules, regexes, date formats, hooks.

Pure functions without file positions, like ``strangler.config.values``: each returns
the parsed value or raises ``BadValue`` (message and ``hint``);
``strangler.config.validate_translate`` adds the file:line.

>>> parse_json_path("$.lines[*].price").segments
('lines', <Wildcard.ANY: '*'>, 'price')
>>> parse_status_rule(">=400").ranges, parse_status_rule("4xx").ranges
(((400, 599),), ((400, 499),))
>>> sorted(template_params("/customers/{id:int}/files/{rest:path}"))
['id', 'rest']
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, cast

from strangler.config.translate_model import JsonPath, Segment, StatusRule, Wildcard
from strangler.config.values import BadValue
from strangler.config.walker import did_you_mean

__all__ = [
    "MAX_STATUS",
    "MIN_STATUS",
    "check_regex",
    "check_strftime",
    "load_hook",
    "parse_json_path",
    "parse_status_rule",
    "template_params",
]

MIN_STATUS: Final = 100
MAX_STATUS: Final = 599

_KEY: Final = re.compile(r"[^.\[\]'\"$]+")
_INDEX: Final = re.compile(r"\[(?:(-?\d+)|(\*)|'([^']*)'|\"([^\"]*)\")\]")
_TEMPLATE_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([a-z]+))?\}")
_RULE: Final = re.compile(r"(>=|<=|>|<|==)?\s*(\d{3})")
_RANGE: Final = re.compile(r"(\d{3})\s*-\s*(\d{3})")
_CLASS: Final = re.compile(r"([1-5])xx", re.IGNORECASE)


def parse_json_path(text: str, *, root: bool = False) -> JsonPath:
    """Parse a JSON path; raise ``BadValue``. ``root``: ``$`` alone (no segments) is allowed.

    Forms: ``customer.address.city``, ``lines[0]``, ``lines[-1]``, ``lines[*].price``,
    ``$.x``, ``$[0]``, and ``['odd.key']`` for keys with dots or brackets.

    >>> parse_json_path("a..b")
    Traceback (most recent call last):
    ...
    strangler.config.values.BadValue: JSON path 'a..b': empty key at position 2
    """
    hint = "like customer.address.city, lines[0].price or lines[*].price"
    if not text.strip():
        raise BadValue("a JSON path must not be empty", hint)
    rest = text.strip()
    pos = 0
    if rest.startswith("$"):
        pos = 1
        if len(rest) > 1 and rest[1] == ".":
            pos = 2
    segments: list[Segment] = []
    first = True
    while pos < len(rest):
        if rest[pos] == "[":
            m = _INDEX.match(rest, pos)
            if m is None:
                raise BadValue(
                    f"JSON path {text!r}: bad index at position {pos}",
                    "an index is [0], [-1], [*] or ['key']",
                )
            number, star, single, double = m.groups()
            if number is not None:
                segments.append(int(number))
            elif star:
                segments.append(Wildcard.ANY)
            else:
                segments.append(single if single is not None else double)
            pos = m.end()
        else:
            if not first:
                if rest[pos] != ".":
                    raise BadValue(f"JSON path {text!r}: expected '.' or '[' at position {pos}")
                pos += 1
            m = _KEY.match(rest, pos)
            if m is None:
                raise BadValue(f"JSON path {text!r}: empty key at position {pos}", hint)
            segments.append(m.group())
            pos = m.end()
        first = False
    if not segments and not root:
        raise BadValue(f"JSON path {text!r} names the whole body here", "name a field, like 'id'")
    return JsonPath(text, tuple(segments))


def parse_status_rule(value: object) -> StatusRule:
    """``">=400"``, ``"<300"``, ``"4xx"``, ``"400-499"``, ``404`` or a list of them."""
    items = list(value) if isinstance(value, list | tuple) else [value]
    hint = "like '>=400', '4xx', '500-599', 404 or a list of them"
    ranges: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise BadValue(f"a status rule must be a number or text, got {item!r}", hint)
        text = str(item).strip()
        if m := _CLASS.fullmatch(text):
            low = int(m.group(1)) * 100
            ranges.append((low, low + 99))
        elif m := _RANGE.fullmatch(text):
            low, high = int(m.group(1)), int(m.group(2))
            if low > high:
                raise BadValue(f"status range {text!r} is empty", f"write '{high}-{low}'")
            ranges.append((low, high))
        elif m := _RULE.fullmatch(text):
            op, number = m.group(1) or "==", int(m.group(2))
            low, high = {
                ">=": (number, MAX_STATUS),
                ">": (number + 1, MAX_STATUS),
                "<=": (MIN_STATUS, number),
                "<": (MIN_STATUS, number - 1),
                "==": (number, number),
            }[op]
            ranges.append((low, high))
        else:
            raise BadValue(f"{item!r} is not a status rule", hint)
    if not ranges:
        raise BadValue("a status rule list must not be empty", hint)
    for low, high in ranges:
        if not (MIN_STATUS <= low <= MAX_STATUS and MIN_STATUS <= high <= MAX_STATUS):
            raise BadValue(f"status rule {value!r} goes outside 100-599")
    text = ", ".join(str(i) for i in items)
    return StatusRule(ranges=tuple(ranges), text=text)


def _split_target(target: str) -> tuple[str, str]:
    if ":" in target:
        module, _, attr = target.partition(":")
    else:
        module, _, attr = target.rpartition(".")
    parts = [*module.split("."), *attr.split(".")]
    if not module or not attr or not all(p.isidentifier() for p in parts):
        raise BadValue(
            f"hook {target!r} is not 'module:function'",
            "like 'mypkg.translators:fix_request' (or 'mypkg.translators.fix_request')",
        )
    return module, attr


def load_hook(target: str) -> Callable[..., object]:
    """Import ``module:function`` (or ``module.function``) and check it can be a hook:
    callable, not ``async``, taking exactly one positional argument. Raises
    ``BadValue`` naming what is wrong; importing runs the module's code.

    >>> load_hook("json:dumps").__name__
    'dumps'
    >>> load_hook("json:loadz")
    Traceback (most recent call last):
    ...
    strangler.config.values.BadValue: hook 'json:loadz': module 'json' has no 'loadz'
    """
    module_name, attr = _split_target(target)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise BadValue(
            f"hook {target!r}: cannot import module {module_name!r}: {err}",
            "install the package, or put its directory on PYTHONPATH",
        ) from None
    except (Exception, SystemExit) as err:
        raise BadValue(
            f"hook {target!r}: importing {module_name!r} raised {type(err).__name__}: {err}"
        ) from None
    obj: object = module
    where = f"module {module_name!r}"
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = [n for n in dir(obj) if not n.startswith("_")]
            raise BadValue(f"hook {target!r}: {where} has no {part!r}", did_you_mean(part, names))
        obj = getattr(obj, part)
        where = repr(part)
    if not callable(obj):
        raise BadValue(f"hook {target!r} is {type(obj).__name__}, not a function")
    function = cast(Callable[..., object], obj)
    call = getattr(function, "__call__", None)  # noqa: B004 - an object with an async __call__
    if inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(call):
        raise BadValue(
            f"hook {target!r} is async; hooks run synchronously on the request path",
            "make it a plain 'def' that does no I/O",
        )
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return function  # a builtin without a signature: trust it
    try:
        signature.bind(None)
    except TypeError:
        raise BadValue(
            f"hook {target!r} must take exactly one argument (the message); "
            f"its signature is {signature}",
            "def fix(msg): ...; return msg",
        ) from None
    return function


def template_params(template: str | None) -> frozenset[str]:
    """The parameter names of a route's path template (none for ``None``)."""
    return frozenset(m.group(1) for m in _TEMPLATE_PARAM.finditer(template or ""))


def check_regex(pattern: str, replace: str) -> re.Pattern[str]:
    """Compile ``pattern`` and check that ``replace`` (``re.sub`` syntax) only names its
    groups and uses known escapes; raise ``BadValue``."""
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise BadValue(
            f"regex {pattern!r} does not compile: {err.msg} at position {err.pos}",
            "it is a Python regular expression; quote it in YAML with single quotes",
        ) from None
    i = 0
    while i < len(replace):
        if replace[i] != "\\":
            i += 1
            continue
        nxt = replace[i + 1 : i + 2]
        if nxt.isdigit():
            m = re.match(r"\d{1,2}", replace[i + 1 :])
            assert m is not None
            group = int(m.group())
            if group > compiled.groups:
                raise BadValue(
                    f"replacement {replace!r} refers to group {group}; "
                    f"the regex has {compiled.groups}"
                )
            i += 1 + len(m.group())
        elif nxt == "g":
            m = re.match(r"g<([^>]*)>", replace[i + 1 :])
            if m is None:
                raise BadValue(f"replacement {replace!r}: '\\g' needs '<name>'")
            ref = m.group(1)
            known = ref.isdigit() and int(ref) <= compiled.groups
            if not known and ref not in compiled.groupindex:
                raise BadValue(
                    f"replacement {replace!r} refers to group {ref!r}, which the regex lacks",
                    did_you_mean(ref, compiled.groupindex),
                )
            i += 1 + len(m.group())
        elif nxt and nxt in "\\ntrfvab":
            i += 2
        else:
            raise BadValue(f"replacement {replace!r} has a bad escape '\\{nxt}'")
    return compiled


def check_strftime(fmt: str) -> str:
    """``fmt`` if ``strftime`` and ``strptime`` both understand it; raise ``BadValue``."""
    sample = datetime(2001, 2, 3, 4, 5, 6, 7000, tzinfo=UTC)
    try:
        text = sample.strftime(fmt)
        datetime.strptime(text, fmt)
    except ValueError as err:
        raise BadValue(
            f"date format {fmt!r} does not work: {err}",
            "use strftime codes like '%Y-%m-%d', or iso8601, epoch, epoch_ms",
        ) from None
    return fmt


# ---------------------------------------------------------------------------- the reader
