"""``strangler plan``: an offline replay of a traffic sample through two compiled
snapshots (the current config and a proposed one), to see which traffic a config
change moves before it is applied.

``traffic`` reads samples (strangler's access log, nginx/Apache combined logs, HAR,
``--record`` samples); ``replay`` compiles both configs with ``runtime`` and matches
each distinct request with the real router; ``report`` prints the result; ``wire``
and ``admin`` let ``--admin`` plan against what a running proxy serves; ``record``
is the sampler behind ``--record``. Uses ``config``, ``router``, ``runtime``;
never ``server``. Nothing is imported here, so the request path can import
``plan.record`` without pulling in the rest.
"""
