"""Path templates: parsing, converters, static prefix, and the messages for bad ones."""

from __future__ import annotations

import doctest
import uuid

import pytest

import strangler.router.template
from strangler.config.model import EMPTY_MAP
from strangler.router.template import Param, parse_template

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_plain_path_is_static_and_matches_only_itself() -> None:
    t = parse_template("/health")
    assert t.is_static
    assert t.pattern is None
    assert t.names == ()
    assert t.segments == ("health",)
    assert t.static_prefix == ("health",)
    assert t.match("/health") is EMPTY_MAP
    assert t.match("/health/") is None
    assert t.match("/healthz") is None
    assert t.match("/HEALTH") is None


def test_root_template() -> None:
    t = parse_template("/")
    assert t.is_static
    assert t.segments == ("",)
    assert t.match("/") is EMPTY_MAP
    assert t.match("/x") is None


def test_str_parameter_takes_one_non_empty_segment() -> None:
    t = parse_template("/users/{id}")
    assert not t.is_static
    assert t.names == ("id",)
    assert t.segments == ("users", Param("id", "str"))
    assert t.static_prefix == ("users",)
    assert t.match("/users/42") == {"id": "42"}
    assert t.match("/users/al ice") == {"id": "al ice"}
    assert t.match("/users/") is None
    assert t.match("/users") is None
    assert t.match("/users/42/") is None
    assert t.match("/users/42/x") is None
    assert t.match("/people/42") is None


@pytest.mark.parametrize(
    ("segment", "ok"),
    [
        ("0", True),
        ("0042", True),
        ("1234567890", True),
        ("", False),
        ("-1", False),
        ("4a", False),
        ("1.5", False),
        ("٣", False),  # Arabic-Indic digit: str.isdigit() says yes, we say no
        ("²", False),
    ],
)
def test_int_converter_is_ascii_digits_only(segment: str, ok: bool) -> None:
    t = parse_template("/n/{x:int}")
    assert (t.match(f"/n/{segment}") == {"x": segment}) is ok
    assert (t.match(f"/n/{segment}") is None) is not ok


@pytest.mark.parametrize(
    ("segment", "ok"),
    [
        (UUID, True),
        (UUID.upper(), True),
        (str(uuid.UUID(int=0)), True),
        (UUID.replace("-", ""), False),
        (UUID[:-1], False),
        (UUID + "0", False),
        ("{" + UUID + "}", False),
        (UUID.replace("0", "g"), False),
    ],
)
def test_uuid_converter(segment: str, ok: bool) -> None:
    t = parse_template("/o/{oid:uuid}")
    assert (t.match(f"/o/{segment}") is not None) is ok


def test_path_converter_takes_the_non_empty_rest() -> None:
    t = parse_template("/files/{rest:path}")
    assert t.has_tail
    assert t.static_prefix == ("files",)
    assert t.match("/files/a") == {"rest": "a"}
    assert t.match("/files/a/b/c.txt") == {"rest": "a/b/c.txt"}
    assert t.match("/files/a/") == {"rest": "a/"}
    assert t.match("/files//x") == {"rest": "/x"}
    assert t.match("/files/line\nbreak") == {"rest": "line\nbreak"}
    assert t.match("/files/") is None
    assert t.match("/files") is None
    assert t.match("/filesx/a") is None


def test_several_parameters_come_back_as_strings() -> None:
    t = parse_template("/users/{id:int}/orders/{oid:uuid}")
    assert t.names == ("id", "oid")
    assert t.static_prefix == ("users",)
    assert not t.has_tail
    assert t.match(f"/users/7/orders/{UUID}") == {"id": "7", "oid": UUID}
    assert t.match(f"/users/x/orders/{UUID}") is None
    assert t.match("/users/7/orders/8") is None
    assert t.match(f"/users/7/items/{UUID}") is None


