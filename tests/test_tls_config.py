"""The TLS config keys: ``listen`` (both forms), ``upstreams.NAME.tls``, and what
``strangler check`` says about them (problems with file:line and hints, the
``verify: false`` warning), with real PEM files made by a test CA."""

from __future__ import annotations

import doctest
import ssl
from pathlib import Path

import pytest
import trustme

from strangler.cli import main
from strangler.config import tls_files
from strangler.config.check import format_json, format_text, run_check
from strangler.config.model import Listen
from strangler.errors import ConfigError
from strangler.tls import upstream_ssl
from tests.tls_support import Pems, write_ca, write_leaf


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def pems(ca: trustme.CA, tmp_path: Path) -> Pems:
    return write_leaf(ca, tmp_path, "proxy", "127.0.0.1", "localhost")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "strangler.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    report = run_check(path)
    assert not report.ok
    return [str(p) for p in report.problems]


def test_the_string_form_still_works(tmp_path: Path) -> None:
    report = run_check(write(tmp_path, "listen: 0.0.0.0:8080\nupstreams: {legacy: http://l:1}\n"))
    assert report.ok, report.problems


def test_the_mapping_form_with_tls(tmp_path: Path, pems: Pems, ca: trustme.CA) -> None:
    api = write_leaf(ca, tmp_path, "api", "api.example.com")
    # relative paths resolve against the config file's directory
    path = write(
        tmp_path,
        "listen:\n"
        "  address: 127.0.0.1:8443\n"
        "  tls:\n"
        "    cert: proxy.pem\n"
        "    key: proxy.key\n"
        "    min_version: 1.3\n"
        "    sni:\n"
        "      API.example.com: {cert: api.pem, key: api.key}\n"
        "  redirect_http: 127.0.0.1:8080\n"
        "upstreams: {legacy: http://l:1}\n",
    )
    from strangler.config import load_config

    config = load_config(path)
    listen = config.listen
    assert (listen.host, listen.port) == ("127.0.0.1", 8443)
    assert listen.redirect_http == Listen(host="127.0.0.1", port=8080)
    assert listen.tls is not None
    assert listen.tls.cert == str(pems.cert)
    assert listen.tls.key == str(pems.key)
    assert listen.tls.min_version == "1.3"
    assert [(h, p.cert) for h, p in listen.tls.sni.items()] == [("API.example.com", str(api.cert))]


def test_a_cert_without_its_key(tmp_path: Path, pems: Pems) -> None:
    path = write(
        tmp_path,
        f"listen:\n  address: 127.0.0.1:8443\n  tls:\n    cert: {pems.cert}\n"
        "upstreams: {legacy: http://l:1}\n",
    )
    assert problems(path) == [
        f"{path}:4: listen.tls is missing required key 'key' "
        "(hint: for example tls: {cert: a.pem, key: a.key, sni: "
        "{api.example.com: {cert: b.pem, key: b.key}}})"
    ]


def test_missing_and_unreadable_files_are_reported_at_their_line(
    tmp_path: Path, pems: Pems
) -> None:
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    path = write(
        tmp_path,
        "listen:\n"
        "  address: 127.0.0.1:8443\n"
        "  tls:\n"
        "    cert: garbage.pem\n"
        "    key: nowhere.key\n"
        "upstreams: {legacy: http://l:1}\n",
    )
    found = problems(path)
    assert len(found) == 2
    assert found[0].startswith(f"{path}:4: listen.tls.cert: ")
    assert "does not hold a certificate in PEM form" in found[0]
    assert found[1].startswith(f"{path}:5: listen.tls.key: file ")
    assert "nowhere.key' does not exist" in found[1]


def test_a_key_that_does_not_fit_its_certificate(
    tmp_path: Path, pems: Pems, ca: trustme.CA
) -> None:
    other = write_leaf(ca, tmp_path, "other", "other.example")
    path = write(
        tmp_path,
        f"listen:\n  address: 127.0.0.1:8443\n  tls: {{cert: {pems.cert}, key: {other.key}}}\n"
        "upstreams: {legacy: http://l:1}\n",
    )
    [found] = problems(path)
    assert found.startswith(f"{path}:3: listen.tls.key: cannot use certificate ")
    assert "key values mismatch" in found
    assert "(hint: the key must be the one the certificate was issued for)" in found


