"""Checks of single config values: listen addresses, upstream URLs, path templates, hosts.

Pure functions, no file positions: each returns the (normalised) value or raises
``BadValue``, a ``ValueError`` whose message names the value and whose ``hint`` says
how to fix it. ``validate`` adds the file:line; ``legacy_only`` the option name.

>>> parse_listen("0.0.0.0:8080")
Listen(host='0.0.0.0', port=8080)
>>> check_url("HTTP://billing:9000/v1/")
'http://billing:9000/v1'
>>> check_path_template("/users/{id:int}/files/{rest:path}")
'/users/{id:int}/files/{rest:path}'
>>> try:
...     check_host("api.example.com:8443")
... except BadValue as err:
...     print(err.hint)
write 'api.example.com'
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from strangler.config.model import Listen

__all__ = [
    "CONVERTERS",
    "METHODS",
    "NAME",
    "BadValue",
    "check_host",
    "check_path",
    "check_path_template",
    "check_url",
    "hide_userinfo",
    "parse_listen",
    "shown",
]

METHODS: Final = (
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    # WebDAV and cache purging: legacy apps do use them
    "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT", "SEARCH",
    "PURGE",
)  # fmt: skip
"""The methods a route may match on (upper-case)."""

CONVERTERS: Final = ("str", "int", "uuid", "path")
"""Path template converters, as ``strangler.router.template`` implements them."""

NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""Route and upstream names: they appear in metrics, logs and admin URLs."""

_PARAM: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOST_LABEL: Final = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?")


class BadValue(ValueError):
    """A value that does not fit; ``str()`` is the message, ``hint`` the fix (or "")."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


def shown(value: object) -> str:
    """A value as a problem shows it ("must be X, got Y").

    >>> shown(3), shown(None), shown([]), shown("x")
    ('the number 3', 'nothing (null)', 'a list', "'x'")
    """
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list | tuple | dict):
        return "a mapping" if isinstance(value, dict) else "a list"
    return repr(value)


def parse_listen(text: str) -> Listen:
    """``"host:port"`` to ``Listen``; IPv6 hosts in brackets; port 0 means any free port;
    no host (``":8080"``) means every IPv4 interface, as ``0.0.0.0``.

    >>> parse_listen("[::1]:0"), parse_listen(":8080")
    (Listen(host='::1', port=0), Listen(host='0.0.0.0', port=8080))
    """
    host, colon, port = text.rpartition(":")
    if not colon:
        raise BadValue(f"expected host:port, got {text!r}", "for example '0.0.0.0:8080'")
    if not host:
        host = "0.0.0.0"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise BadValue(f"{host!r} in {text!r} is not an IPv6 address") from None
    elif ":" in host:
        raise BadValue(f"{text!r}: an IPv6 address needs brackets", "like '[::1]:8080'")
    elif not all(_HOST_LABEL.fullmatch(label) for label in host.split(".")):
        raise BadValue(f"{host!r} in {text!r} is not a host name or IP address")
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise BadValue(f"the port in {text!r} must be a number from 0 to 65535")
    return Listen(host=host, port=int(port))


def hide_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` replaced by ``***@``, for messages.

    Plain string work, so it cannot fail on a URL ``urlsplit`` refuses.

    >>> hide_userinfo("http://alice:hunter2@billing:9000/v1")
    'http://***@billing:9000/v1'
    """
    scheme, sep, rest = url.partition("://") if "://" in url else ("", "", url)
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    netloc = rest[:end]
    if "@" not in netloc:
        return url
    return f"{scheme}{sep}***@{netloc.rpartition('@')[2]}{rest[end:]}"


