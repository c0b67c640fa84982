"""The config file described once, read with pydantic, and written out as a JSON Schema.

``MainFile`` is the shape of ``strangler.yaml``: its fields are the model's own frozen
dataclasses (``Limits``, ``Admin``...), whose ``Annotated`` kinds (``kinds``) and
attribute docstrings say what each key accepts and means. From that one description:

- ``read(walker, root)`` checks the nodes ``source`` read and returns a ``MainFile``,
  or ``None`` after reporting every problem pydantic found, each at the line of the
  key or value at fault, with the key's dotted name and a hint (did you mean, the
  valid keys, the allowed values);
- ``read_part(walker, node, RouteEntry, "route 'a'")`` does the same for one route
  (from ``validate_routes``, which reads the routes of every file in order);
- ``main_schema()`` / ``routes_schema()`` are the JSON Schemas (draft 2020-12) that
  ``strangler schema`` prints for editors.

What pydantic cannot say stays code in ``validate*``: cross-references (a route's
upstream exists), shadowed routes, the admin port against the proxy's. ``include``
(``UNDESCRIBED``) passes here unchecked: ``source.py`` follows it. See ``REWRITE.md``.

>>> from strangler.config.source import read_text
>>> from strangler.config.walker import Walker
>>> w = Walker("m.yaml")
>>> root = read_text("limits: {max_headers: 0, header_timout: 5s}\\n", "m.yaml").files[0].root
>>> read(w, root) is None
True
>>> for p in w.problems:
...     print(p)
m.yaml:1: unknown key 'header_timout' in limits (hint: did you mean 'header_timeout'?)
m.yaml:1: limits.max_headers must be at least 1, got 0
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, TypeAlias

from strangler.config import kinds, tls_files
from strangler.config.migrate_model import MigratePlan
from strangler.config.model import (
    AccessLog,
    Admin,
    Canary,
    DebugHeaders,
    Fallback,
    Forwarded,
    Limits,
    Listen,
    ListenEntry,
    MatchSpec,
    Overrides,
    ProgressSettings,
    Slo,
    StateFiles,
    TracingSettings,
    Upstream,
)
from strangler.config.shadow_model import ShadowSpec
from strangler.config.source import Map, Node, Seq, describe
from strangler.config.translate_values import TRANSLATE, TRANSLATORS
from strangler.config.walker import Walker, did_you_mean, suggest

if TYPE_CHECKING:  # pydantic itself is imported at the first load, not with this module
    from pydantic import TypeAdapter

__all__ = [
    "SHADOW",
    "UNDESCRIBED",
    "MainFile",
    "RouteEntry",
    "main_schema",
    "read",
    "read_part",
    "routes_schema",
]

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"


UNDESCRIBED: Final = ("include",)
"""Top-level keys read before this module (``source.py`` follows ``include``), route
files too: here they pass unchecked, and the schema shows their outline only."""


def _undescribed(what: str, schema: dict[str, Any]) -> kinds.Kind:
    return kinds.Kind(lambda value: value, {**schema, "description": what})


SHADOW: TypeAlias = Annotated[
    ShadowSpec, kinds.ShortForm("to", kinds.text_like("billing"), "an upstream name")
]
"""``shadow: billing`` is ``shadow: {to: billing}``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteEntry:
    """A route as written; ``validate_routes`` makes it a ``Route`` (its index, its
    upstreams checked, its translate's {use: NAME} resolved)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {**kinds.READ, "title": "route"}
    EXAMPLE: ClassVar[str] = "{name: invoices, owner: billing, match: {path: /i}, to: legacy}"

    name: Annotated[str, kinds.ROUTE_NAME]
    """Unique: metrics, logs and the admin API name the route by it."""
    owner: Annotated[str, kinds.text_like("team-billing")]
    """The team that answers for the route."""
    match: MatchSpec
    """What a request must look like; the first route that matches wins."""
    to: Annotated[str, kinds.text_like("legacy")]
    """The upstream that answers (with a canary: the share not in the canary)."""
    canary: Canary | None = None
    """A share of the traffic to a new side."""
    overrides: Annotated[Overrides, kinds.OR_BOOLEAN] | None = None
    """Let a request force an upstream by header or cookie (true: the defaults)."""
    fallback: Annotated[Fallback, kinds.OR_BOOLEAN] | None = None
    """Send a request again to the primary when the new side fails (default: on)."""
    slo: Slo | None = None
    """What the new side must deliver; breaching it trips the guard."""
    shadow: SHADOW | None = None
    """Mirror requests to a second upstream and compare the answers (NAME: to it)."""
    translate: TRANSLATE | None = None
    """Translation between the two sides: a translator, {use: NAME} or a list of them."""
    migrate: MigratePlan | None = None
    """The autopilot: stages that move the canary's share, and the gates that hold it."""
    debug_headers: Annotated[DebugHeaders, kinds.DEBUG_HEADERS] | None = None
    """The top-level debug_headers, for this route only."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MainFile:
    """The main config file. Keys in this order are the "valid keys" of a hint."""

    __pydantic_config__: ClassVar[dict[str, Any]] = {**kinds.READ, "title": "strangler config"}

    listen: Annotated[ListenEntry, tls_files.LISTEN_FORMS] = ListenEntry(  # noqa: RUF009
        address=Listen(host="0.0.0.0", port=8080)
    )
    """The proxy's address host:port, or {address, tls, redirect_http}."""
    admin: Admin = Admin()  # noqa: RUF009 - frozen
    """The admin API (status page, runtime controls) and who may use it."""
    upstreams: Mapping[
        Annotated[str, kinds.UPSTREAM_NAME],
        Annotated[Upstream, kinds.ShortForm("url", kinds.URL)],
    ] = field(default_factory=dict)  # absent: validate says what to add
    """Name -> upstream; 'legacy' is required: it answers everything no route claims."""
    include: Annotated[
        Any,
        _undescribed(
            "globs, relative to this file, of route files; sorted",
            {"type": "array", "items": {"type": "string"}},
        ),
    ] = ()
    # read route by route (validate_routes: read_part(RouteEntry)); main_schema shows them
    routes: Annotated[Any, _undescribed("routes, in order", {})] = ()
    limits: Limits = Limits()  # noqa: RUF009 - frozen
    """What one client and one request may send."""
    forwarded: Forwarded = Forwarded()  # noqa: RUF009 - frozen
    """X-Forwarded-* and Forwarded headers: which to trust, which to add."""
    access_log: AccessLog = AccessLog()  # noqa: RUF009 - frozen
    """One line per request."""
    drain: Annotated[float, kinds.DURATION] = 30.0
    """How long SIGTERM waits for in-flight requests."""
    state: StateFiles = StateFiles()  # noqa: RUF009 - frozen
    """Where runtime state (kill switches, overrides, guard trips) and the audit log live."""
    translators: TRANSLATORS = field(default_factory=dict)
    """Named translators that routes use with translate: {use: NAME}."""
    debug_headers: Annotated[DebugHeaders, kinds.DEBUG_HEADERS] = "off"
    """on (true): every answer says which route and backend answered and why; overrides:
    only answers to requests carrying a valid override; off (false). A route's own wins."""
    progress: ProgressSettings = ProgressSettings()  # noqa: RUF009 - frozen
    """Migration progress: what stays out of the legacy backlog, when legacy is idle."""
    tracing: Annotated[TracingSettings, kinds.NEEDS_OTEL] | None = None
    """OpenTelemetry spans per request, exported over OTLP/HTTP (pip install
    'strangler[otel]'); absent: off."""


