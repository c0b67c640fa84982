"""What a description cannot say of ``translate:`` and ``translators:``: the names.

pydantic reads both with the rest of the file (``described``: a route's
``translate`` is ``translate_model.TRANSLATE``, the top-level ``translators``
``TRANSLATORS``). ``Translators`` adds the cross-references, read from the nodes so
they are reported even when a key has a problem of its own: ``{use: NAME}`` names a
declared translator, and each ``{param}`` a step uses (``path.rewrite``,
``query.set``, ``headers.from_param``) is one of the route's ``match.path``, at the
line of the use (for a named translator: at the ``use``, saying where it uses it).

>>> from strangler.config.source import read_text
>>> root = read_text("translate: {response: [{status: {map: {201: 200}}}]}", "r.yaml")
>>> w = Walker("r.yaml")
>>> node = root.files[0].root.get("translate")
>>> spec = Translators.read(w, None).route(node, label="route 'r'", template=None)
>>> spec.layers[0].response[0].map, w.problems
({201: 200}, [])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

from strangler.config import kinds
from strangler.config.described import read_part
from strangler.config.model import Location
from strangler.config.source import Map, Node, Scalar, Seq
from strangler.config.translate_model import TranslateSpec, Translator, Use
from strangler.config.translate_values import (
    PARAM,
    TRANSLATE,
    TRANSLATORS,
    template_params,
)
from strangler.config.walker import Walker, did_you_mean, join_hints

__all__ = ["Translators", "Written"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Written:
    """``translate`` and ``translators`` read alone (a translate spec file, a test)."""

    __pydantic_config__: ClassVar[dict[str, Any]] = kinds.READ
    translate: TRANSLATE | None = None
    translators: TRANSLATORS = field(default_factory=dict)


_USES: Final = {"path": "rewrite", "query": "set", "headers": "from_param"}  # use {param}


def _alone(key: str, node: Node) -> Map:
    return Map(((Scalar(key, node.at), node),), node.at)


def _params(node: Node) -> Iterator[tuple[str, Location]]:
    """The route parameters a translator's steps use, each with the line of its use."""
    for side in ("request", "response"):
        steps = node.get(side) if isinstance(node, Map) else None
        for step in steps.items if isinstance(steps, Seq) else ():
            for kind, body in step.entries if isinstance(step, Map) else ():
                key = _USES.get(str(kind.value))
                got = body.get(key) if isinstance(body, Map) and key else None
                values = [v for _, v in got.entries] if isinstance(got, Map) else [got]
                for value in values:
                    if not isinstance(value, Scalar) or not isinstance(value.value, str):
                        continue
                    if kind.value == "headers":  # from_param names the parameter
                        yield value.value, value.at
                    else:
                        found = PARAM.finditer(value.value)
                        yield from ((m["name"], value.at) for m in found if m["name"])


class Translators:
    """The top-level translators: the valid ones (``named``, read by pydantic), every
    name declared, and the parameters each uses (from the nodes)."""

    def __init__(self, w: Walker, node: Node | None, named: Mapping[str, Translator]) -> None:
        self.w = w
        self.named = {name: dataclasses.replace(t, name=name) for name, t in named.items()}
        entries = node.entries if isinstance(node, Map) else ()
        self.params = {str(key.value): list(_params(value)) for key, value in entries}

    @classmethod
    def read(cls, w: Walker, node: Node | None) -> Translators:
        """``translators:`` read alone (the main file reads it with the rest)."""
        got = None if node is None else read_part(w, _alone("translators", node), Written, "")
        return cls(w, node, got.translators if got is not None else {})

    def route(self, node: Node, *, label: str, template: str | None) -> TranslateSpec | None:
        """A ``translate:`` read alone, then ``spec``."""
        got = read_part(self.w, _alone("translate", node), Written, label)
        return self.spec(node, got and got.translate, label=label, template=template)

    def spec(
        self,
        node: Node,
        layers: tuple[Translator | Use, ...] | None,
        *,
        label: str,
        template: str | None,
    ) -> TranslateSpec | None:
        """A route's ``translate`` (``layers``: as pydantic read it, ``None`` after a
        problem) with its names checked; ``template`` is the route's ``match.path``."""
        before = len(self.w.problems)
        allowed = template_params(template)
        for i, item in enumerate(node.items if isinstance(node, Seq) else (node,)):
            what = f"{label} translate".lstrip() + (f"[{i}]" if isinstance(node, Seq) else "")
            use = item.get("use") if isinstance(item, Map) else None
            name = use.value if isinstance(use, Scalar) else None
            if use is None:
                for param, at in _params(item):
                    self._param(at, f"{what}: parameter {param!r}", param, allowed, template)
            elif isinstance(name, str) and name not in self.params:
                known = sorted(self.params)
                self.w.report(
                    use.at,
                    f"{what} uses unknown translator {name!r}",
                    join_hints(
                        did_you_mean(name, known),
                        f"known: {', '.join(known)}" if known else "declare it under translators:",
                    ),
                )
            elif isinstance(name, str):
                for param, at in self.params[name]:
                    where = f"line {at.line}" if at.file == use.at.file else str(at)
                    message = f"{what}: translator {name!r} uses parameter {param!r} (at {where})"
                    self._param(use.at, message, param, allowed, template)
        if layers is None or len(self.w.problems) != before:
            return None
        found = [self.named.get(t.use) if isinstance(t, Use) else t for t in layers]
        if None in found:
            return None  # a named translator with problems of its own, reported
        return TranslateSpec(layers=tuple(t for t in found if t is not None), at=node.at)

    def _param(
        self, at: Location, message: str, param: str, allowed: frozenset[str], template: str | None
    ) -> None:
        if param in allowed:
            return
        if template is None:
            hint = "only a route with match.path can use {parameters}"
        else:
            hint = join_hints(
                did_you_mean(param, allowed),
                f"its match.path {template!r} has " + (", ".join(sorted(allowed)) or "none"),
            )
        self.w.report(at, f"{message}, which the route's path template does not have", hint)
