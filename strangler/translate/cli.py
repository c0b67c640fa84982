"""``strangler translate``: run a route's translation on a sample message and print it.

::

    strangler translate --config strangler.yaml --route customers --request req.http
    strangler translate --spec customers.yaml --request req.http --response resp.http

The translation comes from ``--spec FILE`` (a YAML file with a ``translate:`` key, an
optional ``translators:`` section and an optional ``path_template``: the route's
``match.path``), or from the ``translate:`` of route ``--route`` in ``--config``. With
both, the spec file wins and the route gives the path template.

A message file is HTTP-like text::

    GET /api/v1/customers/7?x=1          200 OK
    Content-Type: application/json       Content-Type: application/json
                                         Location: /customers/7
    {"customer": {"name": "Ada"}}
                                         {"data": {"id": 7}}

(the first line of a request is ``METHOD TARGET``, of a response ``STATUS [REASON]``;
an ``HTTP/1.1`` on it is ignored; the body is everything after the blank line, less
one final newline), or JSON: ``{"method", "target", "headers", "body"}`` /
``{"status", "reason", "headers", "body"}`` where ``headers`` is an object or a list
of pairs and a ``body`` that is not a string is written as JSON. With ``--request``
and ``--response`` both, the response is translated with that request as context.

Exit status: 0 translated, 1 a problem (the config or spec, a message file, or the
translation itself: the error is printed with the status the proxy would answer),
2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from multidict import CIMultiDict

from strangler.config.model import Route
from strangler.config.source import Map, read_file
from strangler.config.translate_model import TranslateSpec
from strangler.config.validate_translate import Translators
from strangler.config.values import check_path_template
from strangler.config.walker import Walker, did_you_mean
from strangler.errors import ConfigError, Problem
from strangler.translate import codec
from strangler.translate.base import (
    CONTENT_TYPE,
    TranslateError,
    TranslateRequest,
    TranslateResponse,
)
from strangler.translate.registry import build_plan

__all__ = ["add_translate_command", "parse_request", "parse_response", "run_translate"]

SPEC_KEYS: Final = ("path_template", "translate", "translators")
_EMPTY: Final[Mapping[str, str]] = {}


class MessageError(ValueError):
    """A message file that cannot be read; ``str()`` says why."""


def add_translate_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``translate`` on the ``strangler`` command's subparsers; ``args.func(args)``
    runs it and returns the exit status."""
    p = sub.add_parser(
        "translate",
        help="show what a route's translation does to a sample request or response",
        description="Run a route's translate steps on a sample message and print the result. "
        "The steps come from --spec FILE, or from route --route of --config.",
    )
    p.add_argument("--config", "-c", type=Path, help="the strangler.yaml holding the route")
    p.add_argument("--route", "-r", metavar="NAME", help="the route whose translation to run")
    p.add_argument(
        "--spec",
        type=Path,
        help="a YAML file with translate: (and optional translators:, path_template:)",
    )
    p.add_argument("--request", type=Path, metavar="FILE", help="a request to translate")
    p.add_argument("--response", type=Path, metavar="FILE", help="a response to translate")
    p.set_defaults(func=run_translate)


def run_translate(args: argparse.Namespace) -> int:
    """The command: 0 translated, 1 a problem, 2 a usage error."""
    if args.request is None and args.response is None:
        return _usage("give --request FILE, --response FILE or both")
    if args.spec is None and (args.config is None or args.route is None):
        return _usage("give --spec FILE, or --config FILE with --route NAME")
    if args.route is not None and args.config is None:
        return _usage("--route needs --config")
    try:
        spec, template = _load(args)
        request = parse_request(_read(args.request)) if args.request else None
        response = parse_response(_read(args.response)) if args.response else None
    except ConfigError as err:
        print("\n".join(str(p) for p in err.problems), file=sys.stderr)
        return 1
    except (MessageError, OSError) as err:
        print(f"strangler translate: {err}", file=sys.stderr)
        return 1
    plan = build_plan(spec)
    try:
        if request is not None:
            request = _with_params(request, template)
            original = request.copy()
            translated = plan.apply_request(request)
            print(format_request(translated), end="")
            request = original
        if response is not None:
            if request is None:
                request = TranslateRequest.from_target("GET", template or "/", CIMultiDict())
            else:
                print()  # a blank line between the request and the response
            response.request = request
            print(format_response(plan.apply_response(response)), end="")
    except TranslateError as err:
        print(f"strangler translate: {err} (the proxy answers {err.status})", file=sys.stderr)
        return 1
    except MessageError as err:
        print(f"strangler translate: {err}", file=sys.stderr)
        return 1
    return 0


