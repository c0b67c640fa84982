"""How every command that talks to a running proxy finds its admin API and token.

The admin address, first that applies:

1. ``--admin URL`` (``http://host:port``; the scheme may be left out);
2. the ``STRANGLER_ADMIN`` environment variable (same form);
3. ``--config FILE``: the ``admin.listen`` of that strangler config (a wildcard
   host, ``0.0.0.0``, ``::`` or none, means this machine's loopback address);
4. ``http://127.0.0.1:8081`` (the default ``admin.listen``).

The write token, first that applies: ``--token-file FILE``; the
``STRANGLER_ADMIN_TOKEN`` environment variable; with ``--config FILE``, that config's
``admin.token_file``, else the variable its ``admin.token_env`` names. The token is
never printed.

Only the main config file is read, and only its ``admin`` section, so a config with
problems elsewhere (in the middle of an incident) still tells the CLI where to go.
Standard library and PyYAML only.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import yaml

from strangler.config.values import BadValue, parse_listen

__all__ = [
    "ADMIN_ENV",
    "DEFAULT_ADMIN",
    "TOKEN_ENV",
    "AdminSetupError",
    "AdminTarget",
    "add_admin_arguments",
    "denied",
    "prepare",
    "resolve_admin",
    "resolve_token",
    "unreachable",
]

ADMIN_ENV: Final = "STRANGLER_ADMIN"
TOKEN_ENV: Final = "STRANGLER_ADMIN_TOKEN"
DEFAULT_ADMIN: Final = "http://127.0.0.1:8081"
HOW_TO_POINT: Final = f"give the address with --admin URL, {ADMIN_ENV}=URL or --config FILE"
HOW_TO_TOKEN: Final = f"set {TOKEN_ENV} or pass --token-file FILE"
_WILDCARDS: Final = {"", "0.0.0.0", "::"}


class AdminSetupError(Exception):
    """The admin address or token could not be worked out (message for humans)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminTarget:
    """The admin API's base URL and where it came from (for error messages)."""

    url: str
    source: str

    def unreachable(self, reason: object) -> str:
        """The one line for a connection failure: the address, its source, the fix."""
        return (
            f"cannot reach the admin API at {self.url} (from {self.source}): {reason}; "
            f"is strangler running? ({HOW_TO_POINT})"
        )


def unreachable(url: str, reason: object) -> str:
    """``AdminTarget.unreachable`` for a bare URL (the source unknown)."""
    return f"cannot reach the admin API at {url}: {reason}; is strangler running? ({HOW_TO_POINT})"


def prepare(args: argparse.Namespace) -> None:
    """Resolve a command's admin address once, before it runs (``cli.main``):
    ``args.admin`` becomes the URL, ``args.admin_target`` the ``AdminTarget``.
    Raises ``AdminSetupError``."""
    target = resolve_admin(args)
    args.admin, args.admin_target = target.url, target


def add_admin_arguments(p: argparse.ArgumentParser, *, write: bool = False) -> None:
    """``--admin`` and ``--config`` (and ``--token-file`` for commands that write)."""
    p.add_argument(
        "--admin",
        metavar="URL",
        help=f"the running proxy's admin API (default: ${ADMIN_ENV}, else the "
        f"admin.listen of --config, else {DEFAULT_ADMIN})",
    )
    p.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        type=Path,
        help="a strangler config: use its admin.listen (and its admin token settings)",
    )
    if write:
        p.add_argument(
            "--token-file",
            metavar="FILE",
            help=f"file holding the admin token (default: ${TOKEN_ENV}, else the "
            "admin.token_file / admin.token_env of --config)",
        )


def _url(text: str) -> str:
    url = text.strip()
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/")


def resolve_admin(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> AdminTarget:
    """Where the admin API is, by the order in the module docstring."""
    env = os.environ if environ is None else environ
    prepared = getattr(args, "admin_target", None)
    if isinstance(prepared, AdminTarget):
        return prepared
    given = getattr(args, "admin", None)
    if given:
        return AdminTarget(url=_url(given), source="--admin")
    if env.get(ADMIN_ENV, "").strip():
        return AdminTarget(url=_url(env[ADMIN_ENV]), source=f"${ADMIN_ENV}")
    config = getattr(args, "config", None)
    if config is not None:
        admin = _admin_section(Path(config))
        listen = admin.get("listen", "127.0.0.1:8081")
        try:
            addr = parse_listen(str(listen))
        except BadValue as e:
            hint = f" ({e.hint})" if e.hint else ""
            raise AdminSetupError(f"{config}: admin.listen: {e}{hint}") from None
        host = addr.host
        if host in _WILDCARDS:
            host = "::1" if host == "::" else "127.0.0.1"
        shown = f"[{host}]" if ":" in host else host
        return AdminTarget(url=f"http://{shown}:{addr.port}", source=f"admin.listen in {config}")
    return AdminTarget(url=DEFAULT_ADMIN, source="the default")


def resolve_token(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> str | None:
    """The write token, by the order in the module docstring; ``None`` when none is
    given (the admin API then refuses the write, and ``denied`` says how to give it)."""
    env = os.environ if environ is None else environ
    token_file = getattr(args, "token_file", None)
    if token_file:
        return _read_token(Path(token_file), "--token-file")
    if env.get(TOKEN_ENV, "").strip():
        return env[TOKEN_ENV].strip()
    config = getattr(args, "config", None)
    if config is not None:
        admin = _admin_section(Path(config))
        file = admin.get("token_file")
        if isinstance(file, str) and file:
            path = Path(file)
            if not path.is_absolute():  # as the proxy reads it: beside the config
                path = Path(config).parent / path
            return _read_token(path, f"admin.token_file in {config}")
        name = admin.get("token_env")
        if isinstance(name, str) and env.get(name, "").strip():
            return env[name].strip()
    return None


def denied(code: int, detail: str, *, token_given: bool) -> str | None:
    """The one line for a refused write (401/403), saying how to give the token;
    ``None`` for any other status."""
    if code == 401 and not token_given:
        return f"this needs the admin token: {HOW_TO_TOKEN}"
    if code == 401:
        return (
            f"the admin API refused the admin token: check {TOKEN_ENV}, --token-file or "
            "the admin.token_file of --config"
        )
    if code == 403:
        return f"the admin API refused the write: {detail.strip() or 'forbidden'}"
    return None


def _read_token(path: Path, what: str) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as e:
        raise AdminSetupError(
            f"cannot read the admin token ({what}): {e.strerror}: {path}"
        ) from None


def _admin_section(config: Path) -> Mapping[str, object]:
    """The ``admin`` mapping of the main config file ({} when there is none)."""
    try:
        text = config.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise AdminSetupError(f"cannot read --config {config}: {e.strerror}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        raise AdminSetupError(
            f"--config {config} is not valid YAML (strangler check {config} says where)"
        ) from None
    admin = doc.get("admin") if isinstance(doc, dict) else None
    if admin is None:
        return {}
    if not isinstance(admin, dict):
        raise AdminSetupError(f"{config}: admin must be a mapping, like admin: {{listen: ...}}")
    return admin