@functools.cache
def _adapter(shape: type = MainFile) -> TypeAdapter[Any]:
    """pydantic's validator for ``shape`` (``MainFile``, or a part of a route), built once
    per process (tens of ms): immutable once built, like a compiled regex."""
    from pydantic import TypeAdapter

    return TypeAdapter(shape)


def read(w: Walker, root: Map) -> MainFile | None:
    """``root`` checked against ``MainFile``; every problem is reported to ``w``."""
    return read_part(w, root, MainFile, "")  # type: ignore[no-any-return]


def read_part(w: Walker, node: Node, shape: type, what: str) -> Any:
    """``node`` read as the dataclass ``shape`` (a part of a route, say), or ``None``
    after reporting every problem to ``w``; keys are named after ``what`` (``route 'a'
    slo``). Its ``at`` is ``node``'s line."""
    from pydantic import ValidationError

    try:
        got = _adapter(shape).validate_python(_plain(node), context={"base_dir": w.base_dir})
    except ValidationError as err:
        errors = err.errors(include_url=False)
        # unknown keys first: a misspelt key explains the problems that follow it
        guessed: set[tuple[str, str]] = set()  # (mapping, key) a hint already names
        for error in sorted(
            errors, key=lambda e: e["type"] not in ("unexpected_keyword_argument", "invalid_key")
        ):
            _report(w, node, error, shape, what, guessed)
        return None
    fields = {f.name for f in dataclasses.fields(_unwrap(shape))}
    return dataclasses.replace(got, at=node.at) if "at" in fields else got


