"""The bundled demo: a legacy app, a new service that has taken part of it, and configs.

``strangler demo`` runs all three in one process: the legacy "Acme ERP, v1" JSON API
(``legacy.build_legacy_app``), the new billing service that already answers the
invoice endpoints (``newsvc.build_new_app``), and the proxy in front of them, routed
by ``demo.yaml`` and its included ``routes/demo.yaml``. Both services are seeded from
the same immutable records in ``data``, keep their state in objects created per app,
and mark every response with ``X-Served-By`` (``legacy`` or ``new-billing``), so it
is always visible who answered.

Files shipped with the package: ``demo.yaml`` (listen 127.0.0.1:8080, admin :8081,
upstreams legacy :8001 and billing :8002) and ``routes/demo.yaml``, a byte-identical
copy of the repository's ``routes/demo.yaml``, found relative to ``demo.yaml``.
"""
