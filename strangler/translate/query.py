"""``query:`` steps (request only): rename, drop, set and map query parameters.

Header-phase: never reads the body. Operations run in the order written, on
``TranslateRequest.query`` (decoded pairs, in order, repeats kept). An untouched query
string goes upstream byte for byte; a changed one is re-encoded (``%20`` for spaces).

- ``rename: {cust: customer_id}``: every ``cust`` takes the new name, in place.
- ``drop: [debug]``: every ``debug`` goes.
- ``set: {v: "2", customer: "{id}"}``: the first ``v`` takes the value and later ones
  go; none: appended. ``{id}`` is the route's template parameter (a path parameter
  moved into the query).
- ``map: {status: {OPEN: open}}``: values of ``status`` through the map; a value not
  in it is kept (query parameters are free-form: the new service judges them).

>>> from multidict import CIMultiDict
>>> from strangler.config.translate_model import QueryStep
>>> from strangler.translate.base import TranslateRequest
>>> t = build(QueryStep(drop=("debug",), set={"v": "2"}, order=("drop", "set")), "q")
>>> t.apply(TranslateRequest.from_target("GET", "/o?debug=1&a=x&v=1&v=3", CIMultiDict())).target
'/o?a=x&v=2'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, cast, final

from strangler.config.translate_model import QueryStep
from strangler.translate.base import TranslateError, TranslateRequest
from strangler.translate.path import fill, set_query

__all__ = ["QueryTransform", "build"]

Pairs = list[tuple[str, str]]


Op = Callable[[Pairs, TranslateRequest], Pairs]


def _compile(kind: str, op: Any, step: str) -> Op:
    if kind == "rename":
        names = dict(cast(Mapping[str, str], op))
        return lambda q, _: [(names.get(k, k), v) for k, v in q]
    if kind == "drop":
        drop = frozenset(cast(Sequence[str], op))
        return lambda q, _: [(k, v) for k, v in q if k not in drop]
    if kind == "set":
        values = tuple((name, fill(value)) for name, value in cast(Mapping[str, str], op).items())

        def set_(q: Pairs, msg: TranslateRequest) -> Pairs:
            try:
                pairs = [(name, value(msg.params)) for name, value in values]
            except KeyError as err:
                raise TranslateError(step, f"the route has no parameter {err.args[0]!r}") from None
            return set_query(q, pairs)

        return set_
    maps = cast(Mapping[str, Mapping[str, str]], op)
    return lambda q, _: [(k, maps[k].get(v, v) if k in maps else v) for k, v in q]


@final
class QueryTransform:
    """A compiled ``query:`` step."""

    __slots__ = ("_ops", "step")

    needs_body: Final = False

    def __init__(self, spec: QueryStep, step: str) -> None:
        self.step = step
        self._ops = tuple(_compile(kind, op, step) for kind, op in spec.ops)

    def apply(self, msg: TranslateRequest, /) -> TranslateRequest:
        query = msg.query
        for op in self._ops:
            query = op(query, msg)
        msg.query = query
        return msg


def build(spec: QueryStep, step: str) -> QueryTransform:
    """The factory: a ``QueryTransform`` for ``spec``."""
    return QueryTransform(spec, step)
