"""Route matching: compile ``MatchSpec``s once, then find the first match per request.

* ``Router.compile(entries, default)`` / ``Router.match(request)``: the hot path.
* ``parse_template(text)``: parse or reject a path template (the validator's entry point).
* ``shadowed(specs)``: which routes can never match because an earlier one always wins.
"""

from strangler.router.analysis import shadowed
from strangler.router.matcher import RequestLike, Router
from strangler.router.template import Template, parse_template

__all__ = ["RequestLike", "Router", "Template", "parse_template", "shadowed"]