class Pairs(dict[Any, Any]):
    """A mapping whose keys Python takes as equal (``1``, ``1.0``, ``true``): ``pairs``
    has every entry, for a kind that tells them apart (a JSON ``map``'s values)."""

    pairs: list[tuple[Any, Any]]


def _plain(node: Node) -> Any:
    """Nodes to the dicts, lists and scalars pydantic reads (a key that is not a string
    stays what it is, for pydantic to refuse)."""
    if isinstance(node, Map):
        plain = {key.value: _plain(value) for key, value in node.entries}
        if len(plain) < len(node.entries):
            plain = Pairs(plain)
            plain.pairs = [(key.value, _plain(value)) for key, value in node.entries]
        return plain
    if isinstance(node, Seq):
        return [_plain(item) for item in node.items]
    return node.value


def _report(
    w: Walker, root: Node, error: Any, top: type, what: str, guessed: set[tuple[str, str]]
) -> None:
    """One pydantic error as a ``Problem`` at the line of the node its ``loc`` names. A
    missing key that an unknown key's hint already names (``guessed``) is not reported
    again."""
    node: Node = root
    at = root.at
    skip = 1 if what else 0  # names[0] is ``what`` when given, not a key
    names: list[str | int | None] = [what] if what else []  # the keys walked; None: a list entry
    shape: Any = top
    holder: Any = top  # the dataclass that holds the key at fault (its EXAMPLE is a hint)
    for part in error["loc"]:
        if part == "[key]":  # the key itself is at fault: what holds it is named
            names.pop()
            node = Map((), at)
            break
        if isinstance(node, Map) and isinstance(part, str | int):
            entry = next(((k, v) for k, v in node.entries if k.value == part), None)
            if entry is None and isinstance(part, int):  # one entry written alone
                continue
            if entry is None:  # a missing key: the problem is the mapping's
                names.append(str(part))
                at = node.at
                break
            at, node = entry[0].at, entry[1]
            names.append(str(part))
            if dataclasses.is_dataclass(_unwrap(shape)):
                holder = shape
            shape = _field_type(shape, str(part))
        elif isinstance(node, Seq) and isinstance(part, int) and 0 <= part < len(node.items):
            node = node.items[part]
            at = node.at
            shape = _item_type(shape)
            indexed = any(getattr(m, "indexed", False) for m in getattr(shape, "__metadata__", ()))
            names.append(part if indexed else None)
        elif isinstance(part, str) and part in _keys(shape):  # a class written as one value
            shape = _field_type(shape, part)
        # anything else is pydantic's name for a branch of a union: not a key
    if not isinstance(node, Map):
        at = node.at
    kind = error["type"]
    what = _dotted(names)
    got = describe(node)
    message, hint = f"{what}: {error['msg']}", ""
    if kind in ("unexpected_keyword_argument", "invalid_key"):
        key = error["input"] if kind == "invalid_key" else names[-1]
        parent = _dotted(names[:-1])
        allowed = list(_keys(_field_type_path(top, names[skip:-1])))
        where = f"in {parent}" if parent else "at the top level"
        message = f"unknown key {key!r} {where}"
        best = suggest(key, allowed) if isinstance(key, str) else None
        if best is not None:
            guessed.add((parent, best))
        hint = f"did you mean {best!r}?" if best else f"valid keys here: {', '.join(allowed)}"
    elif kind in ("missing", "missing_keyword_only_argument"):
        if (_dotted(names[:-1]), names[-1]) in guessed:
            return
        message = f"{_dotted(names[:-1]) or 'the config'} is missing required key {names[-1]!r}"
        hint = _example(_field_type_path(top, names[skip:-1]))
    elif kind in ("dataclass_type", "dict_type", "model_type"):
        either = "true, false or " if getattr(_unwrap(shape), "OR_BOOLEAN", False) else ""
        message, hint = f"{what} must be {either}a mapping, got {got}", _example(shape, holder)
    elif kind == "too_short":
        message, hint = f"{what} must not be empty", _example(holder)
    elif kind in ("list_type", "tuple_type", "frozen_set_type", "set_type"):
        message = f"{what} must be a list, got {got}"
        examples = _examples(_item_type(shape))
        hint = f"write a list, like [{', '.join(examples)}]" if examples else ""
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = f"{what} must be a whole number, got {got}"
    elif kind == "greater_than_equal":
        message = f"{what} must be at least {error['ctx']['ge']}, got {error['input']!r}"
    elif kind in ("bool_type", "bool_parsing"):
        message = f"{what} must be true or false, got {got}"
    elif kind == "string_type":
        message = f"{what} must be a string, got {got}"
    elif kind == "literal_error":
        choices = [str(c) for c in typing.get_args(_unwrap(shape))]
        message = f"{what} must be one of {', '.join(choices)}, got {got}"
        value = error["input"]
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
    elif kind == "value_error":
        cause = error["ctx"]["error"]
        text = str(cause)
        joined = " " if text.startswith(("must ", "is ")) else ": "
        message, hint = f"{what}{joined}{text}", getattr(cause, "hint", "")
    w.report(at, message, hint)


