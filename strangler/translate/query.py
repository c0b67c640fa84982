"""``query:`` steps (request only): rename, drop, set and map query parameters.

Header-phase: never reads the body. Operations run in the order written, on
``TranslateRequest.query`` (decoded pairs, in order, repeats kept). An untouched query
string goes upstream byte for byte; a changed one is re-encoded (``%20`` for spaces).

- ``rename: {cust: customer_id}``: every ``cust`` takes the new name, in place.
- ``drop: [debug]``: every ``debug`` goes.
- ``set: {v: "2"}``: the first ``v`` takes the value and later ones go; none: appended.
- ``map: {status: {OPEN: open}}``: values of ``status`` through the map; a value not
  in it is kept (query parameters are free-form: the new service judges them).

>>> from multidict import CIMultiDict
>>> from strangler.config.translate_model import QueryDrop, QuerySet, QueryStep
>>> from strangler.translate.base import TranslateRequest
>>> t = build(QueryStep(ops=(QueryDrop(names=("debug",)), QuerySet(values=(("v", "2"),)))), "q")
>>> t.apply(TranslateRequest.from_target("GET", "/o?debug=1&a=x&v=1&v=3", CIMultiDict())).target
'/o?a=x&v=2'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, final

from strangler.config.translate_model import (
    QueryDrop,
    QueryOp,
    QueryRename,
    QuerySet,
    QueryStep,
)
from strangler.translate.base import TranslateRequest

__all__ = ["QueryTransform", "build"]

Pairs = list[tuple[str, str]]


def _compile(op: QueryOp) -> Callable[[Pairs], Pairs]:
    if isinstance(op, QueryRename):
        names = dict(op.names)
        return lambda q: [(names.get(k, k), v) for k, v in q]
    if isinstance(op, QueryDrop):
        drop = frozenset(op.names)
        return lambda q: [(k, v) for k, v in q if k not in drop]
    if isinstance(op, QuerySet):
        values = op.values

        def set_(q: Pairs) -> Pairs:
            for name, value in values:
                out: Pairs = []
                done = False
                for k, v in q:
                    if k != name:
                        out.append((k, v))
                    elif not done:
                        out.append((k, value))
                        done = True
                if not done:
                    out.append((name, value))
                q = out
            return q

        return set_
    maps = dict(op.maps)
    return lambda q: [(k, maps[k].get(v, v) if k in maps else v) for k, v in q]


@final
class QueryTransform:
    """A compiled ``query:`` step."""

    __slots__ = ("_ops", "step")

    needs_body: Final = False

    def __init__(self, spec: QueryStep, step: str) -> None:
        self.step = step
        self._ops = tuple(_compile(op) for op in spec.ops)

    def apply(self, msg: TranslateRequest, /) -> TranslateRequest:
        query = msg.query
        for op in self._ops:
            query = op(query)
        msg.query = query
        return msg


def build(spec: QueryStep, step: str) -> QueryTransform:
    """The factory: a ``QueryTransform`` for ``spec``."""
    return QueryTransform(spec, step)
