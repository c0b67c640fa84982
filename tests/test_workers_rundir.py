"""The supervisor's runtime directory (``strangler.workers``): the accepted config
survives a round trip, and a replacement worker picks the right config (the files
now; with a broken file the last accepted; the start-up one last of all)."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from types import MappingProxyType

import pytest

from strangler.config import load_config
from strangler.workers import RunDir, respawn_config

CONFIG = """
upstreams:
  legacy: http://127.0.0.1:1
  billing: http://127.0.0.1:2
routes:
  - {{name: r, owner: t, match: {{path_prefix: /r}}, to: {to}}}
"""


@pytest.fixture
def run_dir(tmp_path: Path) -> RunDir:
    return RunDir(path=tmp_path / "run").create()


def test_the_accepted_config_round_trips(tmp_path: Path, run_dir: RunDir) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(CONFIG.format(to="billing"))
    config = load_config(cfg)
    run_dir.save_accepted(config)
    assert run_dir.load_accepted() == config
    run_dir.accepted.write_bytes(b"not a pickle")
    assert run_dir.load_accepted() is None


def test_a_replacement_loads_the_files_as_they_are_now(tmp_path: Path, run_dir: RunDir) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(CONFIG.format(to="legacy"))
    started = load_config(cfg)
    cfg.write_text(CONFIG.format(to="billing"))
    config = respawn_config(cfg, run_dir, started)
    assert config.routes[0].to == "billing"
    assert run_dir.load_accepted() == config  # recorded for the next replacement


def test_with_a_broken_file_a_replacement_serves_the_last_accepted(
    tmp_path: Path, run_dir: RunDir
) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(CONFIG.format(to="legacy"))
    started = load_config(cfg)
    cfg.write_text(CONFIG.format(to="billing"))
    accepted = load_config(cfg)
    run_dir.save_accepted(accepted)
    cfg.write_text(CONFIG.format(to="nowhere"))  # an unknown upstream: rejected
    assert respawn_config(cfg, run_dir, started) == accepted
    run_dir.accepted.unlink()  # nothing accepted to read: the start-up config
    assert respawn_config(cfg, run_dir, started) == started
    assert respawn_config(None, run_dir, started) is started  # fixed config


def test_a_config_that_cannot_be_recorded_keeps_the_one_before(
    tmp_path: Path, run_dir: RunDir, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tmp_path / "s.yaml"
    cfg.write_text(CONFIG.format(to="billing"))
    config = load_config(cfg)
    assert run_dir.save_accepted(config)
    # Something in the config that does not pickle (as a hook object might not).
    odd = dataclasses.replace(config, upstreams=MappingProxyType({"x": threading.Lock()}))  # type: ignore[dict-item]
    assert not run_dir.save_accepted(odd)
    assert run_dir.load_accepted() == config
    assert "cannot record config version" in caplog.text
