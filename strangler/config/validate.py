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
the main config file's directory; percentages become ratios; an override's
``allow`` list defaults to the route's own sides.
"""

from __future__ import annotations

import hashlib
import os
import re
from types import MappingProxyType
from typing import Any, Final, Literal, cast
from urllib.parse import parse_qsl, urlsplit

from strangler.config import units
from strangler.config.model import (
    LEGACY,
    AccessLog,
    Admin,
    Config,
    DebugHeaders,
    Forwarded,
    Limits,
    Listen,
    Location,
    ProgressSettings,
    RedisState,
    StateFiles,
    Timeouts,
    Upstream,
    UpstreamTls,
)
from strangler.config.source import Map, Node, Scalar, Sources, describe
from strangler.config.validate_progress import read_progress
from strangler.config.validate_routes import RouteTable, read_networks
from strangler.config.validate_tls import TlsReader
from strangler.config.validate_tracing import read_tracing
from strangler.config.validate_translate import TranslateReader
from strangler.config.values import NAME, BadValue, check_url, hide_userinfo, parse_listen
from strangler.config.walker import Walker, suggest
from strangler.errors import ConfigError, Problem

__all__ = ["TOP_KEYS", "legacy_only", "mask_url_password", "parse_listen", "validate"]

TOP_KEYS: Final = (
    "listen", "admin", "upstreams", "include", "routes",
    "limits", "forwarded", "access_log", "drain", "state", "translators", "debug_headers",
    "progress", "tracing",
)  # fmt: skip
ADMIN_KEYS: Final = ("listen", "token_env", "token_file", "allow_public_reads")
UPSTREAM_KEYS: Final = ("url", "timeout", "max_connections", "host_header", "tls")
TIMEOUT_KEYS: Final = ("connect", "read", "total")
LIMITS_KEYS: Final = (
    "max_header_bytes", "max_headers", "max_body_bytes", "max_head_bytes", "header_timeout",
    "keepalive_timeout", "body_timeout", "max_connections", "underscore_headers",
)  # fmt: skip
UNDERSCORE_MODES: Final = ("drop", "keep", "reject")
_ZERO_OK: Final = ("max_body_bytes", "max_connections")  # 0: no limit / automatic
FORWARDED_KEYS: Final = ("trusted", "headers", "style")
ACCESS_LOG_KEYS: Final = ("format", "path")
STATE_KEYS: Final = ("dir", "file_poll", "backend", "redis")
STATE_BACKENDS: Final = ("file", "redis")
REDIS_KEYS: Final = ("url", "key_prefix", "resync")
_MAX_FILE_POLL: Final = 60.0
_MAX_RESYNC: Final = 3600.0

# A bare number this large in a timeout was most likely meant as milliseconds.
_BARE_TIMEOUT: Final = {
    "connect": units.bare_seconds_below(100),
    "read": units.bare_seconds_below(1000),
    "total": units.bare_seconds_below(1000),
}
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONFIG: Final = Config(upstreams=MappingProxyType({}))  # the defaults
_UPSTREAM: Final = Upstream(name="", url="")


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
        f = self.entries(root, TOP_KEYS, subject="the config", where="at the top level")

        listen = _CONFIG.listen if "listen" not in f else TlsReader(self).listen(f["listen"])
        admin = Admin() if "admin" not in f else self.admin(f["admin"])
        if listen is not None and admin is not None:
            self.check_ports(listen, admin.listen, root.key_at("admin"))
        upstreams, known = self.upstreams(f.get("upstreams"), root)

        translators = TranslateReader(self)
        if "translators" in f:
            translators.read_translators(f["translators"])
        table = RouteTable(self, known, TOP_KEYS, translators)
        if "routes" in f:
            table.read_list(f["routes"])
        unreadable = {p.file for p in sources.problems}
        for file in sources.files[1:]:
            table.read_file(file.path, file.root, unreadable=file.path in unreadable)
        table.finish()

        limits = Limits() if "limits" not in f else self.limits(f["limits"])
        forwarded = Forwarded() if "forwarded" not in f else self.forwarded(f["forwarded"])
        access_log = AccessLog() if "access_log" not in f else self.access_log(f["access_log"])
        drain = (
            _CONFIG.drain_seconds
            if "drain" not in f
            else self.unit(f["drain"], "drain", units.duration)
        )
        state = self.state(f.get("state"))
        debug: DebugHeaders | None = "off"
        if "debug_headers" in f:
            debug = self.debug_headers(f["debug_headers"], "debug_headers")
        progress = ProgressSettings() if "progress" not in f else read_progress(self, f["progress"])
        tracing = None if "tracing" not in f else read_tracing(self, f["tracing"])
        if (
            self.problems
            or sources.problems
            or len(table.routes) != table.count  # never drop a route silently
            or listen is None
            or admin is None
            or upstreams is None
            or limits is None
            or forwarded is None
            or access_log is None
            or drain is None
            or state is None
            or debug is None
            or progress is None
            or ("tracing" in f and tracing is None)
        ):
            return None
        digest = hashlib.sha256()
        for file in sources.files:
            digest.update(file.data)
        return Config(
            listen=listen,
            admin=admin,
            upstreams=MappingProxyType(upstreams),
            routes=tuple(table.routes),
            limits=limits,
            forwarded=forwarded,
            access_log=access_log,
            drain_seconds=drain,
            state=state,
            debug_headers=debug,
            progress=progress,
            tracing=tracing,
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

    def admin(self, node: Node) -> Admin | None:
        f = self.fields(node, ADMIN_KEYS, subject="admin", where="in admin")
        if f is None:
            return None
        result = Admin()
        ok = True
        if "listen" in f:
            listen = self.listen(f["listen"], "admin.listen")
            ok = ok and listen is not None
            result = Admin(listen=listen or result.listen)
        token_env = result.token_env
        if "token_env" in f:
            env = self.string(f["token_env"], "admin.token_env")
            if env is not None and not _ENV_NAME.fullmatch(env):
                self.report(
                    f["token_env"].at,
                    f"admin.token_env {env!r} is not an environment variable name",
                    "letters, digits and '_', like STRANGLER_ADMIN_TOKEN",
                )
                env = None
            ok = ok and env is not None
            token_env = env or token_env
        token_file = None
        if "token_file" in f and not _is_null(f["token_file"]):
            token_file = self.path(f["token_file"], "admin.token_file")
            ok = ok and token_file is not None
        public = False
        if "allow_public_reads" in f:
            flag = self.boolean(f["allow_public_reads"], "admin.allow_public_reads")
            ok = ok and flag is not None
            public = bool(flag)
        if not ok:
            return None
        return Admin(
            listen=result.listen,
            token_env=token_env,
            token_file=token_file,
            allow_public_reads=public,
        )

    def upstreams(
        self, node: Node | None, root: Map
    ) -> tuple[dict[str, Upstream] | None, set[str]]:
        """The upstreams, and every name declared (even those with problems)."""
        example = "upstreams: {legacy: http://127.0.0.1:8000}"
        if node is None:
            self.report(root.at, "the config has no 'upstreams'", f"add at least: {example}")
            return None, set()
        if not isinstance(node, Map):
            self.report(
                node.at, f"upstreams must be a mapping of names to URLs, got {describe(node)}"
            )
            return None, set()
        result: dict[str, Upstream] = {}
        known: set[str] = set()
        ok = True
        for key, value in node.entries:
            name = key.value
            if not isinstance(name, str) or not NAME.fullmatch(name):
                self.report(
                    key.at,
                    f"upstream name {name!r} must be letters, digits, '.', '_' and '-'",
                    "names appear in metrics and logs, like 'billing' or 'legacy'",
                )
                ok = False
                continue
            known.add(name)
            upstream = self.upstream(name, value)
            if upstream is None:
                ok = False
            else:
                result[name] = upstream
        if LEGACY not in known:
            self.report(
                root.key_at("upstreams"),
                f"upstreams must include '{LEGACY}', the app that answers every request no "
                "route claims",
                f"rename {close!r} to '{LEGACY}'"
                if (close := suggest(LEGACY, known))
                else f"add: {LEGACY}: http://127.0.0.1:8000",
            )
            ok = False
        return (result if ok else None), known

    def upstream(self, name: str, node: Node) -> Upstream | None:
        subject = f"upstream '{name}'"
        if isinstance(node, Scalar) and isinstance(node.value, str):
            url = self.url(node, subject)
            return None if url is None else Upstream(name=name, url=url, at=node.at)
        if not isinstance(node, Map):
            self.report(
                node.at,
                f"{subject} must be a URL or a mapping with url:, got {describe(node)}",
                f"for example: {name}: http://127.0.0.1:9000",
            )
            return None
        f = self.fields(
            node, UPSTREAM_KEYS, subject=subject, where=f"in {subject}", required=("url",)
        )
        if f is None:
            return None
        url = self.url(f["url"], subject) if "url" in f else None
        timeouts = Timeouts() if "timeout" not in f else self.timeouts(f["timeout"], subject)
        max_connections = _UPSTREAM.max_connections
        if "max_connections" in f:
            got = self.count(f["max_connections"], f"{subject} max_connections", minimum=1)
            max_connections = got if got is not None else max_connections
        host_header = _UPSTREAM.host_header
        if "host_header" in f:
            mode = self.choice(f["host_header"], f"{subject} host_header", ("preserve", "upstream"))
            host_header = cast(Literal["preserve", "upstream"], mode or host_header)
        tls: UpstreamTls | None = _UPSTREAM.tls
        if "tls" in f:
            tls = TlsReader(self).upstream_tls(f["tls"], subject, url)
        if url is None or timeouts is None or tls is None:
            return None
        return Upstream(
            name=name,
            url=url,
            timeouts=timeouts,
            max_connections=max_connections,
            host_header=host_header,
            tls=tls,
            at=node.at,
        )

    def url(self, node: Node, subject: str) -> str | None:
        text = self.string(node, f"{subject} url", hint="for example http://127.0.0.1:8000")
        return None if text is None else self.checked(node, subject, check_url, text)

    def timeouts(self, node: Node, subject: str) -> Timeouts | None:
        f = self.fields(
            node, TIMEOUT_KEYS, subject=f"{subject} timeout", where=f"in the timeout of {subject}"
        )
        if f is None:
            return None
        values: dict[str, float | None] = {}
        ok = True
        for key, value in f.items():
            if _is_null(value):
                values[key] = None  # no limit
                continue
            seconds = self.unit(value, f"{subject} timeout.{key}", _BARE_TIMEOUT[key])
            if seconds is not None and seconds <= 0:
                self.report(
                    value.at,
                    f"{subject} timeout.{key} must be more than 0",
                    "write null for no limit",
                )
                seconds = None
            ok = ok and seconds is not None
            values[key] = seconds
        if not ok:
            return None
        return Timeouts(**values)

    def limits(self, node: Node) -> Limits | None:
        f = self.fields(node, LIMITS_KEYS, subject="limits", where="in limits")
        if f is None:
            return None
        values: dict[str, Any] = {}
        ok = True
        for key, value in f.items():
            what = f"limits.{key}"
            got: Any
            if key in ("max_headers", "max_connections"):
                got = self.count(value, what, minimum=1 if key == "max_headers" else 0)
            elif key == "underscore_headers":
                got = self.choice(value, what, UNDERSCORE_MODES)
            elif key.endswith("_timeout"):
                got = self.unit(value, what, units.duration)
            else:
                got = self.unit(value, what, units.size)
            if not got and got is not None and key not in _ZERO_OK:
                self.report(value.at, f"{what} must be more than 0")
                got = None
            ok = ok and got is not None
            values[key] = got
        if not ok:
            return None
        return Limits(**values)

    def forwarded(self, node: Node) -> Forwarded | None:
        f = self.fields(node, FORWARDED_KEYS, subject="forwarded", where="in forwarded")
        if f is None:
            return None
        trusted: list[str] = []
        ok = True
        if "trusted" in f:
            got = read_networks(self, f["trusted"], "forwarded.trusted")
            ok = got is not None
            trusted = got or []
        headers = Forwarded().headers
        if "headers" in f:
            flag = self.boolean(f["headers"], "forwarded.headers")
            ok = ok and flag is not None
            headers = headers if flag is None else flag
        style: Literal["both", "x-forwarded", "rfc7239"] = Forwarded().style
        if "style" in f:
            chosen = self.choice(f["style"], "forwarded.style", ("both", "x-forwarded", "rfc7239"))
            ok = ok and chosen is not None
            if chosen is not None:
                style = cast(Literal["both", "x-forwarded", "rfc7239"], chosen)
        return Forwarded(trusted=tuple(trusted), headers=headers, style=style) if ok else None

    def access_log(self, node: Node) -> AccessLog | None:
        f = self.fields(node, ACCESS_LOG_KEYS, subject="access_log", where="in access_log")
        if f is None:
            return None
        fmt = AccessLog().format
        ok = True
        if "format" in f:
            got = self.choice(f["format"], "access_log.format", ("json", "text", "off"))
            ok = got is not None
            fmt = cast(Literal["json", "text", "off"], got or fmt)
        path = None
        if "path" in f and not _is_null(f["path"]):
            path = self.path(f["path"], "access_log.path")
            ok = ok and path is not None
        return AccessLog(format=fmt, path=path) if ok else None

    def state(self, node: Node | None) -> StateFiles | None:
        """``state: {dir, file_poll, backend, redis}``; ``dir`` is relative to the main
        file's directory; ``redis`` is read only with ``backend: redis``."""
        default = StateFiles()
        directory = os.path.normpath(os.path.join(self.base_dir, default.dir))
        if node is None:
            return StateFiles(dir=directory, file_poll=default.file_poll)
        f = self.fields(node, STATE_KEYS, subject="state", where="in state")
        if f is None:
            return None
        ok = True
        if "dir" in f:
            got = self.path(f["dir"], "state.dir")
            ok = got is not None
            directory = got or directory
        poll: float | None = default.file_poll
        if "file_poll" in f:
            poll = self.unit(f["file_poll"], "state.file_poll", units.duration)
            if poll is not None and not 0.0 < poll <= _MAX_FILE_POLL:
                self.report(
                    f["file_poll"].at,
                    f"state.file_poll must be more than 0 and at most 60s, got {poll:g}s",
                    "how often each worker looks for another worker's changes, like 500ms",
                )
                poll = None
        backend: str | None = default.backend
        if "backend" in f:
            backend = self.choice(f["backend"], "state.backend", STATE_BACKENDS)
        redis_state: RedisState | None = default.redis
        if "redis" in f:
            redis_state = self.redis(f["redis"])
            if backend == "file":
                self.report(
                    f["redis"].at,
                    "state.redis is set but state.backend is file, so it would be ignored",
                    "add 'backend: redis' to state (or remove state.redis)",
                )
                redis_state = None
        if not ok or poll is None or backend is None or redis_state is None:
            return None
        return StateFiles(
            dir=directory,
            file_poll=poll,
            backend=cast(Literal["file", "redis"], backend),
            redis=redis_state,
        )

    def redis(self, node: Node) -> RedisState | None:
        """``state.redis: {url, key_prefix, resync}``."""
        f = self.fields(node, REDIS_KEYS, subject="state.redis", where="in state.redis")
        if f is None:
            return None
        default = RedisState()
        url: str | None = default.url
        if "url" in f:
            text = self.string(f["url"], "state.redis.url", hint=f"for example {default.url}")
            url = (
                None
                if text is None
                else self.checked(f["url"], "state.redis.url", _redis_url, text)
            )
        prefix: str | None = default.key_prefix
        if "key_prefix" in f:
            prefix = self.string(
                f["key_prefix"], "state.redis.key_prefix", hint="like 'strangler:'"
            )
        resync: float | None = default.resync
        if "resync" in f:
            resync = self.unit(f["resync"], "state.redis.resync", units.duration)
            if resync is not None and not 0.0 < resync <= _MAX_RESYNC:
                self.report(
                    f["resync"].at,
                    f"state.redis.resync must be more than 0 and at most 1h, got {resync:g}s",
                    "how often each replica re-reads the whole state from Redis, like 5s",
                )
                resync = None
        if url is None or prefix is None or resync is None:
            return None
        return RedisState(url=url, key_prefix=prefix, resync=resync)


