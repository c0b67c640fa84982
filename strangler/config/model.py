"""The config model: frozen, slotted, keyword-only dataclasses. Data only, no behaviour.

Every node that comes from a file carries a ``Location`` so later checks (and
``strangler check``) can point at the line. Collections are tuples, frozensets and
read-only mappings, so a loaded ``Config`` can be shared by every request safely.
Durations are float seconds, sizes are int bytes, percentages are ratios in [0, 1]
(see ``units``).

Release controls, and which side of a route is which
----------------------------------------------------
A route may carry a ``canary``, ``overrides``, a ``fallback`` policy and an ``slo``.
Three upstreams matter for each route:

- ``to``: what answers when no release control changes the answer. Without a
  canary it gets all of the route's traffic; with one, the share not in the canary.
- the **new side** (``Route.new_side``): ``canary.to`` when there is a canary;
  otherwise ``to`` itself if it is not ``legacy`` (a migrated route); otherwise none
  (the route sends to legacy and nothing is being released).
- the **primary** (``Route.primary``): the route's legacy side, where release
  controls step back to. It is ``fallback.to`` when given; otherwise ``to`` when
  there is a canary (usually ``legacy``); otherwise ``legacy``. The kill switch, a
  tripped SLO guard and a per-request fallback all send to the primary.

=====================================  ==========  ===========  ===============
route                                  ``to``      new side     primary
=====================================  ==========  ===========  ===============
to: legacy                             legacy      none         legacy
to: legacy, canary.to: billing         legacy      billing      legacy
to: billing (migrated)                 billing     billing      legacy
to: billing, fallback.to: billing-v1   billing     billing      billing-v1
to: billing, canary.to: billing-v2     billing     billing-v2   billing
=====================================  ==========  ===========  ===============

The SLO guard watches the new side's answers; a per-request fallback retries on the
primary when the new side fails (never for a forced override: whoever forced the
upstream wants to see its failure).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, ClassVar, Final, Literal, get_args

if TYPE_CHECKING:  # shadow_model builds on this module's Location
    from strangler.config.migrate_model import MigratePlan
    from strangler.config.shadow_model import ShadowSpec
    from strangler.config.translate_model import TranslateSpec

EMPTY_MAP: Final[Mapping[str, str]] = MappingProxyType({})

LEGACY: Final = "legacy"
"""The name of the upstream that answers every request no route claims."""

UNROUTED: Final = "(unrouted)"
"""The route name used for traffic that matched no route (metrics, access log)."""


@dataclass(frozen=True, slots=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


NOWHERE: Final = Location("<built-in>", 0)

READ: Final[dict[str, object]] = {"extra": "forbid"}
"""pydantic's config (a ``ConfigDict``) for a class read on its own (``__pydantic_config__``):
unknown keys are problems. Nested classes take their reader's. (Attribute docstrings
describe the keys in the schema only: ``described.main_schema`` reads them.)"""


@dataclass(frozen=True, slots=True, kw_only=True)
class CertKey:
    """A certificate chain file and its private key file (PEM), as absolute paths."""

    EXAMPLE: ClassVar[str] = "{cert: certs/api.pem, key: certs/api.key}"

    cert: Annotated[str, tls_files.CERT]
    """The certificate chain (PEM)."""
    key: Annotated[str, tls_files.KEY, tls_files.FITS]
    """Its private key (PEM, unencrypted)."""


TlsVersion = Literal["1.2", "1.3"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenTls:
    """TLS on the proxy's listener: ``cert`` by default, one of ``sni`` by the client's
    server name. The files are read again when they change and on SIGHUP."""

    EXAMPLE: ClassVar[str] = (
        "tls: {cert: a.pem, key: a.key, sni: {api.example.com: {cert: b.pem, key: b.key}}}"
    )

    cert: Annotated[str, tls_files.CERT]
    """The certificate chain (PEM) served by default."""
    key: Annotated[str, tls_files.KEY, tls_files.FITS]
    """Its private key (PEM, unencrypted)."""
    min_version: Annotated[TlsVersion, tls_files.VERSION] = "1.2"
    """The oldest TLS version accepted."""
    sni: Mapping[Annotated[str, kinds.HOST], CertKey] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Other certificates, by the client's server name: api.example.com or *.example.org."""

    def __hash__(self) -> int:  # the listener compares specs; a Mapping is not hashable
        return hash((self.cert, self.key, self.min_version, tuple(self.sni.items())))


