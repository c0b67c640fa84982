"""The ``json:`` operations of a translate step, and JSON values, from YAML nodes.

``JsonReader`` is ``TranslateReader``'s helper for everything shaped like JSON: the
operation lists of ``json:`` steps (``rename``, ``scale``, ``each``...; see
``strangler.config.translate_model`` for what each does), JSON paths, values written
into bodies (``set``, ``default``, ``map``) and the ``error:`` body template. Like the
rest of the validator it reports through a ``Walker`` and carries on, so one run
shows every problem; a method returns ``None`` (or ``BAD`` where ``None`` is a valid
JSON value) after reporting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Final, cast

from strangler.config import kinds
from strangler.config.described import _plain
from strangler.config.model import Location
from strangler.config.source import Map, Node, Scalar, Seq, describe
from strangler.config.translate_model import (
    ConvertTo,
    FrozenJSON,
    JsonConvert,
    JsonDate,
    JsonDefault,
    JsonDrop,
    JsonEach,
    JsonMap,
    JsonMove,
    JsonOp,
    JsonPath,
    JsonRequire,
    JsonScale,
    JsonSet,
    JsonStep,
    JsonUnwrap,
    JsonWrap,
    ScaleAs,
    Wildcard,
)
from strangler.config.translate_values import check_strftime, parse_json_path
from strangler.config.values import BadValue
from strangler.config.walker import Walker, did_you_mean, join_hints

__all__ = ["BAD", "CONVERT_TO", "DATE_NAMED", "JSON_OPS", "SCALE_AS", "Bad", "JsonReader"]

JSON_OPS: Final = (
    "rename", "move", "drop", "set", "default", "wrap", "unwrap",
    "map", "convert", "date", "scale", "each", "require",
)  # fmt: skip
CONVERT_TO: Final[tuple[ConvertTo, ...]] = ("string", "int", "float", "bool")
SCALE_AS: Final[tuple[ScaleAs, ...]] = ("decimal_string", "int", "number")
DATE_NAMED: Final = ("iso8601", "epoch", "epoch_ms")

_FACTOR: Final = re.compile(r"\d+(?:\.\d+)?")
_MAX_PLACES: Final = 30


class Bad:
    """The marker for "reported; no value" where ``None`` is a valid JSON value."""


BAD: Final = Bad()


class JsonReader:
    """Reads JSON operations, paths and values, reporting through ``walker``."""

    def __init__(self, walker: Walker) -> None:
        self.w = walker

    def json_step(self, node: Node, what: str) -> JsonStep | None:
        ops = self.ops(node, what)
        return None if ops is None else JsonStep(ops=ops, at=node.at)

    def ops(self, node: Node, what: str) -> tuple[JsonOp, ...] | None:
        if not isinstance(node, Seq) or not node.items:
            hint = "json takes a list of operations: json: [{rename: {from: a, to: b}}]"
            self.w.report(
                node.at,
                f"{what} must be a non-empty list of operations, got {describe(node)}",
                hint,
            )
            return None
        ops: list[JsonOp] = []
        ok = True
        for i, item in enumerate(node.items):
            op = self._op(item, f"{what}[{i}]")
            if op is None:
                ok = False
            else:
                ops.append(op)
        return tuple(ops) if ok else None

    def _op(self, node: Node, what: str) -> JsonOp | None:
        if not isinstance(node, Map) or len(node.entries) != 1:
            self.w.report(
                node.at,
                f"{what}: an operation is a mapping with one key ({', '.join(JSON_OPS)}), "
                f"got {describe(node) if not isinstance(node, Map) else 'several keys'}",
                "write each operation as its own list item",
            )
            return None
        ((key, value),) = node.entries
        name = key.value
        if not isinstance(name, str) or name not in JSON_OPS:
            self.w.report(
                key.at,
                f"{what}: unknown JSON operation {name!r}",
                join_hints(did_you_mean(str(name), JSON_OPS), f"operations: {', '.join(JSON_OPS)}"),
            )
            return None
        here = f"{what}.{name}"
        at = key.at
        if name in ("rename", "move"):
            return self._move(value, here, name, at)
        if name in ("drop", "require"):
            paths = self.paths(value, here)
            if paths is None:
                return None
            return (
                JsonDrop(paths=paths, at=at) if name == "drop" else JsonRequire(paths=paths, at=at)
            )
        if name in ("set", "default"):
            return self._set(value, here, name, at)
        if name in ("wrap", "unwrap"):
            return self._wrap(value, here, name, at)
        if name == "map":
            return self._map(value, here, at)
        if name == "convert":
            return self._convert(value, here, at)
        if name == "date":
            return self._date(value, here, at)
        if name == "scale":
            return self._scale(value, here, at)
        return self._each(value, here, at)

    def path(self, node: Node, what: str, *, root: bool = False) -> JsonPath | None:
        text = self.w.string(node, what, hint="a JSON path like customer.name or lines[*].price")
        if text is None:
            return None
        return self.w.checked(node, what, lambda t: parse_json_path(t, root=root), text)

    def paths(self, node: Node, what: str) -> tuple[JsonPath, ...] | None:
        items = node.items if isinstance(node, Seq) else (node,)
        if isinstance(node, Map) or (isinstance(node, Seq) and not node.items):
            self.w.report(node.at, f"{what} must be a JSON path or a non-empty list of them")
            return None
        paths = [self.path(item, what) for item in items]
        return None if None in paths else tuple(p for p in paths if p is not None)

    def fields(
        self, node: Node, what: str, allowed: Sequence[str], required: Sequence[str]
    ) -> dict[str, Node] | None:
        f = self.w.fields(node, allowed, subject=what, where=f"in {what}", required=required)
        if f is None or any(r not in f for r in required):
            return None
        return f

    def _move(self, node: Node, what: str, name: str, at: Location) -> JsonMove | None:
        f = self.fields(node, what, ("from", "to"), ("from", "to"))
        if f is None:
            return None
        src = self.path(f["from"], f"{what}.from")
        dst = self.path(f["to"], f"{what}.to")
        if src is None or dst is None:
            return None
        if not _same_wildcards(src, dst):
            self.w.report(
                f["to"].at,
                f"{what}: with [*], 'to' must share 'from' up to its last [*] ({src} → {dst})",
                "like from: lines[*].price, to: lines[*].amount; or use each",
            )
            return None
        return JsonMove(op=name, from_=src, to=dst, at=at)

    def _set(self, node: Node, what: str, name: str, at: Location) -> JsonSet | JsonDefault | None:
        f = self.fields(node, what, ("path", "value"), ("path", "value"))
        if f is None:
            return None
        path = self.path(f["path"], f"{what}.path")
        value = self.frozen(f["value"], f"{what}.value")
        if path is None or value is BAD:
            return None
        frozen = cast(FrozenJSON, value)
        if name == "set":
            return JsonSet(path=path, value=frozen, at=at)
        return JsonDefault(path=path, value=frozen, at=at)

    def _wrap(self, node: Node, what: str, name: str, at: Location) -> JsonWrap | JsonUnwrap | None:
        path = self.path(node, what)
        if path is None:
            return None
        keys = tuple(s for s in path.segments if isinstance(s, str))
        if len(keys) != len(path.segments):
            self.w.report(node.at, f"{what}: {path} must be keys only, like data or result.data")
            return None
        return JsonWrap(keys=keys, at=at) if name == "wrap" else JsonUnwrap(keys=keys, at=at)

    def _map(self, node: Node, what: str, at: Location) -> JsonMap | None:
        f = self.fields(node, what, ("path", "values", "other"), ("path", "values"))
        if f is None:
            return None
        path = self.path(f["path"], f"{what}.path")
        other = "error"
        if "other" in f:
            other = self.w.choice(f["other"], f"{what}.other", ("error", "keep")) or ""
        values = f["values"]
        if not isinstance(values, Map) or not values.entries:
            self.w.report(
                values.at,
                f"{what}.values must be a non-empty mapping of old value to new, "
                f"got {describe(values)}",
                "like values: {OPEN: open, PAID: paid}",
            )
            return None
        pairs: list[tuple[str | int | float | bool | None, FrozenJSON]] = []
        for key, value in values.entries:
            frozen = self.frozen(value, f"{what}.values.{key.value}")
            if frozen is BAD:
                return None
            pairs.append((key.value, cast(FrozenJSON, frozen)))
        if path is None or not other:
            return None
        return JsonMap(
            path=path,
            values=tuple(pairs),
            other="keep" if other == "keep" else "error",
            at=at,
        )

    def _convert(self, node: Node, what: str, at: Location) -> JsonConvert | None:
        f = self.fields(node, what, ("path", "to"), ("path", "to"))
        if f is None:
            return None
        path = self.path(f["path"], f"{what}.path")
        to = self.w.choice(f["to"], f"{what}.to", CONVERT_TO)
        if path is None or to is None:
            return None
        return JsonConvert(path=path, to=cast(ConvertTo, to), at=at)

    def _date(self, node: Node, what: str, at: Location) -> JsonDate | None:
        f = self.fields(node, what, ("path", "from", "to"), ("path", "from", "to"))
        if f is None:
            return None
        path = self.path(f["path"], f"{what}.path")
        formats = [self._date_format(f[k], f"{what}.{k}") for k in ("from", "to")]
        if path is None or formats[0] is None or formats[1] is None:
            return None
        return JsonDate(path=path, from_=formats[0], to=formats[1], at=at)

    def _date_format(self, node: Node, what: str) -> str | None:
        text = self.w.string(node, what, hint="iso8601, epoch, epoch_ms or like '%Y-%m-%d'")
        if text is None or text in DATE_NAMED:
            return text
        if "%" not in text:
            self.w.report(
                node.at,
                f"{what}: {text!r} is not a date format",
                join_hints(
                    did_you_mean(text, DATE_NAMED),
                    "iso8601, epoch, epoch_ms or strftime codes like '%Y-%m-%d'",
                ),
            )
            return None
        return self.w.checked(node, what, check_strftime, text)

    def _scale(self, node: Node, what: str, at: Location) -> JsonScale | None:
        keys = ("path", "to", "multiply", "divide", "as", "places")
        f = self.fields(node, what, keys, ("path",))
        if f is None:
            return None
        path = self.path(f["path"], f"{what}.path")
        to = self.path(f["to"], f"{what}.to") if "to" in f else None
        ops = [k for k in ("multiply", "divide") if k in f]
        if len(ops) != 1:
            self.w.report(
                node.at,
                f"{what} needs exactly one of multiply and divide",
                "like scale: {path: total_cents, to: total, divide: 100}",
            )
            return None
        factor = self._factor(f[ops[0]], f"{what}.{ops[0]}")
        divide = ops[0] == "divide"
        default_as: ScaleAs = "decimal_string" if divide else "int"
        as_ = self.w.choice(f["as"], f"{what}.as", SCALE_AS) if "as" in f else default_as
        places = None
        if "places" in f:
            places = self.w.count(f["places"], f"{what}.places", minimum=0)
            if places is not None and places > _MAX_PLACES:
                self.w.report(f["places"].at, f"{what}.places must be at most {_MAX_PLACES}")
                places = None
            if places is None:
                return None
        if path is None or factor is None or as_ is None or ("to" in f and to is None):
            return None
        if to is not None and (path.has_wildcard or to.has_wildcard):
            self.w.report(
                f["to"].at,
                f"{what}: 'to' works on one value; {path} or {to} has [*]",
                "use each: {path: lines, do: [{scale: {path: cents, to: amount, ...}}]}",
            )
            return None
        return JsonScale(
            path=path,
            to=to,
            factor=factor,
            divide=divide,
            as_=cast(ScaleAs, as_),
            places=places,
            at=at,
        )

    def _factor(self, node: Node, what: str) -> str | None:
        value = node.value if isinstance(node, Scalar) else None
        text: str | None = None
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
        self.w.report(
            node.at,
            f"{what} must be a positive number, got {describe(node)}",
            "like 100, or '0.01' as text to keep it exact",
        )
        return None

    def _each(self, node: Node, what: str, at: Location) -> JsonEach | None:
        f = self.fields(node, what, ("path", "do"), ("path", "do"))
        if f is None:
            return None
        path = self.path(f["path"], f"{what}.path")
        ops = self.ops(f["do"], f"{what}.do")
        if path is None or ops is None:
            return None
        return JsonEach(path=path, ops=ops, at=at)

    def frozen(self, node: Node, what: str) -> FrozenJSON | Bad:
        """A YAML value as an immutable JSON value (``BAD`` after reporting)."""
        try:
            return cast(FrozenJSON, kinds.json_value(_plain(node)))
        except BadValue as err:
            self.w.report(node.at, f"{what}: {err}", err.hint)
            return BAD


def _same_wildcards(src: JsonPath, dst: JsonPath) -> bool:
    """``dst`` shares ``src`` up to its last ``[*]`` and has no ``[*]`` after it."""
    stars = [i for i, s in enumerate(src.segments) if s is Wildcard.ANY]
    cut = stars[-1] + 1 if stars else 0
    if dst.segments[:cut] != src.segments[:cut] or len(dst.segments) <= cut:
        return False
    return not any(s is Wildcard.ANY for s in dst.segments[cut:])
