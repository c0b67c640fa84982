"""Nodes to the frozen ``Config``, collecting every problem before giving up.

One job: check what ``source`` read against the config shape and build the model.
It never stops at the first problem and never ``assert``s on input: every problem is
recorded as a ``Problem(file, line, message, hint)`` and, if there is any,
``validate`` raises one ``ConfigError`` carrying all of them, in file order (the
order of ``Config.files``, then line).

>>> from strangler.config.source import read_text
>>> cfg = validate(read_text("upstreams: {legacy: http://127.0.0.1:8000/}", "m.yaml"))
>>> cfg.upstreams["legacy"].url
'http://127.0.0.1:8000'
>>> try:
...     validate(read_text("upstreams: {legcy: http://x}", "m.yaml"))
... except ConfigError as err:
...     print(err.problems[0].hint)
rename 'legcy' to 'legacy'

What is normalised on the way: an upstream URL loses its trailing ``/`` and its
scheme is lower-cased; methods are upper-cased; ``admin.token_file``,
``access_log.path`` and ``state.dir`` (default ``.strangler``) are resolved against
the main config file's directory; percentages become ratios.

The TLS files are checked by the kinds of ``tls_files`` (each loads, each key fits its
certificate); here, across keys: ``listen.redirect_http`` needs ``listen.tls`` and an
address of its own, an upstream's ``tls`` an https:// URL, and its ``cert`` a ``key``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Final

from strangler.config import kinds
from strangler.config.described import MainFile
from strangler.config.described import read as read_main
from strangler.config.model import LEGACY, Config, Listen, Location, Upstream
from strangler.config.source import Map, Node, Scalar, Sources, describe
from strangler.config.validate_routes import RouteTable
from strangler.config.validate_translate import Translators
from strangler.config.values import BadValue, check_url, mask_url_password, parse_listen
from strangler.config.walker import Walker, suggest
from strangler.errors import ConfigError, Problem

__all__ = [
    "TOP_KEYS",
    "in_file_order",
    "legacy_only",
    "mask_url_password",
    "parse_listen",
    "validate",
]

TOP_KEYS: Final = tuple(field.name for field in dataclasses.fields(MainFile))
_CONFIG: Final = Config(upstreams=MappingProxyType({}))  # the defaults


# ---------------------------------------------------------------------------- validator


class _Validator(Walker):
    """The top-level sections; routes are read by ``RouteTable``."""

    def config(self, sources: Sources) -> Config | None:
        main = sources.files[0]
        root = main.root
        if root is None:
            if any(p.file == main.path for p in sources.problems):
                return None  # a syntax error; nothing to check
            root = Map((), Location(main.path, 1))  # an empty file: report what is missing
        if not isinstance(root, Map):
            self.report(
                root.at,
                f"the config must be a mapping (listen:, upstreams:, routes: ...), "
                f"got {describe(root)}",
            )
            return None
        described = read_main(self, root)
        f = {key.value: value for key, value in root.entries if isinstance(key.value, str)}

        self.listen(f.get("listen"))
        if described is not None:
            self.check_ports(described.listen.listen, described.admin.listen, root.key_at("admin"))
        upstreams, known = self.upstreams(described, root)

        named = described.translators if described is not None else {}
        translators = Translators(self, f.get("translators"), named)
        table = RouteTable(self, known, TOP_KEYS, translators)
        if "routes" in f:
            table.read_list(f["routes"])
        unreadable = {p.file for p in sources.problems}
        for file in sources.files[1:]:
            table.read_file(file.path, file.root, unreadable=file.path in unreadable)
        table.finish()
        state = f.get("state")
        backend = state.given("backend") if isinstance(state, Map) else None
        if (
            isinstance(state, Map)
            and state.given("redis") is not None
            and (backend is None or (isinstance(backend, Scalar) and backend.value == "file"))
        ):
            self.report(
                state.key_at("redis"),
                "state.redis is set but state.backend is file, so it would be ignored",
                "add 'backend: redis' to state (or remove state.redis)",
            )
        if (
            self.problems
            or sources.problems
            or len(table.routes) != table.count  # never drop a route silently
            or upstreams is None
            or described is None
        ):
            return None
        digest = hashlib.sha256()
        for file in sources.files:
            digest.update(file.data)
        return Config(
            listen=described.listen.listen,
            admin=described.admin,
            upstreams=MappingProxyType(upstreams),
            routes=tuple(table.routes),
            limits=described.limits,
            forwarded=described.forwarded,
            access_log=described.access_log,
            drain_seconds=described.drain,
            # the default directory is relative to the main file too
            state=replace(
                described.state,
                dir=os.path.normpath(os.path.join(self.base_dir, described.state.dir)),
            ),
            debug_headers=described.debug_headers,
            progress=described.progress,
            tracing=described.tracing,
            files=tuple(file.path for file in sources.files),
            version=digest.hexdigest()[:12],
        )

    def check_ports(self, listen: Listen, admin: Listen, at: Location) -> None:
        """The admin API cannot share the proxy's port (port 0 picks a free one each)."""
        wildcards = ("0.0.0.0", "::")
        overlap = listen.host == admin.host or listen.host in wildcards or admin.host in wildcards
        if listen.port and listen.port == admin.port and overlap:
            self.report(
                at,
                f"admin.listen {admin} uses the same port as listen {listen}",
                "give the admin API its own port, for example 127.0.0.1:8081",
            )

    def upstreams(
        self, described: MainFile | None, root: Map
    ) -> tuple[dict[str, Upstream] | None, set[str]]:
        """The upstreams, and every name declared (even those with problems). pydantic
        read their keys (``described``); here: ``legacy`` is there, and each one's tls."""
        node = root.get("upstreams")
        if node is None:
            example = "upstreams: {legacy: http://127.0.0.1:8000}"
            self.report(root.at, "the config has no 'upstreams'", f"add at least: {example}")
            return None, set()
        if not isinstance(node, Map):
            return None, set()  # described reported it
        known = {key.value for key, _ in node.entries if isinstance(key.value, str)}
        ok = LEGACY in known
        if not ok:
            self.report(
                root.key_at("upstreams"),
                f"upstreams must include '{LEGACY}', the app that answers every request no "
                "route claims",
                f"rename {close!r} to '{LEGACY}'"
                if (close := suggest(LEGACY, known))
                else f"add: {LEGACY}: http://127.0.0.1:8000",
            )
        entries = described.upstreams if described is not None else None
        result: dict[str, Upstream] = {}
        for key, value in node.entries:
            name = str(key.value)
            verify_at = self.upstream_tls(name, value)
            entry = entries.get(name) if entries is not None else None
            if entry is None:
                ok = False
                continue
            tls = replace(entry.tls, verify_at=verify_at)
            result[name] = replace(entry, name=name, tls=tls, at=value.at)
        return (result if ok else None), known

    def listen(self, node: Node | None) -> None:
        """``listen.redirect_http`` against ``tls`` and ``address``."""
        redirect = node.given("redirect_http") if isinstance(node, Map) else None
        if not isinstance(node, Map) or redirect is None:
            return
        if node.given("tls") is None:
            self.report(
                redirect.at,
                "listen.redirect_http needs listen.tls: it redirects to https://",
                "add tls: {cert: FILE, key: FILE} to listen, or remove redirect_http",
            )
            return
        plain, tls = _address(redirect), _address(node.get("address"))
        if plain is not None and plain == tls and not plain.endswith(":0"):  # 0: a free port each
            self.report(
                redirect.at,
                f"listen.redirect_http {plain} is the TLS listener's own address",
                "give plain HTTP its own port, for example 0.0.0.0:8080",
            )

    def upstream_tls(self, name: str, node: Node) -> Location:
        """``upstreams.NAME.tls`` against the URL, and ``cert`` with ``key``; the line of
        ``verify`` (where ``strangler check`` warns about ``verify: false``)."""
        tls = node.get("tls") if isinstance(node, Map) else None
        if not isinstance(node, Map) or not isinstance(tls, Map):
            return node.at
        url = node.get("url")
        if isinstance(url, Scalar) and not str(url.value).lower().startswith("https://"):
            self.report(
                tls.at,
                f"upstreams.{name} has tls but its url {url.value!r} is not https://",
                "use an https:// URL, or remove tls",
            )
        cert, key = tls.given("cert"), tls.given("key")
        if cert is not None and key is None:
            self.report(
                cert.at,
                f"upstreams.{name}.tls has cert but no key",
                "add key: the certificate's private key file",
            )
        elif key is not None and cert is None:
            self.report(
                key.at,
                f"upstreams.{name}.tls has key but no cert",
                "add cert: the certificate chain file",
            )
        verify = tls.get("verify")
        return tls.at if verify is None else verify.at


