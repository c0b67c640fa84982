"""What one config value may be, written once beside the model field that holds it.

A model field says its kind in ``Annotated``: ``header_timeout: Annotated[float,
DURATION_POSITIVE] = 30.0``. pydantic (``strangler.config.described``) reads the kind
twice: to check and convert what the YAML file says (``"30s"`` to ``30.0``), and to
write the key into the JSON Schema that editors use. The parse functions are the
``units`` and ``values`` ones, so a value means the same in both.

This module does not import pydantic: ``model`` imports it, and the request path
imports ``model``. The kinds import ``pydantic_core`` only when pydantic asks them
for their schema, at config load.

A parse function raises ``BadValue(message, hint)`` (or a plain ``ValueError``); the
problem reads ``"<key> <message>"`` when the message starts with "must" or "is", else
``"<key>: <message>"``.

>>> DURATION.parse("250ms"), SIZE.parse("1MiB")
(0.25, 1048576)
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from strangler.config.model import Listen

from strangler.config import units, values
from strangler.config.model import READ  # re-exported: the model's classes use it too
from strangler.config.values import NAME, BadValue
from strangler.config.values import shown as _shown

__all__ = [
    "CANARY_SHARE",
    "DEBUG_HEADERS",
    "DURATION",
    "DURATION_POSITIVE",
    "ENV_NAME",
    "ERROR_RATE",
    "FILE",
    "FILE_POLL",
    "GROUP",
    "IDLE_AFTER",
    "LISTEN",
    "NETWORK",
    "NOT_A_KEY",
    "P99",
    "PATH_GLOB",
    "READ",
    "REDIS_URL",
    "RESYNC",
    "SIZE",
    "SIZE_POSITIVE",
    "SLO_WINDOW",
    "STICKY",
    "STRICT",
    "TEXT",
    "TOKEN",
    "Count",
    "Kind",
    "glob_regex",
    "key",
    "named",
    "share",
    "text_like",
    "within",
]

_DURATION_TEXT: Final = r"^\s*\d+(\.\d+)?\s*(ms|s|m|h)?\s*$"
_SIZE_TEXT: Final = r"(?i)^\s*\d+\s*(b|kb|kib|mb|mib|gb|gib)?\s*$"


def _not_zero(pattern: str) -> str:
    """``pattern`` (a number, maybe with a unit) that also wants a digit other than 0."""
    return pattern.replace("^", "^(?=[^1-9]*[1-9])", 1)


class Kind:
    """A value read by ``parse`` and shown in the JSON Schema as ``schema``.

    ``with_base``: ``parse`` also takes the main config file's directory (file paths).
    ``shown``: how the schema writes a default (``described`` reads it): ``1.0`` as
    ``100%``, as the file must.
    """

    def __init__(
        self,
        parse: Callable[..., Any],
        schema: dict[str, Any],
        *,
        with_base: bool = False,
        shown: Callable[[Any], Any] | None = None,
    ) -> None:
        self.parse, self.schema, self.with_base, self.shown = parse, schema, with_base, shown

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        meta = {"shown": self.shown}
        if self.with_base:
            parse = self.parse

            def based(value: object, info: Any) -> Any:
                return parse(value, (info.context or {}).get("base_dir", ""))

            return core_schema.with_info_plain_validator_function(based, metadata=meta)
        return core_schema.no_info_plain_validator_function(self.parse, metadata=meta)

    def __get_pydantic_json_schema__(self, core: Any, handler: Any) -> dict[str, Any]:
        return dict(self.schema)


class _Strict:
    """pydantic's own check of the annotated type, without its lax conversions: YAML
    already typed the value, so ``"64"`` is not a number and ``"yes"`` not a boolean."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        schema = handler(source)
        schema["strict"] = True
        return schema


STRICT: Final = _Strict()


class _NotAKey:
    """A model field the file does not set (``at``: where the section was written):
    written as a key, it is an unknown key; the schema leaves it out."""

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import PydanticCustomError, core_schema

        def refuse(value: object) -> object:
            raise PydanticCustomError("unexpected_keyword_argument", "not a key")

        return core_schema.no_info_plain_validator_function(refuse)

    def __get_pydantic_json_schema__(self, core: Any, handler: Any) -> Any:
        from pydantic_core import PydanticOmit

        raise PydanticOmit


NOT_A_KEY: Final = _NotAKey()


class Count:
    """A whole number of at least ``minimum`` (strict: ``true`` is not 1)."""

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.int_schema(ge=self.minimum, strict=True)


