"""``json:`` steps: operations on a parsed JSON body, and the JSON path walker they share.

One job: compile a ``JsonStep`` (a list of ``JsonOp`` specs) into a transform that
runs the operations, in order, on the document the message parsed once. Every
operation is compiled to a small callable when the route is built; at request time
nothing is parsed but the body. What each operation does is documented on its spec
class in ``strangler.config.translate_model``; the rules shared by all of them:

- An absent path is not an error, except for ``require`` and ``unwrap``; a ``null``
  on the way counts as absent (and is replaced by an object when writing through it).
- A path through a value of the wrong kind (a key into a string, an index into an
  object) is an error naming the concrete place: ``lines[2].qty: ...``.
- No floats in arithmetic: ``scale`` is exact ``Decimal`` work or an error.

An error is a ``TranslateError`` whose step names the operation:
``response.json[2] map status: value 'VOID' not in the map``.

>>> from strangler.config.translate_values import parse_json_path as p
>>> from strangler.config.translate_model import JsonMove, JsonScale
>>> run = compile_ops(
...     (JsonMove(op="rename", from_=p("customer.name"), to=p("name")),
...      JsonScale(path=p("total_cents"), to=p("total"), factor="100", divide=True,
...                as_="decimal_string")), "request.json")
>>> run({"customer": {"name": "Ada"}, "total_cents": -1205})
{'customer': {}, 'name': 'Ada', 'total': '-12.05'}
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import (
    Clamped,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from typing import Final, TypeVar, final

from strangler.config.translate_model import (
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
    Segment,
    StatusRule,
    Wildcard,
)
from strangler.translate.base import (
    JSON,
    BodyError,
    Message,
    TranslateError,
    TranslateResponse,
)

__all__ = [
    "JsonTransform",
    "OpError",
    "build",
    "compile_ops",
    "get_values",
    "matches_status",
    "thaw",
]

M = TypeVar("M", bound=Message)

_DECIMAL: Final = re.compile(r"-?\d+(?:\.\d+)?")
_INTEGER: Final = re.compile(r"-?\d+")
_FLOAT: Final = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_TIME_FIELDS: Final = re.compile(r"%[HIMSfpXcTRrzZ]")
_MAX_EXACT_FLOAT_INT: Final = 2**53


class OpError(ValueError):
    """An operation that cannot do its job on this document; ``str()`` says why."""


def _show(value: JSON) -> str:
    """A value for a message: short, JSON-ish."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: JSON) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def thaw(value: FrozenJSON) -> JSON:
    """A fresh, mutable JSON value from a config value (tuples and mappings)."""
    if isinstance(value, tuple):
        return [thaw(v) for v in value]
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------- paths


def _join(where: str, seg: Segment) -> str:
    if isinstance(seg, str):
        return f"{where}.{seg}" if where else seg
    return f"{where}[{seg}]"


@dataclass(slots=True)
class _Slot:
    """A place a path names: ``parent[key]`` (present or not), ``where`` its concrete path."""

    parent: dict[str, JSON] | list[JSON]
    key: str | int
    where: str

    @property
    def present(self) -> bool:
        if isinstance(self.parent, dict):
            assert isinstance(self.key, str)
            return self.key in self.parent
        assert isinstance(self.key, int)
        return 0 <= self.key < len(self.parent)

    def get(self) -> JSON:
        if isinstance(self.parent, dict):
            assert isinstance(self.key, str)
            return self.parent[self.key]
        assert isinstance(self.key, int)
        return self.parent[self.key]

    def set(self, value: JSON) -> None:
        if isinstance(self.parent, dict):
            assert isinstance(self.key, str)
            self.parent[self.key] = value
        else:
            assert isinstance(self.key, int)
            self.parent[self.key] = value

    def delete(self) -> None:
        if isinstance(self.parent, dict):
            assert isinstance(self.key, str)
            self.parent.pop(self.key, None)
        else:
            assert isinstance(self.key, int)
            del self.parent[self.key]


def _children(
    value: JSON, seg: Segment, where: str, create: bool
) -> Iterator[tuple[dict[str, JSON] | list[JSON], str | int, str]]:
    """The (container, key) places ``seg`` names inside ``value``."""
    if isinstance(seg, str):
        if not isinstance(value, dict):
            raise OpError(f"{where or '$'} is {_kind(value)}, not an object (looking for {seg!r})")
        yield value, seg, _join(where, seg)
        return
    if not isinstance(value, list):
        shown = "[*]" if seg is Wildcard.ANY else f"[{seg}]"
        raise OpError(f"{where or '$'} is {_kind(value)}, not an array (looking for {shown})")
    if seg is Wildcard.ANY:
        for i in range(len(value)):
            yield value, i, _join(where, i)
        return
    assert isinstance(seg, int)
    index = seg + len(value) if seg < 0 else seg
    yield value, index, _join(where, seg)


