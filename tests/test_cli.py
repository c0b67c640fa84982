"""The ``strangler`` command's own behaviour: exit codes and output formats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from strangler import __version__
from strangler.cli import main
from strangler.demo.run import DEMO_CONFIG


def test_check_valid_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(DEMO_CONFIG)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{DEMO_CONFIG}: ok (version ")
    assert "3 routes" in out


def test_check_reports_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "upstreams:\n"
        "  legacy: http://127.0.0.1:1\n"
        "routes:\n"
        "  - {name: a, owner: t, match: {path_prefix: /a}, to: legacy}\n"
        "  - {name: b, owner: t, match: {path: /a/b}, to: biling}\n"
        "  - {name: a, owner: t, match: {pth: /c}, to: legacy}\n"
    )
    assert main(["check", str(cfg)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0]
        == f"{cfg}:5: route 'b' sends to unknown upstream 'biling' (hint: known upstreams: legacy)"
    )
    assert lines[1].startswith(f"{cfg}:6: duplicate route name 'a' (first defined at {cfg}:4)")
    assert lines[2] == f"{cfg}:6: unknown key 'pth' in route 'a' match (hint: did you mean 'path'?)"
    assert lines[3] == f"{cfg}: 3 problems"


def test_check_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text("upstreams:\n  legacy: ftp://x\n")
    assert main(["check", "--json", str(cfg)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert report["problems"][0]["line"] == 2
    assert report["problems"][0]["file"] == str(cfg)


def test_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(tmp_path / "nope.yaml")]) == 1
    assert "nope.yaml" in capsys.readouterr().out


def test_version_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"strangler {__version__}"
    with pytest.raises(SystemExit) as e:
        main(["serve"])  # neither --config nor --legacy
    assert e.value.code == 2


def test_serve_rejects_bad_legacy_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--legacy", "not a url"]) == 1
    err = capsys.readouterr().err
    assert "not starting" in err
    assert "Traceback" not in err


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path) -> None:
    """``strangler check bad.yaml | head -1``: the pipe's reader is gone before strangler
    writes (its end is closed first), and strangler exits as ``head`` expects: quietly."""
    config = tmp_path / "bad.yaml"
    config.write_text("listen: nowhere\nlimits: {max_headers: 0}\n")
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "strangler", "check", str(config)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr
    assert (done.returncode, done.stderr) == (141, "")