class _Around:
    """pydantic's own reading of the annotated type, with a step around it: ``before``
    returns what pydantic reads, ``wrap(value, read)`` decides whether it reads, ``after``
    returns what it read (or raises). ``schema`` makes the JSON Schema from the type's."""

    def __init__(
        self,
        *,
        before: Callable[[Any], Any] | None = None,
        wrap: Callable[[Any, Callable[[object], Any]], Any] | None = None,
        after: Callable[[Any], Any] | None = None,
        schema: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.before, self.wrap, self.after, self.schema = before, wrap, after, schema

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        inner = handler(source)
        if self.after:
            inner = core_schema.no_info_after_validator_function(self.after, inner)
        if self.wrap:
            inner = core_schema.no_info_wrap_validator_function(self.wrap, inner)
        if self.before:
            inner = core_schema.no_info_before_validator_function(self.before, inner)
        return inner

    def __get_pydantic_json_schema__(self, core: Any, handler: Any) -> dict[str, Any]:
        return handler(core) if self.schema is None else self.schema(handler(core))


def _or_boolean(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [{"type": "boolean"}, schema]}


DURATION: Final = Kind(
    units.duration,
    {
        "anyOf": [{"type": "string", "pattern": _DURATION_TEXT}, {"type": "number", "minimum": 0}],
        "examples": ["2s"],
    },
)
"""``250ms``, ``2s``, ``5m``, ``1h`` or a number of seconds; to float seconds."""
SIZE: Final = Kind(
    units.size,
    {
        "anyOf": [{"type": "string", "pattern": _SIZE_TEXT}, {"type": "integer", "minimum": 0}],
        "examples": ["1MiB"],
    },
)
"""``512``, ``64kb``, ``1MiB``, ``1gib``; to int bytes."""


def within(
    kind: Kind,
    most: tuple[float, str] | None = None,
    hint: str = "",
    *,
    least: tuple[float, str] | None = None,
) -> Kind:
    """``kind`` whose value must be more than 0 (at least ``least`` when given), and at
    most ``most`` when given: the limits in seconds and as written. The schema says
    them of a bare number (of a text, only that it is not 0)."""

    def parse(value: object) -> Any:
        got = kind.parse(value)
        if (got >= least[0] if least else got > 0) and (most is None or got <= most[0]):
            return got
        if least and most:
            raise BadValue(f"must be from {least[1]} to {most[1]}, got {got:g}s", hint)
        if least:
            raise BadValue(f"must be at least {least[1]}, got {got:g}s", hint)
        if most:
            raise BadValue(f"must be more than 0 and at most {most[1]}, got {got:g}s", hint)
        raise BadValue("must be more than 0", hint)

    text, number = kind.schema["anyOf"]
    if not least:
        text = {**text, "pattern": _not_zero(text["pattern"])}
    number = {k: v for k, v in number.items() if k != "minimum"}
    number.update({"minimum": least[0]} if least else {"exclusiveMinimum": 0})
    number.update({"maximum": most[0]} if most else {})
    return Kind(parse, {**kind.schema, "anyOf": [text, number]})


DURATION_POSITIVE: Final = within(DURATION)
SIZE_POSITIVE: Final = within(SIZE)


def _text(value: object, hint: str = "") -> str:
    if not isinstance(value, str):
        raise BadValue(f"must be a string, got {_shown(value)}", hint)
    if not value.strip():
        raise BadValue("must not be empty", hint)
    return value


def text_like(example: str) -> Kind:
    """A non-blank string; a problem's hint shows ``example``."""
    return Kind(
        lambda value: _text(value, f"like {example!r}"),
        {"type": "string", "pattern": r"\S", "examples": [example]},
    )


TEXT: Final = Kind(_text, {"type": "string", "pattern": r"\S"})
"""A non-blank string."""


def _file(value: object, base_dir: str) -> str:
    """A file path; a relative one is resolved against the main file's directory."""
    text = _text(value)
    return text if os.path.isabs(text) else os.path.normpath(os.path.join(base_dir, text))


FILE: Final = Kind(
    _file,
    {"type": "string", "minLength": 1, "description": "relative to the main config file"},
    with_base=True,
)

_ENV: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _env_name(value: object) -> str:
    text = _text(value)
    if not _ENV.fullmatch(text):
        raise BadValue(
            f"{text!r} is not an environment variable name",
            "letters, digits and '_', like STRANGLER_ADMIN_TOKEN",
        )
    return text


ENV_NAME: Final = Kind(_env_name, {"type": "string", "pattern": f"^{_ENV.pattern}$"})


def _network(value: object) -> str:
    """A client network (CIDR, or a single address), normalised."""
    text = _text(value, "a network like '10.0.0.0/8'")
    try:
        fixed = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise BadValue(
            f"{text!r} is not an IP network", "like 10.0.0.0/8, 192.168.1.7 or fd00::/8"
        ) from None
    if ipaddress.ip_interface(text).ip != fixed.network_address:
        raise BadValue(f"{text!r} has host bits set", f"did you mean '{fixed}'?")
    return str(fixed)


NETWORK: Final = Kind(_network, {"type": "string", "examples": ["10.0.0.0/8", "127.0.0.1"]})


FILE_POLL: Final = within(
    DURATION, (60.0, "60s"), "how often each worker looks for another worker's changes, like 500ms"
)
RESYNC: Final = within(
    DURATION, (3600.0, "1h"), "how often each replica re-reads the whole state from Redis, like 5s"
)


REDIS_URL: Final = Kind(
    lambda value: values.check_redis_url(_text(value)),
    {"type": "string", "pattern": "^(redis|rediss|unix)://", "format": "uri"},
)


def _bare_below(limit: float, hint: str = "") -> Kind:
    """A duration more than 0; a bare number of ``limit`` or more was most likely meant
    as milliseconds (``units.bare_seconds_below``)."""
    return within(Kind(units.bare_seconds_below(limit), DURATION.schema), hint=hint)


CONNECT_TIMEOUT: Final = _bare_below(100, "write null for no limit")
TIMEOUT: Final = _bare_below(1000, "write null for no limit")


URL: Final = Kind(
    lambda value: values.check_url(_text(value, "for example http://127.0.0.1:8000")),
    {
        "type": "string",
        # what values.check_url allows but for the port's range: no credentials, query, fragment
        "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://(\[[0-9A-Fa-f:.]+\]|[^\s/?#@:\[\]]+)"
        r"(:[0-9]{1,5})?(/[^\s?#]*)?$",
        "examples": ["http://127.0.0.1:9000"],
    },
)


def named(example: str, hint: str = "", *, key: bool = False) -> Kind:
    """A name (``NAME``) like ``example``; ``hint`` says where it shows. ``key``: the
    name is a mapping's key (any scalar), named "name" in the problem."""

    def parse(value: object) -> str:
        text = value if key else _text(value, f"like {example!r}")
        if not isinstance(text, str) or not NAME.fullmatch(text):
            raise BadValue(
                f"{'name ' if key else ''}{text!r} must be letters, digits, '.', '_' and '-', "
                "starting with a letter or digit",
                hint or f"like {example!r}",
            )
        return text

    return Kind(parse, {"type": "string", "pattern": f"^{NAME.pattern}$", "examples": [example]})


UPSTREAM_NAME: Final = named(
    "billing", "names appear in metrics and logs, like 'billing' or 'legacy'", key=True
)


class ShortForm(_Around):
    """A mapping that may be written as the value of its one required ``key``:
    ``legacy: http://l:8000`` is ``legacy: {url: http://l:8000}``."""

    def __init__(self, key: str, kind: Kind, noun: str = "a URL") -> None:
        def expand(value: object) -> object:
            if isinstance(value, str):
                return {key: value}
            if not isinstance(value, dict):
                raise BadValue(
                    f"must be {noun} or a mapping with {key}:, got {_shown(value)}",
                    f"for example {kind.schema['examples'][0]}",
                )
            return value

        super().__init__(before=expand, schema=lambda own: {"anyOf": [dict(kind.schema), own]})


_SHARE_TEXT: Final = r"^\s*(100(\.0+)?|\d{1,2}(\.\d+)?)\s*%\s*$"  # units.percent, to 100%


def _as_percent(ratio: float) -> str:
    """A ratio as a file writes it (the schema's default): 0.1 is ``10%``."""
    return f"{ratio * 100:g}%"


def share(
    example: str, hint: str = "", *, bare: bool = False, some: bool = False, below_all: bool = False
) -> Kind:
    """A share from 0% to 100%, to a ratio (``10%`` is 0.1). A bare number is a number of
    percent with ``bare``; else one from 0 to 1 is refused (0.5% or 50%?:
    ``units.config_percent``). ``some``: more than 0%; ``below_all``: and less than 100%."""
    read = units.percent if bare else units.config_percent

    def parse(value: object) -> float:
        ratio = float(read(value))
        if some and (ratio <= 0.0 or (below_all and ratio >= 1.0)):
            most = " and less than 100%" if below_all else ""
            raise BadValue(f"must be more than 0%{most}, got {ratio * 100:g}%", hint)
        return ratio

    text = {"type": "string", "pattern": _not_zero(_SHARE_TEXT) if some else _SHARE_TEXT}
    numbers: list[dict[str, Any]]
    if bare:
        numbers = [{"type": "number", "exclusiveMinimum" if some else "minimum": 0, "maximum": 100}]
    else:  # 0 (unless some), or above 1
        zero = [] if some else [{"const": 0}]
        numbers = [*zero, {"type": "number", "exclusiveMinimum": 1, "maximum": 100}]
    return Kind(parse, {"anyOf": [text, *numbers], "examples": [example]}, shown=_as_percent)


SHARE: Final = share("10%")
PERCENT: Final = share("10%", bare=True)
ERROR_RATE: Final = share(
    "1%", "the share of failed answers the new side may give, like 1%", some=True, below_all=True
)
P99: Final = _bare_below(10)


SLO_WINDOW: Final = within(DURATION, (86400.0, "24h"), "like 5m", least=(1.0, "1s"))


def key(name: str) -> Any:
    """The config key of a field the model names otherwise (pydantic's alias): write
    ``Annotated[float, kinds.key("percent")]``. The annotation is a string that pydantic
    evaluates when it builds its adapter, so pydantic is imported only then."""
    from pydantic import Field

    return Field(alias=name)


_MIN_SHARE: Final = 0.0001  # one sticky bucket in 10,000: the finest canary share


def _canary_share(value: object) -> float:
    ratio: float = SHARE.parse(value)
    if 0.0 < ratio < _MIN_SHARE:
        raise BadValue(
            f"{ratio * 100:g}% is below 0.01%, the finest share a canary can send",
            "write 0.01% or more, or 0% to send none",
        )
    return ratio


CANARY_SHARE: Final = Kind(_canary_share, SHARE.schema)
TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""A header or cookie name (RFC 9110 token)."""
_STICKY_HINT: Final = "header:NAME, cookie:NAME, query:NAME or client_ip"


def _sticky(value: object) -> Any:
    """``header:NAME``, ``cookie:NAME``, ``query:NAME`` or ``client_ip``."""
    from strangler.config.model import STICKY_KINDS, Sticky
    from strangler.config.walker import did_you_mean

    text = _text(value, _STICKY_HINT)
    kind, colon, name = (part.strip() for part in text.partition(":"))
    if kind not in STICKY_KINDS:
        hint = did_you_mean(kind, STICKY_KINDS) or f"write {_STICKY_HINT}"
        raise BadValue(f"{text!r} is not a sticky key", hint)
    if kind == "client_ip":
        if colon:
            raise BadValue("client_ip takes no name", "write just client_ip")
        return Sticky(kind="client_ip")
    if not name:
        raise BadValue(f"{text!r} needs a name", f"like {kind}:X-User-Id")
    if kind != "query" and not TOKEN.fullmatch(name):
        raise BadValue(f"{name!r} is not a valid {kind} name")
    return Sticky(kind=kind, name=name)  # kind checked above


STICKY: Final = Kind(
    _sticky,
    {
        "type": "string",
        "pattern": "^(header|cookie|query):.+$|^client_ip$",
        "examples": ["header:X-User-Id"],
    },
)


GROUP: Final = named("checkout")


def _debug_headers(value: object) -> str:
    """``on`` / ``true``, ``off`` / ``false``, or ``overrides``."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value in ("on", "off", "overrides"):
        return str(value)
    raise BadValue(
        f"must be on (true), off (false) or overrides, got {_shown(value)}",
        "overrides: only for requests that carry a valid override header or cookie",
    )


DEBUG_HEADERS: Final = Kind(
    _debug_headers, {"anyOf": [{"enum": ["on", "off", "overrides"]}, {"type": "boolean"}]}
)


def _listen(value: object) -> Listen:
    """A ``host:port`` listen address."""
    if not isinstance(value, str) or not value.strip():
        port = value if type(value) is int and 0 <= value < 65536 else 8080  # listen: 9000
        raise BadValue(f"must be host:port, got {_shown(value)}", f"for example '0.0.0.0:{port}'")
    return values.parse_listen(value)


LISTEN: Final = Kind(_listen, {"type": "string", "examples": ["127.0.0.1:8081", ":8080"]})
"""``host:port``; ``:8080`` is every IPv4 interface, port 0 any free port."""

_DAYS: Final = re.compile(r"(\d+(?:\.\d+)?)\s*d")


def _days(value: object) -> float:
    """A duration (``units.duration``) or a number of days (``14d``)."""
    if isinstance(value, str) and (m := _DAYS.fullmatch(value.strip())):
        return float(m.group(1)) * 86400.0
    try:
        return units.duration(value)
    except ValueError:
        raise ValueError(f"expected a duration like '14d' or '36h', got {value!r}") from None


IDLE_AFTER: Final = within(
    Kind(
        _days,
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)?\s*$"},
                {"type": "number"},
            ],
            "examples": ["14d", "35d"],
        },
    ),
    (400 * 86400.0, "400d"),
    "how long legacy must be unused before its code can go: 14d, or 35d for month-end "
    "jobs, 95d for quarterly ones",
    least=(3600.0, "1h"),
)