def _slots(root: JSON, segments: Sequence[Segment], *, create: bool) -> Iterator[_Slot]:
    """Every place ``segments`` names under ``root``.

    Reading (``create=False``): a place whose parent is absent or null is skipped.
    Writing (``create=True``): absent or null objects on the way are created; a
    missing array element is an error (arrays are never grown).
    """
    assert segments, "the root has no slot"

    def walk(value: JSON, depth: int, where: str) -> Iterator[_Slot]:
        seg = segments[depth]
        last = depth == len(segments) - 1
        for parent, key, here in _children(value, seg, where, create):
            slot = _Slot(parent, key, here)
            if last:
                if isinstance(parent, list) and not slot.present:
                    if create:
                        raise OpError(f"{here} does not exist (the array has {len(parent)})")
                    continue
                yield slot
                continue
            if not slot.present or slot.get() is None:
                if not create:
                    continue
                if isinstance(parent, list):
                    raise OpError(f"{here} does not exist (the array has {len(parent)})")
                if not isinstance(segments[depth + 1], str):
                    raise OpError(f"{here} is absent; cannot create an array to index into")
                slot.set({})
            yield from walk(slot.get(), depth + 1, here)

    return walk(root, 0, "")


def get_values(root: JSON, path: JsonPath) -> list[tuple[str, JSON]]:
    """``(concrete path, value)`` for every present value ``path`` names (root: ``$``)."""
    if not path.segments:
        return [("$", root)]
    return [(s.where, s.get()) for s in _slots(root, path.segments, create=False) if s.present]


def _missing(root: JSON, segments: Sequence[Segment], where: str = "") -> str | None:
    """The first concrete path ``segments`` names that is absent (a ``[*]`` needs every
    element to have the rest), or ``None`` when all are present."""
    if not segments:
        return None
    seg, rest = segments[0], segments[1:]
    if isinstance(seg, str):
        here = _join(where, seg)
        if not isinstance(root, dict) or seg not in root:
            return here
        return _missing(root[seg], rest, here)
    if not isinstance(root, list):
        return _join(where, 0 if seg is Wildcard.ANY else seg)
    if seg is Wildcard.ANY:
        for i, item in enumerate(root):
            found = _missing(item, rest, _join(where, i))
            if found is not None:
                return found
        return None
    assert isinstance(seg, int)
    index = seg + len(root) if seg < 0 else seg
    if not 0 <= index < len(root):
        return _join(where, seg)
    return _missing(root[index], rest, _join(where, seg))


# ---------------------------------------------------------------------------- operations

Run = Callable[[JSON], JSON]


@final
@dataclass(frozen=True, slots=True)
class _Compiled:
    label: str
    mutates: bool
    run: Run


def compile_ops(ops: Sequence[JsonOp], label: str) -> Run:
    """One callable running ``ops`` in order on a document, returning the new root.

    Errors are ``TranslateError``s whose step is ``{label}[i] {op} {path}``.
    """
    compiled = tuple(_compile(op, f"{label}[{i}]") for i, op in enumerate(ops))
    return _sequence(compiled)


def _sequence(compiled: Sequence[_Compiled]) -> Run:
    def run(doc: JSON) -> JSON:
        for op in compiled:
            try:
                doc = op.run(doc)
            except OpError as err:
                raise TranslateError(op.label, str(err)) from None
        return doc

    return run


def _compile(op: JsonOp, label: str) -> _Compiled:
    if isinstance(op, JsonMove):
        return _Compiled(f"{label} {op.op} {op.from_}", True, _move(op))
    if isinstance(op, JsonDrop):
        return _Compiled(f"{label} drop", True, _drop(op))
    if isinstance(op, JsonSet | JsonDefault):
        name = "set" if isinstance(op, JsonSet) else "default"
        return _Compiled(f"{label} {name} {op.path}", True, _set(op))
    if isinstance(op, JsonWrap):
        return _Compiled(f"{label} wrap {'.'.join(op.keys)}", True, _wrap(op))
    if isinstance(op, JsonUnwrap):
        return _Compiled(f"{label} unwrap {'.'.join(op.keys)}", True, _unwrap(op))
    if isinstance(op, JsonMap):
        return _Compiled(f"{label} map {op.path}", True, _map(op))
    if isinstance(op, JsonConvert):
        return _Compiled(f"{label} convert {op.path}", True, _each_value(op.path, _convert(op)))
    if isinstance(op, JsonDate):
        return _Compiled(f"{label} date {op.path}", True, _each_value(op.path, _date(op)))
    if isinstance(op, JsonScale):
        return _Compiled(f"{label} scale {op.path}", True, _scale(op))
    if isinstance(op, JsonEach):
        inner = tuple(_compile(o, f"do[{i}]") for i, o in enumerate(op.ops))
        return _Compiled(f"{label} each {op.path}", any(c.mutates for c in inner), _each(op, inner))
    return _Compiled(f"{label} require", False, _require(op))


