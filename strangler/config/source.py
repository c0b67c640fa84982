"""YAML files to nodes that remember where they came from, with ``include`` resolved.

One job: turn the main config file, and every route file it ``include``s, into a tree
of small immutable nodes (``Map``, ``Seq``, ``Scalar``), each carrying the
``Location`` (file, line) it was written at. Nothing here knows what the keys mean;
``validate`` does that. Everything that goes wrong is collected as a ``Problem``;
nothing raises on bad input.

Guarantees:

- Scalars follow the YAML 1.2 core schema, not PyYAML's YAML 1.1 defaults: only
  ``true``/``false`` are booleans (``off``, ``yes`` and ``on`` stay strings, so
  ``format: off`` means the string "off"), ``0.0.0.0:8080`` and ``8080:80`` stay
  strings (no base-60 numbers), dates stay strings, ``0755`` is the number 755.
- A key written twice in one mapping is a problem (YAML would silently keep the last).
- Anchors, aliases and ``<<`` merge keys work; a recursive alias is a problem.
- Custom tags (``!foo``) and non-JSON types (``!!binary``, ``!!set``...) are problems.
- Bounded, so no input can exhaust the stack or memory: lists and mappings nest at
  most ``MAX_DEPTH`` deep (counting what aliases pull in), a file expands to at most
  ``MAX_NODES`` values (a "billion laughs" of aliases is a problem, not a hang), a
  file is at most ``MAX_FILE_BYTES``, and a number must fit in 64 bits (an integer)
  or be finite (a float: ``1e400`` is a problem, ``.inf`` is allowed).
- ``include: [globs]`` in the main file or in an included file names route files,
  relative to the including file; each glob expands in sorted order. Files come out
  in declaration order: the including file, then each included file (and its own
  includes) in turn. A glob that matches no file, a file included twice and an
  include cycle are problems.

>>> src = read_text("listen: 0.0.0.0:8080\\nupstreams: {legacy: http://l:8000}\\n", "m.yaml")
>>> root = src.files[0].root
>>> isinstance(root, Map) and root.get("listen")
Scalar(value='0.0.0.0:8080', at=Location(file='m.yaml', line=1))
>>> src.problems
()
"""

from __future__ import annotations

import glob
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeAlias, final

import yaml

from strangler.config.model import Location
from strangler.config.values import shown
from strangler.errors import Problem

ScalarValue: TypeAlias = str | int | float | bool | None

MAX_DEPTH: Final = 64
"""Deepest nesting of lists and mappings; the deepest real config needs about 12."""
MAX_NODES: Final = 1_000_000
"""Most values one file may expand to, aliases expanded (about 30 per route)."""
MAX_FILE_BYTES: Final = 16 * 1024 * 1024
"""Largest config file read; a bigger one is surely not a config."""
_MAX_INT: Final = 2**63 - 1


@final
@dataclass(frozen=True, slots=True)
class Scalar:
    """A plain value: a string, a number, ``true``/``false`` or ``null`` (``None``)."""

    value: ScalarValue
    at: Location


@final
@dataclass(frozen=True, slots=True)
class Seq:
    """A YAML list."""

    items: tuple[Node, ...]
    at: Location


@final
@dataclass(frozen=True, slots=True)
class Map:
    """A YAML mapping. Keys are scalars (with their own location), in file order, unique."""

    entries: tuple[tuple[Scalar, Node], ...]
    at: Location

    def get(self, key: str) -> Node | None:
        for k, v in self.entries:
            if k.value == key and isinstance(k.value, str):
                return v
        return None

    def key_at(self, key: str) -> Location:
        """Where ``key`` is written, or where the mapping starts if it is not there."""
        for k, _ in self.entries:
            if k.value == key and isinstance(k.value, str):
                return k.at
        return self.at

    def given(self, key: str) -> Node | None:
        """The value of ``key``, or ``None`` when it is absent or ``null``."""
        found = self.get(key)
        return None if isinstance(found, Scalar) and found.value is None else found


Node: TypeAlias = Scalar | Seq | Map


