"""Validation of ``translate:`` and ``translators:``: every problem with file:line and a hint.

``tests/data/translate/invalid.yaml`` marks each expected problem with an
``# expect: TEXT`` comment on its line; the test wants exactly those, no more.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from strangler.config.source import Map, Scalar, Seq, read_file
from strangler.config.translate_model import (
    HeadersStep,
    HookStep,
    JsonMove,
    JsonPath,
    JsonScale,
    JsonStep,
    PathStep,
    Prefix,
    StatusStep,
    Wildcard,
)
from strangler.config.translate_values import (
    JSON_OPS,
    REQUEST_STEPS,
    RESPONSE_STEPS,
    check_regex,
    load_hook,
    parse_json_path,
    parse_status_rule,
)
from strangler.config.validate_translate import Translators
from strangler.config.values import BadValue
from strangler.config.walker import Walker
from strangler.translate import json_body
from strangler.translate.registry import REQUEST_FACTORIES, RESPONSE_FACTORIES
from tests.translate_support import problems_of, spec_of

DATA = Path(__file__).parent / "data" / "translate"
_EXPECT = re.compile(r"#\s*expect:\s*(.+?)\s*$")


def read_cases(path: Path) -> list[tuple[int, str]]:
    """Read every case of a fixture; the problems as (line, message)."""
    sources = read_file(path)
    assert not sources.problems
    root = sources.files[0].root
    assert isinstance(root, Map)
    w = Walker(str(path))
    named = root.get("translators")
    assert named is not None
    reader = Translators.read(w, named)
    cases = root.get("cases")
    assert isinstance(cases, Seq)
    for case in cases.items:
        assert isinstance(case, Map)
        name, template, node = (case.get(k) for k in ("name", "path_template", "translate"))
        assert name is not None
        assert node is not None
        text = template.value if isinstance(template, Scalar) else None
        assert text is None or isinstance(text, str)
        assert isinstance(name, Scalar)
        spec = reader.route(node, label=f"route '{name.value}'", template=text)
        assert spec is None or name.value == "params"
    assert all(p.file == str(path) for p in w.problems)
    return [(p.line, p.message) for p in w.problems]


def test_every_problem_of_the_fixture_and_no_other() -> None:
    path = DATA / "invalid.yaml"
    expected = [
        (n, m.group(1))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if (m := _EXPECT.search(line))
    ]
    got = read_cases(path)
    unmatched = list(got)
    missing = []
    for line, text in expected:
        hit = next((g for g in unmatched if g[0] == line and text in g[1]), None)
        if hit is None:
            missing.append((line, text))
        else:
            unmatched.remove(hit)
    assert (missing, unmatched) == ([], []), "\n".join(f"{line}: {m}" for line, m in got)


@pytest.mark.parametrize(
    ("text", "template", "problem"),
    [
        ("translate: {request: [{jsn: []}]}", None,
         "t.yaml:1: route 'r' translate.request[0]: unknown request step 'jsn' (hint: did you mean "
         "'json'?; request steps: path, query, headers, json, hook)"),
        ("translate: {request: [{json: [{requier: [id]}]}]}", None,
         "t.yaml:1: route 'r' translate.request[0].json[0]: unknown JSON operation 'requier' "
         "(hint: did you mean 'require'?; operations: rename, move, drop, set, default, wrap, "
         "unwrap, map, convert, date, scale, each, require)"),
        ("translate: [5]", None,
         "t.yaml:1: route 'r' translate[0] must be a mapping (steps, or {use: NAME}), got the "
         "number 5 (hint: for example {request: [{path: {rewrite: /v2/c/{id}}}], "
         "response: [...]})"),
        ("translate: {respons: []}", None,
         "t.yaml:1: unknown key 'respons' in route 'r' translate (hint: did you mean 'response'?)"),
        ("translate:\n  request:\n    - path: {rewrite: '/c/{idd}'}\n", "/c/{id}",
         "t.yaml:3: route 'r' translate: parameter 'idd', which the route's path template does not "
         "have (hint: did you mean 'id'?; its match.path '/c/{id}' has id)"),
        ("translate: {request: [{headers: {from_param: {X-Id: id}}}]}", None,
         "t.yaml:1: route 'r' translate: parameter 'id', which the route's path template does not "
         "have (hint: only a route with match.path can use {parameters})"),
        ("translate: {request: [{json: [{drop: ['lines[x]']}]}]}", None,
         "t.yaml:1: route 'r' translate.request[0].json[0].drop entry: JSON path 'lines[x]': bad "
         "index at position 5 (hint: an index is [0], [-1], [*] or ['key'])"),
        ("translate: {response: [{error: {when: 600, body: {}}}]}", None,
         "t.yaml:1: route 'r' translate.response[0].error.when: status rule 600 goes outside "
         "100-599"),
        ("translate: {request: [{hook: 'json:lods'}]}", None,
         "t.yaml:1: route 'r' translate.request[0].hook: hook 'json:lods': module 'json' has "
         "no 'lods' (hint: did you mean 'loads'?)"),
        ("translate: {response: [{path: {rewrite: /a}}]}", None,
         "t.yaml:1: route 'r' translate.response[0]: unknown response step 'path' (hint: 'path' is "
         "a request step; move it under request:)"),
        ("translate: {response: [{rename: {from: a, to: b}}]}", None,
         "t.yaml:1: route 'r' translate.response[0]: unknown response step 'rename' (hint: "
         "'rename' is a JSON operation; put it in a json list: - json: [{rename: ...}])"),
        ("translate: {request: [{query: {}}]}", None,
         "t.yaml:1: route 'r' translate.request[0].query is empty (hint: give rename, drop, set, "
         "map)"),
        ("translate: {response: [{headers: {}}]}", None,
         "t.yaml:1: route 'r' translate.response[0].headers is empty (hint: give set, rename, "
         "remove, from_param, rewrite_paths)"),
        ("translate: {request: [{headers: {set: {5: x}}}]}", None,
         "t.yaml:1: route 'r' translate.request[0].headers.set: the number 5 is not a valid header "
         "name (hint: like X-Request-Id)"),
    ],
)  # fmt: skip
def test_problem_messages_and_hints(text: str, template: str | None, problem: str) -> None:
    assert problems_of(text, template) == [problem]


def test_a_status_or_error_step_reports_every_problem_at_once() -> None:
    """Read with pydantic (``read_part``): each key's problem, not only the first."""
    assert problems_of(
        "translate:\n  response:\n"
        "    - error: {when: '2xy', body: {e: '$..x'}, content_type: text/html, statu: 4}\n"
        "    - status: {map: {201: 700, '99': 200}}\n"
        "    - status: {map: {}}\n",
        None,
    ) == [
        "t.yaml:3: unknown key 'statu' in route 'r' translate.response[0].error (hint: did you "
        "mean 'status'?)",
        "t.yaml:3: route 'r' translate.response[0].error.when: '2xy' is not a status rule (hint: "
        "like '>=400', '4xx', '500-599', 404 or a list of them)",
        "t.yaml:3: route 'r' translate.response[0].error.body: JSON path '$..x': empty key at "
        "position 2 (at e) (hint: like customer.address.city, lines[0].price or lines[*].price)",
        "t.yaml:3: route 'r' translate.response[0].error.content_type: 'text/html' is not a JSON "
        "media type (hint: the error body is JSON: application/json, application/problem+json, "
        "...)",
        "t.yaml:4: route 'r' translate.response[1].status.map.201 must be a status from 100 to "
        "599, got the number 700",
        "t.yaml:4: route 'r' translate.response[1].status.map must be a status from 100 to 599, "
        "got '99'",
        "t.yaml:5: route 'r' translate.response[2].status.map must not be empty (hint: for "
        "example status: {map: {201: 200}})",
    ]


