"""``strangler schema``: the JSON Schema editors use, kept in step with ``strangler check``.

- the schema files committed for the demo's ``# yaml-language-server`` lines are what
  ``strangler schema`` prints today (regenerate them with the commands below);
- every example and demo config validates against the schema (no false alarm in an
  editor);
- on a corpus of broken configs (the invalid fixtures and seeded fuzz cases), the
  schema never rejects what ``check`` accepts, and what only ``check`` rejects is one
  a rule across keys or files (``ACROSS``), the YAML itself, or under ``include``
  (``UNDESCRIBED``: source.py follows it).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from pathlib import Path
from typing import Any, Final

import jsonschema
import pytest

from strangler.cli import main
from strangler.config import described, migrate_model, model, shadow_model, translate_model
from strangler.config.check import check_sources
from strangler.config.described import (
    UNDESCRIBED,
    _plain,
    main_schema,
    read_part,
    routes_schema,
)
from strangler.config.migrate_model import Gates, ShadowStage
from strangler.config.model import NOWHERE, TracingSettings
from strangler.config.shadow_model import ConfirmSpec, NoiseSpec, ShadowSpec
from strangler.config.source import Map, Sources, read_file, read_text
from strangler.config.walker import Walker
from strangler.errors import Problem
from tests.fuzz_support import cases

ROOT: Final = Path(__file__).resolve().parent.parent
DATA: Final = ROOT / "tests" / "data" / "configs"
SCHEMA_FILES: Final = {  # committed copy -> which schema (--routes or not)
    ROOT / "schema" / "strangler.schema.json": False,
    ROOT / "schema" / "strangler-routes.schema.json": True,
    ROOT / "strangler" / "demo" / "schema" / "strangler.schema.json": False,
    ROOT / "strangler" / "demo" / "schema" / "strangler-routes.schema.json": True,
}
EXAMPLES: Final = [
    *sorted((DATA / "valid").glob("*.yaml")),
    ROOT / "strangler" / "demo" / "demo.yaml",
    *sorted((ROOT / "deploy").rglob("strangler.yaml")),
]

# What only check can say: rules across keys or files, which a JSON Schema cannot state.
ACROSS: Final = re.compile(
    r"shadowed|uses the same port as listen|state\.redis is set but state\.backend is file|"
    r"the config has no 'upstreams'|upstreams must include 'legacy'|"
    r"URL '[^']*' has an invalid port|"  # 0 or above 65535: a range, not a pattern
    r"slo has nothing to watch|slo sets neither|"
    r"unknown upstream '|the route's own 'to'|has a group but no sticky key|"
    r"fallback.to has no effect|the new side itself|turns off both the header and the cookie|"
    r"match has both 'path' and 'path_prefix'|names header '[^']*' twice|"
    r"is already named in match\.query|"
    r"parameter name '[^']*' is used twice|"  # a template's names: not a pattern
    r"the upstream that already answers this route|cannot exceed min_observations|"
    r"needs the route's (canary|shadow|slo)|is not a stage of this plan|comes too late|"
    r"stage already|needs a canary or a migrated stage|already carries the plan|"
    r"has tls but its url|\.tls has (cert|key) but no|needs listen\.tls|TLS listener's own address|"
    # the files a TLS key names: what is in them, and whether a key fits its certificate
    r"does not exist|is a directory|cannot read|does not hold|is encrypted|cannot (load|use) |"
    r"which the route's path template does not have|uses unknown translator"
)


def _only_check(sources: Sources, problem: Problem) -> str | None:
    """Why the schema may miss ``problem``, or ``None`` when it should have found it."""
    if problem in sources.problems:
        return "the YAML itself (source.py: syntax, tags, limits, includes)"
    if ACROSS.search(problem.message):
        return "a rule across keys or files"
    file = next((f for f in sources.files if f.path == problem.file), sources.files[0])
    if isinstance(file.root, Map):
        keys = [k for k, _ in file.root.entries if k.at.line <= problem.line]
        if keys and keys[-1].value in UNDESCRIBED:
            return f"{keys[-1].value} (followed by source.py, outlined in the schema)"
    return None


@functools.cache
def _validators() -> tuple[jsonschema.Draft202012Validator, jsonschema.Draft202012Validator]:
    return jsonschema.Draft202012Validator(main_schema()), jsonschema.Draft202012Validator(
        routes_schema()
    )


def _schema_errors(sources: Sources) -> list[str]:
    """Every schema error in the files read: the main file against the main schema,
    each included one against the route file schema."""
    main_v, routes_v = _validators()
    found = []
    for n, file in enumerate(sources.files):
        data: Any = {} if file.root is None else _plain(file.root)
        for error in (main_v if n == 0 else routes_v).iter_errors(data):
            found.append(f"{file.path}: {'.'.join(map(str, error.path))}: {error.message}")
    return found


@pytest.mark.parametrize("path", list(SCHEMA_FILES), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_committed_schema_files_are_what_strangler_schema_prints(
    path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Regenerate with: strangler schema > schema/strangler.schema.json (and --routes >
    schema/strangler-routes.schema.json), then copy both into strangler/demo/schema/."""
    assert main(["schema", *(["--routes"] if SCHEMA_FILES[path] else [])]) == 0
    assert json.loads(path.read_text("utf-8")) == json.loads(capsys.readouterr().out)


