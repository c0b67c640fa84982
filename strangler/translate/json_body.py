"""``json:`` steps: operations on a parsed JSON body, compiled once per route.

One job: compile a ``JsonStep`` (a list of ``JsonOp`` specs) into a transform that
runs the operations, in order, on the document the message parsed once. Every
operation is compiled to a small callable when the route is built; at request time
nothing is parsed but the body. What each operation does is documented on its spec
class in ``strangler.config.translate_model``; paths are walked by ``jsonpath``,
single values converted by ``json_values``. The rules shared by all operations:

- An absent path is not an error, except for ``require`` and ``unwrap``; a ``null``
  on the way counts as absent (and is replaced by an object when writing through it).
- A path through a value of the wrong kind (a key into a string, an index into an
  object) is an error naming the concrete place: ``lines[2].qty: ...``.
- No floats in arithmetic: ``scale`` is exact ``Decimal`` work or an error.

An error is a ``TranslateError`` whose step names the operation:
``response.json[2] map status: value 'VOID' not in the map``.

>>> from strangler.config.translate_values import parse_json_path as p
>>> from strangler.config.translate_model import JsonRename, JsonScale
>>> run = compile_ops(
...     (JsonRename(from_=p("customer.name"), to=p("name")),
...      JsonScale(path=p("total_cents"), to=p("total"), divide="100")), "request.json")
>>> run({"customer": {"name": "Ada"}, "total_cents": -1205})
{'customer': {}, 'name': 'Ada', 'total': '-12.05'}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
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
from strangler.translate.json_values import convert_value, read_date, scale_value, write_date
from strangler.translate.jsonpath import (
    OpError,
    join,
    kind,
    missing,
    show,
    slots,
    thaw,
)

__all__ = ["JsonTransform", "build", "compile_ops", "matches_status"]

M = TypeVar("M", bound=Message)


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
        for slot in slots(doc, path.segments, create=False):
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
        found = [s for s in slots(root, rel_src, create=False) if s.present]
        if not found:
            return
        (slot,) = found
        value = slot.get()
        slot.delete()
        (target,) = slots(root, rel_dst, create=True)
        target.set(value)

    def run(doc: JSON) -> JSON:
        if not cut:
            move(doc, src, dst)
            return doc
        for slot in slots(doc, src[:cut], create=False):
            if slot.present:
                move(slot.get(), src[cut:], dst[cut:])
        return doc

    return run


def _drop(op: JsonDrop) -> Run:
    def run(doc: JSON) -> JSON:
        for path in op.paths:
            found = [s for s in slots(doc, path.segments, create=False) if s.present]
            # Array elements go from the end, so earlier indices stay right.
            for slot in reversed(found):
                slot.delete()
        return doc

    return run


def _set(op: JsonSet | JsonDefault) -> Run:
    only_absent = isinstance(op, JsonDefault)

    def run(doc: JSON) -> JSON:
        for slot in slots(doc, op.path.segments, create=True):
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
                raise OpError(f"{where or 'the body'} is {kind(doc)}, not an object")
            if key not in doc:
                raise OpError(f"no {key!r} in {where or 'the body'}")
            doc, where = doc[key], join(where, key)
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
        raise OpError(f"value {show(value)} not in the map")

    return _each_value(op.path, change)


def _convert(op: JsonConvert) -> Callable[[JSON], JSON]:
    to = op.to
    return lambda value: convert_value(value, to)


def _date(op: JsonDate) -> Callable[[JSON], JSON]:
    def change(value: JSON) -> JSON:
        if value is None:
            return None
        return write_date(read_date(value, op.from_), op.to)

    return change


def _scale(op: JsonScale) -> Run:
    factor = Decimal(op.divide or op.multiply or "")
    divide = op.divide is not None
    as_ = op.as_ or ("decimal_string" if divide else "int")
    places = op.places
    if places is None and divide and as_ == "decimal_string":
        _sign, digits, exponent = factor.normalize().as_tuple()
        if digits == (1,) and isinstance(exponent, int) and exponent >= 0:
            places = exponent  # dividing by 10^k keeps k decimals: 1200 / 100 = "12.00"

    def change(value: JSON) -> JSON:
        return scale_value(value, factor, divide=divide, as_=as_, places=places)

    if op.to is None:
        return _each_value(op.path, change)
    to = op.to

    def run(doc: JSON) -> JSON:
        found = [s for s in slots(doc, op.path.segments, create=False) if s.present]
        if not found:
            return doc
        (slot,) = found
        result = change(slot.get())
        slot.delete()
        (target,) = slots(doc, to.segments, create=True)
        target.set(result)
        return doc

    return run


# ---------------------------------------------------------------------------- each, require


def _each(op: JsonEach, inner: Sequence[_Compiled]) -> Run:
    def run(doc: JSON) -> JSON:
        for slot in slots(doc, op.path.segments, create=False):
            if not slot.present:
                continue
            items = slot.get()
            if items is None:
                continue
            if not isinstance(items, list):
                raise OpError(f"{slot.where} is {kind(items)}, not an array")
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
            absent = missing(doc, path.segments)
            if absent is not None:
                of = "" if absent == path.text else f" (of {path.text})"
                raise OpError(f"required field {absent} is missing{of}")
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
