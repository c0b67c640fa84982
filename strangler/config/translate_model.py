"""The translate spec: what a route's ``translate:`` (and ``translators:``) says, as data.

Frozen, slotted, keyword-only dataclasses, like the rest of ``strangler.config.model``,
and like it the description the config is read by (``described``: pydantic reads the
``Annotated`` kinds, ``kinds`` and ``translate_values``; the attribute docstrings are
the schema's descriptions). A rule across a class's keys is its ``__post_init__``.
Values taken from the YAML into JSON bodies are ``FrozenJSON`` (tuples and read-only
mappings), so a loaded spec can be shared by every request; ``strangler.translate``
thaws a fresh copy each time it writes one into a message.

``strangler.config.validate_translate`` resolves ``{use: NAME}`` and checks the route
parameters steps use; ``strangler.translate.registry.build_plan`` compiles a
``TranslateSpec`` into a ``Plan`` once per route. The meaning of every step is
documented on its class and in ``strangler/translate/__init__.py``.

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

import dataclasses
import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Final, Literal, TypeAlias, cast

from strangler.config.model import NOWHERE, Location
from strangler.config.values import BadValue

FrozenJSON: TypeAlias = (
    str | int | float | bool | tuple["FrozenJSON", ...] | Mapping[str, "FrozenJSON"] | None
)
"""A JSON value from the config, immutable: arrays are tuples, objects read-only mappings."""

OnError = Literal["fail", "passthrough"]

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
    """A parsed JSON path (``translate_values.parse_json_path``): ``text`` as written,
    ``segments`` from the root (none: the root, ``$``)."""

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
    """``path: {regex: {pattern, replace}}``: ``re.sub`` once; a path it misses is kept."""

    EXAMPLE: ClassVar[str] = "regex: {pattern: '^/v1/(.*)', replace: '/v2/\\1'}"
    pattern: Annotated[str, kinds.STRICT]
    """A Python regular expression, matched against the path."""
    replace: Annotated[str, kinds.STRICT] = ""
    """What the match becomes (\\1, \\g<name>: the pattern's groups); no spaces, '?' or '#'."""

    def __post_init__(self) -> None:
        tv.check_regex(self.pattern, self.replace)
        if any(c in "?#" or c.isspace() for c in self.replace):
            # the regex runs on the path alone: a '?' would sit before the client's query
            raise tv.problem(
                "replace",
                f"{self.replace!r} must not contain spaces, '?' or '#'",
                "change the query with a query step, or use rewrite: /path?name={param}",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Prefix:
    """``prefix: {strip, add}``: take whole leading segments off the path (the request
    fails when they are not there), then put ``add`` in front."""

    strip: Annotated[str, tv.URL_PATH] | None = None
    """Whole leading segments to take off, like /api/v1."""
    add: Annotated[str, tv.URL_PATH] | None = None
    """Put in front of the path, like /v2."""

    def __post_init__(self) -> None:
        if self.strip is None and self.add is None:
            raise BadValue("needs strip, add or both", "like prefix: {strip: /api/v1, add: /v2}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PathStep:
    """``path:``, request only: at most one of ``rewrite``, ``regex`` and ``prefix``."""

    EXAMPLE: ClassVar[str] = "path: {rewrite: /v2/customers/{id}}"
    kind: ClassVar[str] = "path"
    rewrite: Annotated[str, tv.REWRITE] | None = None
    """A new path: {name} is the route's parameter (percent-encoded, '/' kept),
    {query.NAME} a query parameter moved into the path; ?name={param} sets one."""
    regex: RegexRewrite | None = None
    """re.sub once on the path."""
    prefix: Prefix | None = None
    """Swap a leading part of the path."""
    host: Annotated[str, tv.HOST] | None = None
    """The Host header sent upstream, like new.example or new.example:8443."""

    def __post_init__(self) -> None:
        forms = [k for k in ("rewrite", "regex", "prefix") if getattr(self, k) is not None]
        if len(forms) > 1:
            raise tv.problem(
                forms[1],
                f"use one of rewrite, regex and prefix, not {' and '.join(forms)}",
                "put each in its own path step if both are really meant",
            )
        if not forms and self.host is None:
            raise BadValue("is empty", "give one of rewrite, regex, prefix, host")


class _InOrder:
    """A step whose keys are operations that run in the order written (``tv.ORDERED``
    sets ``order``); one at least."""

    __slots__ = ()

    @property
    def ops(self) -> tuple[tuple[str, Any], ...]:
        """The operations given, in the order written: (key, value)."""
        step: Any = self
        keys = step.order or [f.name for f in dataclasses.fields(step) if f.name != "order"]
        return tuple((key, getattr(step, key)) for key in keys if getattr(step, key) is not None)

    def __post_init__(self) -> None:
        if not self.ops:
            keys = [f.name for f in dataclasses.fields(cast(Any, self)) if f.name != "order"]
            raise BadValue("is empty", f"give {', '.join(keys)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryStep(_InOrder):
    """``query:``, request only; its operations run in the order written."""

    kind: ClassVar[str] = "query"
    rename: Annotated[Mapping[str, Annotated[str, kinds.STRICT]], tv.FILLED] | None = None
    """{old: new}: every parameter named old takes the name new, in place."""
    drop: tv.NAMES | None = None
    """Remove every parameter of these names."""
    set: Annotated[Mapping[str, Annotated[str, tv.TEMPLATE]], tv.FILLED] | None = None
    """{name: value}: the first parameter of that name takes the value ({param}: the
    route's), the others of the name go; appended when there is none."""
    map: (
        Annotated[
            Mapping[str, Annotated[Mapping[str, Annotated[str, kinds.STRICT]], tv.FILLED]],
            tv.FILLED,
        ]
        | None
    ) = None
    """{name: {old: new}}: translate values; a value not in the map is kept."""
    order: Annotated[tuple[str, ...], kinds.NOT_A_KEY] = ()


# ---------------------------------------------------------------------------- headers


@dataclass(frozen=True, slots=True, kw_only=True)
class RewritePaths:
    """``rewrite_paths: {from, to, absolute}``, response only: in ``Location``,
    ``Content-Location`` and ``Link``, a URL path starting with the whole segments
    ``from`` starts with ``to`` instead."""

    EXAMPLE: ClassVar[str] = "rewrite_paths: {from: /api/v2, to: /api/v1}"
    from_: Annotated[str, kinds.key("from"), tv.URL_PATH]
    """The new service's path prefix, like /api/v2."""
    to: Annotated[str, tv.URL_PATH]
    """The legacy path prefix written instead, like /api/v1."""
    absolute: Annotated[bool, kinds.STRICT] | None = None
    """true: always an absolute URL on the client's origin (as a legacy app answering
    absolute URLs sent); false: always relative; left out: the new service's form (an
    absolute URL put on the client's origin, never the new service's own host)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeadersStep(_InOrder):
    """``headers:``, either side; its operations run in the order written."""

    kind: ClassVar[str] = "headers"
    set: Annotated[Mapping[tv.HEADER, Annotated[str, tv.HEADER_VALUE]], tv.FILLED] | None = None
    """{Name: value}: replace every value of the header with one."""
    rename: Annotated[Mapping[tv.HEADER, tv.HEADER], tv.FILLED] | None = None
    """{Old: New}: every Old value moves to New (replacing New)."""
    remove: Annotated[tuple[tv.HEADER, ...], tv.LISTED, kinds.ONE_OR_MORE] | None = None
    """Header names to remove."""
    from_param: Annotated[Mapping[tv.HEADER, Annotated[str, kinds.STRICT]], tv.FILLED] | None = None
    """{Header: param}: set the header to a route template parameter."""
    rewrite_paths: RewritePaths | None = None
    """Response only: URL paths in Location, Content-Location and Link."""
    order: Annotated[tuple[str, ...], kinds.NOT_A_KEY] = ()


# ---------------------------------------------------------------------------- JSON body


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonMove:
    """``move: {from, to}``: take the value at ``from`` and put it at ``to`` (creating
    objects on the way). Absent ``from``: nothing happens. With ``[*]``, both paths
    share everything up to the last ``[*]`` and the move runs per element."""

    EXAMPLE: ClassVar[str] = "move: {from: customer.name, to: name}"
    op: ClassVar[str] = "move"
    from_: Annotated[JsonPath, kinds.key("from"), tv.JSON_PATH]
    to: tv.PATH

    def __post_init__(self) -> None:
        stars = [i for i, s in enumerate(self.from_.segments) if s is Wildcard.ANY]
        cut = stars[-1] + 1 if stars else 0
        head, tail = self.to.segments[:cut], self.to.segments[cut:]
        if head != self.from_.segments[:cut] or not tail or Wildcard.ANY in tail:
            raise tv.problem(
                "to",
                f"with [*], 'to' must share 'from' up to its last [*] ({self.from_} → {self.to})",
                "like from: lines[*].price, to: lines[*].amount; or use each",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonRename(JsonMove):
    """``rename: {from, to}``: the same as ``move``."""

    op: ClassVar[str] = "rename"


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonDrop:
    """``drop: [paths]``: remove them; absent ones are fine."""

    paths: tv.PATHS


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonSet:
    """``set: {path, value}``: write ``value`` (creating objects on the way)."""

    EXAMPLE: ClassVar[str] = "set: {path: version, value: 2}"
    path: tv.PATH
    value: Annotated[FrozenJSON, tv.JSON]


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonDefault:
    """``default: {path, value}``: write ``value`` where the path is absent or null."""

    EXAMPLE: ClassVar[str] = "default: {path: currency, value: EUR}"
    path: tv.PATH
    value: Annotated[FrozenJSON, tv.JSON]


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonWrap:
    """``wrap: data``: the body becomes ``{"data": body}`` (``a.b``: ``{"a": {"b": body}}``)."""

    keys: Annotated[tuple[str, ...], tv.KEYS]


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonUnwrap:
    """``unwrap: data``: the body becomes ``body["data"]``; absent is an error."""

    keys: Annotated[tuple[str, ...], tv.KEYS]


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonMap:
    """``map: {path, values, other}``: translate a value through ``values``.

    Keys match JSON values by type and value (``"1"`` is not ``1``; ``true`` is not
    ``1``). ``other: error`` (default): a value not in the map is an error;
    ``keep``: it stays. Absent path: nothing happens.
    """

    EXAMPLE: ClassVar[str] = "map: {path: status, values: {OPEN: open, PAID: paid}}"
    path: tv.PATH
    values: Annotated[tuple[tuple[Any, FrozenJSON], ...], tv.JSON_MAP]
    """{old: new}: the value each value becomes (old compared by type and value)."""
    other: Literal["error", "keep"] = "error"


ConvertTo = Literal["string", "int", "float", "bool"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonConvert:
    """``convert: {path, to}``: change a scalar's type, exactly or not at all.

    ``int`` from ``"12"``, ``12.0`` (not ``12.5``, not ``"1e3"``); ``float`` from a
    number or a decimal string; ``string`` from a number or a boolean (``"true"``);
    ``bool`` from ``true``/``false``, ``"true"``/``"false"``, ``0``/``1``. ``null``
    stays ``null``; absent path: nothing happens.
    """

    EXAMPLE: ClassVar[str] = "convert: {path: id, to: string}"
    path: tv.PATH
    to: ConvertTo


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonDate:
    """``date: {path, from, to}``: reformat a date or time.

    A ``from`` pattern without time fields reads a date, and ``iso8601`` then writes
    ``YYYY-MM-DD``; with them, a datetime (``YYYY-MM-DDTHH:MM:SS[.ffffff][+HH:MM]``).
    Epoch values are UTC; a naive time is taken as UTC when written as epoch.
    """

    EXAMPLE: ClassVar[str] = "date: {path: born, from: '%d/%m/%Y', to: iso8601}"
    path: tv.PATH
    from_: Annotated[str, kinds.key("from"), tv.DATE_FORMAT]
    to: Annotated[str, tv.DATE_FORMAT]


ScaleAs = Literal["decimal_string", "int", "number"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonScale:
    """``scale: {path, to, multiply | divide, as, places}``: exact decimal arithmetic.

    The value (an integer, a decimal string like ``"-12.34"``, or a JSON number read
    as the shortest decimal that gives back its double) is multiplied or divided
    with ``decimal.Decimal``, never floats. Nothing is ever rounded: a result that is
    not exact, has more than ``places`` decimals, or is not whole for ``as: int`` is
    an error. ``as: decimal_string`` (the default when dividing) writes ``"12.34"``
    with exactly ``places`` decimals (default: k when dividing by 10^k); ``int`` (the
    default when multiplying) a JSON integer; ``number`` a JSON number (an error
    unless a double holds it exactly). ``to``: write the result there and remove
    ``path``; absent ``to``: in place.
    """

    EXAMPLE: ClassVar[str] = "scale: {path: total_cents, to: total, divide: 100}"
    path: tv.PATH
    to: tv.PATH | None = None
    multiply: Annotated[str, tv.FACTOR] | None = None
    """A positive decimal, like 100, or '0.01' as text to keep it exact."""
    divide: Annotated[str, tv.FACTOR] | None = None
    """A positive decimal, like 100."""
    as_: Annotated[ScaleAs | None, kinds.key("as")] = None
    places: Annotated[int, tv.PLACES] | None = None
    """Decimals written (0 to 30)."""

    def __post_init__(self) -> None:
        if (self.multiply is None) == (self.divide is None):
            raise BadValue("needs exactly one of multiply and divide", f"like {self.EXAMPLE}")
        if self.to is not None and (self.path.has_wildcard or self.to.has_wildcard):
            raise tv.problem(
                "to",
                f"'to' works on one value; {self.path} or {self.to} has [*]",
                "use each: {path: lines, do: [{scale: {path: cents, to: amount, ...}}]}",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonEach:
    """``each: {path, do: [ops]}``: run ``do`` on every element of the array at ``path``,
    each element as the root. Absent path: nothing happens; not an array: an error."""

    EXAMPLE: ClassVar[str] = "each: {path: lines, do: [{drop: internal}]}"
    path: tv.PATH
    ops: Annotated[tuple[Annotated[JsonOp, tv.JSON_OPS], ...], kinds.key("do"), tv.LISTED]


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonRequire:
    """``require: [paths]``: each must be present (``null`` counts as present)."""

    paths: tv.PATHS


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
"""One JSON operation, written ``{name: settings}`` (``rename`` is a ``JsonRename``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JsonStep:
    """``json: [ops]``, either side: operations on the parsed body, in order."""

    EXAMPLE: ClassVar[str] = "json: [{rename: {from: a, to: b}}]"
    kind: ClassVar[str] = "json"
    ops: Annotated[tuple[Annotated[JsonOp, tv.JSON_OPS], ...], tv.LISTED]


# ---------------------------------------------------------------------------- status, error


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusRule:
    """Which statuses a rule covers: inclusive ``(low, high)`` ranges; ``text`` as written
    (``translate_values.parse_status_rule``)."""

    ranges: tuple[tuple[int, int], ...]
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusStep:
    """``status: {map: {201: 200}}``, response only; the reason phrase follows."""

    EXAMPLE: ClassVar[str] = "status: {map: {201: 200}}"
    kind: ClassVar[str] = "status"
    map: Annotated[Mapping[Annotated[int, tv.STATUS], Annotated[int, tv.STATUS]], tv.FILLED]
    """The new service's status -> the one legacy answered with, like {201: 200}."""


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
    """``error: {when, body, status, content_type}``, response only: the legacy error
    format. A response whose status matches ``when`` gets ``body``, each ``"$.path"``
    string in it replaced by that value of the new service's error body (``null`` when
    absent or not JSON; ``"$"`` is the whole body, ``"$$x"`` the literal ``"$x"``); it
    skips the ``json`` steps of the same list: they describe the success body."""

    EXAMPLE: ClassVar[str] = "error: {when: '>=500', body: {message: $.detail}, status: 502}"
    kind: ClassVar[str] = "error"
    when: Annotated[StatusRule, tv.STATUS_RULE] = StatusRule(ranges=((400, 599),), text=">=400")
    """The statuses whose body is rewritten, like '>=400', '4xx', '500-599', 404, or a list."""
    body: Annotated[BodyTemplate, tv.BODY_TEMPLATE]
    """The legacy error body; a "$.path" string is that value of the new service's body."""
    status: Annotated[int, tv.STATUS] | None = None
    """Replaces the status; left out, the status stays."""
    content_type: Annotated[str, tv.JSON_MEDIA] | None = None
    """A JSON media type; left out, the one legacy answered that status with on the route
    (learned from its answers), else application/json; charset=utf-8."""


# ---------------------------------------------------------------------------- hooks


@dataclass(frozen=True, slots=True, kw_only=True)
class Hook:
    """A hook function, imported and checked at load (``translate_values.load_hook``)."""

    target: str  # as written: module:function
    function: Callable[..., object]


@dataclass(frozen=True, slots=True, kw_only=True)
class HookStep:
    """``hook: "package.module:function"`` (or ``{call: ..., body: false}``), either side:
    the function gets the message and returns it (the same object changed, or a new one
    of the same class)."""

    EXAMPLE: ClassVar[str] = (
        "hook: 'mypkg.hooks:fix' or hook: {call: 'mypkg.hooks:fix', body: false}"
    )
    kind: ClassVar[str] = "hook"
    call: Annotated[Hook, tv.HOOK]
    """The function, 'module:function' (or 'module.function'): one argument, not async."""
    body: Annotated[bool, kinds.STRICT] = True
    """false: the route keeps streaming and the hook sees body None."""


RequestStep: TypeAlias = PathStep | QueryStep | HeadersStep | JsonStep | HookStep
ResponseStep: TypeAlias = StatusStep | HeadersStep | JsonStep | ErrorStep | HookStep


# ---------------------------------------------------------------------------- translators


@dataclass(frozen=True, slots=True, kw_only=True)
class Translator:
    """Translation steps: inline under a route, or translators.NAME (``name`` set)."""

    EXAMPLE: ClassVar[str] = "{request: [{path: {rewrite: /v2/c/{id}}}], response: [...]}"
    max_body: Annotated[int, tv.MAX_BODY] = DEFAULT_MAX_BODY
    """The most bytes (as received, and again once decoded) a body step reads; a
    longer request body is a 413, a longer response body a 502."""
    on_error: OnError = "fail"
    """fail: answer an error when a body step fails (invalid JSON, a missing required
    field, a failing hook); passthrough: send the body on as it came."""
    request: tuple[Annotated[RequestStep, tv.REQUEST_STEPS], ...] = ()
    """Steps on the request, in order: path, query, headers, json, hook."""
    response: tuple[Annotated[ResponseStep, tv.RESPONSE_STEPS], ...] = ()
    """Steps on the response, in order: status, headers, json, error, hook."""
    name: Annotated[str | None, kinds.NOT_A_KEY] = None

    def __post_init__(self) -> None:
        if not self.request and not self.response:
            raise BadValue(
                "must have request or response steps",
                "add request: [...] or response: [...], or leave it out",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Use:
    """``{use: NAME}``: the top-level translators.NAME, as it is."""

    use: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TranslateSpec:
    """A route's ``translate:``: its translators, outermost first (see "The onion";
    ``build_plan`` says which wins where they disagree)."""

    layers: tuple[Translator, ...]
    at: Location = NOWHERE


# Last, as in model.py: kinds reads values, which reads model; the annotations above are
# strings that pydantic resolves only when it reads them.
from strangler.config import kinds  # noqa: E402
from strangler.config import translate_values as tv  # noqa: E402