def _path_glob(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadValue(f"must be a path glob, got {_shown(value)}", "a glob like '/static/**'")
    if not value.startswith("/"):
        raise BadValue(
            f"{value!r} must start with '/'",
            f"globs match the request path, like '/{value.lstrip('*/')}'",
        )
    return value


PATH_GLOB: Final = Kind(
    _path_glob, {"type": "string", "pattern": "^/", "examples": ["'/static/**'", "'/health'"]}
)
"""A request path glob: ``*`` one segment's characters, ``**`` any depth, ``?`` one."""
_GLOB: Final = re.compile(r"\*\*|\*|\?|[^*?]+")
_GLOB_REGEX: Final = {"**": ".*", "*": "[^/]*", "?": "[^/]"}


def glob_regex(glob: str) -> str:
    """A path glob as a regex for ``fullmatch``.

    >>> glob_regex("/static/**"), glob_regex("/users/*/a.png")
    ('/static/.*', '/users/[^/]*/a\\\\.png')
    """
    return "".join(_GLOB_REGEX.get(part) or re.escape(part) for part in _GLOB.findall(glob))


# ---------------------------------------------------------------- a route (schema-routes)


def _method(value: object) -> str:
    """An HTTP method, upper-cased: ``get`` is ``GET``."""
    from strangler.config.walker import did_you_mean

    if not isinstance(value, str):
        raise BadValue(f"expected a method like GET, got {_shown(value)}")
    method = value.upper()
    if method not in values.METHODS:
        hint = did_you_mean(method, values.METHODS) or f"known methods: {', '.join(values.METHODS)}"
        raise BadValue(f"unknown HTTP method {value!r}", hint)
    return method


METHOD: Final = Kind(_method, {"type": "string", "examples": ["GET", "HEAD"]})


class Listed(_Around):
    """A list that names nothing twice (entries compared as ``same`` makes them): a
    repeat is a problem at its own entry (``hint``), reported with the entries' own
    problems. With ``empty``, it must not be empty either (``empty`` ends the message,
    ``empty_hint`` is its hint)."""

    def __init__(
        self,
        empty: str = "",
        empty_hint: str = "",
        *,
        same: Callable[[str], str] = str,
        hint: str = "",
    ) -> None:
        def check(value: object, read: Callable[[object], Any]) -> Any:
            from pydantic_core import ValidationError

            if not isinstance(value, list):
                return read(value)  # pydantic names what it is
            if not value and empty:
                raise BadValue(f"is empty, {empty}", empty_hint)
            seen: set[str] = set()
            again: list[Any] = []  # pydantic_core's InitErrorDetails
            for n, item in enumerate(value):
                if not isinstance(item, str):
                    continue  # pydantic names what it is
                folded = same(item)
                if folded in seen:
                    error = BadValue(f"{folded!r} is listed twice", hint)
                    again.append(
                        {"type": "value_error", "loc": (n,), "input": item, "ctx": {"error": error}}
                    )
                seen.add(folded)
            try:
                got = read(value)
            except ValidationError as err:
                own = [
                    {k: e[k] for k in ("type", "loc", "input", "ctx") if k in e}
                    for e in err.errors()
                ]
                again, got = [*own, *again], None
            if again:
                raise ValidationError.from_exception_data("list", again)
            return got

        at_least = {"minItems": 1} if empty else {}  # uniqueItems: 'A' and 'a' differ
        super().__init__(wrap=check, schema=lambda own: {**own, **at_least, "uniqueItems": True})


def _failure(value: object) -> object:
    """A fallback failure (the ``Literal``'s own check); a 5xx status number is ``5xx``."""
    if isinstance(value, int) and not isinstance(value, bool) and 500 <= value < 600:
        raise BadValue(f"write '5xx' for any 5xx status, not {value}")
    return value


FAILURE: Final = _Around(before=_failure)


def _override_name(value: object) -> str | None:
    """A header or cookie name, or ``false``: turned off (``None``)."""
    if value is False:
        return None
    text = _text(value, "a name, or false to turn it off")
    if not TOKEN.fullmatch(text):
        raise BadValue(f"{text!r} is not a valid name", "a name, or false to turn it off")
    return text


OVERRIDE_NAME: Final = Kind(
    _override_name,
    {"anyOf": [{"type": "string", "pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"}, {"const": False}]},
)


_SEGMENT: Final = r"(?:[^\s?#/{}]*|\{[A-Za-z_][A-Za-z0-9_]*(?::(?:str|int|uuid))?\})"
PATH: Final = Kind(
    lambda value: values.check_path_template(_text(value, "like /api/invoices/{id:int}")),
    {
        # but a parameter named twice: what values.check_path_template says, as a pattern
        "pattern": rf"^(?=/)(?:/{_SEGMENT})*(?:/\{{[A-Za-z_][A-Za-z0-9_]*:path\}})?$",
        "type": "string",
        "examples": ["/invoices/{id:int}"],
    },
)
"""An exact path or a template: ``{name}``, ``{name:int}``, ``{name:uuid}``, a last
``{name:path}``."""


def _path_prefix(value: object) -> str:
    prefix = values.check_path(_text(value, "like /api/invoices"))
    if "{" in prefix or "}" in prefix:
        raise BadValue(
            f"{prefix!r}: a prefix cannot hold parameters",
            "use match.path with a template, like /users/{id}/{rest:path}",
        )
    return prefix


PATH_PREFIX: Final = Kind(
    _path_prefix, {"type": "string", "pattern": r"^/[^\s?#{}]*$", "examples": ["/api/invoices"]}
)


HOST: Final = Kind(
    lambda value: values.check_host(_text(value, "like api.example.com or *.example.com")),
    {"type": "string", "examples": ["api.example.com", "*.example.com"]},
)


def _condition(value: object) -> Any:
    """``"x"``: exactly x; ``true``: present with any value; ``false``: absent."""
    from strangler.config.model import ValueMatch

    if isinstance(value, bool):
        return ValueMatch(present=value)
    if isinstance(value, str):
        return ValueMatch(value=value)
    number = isinstance(value, int | float)
    raise BadValue(
        "expected a string (exact value), true (must be present) or false (must be absent), "
        f"got {_shown(value)}",
        f'quote it to match the exact text: "{value}"' if number else "",
    )


CONDITION: Final = Kind(_condition, {"type": ["string", "boolean"]})


def field_name(kind: str, example: str = "") -> Kind:
    """The name of a header or cookie (a token), or of a query parameter (any text)."""
    token = kind != "query parameter"

    def parse(value: object) -> str:
        if not isinstance(value, str) or not (TOKEN.fullmatch(value) if token else value):
            hint = f"like {example}" if example else ""
            raise BadValue(f"{_shown(value)} is not a valid {kind} name", hint)
        return value

    schema = {"type": "string", "pattern": f"^{TOKEN.pattern}$" if token else "."}
    return Kind(parse, {**schema, **({"examples": [example]} if example else {})})


_QUERY_ONLY_HINT: Final = (
    "true (only the parameters match.query names), or a list of the others allowed"
)


def _query_only(value: object) -> frozenset[str]:
    """``true``: only the names ``query`` gives; a list: those and these may be there."""
    if value is True:
        return frozenset()
    if value is False:
        raise BadValue("false is the default; leave the key out", _QUERY_ONLY_HINT)
    if not isinstance(value, list) or not all(isinstance(i, str) and i for i in value):
        raise BadValue("must be true or a list of names", _QUERY_ONLY_HINT)
    return frozenset(value)


QUERY_ONLY: Final = Kind(
    _query_only,
    {"anyOf": [{"const": True}, {"type": "array", "items": {"type": "string", "minLength": 1}}]},
)


ROUTE_NAME: Final = named(
    "invoices-read", "names appear in metrics, logs and admin URLs, like 'invoices-read'"
)


OR_BOOLEAN: Final = _Around(
    wrap=lambda value, read: value if isinstance(value, bool) else read(value),
    schema=_or_boolean,
)
"""A part of a route that may be written ``true`` or ``false`` (on with its defaults,
or off): the boolean passes as it is, for the route's reader to turn into the part."""


# ---------------------------------------------------------------- a route's shadow (and migrate)

NOISE_SHARE: Final = share(
    "50%", "the share of pairs a path must differ in to be noisy, like 50%", bare=True, some=True
)
SHADOW_TIMEOUT: Final = within(DURATION, (3600.0, "1h"))


def _tolerance(value: object) -> float:
    try:
        number = float(value) if isinstance(value, str | int | float) else None
    except ValueError:
        number = None
    if number is None or isinstance(value, bool):
        raise BadValue(f"must be a number, got {_shown(value)}", "for example 1e-9")
    if not 0.0 <= number < 1.0:  # NaN too
        raise BadValue(
            f"must be at least 0 and below 1, got {value!r}",
            "it is relative and absolute: 1e-9 forgives float formatting, 0 wants exact",
        )
    return number


FLOAT_TOLERANCE: Final = Kind(
    _tolerance,
    {
        "anyOf": [
            {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
            {"type": "string", "pattern": r"^\s*\d*\.?\d+([eE][-+]?\d+)?\s*$"},
        ],
        "examples": ["1e-9"],
    },
)


HEADER_NAME: Final = field_name("header", "Content-Type")
_PATH_HINT: Final = "write a JSON path like $.generated_at or $.items[*].id"


def _json_path(value: object) -> Any:
    from strangler.config.shadow_model import parse_json_path

    if not isinstance(value, str):
        raise BadValue(f"expected a JSON path, got {_shown(value)}", _PATH_HINT)
    return parse_json_path(value)


JSON_PATH: Final = Kind(
    _json_path,
    {
        "type": "string",
        "pattern": r"^\s*\$(\.(\*|[^.\[\]\s'\"]+)|\[\s*(\*|[0-9]+)\s*\]|\['([^'\\]|\\.)*'\]"
        r"|\[\"([^\"\\]|\\.)*\"\])*\s*$",
        "examples": ["$.generated_at"],
    },
)


class Switch(_Around):
    """A mapping that may be written ``true`` / ``false`` (its ``enabled``); written
    as a mapping, it is enabled unless it says otherwise. ``rule`` checks the value
    read (across its keys): it returns it, or raises ``BadValue``."""

    def __init__(self, example: str, rule: Callable[[Any], Any] | None = None) -> None:
        def expand(value: object) -> object:
            if isinstance(value, bool):
                return {"enabled": value}
            if not isinstance(value, dict):
                raise BadValue(
                    f"must be true, false or a mapping, got {_shown(value)}",
                    f"for example {example}",
                )
            return {"enabled": True, **value}

        super().__init__(before=expand, after=rule, schema=_or_boolean)


def _noise_rule(noise: Any) -> Any:
    if noise.samples > noise.min_observations:
        raise BadValue(
            f"samples ({noise.samples}) cannot exceed min_observations ({noise.min_observations})",
            "a path is noisy when it differed in 'samples' of at least 'min_observations' pairs",
        )
    return noise


CONFIRM: Final = Switch("confirm: {enabled: true, max_share: 10%}")
NOISE: Final = Switch(
    "noise: {enabled: true, samples: 2, min_observations: 20, share: 50%, window: 10m}", _noise_rule
)


# ---------------------------------------------------------------- a route's migrate

STAGES_EXAMPLE: Final = (
    "like stages: [{canary: {percent: [5%, 25%, 50%], step_every: 15m}}, migrated]"
)
PARITY: Final = share(
    "99.9%", "the share of compared answers that must agree, like 99.9%", bare=True, some=True
)


def _steps(value: object) -> tuple[float, ...]:
    """Canary shares, each in (0, 1), growing; one share may be written alone."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise BadValue("is empty", "list the shares in order, like [1%, 5%, 25%]")
    steps: list[float] = []
    for item in items:
        ratio = float(units.percent(item))
        if not 0.0 < ratio < 1.0:
            raise BadValue(
                f"{ratio:.4%} is not a canary share",
                "each share is above 0% and below 100%; the migrated stage is 100%",
            )
        if steps and ratio <= steps[-1]:
            raise BadValue("must grow step by step", "sticky cohorts only ever grow")
        steps.append(ratio)
    return tuple(steps)


_STEP_SCHEMA: Final = {"type": "string", "pattern": _SHARE_TEXT}
CANARY_STEPS: Final = Kind(
    _steps,
    {
        "anyOf": [{"type": "array", "items": _STEP_SCHEMA, "minItems": 1}, _STEP_SCHEMA],
        "examples": [["5%", "25%", "50%"]],
    },
)


def _increase(value: object) -> float:
    """``+0.5%`` (the sign is optional): an allowed increase, as a ratio."""
    text = value.strip().removeprefix("+") if isinstance(value, str) else value
    try:
        return units.percent(text)
    except ValueError as err:
        raise BadValue(str(err), "an allowed increase, like +0.5%") from None


INCREASE: Final = Kind(
    _increase,
    {
        "anyOf": [
            {"type": "string", "pattern": r"^\s*\+?\s*\d+(\.\d+)?\s*%\s*$"},
            {"type": "number", "minimum": 0, "maximum": 100},
        ],
        "examples": ["+0.5%"],
    },
    shown=_as_percent,
)


def _factor(value: object) -> float:
    """``1.2x`` or ``1.2``: at least 1."""
    text = value.strip().lower().removesuffix("x") if isinstance(value, str) else value
    try:
        number = float(text) if isinstance(text, str | int | float) else float("nan")
    except ValueError:
        number = float("nan")
    if isinstance(value, bool) or not 1.0 <= number < float("inf"):
        raise BadValue(
            f"expected a factor of at least 1, like 1.2x, got {_shown(value)}",
            "the new side's p99 may be at most this many times the primary's",
        )
    return number


FACTOR: Final = Kind(
    _factor,
    {
        "anyOf": [
            {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[xX]?\s*$"},
            {"type": "number", "minimum": 1},
        ],
        "examples": ["1.2x"],
    },
)


INTERVAL: Final = within(DURATION, hint="like 10s", least=(0.05, "50ms"))


class OneKey:
    """A list entry that is one of ``shapes``, written ``{name: {...}}`` or just
    ``name`` (its defaults): ``- migrated`` or ``- canary: {percent: [5%]}``."""

    def __init__(self, shapes: dict[str, Any], example: str) -> None:
        self.shapes = shapes
        self.example = example

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        from strangler.config.walker import did_you_mean

        def which(value: object) -> object:
            if isinstance(value, str) and value in self.shapes and not self._bare(value):
                example = getattr(self.shapes[value], "EXAMPLE", "")
                raise BadValue(f"{value!r} needs its settings", f"for example {{{example}}}")
            if isinstance(value, str):
                value = {value: None}
            if not isinstance(value, dict) or len(value) != 1:
                raise BadValue(f"must be one stage, got {_shown(value)}", self.example)
            (name,) = value
            if name not in self.shapes:
                hint = did_you_mean(str(name), self.shapes) or f"one of {', '.join(self.shapes)}"
                raise BadValue(f"{name!r} is not one of {', '.join(self.shapes)}", hint)
            return value

        def body(name: str) -> Any:
            bare: dict[str, Any] | None = {} if self._bare(name) else None  # null: defaults
            return core_schema.no_info_before_validator_function(
                lambda value: bare if value[name] is None else value[name],
                handler.generate_schema(self.shapes[name]),
            )

        return core_schema.no_info_before_validator_function(
            which,
            core_schema.tagged_union_schema(
                {name: body(name) for name in self.shapes}, discriminator=lambda v: next(iter(v))
            ),
        )

    def _bare(self, name: str) -> bool:
        """Whether ``name`` may be written alone: its shape needs no key."""
        import dataclasses

        return all(
            f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            for f in dataclasses.fields(self.shapes[name])
        )

    def __get_pydantic_json_schema__(self, core: Any, handler: Any) -> dict[str, Any]:
        names = list(self.shapes)
        return {
            "anyOf": [
                {"enum": [name for name in names if self._bare(name)]},
                *(
                    {
                        "type": "object",
                        "properties": {
                            name: {"anyOf": [{"type": "null"}, handler(shape)]}
                            if self._bare(name)
                            else handler(shape)
                        },
                        "required": [name],
                        "additionalProperties": False,
                    }
                    for name, shape in zip(names, core["schema"]["choices"].values(), strict=True)
                ),
            ]
        }


class NonEmpty(_Around):
    """A list with at least one entry (``example``: the hint)."""

    def __init__(self, example: str) -> None:
        def given(value: object) -> object:
            if not isinstance(value, list) or not value:
                got = "an empty list" if value == [] else _shown(value)
                raise BadValue(f"must be a non-empty list, got {got}", example)
            return value

        super().__init__(before=given, schema=lambda own: {**own, "minItems": 1})


ONE_OR_MORE: Final = _Around(
    before=lambda value: value if isinstance(value, list) else [value],
    schema=lambda own: {"anyOf": [own, own.get("items", {})]},
)
"""A list, or one entry written alone: ``approval: migrated``."""


# ---------------------------------------------------------------------------- tracing

OTEL_MODULES: Final = (
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
)
_TRACES_PATH: Final = "/v1/traces"


def traces_endpoint(url: str) -> str:
    """The OTLP/HTTP traces URL for ``url``: a base URL gets ``/v1/traces`` (as
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` does), a URL already ending with it is kept.

    >>> traces_endpoint("http://collector:4318"), traces_endpoint("https://otel/v1/traces")
    ('http://collector:4318/v1/traces', 'https://otel/v1/traces')
    """
    return url if url.endswith(_TRACES_PATH) else url + _TRACES_PATH


OTLP: Final = Kind(
    lambda value: traces_endpoint(URL.parse(value)),
    {**URL.schema, "examples": ["http://collector:4318"]},
)


def missing_otel() -> str | None:
    """The first OpenTelemetry module tracing needs that cannot be imported, or None.
    Looked up, not imported: checking a config stays fast."""
    import importlib.util

    for name in OTEL_MODULES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except (ImportError, ValueError):  # a parent package missing or blocked
            return name
    return None


def _installed(tracing: Any) -> Any:
    """``tracing:`` read where the OpenTelemetry packages are missing is a problem at
    its line, so ``strangler check`` says so before ``serve`` would fail (after its
    keys are read: a problem of theirs comes first)."""
    missing = missing_otel()
    if missing is not None:
        raise BadValue(
            "is configured but the OpenTelemetry packages are not installed "
            f"(no module {missing!r})",
            "pip install 'strangler[otel]', or remove tracing:",
        )
    return tracing


NEEDS_OTEL: Final = _Around(after=_installed)