def _dotted(names: list[str | int | None]) -> str:
    """``["forwarded", "trusted", None]`` -> ``forwarded.trusted entry`` (an index when
    the entries say ``indexed``: ``request[0]``); after a route's label: ``["route 'a'",
    "canary", "to"]`` -> ``route 'a' canary.to``."""
    out = ""
    for n, name in enumerate(names):
        label = n == 1 and (out.endswith("'") or out == "route")
        if isinstance(name, int):
            out += f"[{name}]"
        else:
            out += " entry" if name is None else (f"{' ' if label else '.'}{name}" if out else name)
    return out


def _unwrap(shape: Any) -> Any:
    """The type under ``Annotated`` and ``X | None``."""
    while True:
        origin = typing.get_origin(shape)
        if origin is Annotated:
            shape = typing.get_args(shape)[0]
        elif origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            shape = next(a for a in typing.get_args(shape) if a is not type(None))
        else:
            return shape


def _example(*shapes: Any) -> str:
    """``for example X``: the ``EXAMPLE`` of the first of ``shapes`` that has one."""
    found = [e for shape in shapes if (e := getattr(_unwrap(shape), "EXAMPLE", ""))]
    return f"for example {found[0]}" if found else ""


def _examples(shape: Any) -> list[str]:
    """The ``examples`` of the kind that ``shape`` is annotated with, if any."""
    for meta in getattr(shape, "__metadata__", ()):
        if isinstance(meta, kinds.Kind):
            return [str(e) for e in meta.schema.get("examples", ())]
    return []


def _keys(shape: Any) -> dict[str, Any]:
    """A dataclass's config keys (a field's ``kinds.key`` alias, else its name) and
    their types; ``at`` and ``NOT_A_KEY`` fields are not keys. A list's are its entries'
    (one written alone)."""
    shape = _unwrap(shape)
    if typing.get_origin(shape) is tuple:
        shape = _unwrap(_item_type(shape))
    if not dataclasses.is_dataclass(shape):
        return {}
    hints = typing.get_type_hints(shape, include_extras=True)
    return {key: hints[name] for key, name in _key_names(shape).items()}


def _key_names(shape: Any) -> dict[str, str]:
    """A dataclass's config keys -> its field names (``percent`` -> ``ratio``)."""
    hints = typing.get_type_hints(shape, include_extras=True)
    out = {}
    for f in dataclasses.fields(shape):
        meta = getattr(hints[f.name], "__metadata__", ())
        if f.name != "at" and kinds.NOT_A_KEY not in meta:
            aliases = [getattr(m, "alias", None) for m in meta]
            out[next((a for a in aliases if a), f.name)] = f.name
    return out


def _field_type(shape: Any, name: str) -> Any:
    if typing.get_origin(_unwrap(shape)) is tuple:  # a list's one entry, written alone
        shape = _item_type(shape)
    for meta in getattr(shape, "__metadata__", ()):
        if isinstance(meta, kinds.OneKey):  # {name: {...}}: the shape that name reads
            return meta.shapes.get(name, Any)
    if typing.get_origin(_unwrap(shape)) in (dict, Mapping):
        return typing.get_args(_unwrap(shape))[1]
    return _keys(shape).get(name, Any)


