"""The upstream client: pooled connections per upstream, streaming both ways, hop-by-hop
and forwarded headers, timeouts, WebSockets, and failures mapped to a ``ForwardStage``.

It knows upstreams, never routes: the pipeline decides where a request goes and hands
the forwarder an upstream and a request.
"""