def _each_value(path: JsonPath, change: Callable[[JSON], JSON]) -> Run:
    """Replace every present value at ``path`` by ``change(value)``; errors name the place."""

    def run(doc: JSON) -> JSON:
        for slot in _slots(doc, path.segments, create=False):
            if slot.present:
                try:
                    slot.set(change(slot.get()))
                except OpError as err:
                    if path.has_wildcard:
                        raise OpError(f"{slot.where}: {err}") from None
                    raise
        return doc

    return run


def _move(op: JsonMove) -> Run:
    src, dst = op.from_.segments, op.to.segments
    stars = [i for i, s in enumerate(src) if s is Wildcard.ANY]
    cut = stars[-1] + 1 if stars else 0  # shared prefix, up to the last [*] (validated)

    def move(root: JSON, rel_src: Sequence[Segment], rel_dst: Sequence[Segment]) -> None:
        found = [s for s in _slots(root, rel_src, create=False) if s.present]
        if not found:
            return
        (slot,) = found
        value = slot.get()
        slot.delete()
        (target,) = _slots(root, rel_dst, create=True)
        target.set(value)

    def run(doc: JSON) -> JSON:
        if not cut:
            move(doc, src, dst)
            return doc
        for slot in _slots(doc, src[:cut], create=False):
            if slot.present:
                move(slot.get(), src[cut:], dst[cut:])
        return doc

    return run


def _drop(op: JsonDrop) -> Run:
    def run(doc: JSON) -> JSON:
        for path in op.paths:
            found = [s for s in _slots(doc, path.segments, create=False) if s.present]
            # Array elements go from the end, so earlier indices stay right.
            for slot in reversed(found):
                slot.delete()
        return doc

    return run


def _set(op: JsonSet | JsonDefault) -> Run:
    only_absent = isinstance(op, JsonDefault)

    def run(doc: JSON) -> JSON:
        for slot in _slots(doc, op.path.segments, create=True):
            if only_absent and slot.present and slot.get() is not None:
                continue
            slot.set(thaw(op.value))
        return doc

    return run


def _wrap(op: JsonWrap) -> Run:
    def run(doc: JSON) -> JSON:
        for key in reversed(op.keys):
            doc = {key: doc}
        return doc

    return run


def _unwrap(op: JsonUnwrap) -> Run:
    def run(doc: JSON) -> JSON:
        where = ""
        for key in op.keys:
            if not isinstance(doc, dict):
                raise OpError(f"{where or 'the body'} is {_kind(doc)}, not an object")
            if key not in doc:
                raise OpError(f"no {key!r} in {where or 'the body'}")
            doc, where = doc[key], _join(where, key)
        return doc

    return run