def describe(node: Node) -> str:
    """A short human description of a node, for "expected X, got Y" messages.

    >>> describe(Scalar(3, Location("f", 1))), describe(Seq((), Location("f", 1)))
    ('the number 3', 'a list')
    """
    if isinstance(node, Map | Seq):
        return "a mapping" if isinstance(node, Map) else "a list"
    return shown(node.value)


@final
@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file that was read.

    ``path`` is the path as the user sees it (the main path as given; included files
    joined onto the including file's directory), usable to open the file from the
    current directory. ``root`` is ``None`` if the file is empty or could not be
    parsed (the reason is in ``Sources.problems``). ``included_at`` is the ``include``
    entry that pulled it in (``None`` for the main file).
    """

    path: str
    data: bytes
    root: Node | None
    included_at: Location | None = None


@final
@dataclass(frozen=True, slots=True)
class Sources:
    """Every file read, main first then includes in declaration order, and the problems."""

    files: tuple[SourceFile, ...]
    problems: tuple[Problem, ...]


def read_file(path: str | Path) -> Sources:
    """Read the main config file at ``path`` and everything it includes.

    A missing or unreadable main file is a problem (line 0: there is no line to
    point at), as is a YAML syntax error (at its line).
    """
    reader = _Reader()
    reader.read(str(path), at=None, chain=())
    return reader.result()


def read_text(text: str, file: str = "<string>") -> Sources:
    """Like ``read_file`` for config text; ``file`` names it in problems.

    Includes are resolved relative to ``file``'s directory, which for ``"<string>"`` is
    the current directory.
    """
    reader = _Reader()
    reader.add(file, text.encode("utf-8"), included_at=None, chain=())
    return reader.result()


def parse(data: bytes, file: str) -> tuple[Node | None, list[Problem]]:
    """Parse one YAML document into nodes. ``None`` for an empty document."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        return None, [Problem(file, line, f"not valid UTF-8 (byte 0x{data[err.start]:02x})")]
    try:
        yaml_root = yaml.compose(text, Loader=_Loader)
    except _TooDeep as err:
        line = err.problem_mark.line + 1 if err.problem_mark is not None else 1
        return None, [_too_deep(file, line)]
    except yaml.MarkedYAMLError as err:
        # An error at the end of the stream is reported on the last line, not after it.
        last = text.count("\n") + (0 if text.endswith("\n") else 1)
        return None, [_syntax_problem(err, file, max(last, 1))]
    except yaml.reader.ReaderError as err:
        position = err.position if isinstance(err.position, int) else 0
        line = text[:position].count("\n") + 1
        char = err.character
        code = ord(char) if isinstance(char, str) else char
        shown = f"#x{code:04x}" if isinstance(code, int) else repr(char)
        return None, [Problem(file, line, f"invalid YAML: character {shown}: {err.reason}")]
    except yaml.YAMLError as err:  # pragma: no cover - every PyYAML error is one of the above
        return None, [Problem(file, 1, f"invalid YAML: {err}")]
    if yaml_root is None:
        return None, []
    converter = _Converter(file)
    root = converter.convert(yaml_root)
    if converter.too_big:  # validating it could exhaust the stack or memory
        return None, converter.problems[: converter.too_big_at + 1]  # the rest is noise
    if isinstance(root, Scalar) and root.value is None:
        return None, converter.problems  # "---" and nothing else: empty too
    return root, converter.problems


# ---------------------------------------------------------------------------- YAML 1.2


class _TooDeep(yaml.MarkedYAMLError):
    """Raised by ``_Loader`` at the collection that nests deeper than ``MAX_DEPTH``."""


class _Loader(yaml.SafeLoader):
    """SafeLoader with the YAML 1.2 core schema's implicit types (see the module doc),
    refusing to nest deeper than ``MAX_DEPTH`` (PyYAML composes recursively, so a
    5,000-deep ``[[[[...`` would otherwise end in ``RecursionError``)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _TooDeep(problem_mark=event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# Drop YAML 1.1's bool (yes/no/on/off), int (base 60, 0755 octal), float, timestamp and
# value resolvers; keep null and merge. Then add the YAML 1.2 core ones.
_DROPPED: Final = frozenset(
    f"tag:yaml.org,2002:{t}" for t in ("bool", "int", "float", "timestamp", "value")
)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _DROPPED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)

_TAG: Final = "tag:yaml.org,2002:"
_MAP_TAG: Final = _TAG + "map"
_SEQ_TAG: Final = _TAG + "seq"
_MERGE_TAG: Final = _TAG + "merge"


class _TooLarge(ValueError):
    """A number that does not fit in 64 bits (an integer) or a finite float."""


def _scalar_value(tag: str, text: str) -> ScalarValue:
    """The value of a scalar with a standard tag; ``ValueError`` if the text does not fit."""
    if tag == _TAG + "str":
        return text
    if tag == _TAG + "null":
        if text in ("", "~", "null", "Null", "NULL"):
            return None
        raise ValueError
    if tag == _TAG + "bool":
        if text.lower() in ("true", "false"):
            return text.lower() == "true"
        raise ValueError
    if tag == _TAG + "int":
        clean = text.replace("_", "")
        if len(clean) > 70:  # int() of thousands of digits is slow, then refused
            raise _TooLarge
        number = (
            int(clean, 0) if clean.lstrip("+-").startswith(("0o", "0x", "0b")) else int(clean, 10)
        )
        if abs(number) > _MAX_INT:
            raise _TooLarge
        return number
    if tag == _TAG + "float":
        special = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
        if text.lower() in special:
            return special[text.lower()]
        result = float(text)
        if not math.isfinite(result):  # 1e400: written as a number, too large for one
            raise _TooLarge
        return result
    raise LookupError(tag)


class _Converter:
    """PyYAML nodes to ours. Memoised by node identity, so aliases stay cheap."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.too_big = False  # past MAX_DEPTH or MAX_NODES: the tree must not be used
        self.too_big_at = 0  # the index of the problem that says so
        self._done: dict[int, Node] = {}
        self._active: set[int] = set()
        # By id of our node (kept alive by _done): how deep and how many values it is
        # with aliases expanded. Aliases let a small file describe a deep or huge tree.
        self._height: dict[int, int] = {}
        self._count: dict[int, int] = {}

    def _problem(self, line: int, message: str, hint: str = "") -> None:
        self.problems.append(Problem(self.file, line, message, hint))

    def _at(self, node: yaml.Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1 if mark is not None else 0)

    def convert(self, node: yaml.Node) -> Node:
        key = id(node)
        if key in self._done:
            return self._done[key]
        at = self._at(node)
        if key in self._active:
            self._problem(at.line, "recursive YAML alias")
            return Scalar(None, at)
        if self.too_big:
            return Scalar(None, at)
        self._active.add(key)
        try:
            result = self._convert(node, at)
        finally:
            self._active.discard(key)
        self._done[key] = result
        self._measure(result)
        return result

    def _measure(self, node: Node) -> None:
        if isinstance(node, Scalar):
            return  # height 1, count 1: the defaults below
        children = node.items if isinstance(node, Seq) else [v for _, v in node.entries]
        heights, counts = self._height, self._count
        height = 1 + max((heights.get(id(c), 1) for c in children), default=0)
        count = 1 + sum(counts.get(id(c), 1) for c in children)
        heights[id(node)] = height
        counts[id(node)] = min(count, MAX_NODES + 1)
        if self.too_big:
            return
        self.too_big_at = len(self.problems)
        if height > MAX_DEPTH:
            self.too_big = True
            self.problems.append(_too_deep(self.file, node.at.line))
        elif count > MAX_NODES:
            self.too_big = True
            self._problem(
                node.at.line,
                f"this expands to more than {MAX_NODES:,} values",
                "YAML aliases (*name) repeat what they point at; use fewer of them",
            )

    def _convert(self, node: yaml.Node, at: Location) -> Node:
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                self._bad_tag(node.tag, at)
            return self._mapping(node, at)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self._bad_tag(node.tag, at)
            return Seq(tuple(self.convert(item) for item in node.value), at)
        text = str(node.value)
        try:
            return Scalar(_scalar_value(node.tag, text), at)
        except LookupError:
            self._bad_tag(node.tag, at)
        except _TooLarge:
            short = text if len(text) <= 40 else f"{text[:20]}...{text[-8:]}"
            self._problem(
                at.line,
                f"the number {short} is too large",
                "numbers must fit in 64 bits; durations and sizes take units, like 5m or 1GiB",
            )
        except ValueError:
            kind = node.tag.removeprefix(_TAG)
            self._problem(at.line, f"{text!r} is not a valid {kind}")
        return Scalar(text, at)

    def _bad_tag(self, tag: str, at: Location) -> None:
        name = "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag
        self._problem(
            at.line,
            f"unsupported YAML tag {name!r}",
            "use plain strings, numbers, true/false, lists and mappings",
        )

    def _mapping(self, node: yaml.MappingNode, at: Location) -> Map:
        entries: list[tuple[Scalar, Node]] = []
        seen: dict[tuple[str, ScalarValue], Location] = {}
        merged: list[tuple[Scalar, Node]] = []
        for yaml_key, yaml_value in node.value:
            if isinstance(yaml_key, yaml.ScalarNode) and yaml_key.tag == _MERGE_TAG:
                merged.extend(self._merge_source(self.convert(yaml_value)))
                continue
            key = self.convert(yaml_key)
            if not isinstance(key, Scalar):
                self._problem(key.at.line, f"a key must be a plain value, not {describe(key)}")
                continue
            identity = (type(key.value).__name__, key.value)
            if identity in seen:
                first = seen[identity]
                self._problem(
                    key.at.line,
                    f"duplicate key {key.value!r} (first at line {first.line})",
                    "YAML would silently keep only the last one; remove one of them",
                )
                continue
            seen[identity] = key.at
            entries.append((key, self.convert(yaml_value)))
        # Merged keys fill in what the mapping does not say itself; earlier sources win.
        for key, value in merged:
            identity = (type(key.value).__name__, key.value)
            if identity not in seen:
                seen[identity] = key.at
                entries.append((key, value))
        return Map(tuple(entries), at)

    def _merge_source(self, source: Node) -> Iterator[tuple[Scalar, Node]]:
        sources = source.items if isinstance(source, Seq) else (source,)
        for item in sources:
            if isinstance(item, Map):
                yield from item.entries
            else:
                self._problem(item.at.line, f"'<<' merges mappings, got {describe(item)}")


def _too_deep(file: str, line: int) -> Problem:
    return Problem(
        file,
        line,
        f"lists and mappings nested more than {MAX_DEPTH} deep",
        "a strangler config needs far fewer levels (aliases count where they are used)",
    )


def _syntax_problem(err: yaml.MarkedYAMLError, file: str, last_line: int) -> Problem:
    mark = err.problem_mark or err.context_mark
    line = min(mark.line + 1 if mark is not None else 1, last_line)
    hint = ""
    if err.context:
        hint = err.context
        if err.context_mark is not None and err.context_mark.line + 1 != line:
            hint += f" started at line {err.context_mark.line + 1}"
    problem = err.problem or err.context or ""
    # PyYAML's words for the usual slips name its parser's states; say what to fix.
    if "'\\t'" in problem:
        return Problem(
            file, line, "invalid YAML: a tab character", "YAML indents with spaces only: "
            "replace the tabs on this line with spaces"
        )  # fmt: skip
    if problem.startswith("expected <block end>"):
        hint = "check the indentation: this line is not lined up with the keys above it"
        if err.context_mark is not None:
            hint += f" (the block that started at line {err.context_mark.line + 1})"
        return Problem(file, line, "invalid YAML: this line's indentation does not fit", hint)
    if problem == "mapping values are not allowed here":
        hint = (
            "check the indentation of this line (a key indented under a value), or quote "
            "a value that contains ': '"
        )
    return Problem(file, line, f"invalid YAML: {problem}", hint)


# ---------------------------------------------------------------------------- includes


class _Reader:
    """Reads files depth-first through ``include``, collecting files and problems."""

    def __init__(self) -> None:
        self.files: list[SourceFile] = []
        self.problems: list[Problem] = []
        # real path -> the include entry that first pulled it in (None: the main file)
        self._seen: dict[str, Location | None] = {}

    def _problem(self, at: Location, message: str, hint: str = "") -> None:
        self.problems.append(Problem(at.file, at.line, message, hint))

    def result(self) -> Sources:
        return Sources(tuple(self.files), tuple(self.problems))

    def read(self, path: str, *, at: Location | None, chain: tuple[tuple[str, str], ...]) -> None:
        """Read the file at ``path`` (``at``: the include entry naming it; ``None`` for
        the main file) and ``add`` it, or report why it cannot be read."""
        try:
            if os.stat(path).st_size > MAX_FILE_BYTES:
                raise OSError(
                    f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: not a config file"
                )
            data = Path(path).read_bytes()
        except OSError as err:
            what = "the config file" if at is None else f"included file {path}"
            self._problem(at or Location(path, 0), f"cannot read {what}: {err.strerror or err}")
            return
        self.add(path, data, included_at=at, chain=chain)

    def add(
        self,
        path: str,
        data: bytes,
        *,
        included_at: Location | None,
        chain: tuple[tuple[str, str], ...],
    ) -> None:
        """Parse one file and, depth-first, what it includes. ``chain`` holds the
        (real path, shown path) of the files that include this one, outermost first."""
        root, problems = parse(data, path)
        self.files.append(SourceFile(path, data, root, included_at))
        self.problems.extend(problems)
        real = os.path.realpath(path)
        self._seen[real] = included_at
        if isinstance(root, Map):
            include = root.get("include")
            if include is not None:
                self._include(path, include, (*chain, (real, path)))

    def _include(self, parent: str, node: Node, chain: tuple[tuple[str, str], ...]) -> None:
        if not isinstance(node, Seq):
            self._problem(
                node.at,
                f"include must be a list of file globs, got {describe(node)}",
                "for example: include: [routes/*.yaml]",
            )
            return
        base = os.path.dirname(parent)
        for item in node.items:
            if not isinstance(item, Scalar) or not isinstance(item.value, str) or not item.value:
                self._problem(
                    item.at,
                    f"an include entry must be a file glob, got {describe(item)}",
                    "for example: routes/*.yaml",
                )
                continue
            for path in self._expand(base, item):
                self._include_one(path, item.at, chain)

    def _expand(self, base: str, item: Scalar) -> list[str]:
        pattern = str(item.value)
        if os.path.isabs(pattern):
            found = sorted(glob.glob(pattern, recursive=True))
        else:
            relative = sorted(glob.glob(pattern, root_dir=base or None, recursive=True))
            found = [os.path.normpath(os.path.join(base, m)) for m in relative]
        files = [f for f in found if os.path.isfile(f)]
        if not files:
            where = f"'{base}'" if base else "the current directory"
            self._problem(
                item.at,
                f"include {pattern!r} matches no file",
                f"include globs are relative to the including file's directory ({where})",
            )
        return files

    def _include_one(self, path: str, at: Location, chain: tuple[tuple[str, str], ...]) -> None:
        real = os.path.realpath(path)
        reals = [r for r, _ in chain]
        if real in reals:
            names = [shown for _, shown in chain[reals.index(real) :]] + [path]
            self._problem(
                at,
                f"include cycle: {' -> '.join(names)}",
                "a file must not include itself, directly or through other files",
            )
            return
        if real in self._seen:
            first = self._seen[real]
            by = f" (by {first})" if first is not None else " (it is the main config file)"
            self._problem(
                at,
                f"{path} is already included{by}",
                "include each file once; make the globs narrower",
            )
            return
        self.read(path, at=at, chain=chain)
