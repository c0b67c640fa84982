"""``strangler translate`` on the sample files: output, exit codes, error messages."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from strangler.translate.cli import add_translate_command

DATA = Path(__file__).parent / "data" / "translate"
SPEC = str(DATA / "customers.yaml")


def run(*argv: str) -> int:
    """The command as ``strangler`` will register it."""
    parser = argparse.ArgumentParser(prog="strangler")
    sub = parser.add_subparsers(dest="command", required=True)
    add_translate_command(sub)
    args = parser.parse_args(["translate", *argv])
    code: int = args.func(args)
    return code


TRANSLATED_REQUEST = """\
POST /customers/7?customer_id=3&status=open&v=2
Host: legacy.example
Content-Type: application/json
X-Api-Version: 2
X-Customer: acme
X-Customer-Id: 7
Content-Length: 73

{"data":{"customer":{},"name":"Ada","currency":"EUR","total_cents":1230}}
"""

TRANSLATED_RESPONSE = """\
200 OK
Content-Type: application/json
Location: /api/v1/customers/7
Content-Length: 87

{"id":7,"status":"PAID","issued_on":"05/03/2024","lines":[{"qty":"2"}],"total":"12.30"}
"""


def test_request(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--spec", SPEC, "--request", str(DATA / "request.http")) == 0
    assert capsys.readouterr().out == TRANSLATED_REQUEST


def test_request_and_response(capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        "--spec", SPEC, "--request", str(DATA / "request.http"),
        "--response", str(DATA / "response.http"),
    )  # fmt: skip
    assert code == 0
    assert capsys.readouterr().out == TRANSLATED_REQUEST + "\n" + TRANSLATED_RESPONSE


def test_json_response_through_the_error_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("--spec", SPEC, "--response", str(DATA / "response.json")) == 0
    assert capsys.readouterr().out == (
        "404 Not Found\n"
        "Content-Type: application/json; charset=utf-8\n"
        "Content-Length: 42\n"
        "\n"
        '{"error":"no such customer","code":"E404"}\n'
    )


def test_a_failing_translation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    resp = tmp_path / "r.http"
    resp.write_text(
        '200\nContent-Type: application/json\n\n{"data": {"id": 1, "status": "void"}}\n'
    )
    assert run("--spec", SPEC, "--response", str(resp)) == 1
    assert capsys.readouterr().err == (
        "strangler translate: response.json[1] map status: value 'void' not in the map "
        "(the proxy answers 502)\n"
    )


def test_a_route_of_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "strangler.yaml"
    config.write_text(
        "upstreams: {legacy: http://127.0.0.1:1, crm: http://127.0.0.1:2}\n"
        "routes:\n"
        "  - name: customers\n"
        "    owner: team-crm\n"
        "    match: {path: '/api/v1/customers/{id:int}'}\n"
        "    to: crm\n"
    )
    spec = tmp_path / "spec.yaml"  # no path_template: the route's match.path gives it
    spec.write_text("translate: {request: [{path: {rewrite: '/customers/{id}'}}]}\n")
    request = tmp_path / "req.http"
    request.write_text("GET /api/v1/customers/42?x=1\n")
    assert run("--config", str(config), "--route", "customers", "--spec", str(spec),
               "--request", str(request)) == 0  # fmt: skip
    assert capsys.readouterr().out == "GET /customers/42?x=1\n\n"

    assert run("--config", str(config), "--route", "customers", "--request", str(request)) == 1
    assert capsys.readouterr().err == f"{config}:3: route 'customers' has no translate: section\n"

    assert run("--config", str(config), "--route", "customer", "--request", str(request)) == 1
    assert capsys.readouterr().err == (
        f"{config}: no route named 'customer' (hint: did you mean 'customers'?)\n"
    )


def test_a_spec_with_problems(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "path_template: /c/{id}\n"
        "translate:\n"
        "  request:\n"
        "    - json: [{rename: {from: a, to: b}}, {requre: [id]}]\n"
        "  respons: []\n"
    )
    assert run("--spec", str(spec), "--request", str(DATA / "request.http")) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{spec}:4: translate.request[0].json[1]: unknown JSON operation 'requre' (hint: did "
        "you mean 'require'?; operations: rename, move, drop, set, default, wrap, unwrap, map, "
        "convert, date, scale, each, require)",
        f"{spec}:5: unknown key 'respons' in translate (hint: did you mean 'response'?)",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("GET\n", "line 1: expected 'METHOD /path?query', got 'GET'"),
        ("GET /x\nno colon here\n", "line 2: expected 'Name: value', got 'no colon here'"),
        ('{"method": "GET"}', "a JSON request needs 'method' and 'target' strings"),
        ("{nope", "the request file starts with '{' but is not JSON: Expecting property name "
                  "enclosed in double quotes: line 1 column 2 (char 1)"),
        ("GET /other/7\n", "the request path '/other/7' does not match the route's template "
                           "'/api/v1/customers/{id:int}'"),
    ],
)  # fmt: skip
def test_bad_message_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, message: str
) -> None:
    path = tmp_path / "m.http"
    path.write_text(content)
    assert run("--spec", SPEC, "--request", str(path)) == 1
    assert capsys.readouterr().err == f"strangler translate: {message}\n"


def test_json_request_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.json"
    path.write_text(
        '{"method": "PUT", "target": "/api/v1/customers/5", '
        '"headers": [["X-Cust", "a"]], "body": {"customer": {"name": "Bo"}, "total": 1}}'
    )
    assert run("--spec", SPEC, "--request", str(path)) == 0
    assert capsys.readouterr().out == (
        "PUT /customers/5?v=2\n"
        "Content-Type: application/json\n"
        "X-Api-Version: 2\n"
        "X-Customer: a\n"
        "X-Customer-Id: 5\n"
        "Content-Length: 71\n"
        "\n"
        '{"data":{"customer":{},"name":"Bo","currency":"EUR","total_cents":100}}\n'
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--spec", SPEC], "give --request FILE, --response FILE or both"),
        (["--request", "x"], "give --spec FILE, or --config FILE with --route NAME"),
        (["--route", "r", "--spec", SPEC, "--request", "x"], "--route needs --config"),
    ],
)
def test_usage(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(*argv) == 2
    assert capsys.readouterr().err == f"strangler translate: {message}\n"
