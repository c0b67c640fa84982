"""``translate:`` (per route) and ``translators:`` (top level) nodes to a ``TranslateSpec``.

``TranslateReader`` reports through a ``Walker``, so every problem has the file:line
of the node at fault and, where one helps, a hint: an unknown step or operation (with
"did you mean"), a step on the wrong side, a malformed JSON path, a regex that does
not compile, a hook that does not import or cannot take one argument, a parameter the
route's path template does not have, wrong types everywhere. It reads everything
before giving up, so one run shows every problem. The ``json:`` operations are read
by ``validate_translate_json.JsonReader``; single values are checked by
``translate_values``.

How the validator uses it (``validate.py`` / ``validate_routes.py``)::

    reader = TranslateReader(walker)
    reader.read_translators(node)                    # the top-level ``translators:``
    spec = reader.read_route(node, label="route 'x'", path_template=match.path)

``read_route`` returns ``None`` after reporting when the node has a problem.

>>> from strangler.config.source import read_text
>>> root = read_text("translate: {response: [{status: {map: {201: 200}}}]}", "r.yaml")
>>> w = Walker("r.yaml")
>>> node = root.files[0].root.get("translate")
>>> spec = TranslateReader(w).read_route(node, label="route 'r'", path_template=None)
>>> spec.layers[0].response[0].map, w.problems
(mappingproxy({201: 200}), [])
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Final, cast

from strangler.config import kinds, units
from strangler.config.described import read_part
from strangler.config.model import Location
from strangler.config.source import Map, Node, Scalar, Seq, describe
from strangler.config.translate_model import (
    ON_ERROR,
    ErrorStep,
    HeaderFromParam,
    HeaderOp,
    HeaderRemove,
    HeaderRename,
    HeaderSet,
    HeadersStep,
    HookStep,
    OnError,
    PathStep,
    QueryDrop,
    QueryMap,
    QueryOp,
    QueryRename,
    QuerySet,
    QueryStep,
    RegexRewrite,
    RequestStep,
    ResponseStep,
    RewritePaths,
    StatusStep,
    TranslateSpec,
    Translator,
)
from strangler.config.translate_values import (
    check_regex,
    template_params,
)
from strangler.config.validate_translate_json import JSON_OPS, JsonReader
from strangler.config.values import NAME, BadValue
from strangler.config.walker import Walker, did_you_mean, join_hints

__all__ = [
    "HEADER_KEYS",
    "PATH_KEYS",
    "QUERY_KEYS",
    "REQUEST_STEPS",
    "RESPONSE_STEPS",
    "TRANSLATOR_KEYS",
    "TranslateReader",
]

REQUEST_STEPS: Final = ("path", "query", "headers", "json", "hook")
RESPONSE_STEPS: Final = ("status", "headers", "json", "error", "hook")
TRANSLATOR_KEYS: Final = ("max_body", "on_error", "request", "response")
PATH_KEYS: Final = ("rewrite", "regex", "prefix", "host")
QUERY_KEYS: Final = ("rename", "drop", "set", "map")
HEADER_KEYS: Final = ("set", "rename", "remove", "from_param", "rewrite_paths")

_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?\}")
# In a path rewrite: a route parameter, or ``{query.NAME}`` (moved from the query string).
_PATH_PARAM: Final = re.compile(
    r"\{(?:(?P<query>query\.)(?P<qname>[A-Za-z0-9_.~\[\]-]+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::[a-z]+)?)\}"
)
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HOST: Final = re.compile(r"[A-Za-z0-9._-]+(?::\d{1,5})?|\[[0-9A-Fa-f:.]+\](?::\d{1,5})?")
_MANAGED: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "te", "trailer",
     "upgrade", "proxy-connection"}
)  # fmt: skip


class TranslateReader:
    """Reads ``translators:`` and routes' ``translate:`` into specs, reporting problems.

    ``named``: the valid named translators read so far. A translator with problems is
    remembered as bad, so a route using it is not reported a second time.
    """

    def __init__(self, walker: Walker) -> None:
        self.w = walker
        self.json = JsonReader(walker)
        self.named: dict[str, Translator] = {}
        self._declared: dict[str, Location] = {}  # every name, valid or not
        self._params: dict[str, list[tuple[str, Location]]] = {}  # parameters used, by name
        self._used: list[tuple[str, Location]] = []  # of the translator being read

    # -- entry points

    def read_translators(self, node: Node) -> None:
        """The top-level ``translators: {NAME: {...}}`` mapping."""
        if not isinstance(node, Map):
            self.w.report(
                node.at,
                f"translators must be a mapping of name to translator, got {describe(node)}",
                "for example translators: {customers-v2: {request: [...], response: [...]}}",
            )
            return
        for key, value in node.entries:
            name = key.value
            if not isinstance(name, str) or not NAME.fullmatch(name):
                self.w.report(
                    key.at,
                    f"translator name {name!r} must be letters, digits, '.', '_' and '-'",
                )
                continue
            if name in self._declared:
                self.w.report(
                    key.at, f"duplicate translator {name!r} (first at {self._declared[name]})"
                )
                continue
            self._declared[name] = key.at
            what = f"translators.{name}"
            if isinstance(value, Map) and value.get("use") is not None:
                self.w.report(
                    value.key_at("use"),
                    f"{what}: a named translator cannot 'use' another",
                    "list both under the route instead: translate: [{use: a}, {use: b}]",
                )
                continue
            self._used = []
            translator = self.translator(value, what, name=name)
            self._params[name] = self._used
            if translator is not None:
                self.named[name] = translator

    def read_route(
        self, node: Node, *, label: str, path_template: str | None
    ) -> TranslateSpec | None:
        """A route's ``translate:``: a translator, ``{use: NAME}``, or a list of those.

        ``label`` names the route in messages (``route 'x'``); ``path_template`` is its
        ``match.path`` (``None`` without one), whose parameters the steps may use.
        """
        what = f"{label} translate"
        before = len(self.w.problems)
        items = node.items if isinstance(node, Seq) else (node,)
        if isinstance(node, Seq) and not node.items:
            self.w.report(node.at, f"{what} is an empty list", "leave translate out for none")
            return None
        layers: list[Translator] = []
        allowed = template_params(path_template)
        for i, item in enumerate(items):
            here = f"{what}[{i}]" if isinstance(node, Seq) else what
            layer = self._layer(item, here, allowed, label, path_template)
            if layer is not None:
                layers.append(layer)
        if len(self.w.problems) != before or not layers:
            return None
        return TranslateSpec(layers=tuple(layers), at=node.at)

    # -- translators

    def _layer(
        self, node: Node, what: str, allowed: frozenset[str], label: str, template: str | None
    ) -> Translator | None:
        if isinstance(node, Map) and node.get("use") is not None:
            return self._use(node, what, allowed, label, template)
        self._used = []
        translator = self.translator(node, what, name=None)
        for param, at in self._used:
            self._unknown_param(at, f"{what}: parameter {param!r}", param, allowed, template)
        return translator

    def _use(
        self, node: Map, what: str, allowed: frozenset[str], label: str, template: str | None
    ) -> Translator | None:
        others = [k for k, _ in node.entries if k.value != "use"]
        for key in others:
            self.w.report(
                key.at,
                f"{what}: {key.value!r} cannot go with 'use'",
                "'use' takes the named translator as it is; change it under translators:",
            )
        use = node.get("use")
        assert use is not None
        name = self.w.string(use, f"{what}.use", hint="the name of an entry under translators:")
        if name is None or others:
            return None
        if name not in self._declared:
            known = sorted(self._declared)
            self.w.report(
                use.at,
                f"{what} uses unknown translator {name!r}",
                join_hints(
                    did_you_mean(name, known),
                    f"known: {', '.join(known)}" if known else "declare it under translators:",
                ),
            )
            return None
        for param, at in self._params.get(name, ()):
            where = f"line {at.line}" if at.file == use.at.file else str(at)
            self._unknown_param(
                use.at,
                f"{what}: translator {name!r} uses parameter {param!r} (at {where})",
                param,
                allowed,
                template,
            )
        return self.named.get(name)  # None: its own problems were reported

    def _unknown_param(
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

    def translator(self, node: Node, what: str, *, name: str | None) -> Translator | None:
        """One translator mapping (``max_body``, ``on_error``, ``request``, ``response``)."""
        before = len(self.w.problems)
        f = self.w.fields(node, TRANSLATOR_KEYS, subject=what, where=f"in {what}")
        if f is None:
            return None
        max_body = self._max_body(f["max_body"], what) if "max_body" in f else None
        on_error: OnError = "fail"
        if "on_error" in f:
            choice = self.w.choice(f["on_error"], f"{what}.on_error", ON_ERROR)
            on_error = cast(OnError, choice or "fail")
        request = self._steps(f.get("request"), f"{what}.request", "request")
        response = self._steps(f.get("response"), f"{what}.response", "response")
        if not request and not response and len(self.w.problems) == before:
            self.w.report(
                node.at,
                f"{what} has no request or response steps",
                "add request: [...] or response: [...], or leave it out",
            )
        if len(self.w.problems) != before:
            return None
        return Translator(
            name=name,
            max_body=max_body or Translator().max_body,
            on_error=on_error,
            request=cast(tuple[RequestStep, ...], request),
            response=cast(tuple[ResponseStep, ...], response),
            at=node.at,
        )

    def _max_body(self, node: Node, what: str) -> int | None:
        size = self.w.unit(node, f"{what}.max_body", units.size)
        if size == 0:
            self.w.report(
                node.at,
                f"{what}.max_body must be at least 1 byte",
                "it caps what a body step buffers; leave it out for 1MiB",
            )
            return None
        return size

    def _steps(
        self, node: Node | None, what: str, side: str
    ) -> tuple[RequestStep | ResponseStep, ...]:
        if node is None:
            return ()
        if not isinstance(node, Seq):
            self.w.report(
                node.at,
                f"{what} must be a list of steps, got {describe(node)}",
                f"like {side}: [{{headers: {{set: {{X-A: '1'}}}}}}]",
            )
            return ()
        steps = []
        for i, item in enumerate(node.items):
            step = self._step(item, f"{what}[{i}]", side)
            if step is not None:
                steps.append(step)
        return tuple(steps)

    def _step(self, node: Node, what: str, side: str) -> RequestStep | ResponseStep | None:
        kinds = REQUEST_STEPS if side == "request" else RESPONSE_STEPS
        other = RESPONSE_STEPS if side == "request" else REQUEST_STEPS
        if not isinstance(node, Map) or not node.entries:
            self.w.report(
                node.at,
                f"{what}: a step is a mapping with one key ({', '.join(kinds)}), "
                f"got {describe(node)}",
            )
            return None
        (key, value), *extra = node.entries
        for k, _ in extra:
            self.w.report(
                k.at,
                f"{what}: a step has one key; {k.value!r} follows {key.value!r}",
                f"write '{k.value}' as its own list item: - {k.value}: ...",
            )
        kind = key.value
        if not isinstance(kind, str) or kind not in kinds:
            self._unknown_step(key, what, side, kinds, other)
            return None
        if extra:
            return None
        here = f"{what}.{kind}"
        if kind == "path":
            return self._path(value, here)
        if kind == "query":
            return self._query(value, here)
        if kind == "headers":
            return self._headers(value, here, side)
        if kind == "json":
            return self.json.json_step(value, here)
        if kind == "hook":
            if isinstance(value, Scalar) and isinstance(value.value, str):  # hook: m:f
                value = Map(((Scalar("call", value.at), value),), value.at)
            hook: HookStep | None = read_part(self.w, value, HookStep, here)
            return hook
        if kind == "status":
            step: StatusStep | None = read_part(self.w, value, StatusStep, here)
            return step and StatusStep(map=MappingProxyType(dict(step.map)), at=step.at)
        error: ErrorStep | None = read_part(self.w, value, ErrorStep, here)
        return error

    def _unknown_step(
        self, key: Scalar, what: str, side: str, kinds: Sequence[str], other: Sequence[str]
    ) -> None:
        kind = key.value
        if isinstance(kind, str) and kind in other:
            other_side = "response" if side == "request" else "request"
            hint = f"'{kind}' is a {other_side} step; move it under {other_side}:"
        elif isinstance(kind, str) and kind in JSON_OPS:
            hint = f"'{kind}' is a JSON operation; put it in a json list: - json: [{{{kind}: ...}}]"
        else:
            hint = join_hints(did_you_mean(str(kind), kinds), f"{side} steps: {', '.join(kinds)}")
        self.w.report(key.at, f"{what}: unknown {side} step {kind!r}", hint)

    # -- path, query, headers

    def _path(self, node: Node, what: str) -> PathStep | None:
        f = self.w.fields(node, PATH_KEYS, subject=what, where=f"in {what}")
        if f is None:
            return None
        forms = [k for k in ("rewrite", "regex", "prefix") if k in f]
        if len(forms) > 1:
            self.w.report(
                f[forms[1]].at,
                f"{what}: use one of rewrite, regex and prefix, not {' and '.join(forms)}",
                "put each in its own path step if both are really meant",
            )
            return None
        if not f:
            self.w.report(node.at, f"{what} is empty", f"give one of {', '.join(PATH_KEYS)}")
            return None
        before = len(self.w.problems)
        rewrite = self._rewrite(f["rewrite"], f"{what}.rewrite") if "rewrite" in f else None
        regex = self._regex(f["regex"], f"{what}.regex") if "regex" in f else None
        strip = add = host = None
        if "prefix" in f:
            strip, add = self._prefix(f["prefix"], f"{what}.prefix")
        if "host" in f:
            host = self.w.string(f["host"], f"{what}.host", hint="like new.example or new:8443")
            if host is not None and not _HOST.fullmatch(host):
                self.w.report(
                    f["host"].at,
                    f"{what}.host: {host!r} is not a host[:port]",
                    "write only the host, like new.example or new.example:8443",
                )
        if len(self.w.problems) != before:
            return None
        return PathStep(rewrite=rewrite, regex=regex, strip=strip, add=add, host=host, at=node.at)

    def _rewrite(self, node: Node, what: str) -> str | None:
        """A path template, with ``{param}`` (the route's) and ``{query.NAME}`` (a query
        parameter moved into the path), then optionally ``?name={param}&...``: query
        parameters set on the client's own query string."""
        text = self.w.string(node, what, hint="a path like /customers/{id}")
        if text is None:
            return None
        path, mark, query = text.partition("?")
        if not path.startswith("/") or any(c.isspace() or c == "#" for c in text):
            self.w.report(
                node.at,
                f"{what}: {text!r} must be a path starting with '/', without spaces or '#'",
                "a query part like ?customer={id} is set on the client's query string",
            )
            return None
        bare = _PATH_PARAM.sub("", path)
        if "{" in bare or "}" in bare:
            self.w.report(
                node.at,
                f"{what}: {text!r} has a malformed parameter",
                "parameters look like {id} (a parameter of the route's match.path) "
                "or {query.name} (a query parameter, moved into the path)",
            )
            return None
        for m in _PATH_PARAM.finditer(path):
            if m.group("name") is not None:
                self._used.append((m.group("name"), node.at))
        out = _PATH_PARAM.sub(
            lambda m: "{" + (m.group("name") or "query." + m.group("qname")) + "}", path
        )
        if not mark:
            return out
        pairs = []
        for pair in query.split("&"):
            name, eq, value = pair.partition("=")
            template = self._template(value, node, what)
            if not name or not eq or "{" in name or "}" in name or template is None:
                if template is not None:
                    self.w.report(
                        node.at,
                        f"{what}: {pair!r} in the query part is not name=value",
                        "like /v2/orders?customer={id}&v=2",
                    )
                return None
            pairs.append(f"{name}={template}")
        return out + "?" + "&".join(pairs)

    def _template(self, text: str, node: Node, what: str) -> str | None:
        """A value with ``{param}`` parts (the route's parameters), normalised."""
        if "{" in _PARAM.sub("", text) or "}" in _PARAM.sub("", text):
            self.w.report(
                node.at,
                f"{what}: {text!r} has a malformed parameter",
                "parameters look like {id}, and name a parameter of the route's match.path",
            )
            return None
        for m in _PARAM.finditer(text):
            self._used.append((m.group(1), node.at))
        return _PARAM.sub(lambda m: "{" + m.group(1) + "}", text)  # {id:int} -> {id}

    def _regex(self, node: Node, what: str) -> RegexRewrite | None:
        f = self.w.fields(
            node, ("pattern", "replace"), subject=what, where=f"in {what}", required=("pattern",)
        )
        if f is None or "pattern" not in f:
            return None
        pattern = self.w.string(f["pattern"], f"{what}.pattern")
        replace = "" if "replace" not in f else self._text(f["replace"], f"{what}.replace")
        if pattern is None or replace is None:
            return None
        if self.w.checked(node, what, lambda p: check_regex(p, replace), pattern) is None:
            return None
        if any(c in "?#" or c.isspace() for c in replace):
            # The regex runs on the path alone: a '?' it writes would sit in front of
            # the client's own query string and break the URL.
            self.w.report(
                f["replace"].at,
                f"{what}.replace: {replace!r} must not contain spaces, '?' or '#'",
                "change the query with a query step, or use rewrite: /path?name={param}",
            )
            return None
        return RegexRewrite(pattern=pattern, replace=replace)

    def _prefix(self, node: Node, what: str) -> tuple[str | None, str | None]:
        f = self.w.fields(node, ("strip", "add"), subject=what, where=f"in {what}")
        if f is None:
            return None, None
        if not f:
            self.w.report(node.at, f"{what} needs strip, add or both")
            return None, None
        out: list[str | None] = []
        for key in ("strip", "add"):
            value = self._plain_path(f[key], f"{what}.{key}") if key in f else None
            out.append(value)
        return out[0], out[1]

    def _plain_path(self, node: Node, what: str) -> str | None:
        try:
            path: str = kinds.URL_PATH.parse(node.value if isinstance(node, Scalar) else None)
        except BadValue as err:
            joined = " " if str(err).startswith("must") else ": "
            self.w.report(node.at, f"{what}{joined}{err}", err.hint)
            return None
        return path

    def _text(self, node: Node, what: str) -> str | None:
        """A string, possibly empty."""
        if isinstance(node, Scalar) and isinstance(node.value, str):
            return node.value
        hint = f'quote it: "{node.value}"' if isinstance(node, Scalar) else ""
        self.w.report(node.at, f"{what} must be a string, got {describe(node)}", hint)
        return None

    def _str_map(
        self, node: Node, what: str, *, key_check: Callable[[str], str] | None = None
    ) -> tuple[tuple[str, str], ...] | None:
        """A mapping of names to strings (``key_check`` returns a problem, or "")."""
        if not isinstance(node, Map) or not node.entries:
            self.w.report(
                node.at,
                f"{what} must be a non-empty mapping of name to text, got {describe(node)}",
            )
            return None
        out: list[tuple[str, str]] = []
        ok = True
        for key, value in node.entries:
            name = key.value if isinstance(key.value, str) else str(key.value)
            problem = key_check(name) if key_check else ""
            if problem:
                self.w.report(key.at, f"{what}: {problem}")
                ok = False
                continue
            text = self._text(value, f"{what}.{name}")
            if text is None:
                ok = False
                continue
            out.append((name, text))
        return tuple(out) if ok else None

    def _names(
        self, node: Node, what: str, check: Callable[[str], str] | None = None
    ) -> tuple[str, ...] | None:
        """A name or a list of names."""
        items = node.items if isinstance(node, Seq) else (node,)
        if isinstance(node, Map) or (isinstance(node, Seq) and not node.items):
            self.w.report(node.at, f"{what} must be a name or a non-empty list of names")
            return None
        out: list[str] = []
        for item in items:
            name = self.w.string(item, what)
            if name is None:
                return None
            problem = check(name) if check else ""
            if problem:
                self.w.report(item.at, f"{what}: {problem}")
                return None
            out.append(name)
        return tuple(out)

    def _query(self, node: Node, what: str) -> QueryStep | None:
        f = self.w.fields(node, QUERY_KEYS, subject=what, where=f"in {what}")
        if f is None:
            return None
        if not f:
            self.w.report(node.at, f"{what} is empty", f"give {', '.join(QUERY_KEYS)}")
            return None
        ops: list[QueryOp] = []
        ok = True
        for key, value in f.items():
            here = f"{what}.{key}"
            op: QueryOp | None
            if key == "rename":
                pairs = self._str_map(value, here)
                op = None if pairs is None else QueryRename(names=pairs)
            elif key == "drop":
                names = self._names(value, here)
                op = None if names is None else QueryDrop(names=names)
            elif key == "set":
                pairs = self._str_map(value, here)
                if pairs is not None:
                    values = [(k, self._template(v, value, f"{here}.{k}")) for k, v in pairs]
                    done = [(k, v) for k, v in values if v is not None]
                    pairs = tuple(done) if len(done) == len(values) else None
                op = None if pairs is None else QuerySet(values=pairs)
            else:
                op = self._query_map(value, here)
            if op is None:
                ok = False
            else:
                ops.append(op)
        return QueryStep(ops=tuple(ops), at=node.at) if ok else None

    def _query_map(self, node: Node, what: str) -> QueryMap | None:
        if not isinstance(node, Map) or not node.entries:
            self.w.report(
                node.at,
                f"{what} must map a parameter name to {{old: new}} values, got {describe(node)}",
                "like map: {status: {OPEN: open}}",
            )
            return None
        maps: list[tuple[str, MappingProxyType[str, str]]] = []
        for key, value in node.entries:
            pairs = self._str_map(value, f"{what}.{key.value}", key_check=lambda _: "")
            if pairs is None:
                return None
            maps.append((str(key.value), MappingProxyType(dict(pairs))))
        return QueryMap(maps=tuple(maps))

    @staticmethod
    def _header_name(name: str) -> str:
        if not _TOKEN.fullmatch(name):
            return f"{name!r} is not a valid header name"
        if name.lower() in _MANAGED:
            return f"{name} is managed by the proxy (framing, connection); it cannot be changed"
        return ""

    def _headers(self, node: Node, what: str, side: str) -> HeadersStep | None:
        f = self.w.fields(node, HEADER_KEYS, subject=what, where=f"in {what}")
        if f is None:
            return None
        if not f:
            self.w.report(node.at, f"{what} is empty", f"give {', '.join(HEADER_KEYS)}")
            return None
        ops: list[HeaderOp] = []
        ok = True
        for key, value in f.items():
            here = f"{what}.{key}"
            op: HeaderOp | None = None
            if key == "set":
                pairs = self._str_map(value, here, key_check=self._header_name)
                if pairs is not None and self._no_newlines(value, here, pairs):
                    op = HeaderSet(values=pairs)
            elif key == "rename":
                pairs = self._str_map(value, here, key_check=self._header_name)
                bad = [] if pairs is None else [b for _, b in pairs if self._header_name(b)]
                if bad:
                    self.w.report(value.at, f"{here}: {self._header_name(bad[0])}")
                elif pairs is not None:
                    op = HeaderRename(names=pairs)
            elif key == "remove":
                names = self._names(value, here, self._header_name)
                op = None if names is None else HeaderRemove(names=names)
            elif key == "from_param":
                pairs = self._str_map(value, here, key_check=self._header_name)
                if pairs is not None:
                    self._used.extend((param, value.at) for _, param in pairs)
                    op = HeaderFromParam(params=pairs)
            else:
                op = self._rewrite_paths(value, here, side)
            if op is None:
                ok = False
            else:
                ops.append(op)
        return HeadersStep(ops=tuple(ops), at=node.at) if ok else None

    def _no_newlines(self, node: Node, what: str, pairs: Sequence[tuple[str, str]]) -> bool:
        for name, value in pairs:
            if "\r" in value or "\n" in value:
                self.w.report(node.at, f"{what}.{name}: a header value cannot hold a line break")
                return False
        return True

    def _rewrite_paths(self, node: Node, what: str, side: str) -> RewritePaths | None:
        if side != "response":
            self.w.report(
                node.at,
                f"{what} is for the response side (Location, Link...)",
                "on the request side, use a path step",
            )
            return None
        paths: RewritePaths | None = read_part(self.w, node, RewritePaths, what)
        return paths

    # -- json
