"""The anti-corruption layer: translate requests and responses between legacy and new.

This package is the runtime; the config side is ``strangler.config.translate_model``
(the spec) and ``strangler.config.validate_translate`` (YAML to spec, with problems).

Public surface:

- ``build_plan(spec) -> Plan``: once per route, when the snapshot is compiled;
- ``Plan.apply_request(msg)`` / ``Plan.apply_response(msg)``: per request;
  ``Plan.needs_request_body``, ``Plan.needs_response_body_for(status)``,
  ``Plan.max_body``, ``Plan.on_error``: what the pipeline must buffer;
- ``TranslateRequest`` / ``TranslateResponse``: the messages (hooks get these);
- ``TranslateError``: a step failed; ``status`` is the answer to give.

Config reference (under a route: ``translate: {...}``, ``translate: {use: NAME}`` or a
list of those; at the top level: ``translators: {NAME: {...}}``)::

    translate:
      max_body: 1MiB                 # body steps read at most this: over it 413 / 502
      on_error: fail                 # or passthrough: a failing body step or hook
                                     # sends the body on as it came
      request:                       # in order
        - path: {rewrite: "/customers/{id}"}    # or {prefix: {strip: /api/v1, add: /v2}},
                                                # {regex: {pattern, replace}}; {host: h}
        - query: {rename: {cust: customer_id}, drop: [debug], set: {v: "2"},
                  map: {status: {OPEN: open}}}
        - headers: {set: {X-Api-Version: "2"}, rename: {X-Cust: X-Customer},
                    remove: [X-Legacy], from_param: {X-Customer-Id: id}}
        - json: [{rename: {from: customer.name, to: name}}, {drop: [internal]}, ...]
        - hook: "mypkg.translators:fix_request"
      response:                      # in order
        - status: {map: {201: 200}}
        - headers: {rewrite_paths: {from: /customers, to: /api/v1/customer}}
        - json: [{unwrap: data}, {scale: {path: total, to: total_cents, multiply: 100}}]
        - error: {when: ">=400", body: {error: "$.message"}}
        - hook: {call: "mypkg.translators:fix_response", body: false}

JSON operations (``json:`` lists; paths like ``a.b``, ``lines[0]``, ``lines[*].x``, ``$.a``):

===========  ==============================================================================
rename/move  ``{from, to}``: the value moves (objects created on the way)
drop         ``[paths]``: removed (absent is fine)
set          ``{path, value}``: written
default      ``{path, value}``: written where absent or null
wrap         ``data``: the body becomes ``{"data": body}``
unwrap       ``data``: the body becomes ``body.data`` (absent: error)
map          ``{path, values: {OPEN: open}, other: error|keep}``
convert      ``{path, to: string|int|float|bool}``: exact or an error
date         ``{path, from, to}``: ``iso8601``, ``epoch``, ``epoch_ms`` or ``'%d/%m/%Y'``
scale        ``{path, to, multiply|divide, as: decimal_string|int|number, places}``: exact
             ``Decimal`` work (``1234`` ⇄ ``"12.34"``), never rounded: inexact is an error
each         ``{path, do: [ops]}``: ops on every element of an array
require      ``[paths]``: each must be present (else the step fails)
===========  ==============================================================================

Order (the onion): in one translator each list runs top to bottom. Several
translators (``translate: [{use: auth}, {use: customers-v2}]``) run their request
steps in list order and their response steps in reverse list order. Steps are
described in detail in each module: ``path``, ``query``, ``headers``, ``json_body``,
``status`` (``status`` and ``error``), ``hooks``; bodies in ``codec`` and ``base``.
"""

from strangler.translate.base import (
    JSON,
    Plan,
    RequestTransform,
    ResponseTransform,
    TranslateError,
    TranslateRequest,
    TranslateResponse,
)
from strangler.translate.registry import EMPTY_PLAN, build_plan

__all__ = [
    "EMPTY_PLAN",
    "JSON",
    "Plan",
    "RequestTransform",
    "ResponseTransform",
    "TranslateError",
    "TranslateRequest",
    "TranslateResponse",
    "build_plan",
]
