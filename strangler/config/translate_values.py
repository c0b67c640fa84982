"""The kinds of a translate step's values, and the readers of its step lists.

``translate_model``'s fields name these in ``Annotated`` (as ``tv.X``); pydantic
(``described``) reads them, as it does ``kinds``. A parse function returns the value
read or raises ``BadValue`` (message and ``hint``); ``described`` adds the file:line.
A rule across a class's keys raises ``problem(key, ...)``, reported at that key.
``Steps`` reads a list of one-key mappings (``- path: {...}``, ``- rename: {...}``).

>>> parse_json_path("$.lines[*].price").segments
('lines', <Wildcard.ANY: '*'>, 'price')
>>> parse_status_rule(">=400").ranges, parse_status_rule("4xx").ranges
(((400, 599),), ((400, 499),))
>>> sorted(template_params("/customers/{id:int}/files/{rest:path}"))
['id', 'rest']
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import re
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Annotated, Any, Final, TypeAlias, cast

from strangler.config import kinds
from strangler.config import translate_model as tm
from strangler.config.kinds import Kind
from strangler.config.values import BadValue, shown
from strangler.config.walker import did_you_mean, join_hints

__all__ = [
    "JSON_OPS",
    "PARAM",
    "REQUEST_STEPS",
    "RESPONSE_STEPS",
    "TRANSLATE",
    "TRANSLATORS",
    "Steps",
    "check_regex",
    "load_hook",
    "parse_json_path",
    "parse_status_rule",
    "problem",
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
PARAM: Final = re.compile(
    r"\{(?:(?P<query>query\.)(?P<qname>[A-Za-z0-9_.~\[\]-]+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?)\}"
)
"""A route parameter in a template (``name``), or in a path ``{query.NAME}`` (``qname``)."""


_Key: TypeAlias = str | tuple[str, ...]


def problem(key: _Key, message: str, hint: str = "", *more: tuple[_Key, str, str]) -> Exception:
    """A problem at ``key`` of the mapping being read (``more``: others, as ``(key,
    message, hint)``), raised from a ``__post_init__`` or a reader, for ``described``
    to report at each key's line."""
    from pydantic_core import ValidationError

    return ValidationError.from_exception_data(
        "translate",
        [
            {
                "type": "value_error",
                "loc": key if isinstance(key, tuple) else (key,),
                "input": None,
                "ctx": {"error": BadValue(message, hint)},
            }
            for key, message, hint in ((key, message, hint), *more)
        ],
    )


def parse_json_path(text: str, *, root: bool = False) -> tm.JsonPath:
    """Parse a JSON path; raise ``BadValue``. ``root``: ``$`` alone (no segments) is allowed.

    Forms: ``customer.address.city``, ``lines[0]``, ``lines[-1]``, ``lines[*].price``,
    ``$.x``, ``$[0]``, and ``['odd.key']`` for keys with dots or brackets.

    >>> parse_json_path("a..b")
    Traceback (most recent call last):
    ...
    strangler.config.values.BadValue: JSON path 'a..b': empty key at position 2
    """
    hint = "like customer.address.city, lines[0].price or lines[*].price"
    rest = text.strip()
    if not rest:
        raise BadValue("a JSON path must not be empty", hint)
    start = pos = 2 if rest.startswith("$.") else 1 if rest.startswith("$") else 0
    segments: list[tm.Segment] = []
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
                segments.append(tm.Wildcard.ANY)
            else:
                segments.append(single if single is not None else double)
            pos = m.end()
        else:
            if pos > start:
                if rest[pos] != ".":
                    raise BadValue(f"JSON path {text!r}: expected '.' or '[' at position {pos}")
                pos += 1
            m = _KEY.match(rest, pos)
            if m is None:
                raise BadValue(f"JSON path {text!r}: empty key at position {pos}", hint)
            segments.append(m.group())
            pos = m.end()
    if not segments and not root:
        raise BadValue(f"JSON path {text!r} names the whole body here", "name a field, like 'id'")
    return tm.JsonPath(text, tuple(segments))


