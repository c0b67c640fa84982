"""The config model, and loading it from YAML with file:line problems.

Public surface:

- the frozen model, ``strangler.config.model`` (``Config``, ``Route``, ``MatchSpec``...);
- ``load_config(path)``: read the main file and every file it ``include``s, validate
  them and return a ``Config``, or raise ``ConfigError`` carrying *every* problem
  (``Problem(file, line, message, hint)``, in file order). A missing or unreadable
  file and a YAML syntax error are problems too, never another exception;
- ``load_config_text(text, file)``: the same from a string (tests; ``include`` globs
  are resolved against ``file``'s directory, the current one for ``"<string>"``);
- ``legacy_only(url, listen)``: the zero-config form ``strangler serve --legacy URL``,
  a ``Config`` whose only upstream is ``legacy``.

How it is split: ``source`` reads YAML into nodes that keep file:line and resolves
includes; ``described`` reads them into the model with pydantic (the kinds of values
in ``kinds``, ``units``, ``values``); ``validate*`` check what spans keys and build the
``Config``; ``check`` adds cross-route analysis and formats the ``strangler check`` report.

>>> cfg = load_config_text("upstreams: {legacy: http://127.0.0.1:8000}")
>>> cfg.upstreams["legacy"].url, cfg.routes, cfg.files
('http://127.0.0.1:8000', (), ('<string>',))
"""

from __future__ import annotations

from pathlib import Path

from strangler.config.model import Config
from strangler.config.source import read_file, read_text
from strangler.config.validate import legacy_only
from strangler.config.validate import validate as _validate  # keeps .validate the module

__all__ = ["legacy_only", "load_config", "load_config_text"]


def load_config(path: str | Path) -> Config:
    """Load and validate the config at ``path`` (and its includes); raise ``ConfigError``.

    ``Config.files`` lists every file read, main first, with paths as given (included
    ones joined onto the including file's directory); ``Config.version`` is the first
    12 hex digits of the SHA-256 of their bytes, in that order.
    """
    return _validate(read_file(path))


def load_config_text(text: str, file: str = "<string>") -> Config:
    """Like ``load_config`` for config text; ``file`` names it in problems and in
    ``Config.files``, and is where relative ``include`` globs start from."""
    return _validate(read_text(text, file))