def test_a_valid_spec_becomes_frozen_dataclasses_with_locations() -> None:
    spec = spec_of(
        "translate:\n"
        "  on_error: passthrough\n"
        "  max_body: 64kb\n"
        "  request:\n"
        "    - path: {prefix: {strip: /api/v1, add: /v2}}\n"
        "    - json:\n"
        "        - rename: {from: 'lines[*].price', to: 'lines[*].amount'}\n"
        "        - scale: {path: total, to: total_cents, multiply: '100'}\n"
        "  response:\n"
        "    - status: {map: {'201': 200}}\n"
        "    - headers: {remove: X-Debug}\n"
    )
    (layer,) = spec.layers
    assert (layer.on_error, layer.max_body, layer.name) == ("passthrough", 64_000, None)
    path, json_step = layer.request
    assert isinstance(path, PathStep)
    assert path.prefix == Prefix(strip="/api/v1", add="/v2")
    assert isinstance(json_step, JsonStep)
    move, scale = json_step.ops
    assert isinstance(move, JsonMove)
    assert (move.op, move.from_.segments) == ("rename", ("lines", Wildcard.ANY, "price"))
    assert isinstance(scale, JsonScale)
    assert (scale.multiply, scale.divide, scale.as_) == ("100", None, None)
    status, headers = layer.response
    assert isinstance(status, StatusStep)
    assert dict(status.map) == {201: 200}
    assert isinstance(headers, HeadersStep)
    assert headers.ops == (("remove", ("X-Debug",)),)
    with pytest.raises(AttributeError):
        path.host = "x"  # type: ignore[misc]


