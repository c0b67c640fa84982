"""JSON paths at work: find, read, write and remove the places a ``JsonPath`` names.

One job: walk a parsed document along a path's segments (keys, indices, ``[*]``) and
hand back the places, so the ``json:`` operations and the ``error:`` template never
walk documents themselves. The rules:

- reading: a place whose parent is absent or ``null`` is skipped (the value is
  absent, not an error);
- writing: absent or ``null`` objects on the way are created; arrays never grow;
- a key into something that is not an object, or an index into something that is
  not an array, raises ``OpError`` naming the concrete place: ``lines[2].qty``.

>>> from strangler.config.translate_values import parse_json_path as p
>>> get_values({"lines": [{"sku": "a"}, {"sku": "b"}, {}]}, p("lines[*].sku"))
[('lines[0].sku', 'a'), ('lines[1].sku', 'b')]
>>> missing({"lines": [{"sku": "a"}, {}]}, p("lines[*].sku").segments)
'lines[1].sku'
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from strangler.config.translate_model import FrozenJSON, JsonPath, Segment, Wildcard
from strangler.translate.base import JSON

__all__ = ["OpError", "Slot", "get_values", "join", "kind", "missing", "show", "slots", "thaw"]


class OpError(ValueError):
    """An operation that cannot do its job on this document; ``str()`` says why."""


def show(value: JSON) -> str:
    """A value for a message: short, JSON-ish."""
    text = "null" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kind(value: JSON) -> str:
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


def join(where: str, seg: Segment) -> str:
    if isinstance(seg, str):
        return f"{where}.{seg}" if where else seg
    return f"{where}[{seg}]"


@dataclass(slots=True)
class Slot:
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
            raise OpError(f"{where or '$'} is {kind(value)}, not an object (looking for {seg!r})")
        yield value, seg, join(where, seg)
        return
    if not isinstance(value, list):
        shown = "[*]" if seg is Wildcard.ANY else f"[{seg}]"
        raise OpError(f"{where or '$'} is {kind(value)}, not an array (looking for {shown})")
    if seg is Wildcard.ANY:
        for i in range(len(value)):
            yield value, i, join(where, i)
        return
    assert isinstance(seg, int)
    index = seg + len(value) if seg < 0 else seg
    yield value, index, join(where, seg)


def slots(root: JSON, segments: Sequence[Segment], *, create: bool) -> Iterator[Slot]:
    """Every place ``segments`` names under ``root``.

    Reading (``create=False``): a place whose parent is absent or null is skipped.
    Writing (``create=True``): absent or null objects on the way are created; a
    missing array element is an error (arrays are never grown).
    """
    assert segments, "the root has no slot"

    def walk(value: JSON, depth: int, where: str) -> Iterator[Slot]:
        seg = segments[depth]
        last = depth == len(segments) - 1
        for parent, key, here in _children(value, seg, where, create):
            slot = Slot(parent, key, here)
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
    return [(s.where, s.get()) for s in slots(root, path.segments, create=False) if s.present]


def missing(root: JSON, segments: Sequence[Segment], where: str = "") -> str | None:
    """The first concrete path ``segments`` names that is absent (a ``[*]`` needs every
    element to have the rest), or ``None`` when all are present."""
    if not segments:
        return None
    seg, rest = segments[0], segments[1:]
    if isinstance(seg, str):
        here = join(where, seg)
        if not isinstance(root, dict) or seg not in root:
            return here
        return missing(root[seg], rest, here)
    if not isinstance(root, list):
        return join(where, 0 if seg is Wildcard.ANY else seg)
    if seg is Wildcard.ANY:
        for i, item in enumerate(root):
            found = missing(item, rest, join(where, i))
            if found is not None:
                return found
        return None
    assert isinstance(seg, int)
    index = seg + len(root) if seg < 0 else seg
    if not 0 <= index < len(root):
        return join(where, seg)
    return missing(root[index], rest, join(where, seg))
