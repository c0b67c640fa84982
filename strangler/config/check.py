"""``strangler check``: load a config the way the server does, then look across routes.

One job: turn a config path into a ``CheckReport`` and print it for humans
(``format_text``) or machines (``format_json``). ``run_check`` never raises for a
bad config: every problem lands in the report, and ``ok`` says whether there is any.

On top of what ``load_config`` checks, it reports routes that can never match: a
route every one of whose requests an earlier route already answers (first match
wins), found by ``strangler.router.analysis.shadowed``. The server loads such a
config (it is well-formed); ``check`` fails it, because the later route is dead.

>>> report = run_check("does-not-exist.yaml")
>>> report.ok, report.problems[0].message
(False, 'cannot read the config file: No such file or directory')
>>> print(format_text(report))
does-not-exist.yaml: cannot read the config file: No such file or directory
does-not-exist.yaml: 1 problem
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import final

from strangler.config.model import Config
from strangler.config.source import Sources, read_file
from strangler.config.validate import in_file_order, validate
from strangler.errors import ConfigError, Problem

__all__ = [
    "CheckReport",
    "check_sources",
    "format_json",
    "format_text",
    "run_check",
    "shadowed_routes",
    "warnings",
]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """What ``strangler check`` found.

    ``ok``: no problem at all. ``problems``: in file order, then line. ``warnings``:
    things that work but should not stay (``verify: false`` on an upstream); they do
    not make ``ok`` false, so ``strangler check`` still exits 0. ``version``
    and the counts describe the config when it loaded (``None`` and 0 when it did
    not; ``files`` then counts the files that were read).
    """

    path: str
    ok: bool
    problems: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    version: str | None = None
    upstreams: int = 0
    routes: int = 0
    files: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "ok": self.ok,
            "version": self.version,
            "counts": {"upstreams": self.upstreams, "routes": self.routes, "files": self.files},
            "problems": [p.as_dict() for p in self.problems],
            "warnings": [p.as_dict() for p in self.warnings],
        }


def run_check(path: str | Path) -> CheckReport:
    """Load and validate the config at ``path`` and its includes, then check the routes
    against each other. Never raises for a bad config; see ``CheckReport``.

    A bug of ours met on the way (an exception other than ``ConfigError``) is
    reported as one problem naming the exception, never as a traceback: the fuzz
    tests (tests/test_config_fuzz.py) keep that from happening at all."""
    try:
        return check_sources(read_file(path), path)
    except Exception as err:
        message = f"strangler could not check this config ({type(err).__name__}: {err})"
        hint = "please report it, with the config, at the strangler issue tracker"
        return CheckReport(
            path=str(path), ok=False, problems=(Problem(str(path), 0, message, hint),)
        )


def check_sources(sources: Sources, path: str | Path) -> CheckReport:
    """``run_check`` for files already read (``source.read_file``/``read_text``).
    Raises nothing but for a bug of ours."""
    try:
        config = validate(sources)
    except ConfigError as err:
        return CheckReport(
            path=str(path), ok=False, problems=err.problems, files=len(sources.files)
        )
    problems = shadowed_routes(config)
    return CheckReport(
        path=str(path),
        ok=not problems,
        problems=tuple(problems),
        warnings=tuple(warnings(config)),
        version=config.version,
        upstreams=len(config.upstreams),
        routes=len(config.routes),
        files=len(config.files),
    )


def shadowed_routes(config: Config) -> list[Problem]:
    """A problem at each route that can never match, naming the route above that wins.

    ``config.routes`` is in declaration order (``Route.index``), which is the order
    ``shadowed`` numbers its specs in.
    """
    # Imported here: ``config`` sits below ``router`` in the dependency order, and
    # only ``check`` needs compiled routes.
    from strangler.router.analysis import shadowed

    routes = config.routes
    problems: list[Problem] = []
    for later, earlier in shadowed([route.match for route in routes]):
        dead, winner = routes[later], routes[earlier]
        problems.append(
            Problem(
                dead.at.file,
                dead.at.line,
                f"route {dead.name!r} can never match: route {winner.name!r} ({winner.at}) "
                "above it matches every request it would",
                f"move {dead.name!r} above {winner.name!r}, or narrow {winner.name!r}",
            )
        )
    return in_file_order(problems, config.files)


def warnings(config: Config) -> list[Problem]:
    """What loads and runs but weakens the proxy: an upstream whose certificate is not
    verified (``tls.verify: false``), at the line of ``verify``."""
    found = [
        Problem(
            up.tls.verify_at.file,
            up.tls.verify_at.line,
            f"upstream {up.name!r} does not verify its TLS certificate (verify: false): "
            "anyone on the path can impersonate it",
            "give its CA instead: tls: {ca: FILE}",
        )
        for up in config.upstreams.values()
        if up.url.startswith("https://") and not up.tls.verify
    ]
    return in_file_order(found, config.files)


def format_text(report: CheckReport) -> str:
    """One line per problem (``file:line: message (hint: ...)``) and per warning
    (``file:line: warning: ...``), then a summary line.

    >>> print(format_text(CheckReport(path="s.yaml", ok=True, version="3f2a9c0d1e2b",
    ...                               upstreams=2, routes=5, files=3)))
    s.yaml: ok (version 3f2a9c0d1e2b: 2 upstreams, 5 routes, 3 files)
    """
    warned = [str(replace(p, message=f"warning: {p.message}")) for p in report.warnings]
    if report.ok:
        also = f", {_plural(len(warned), 'warning')}" if warned else ""
        return "\n".join(
            [
                *warned,
                f"{report.path}: ok (version {report.version}: "
                f"{_plural(report.upstreams, 'upstream')}, {_plural(report.routes, 'route')}, "
                f"{_plural(report.files, 'file')}{also})",
            ]
        )
    lines = [str(p) for p in report.problems] + warned
    lines.append(f"{report.path}: {_plural(len(report.problems), 'problem')}")
    return "\n".join(lines)


def format_json(report: CheckReport) -> str:
    """The report as one JSON object: path, ok, version, counts and problems
    (each with file, line, message and hint)."""
    return json.dumps(report.as_dict(), indent=2)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
