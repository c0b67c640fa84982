"""Reading typed values out of config nodes while collecting problems.

``Walker`` is the one place that turns "this node is not what we expected" into a
``Problem`` with the node's file:line, and then lets the walk go on: every reader
returns the value, or ``None`` after reporting why there is none. What the model
describes is read by ``described`` (pydantic); this is for the rest: a route file's top
level, a translate spec file, the cross-checks in ``validate*``.

>>> from strangler.config.source import read_text
>>> root = read_text("path_template: ''\\ntranslat: {}\\n", "s.yaml").files[0].root
>>> w = Walker("s.yaml")
>>> f = w.fields(root, ("path_template", "translate"), subject="the spec", where="here")
>>> w.string(f["path_template"], "path_template")
>>> [(p.line, p.message, p.hint) for p in w.problems]  # doctest: +NORMALIZE_WHITESPACE
[(2, "unknown key 'translat' here", "did you mean 'translate'?"),
 (1, 'path_template must not be empty', '')]
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from strangler.config.model import Location
from strangler.config.source import Map, Node, Scalar, describe
from strangler.config.values import BadValue
from strangler.errors import Problem

__all__ = ["Walker", "did_you_mean", "join_hints", "suggest"]

T = TypeVar("T")


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """The choice closest to ``word`` (ignoring case), if one is close enough.

    >>> suggest("path_prefx", ["path", "path_prefix", "methods"])
    'path_prefix'
    """
    by_lower = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), by_lower, n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"did you mean 'x'?"`` for the closest choice, or ``""``."""
    best = suggest(word, choices)
    return f"did you mean '{best}'?" if best is not None else ""


def join_hints(*parts: str) -> str:
    """Non-empty hint parts joined with ``"; "``."""
    return "; ".join(p for p in parts if p)


class Walker:
    """Collects problems; every reader reports and returns ``None`` on a bad node.

    ``base_dir`` is the main config file's directory, against which relative file
    paths in the config (``admin.token_file``, ``access_log.path``) are resolved.
    """

    def __init__(self, main_path: str) -> None:
        self.problems: list[Problem] = []
        self.base_dir = os.path.dirname(main_path)

    def report(self, at: Location, message: str, hint: str = "") -> None:
        self.problems.append(Problem(at.file, at.line, message, hint))

    def fields(
        self,
        node: Node,
        allowed: Sequence[str],
        *,
        subject: str,
        where: str,
        required: Sequence[str] = (),
        foreign_hint: Callable[[str], str] | None = None,
    ) -> dict[str, Node] | None:
        """The entries of a mapping whose keys are ``allowed``, or ``None`` if ``node``
        is not a mapping. Unknown keys (with a "did you mean" hint, else
        ``foreign_hint(key)``, else the valid keys) and missing ``required`` keys are
        reported. ``subject`` names the mapping ("X must be a mapping", "X is missing
        required key 'k'"); ``where`` ends "unknown key 'k' ...".
        """
        if not isinstance(node, Map):
            self.report(node.at, f"{subject} must be a mapping, got {describe(node)}")
            return None
        out: dict[str, Node] = {}
        guessed: set[str] = set()
        for key, value in node.entries:
            if isinstance(key.value, str) and key.value in allowed:
                out[key.value] = value
                continue
            best = suggest(key.value, allowed) if isinstance(key.value, str) else None
            if best is not None:
                guessed.add(best)
                hint = f"did you mean '{best}'?"
            else:
                hint = foreign_hint(str(key.value)) if foreign_hint else ""
                hint = hint or f"valid keys here: {', '.join(allowed)}"
            self.report(key.at, f"unknown key {key.value!r} {where}", hint)
        for name in required:
            # A misspelt required key is reported once, as the unknown key.
            if name not in out and name not in guessed:
                self.report(node.at, f"{subject} is missing required key {name!r}")
        return out

    def string(self, node: Node, what: str, *, hint: str = "") -> str | None:
        """A non-blank string."""
        if isinstance(node, Scalar) and isinstance(node.value, str):
            if node.value.strip():
                return node.value
            self.report(node.at, f"{what} must not be empty", hint)
            return None
        self.report(node.at, f"{what} must be a string, got {describe(node)}", hint)
        return None

    def checked(self, node: Node, what: str, check: Callable[[str], T], text: str) -> T | None:
        """``check(text)``; its ``BadValue`` is reported as ``what: message (hint: ...)``."""
        try:
            return check(text)
        except BadValue as err:
            self.report(node.at, f"{what}: {err}", err.hint)
            return None