def _map_key(value: JSON | FrozenJSON) -> tuple[str, object]:
    """Keys compare by kind and value: ``"1"`` is not ``1``, ``true`` is not ``1``."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("number", value)
    if isinstance(value, str):
        return ("string", value)
    if value is None:
        return ("null", None)
    return ("other", id(value))


def _map(op: JsonMap) -> Run:
    table = {_map_key(k): v for k, v in op.values}
    keep = op.other == "keep"

    def change(value: JSON) -> JSON:
        key = _map_key(value)
        if key in table:
            return thaw(table[key])
        if keep:
            return value
        raise OpError(f"value {_show(value)} not in the map")

    return _each_value(op.path, change)


def _convert(op: JsonConvert) -> Callable[[JSON], JSON]:
    to = op.to

    def change(value: JSON) -> JSON:
        if value is None:
            return None
        if isinstance(value, dict | list):
            raise OpError(f"cannot convert {_kind(value)} to {to}")
        if to == "string":
            if isinstance(value, bool):
                return "true" if value else "false"
            return value if isinstance(value, str) else repr(value)
        if to == "int":
            if isinstance(value, bool):
                raise OpError(f"{_show(value)} is a boolean, not a whole number")
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            if isinstance(value, str) and _INTEGER.fullmatch(value):
                return int(value)
            raise OpError(f"{_show(value)} is not a whole number")
        if to == "float":
            if isinstance(value, bool):
                raise OpError(f"{_show(value)} is a boolean, not a number")
            if isinstance(value, int):
                if abs(value) > _MAX_EXACT_FLOAT_INT:
                    raise OpError(f"{value} is too large for an exact float")
                return float(value)
            if isinstance(value, float):
                return value
            if _FLOAT.fullmatch(value) and math.isfinite(number := float(value)):
                return number
            raise OpError(f"{_show(value)} is not a number")
        # bool
        if isinstance(value, bool):
            return value
        if value in (0, 1) and isinstance(value, int):
            return value == 1
        if value in ("true", "false", "1", "0"):
            return value in ("true", "1")
        raise OpError(f'{_show(value)} is not true/false, 0/1 or "true"/"false"')

    return change


# ---------------------------------------------------------------------------- dates


def _has_time(fmt: str) -> bool:
    return fmt in ("epoch", "epoch_ms") or (
        fmt != "iso8601" and _TIME_FIELDS.search(fmt) is not None
    )


def _read_date(value: JSON, fmt: str) -> date | datetime:
    if fmt in ("epoch", "epoch_ms"):
        if isinstance(value, str) and not _DECIMAL.fullmatch(value):
            raise OpError(f"{_show(value)} is not an epoch time")
        micros = to_decimal(value) * (1_000_000 if fmt == "epoch" else 1_000)
        if micros != micros.to_integral_value():
            raise OpError(f"{_show(value)} is finer than a microsecond")
        try:
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
        except OverflowError:
            raise OpError(f"{_show(value)} is out of range") from None
    if not isinstance(value, str):
        raise OpError(f"{_show(value)} is not a date string")
    try:
        if fmt == "iso8601":
            if "T" not in value and " " not in value and len(value) <= 10:
                return date.fromisoformat(value)
            return datetime.fromisoformat(value)
        parsed = datetime.strptime(value, fmt)
    except ValueError as err:
        raise OpError(f"{_show(value)} does not fit {fmt!r}: {err}") from None
    return parsed if _has_time(fmt) else parsed.date()


def _write_date(moment: date | datetime, fmt: str) -> JSON:
    if fmt == "iso8601":
        return moment.isoformat()
    if fmt in ("epoch", "epoch_ms"):
        if not isinstance(moment, datetime):
            moment = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
        micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
        unit = 1_000_000 if fmt == "epoch" else 1_000
        if micros % unit:
            finer = "epoch_ms" if fmt == "epoch" else "iso8601"
            raise OpError(f"{moment.isoformat()} has a fraction of a {fmt} unit; write {finer}")
        return micros // unit
    return moment.strftime(fmt)


def _date(op: JsonDate) -> Callable[[JSON], JSON]:
    def change(value: JSON) -> JSON:
        if value is None:
            return None
        return _write_date(_read_date(value, op.from_), op.to)

    return change


# ---------------------------------------------------------------------------- scale

_TRAPS: Final = [Inexact, InvalidOperation, DivisionByZero, Overflow, Clamped]


def to_decimal(value: JSON) -> Decimal:
    """An exact decimal from a JSON integer, a decimal string (``"-12.34"``: no exponent,
    no spaces) or a JSON number (the shortest decimal giving back its double)."""
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise OpError(f"{_show(value)} is not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise OpError(f"{value!r} is not a finite number")
        return Decimal(repr(value))
    if not _DECIMAL.fullmatch(value):
        raise OpError(f'{_show(value)} is not a decimal like "-12.34"')
    return Decimal(value)


def scale_value(
    value: JSON, factor: Decimal, *, divide: bool, as_: str, places: int | None
) -> JSON:
    """``value`` times (or divided by) ``factor``, exactly, written ``as_``; raises
    ``OpError`` rather than round.

    >>> scale_value(1234, Decimal(100), divide=True, as_="decimal_string", places=2)
    '12.34'
    >>> scale_value("-0.05", Decimal(100), divide=False, as_="int", places=None)
    -5
    """
    number = to_decimal(value)
    digits = len(number.as_tuple().digits) + len(factor.as_tuple().digits)
    ctx = Context(prec=digits + 64, traps=_TRAPS)
    try:
        result = ctx.divide(number, factor) if divide else ctx.multiply(number, factor)
    except Inexact:
        raise OpError(f"{_show(value)} / {factor} is not an exact decimal") from None
    if places is not None:
        try:
            result = result.quantize(Decimal(1).scaleb(-places), context=ctx)
        except (Inexact, InvalidOperation):
            raise OpError(f"{result} has more than {places} decimal places") from None
    if result.is_zero():
        result = result.copy_abs()  # no "-0.00"
    if as_ == "decimal_string":
        return format(result, "f")
    if result != result.to_integral_value():
        if as_ == "int":
            raise OpError(f"{format(result, 'f')} is not a whole number")
        as_float = float(result)
        if Decimal(repr(as_float)) != result:
            raise OpError(f"{result} has no exact JSON number; write as: decimal_string")
        return as_float
    return int(result)


def _scale(op: JsonScale) -> Run:
    factor = Decimal(op.factor)
    places = op.places
    if places is None and op.divide and op.as_ == "decimal_string":
        _sign, digits, exponent = factor.normalize().as_tuple()
        if digits == (1,) and isinstance(exponent, int) and exponent >= 0:
            places = exponent  # dividing by 10^k keeps k decimals: 1200 / 100 = "12.00"

    def change(value: JSON) -> JSON:
        return scale_value(value, factor, divide=op.divide, as_=op.as_, places=places)

    if op.to is None:
        return _each_value(op.path, change)
    to = op.to

    def run(doc: JSON) -> JSON:
        found = [s for s in _slots(doc, op.path.segments, create=False) if s.present]
        if not found:
            return doc
        (slot,) = found
        result = change(slot.get())
        slot.delete()
        (target,) = _slots(doc, to.segments, create=True)
        target.set(result)
        return doc

    return run


# ---------------------------------------------------------------------------- each, require


def _each(op: JsonEach, inner: Sequence[_Compiled]) -> Run:
    def run(doc: JSON) -> JSON:
        for slot in _slots(doc, op.path.segments, create=False):
            if not slot.present:
                continue
            items = slot.get()
            if items is None:
                continue
            if not isinstance(items, list):
                raise OpError(f"{slot.where} is {_kind(items)}, not an array")
            for i, item in enumerate(items):
                for c in inner:
                    try:
                        item = c.run(item)
                    except OpError as err:
                        raise OpError(f"{slot.where}[{i}]: {c.label}: {err}") from None
                items[i] = item
        return doc

    return run


def _require(op: JsonRequire) -> Run:
    def run(doc: JSON) -> JSON:
        for path in op.paths:
            missing = _missing(doc, path.segments)
            if missing is not None:
                of = "" if missing == path.text else f" (of {path.text})"
                raise OpError(f"required field {missing} is missing{of}")
        return doc

    return run


# ---------------------------------------------------------------------------- the step


def matches_status(rule: StatusRule, status: int) -> bool:
    """Whether ``status`` falls in one of the rule's ranges."""
    return any(low <= status <= high for low, high in rule.ranges)