def _redis_url(url: str) -> str:
    """A Redis URL as redis-py's ``from_url`` reads it, checked without importing it.
    Messages show the URL with its password masked.

    >>> _redis_url("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
    >>> _redis_url("redis://:pw@127.0.0.1:6379/zero")
    Traceback (most recent call last):
    ...
    strangler.config.values.BadValue: the database in 'redis://:***@127.0.0.1:6379/zero' must \
be a number, like /0
    """
    example = "for example redis://127.0.0.1:6379/0"
    shown = mask_url_password(url)
    if not url or any(c.isspace() for c in url):
        raise BadValue("a Redis URL must not be empty or contain spaces", example)
    if "://" not in url:
        raise BadValue(f"{shown!r} must start with redis://, rediss:// or unix://", example)
    try:
        parts = urlsplit(url)
    except ValueError as err:  # redis://[::1 : a bracket left open
        raise BadValue(f"{shown!r} is not a valid URL: {err}", example) from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise BadValue(
            f"{shown!r} has scheme {parts.scheme!r}; use redis://, rediss:// (TLS) or unix://",
            example,
        )
    if parts.fragment or "#" in url:
        raise BadValue(f"{shown!r} must not have a fragment (#...)")
    if scheme == "unix":
        if parts.hostname or not parts.path:
            raise BadValue(
                f"{shown!r} must name the socket by its absolute path",
                "three slashes: unix:///run/redis/redis.sock",
            )
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(key != "db" or not value.isdigit() for key, value in query):
            raise BadValue(f"{shown!r}: the only query a unix:// URL takes here is ?db=N")
        return url
    if not parts.hostname:
        raise BadValue(f"{shown!r} has no host", example)
    try:
        parts.port  # noqa: B018 - parses the port, raising ValueError when it is bad
    except ValueError:
        raise BadValue(f"{shown!r} has an invalid port", "a number from 1 to 65535") from None
    if parts.query or "?" in url:
        raise BadValue(
            f"{shown!r} must not have a query string", "put the database in the path: /0"
        )
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise BadValue(f"the database in {shown!r} must be a number, like /0")
    return url


def mask_url_password(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``, for messages and status.

    >>> mask_url_password("redis://user:secret@cache:6379/0")
    'redis://user:***@cache:6379/0'
    """
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL urlsplit can read: hide whatever looks like userinfo
        return hide_userinfo(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return parts._replace(netloc=f"{name}:***@{host}").geturl()


def _is_null(node: Node) -> bool:
    return isinstance(node, Scalar) and node.value is None


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
        rank = {file.path: n for n, file in enumerate(sources.files)}
        problems.sort(key=lambda p: (rank.get(p.file, -1), p.line))
        raise ConfigError(problems or [Problem(sources.files[0].path, 0, "invalid config")])
    return config


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