def check_url(url: str) -> str:
    """An upstream URL, normalised: lower-case scheme, no trailing ``/``.

    Rules: scheme http or https, a host, an optional valid port and base path, no
    credentials, no query string, no fragment.

    >>> check_url("billing:9000")
    Traceback (most recent call last):
    ...
    strangler.config.values.BadValue: URL 'billing:9000' must start with http:// or https://
    """
    masked = hide_userinfo(url)  # a password must not reach a log or a terminal
    if not url or any(c.isspace() for c in url):
        raise BadValue(f"URL {masked!r} must not be empty or contain spaces")
    if "://" not in url:
        raise BadValue(
            f"URL {masked!r} must start with http:// or https://",
            f"did you mean 'http://{masked}'?",
        )
    try:
        parts = urlsplit(url)
    except ValueError as err:  # a bracket left open: http://[::1
        raise BadValue(
            f"URL {masked!r} is not a valid URL: {err}",
            "an IPv6 host goes in brackets, the port after them: http://[::1]:8000",
        ) from None
    try:
        parts.port  # noqa: B018 - parses the port, raising ValueError when it is bad
    except ValueError:
        raise BadValue(f"URL {masked!r} has an invalid port", "a number from 1 to 65535") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise BadValue(f"URL {masked!r} has scheme {parts.scheme!r}; only http and https work")
    if "@" in parts.netloc:
        raise BadValue(
            f"URL {masked!r} must not contain credentials",
            "strangler adds none of its own; the client's pass through",
        )
    if not parts.hostname:
        raise BadValue(f"URL {masked!r} has no host", "for example http://127.0.0.1:8000")
    if parts.query or "?" in url:
        raise BadValue(
            f"URL {masked!r} must not have a query string",
            "each request's query string comes from the client",
        )
    if parts.fragment or "#" in url:
        raise BadValue(f"URL {masked!r} must not have a fragment (#...)")
    return f"{parts.scheme.lower()}://{parts.netloc}{parts.path.rstrip('/')}"


def check_path(path: str) -> str:
    """What every match path and prefix must be: absolute, no spaces, query or fragment."""
    if not path.startswith("/"):
        raise BadValue(f"{path!r} must start with '/'")
    if any(c.isspace() for c in path):
        raise BadValue(f"{path!r} must not contain spaces", "write a space as %20")
    if "?" in path:
        raise BadValue(f"{path!r} must not contain '?'", "match query parameters with match.query")
    if "#" in path:
        raise BadValue(f"{path!r} must not contain '#'", "fragments never reach the server")
    return path


def check_path_template(path: str) -> str:
    """``path`` if it is a valid exact path or path template, else raise ``BadValue``.

    The grammar is the router's (``strangler.router.template``; a test keeps the two
    in step): segments separated by ``/``, each literal text or exactly one
    ``{name}`` / ``{name:converter}``; converters str, int, uuid and path; ``path``
    only as the last segment; every name used once.

    >>> check_path_template("/users/{id")
    Traceback (most recent call last):
    ...
    strangler.config.values.BadValue: '/users/{id': unbalanced braces in segment '{id'
    """
    check_path(path)
    segments = path[1:].split("/")
    names: list[str] = []
    for position, raw in enumerate(segments):
        if "{" not in raw and "}" not in raw:
            continue
        opens, closes = raw.count("{"), raw.count("}")
        if opens != closes or raw.find("{") > raw.find("}"):
            raise BadValue(
                f"{path!r}: unbalanced braces in segment '{raw}'",
                "each '{' needs its '}', like /users/{id}",
            )
        if opens > 1 or not (raw.startswith("{") and raw.endswith("}")):
            raise BadValue(
                f"{path!r}: segment '{raw}' mixes a parameter with other text",
                "a parameter fills a whole segment: write /files/{name}, not /files/{name}.json",
            )
        name, colon, converter = raw[1:-1].partition(":")
        if not _PARAM.fullmatch(name):
            which = f"'{name}'" if name else "an empty name"
            raise BadValue(
                f"{path!r}: bad parameter name {which} in '{raw}'",
                "use letters, digits and '_', not starting with a digit",
            )
        if colon and converter not in CONVERTERS:
            raise BadValue(
                f"{path!r}: unknown converter '{converter}' for parameter '{name}'",
                f"converters: {', '.join(CONVERTERS)}",
            )
        if name in names:
            raise BadValue(
                f"{path!r}: parameter name '{name}' is used twice",
                "give each parameter its own name",
            )
        if converter == "path" and position != len(segments) - 1:
            raise BadValue(
                f"{path!r}: '{{{name}:path}}' must be the last segment",
                "it takes the rest of the path; use path_prefix to match a subtree",
            )
        names.append(name)
    return path