def _address(node: Node | None) -> str | None:
    """``listen`` as written, when it parses (else pydantic reports it)."""
    try:
        return str(kinds.LISTEN.parse(node.value)) if isinstance(node, Scalar) else None
    except BadValue:
        return None


# ---------------------------------------------------------------------------- entry points


def validate(sources: Sources) -> Config:
    """Build the ``Config`` from what ``source`` read, or raise ``ConfigError``.

    The error carries every problem, the source ones (unreadable files, YAML syntax,
    includes) included, sorted by file (in ``Config.files`` order) then line.
    """
    if not sources.files:  # the main file could not be read
        raise ConfigError(sources.problems)
    validator = _Validator(sources.files[0].path)
    config = validator.config(sources)
    # A line the reader already complained about (a bad tag, say) yields only that
    # problem: what the validator then says about its value is noise.
    flagged = {(p.file, p.line) for p in sources.problems}
    problems = [
        *sources.problems,
        *(p for p in validator.problems if (p.file, p.line) not in flagged),
    ]
    if config is None or problems:
        problems = in_file_order(problems, [file.path for file in sources.files])
        raise ConfigError(problems or [Problem(sources.files[0].path, 0, "invalid config")])
    return config


def in_file_order(problems: Iterable[Problem], files: Sequence[str]) -> list[Problem]:
    """``problems`` by file, in the order of ``files`` (one not there first), then line."""
    rank = {file: n for n, file in enumerate(files)}
    return sorted(problems, key=lambda p: (rank.get(p.file, -1), p.line))