def test_static_prefix_stops_at_the_first_parameter() -> None:
    assert parse_template("/a/b/{c}/d/{e}").static_prefix == ("a", "b")
    assert parse_template("/{tenant}/users").static_prefix == ()
    assert parse_template("/a//{c}").static_prefix == ("a", "")


def test_literal_segments_are_not_regex() -> None:
    t = parse_template("/v1.0/a+b/(x)/{id}")
    assert t.match("/v1.0/a+b/(x)/1") == {"id": "1"}
    assert t.match("/v1x0/a+b/(x)/1") is None
    assert t.match("/v1.0/aab/(x)/1") is None


def test_unicode_literals_and_values() -> None:
    t = parse_template("/café/{name}")
    assert t.static_prefix == ("café",)
    assert t.match("/café/naïve") == {"name": "naïve"}
    assert t.match("/cafe/naive") is None
    assert t.match("/café/日本") == {"name": "日本"}


def test_literal_text_is_percent_decoded_like_the_request_path() -> None:
    t = parse_template("/caf%C3%A9/a%20b/{name}")
    assert t.text == "/caf%C3%A9/a%20b/{name}"
    assert t.segments == ("café", "a b", Param("name", "str"))
    assert t.match("/café/a b/x") == {"name": "x"}
    assert t.match("/caf%C3%A9/a%20b/x") is None  # requests arrive decoded
    assert parse_template("/100%25").exact == "/100%"
    assert parse_template("/bad%zz").exact == "/bad%zz"  # not an escape: kept
    assert parse_template("/a+b").exact == "/a+b"  # "+" is not a space in a path


def test_an_encoded_slash_splits_segments_as_it_does_in_requests() -> None:
    t = parse_template("/a%2Fb/{x}")
    assert t.segments == ("a", "b", Param("x", "str"))
    assert t.static_prefix == ("a", "b")
    assert t.match("/a/b/1") == {"x": "1"}
    assert parse_template("/a%2Fb").exact == "/a/b"


def test_exact_is_the_decoded_path_of_a_static_template() -> None:
    assert parse_template("/health").exact == "/health"
    assert parse_template("/users/{id}").exact is None


def test_template_is_immutable_and_hashable() -> None:
    assert parse_template("/a/{b}") == parse_template("/a/{b}")
    assert hash(parse_template("/a/{b}")) == hash(parse_template("/a/{b}"))


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("users/{id}", "must start with '/'"),
        ("", "must start with '/'"),
        ("/users/{id", r"unbalanced braces in segment '\{id'"),
        ("/users/id}", r"unbalanced braces in segment 'id\}'"),
        ("/users/}id{", r"unbalanced braces in segment '\}id\{'"),
        ("/users/{{id}}", "holds more than one parameter"),
        ("/users/{a}{b}", "holds more than one parameter"),
        ("/report.{fmt}", "mixes a parameter with other text; a parameter must fill the whole"),
        ("/users/{id}x", "mixes a parameter with other text"),
        ("/users/{}", "bad parameter name an empty name"),
        ("/users/{:int}", "bad parameter name an empty name"),
        ("/users/{1id}", "bad parameter name '1id'"),
        ("/users/{ id }", "bad parameter name ' id '"),
        ("/users/{id-x}", "bad parameter name 'id-x'"),
        ("/users/{id:float}", "unknown converter 'float' for parameter 'id' .use one of: str, int"),
        ("/users/{id:}", "unknown converter '' for parameter 'id'"),
        ("/users/{id:INT}", "unknown converter 'INT'"),
        ("/a/{id}/b/{id:int}", "parameter name 'id' is used twice"),
        ("/files/{rest:path}/x", r"'\{rest:path\}' must be the last segment"),
        ("/{a:path}/{b:path}", r"'\{a:path\}' must be the last segment"),
    ],
)
def test_malformed_templates_raise_value_error_with_a_human_message(
    template: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_template(template)
    assert str(info.value).startswith(f"path template '{template}': ")


def test_docstring_examples() -> None:
    result = doctest.testmod(strangler.router.template)
    assert result.attempted > 0
    assert result.failed == 0
