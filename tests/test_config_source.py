"""Reading YAML into located nodes: scalars, duplicate keys, tags, aliases, syntax errors
and ``include`` (order, globs, cycles, files included twice)."""

from __future__ import annotations

import doctest
import math
import os
from pathlib import Path

import pytest

from strangler.config import source
from strangler.config.model import Location
from strangler.config.source import Map, Node, Scalar, Seq, Sources, read_file, read_text
from strangler.errors import Problem


def root_of(sources: Sources) -> Map:
    root = sources.files[0].root
    assert isinstance(root, Map)
    return root


def value(node: Node | None) -> object:
    assert isinstance(node, Scalar)
    return node.value


def messages(sources: Sources) -> list[str]:
    return [str(p) for p in sources.problems]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------- scalars


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # YAML 1.1 would turn these into booleans, base-60 numbers, octal and dates.
        ("off", "off"),
        ("on", "on"),
        ("yes", "yes"),
        ("No", "No"),
        ("0.0.0.0:8080", "0.0.0.0:8080"),
        ("8080:80", "8080:80"),
        ("2024-01-01", "2024-01-01"),
        ("0755", 755),
        ("=", "="),
        # YAML 1.2 core schema
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("~", None),
        ("null", None),
        ("", None),
        ("42", 42),
        ("-7", -7),
        ("0x1F", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".inf", math.inf),
        ("-.inf", -math.inf),
        ("'true'", "true"),
        ('"42"', "42"),
        ("!!str 42", "42"),
        ("!!int '42'", 42),
        ("30s", "30s"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_scalars_follow_yaml_1_2_core(text: str, expected: object) -> None:
    sources = read_text(f"key: {text}\n", "m.yaml")
    assert sources.problems == ()
    got = value(root_of(sources).get("key"))
    assert got == expected
    assert type(got) is type(expected)


def test_nan_is_a_float() -> None:
    got = value(root_of(read_text("key: .nan\n")).get("key"))
    assert isinstance(got, float)
    assert math.isnan(got)


def test_every_node_knows_its_line() -> None:
    text = (
        "# comment\nlisten: 0.0.0.0:8080\nupstreams:\n  legacy:\n    url: http://l\n"
        "list:\n  - a\n  - b\n"
    )
    root = root_of(read_text(text, "m.yaml"))
    assert root.at == Location("m.yaml", 2)
    upstreams = root.get("upstreams")
    assert isinstance(upstreams, Map)
    assert upstreams.at == Location("m.yaml", 4)
    assert root.key_at("upstreams") == Location("m.yaml", 3)
    legacy = upstreams.get("legacy")
    assert isinstance(legacy, Map)
    assert legacy.get("url") == Scalar("http://l", Location("m.yaml", 5))
    items = root.get("list")
    assert isinstance(items, Seq)
    assert [i.at.line for i in items.items] == [7, 8]
    assert root.get("missing") is None
    assert root.key_at("missing") == root.at


def test_keys_keep_their_types() -> None:
    root = root_of(read_text("200: ok\ntrue: yes\nnull: x\n"))
    assert [k.value for k, _ in root.entries] == [200, True, None]
    assert root.get("200") is None  # only string keys are looked up by name


def test_describe() -> None:
    at = Location("f", 1)
    assert source.describe(Map((), at)) == "a mapping"
    assert source.describe(Seq((), at)) == "a list"
    assert source.describe(Scalar(None, at)) == "nothing (null)"
    assert source.describe(Scalar(True, at)) == "true"
    assert source.describe(Scalar(False, at)) == "false"
    assert source.describe(Scalar(2.5, at)) == "the number 2.5"
    assert source.describe(Scalar("x", at)) == "'x'"


# ---------------------------------------------------------------------------- problems


def test_duplicate_keys_are_problems_and_the_first_is_kept() -> None:
    sources = read_text("a: 1\nb:\n  c: 1\n  c: 2\na: 3\n", "m.yaml")
    assert messages(sources) == [
        "m.yaml:4: duplicate key 'c' (first at line 3) "
        "(hint: YAML would silently keep only the last one; remove one of them)",
        "m.yaml:5: duplicate key 'a' (first at line 1) "
        "(hint: YAML would silently keep only the last one; remove one of them)",
    ]
    root = root_of(sources)
    assert value(root.get("a")) == 1
    assert len(root.entries) == 2


def test_keys_of_different_types_are_not_duplicates() -> None:
    assert read_text("1: a\n'1': b\n").problems == ()


def test_syntax_error_points_at_its_line() -> None:
    sources = read_text("a: 1\nb: [1, 2\nc: 3\n", "m.yaml")
    assert sources.files[0].root is None
    (problem,) = sources.problems
    assert problem == Problem(
        "m.yaml",
        3,
        "invalid YAML: expected ',' or ']', but got ':'",
        "while parsing a flow sequence started at line 2",
    )


def test_bad_indentation() -> None:
    (problem,) = read_text("a:\n  b: 1\n c: 2\n", "m.yaml").problems
    assert str(problem) == (
        "m.yaml:3: invalid YAML: this line's indentation does not fit (hint: check the "
        "indentation: this line is not lined up with the keys above it (the block that "
        "started at line 1))"
    )
    (problem,) = read_text("routes:\n  - name: x\n   to: y\n", "m.yaml").problems
    assert (problem.line, problem.message) == (
        3,
        "invalid YAML: this line's indentation does not fit",
    )
    (problem,) = read_text("a: 1\n  b: 2\n", "m.yaml").problems
    assert str(problem) == (
        "m.yaml:2: invalid YAML: mapping values are not allowed here (hint: check the "
        "indentation of this line (a key indented under a value), or quote a value that "
        "contains ': ')"
    )


def test_tab_indentation() -> None:
    (problem,) = read_text("a:\n\tb: 1\n", "m.yaml").problems
    assert str(problem) == (
        "m.yaml:2: invalid YAML: a tab character (hint: YAML indents with spaces only: "
        "replace the tabs on this line with spaces)"
    )


def test_several_documents_are_a_problem() -> None:
    (problem,) = read_text("a: 1\n---\nb: 2\n", "m.yaml").problems
    assert (problem.line, problem.message) == (2, "invalid YAML: but found another document")
    assert problem.hint == "expected a single document in the stream started at line 1"


def test_control_characters_are_a_problem() -> None:
    (problem,) = read_text("a: 1\nb: \x01\n", "m.yaml").problems
    assert problem == Problem(
        "m.yaml", 2, "invalid YAML: character #x0001: special characters are not allowed"
    )


def test_invalid_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"a: 1\nb: caf\xe9\n")
    (problem,) = read_file(path).problems
    assert problem == Problem(str(path), 2, "not valid UTF-8 (byte 0xe9)")