def parse_status_rule(value: object) -> tm.StatusRule:
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
    return tm.StatusRule(ranges=tuple(ranges), text=text)


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
    # an empty branch always matches, with the pattern's groups ("\n" ends a (?x) comment)
    empty = re.compile(pattern + "\n|").match("")
    try:
        cast(re.Match[str], empty).expand(replace)
    except (re.error, IndexError) as err:
        names = "".join(f", {name!r}" for name in compiled.groupindex)
        raise BadValue(
            f"replacement {replace!r} does not fit the regex: {err}",
            f"the regex has {compiled.groups} group(s){names}; \\1 or \\g<name> names one",
        ) from None
    return compiled


# ---------------------------------------------------------------------------- value kinds


def _string(value: object, hint: str = "") -> str:
    if not isinstance(value, str):
        quoted = f'quote it: "{value}"' if isinstance(value, int | float) else ""
        raise BadValue(f"must be a string, got {shown(value)}", hint or quoted)
    return value


def _template(value: object) -> str:
    """A value with ``{param}`` parts (the route's parameters), ``{id:int}`` as ``{id}``."""
    text = _string(value)
    bare = _TEMPLATE_PARAM.sub("", text)
    if "{" in bare or "}" in bare:
        raise BadValue(
            f"{text!r} has a malformed parameter",
            "parameters look like {id}, and name a parameter of the route's match.path",
        )
    return _TEMPLATE_PARAM.sub(lambda m: "{" + m.group(1) + "}", text)


def _rewrite(value: object) -> str:
    """A path template, with ``{param}`` and ``{query.NAME}`` (a query parameter moved
    into the path), then optionally ``?name={param}&...``, set on the query string."""
    text = _string(value, "a path like /customers/{id}")
    path, mark, query = text.partition("?")
    if not path.startswith("/") or any(c.isspace() or c == "#" for c in text):
        raise BadValue(
            f"{text!r} must be a path starting with '/', without spaces or '#'",
            "a query part like ?customer={id} is set on the client's query string",
        )
    bare = PARAM.sub("", path)
    if "{" in bare or "}" in bare:
        raise BadValue(
            f"{text!r} has a malformed parameter",
            "parameters look like {id} (a parameter of the route's match.path) "
            "or {query.name} (a query parameter, moved into the path)",
        )
    out = PARAM.sub(lambda m: "{" + (m.group("name") or "query." + m.group("qname")) + "}", path)
    filled = []
    for pair in query.split("&") if mark else ():
        name, eq, template = pair.partition("=")
        if not name or not eq or "{" in name or "}" in name:
            raise BadValue(
                f"{pair!r} in the query part is not name=value", "like /v2/orders?customer={id}&v=2"
            )
        filled.append(f"{name}={_template(template)}")
    return out + mark + "&".join(filled)


REWRITE: Final = Kind(_rewrite, {"type": "string", "pattern": "^/", "examples": ["/c/{id}"]})
TEMPLATE: Final = Kind(_template, {"type": "string"})
_HOST: Final = re.compile(r"[A-Za-z0-9._-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")


def _host(value: object) -> str:
    text = _string(value, "like new.example or new:8443")
    if not _HOST.fullmatch(text):
        raise BadValue(
            f"{text!r} is not a host[:port]",
            "write only the host, like new.example or new.example:8443",
        )
    return text


HOST: Final = Kind(_host, {"type": "string", "pattern": f"^({_HOST.pattern})$"})
_MANAGED: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
     "upgrade", "proxy-connection"}
)  # fmt: skip


_HEADER_NAME: Final = kinds.field_name("header", "X-Request-Id")


def _header(value: object) -> str:
    name = cast(str, _HEADER_NAME.parse(value))
    if name.lower() in _MANAGED:
        raise BadValue(
            f"{name} is managed by the proxy (framing, connection); it cannot be changed"
        )
    return name


HEADER: TypeAlias = Annotated[str, Kind(_header, _HEADER_NAME.schema)]