def _usage(message: str) -> int:
    print(f"strangler translate: {message}", file=sys.stderr)
    return 2


def _read(path: Path) -> bytes:
    return path.read_bytes()


# ---------------------------------------------------------------------------- the spec


def _load(args: argparse.Namespace) -> tuple[TranslateSpec | None, str | None]:
    """The spec and the path template, from ``--spec`` and/or ``--config --route``."""
    route: Route | None = None
    if args.config is not None and args.route is not None:
        from strangler.config import load_config

        config = load_config(args.config)
        names = [r.name for r in config.routes]
        route = next((r for r in config.routes if r.name == args.route), None)
        if route is None:
            hint = did_you_mean(args.route, names) or f"routes: {', '.join(names) or 'none'}"
            problem = Problem(str(args.config), 0, f"no route named {args.route!r}", hint)
            raise ConfigError([problem])
    template = route.match.path if route is not None else None
    if args.spec is not None:
        return read_spec(args.spec, template)
    assert route is not None
    spec = route_spec(route)
    if spec is None:
        message = f"route {route.name!r} has no translate: section"
        raise ConfigError([Problem(str(args.config), route.at.line, message)])
    return spec, template


def route_spec(route: Route) -> TranslateSpec | None:
    """The route's translate spec (``None`` when the route does not translate)."""
    return route.translate


def read_spec(
    path: Path, route_template: str | None = None
) -> tuple[TranslateSpec | None, str | None]:
    """A spec file: ``translate:`` (required), ``translators:``, ``path_template:``
    (default ``route_template``). Returns the spec and the path template.

    Raises ``ConfigError`` with every problem (file:line and hint), in line order.
    """
    sources = read_file(path)
    if sources.problems:
        raise ConfigError(sources.problems)
    root = sources.files[0].root
    if not isinstance(root, Map):
        line = 1 if root is None else root.at.line
        message = "a spec file is a mapping with a translate: key"
        raise ConfigError([Problem(str(path), line, message, "translate: {request: [...]}")])
    w = Walker(str(path))
    f = (
        w.fields(
            root,
            SPEC_KEYS,
            subject="the spec file",
            where="in the spec file",
            required=("translate",),
        )
        or {}
    )
    template = route_template
    if "path_template" in f:
        text = w.string(f["path_template"], "path_template", hint="the route's match.path")
        if text is not None:
            template = w.checked(f["path_template"], "path_template", check_path_template, text)
    reader = Translators.read(w, f.get("translators"))
    spec = None
    if "translate" in f:
        spec = reader.route(f["translate"], label="", template=template)
    if w.problems:
        raise ConfigError(sorted(w.problems, key=lambda p: p.line))
    return spec, template


# ---------------------------------------------------------------------------- messages


def _with_params(request: TranslateRequest, template: str | None) -> TranslateRequest:
    if template is None:
        return request
    from strangler.router.template import parse_template

    params = parse_template(template).match(unquote(request.path))
    if params is None:
        raise MessageError(
            f"the request path {request.path!r} does not match the route's template {template!r}"
        )
    request.params = params
    return request