@dataclass(frozen=True, slots=True, kw_only=True, repr=False)
class Listen:
    host: str
    port: int
    tls: ListenTls | None = None  # only the proxy's own listener takes tls (mapping form)
    redirect_http: Listen | None = None  # plain HTTP here answers 308 to https://

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:  # the TLS fields only when set: most listeners have none
        extra = "".join(
            f", {name}={value!r}"
            for name, value in (("tls", self.tls), ("redirect_http", self.redirect_http))
            if value is not None
        )
        return f"Listen(host={self.host!r}, port={self.port}{extra})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenEntry:
    """``listen`` as written: ``HOST:PORT``, or a mapping with TLS."""

    EXAMPLE: ClassVar[str] = "listen: {address: 0.0.0.0:8443, tls: {cert: FILE, key: FILE}}"

    address: Annotated[Listen, kinds.LISTEN]
    """host:port; :8443 is every IPv4 interface."""
    tls: ListenTls | None = None
    """Terminate TLS here, with these certificates."""
    redirect_http: Annotated[Listen, kinds.LISTEN] | None = None
    """A plain-HTTP address answering 308 to https:// (needs tls)."""

    def __str__(self) -> str:  # the schema's default
        return str(self.address)

    @property
    def listen(self) -> Listen:
        return replace(self.address, tls=self.tls, redirect_http=self.redirect_http)


