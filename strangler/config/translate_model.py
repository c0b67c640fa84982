"""The translate spec: what a route's ``translate:`` (and ``translators:``) says, as data.

Frozen, slotted, keyword-only dataclasses, like the rest of ``strangler.config.model``;
every step and JSON operation carries the ``Location`` it was written at, so a
runtime error and ``strangler check`` can both point at the line. Values taken from
the YAML into JSON bodies are ``FrozenJSON`` (tuples and read-only mappings), so a
loaded spec can be shared by every request; ``strangler.translate`` thaws a fresh copy
each time it writes one into a message.

``strangler.config.validate_translate`` builds these from YAML nodes;
``strangler.translate.registry.build_plan`` compiles a ``TranslateSpec`` into a
``Plan`` once per route. The meaning of every step is documented on its class and in
``strangler/translate/__init__.py``.

The onion
---------
A route's ``translate:`` is one translator, or a list of them (inline, or
``{use: NAME}`` for a top-level ``translators.NAME``); ``TranslateSpec.layers`` holds
them outermost first. A request passes every layer's ``request`` steps in list order
(layer 1, then layer 2 ...); the response passes every layer's ``response`` steps in
*reverse* layer order (... layer 2, then layer 1), so the layer that changed the
request first is the last to change the response, and each layer sees the response
in the form its own request half produced. Within one layer each list runs top to
bottom, as written.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, ClassVar, Final, Literal, TypeAlias

from strangler.config.model import NOWHERE, Location

__all__ = [
    "DEFAULT_MAX_BODY",
    "ON_ERROR",
    "BodyTemplate",
    "ConvertTo",
    "DateFormat",
    "ErrorStep",
    "FrozenJSON",
    "HeaderFromParam",
    "HeaderOp",
    "HeaderRemove",
    "HeaderRename",
    "HeaderSet",
    "HeadersStep",
    "Hook",
    "HookStep",
    "JsonConvert",
    "JsonDate",
    "JsonDefault",
    "JsonDrop",
    "JsonEach",
    "JsonMap",
    "JsonMove",
    "JsonOp",
    "JsonPath",
    "JsonRequire",
    "JsonScale",
    "JsonSet",
    "JsonStep",
    "JsonUnwrap",
    "JsonWrap",
    "OnError",
    "PathStep",
    "QueryDrop",
    "QueryMap",
    "QueryOp",
    "QueryRename",
    "QuerySet",
    "QueryStep",
    "RegexRewrite",
    "RequestStep",
    "ResponseStep",
    "RewritePaths",
    "ScaleAs",
    "Segment",
    "StatusRule",
    "StatusStep",
    "TranslateSpec",
    "Translator",
    "Wildcard",
]

FrozenJSON: TypeAlias = (
    str | int | float | bool | tuple["FrozenJSON", ...] | Mapping[str, "FrozenJSON"] | None
)
"""A JSON value from the config, immutable: arrays are tuples, objects read-only mappings."""

OnError = Literal["fail", "passthrough"]
ON_ERROR: Final[tuple[OnError, ...]] = ("fail", "passthrough")

DEFAULT_MAX_BODY: Final = 1 << 20
"""``max_body`` when a translator does not say: 1 MiB."""


# ---------------------------------------------------------------------------- JSON paths


class Wildcard(enum.Enum):
    """``[*]`` in a JSON path: every element of an array."""

    ANY = "*"


Segment: TypeAlias = str | int | Wildcard
"""One step of a JSON path: an object key, an array index (negative: from the end) or ``[*]``."""


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed JSON path. ``text`` is as written; ``segments`` empty means the root (``$``).

    ``customer.address.city`` is ``("customer", "address", "city")``; ``lines[0].price``
    is ``("lines", 0, "price")``; ``lines[*].price`` is ``("lines", Wildcard.ANY,
    "price")``; ``$.x`` is ``("x",)``.
    """

    text: str
    segments: tuple[Segment, ...]

    def __str__(self) -> str:
        return self.text

    @property
    def has_wildcard(self) -> bool:
        return any(s is Wildcard.ANY for s in self.segments)


# ---------------------------------------------------------------------------- request path


@dataclass(frozen=True, slots=True, kw_only=True)
class RegexRewrite:
    """``path: {regex: {pattern, replace}}``: ``re.sub`` once; a path it misses is kept.

    ``replace`` uses Python's syntax (``\\1``, ``\\g<name>``), checked against the
    pattern's groups when the config is loaded.
    """

    pattern: str
    replace: str