def _header_value(value: object) -> str:
    text = _string(value)
    if "\r" in text or "\n" in text:
        raise BadValue("a header value cannot hold a line break")
    return text


HEADER_VALUE: Final = Kind(_header_value, {"type": "string", "pattern": "^[^\\r\\n]*$"})
LISTED: Final = kinds.NonEmpty("write one or more entries, or leave the key out")
NAMES: TypeAlias = Annotated[tuple[Annotated[str, kinds.STRICT], ...], LISTED, kinds.ONE_OR_MORE]
_PATH_HINT: Final = "a JSON path like customer.name or lines[*].price"
JSON_PATH: Final = Kind(
    lambda value: parse_json_path(_string(value, _PATH_HINT)),
    {"type": "string", "examples": ["customer.name", "lines[*].price"]},
)
PATH: TypeAlias = Annotated[tm.JsonPath, JSON_PATH]
PATHS: TypeAlias = Annotated[tuple[PATH, ...], LISTED, kinds.ONE_OR_MORE]


def _keys(value: object) -> tuple[str, ...]:
    path = parse_json_path(_string(value, "like data or result.data"))
    keys = tuple(s for s in path.segments if isinstance(s, str))
    if len(keys) != len(path.segments):
        raise BadValue(f"{path} must be keys only, like data or result.data")
    return keys


KEYS: Final = Kind(_keys, {"type": "string", "examples": ["data"]})
JSON: Final = Kind(lambda value: json_value(value), {"description": "any JSON value"})


def _json_map(value: object) -> tuple[tuple[Any, Any], ...]:
    if not isinstance(value, dict) or not value:
        got = "an empty mapping" if value == {} else shown(value)
        raise BadValue(
            f"must be a non-empty mapping of old value to new, got {got}",
            "like values: {OPEN: open, PAID: paid}",
        )
    pairs = getattr(value, "pairs", None) or value.items()  # described.Pairs: 1 and true
    return tuple((old, json_value(new, str(old))) for old, new in pairs)


JSON_MAP: Final = Kind(_json_map, {"type": "object", "minProperties": 1})
DATE_NAMED: Final = ("iso8601", "epoch", "epoch_ms")


def _date_format(value: object) -> str:
    text = _string(value, "iso8601, epoch, epoch_ms or like '%Y-%m-%d'")
    if text in DATE_NAMED:
        return text
    if "%" not in text:
        raise BadValue(
            f"{text!r} is not a date format",
            join_hints(
                did_you_mean(text, DATE_NAMED),
                "iso8601, epoch, epoch_ms or strftime codes like '%Y-%m-%d'",
            ),
        )
    sample = datetime(2001, 2, 3, 4, 5, 6, 7000, tzinfo=UTC)
    try:  # strftime and strptime must both understand it
        datetime.strptime(sample.strftime(text), text)
    except ValueError as err:
        raise BadValue(
            f"date format {text!r} does not work: {err}",
            "use strftime codes like '%Y-%m-%d', or iso8601, epoch, epoch_ms",
        ) from None
    return text


DATE_FORMAT: Final = Kind(
    _date_format,
    {"type": "string", "examples": ["iso8601", "epoch", "epoch_ms", "%d/%m/%Y"]},
)
_FACTOR: Final = re.compile(r"\d+(?:\.\d+)?")


def _factor(value: object) -> str:
    """A positive decimal, as text (``Decimal(text)``): a float is its shortest repr."""
    text = None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, float) and math.isfinite(value):
        text = repr(value)
    elif isinstance(value, str) and _FACTOR.fullmatch(value.strip()):
        text = value.strip()
    try:
        if text is not None and Decimal(text) > 0:
            return text
    except InvalidOperation:
        pass
    raise BadValue(
        f"must be a positive number, got {shown(value)}",
        "like 100, or '0.01' as text to keep it exact",
    )