def test_a_utf8_bom_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: caf\xc3\xa9\n")
    sources = read_file(path)
    assert sources.problems == ()
    assert value(root_of(sources).get("a")) == "café"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !env HOME\n", "unsupported YAML tag '!env'"),
        ("a: !!binary aGk=\n", "unsupported YAML tag '!!binary'"),
        ("a: !!timestamp 2024-01-01\n", "unsupported YAML tag '!!timestamp'"),
        ("a: !!set {x}\n", "unsupported YAML tag '!!set'"),
        ("a: !!omap [x: 1]\n", "unsupported YAML tag '!!omap'"),
        ("a: !!python/name:os.system\n", "unsupported YAML tag '!!python/name:os.system'"),
        ("a: !!int abc\n", "'abc' is not a valid int"),
        ("a: !!bool maybe\n", "'maybe' is not a valid bool"),
        ("a: !!null x\n", "'x' is not a valid null"),
        ("a: !!float x\n", "'x' is not a valid float"),
    ],
)
def test_tags_beyond_plain_data_are_problems(text: str, message: str) -> None:
    (problem,) = read_text(text, "m.yaml").problems
    assert (problem.line, problem.message) == (1, message)


def test_non_scalar_keys_are_problems() -> None:
    sources = read_text("? [a, b]\n: 1\nc: 2\n", "m.yaml")
    assert messages(sources) == ["m.yaml:1: a key must be a plain value, not a list"]
    assert [k.value for k, _ in root_of(sources).entries] == ["c"]


def test_empty_document_has_no_root() -> None:
    for text in ("", "# only a comment\n", "---\n"):
        sources = read_text(text)
        assert sources.files[0].root is None
        assert sources.problems == ()


# ---------------------------------------------------------------------------- aliases


def test_aliases_and_merge_keys() -> None:
    text = (
        "defaults: &d {connect: 1s, read: 2s}\n"
        "a:\n"
        "  <<: *d\n"
        "  read: 5s\n"
        "b: *d\n"
        "c:\n"
        "  <<: [{x: 1}, {x: 2, y: 2}]\n"
    )
    sources = read_text(text, "m.yaml")
    assert sources.problems == ()
    root = root_of(sources)
    a = root.get("a")
    assert isinstance(a, Map)
    # explicit keys win over merged ones; merged keys keep the anchor's location
    assert [(k.value, value(v), v.at.line) for k, v in a.entries] == [
        ("read", "5s", 4),
        ("connect", "1s", 1),
    ]
    assert root.get("b") is root.get("defaults")  # an alias is the same node
    c = root.get("c")
    assert isinstance(c, Map)
    assert {str(k.value): value(v) for k, v in c.entries} == {"x": 1, "y": 2}