@dataclass(frozen=True, slots=True, kw_only=True)
class PathStep:
    """``path:``, request only. At most one of ``rewrite``, ``regex`` and the prefix pair.

    ``rewrite``: a new path from a template; ``{name}`` is the route's template
    parameter, percent-encoded (``/`` kept). ``strip``/``add``: take whole leading
    segments off the path (the request fails when they are not there), then put
    ``add`` in front. ``host``: the ``Host`` header sent upstream.
    """

    kind: ClassVar[str] = "path"
    rewrite: str | None = None
    regex: RegexRewrite | None = None
    strip: str | None = None
    add: str | None = None
    host: str | None = None
    at: Location = NOWHERE


# ---------------------------------------------------------------------------- query


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryRename:
    """``rename: {old: new}``: every parameter named ``old`` takes the name ``new``, in place."""

    names: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryDrop:
    """``drop: [name]``: remove every parameter of those names."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class QuerySet:
    """``set: {name: value}``: the first parameter of that name takes the value (others
    of the name go); when there is none it is appended."""

    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryMap:
    """``map: {name: {old: new}}``: translate values; a value not in the map is kept."""

    maps: tuple[tuple[str, Mapping[str, str]], ...]


QueryOp: TypeAlias = QueryRename | QueryDrop | QuerySet | QueryMap


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryStep:
    """``query:``, request only; its operations run in the order written."""

    kind: ClassVar[str] = "query"
    ops: tuple[QueryOp, ...]
    at: Location = NOWHERE


# ---------------------------------------------------------------------------- headers


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderSet:
    """``set: {Name: value}``: replace every value of the header with one."""

    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderRename:
    """``rename: {Old: New}``: every ``Old`` value moves to ``New`` (replacing ``New``)."""

    names: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderRemove:
    """``remove: [Name]``."""

    names: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class HeaderFromParam:
    """``from_param: {Header: param}``: set the header to a route template parameter."""

    params: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RewritePaths:
    """``rewrite_paths: {from, to, absolute}``, response only: in ``Location``,
    ``Content-Location`` and ``Link``, a URL path starting with the whole segments
    ``from`` starts with ``to`` instead.

    ``absolute``: ``None`` keeps the new service's form (a relative URL stays
    relative; an absolute one is put on the client's origin, never the new service's
    own host); ``True`` always writes an absolute URL on the client's origin (what a
    legacy app that answers absolute URLs sent); ``False`` always a relative one."""

    __pydantic_config__: ClassVar[dict[str, object]] = {
        "extra": "forbid",  # kinds.READ (this module cannot import kinds first)
        "use_attribute_docstrings": True,
    }
    EXAMPLE: ClassVar[str] = "rewrite_paths: {from: /api/v2, to: /api/v1}"
    from_: Annotated[str, kinds.key("from"), kinds.URL_PATH]
    """The new service's path prefix, like /api/v2."""
    to: Annotated[str, kinds.URL_PATH]
    """The legacy path prefix written instead, like /api/v1."""
    absolute: Annotated[bool, kinds.STRICT] | None = None
    """true: always an absolute URL on the client's origin; false: always relative;
    left out: the new service's form."""


HeaderOp: TypeAlias = HeaderSet | HeaderRename | HeaderRemove | HeaderFromParam | RewritePaths


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadersStep:
    """``headers:``, either side; its operations run in the order written."""

    kind: ClassVar[str] = "headers"
    ops: tuple[HeaderOp, ...]
    at: Location = NOWHERE


# ---------------------------------------------------------------------------- JSON body


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonMove:
    """``rename``/``move: {from, to}``: take the value at ``from`` and put it at ``to``
    (creating objects on the way). Absent ``from``: nothing happens. With ``[*]``,
    both paths share everything up to the last ``[*]`` and the move runs per element."""

    op: str  # "rename" or "move", as written
    from_: JsonPath
    to: JsonPath
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonDrop:
    """``drop: [paths]``: remove them; absent ones are fine."""

    paths: tuple[JsonPath, ...]
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonSet:
    """``set: {path, value}``: write ``value`` (creating objects on the way)."""

    path: JsonPath
    value: FrozenJSON
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonDefault:
    """``default: {path, value}``: write ``value`` where the path is absent or null."""

    path: JsonPath
    value: FrozenJSON
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonWrap:
    """``wrap: data``: the body becomes ``{"data": body}`` (``a.b``: ``{"a": {"b": body}}``)."""

    keys: tuple[str, ...]
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonUnwrap:
    """``unwrap: data``: the body becomes ``body["data"]``; absent is an error."""

    keys: tuple[str, ...]
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonMap:
    """``map: {path, values, other}``: translate a value through ``values``.

    Keys match JSON values by type and value (``"1"`` is not ``1``; ``true`` is not
    ``1``). ``other: error`` (default): a value not in the map is an error;
    ``keep``: it stays. Absent path: nothing happens.
    """

    path: JsonPath
    values: tuple[tuple[str | int | float | bool | None, FrozenJSON], ...]
    other: Literal["error", "keep"] = "error"
    at: Location = NOWHERE


