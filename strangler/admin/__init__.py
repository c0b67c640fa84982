"""The admin listener: health, readiness, metrics and token-guarded writes, on its own
port (127.0.0.1:8081 by default) so it is never exposed with the proxy."""