def test_merging_a_scalar_is_a_problem() -> None:
    assert messages(read_text("a: &s text\nb:\n  <<: *s\n", "m.yaml")) == [
        "m.yaml:1: '<<' merges mappings, got 'text'"
    ]


def test_recursive_alias_is_a_problem_not_a_hang() -> None:
    assert messages(read_text("a: &x [1, *x]\n", "m.yaml")) == ["m.yaml:1: recursive YAML alias"]


def test_many_aliases_are_converted_once() -> None:
    # Each level doubles; converting by identity keeps it linear.
    lines = ["l0: &l0 [x, x]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 16)]
    sources = read_text("\n".join(lines) + "\n")
    assert sources.problems == ()
    top = root_of(sources).get("l15")
    assert isinstance(top, Seq)
    assert top.items[0] is top.items[1]


def test_a_billion_laughs_is_a_problem() -> None:
    # Converting stays linear, but whatever walks the tree later (a validator, a JSON
    # body serialised at compile time) would see every one of the 2**40 values.
    lines = ["l0: &l0 [x, x]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 40)]
    sources = read_text("\n".join(lines) + "\n", "m.yaml")
    assert messages(sources) == [
        "m.yaml:19: this expands to more than 1,000,000 values (hint: YAML aliases (*name) "
        "repeat what they point at; use fewer of them)"
    ]
    assert sources.files[0].root is None


# ---------------------------------------------------------------------------- files


def test_missing_main_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    sources = read_file(path)
    assert sources.files == ()
    assert sources.problems == (
        Problem(str(path), 0, "cannot read the config file: No such file or directory"),
    )


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    (problem,) = read_file(tmp_path).problems
    assert problem.message == "cannot read the config file: Is a directory"


def test_main_file_keeps_its_path_and_bytes(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", "a: 1\n")
    sources = read_file(str(path))
    (main,) = sources.files
    assert (main.path, main.data, main.included_at) == (str(path), b"a: 1\n", None)


# ---------------------------------------------------------------------------- include


ROUTES = "routes: []\n"


def test_includes_expand_sorted_relative_to_the_including_file(tmp_path: Path) -> None:
    main = write(tmp_path / "conf" / "main.yaml", "include: [teams/*.yaml, extra.yaml]\n")
    write(tmp_path / "conf" / "teams" / "zeta.yaml", ROUTES)
    write(tmp_path / "conf" / "teams" / "alpha.yaml", "include: [../deep/*.yaml]\n" + ROUTES)
    write(tmp_path / "conf" / "teams" / "beta.yaml", ROUTES)
    write(tmp_path / "conf" / "teams" / "notes.txt", "not yaml")
    write(tmp_path / "conf" / "deep" / "one.yaml", ROUTES)
    write(tmp_path / "conf" / "extra.yaml", ROUTES)
    (tmp_path / "conf" / "teams" / "dir.yaml").mkdir()  # a directory is not a file

    sources = read_file(main)
    assert sources.problems == ()
    conf = str(tmp_path / "conf")
    # depth first: a file's includes come right after it
    assert [f.path for f in sources.files] == [
        str(main),
        f"{conf}/teams/alpha.yaml",
        f"{conf}/deep/one.yaml",
        f"{conf}/teams/beta.yaml",
        f"{conf}/teams/zeta.yaml",
        f"{conf}/extra.yaml",
    ]
    assert sources.files[1].included_at == Location(str(main), 1)
    assert sources.files[2].included_at == Location(f"{conf}/teams/alpha.yaml", 1)


def test_include_paths_stay_relative_when_the_main_path_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "conf" / "main.yaml", "include: ['routes/*.yaml']\n")
    write(tmp_path / "conf" / "routes" / "a.yaml", ROUTES)
    monkeypatch.chdir(tmp_path)
    sources = read_file("conf/main.yaml")
    assert [f.path for f in sources.files] == ["conf/main.yaml", "conf/routes/a.yaml"]


def test_recursive_glob(tmp_path: Path) -> None:
    main = write(tmp_path / "main.yaml", "include: ['routes/**/*.yaml']\n")
    write(tmp_path / "routes" / "a.yaml", ROUTES)
    write(tmp_path / "routes" / "x" / "y" / "b.yaml", ROUTES)
    sources = read_file(main)
    assert [os.path.relpath(f.path, tmp_path) for f in sources.files[1:]] == [
        "routes/a.yaml",
        "routes/x/y/b.yaml",
    ]


def test_absolute_glob(tmp_path: Path) -> None:
    write(tmp_path / "teams" / "a.yaml", ROUTES)
    main = write(tmp_path / "main.yaml", f"include: ['{tmp_path}/teams/*.yaml']\n")
    assert [f.path for f in read_file(main).files] == [str(main), f"{tmp_path}/teams/a.yaml"]


def test_text_includes_resolve_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "routes" / "a.yaml", ROUTES)
    monkeypatch.chdir(tmp_path)
    sources = read_text("include: [routes/*.yaml]\n")
    assert [f.path for f in sources.files] == ["<string>", "routes/a.yaml"]


def test_glob_matching_nothing(tmp_path: Path) -> None:
    main = write(tmp_path / "main.yaml", "include:\n  - routes/*.yml\n")
    assert read_file(main).problems == (
        Problem(
            str(main),
            2,
            "include 'routes/*.yml' matches no file",
            f"include globs are relative to the including file's directory ('{tmp_path}')",
        ),
    )


def test_include_must_be_a_list_of_globs(tmp_path: Path) -> None:
    main = write(tmp_path / "main.yaml", "include: routes/*.yaml\n")
    assert messages(read_file(main)) == [
        f"{main}:1: include must be a list of file globs, got 'routes/*.yaml' "
        "(hint: for example: include: [routes/*.yaml])"
    ]
    main = write(tmp_path / "main.yaml", "include:\n  - {a: 1}\n  - ''\n")
    assert [(p.line, p.message) for p in read_file(main).problems] == [
        (2, "an include entry must be a file glob, got a mapping"),
        (3, "an include entry must be a file glob, got ''"),
    ]


def test_include_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "main.yaml", "include: [a.yaml]\n")
    write(tmp_path / "a.yaml", "routes: []\ninclude: [b.yaml]\n")
    write(tmp_path / "b.yaml", "routes: []\ninclude: [a.yaml]\n")
    sources = read_file("main.yaml")
    assert messages(sources) == [
        "b.yaml:2: include cycle: a.yaml -> b.yaml -> a.yaml "
        "(hint: a file must not include itself, directly or through other files)"
    ]
    assert [f.path for f in sources.files] == ["main.yaml", "a.yaml", "b.yaml"]


