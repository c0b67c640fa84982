"""``strangler schema [--routes]``: the config's JSON Schema, for editors.

The schema is generated from the model ``strangler check`` validates with
(``strangler.config.described``), so the editor and the checker agree; the rules a
schema cannot say (a route's upstream exists, shadowed routes) stay ``check``'s.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_schema_command"]


def add_schema_command(sub: Any) -> None:
    schema = sub.add_parser(
        "schema",
        help="print the JSON Schema of the config (or of a route file) for editors",
        description="Print the JSON Schema (draft 2020-12) of strangler.yaml, or with "
        "--routes of an included route file, generated from the model that strangler "
        "check validates with. Save it and point your editor's YAML language server at "
        "it: '# yaml-language-server: $schema=strangler.schema.json'.",
    )
    schema.add_argument(
        "--routes", action="store_true", help="the schema of a route file (routes/*.yaml)"
    )
    schema.set_defaults(func=_schema)


def _schema(args: argparse.Namespace) -> int:
    from strangler.config.described import main_schema, routes_schema

    print(json.dumps(routes_schema() if args.routes else main_schema(), indent=2))
    return 0