def check_host(host: str) -> str:
    """A ``match.host``: a host name or IPv4 address, or ``*.example.com``; no port."""
    if "://" in host or "/" in host:
        try:
            bare = urlsplit(host).hostname or "api.example.com"
        except ValueError:  # http://[::1 : the message needs no host to be right
            bare = "api.example.com"
        raise BadValue(f"{host!r} is a URL, not a host name", f"write only the host: {bare!r}")
    if host.startswith("[") or host.count(":") > 1:
        raise BadValue(f"{host!r}: IPv6 hosts are not supported in match.host")
    if ":" in host:
        raise BadValue(
            f"{host!r} must not have a port: hosts are compared without it",
            f"write {host.rpartition(':')[0]!r}",
        )
    labels = host.removeprefix("*.").rstrip(".").split(".")
    if not all(_HOST_LABEL.fullmatch(part) for part in labels):
        raise BadValue(
            f"{host!r} is not a host name", "like api.example.com, or *.example.com for subdomains"
        )
    return host


def check_redis_url(url: str) -> str:
    """A Redis URL as redis-py's ``from_url`` reads it, checked without importing it.
    Messages show the URL with its password masked.

    >>> check_redis_url("redis://127.0.0.1:6379/0")
    'redis://127.0.0.1:6379/0'
    >>> check_redis_url("redis://:pw@127.0.0.1:6379/zero")
    Traceback (most recent call last):
    ...
    strangler.config.values.BadValue: the database in 'redis://:***@127.0.0.1:6379/zero' must \
be a number, like /0
    """
    example = "for example redis://127.0.0.1:6379/0"
    masked = mask_url_password(url)
    if not url or any(c.isspace() for c in url):
        raise BadValue("a Redis URL must not be empty or contain spaces", example)
    if "://" not in url:
        raise BadValue(f"{masked!r} must start with redis://, rediss:// or unix://", example)
    try:
        parts = urlsplit(url)
    except ValueError as err:  # redis://[::1 : a bracket left open
        raise BadValue(f"{masked!r} is not a valid URL: {err}", example) from None
    scheme = parts.scheme.lower()
    if scheme not in ("redis", "rediss", "unix"):
        raise BadValue(
            f"{masked!r} has scheme {parts.scheme!r}; use redis://, rediss:// (TLS) or unix://",
            example,
        )
    if parts.fragment or "#" in url:
        raise BadValue(f"{masked!r} must not have a fragment (#...)")
    if scheme == "unix":
        if parts.hostname or not parts.path:
            raise BadValue(
                f"{masked!r} must name the socket by its absolute path",
                "three slashes: unix:///run/redis/redis.sock",
            )
        query = parse_qsl(parts.query, keep_blank_values=True)
        if any(key != "db" or not value.isdigit() for key, value in query):
            raise BadValue(f"{masked!r}: the only query a unix:// URL takes here is ?db=N")
        return url
    if not parts.hostname:
        raise BadValue(f"{masked!r} has no host", example)
    try:
        parts.port  # noqa: B018 - parses the port, raising ValueError when it is bad
    except ValueError:
        raise BadValue(f"{masked!r} has an invalid port", "a number from 1 to 65535") from None
    if parts.query or "?" in url:
        raise BadValue(
            f"{masked!r} must not have a query string", "put the database in the path: /0"
        )
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise BadValue(f"the database in {masked!r} must be a number, like /0")
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