def test_an_encrypted_key_is_refused_without_asking_for_a_passphrase(
    tmp_path: Path, pems: Pems
) -> None:
    key = tmp_path / "enc.key"
    key.write_text(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    path = write(
        tmp_path,
        f"listen: {{address: 127.0.0.1:8443, tls: {{cert: {pems.cert}, key: {key}}}}}\n"
        "upstreams: {legacy: http://l:1}\n",
    )
    [found] = problems(path)
    assert "is encrypted" in found


def test_listen_keys_and_values(tmp_path: Path, pems: Pems) -> None:
    path = write(
        tmp_path,
        "listen:\n"
        "  adress: 127.0.0.1:8443\n"
        "  tls: {cert: proxy.pem, key: proxy.key, min_version: '1.1', sni: [a]}\n"
        "upstreams: {legacy: http://l:1}\n",
    )
    found = problems(path)
    assert f"{path}:2: unknown key 'adress' in listen (hint: did you mean 'address'?)" in found
    assert any(
        p.startswith(f"{path}:3: listen.tls.min_version must be one of 1.2, 1.3") for p in found
    )
    assert any(p.startswith(f"{path}:3: listen.tls.sni must be a mapping") for p in found)


def test_redirect_needs_tls(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "listen: {address: 127.0.0.1:8443, redirect_http: 127.0.0.1:8080}\n"
        "upstreams: {legacy: http://l:1}\n",
    )
    [found] = problems(path)
    assert found.startswith(f"{path}:1: listen.redirect_http needs listen.tls")


def test_upstream_tls(tmp_path: Path, pems: Pems, ca: trustme.CA) -> None:
    ca_file = write_ca(ca, tmp_path)
    path = write(
        tmp_path,
        "upstreams:\n"
        "  legacy: http://l:1\n"
        "  billing:\n"
        "    url: https://billing.internal:9443\n"
        "    tls: {ca: ca.pem, cert: proxy.pem, key: proxy.key, server_name: Billing.svc}\n",
    )
    from strangler.config import load_config

    tls = load_config(path).upstreams["billing"].tls
    assert tls.ca == str(ca_file)
    assert (tls.cert, tls.key) == (str(pems.cert), str(pems.key))
    assert tls.server_name == "Billing.svc"
    assert tls.verify is True
    built = upstream_ssl(load_config(path).upstreams["billing"])
    assert built.server_hostname == "Billing.svc"
    assert built.context is not None
    assert built.context.verify_mode is ssl.CERT_REQUIRED
    assert built.context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_upstream_tls_problems(tmp_path: Path, pems: Pems) -> None:
    path = write(
        tmp_path,
        "upstreams:\n"
        "  legacy:\n"
        "    url: http://l:1\n"
        "    tls: {verify: false}\n"
        "  billing:\n"
        "    url: https://b:1\n"
        "    tls: {key: proxy.key, verify: 'no', ca: missing.pem}\n",
    )
    found = problems(path)
    assert found[0] == (
        f"{path}:4: upstreams.legacy has tls but its url 'http://l:1' is not https:// "
        "(hint: use an https:// URL, or remove tls)"
    )
    assert any(p.startswith(f"{path}:7: upstreams.billing.tls.ca: file ") for p in found)
    assert f"{path}:7: upstreams.billing.tls.verify must be true or false, got 'no'" in found
    assert any("upstreams.billing.tls has key but no cert" in p for p in found)


def test_verify_false_is_a_warning_that_does_not_fail_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "upstreams:\n"
        "  legacy: http://l:1\n"
        "  billing:\n"
        "    url: https://b:1\n"
        "    tls:\n"
        "      verify: false\n",
    )
    report = run_check(path)
    assert report.ok
    assert [(w.line, w.message) for w in report.warnings] == [
        (
            6,
            "upstream 'billing' does not verify its TLS certificate (verify: false): "
            "anyone on the path can impersonate it",
        )
    ]
    assert main(["check", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{path}:6: warning: upstream 'billing' does not verify")
    assert out[1].endswith("1 file, 1 warning)")
    assert '"warnings": [' in format_json(report)
    assert format_text(report).splitlines() == out


def test_check_on_a_bad_tls_config_prints_no_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.pem").write_bytes(
        b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    )
    (tmp_path / "x.key").write_bytes(
        b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"
    )
    path = write(
        tmp_path,
        "listen: {address: 127.0.0.1:8443, tls: {cert: x.pem, key: x.key}}\n"
        "upstreams: {legacy: http://l:1}\n",
    )
    assert main(["check", str(path)]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert f"{path}:1: listen.tls.cert: cannot load a certificate from " in captured.out
    assert "its PEM block does not decode" in captured.out


def test_load_errors_are_config_errors(tmp_path: Path) -> None:
    from strangler.config import load_config_text

    with pytest.raises(ConfigError) as err:
        load_config_text(
            f"listen: {{address: 127.0.0.1:1, tls: {{cert: {tmp_path}/a, key: {tmp_path}/b}}}}\n"
            "upstreams: {legacy: http://l:1}\n"
        )
    assert len(err.value.problems) == 2


def test_docstring_examples() -> None:
    assert doctest.testmod(tls_files).failed == 0


def test_every_pair_that_does_not_fit_is_reported(
    tmp_path: Path, pems: Pems, ca: trustme.CA
) -> None:
    write_leaf(ca, tmp_path, "other", "other.example")
    path = write(
        tmp_path,
        "listen:\n"
        "  address: 127.0.0.1:8443\n"
        "  tls:\n"
        "    cert: proxy.pem\n"
        "    key: other.key\n"
        "    sni:\n"
        "      a.example: {cert: other.pem, key: proxy.key}\n"
        "      b.example: {cert: other.pem}\n"
        "upstreams: {legacy: http://l:1}\n",
    )
    found = problems(path)
    assert [p.split(": ")[0:2] for p in found] == [
        [f"{path}:5", "listen.tls.key"],
        [f"{path}:7", "listen.tls.sni.a.example.key"],
        [f"{path}:8", "listen.tls.sni.b.example is missing required key 'key' (hint"],
    ]
    assert "key values mismatch" in found[1]


def test_a_file_path_with_a_nul_byte_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    """open() raises ValueError, not OSError, for a NUL in the path (found by fuzzing)."""
    path = write(
        tmp_path,
        'listen:\n  address: 127.0.0.1:8443\n  tls: {cert: "a\\0b", key: k.pem}\n'
        "upstreams: {legacy: http://l:1}\n",
    )
    found = problems(path)
    assert found[0].startswith(f"{path}:3: listen.tls.cert: ")
    assert "is not a file path" in found[0]