def _split(data: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """The first line, the header pairs and the body of an HTTP-like text."""
    head, sep, body = data.replace(b"\r\n", b"\n").partition(b"\n\n")
    lines = head.rstrip(b"\n").decode("utf-8", errors="replace").split("\n")
    first = lines[0].strip()
    headers: list[tuple[str, str]] = []
    for number, line in enumerate(lines[1:], start=2):
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            raise MessageError(f"line {number}: expected 'Name: value', got {line!r}")
        headers.append((name.strip(), value.strip()))
    if body.endswith(b"\n"):
        body = body[:-1]
    return first, headers, body if sep else b""


def _json_message(data: bytes, kind: str) -> dict[str, object] | None:
    if not data.lstrip().startswith(b"{"):
        return None
    try:
        value = json.loads(data)
    except ValueError as err:
        raise MessageError(f"the {kind} file starts with '{{' but is not JSON: {err}") from None
    if not isinstance(value, dict):
        raise MessageError(f"the {kind} file must be a JSON object")
    return value


def _json_parts(value: Mapping[str, object], kind: str) -> tuple[CIMultiDict[str], bytes]:
    raw = value.get("headers", {})
    pairs: list[tuple[str, str]] = []
    if isinstance(raw, dict):
        pairs = [(str(k), str(v)) for k, v in raw.items()]
    elif isinstance(raw, list) and all(isinstance(p, list) and len(p) == 2 for p in raw):
        pairs = [(str(p[0]), str(p[1])) for p in raw]
    else:
        raise MessageError(f"the {kind}'s headers must be an object or a list of pairs")
    headers = CIMultiDict(pairs)
    body = value.get("body")
    if body is None:
        return headers, b""
    if isinstance(body, str):
        return headers, body.encode("utf-8")
    headers.setdefault(CONTENT_TYPE, "application/json")
    return headers, json.dumps(body, ensure_ascii=False).encode("utf-8")


def parse_request(data: bytes) -> TranslateRequest:
    """A request file (HTTP-like text or JSON); raises ``MessageError``.

    >>> r = parse_request(b"POST /a?x=1 HTTP/1.1\\nContent-Type: application/json\\n\\n{}\\n")
    >>> r.method, r.target, r.body
    ('POST', '/a?x=1', b'{}')
    """
    value = _json_message(data, "request")
    if value is not None:
        method, target = value.get("method", "GET"), value.get("target", value.get("path"))
        if not isinstance(method, str) or not isinstance(target, str):
            raise MessageError("a JSON request needs 'method' and 'target' strings")
        headers, body = _json_parts(value, "request")
    else:
        first, pairs, body = _split(data)
        words = first.split()
        if len(words) not in (2, 3) or not words[1].startswith("/"):
            raise MessageError(f"line 1: expected 'METHOD /path?query', got {first!r}")
        method, target = words[0].upper(), words[1]
        headers = CIMultiDict(pairs)
    if not target.startswith("/"):
        raise MessageError(f"the request target must start with '/', got {target!r}")
    return TranslateRequest.from_target(method, target, headers, body=body)


def parse_response(data: bytes) -> TranslateResponse:
    """A response file (HTTP-like text or JSON); raises ``MessageError``.

    Its ``request`` is a placeholder: the caller sets the real one.
    """
    placeholder = TranslateRequest.from_target("GET", "/", CIMultiDict())
    value = _json_message(data, "response")
    reason: str | None = None
    if value is not None:
        status, given = value.get("status"), value.get("reason")
        if not isinstance(status, int) or isinstance(status, bool):
            raise MessageError("a JSON response needs a 'status' number")
        reason = given if isinstance(given, str) else None
        headers, body = _json_parts(value, "response")
    else:
        first, pairs, body = _split(data)
        words = first.split(None, 1)
        if words and words[0].upper().startswith("HTTP/"):
            words = words[1].split(None, 1) if len(words) > 1 else []
        if not words or not words[0].isdigit():
            raise MessageError(f"line 1: expected 'STATUS [REASON]', got {first!r}")
        status = int(words[0])
        reason = words[1] if len(words) > 1 else None
        headers = CIMultiDict(pairs)
    if not 100 <= status <= 599:
        raise MessageError(f"status {status} is not from 100 to 599")
    return TranslateResponse(
        status=status, reason=reason, headers=headers, request=placeholder, body=body
    )


def _body_text(headers: CIMultiDict[str], body: bytes | None) -> str:
    if not body:
        return ""
    try:
        body = codec.decode(body, codec.codings(headers), limit=max(len(body) * 1000, 1 << 20))
        name = codec.charset(headers.get(CONTENT_TYPE)) or "utf-8"
    except codec.CodecError as err:
        raise MessageError(f"cannot show the body: {err}") from None
    return body.decode(name, errors="replace") + "\n"


def _format(first: str, headers: CIMultiDict[str], body: bytes | None) -> str:
    lines = [first, *(f"{k}: {v}" for k, v in headers.items())]
    return "\n".join(lines) + "\n\n" + _body_text(headers, body)


def format_request(msg: TranslateRequest) -> str:
    """The request as HTTP-like text (a compressed body is shown decoded)."""
    return _format(f"{msg.method} {msg.target}", msg.headers, msg.body)


def format_response(msg: TranslateResponse) -> str:
    """The response as HTTP-like text (a compressed body is shown decoded)."""
    return _format(f"{msg.status} {msg.reason}".rstrip(), msg.headers, msg.body)
