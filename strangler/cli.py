"""The ``strangler`` command: serve | check | demo.

``main(argv)`` returns the exit code: 0 success, 1 a problem the user can fix (a bad
config), 2 a usage error (argparse).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from strangler import __version__


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="strangler",
        description="A strangler-fig migration proxy: route endpoints from a legacy app "
        "to new services one at a time.",
    )
    p.add_argument("--version", action="version", version=f"strangler {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the proxy",
        description="Run the proxy. Either --config FILE, or --legacy URL to proxy "
        "everything to one legacy app (no routes).",
    )
    src = serve.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", "-c", type=Path, help="the strangler.yaml to serve")
    src.add_argument("--legacy", metavar="URL", help="zero-config: proxy everything to URL")
    serve.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="proxy address (overrides the config's listen address; its tls stays)",
    )
    serve.add_argument(
        "--admin-listen", metavar="HOST:PORT", help="admin address (default 127.0.0.1:8081)"
    )
    serve.add_argument(
        "--workers", "-w", type=int, default=1, help="processes sharing the port (default 1)"
    )
    serve.add_argument(
        "--access-log",
        choices=("json", "text", "off"),
        help="access log format (overrides the config)",
    )
    serve.add_argument(
        "--state-dir",
        type=Path,
        help="where runtime state (progress, overrides) is kept "
        "(default: .strangler beside the config, or in the working directory)",
    )
    serve.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))

    check = sub.add_parser(
        "check",
        help="validate a config and its included route files",
        description="Validate a config and every file it includes. Prints each problem "
        "with file, line and a fix hint. Exit 0 when valid, 1 otherwise.",
    )
    check.add_argument("config", type=Path)
    check.add_argument("--json", action="store_true", help="machine-readable report")

    demo = sub.add_parser(
        "demo",
        help="run a sample legacy app, a new service and the proxy in front of them",
        description="Start the bundled sample legacy app (127.0.0.1:8001), a sample new "
        "service (127.0.0.1:8002) and the proxy (127.0.0.1:8080, admin 8081) with "
        "./routes/demo.yaml when the working directory has one (a checkout), else the "
        "packaged copy. Ctrl-C stops all three.",
    )
    for flag, default, what in (
        ("--port", 8080, "the proxy's port"),
        ("--admin-port", 8081, "the admin API's port (status page, metrics)"),
        ("--legacy-port", 8001, "the sample legacy app's port"),
        ("--billing-port", 8002, "the sample billing service's port"),
    ):
        demo.add_argument(flag, type=int, default=default, help=f"{what} (default {default})")
    demo.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    demo.add_argument(
        "--no-traffic",
        action="store_true",
        help="send no demo traffic (by default 5 requests a second keep the route on "
        "autopilot moving)",
    )

    from strangler.cli_release import add_release_commands
    from strangler.cli_schema import add_schema_command
    from strangler.cli_status import add_status_commands
    from strangler.migrate.cli import add_migrate_command
    from strangler.plan.cli import add_plan_command
    from strangler.shadow.cli import add_diff_command
    from strangler.translate.cli import add_translate_command

    add_status_commands(sub)
    add_release_commands(sub)
    add_diff_command(sub)
    add_translate_command(sub)
    add_migrate_command(sub)
    add_plan_command(sub)
    add_schema_command(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (strangler check | head -1): no traceback. Python would
        # complain again flushing stdout at exit, so stdout becomes /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a process killed by SIGPIPE: 128 + 13


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if hasattr(args, "admin"):  # a command that talks to a running proxy's admin API
        from strangler.cli_admin import AdminSetupError, prepare

        try:
            prepare(args)
        except AdminSetupError as e:
            print(f"strangler: {e}", file=sys.stderr)
            return 1
    if hasattr(args, "func"):  # subcommands that register their own handler
        code: int = args.func(args)
        return code
    if hasattr(args, "handler"):
        handled: int = args.handler(args)
        return handled
    if args.command == "check":
        return _check(args)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo":
        from strangler.demo.run import DemoPorts, run_demo
        from strangler.server import setup_logging

        setup_logging(args.log_level)
        ports = DemoPorts(
            proxy=args.port,
            admin=args.admin_port,
            legacy=args.legacy_port,
            billing=args.billing_port,
        )
        return run_demo(ports, traffic=not args.no_traffic)
    raise AssertionError(args.command)  # argparse makes the command required


def _check(args: argparse.Namespace) -> int:
    from strangler.config.check import format_json, format_text, run_check

    report = run_check(args.config)
    print(format_json(report) if args.json else format_text(report))
    return 0 if report.ok else 1


def _serve(args: argparse.Namespace) -> int:
    import dataclasses

    from strangler.admin.auth import AdminExposed
    from strangler.config import legacy_only, load_config
    from strangler.config.model import AccessLog, Admin
    from strangler.config.validate import parse_listen
    from strangler.errors import ConfigError
    from strangler.release.state import StateFileError
    from strangler.server import ServeOptions, run, setup_logging

    setup_logging(args.log_level)
    try:
        config = load_config(args.config) if args.config else legacy_only(args.legacy)
        if args.listen:
            address = parse_listen(args.listen)  # the address only: listen.tls stays
            listen = dataclasses.replace(config.listen, host=address.host, port=address.port)
            config = dataclasses.replace(config, listen=listen)
        if args.admin_listen:
            admin = Admin(listen=parse_listen(args.admin_listen))
            config = dataclasses.replace(
                config, admin=dataclasses.replace(config.admin, listen=admin.listen)
            )
        if args.access_log:
            config = dataclasses.replace(config, access_log=AccessLog(format=args.access_log))
    except ConfigError as e:
        print(f"strangler: the config has problems, not starting:\n{e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"strangler: {e}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("strangler: --workers must be at least 1", file=sys.stderr)
        return 2
    options = ServeOptions(config_path=args.config, state_dir=args.state_dir, handle_signals=True)
    if args.config:  # progress learned in zero-config mode survives the switch to a file
        from strangler.progress.state import carry_over_discovery

        carry_over_discovery(args.state_dir or Path(config.state.dir))
    try:
        return run(config, options, workers=args.workers)
    except StateFileError as e:
        print(f"strangler: cannot read the release state, not starting: {e}", file=sys.stderr)
        return 1
    except AdminExposed as e:
        print(f"strangler: not starting: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"strangler: cannot listen: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