@final
class JsonTransform:
    """A compiled ``json:`` step (either side).

    ``skip``: on the response side, statuses this step leaves alone because an
    ``error:`` step of the same list handles them.
    """

    __slots__ = ("_mutates", "_run", "skip", "step")

    needs_body: Final = True

    def __init__(self, spec: JsonStep, step: str, skip: tuple[StatusRule, ...] = ()) -> None:
        self.step = step
        self.skip = skip
        compiled = tuple(_compile(op, f"{step}[{i}]") for i, op in enumerate(spec.ops))
        self._mutates = any(c.mutates for c in compiled)
        self._run = _sequence(compiled)

    def _skips(self, status: int) -> bool:
        return any(matches_status(rule, status) for rule in self.skip)

    def apply(self, msg: M, /) -> M:
        if msg.body_is_empty or (isinstance(msg, TranslateResponse) and self._skips(msg.status)):
            return msg  # an empty body has no JSON to change
        try:
            doc = msg.json if self._mutates else msg.peek_json()
        except BodyError as err:
            raise TranslateError(self.step, str(err)) from None
        doc = self._run(doc)
        if self._mutates:
            msg.json = doc
        return msg

    def reads_body(self, status: int | None, /) -> bool:
        return status is None or not self._skips(status)

    def next_status(self, status: int | None, /) -> int | None:
        return status


def build(spec: JsonStep, step: str, skip: tuple[StatusRule, ...] = ()) -> JsonTransform:
    """The factory: a ``JsonTransform`` for ``spec``."""
    return JsonTransform(spec, step, skip)