def _item_type(shape: Any) -> Any:
    for meta in getattr(shape, "__metadata__", ()):
        if hasattr(meta, "written_as"):  # a class written as its one key's value (a list)
            shape = _keys(shape)[meta.written_as]
    args = typing.get_args(_unwrap(shape))
    return args[0] if args else Any


def _field_type_path(top: type, names: list[str | int | None]) -> Any:
    shape: Any = top
    for name in names:
        shape = _field_type(shape, name) if isinstance(name, str) else _item_type(shape)
    return shape


# ---------------------------------------------------------------------------- the schema


def main_schema() -> dict[str, Any]:
    """The JSON Schema of ``strangler.yaml``."""
    from pydantic.json_schema import GenerateJsonSchema

    class _Schema(GenerateJsonSchema):
        """pydantic's generator, with defaults written as a user writes them: a section's
        default is ``{}`` (each of its keys shows its own)."""

        def encode_default(self, dft: Any) -> Any:
            if isinstance(dft, Listen | ListenEntry):
                return str(dft)
            if dataclasses.is_dataclass(dft):
                return {}
            if isinstance(dft, frozenset):  # in a stable order
                return sorted(dft)
            return super().encode_default(dft)

        def dataclass_schema(self, schema: Any) -> Any:
            out = super().dataclass_schema(schema)
            shown = out.get("properties", {})
            for key, doc in _attribute_docs(schema["cls"]).items():
                if key in shown:
                    shown[key] = {**shown[key], "description": doc}
            return out

        def default_schema(self, schema: Any) -> Any:
            inner = schema["schema"]  # a kind's shown (kinds.Kind), maybe in "| None"
            inner = inner["schema"] if inner["type"] == "nullable" else inner
            shown = inner.get("metadata", {}).get("shown")
            if shown is not None and schema.get("default") is not None:
                schema = {**schema, "default": shown(schema["default"])}
            out = super().default_schema(schema)
            if out.get("default") == [] and out.get("minItems"):  # filled in by validate
                del out["default"]  # (overrides.allow: the route's own upstreams)
            return out

    schema = _adapter().json_schema(schema_generator=_Schema)
    routes = _adapter(tuple[RouteEntry, ...]).json_schema(schema_generator=_Schema)
    schema.setdefault("$defs", {}).update(routes.pop("$defs", {}))
    schema["properties"]["routes"] = {**routes, "description": "routes, in order"}
    schema["description"] = (
        "strangler's main config file (strangler check is the full validator: "
        "cross-references and shadowed routes are checked there)"
    )
    return {"$schema": DRAFT, "$id": "strangler.schema.json", **schema}


def _attribute_docs(shape: type) -> dict[str, str]:
    """A dataclass's config keys -> the docstring under each field: the schema's
    descriptions. One parse per module: pydantic's ``use_attribute_docstrings`` parses
    the module again for each class on Python 3.11 (a second per process, validating)."""
    docs = _module_docs(shape.__module__).get(shape.__qualname__, {})
    return {key: docs[name] for key, name in _key_names(shape).items() if name in docs}


@functools.cache
def _module_docs(module: str) -> dict[str, dict[str, str]]:
    """Class name -> attribute -> the string under it, for the classes of ``module``."""
    out: dict[str, dict[str, str]] = {}
    for node in ast.parse(inspect.getsource(sys.modules[module])).body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = {
                first.target.id: inspect.cleandoc(second.value.value)
                for first, second in itertools.pairwise(node.body)
                if isinstance(first, ast.AnnAssign)
                and isinstance(first.target, ast.Name)
                and isinstance(second, ast.Expr)
                and isinstance(second.value, ast.Constant)
                and isinstance(second.value.value, str)
            }
    return out


def routes_schema() -> dict[str, Any]:
    """The JSON Schema of a route file (``include``d by the main file): the main file's
    ``routes`` and ``include`` keys, nothing else."""
    main = main_schema()
    keys = ("routes", "include")
    return {
        "$schema": DRAFT,
        "$id": "strangler-routes.schema.json",
        "title": "strangler route file",
        "type": "object",
        "additionalProperties": False,
        "properties": {key: main["properties"][key] for key in keys},
        **({"$defs": main["$defs"]} if "$defs" in main else {}),
    }