def test_including_the_main_file_is_a_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "main.yaml", "include: ['*.yaml']\n")
    assert [(p.line, p.message) for p in read_file("main.yaml").problems] == [
        (1, "include cycle: main.yaml -> main.yaml")
    ]


def test_a_file_included_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "main.yaml", "include:\n  - teams/a.yaml\n  - teams/*.yaml\n")
    write(tmp_path / "teams" / "a.yaml", ROUTES)
    write(tmp_path / "teams" / "b.yaml", ROUTES)
    sources = read_file("main.yaml")
    assert messages(sources) == [
        "main.yaml:3: teams/a.yaml is already included (by main.yaml:2) "
        "(hint: include each file once; make the globs narrower)"
    ]
    assert [f.path for f in sources.files] == ["main.yaml", "teams/a.yaml", "teams/b.yaml"]


def test_a_symlink_to_an_included_file_is_the_same_file(tmp_path: Path) -> None:
    write(tmp_path / "teams" / "a.yaml", ROUTES)
    (tmp_path / "teams" / "link.yaml").symlink_to(tmp_path / "teams" / "a.yaml")
    main = write(tmp_path / "main.yaml", "include: [teams/*.yaml]\n")
    (problem,) = read_file(main).problems
    assert problem.message == f"{tmp_path}/teams/link.yaml is already included (by {main}:1)"


def test_an_unreadable_included_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    main = write(tmp_path / "main.yaml", "include:\n  - secret.yaml\n")
    secret = write(tmp_path / "secret.yaml", ROUTES)
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == secret:
            raise PermissionError(13, "Permission denied")
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    sources = read_file(main)
    assert sources.problems == (
        Problem(str(main), 2, f"cannot read included file {secret}: Permission denied"),
    )
    assert [f.path for f in sources.files] == [str(main)]


def test_problems_in_included_files_point_into_them(tmp_path: Path) -> None:
    main = write(tmp_path / "main.yaml", "include: [team.yaml]\n")
    team = write(tmp_path / "team.yaml", "routes:\n  - {a: 1, a: 2}\n")
    assert [(p.file, p.line) for p in read_file(main).problems] == [(str(team), 2)]


def test_docstring_examples() -> None:
    result = doctest.testmod(source)
    assert result.attempted > 0
    assert result.failed == 0