FACTOR: Final = Kind(
    _factor,
    {
        "anyOf": [
            {"type": "number", "exclusiveMinimum": 0},
            {"type": "string", "pattern": r"^\s*(?=[^1-9]*[1-9])\d+(\.\d+)?\s*$"},
        ]
    },
)


def _whole(what: str, low: int, high: int, *, digits: bool = False) -> Kind:
    """A whole number from ``low`` to ``high``; with ``digits``, written as text too (a
    mapping's key: ``'201': 200``)."""

    def parse(value: object) -> int:
        number = int(value) if digits and isinstance(value, str) and value.isdigit() else value
        if isinstance(number, int) and not isinstance(number, bool) and low <= number <= high:
            return number
        raise BadValue(f"must be {what} from {low} to {high}, got {shown(value)}")

    return Kind(parse, {"type": "integer", "minimum": low, "maximum": high})


PLACES: Final = _whole("a whole number", 0, 30)
STATUS: Final = _whole("a status", MIN_STATUS, MAX_STATUS, digits=True)
MAX_BODY: Final = kinds.within(kinds.SIZE, hint="it caps what a body step buffers, like 1MiB")


# ---------------------------------------------------------------------------- more kinds


class _Filled:
    """pydantic's own check of a mapping or list that must not be empty (``too_short``,
    said by ``described``)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        schema = handler(source)
        schema["min_length"] = 1
        return schema


FILLED: Final = _Filled()


STATUS_RULE: Final = Kind(
    parse_status_rule,
    {
        "anyOf": [
            {"type": ["string", "integer"]},
            {"type": "array", "items": {"type": ["string", "integer"]}, "minItems": 1},
        ],
        "examples": [">=400", "4xx", "500-599", 404],
    },
    shown=lambda rule: rule.text,
)


def json_value(value: object, where: str = "", *, paths: bool = False) -> Any:
    """A YAML value as a read-only JSON value (``FrozenJSON``); with ``paths``, a
    ``"$..."`` string is a JSON path into the original body (``"$$x"`` is ``"$x"``)."""
    at = f" (at {where})" if where else ""
    if paths and isinstance(value, str) and value.startswith("$$"):
        return value[1:]
    if paths and isinstance(value, str) and value.startswith("$"):
        try:
            return parse_json_path(value, root=True)
        except BadValue as err:
            raise BadValue(f"{err}{at}", err.hint) from None
    if isinstance(value, list):
        return tuple(json_value(item, where, paths=paths) for item in value)
    if isinstance(value, dict):
        out = {}
        for name, item in value.items():
            if not isinstance(name, str):
                raise BadValue(
                    f"JSON object keys are text, got {shown(name)}{at}", f'quote it: "{name}"'
                )
            out[name] = json_value(item, f"{where}.{name}" if where else name, paths=paths)
        return MappingProxyType(out)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadValue(f"{value!r} is not a JSON number{at}")
    return value


BODY_TEMPLATE: Final = Kind(
    lambda value: json_value(value, paths=True),
    {"description": 'JSON; a "$.path" string is that value of the original body'},
)


def _json_media(value: object) -> str:
    kind = _string(value, "like application/problem+json").partition(";")[0].strip().lower()
    if not (kind.endswith("/json") or kind.endswith("+json")):
        raise BadValue(
            f"{value!r} is not a JSON media type",
            "the error body is JSON: application/json, application/problem+json, ...",
        )
    return cast(str, value)


JSON_MEDIA: Final = Kind(
    _json_media, {"type": "string", "pattern": r"(?i)^[^;]*[/+]json\s*(;.*)?$"}
)


def _hook(value: object) -> Any:
    target = _string(value, "like 'mypkg.hooks:fix'")
    return tm.Hook(target=target, function=load_hook(target))


HOOK: Final = Kind(_hook, {"type": "string", "examples": ["mypkg.hooks:fix"]})


def _url_path(value: object) -> str:
    path = _string(value, "a path like /api/v1")
    if not path.startswith("/") or any(c.isspace() or c in "?#{}" for c in path):
        raise BadValue(f"{path!r} must be a path starting with '/', without spaces or ?#{{}}")
    return path


URL_PATH: Final = Kind(_url_path, {"type": "string", "pattern": r"^/[^\s?#{}]*$"})


# ---------------------------------------------------------------------------- readers


class Steps(kinds.OneKey):
    """A list entry written ``{name: settings}``, read by ``shapes[name]``: a step of a
    side, or a JSON operation. ``elsewhere``: the hint for a name that belongs
    somewhere else; ``refuse``: a step's key that is not for this side (message, hint).
    ``described`` names such an entry by its index (``request[2]``)."""

    indexed = True

    def __init__(
        self,
        shapes: dict[str, Any],
        noun: str,
        listing: str,
        elsewhere: Mapping[str, str],
        refuse: Mapping[tuple[str, str], tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(shapes, "")
        self.noun, self.listing, self.elsewhere = noun, listing, elsewhere
        self.refuse = refuse or {}

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        names = ", ".join(self.shapes)  # then kinds.OneKey reads the one key's shape

        def which(value: object) -> object:
            if not isinstance(value, dict) or not value:
                raise BadValue(
                    f"a {self.noun} is a mapping with one key ({names}), got {shown(value)}"
                )
            first, *extra = value
            if extra:
                raise problem(
                    extra[0],
                    f"a {self.noun} has one key; {extra[0]!r} follows {first!r}",
                    f"write '{extra[0]}' as its own list item: - {extra[0]}: ...",
                )
            if first not in self.shapes:
                hint = self.elsewhere.get(first) or join_hints(
                    did_you_mean(str(first), self.shapes), f"{self.listing}: {names}"
                )
                raise BadValue(f"unknown {self.noun} {first!r}", hint)
            for (step, key), (message, hint) in self.refuse.items():
                if step == first and isinstance(value[first], dict) and key in value[first]:
                    raise problem((first, key), message, hint)
            return value

        return core_schema.no_info_before_validator_function(
            which, super().__get_pydantic_core_schema__(source, handler)
        )

    def _bare(self, name: str) -> bool:
        return False  # a step is never written alone, nor null: its shape says what it needs

    def __get_pydantic_json_schema__(self, core: Any, handler: Any) -> dict[str, Any]:
        schema = super().__get_pydantic_json_schema__(core["schema"], handler)
        return {"anyOf": [s for s in schema["anyOf"] if s != {"enum": []}]}  # none alone


class Bare:
    """A class written as the value of its one ``key``: ``wrap: data``, ``drop: [a, b]``,
    ``json: [...]``; a mapping is refused (``noun``: what it must be instead)."""

    def __init__(self, key: str, noun: str) -> None:
        self.written_as, self.noun = key, noun

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def wrap(value: object) -> object:
            if isinstance(value, dict):
                raise BadValue(f"must be {self.noun}, got a mapping")
            return {self.written_as: value}

        hints = typing.get_type_hints(source, include_extras=True)
        return core_schema.no_info_before_validator_function(
            wrap,
            handler(source),
            json_schema_input_schema=handler.generate_schema(hints[self.written_as]),
        )


class _Ordered:
    """A step whose keys are operations that run in the order written (``order``)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def ordered(value: object, read: Callable[[object], Any]) -> Any:
            got = read(value)
            return dataclasses.replace(got, order=tuple(cast(dict[str, Any], value)))

        return core_schema.no_info_wrap_validator_function(ordered, handler(source))