def test_named_translators_are_shared() -> None:
    spec = spec_of(
        "translators:\n  v2: {request: [{headers: {set: {X-V: '2'}}}]}\n"
        "translate: [{use: v2}, {response: [{status: {map: {201: 200}}}]}]\n"
    )
    named, inline = spec.layers
    assert (named.name, inline.name) == ("v2", None)


def test_the_validator_knows_the_registry_kinds() -> None:
    assert set(REQUEST_STEPS.shapes) == set(REQUEST_FACTORIES)
    assert set(RESPONSE_STEPS.shapes) == set(RESPONSE_FACTORIES)
    compiled_ops = re.findall(r"isinstance\(op, (Json\w+)", Path(json_body.__file__).read_text())
    assert len(JSON_OPS.shapes) == 13
    assert len(set(compiled_ops)) >= 11


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("a", ("a",)),
        ("$.a.b", ("a", "b")),
        ("lines[0].price", ("lines", 0, "price")),
        ("lines[-1]", ("lines", -1)),
        ("$[*].x", (Wildcard.ANY, "x")),
        ("a['b.c'][\"d\"]", ("a", "b.c", "d")),
        ("first name", ("first name",)),
    ],
)
def test_json_paths(text: str, segments: tuple[object, ...]) -> None:
    assert parse_json_path(text) == JsonPath(text, segments)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "a..b", "a.", ".a", "a[", "a[b]", "a]", "$", "a$b"])
def test_bad_json_paths(text: str) -> None:
    with pytest.raises(BadValue):
        parse_json_path(text)


@pytest.mark.parametrize(
    ("rule", "ranges"),
    [(">=400", ((400, 599),)), ("<300", ((100, 299),)), ("5xx", ((500, 599),)),
     (404, ((404, 404),)), ("400-499", ((400, 499),)), ([404, "5XX"], ((404, 404), (500, 599))),
     ("==418", ((418, 418),)), (">399", ((400, 599),)), ("<=201", ((100, 201),))],
)  # fmt: skip
def test_status_rules(rule: object, ranges: tuple[tuple[int, int], ...]) -> None:
    assert parse_status_rule(rule).ranges == ranges