def test_the_schemas_are_draft_2020_12() -> None:
    for schema in (main_schema(), routes_schema()):
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)
    described = main_schema()["$defs"]["Limits"]["properties"]["header_timeout"]
    assert described["default"] == 30.0
    assert "408" in described["description"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_and_demo_config_validates(path: Path) -> None:
    sources = read_file(path)
    if "deploy" not in path.parts:  # deploy's configs include route files made on site
        assert sources.problems == ()
        assert check_sources(sources, path).ok
    assert _schema_errors(sources) == []


def test_the_demo_files_name_their_schema() -> None:
    for path, schema in (
        (ROOT / "strangler" / "demo" / "demo.yaml", "schema/strangler.schema.json"),
        (ROOT / "routes" / "demo.yaml", "../schema/strangler-routes.schema.json"),
        (ROOT / "strangler/demo/routes/demo.yaml", "../schema/strangler-routes.schema.json"),
    ):
        first = path.read_text("utf-8").splitlines()[0]
        assert first == f"# yaml-language-server: $schema={schema}"
        assert (path.parent / schema).is_file()


def _broken() -> list[tuple[str, Sources]]:
    corpus = [(p.name, read_file(p)) for p in sorted((DATA / "invalid").glob("*.yaml"))]
    for case in cases(400, seed=14):
        corpus.append(
            (f"fuzz case {case.number} (from {case.seed})", read_text(case.text, case.file))
        )
    return corpus


def test_schema_and_check_agree_on_broken_configs() -> None:
    disagreements = []
    only_check = 0
    both = 0
    for name, sources in _broken():
        report = check_sources(sources, sources.files[0].path if sources.files else name)
        schema_says = _schema_errors(sources) if sources.files else []
        if schema_says and report.ok:
            disagreements.append(f"{name}: only the schema rejects it: {schema_says}")
        elif schema_says:
            both += 1
        elif not report.ok:
            only_check += 1
            unlisted = [str(p) for p in report.problems if _only_check(sources, p) is None]
            if unlisted:
                disagreements.append(f"{name}: only check rejects it: {unlisted}")
    assert disagreements == [], "\n".join(disagreements[:20])
    assert both > 50  # the corpus does exercise what the schema describes
    assert only_check > 50


@pytest.mark.parametrize(
    ("part", "key", "needs", "shown"),  # key: the field's config name
    [
        (TracingSettings, "sample", "otlp: http://c:4318\n", "100%"),
        (ShadowSpec, "percent", "to: b\n", "100%"),  # the field: ratio
        (ConfirmSpec, "max_share", "", "10%"),
        (NoiseSpec, "share", "", "50%"),
        (ShadowStage, "parity", "", "99.9%"),
        (Gates, "error_rate_vs_primary", "", "0.5%"),
    ],
)
def test_a_share_default_is_shown_as_a_file_must_write_it(
    part: type, key: str, needs: str, shown: str
) -> None:
    """The schema shows a ratio's default as a percentage (a bare 1.0 is refused), and
    the reader takes what it shows for that very default."""
    assert main_schema()["$defs"][part.__name__]["properties"][key]["default"] == shown
    w = Walker("p.yaml")
    given, omitted = (
        read_part(w, read_text(text, "p.yaml").files[0].root or Map((), NOWHERE), part, "")
        for text in (f"{needs}{key}: {shown}\n", needs)
    )
    assert w.problems == []
    field = "ratio" if key == "percent" else key
    assert getattr(given, field) == pytest.approx(getattr(omitted, field))


def test_every_default_the_schema_shows_is_one_the_reader_takes() -> None:
    """No default the file could not write: no ratio 1.0 for 100%, no null for a key
    that refuses null, no [] for a list that must not be empty."""
    parts = {
        c.__name__: c
        for module in (model, shadow_model, migrate_model, translate_model, described)
        for c in vars(module).values()
        if isinstance(c, type) and dataclasses.is_dataclass(c)
    }
    refused = []
    for name, shape in main_schema()["$defs"].items():
        for key, prop in shape.get("properties", {}).items():
            if "default" in prop:
                w = Walker("d.yaml")
                node = read_text(json.dumps({key: prop["default"]}), "d.yaml").files[0].root
                read_part(w, node or Map((), NOWHERE), parts[name], "")
                # a rule of the whole part ("needs strip, add or both") is not the default's
                refused += [f"{name}: {p}" for p in w.problems if p.message.startswith(key)]
    assert refused == []


def test_a_percentage_with_an_exponent_is_refused_by_both() -> None:
    """``1e2%`` is 100% to Python's float(), but no pattern of the schema's: both refuse."""
    sources = read_text(
        "upstreams: {legacy: http://l:1, b: http://b:1}\n"
        "routes:\n"
        "  - {name: r, owner: o, match: {path: /}, to: legacy, shadow: {to: b, percent: 1e2%}}\n",
        "m.yaml",
    )
    report = check_sources(sources, "m.yaml")
    assert [p.message for p in report.problems] == [
        "route 'r' shadow.percent: expected a percentage like '10%', got '1e2%'"
    ]
    assert _schema_errors(sources) != []


@pytest.mark.parametrize(
    ("step", "ok"),
    [
        ({"path": {"rewrite": "/v2/{id}"}}, True),
        ({"json": [{"rename": {"from": "a", "to": "b"}}, {"drop": "c"}]}, True),
        ({"status": {"map": {"201": 200}}}, False),  # a response step
        ({"path": {"rewrite": "/a"}, "query": {"drop": "x"}}, False),  # two keys
        ({"json": [{"renam": {"from": "a", "to": "b"}}]}, False),
        ({"headers": {"set": {"X-A": 1}}}, False),
    ],
)
def test_the_schema_describes_translate_steps(step: dict[str, Any], ok: bool) -> None:
    """An editor flags a translate step the way check does (but the names: ACROSS)."""
    main_v, _ = _validators()
    config = {"translators": {"t": {"request": [step]}}, "routes": []}
    errors = [e.message for e in main_v.iter_errors(config)]
    assert (errors == []) == ok, errors