def legacy_only(url: str, listen: str | None = None) -> Config:
    """The zero-config form: every request goes to the ``legacy`` upstream at ``url``.

    ``url`` follows the same rules as an upstream URL in a file; ``listen`` is
    ``host:port`` (default ``0.0.0.0:8080``). Problems name the command-line option
    they come from (``--legacy``, ``--listen``).

    >>> legacy_only("http://127.0.0.1:8000/").upstreams["legacy"].url
    'http://127.0.0.1:8000'
    >>> try:
    ...     legacy_only("127.0.0.1:8000")
    ... except ConfigError as err:
    ...     print(err.problems[0].message)
    URL '127.0.0.1:8000' must start with http:// or https://
    """
    problems: list[Problem] = []
    normalised = address = None
    try:
        normalised = check_url(url)
    except BadValue as err:
        problems.append(Problem("--legacy", 0, str(err), err.hint))
    try:
        address = _CONFIG.listen if listen is None else parse_listen(listen)
    except BadValue as err:
        problems.append(Problem("--listen", 0, str(err), err.hint))
    if normalised is None or address is None:
        raise ConfigError(problems)
    upstream = Upstream(name=LEGACY, url=normalised)
    return Config(listen=address, upstreams=MappingProxyType({LEGACY: upstream}))