@pytest.mark.parametrize(
    ("pattern", "replace", "problem"),
    [
        ("^/(a)", "/\\1\\n", None),
        ("(?x) ^/(a)  # a comment", "/\\1", None),  # the check's own branch after a comment
        ("^/(?P<id>a)", "\\g<di>", "unknown group name 'di'"),
        ("^/(a)", "/\\2", "invalid group reference 2"),
        ("^/(a)", "\\q", "bad escape \\q"),
    ],
)
def test_regex_replacements(pattern: str, replace: str, problem: str | None) -> None:
    if problem is None:
        assert check_regex(pattern, replace).pattern == pattern
        return
    with pytest.raises(BadValue, match=re.escape(problem)):
        check_regex(pattern, replace)


# ---------------------------------------------------------------------------- hooks


@pytest.fixture
def hook_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.startswith("hookpkg")]:
        monkeypatch.delitem(sys.modules, name)
    (tmp_path / "hookpkg").mkdir()
    (tmp_path / "hookpkg" / "__init__.py").write_text("")
    return tmp_path / "hookpkg"


HOOKS = """
import asyncio

def one(msg):
    return msg

def two(msg, other):
    return msg

def optional(msg, flag=False):
    return msg

async def later(msg):
    return msg

class Fixer:
    def __call__(self, msg):
        return msg

    def method(self, msg):
        return msg

fixer = Fixer()
VALUE = 3
"""


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("hookpkg.hooks:one", None),
        ("hookpkg.hooks.one", None),
        ("hookpkg.hooks:optional", None),
        ("hookpkg.hooks:fixer", None),
        ("hookpkg.hooks:Fixer.method", "must take exactly one argument"),
        ("hookpkg.hooks:fixer.method", None),
        ("hookpkg.hooks:two", "must take exactly one argument (the message); its signature is "
                              "(msg, other)"),
        ("hookpkg.hooks:later", "is async; hooks run synchronously on the request path"),
        ("hookpkg.hooks:VALUE", "hook 'hookpkg.hooks:VALUE' is int, not a function"),
        ("hookpkg.hooks:oen", "module 'hookpkg.hooks' has no 'oen'"),
        ("hookpkg.missing:one", "cannot import module 'hookpkg.missing': No module named "
                                "'hookpkg.missing'"),
        ("hookpkg.raises:one", "importing 'hookpkg.raises' raised RuntimeError: no database"),
        ("hookpkg.syntax:one", "importing 'hookpkg.syntax' raised SyntaxError"),
        ("hookpkg:hooks:one", "is not 'module:function'"),
        ("one", "is not 'module:function'"),
    ],
)  # fmt: skip
def test_hooks_are_imported_and_checked(hook_dir: Path, target: str, message: str | None) -> None:
    (hook_dir / "hooks.py").write_text(HOOKS)
    (hook_dir / "raises.py").write_text("raise RuntimeError('no database')\n")
    (hook_dir / "syntax.py").write_text("def one(msg)\n    return msg\n")
    if message is None:
        assert callable(load_hook(target))
        return
    with pytest.raises(BadValue) as info:
        load_hook(target)
    assert message in str(info.value)


def test_a_bad_hook_is_a_config_problem_with_its_line(hook_dir: Path) -> None:
    (hook_dir / "broken.py").write_text("import nowhere_to_be_found\n")
    problems = problems_of(
        "translate:\n  request:\n    - hook: {call: 'hookpkg.broken:fix', body: false}\n"
    )
    assert problems == [
        "t.yaml:3: route 'r' translate.request[0].hook.call: hook 'hookpkg.broken:fix': cannot "
        "import module 'hookpkg.broken': No module named 'nowhere_to_be_found' (hint: install "
        "the package, or put its directory on PYTHONPATH)"
    ]


def test_a_good_hook_spec_holds_the_function(hook_dir: Path) -> None:
    (hook_dir / "hooks.py").write_text(HOOKS)
    spec = spec_of("translate: {response: [{hook: {call: 'hookpkg.hooks:one', body: false}}]}")
    (hook,) = spec.layers[0].response
    assert isinstance(hook, HookStep)
    assert (hook.call.target, hook.body, hook.call.function.__name__) == (
        "hookpkg.hooks:one",
        False,
        "one",
    )