class _Layer:
    """A translator, or ``{use: NAME}`` (``Use``); ``named``: under translators:, where
    ``use`` is refused."""

    indexed = True

    def __init__(self, *, named: bool) -> None:
        self.named = named

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        def either(value: object, read: Callable[[object], Any]) -> Any:
            if not isinstance(value, dict):
                kind = "steps" if self.named else "steps, or {use: NAME}"
                raise BadValue(
                    f"must be a mapping ({kind}), got {shown(value)}",
                    f"for example {tm.Translator.EXAMPLE}",
                )
            if "use" not in value:
                return read(value)
            if self.named:
                raise BadValue(
                    "a named translator cannot 'use' another",
                    "list both under the route instead: translate: [{use: a}, {use: b}]",
                )
            hint = "'use' takes the named translator as it is; change it under translators:"
            others = [(k, f"{k!r} cannot go with 'use'", hint) for k in value if k != "use"]
            if others:
                raise problem(*others[0], *others[1:])
            if not isinstance(value["use"], str):
                raise problem("use", "must be the name of an entry under translators:")
            return tm.Use(use=value["use"])

        return core_schema.no_info_wrap_validator_function(either, handler(source))

    def __get_pydantic_json_schema__(self, core: Any, handler: Any) -> dict[str, Any]:
        if self.named:
            return dict(handler(core))
        use = {"type": "object", "properties": {"use": {"type": "string"}}, "required": ["use"]}
        return {"anyOf": [{**use, "additionalProperties": False}, handler(core)]}