@dataclass(frozen=True, slots=True, kw_only=True)
class UpstreamTls:
    """``upstreams.NAME.tls``, for an https:// upstream."""

    EXAMPLE: ClassVar[str] = "tls: {ca: certs/internal-ca.pem, server_name: billing.internal}"

    ca: Annotated[str, tls_files.CA] | None = None
    """The CA bundle (PEM) to verify the upstream against (default: the system store)."""
    cert: Annotated[str, tls_files.CERT] | None = None
    """A client certificate presented to the upstream (mutual TLS; with key)."""
    key: Annotated[str, tls_files.KEY, tls_files.FITS] | None = None
    """Its private key (PEM, unencrypted)."""
    server_name: Annotated[str, kinds.HOST] | None = None
    """The name sent as SNI and verified (default: the URL's host)."""
    verify: Annotated[bool, kinds.STRICT] = True
    """false: accept any certificate (check warns: anyone on the path can impersonate it)."""
    verify_at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Per-upstream timeouts in seconds; ``None`` means no limit."""

    connect: Annotated[float, kinds.CONNECT_TIMEOUT] | None = 5.0
    """Connecting to the upstream (null: no limit)."""
    read: Annotated[float, kinds.TIMEOUT] | None = 60.0
    """The longest silence while waiting for the upstream's bytes (null: no limit)."""
    total: Annotated[float, kinds.TIMEOUT] | None = None
    """The whole exchange, headers to last body byte (null: no limit)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Upstream:
    """An upstream as written: ``NAME: URL`` or ``NAME: {url, timeout, ...}``; ``validate``
    sets its name and line."""

    __pydantic_config__: ClassVar[dict[str, object]] = READ

    name: Annotated[str, kinds.NOT_A_KEY] = ""
    url: Annotated[str, kinds.URL]
    """http(s)://host[:port][/base-path]; a base path is prepended to every request path."""
    timeouts: Annotated[Timeouts, kinds.key("timeout")] = Timeouts()
    """connect, read and total timeouts."""
    max_connections: Annotated[int, kinds.Count(1)] = 256
    """Caps the keep-alive pool, per worker."""
    host_header: Literal["preserve", "upstream"] = "preserve"
    """preserve: the upstream sees the client's Host (absolute URLs it builds point at the
    proxy); upstream: the upstream's own host."""
    tls: UpstreamTls = UpstreamTls()
    """For an https:// URL: how to verify it, and a client certificate (mutual TLS)."""
    at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class ValueMatch:
    """A header, query parameter or cookie a route matches: absent (``present=False``),
    or present with any value (``value=None``) or exactly ``value``."""

    present: bool = True
    value: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MatchSpec:
    """What a request must look like: every condition given must hold (none: every
    request); a host is compared lower-case. ``query_only`` tells a plain list call from
    its paging or search variants."""

    __pydantic_config__: ClassVar[dict[str, object]] = READ
    EXAMPLE: ClassVar[str] = "match: {path_prefix: /api/invoices, methods: [GET]}"

    path: Annotated[str, kinds.PATH] | None = None
    """One exact path or template, like /invoices/{id:int} (not with path_prefix)."""
    path_prefix: Annotated[str, kinds.PATH_PREFIX] | None = None
    """A whole subtree: /api matches /api and /api/x, not /apix (not with path)."""
    methods: (
        Annotated[
            frozenset[Annotated[str, kinds.METHOD]],
            kinds.Listed(
                "so the route would match nothing", "leave methods out to match any", same=str.upper
            ),
        ]
        | None
    ) = None
    """The methods matched (default: any)."""
    host: Annotated[str, kinds.HOST] | None = None
    """The request's host, exact or *.example.com, without port."""
    headers: Mapping[
        Annotated[str, kinds.field_name("header")], Annotated[ValueMatch, kinds.CONDITION]
    ] = field(default_factory=lambda: MappingProxyType({}))
    """Header -> exact value, true (present) or false (absent)."""
    query: Mapping[
        Annotated[str, kinds.field_name("query parameter")], Annotated[ValueMatch, kinds.CONDITION]
    ] = field(default_factory=lambda: MappingProxyType({}))
    """Query parameter -> exact value, true (present) or false (absent)."""
    cookies: Mapping[
        Annotated[str, kinds.field_name("cookie")], Annotated[ValueMatch, kinds.CONDITION]
    ] = field(default_factory=lambda: MappingProxyType({}))
    """Cookie -> exact value, true (present) or false (absent)."""
    query_only: Annotated[frozenset[str], kinds.QUERY_ONLY] | None = None
    """true: no query parameter but those query names; a list: those may be there too."""


StickyKind = Literal["header", "cookie", "query", "client_ip"]
STICKY_KINDS: Final[tuple[StickyKind, ...]] = get_args(StickyKind)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sticky:
    """Which part of a request keeps a user in one cohort.

    ``header:X-User-Id`` is ``Sticky(kind="header", name="X-User-Id")``; ``client_ip``
    (the peer address) has no name. ``str()`` gives the config spelling back.
    """

    kind: StickyKind
    name: str | None = None

    def __str__(self) -> str:
        return self.kind if self.name is None else f"{self.kind}:{self.name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Canary:
    """Send a share of a route's traffic to ``to`` (the new side). With ``sticky``,
    raising the share only adds users (without it, or without that part, each request
    tosses a coin); the routes of a ``group`` must agree on both."""

    __pydantic_config__: ClassVar[dict[str, object]] = READ
    EXAMPLE: ClassVar[str] = "canary: {to: billing, percent: 10%, sticky: header:X-User-Id}"

    to: Annotated[str, kinds.text_like("billing")]
    """The upstream that gets the share: the new side."""
    ratio: Annotated[float, kinds.key("percent"), kinds.CANARY_SHARE]
    """The share of the route's traffic it gets, like 10% (0.01% steps)."""
    sticky: Annotated[Sticky, kinds.STICKY] | None = None
    """header:NAME, cookie:NAME, query:NAME or client_ip: keeps a user on one side."""
    group: Annotated[str, kinds.GROUP] | None = None
    """Routes with one group put a user on the same side for all of them."""
    at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE


DebugHeaders = Literal["off", "on", "overrides"]
"""``debug_headers``: add ``X-Strangler-Route`` (route, backend, reason) to every
answer, to none, or only to requests carrying a valid override (``overrides``)."""

OVERRIDE_HEADER: Final = "X-Strangler-Backend"
OVERRIDE_COOKIE: Final = "strangler_backend"


@dataclass(frozen=True, slots=True, kw_only=True)
class Overrides:
    """Let a request force one of ``allow``'s upstreams by name: the header
    (``X-Strangler-Backend: billing``) wins over the cookie; a value that is not exactly
    an allowed upstream's name is ignored."""

    __pydantic_config__: ClassVar[dict[str, object]] = READ
    EXAMPLE: ClassVar[str] = "overrides: {header: X-Strangler-Backend, networks: [10.0.0.0/8]}"
    OR_BOOLEAN: ClassVar[bool] = True  # true: the defaults; false: none (kinds.OR_BOOLEAN)

    header: Annotated[str | None, kinds.OVERRIDE_NAME] = OVERRIDE_HEADER
    """The request header naming the upstream to force (false: off)."""
    cookie: Annotated[str | None, kinds.OVERRIDE_NAME] = OVERRIDE_COOKIE
    """The cookie naming the upstream to force (false: off)."""
    allow: Annotated[
        tuple[Annotated[str, kinds.text_like("billing")], ...],
        kinds.Listed("so nothing could be forced", "leave allow out for the route's own upstreams"),
    ] = ()
    """The upstreams a request may force (default: the route's to, canary.to, primary)."""
    networks: tuple[Annotated[str, kinds.NETWORK], ...] = ()
    """Client networks (CIDR) allowed to override (default: every client)."""
    at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE


FallbackOn = Literal["refused", "reset", "timeout", "protocol", "5xx"]
FALLBACK_ON: Final[tuple[FallbackOn, ...]] = get_args(FallbackOn)
"""Failures of the new side that can send a request to the primary instead: the
``ForwardErrorKind`` values (before the response head reached the client) and a
5xx status from the new side."""

IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
"""RFC 9110 §9.2.2: repeating them has the effect of sending them once."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fallback:
    """Per-request fallback to the primary when the new side fails (only on routes with
    a new side); a body longer than ``buffer`` streams once and cannot fall back."""

    __pydantic_config__: ClassVar[dict[str, object]] = READ
    EXAMPLE: ClassVar[str] = "fallback: {methods: [GET, HEAD], on: [refused, timeout]}"
    OR_BOOLEAN: ClassVar[bool] = True  # true/false: enabled with the defaults, or not

    enabled: Annotated[bool, kinds.STRICT] = True
    """false: no request of this route falls back."""
    to: Annotated[str, kinds.text_like("legacy")] | None = None
    """Where a failed request goes instead (default: the route's primary)."""
    methods: Annotated[
        frozenset[Annotated[str, kinds.METHOD]],
        kinds.Listed("so no request could fall back", "write fallback: false", same=str.upper),
    ] = IDEMPOTENT_METHODS
    """The methods that may be sent again (default: the idempotent ones)."""
    on: Annotated[
        frozenset[Annotated[FallbackOn, kinds.FAILURE]],
        kinds.Listed("so no request could fall back", "write fallback: false"),
    ] = frozenset(FALLBACK_ON)
    """The failures of the new side that fall back."""
    buffer_bytes: Annotated[int, kinds.key("buffer"), kinds.SIZE] = 64 * 1024
    """The most of a request body kept to send it again (0: requests with a body never
    fall back)."""
    at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class Slo:
    """What the new side of a route must deliver (one target at least); breaching it
    trips the guard."""

    __pydantic_config__: ClassVar[dict[str, object]] = READ
    EXAMPLE: ClassVar[str] = "slo: {error_rate: 1%, latency_p99: 300ms, window: 5m}"

    error_rate: Annotated[float, kinds.ERROR_RATE] | None = None
    """The largest share of failed answers the new side may give, like 1%."""
    latency_p99: Annotated[float, kinds.P99] | None = None
    """The latency 99% of the new side's answers must beat, like 300ms."""
    window: Annotated[float, kinds.SLO_WINDOW] = 300.0
    """Both are judged over this last stretch of time (1s to 24h)."""
    min_requests: Annotated[int, kinds.Count(1)] = 100
    """Answers the window must hold before the guard judges."""
    at: Annotated[Location, kinds.NOT_A_KEY] = NOWHERE


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    name: str
    owner: str
    match: MatchSpec
    to: str  # upstream name
    index: int  # declaration order across all files: first match wins
    at: Location = NOWHERE
    canary: Canary | None = None
    overrides: Overrides | None = None
    fallback: Fallback = Fallback()
    slo: Slo | None = None
    shadow: ShadowSpec | None = None  # mirror requests to a second upstream and compare
    translate: TranslateSpec | None = None  # applied when the new side answers
    migrate: MigratePlan | None = None  # the autopilot: stages that move the canary share
    debug_headers: DebugHeaders | None = None  # None: the config's debug_headers

    @property
    def new_side(self) -> str | None:
        """The upstream being released: ``canary.to``, else ``to`` unless it is legacy."""
        if self.canary is not None:
            return self.canary.to
        return None if self.to == LEGACY else self.to

    @property
    def primary(self) -> str:
        """The route's legacy side: ``fallback.to``, else ``to`` with a canary, else legacy."""
        if self.fallback.to is not None:
            return self.fallback.to
        return self.to if self.canary is not None else LEGACY


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What one client connection and one request may send."""

    max_header_bytes: Annotated[int, kinds.SIZE_POSITIVE] = 8190
    """Longest request line or header line -> 431."""
    max_headers: Annotated[int, kinds.Count(1)] = 128
    """Most request headers -> 431."""
    max_body_bytes: Annotated[int, kinds.SIZE] = 1 << 30
    """Largest request body -> 413 (0: no limit)."""
    max_head_bytes: Annotated[int, kinds.SIZE_POSITIVE] = 32768
    """Largest request head in total (request line and every header field) -> 431."""
    header_timeout: Annotated[float, kinds.DURATION_POSITIVE] = 30.0
    """A request head not complete this long after its first byte -> 408, closed."""
    keepalive_timeout: Annotated[float, kinds.DURATION_POSITIVE] = 75.0
    """An idle connection is closed after this; keep it above your load balancer's."""
    body_timeout: Annotated[float, kinds.DURATION_POSITIVE] = 60.0
    """Longest gap between two request body bytes -> connection closed."""
    max_connections: Annotated[int, kinds.Count(0)] = 0
    """Open client connections per worker; 0: 10000, or what the open-file limit allows."""
    underscore_headers: Literal["drop", "keep", "reject"] = "drop"
    """Request header names with '_' (X_User collides with X-User in CGI-style apps)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Forwarded:
    """Which incoming X-Forwarded-*/Forwarded headers to believe, which to add."""

    trusted: tuple[Annotated[str, kinds.NETWORK], ...] = ()
    """Client networks (CIDR) whose own forwarded headers are kept and appended to; from
    anyone else they are dropped and replaced."""
    headers: Annotated[bool, kinds.STRICT] = True
    """Add X-Forwarded-For/-Proto/-Host and Forwarded at all."""
    style: Literal["both", "x-forwarded", "rfc7239"] = "both"
    """both (four header fields), x-forwarded, or rfc7239 (Forwarded only: one field, for
    legacy apps that cap the number of header fields)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLog:
    format: Literal["json", "text", "off"] = "json"
    """One line per request as json, text, or off."""
    path: Annotated[str, kinds.FILE] | None = None
    """File to append access lines to (null: standard output)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Admin:
    listen: Annotated[Listen, kinds.LISTEN] = Listen(host="127.0.0.1", port=8081)
    """The admin API's address; keep it on loopback."""
    token_env: Annotated[str, kinds.ENV_NAME] = "STRANGLER_ADMIN_TOKEN"
    """Environment variable holding the admin write token."""
    token_file: Annotated[str, kinds.FILE] | None = None
    """File holding the token (wins over the variable)."""
    allow_public_reads: Annotated[bool, kinds.STRICT] = False
    """Reads (routes, upstream URLs, metrics, audit log) need no token; without it,
    strangler refuses a non-loopback admin.listen with no token."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisState:
    """``state.redis``: the Redis server that holds the runtime state when
    ``state.backend`` is ``redis``, so several replicas share it."""

    url: Annotated[str, kinds.REDIS_URL] = "redis://127.0.0.1:6379/0"
    """redis://[[user]:password@]host[:port][/db], rediss:// (TLS) or
    unix:///path/to/redis.sock[?db=N]."""
    key_prefix: Annotated[str, kinds.text_like("strangler:")] = "strangler:"
    """Starts every key and the change channel (two deployments can share one Redis)."""
    resync: Annotated[float, kinds.RESYNC] = 5.0
    """Seconds between full re-reads, however quiet the change channel is."""


StateBackend = Literal["file", "redis"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StateFiles:
    """Where runtime state (kill switches, percent overrides, guard trips) and the
    audit log live, and how often each worker looks for another one's writes."""

    dir: Annotated[str, kinds.TEXT] = ".strangler"
    """Directory of the state, audit log and progress files (relative to the main file)."""
    file_poll: Annotated[float, kinds.FILE_POLL] = 0.5
    """How often each worker looks for another worker's changes."""
    backend: StateBackend = "file"
    """file: <dir>/state.json (workers and replicas sharing the directory); redis: the
    state in state.redis (replicas on several machines)."""
    redis: RedisState = RedisState()
    """The Redis server, with backend: redis."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProgressSettings:
    """``progress:``: what the migration progress leaves out of the legacy backlog, and
    how long legacy must be idle before its code is a deletion candidate."""

    ignore: tuple[Annotated[str, kinds.PATH_GLOB], ...] = ()
    """Path globs of unrouted requests kept out of the backlog, like /static/** or /health
    (* one segment, ** any depth, ? one character)."""
    idle_after: Annotated[float, kinds.IDLE_AFTER] = 14 * 86400.0
    """How long legacy must be unused before a route or endpoint is a deletion candidate
    (1h to 400d; 35d for month-end jobs, 95d for quarterly ones)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TracingSettings:
    """OpenTelemetry spans exported over OTLP/HTTP; needs pip install 'strangler[otel]'."""

    endpoint: Annotated[str, kinds.key("otlp"), kinds.OTLP]
    """The collector's OTLP/HTTP URL, like http://collector:4318 (/v1/traces is added to a
    base URL)."""
    sample: Annotated[float, kinds.SHARE] = 1.0
    """The share of new traces recorded (a client's sampled flag is followed)."""
    service_name: Annotated[str, kinds.TEXT] = "strangler"
    """service.name on every span."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    listen: Listen = Listen(host="0.0.0.0", port=8080)
    admin: Admin = Admin()
    upstreams: Mapping[str, Upstream]
    routes: tuple[Route, ...] = ()
    limits: Limits = Limits()
    forwarded: Forwarded = Forwarded()
    access_log: AccessLog = AccessLog()
    drain_seconds: float = 30.0
    state: StateFiles = StateFiles()
    debug_headers: DebugHeaders = "off"
    progress: ProgressSettings = ProgressSettings()
    tracing: TracingSettings | None = None  # None: off (the default)
    files: tuple[str, ...] = ()  # every file read, main first: what the reloader watches
    version: str = "builtin"  # short hash of the files' contents


# Last: the kinds module reads values, which reads this module's Listen. The field
# annotations above are strings, resolved only when pydantic reads them.
from strangler.config import kinds, tls_files  # noqa: E402