ConvertTo = Literal["string", "int", "float", "bool"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonConvert:
    """``convert: {path, to}``: change a scalar's type, exactly or not at all.

    ``int`` from ``"12"``, ``12.0`` (not ``12.5``, not ``"1e3"``); ``float`` from a
    number or a decimal string; ``string`` from a number or a boolean (``"true"``);
    ``bool`` from ``true``/``false``, ``"true"``/``"false"``, ``0``/``1``. ``null``
    stays ``null``; absent path: nothing happens.
    """

    path: JsonPath
    to: ConvertTo
    at: Location = NOWHERE


DateFormat: TypeAlias = str
"""``iso8601``, ``epoch`` (seconds), ``epoch_ms`` or a ``strftime`` pattern (has a ``%``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonDate:
    """``date: {path, from, to}``: reformat a date or time.

    A ``from`` pattern without time fields reads a date, and ``iso8601`` then writes
    ``YYYY-MM-DD``; with them, a datetime (``YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM]``).
    Epoch values are UTC; a naive time is taken as UTC when written as epoch.
    """

    path: JsonPath
    from_: DateFormat
    to: DateFormat
    at: Location = NOWHERE


ScaleAs = Literal["decimal_string", "int", "number"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonScale:
    """``scale: {path, to, multiply | divide, as, places}``: exact decimal arithmetic.

    The value (an integer, a decimal string like ``"-12.34"``, or a JSON number read
    as the shortest decimal that gives back its double) is multiplied or divided by
    ``factor`` with ``decimal.Decimal``, never floats. Nothing is ever rounded: a
    result that is not exact, has more than ``places`` decimals, or is not whole for
    ``as: int`` is an error. ``as: decimal_string`` writes ``"12.34"`` with exactly
    ``places`` decimals (default: k when dividing by 10^k); ``int`` a JSON integer;
    ``number`` a JSON number (an error unless a double holds it exactly). ``to``: write
    the result there and remove ``path``; absent ``to``: in place.
    """

    path: JsonPath
    to: JsonPath | None = None
    factor: str  # a positive decimal, as text (Decimal(factor))
    divide: bool
    as_: ScaleAs
    places: int | None = None
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonEach:
    """``each: {path, do: [ops]}``: run ``do`` on every element of the array at ``path``,
    each element as the root. Absent path: nothing happens; not an array: an error."""

    path: JsonPath
    ops: tuple[JsonOp, ...]
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonRequire:
    """``require: [paths]``: each must be present (``null`` counts as present)."""

    paths: tuple[JsonPath, ...]
    at: Location = NOWHERE


JsonOp: TypeAlias = (
    JsonMove
    | JsonDrop
    | JsonSet
    | JsonDefault
    | JsonWrap
    | JsonUnwrap
    | JsonMap
    | JsonConvert
    | JsonDate
    | JsonScale
    | JsonEach
    | JsonRequire
)


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonStep:
    """``json: [ops]``, either side: operations on the parsed body, in order."""

    kind: ClassVar[str] = "json"
    ops: tuple[JsonOp, ...]
    at: Location = NOWHERE


# ---------------------------------------------------------------------------- status, error


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRule:
    """Which statuses a rule covers: inclusive ``(low, high)`` ranges.

    Written ``">=400"``, ``"<300"``, ``"4xx"``, ``"400-499"``, ``404`` or a list of them.
    """

    ranges: tuple[tuple[int, int], ...]
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusStep:
    """``status: {map: {201: 200}}``, response only; the reason phrase follows."""

    __pydantic_config__: ClassVar[dict[str, object]] = {
        "extra": "forbid",  # kinds.READ (this module cannot import kinds first)
        "use_attribute_docstrings": True,
    }
    EXAMPLE: ClassVar[str] = "status: {map: {201: 200}}"
    kind: ClassVar[str] = "status"
    map: Annotated[
        Mapping[Annotated[int, kinds.STATUS], Annotated[int, kinds.STATUS]], kinds.FILLED
    ]
    """The new service's status -> the one legacy answered with, like {201: 200}."""
    at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE


BodyTemplate: TypeAlias = (
    JsonPath
    | str
    | int
    | float
    | bool
    | tuple["BodyTemplate", ...]
    | Mapping[str, "BodyTemplate"]
    | None
)
"""A JSON value whose ``"$..."`` strings were JSON paths into the original body."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorStep:
    """``error: {when, body, status}``, response only: the legacy error format.

    For a response whose status matches ``when`` (default ``>=400``) the body becomes
    ``body`` with each ``"$.path"`` string replaced by that value of the new service's
    error body (``null`` when absent or when that body is not JSON; ``"$"`` is the
    whole body; ``"$$x"`` is the literal ``"$x"``), and ``Content-Type`` becomes
    ``content_type``, or when not given the JSON type legacy answered that status with
    on the route (learned from its answers), else ``application/json; charset=utf-8``;
    ``status`` replaces the status. Such a response skips the
    ``json`` steps of the same list: they describe the success body.
    """

    __pydantic_config__: ClassVar[dict[str, object]] = {
        "extra": "forbid",  # kinds.READ (this module cannot import kinds first)
        "use_attribute_docstrings": True,
    }
    EXAMPLE: ClassVar[str] = "error: {when: '>=500', body: {message: $.detail}, status: 502}"
    kind: ClassVar[str] = "error"
    when: Annotated[StatusRule, kinds.STATUS_RULE] = StatusRule(ranges=((400, 599),), text=">=400")
    """The statuses whose body is rewritten, like '>=400', '4xx', '500-599', 404, or a list."""
    body: Annotated[BodyTemplate, kinds.BODY_TEMPLATE]
    """The legacy error body; a "$.path" string is that value of the new service's body."""
    status: Annotated[int, kinds.STATUS] | None = None
    """Replaces the status; left out, the status stays."""
    content_type: Annotated[str, kinds.JSON_MEDIA] | None = None
    """A JSON media type; left out, legacy's own for that status, else JSON UTF-8."""
    at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE


# ---------------------------------------------------------------------------- hooks


@dataclass(frozen=True, slots=True, kw_only=True)
class Hook:
    """A hook function, imported and checked at load (``translate_values.load_hook``)."""

    target: str  # as written: module:function
    function: Callable[..., object]


@dataclass(frozen=True, slots=True, kw_only=True)
class HookStep:
    """``hook: "package.module:function"`` (or ``{call: ..., body: false}``), either side.

    ``function`` was imported and checked when the config was loaded: callable with
    one argument, not ``async``. It gets the message and returns it (the same object
    changed, or a new one of the same class). ``body: false`` lets the route keep
    streaming: the hook then sees ``body`` ``None``.
    """

    __pydantic_config__: ClassVar[dict[str, object]] = {
        "extra": "forbid",  # kinds.READ (this module cannot import kinds first)
        "use_attribute_docstrings": True,
    }
    EXAMPLE: ClassVar[str] = (
        "hook: 'mypkg.hooks:fix' or hook: {call: 'mypkg.hooks:fix', body: false}"
    )
    kind: ClassVar[str] = "hook"
    call: Annotated[Hook, kinds.HOOK]
    """The function, 'module:function' (or 'module.function'): one argument, not async."""
    body: Annotated[bool, kinds.STRICT] = True
    """false: the route keeps streaming and the hook sees body None."""
    at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE


RequestStep: TypeAlias = PathStep | QueryStep | HeadersStep | JsonStep | HookStep
ResponseStep: TypeAlias = StatusStep | HeadersStep | JsonStep | ErrorStep | HookStep


# ---------------------------------------------------------------------------- translators


@dataclass(frozen=True, slots=True, kw_only=True)
class Translator:
    """One translator: inline under a route, or ``translators.NAME`` (``name`` set).

    ``max_body``: the most bytes (as received, and again once decoded) a body step
    reads; a longer request body is a 413, a longer response body a 502.
    ``on_error``: ``fail`` answers an error when a body step fails (invalid JSON, a
    missing required field, a failing hook); ``passthrough`` sends the body on as it
    came (the other steps still apply).
    """

    name: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    on_error: OnError = "fail"
    request: tuple[RequestStep, ...] = ()
    response: tuple[ResponseStep, ...] = ()
    at: Location = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class TranslateSpec:
    """A route's ``translate:``: its translators, outermost first (see "The onion").

    When layers disagree, the strictest wins for the whole route: ``max_body`` is the
    smallest, and ``on_error`` is ``fail`` if any layer with a body step says so.
    """

    layers: tuple[Translator, ...]
    at: Location = NOWHERE


# Last, as in model.py: kinds reads values, which reads model; the annotations above are
# strings that pydantic resolves only when it reads them.
from strangler.config import kinds  # noqa: E402