ORDERED: Final = _Ordered()
LAYER: Final = _Layer(named=False)
NAMED: Final = _Layer(named=True)
_STEPS: Final = {
    "path": tm.PathStep,
    "query": Annotated[tm.QueryStep, ORDERED],
    "headers": Annotated[tm.HeadersStep, ORDERED],
    "json": Annotated[tm.JsonStep, Bare("ops", "a non-empty list of operations")],
    "hook": Annotated[tm.HookStep, kinds.ShortForm("call", HOOK, noun="'module:function'")],
    "status": tm.StatusStep,
    "error": tm.ErrorStep,
}
_PATHS_NOUN: Final = "a JSON path or a list of them"
JSON_OPS: Final = Steps(
    {
        "rename": tm.JsonRename,
        "move": tm.JsonMove,
        "drop": Annotated[tm.JsonDrop, Bare("paths", _PATHS_NOUN)],
        "set": tm.JsonSet,
        "default": tm.JsonDefault,
        "wrap": Annotated[tm.JsonWrap, Bare("keys", "a key path like data")],
        "unwrap": Annotated[tm.JsonUnwrap, Bare("keys", "a key path like data")],
        "map": tm.JsonMap,
        "convert": tm.JsonConvert,
        "date": tm.JsonDate,
        "scale": tm.JsonScale,
        "each": tm.JsonEach,
        "require": Annotated[tm.JsonRequire, Bare("paths", _PATHS_NOUN)],
    },
    "JSON operation",
    "operations",
    {},
)


def _side(side: str, names: tuple[str, ...], other: tuple[str, ...]) -> Steps:
    across = "response" if side == "request" else "request"
    elsewhere = {k: f"'{k}' is a {across} step; move it under {across}:" for k in other}
    for op in JSON_OPS.shapes:
        elsewhere[op] = (
            f"'{op}' is a JSON operation; put it in a json list: - json: [{{{op}: ...}}]"
        )
    refuse = {
        ("headers", "rewrite_paths"): (
            "is for the response side (Location, Link...)",
            "on the request side, use a path step",
        )
    }
    return Steps(
        {name: _STEPS[name] for name in names},
        f"{side} step",
        f"{side} steps",
        {k: v for k, v in elsewhere.items() if k not in names},
        refuse if side == "request" else None,
    )


_REQUEST: Final = ("path", "query", "headers", "json", "hook")
_RESPONSE: Final = ("status", "headers", "json", "error", "hook")
REQUEST_STEPS: Final = _side("request", _REQUEST, _RESPONSE)
RESPONSE_STEPS: Final = _side("response", _RESPONSE, _REQUEST)
TRANSLATE: TypeAlias = Annotated[
    tuple[Annotated[tm.Translator, LAYER], ...],
    kinds.NonEmpty("leave translate out for none"),
    kinds.ONE_OR_MORE,
]
"""A route's ``translate:`` as written: translators and ``{use: NAME}``, outermost first."""
TRANSLATORS: TypeAlias = Mapping[
    Annotated[str, kinds.UPSTREAM_NAME], Annotated[tm.Translator, NAMED]
]
