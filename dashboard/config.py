"""Settings: one YAML file (``vantage.yaml``) validated with pydantic, plus environment overrides.

Errors name the file, the path inside it (``connectors[2].interval``) and what was expected.
Secrets never live in the file: a connector's auth block names environment variables
(``token_env: TMF_TOKEN``) and the value is read from the environment when the connector starts.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from connectors.actions import get_action_class
from connectors.base import Connector, ConnectorContext, ConnectorOptions
from connectors.options import parse_duration
from connectors.registry import ConnectorLoadError, UnknownConnectorType
from connectors.registry import get as get_connector_class
from dashboard.errors import VantageError

DEFAULT_CONFIG_FILE = "vantage.yaml"
ENV_CONFIG = "VANTAGE_CONFIG"
ENV_DATABASE_URL = "VANTAGE_DATABASE_URL"
#: Overrides ``cache.url``: a Redis URL with a password belongs here, never in the file.
ENV_CACHE_URL = "VANTAGE_CACHE_URL"
DEFAULT_DATABASE_URL = "sqlite:///var/vantage.db"


class ConfigError(VantageError):
    """A configuration problem, worded for the operator who edits the file."""

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        lines = [f"{file}: {path or '(top level)'}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ListenerConfig(_Strict):
    """Sender authentication of a connector's listener routes; on by default.

    ``bearer``: the sender sends ``Authorization: Bearer <secret>`` (or, as RFC 6750 allows,
    ``?access_token=<secret>``, which is how a TMF hub registration carries it in the callback URL).
    ``hmac``: the sender signs the body, ``X-Vantage-Signature: sha256=<hex HMAC-SHA256 of the body>``.
    ``none``: anyone who reaches the route may push (only behind a gateway that authenticates).
    The secret is read from the environment variable ``secret_env``
    (default ``VANTAGE_LISTENER_SECRET_<NAME>``, the connector's name upper-cased, ``-`` as ``_``);
    with authentication on and no secret set, every push is refused.
    """

    auth: Literal["bearer", "hmac", "none"] = "bearer"
    secret_env: str | None = Field(default=None, pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")
    #: Browser origins allowed to push (none by default: sources are servers, and a request that
    #: carries an Origin header came from a web page).
    allowed_origins: list[str] = Field(default_factory=list)


class ConnectorConfig(_Strict):
    """One configured connector: which type, how often, and its type-specific options."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")
    type: str
    enabled: bool = True
    interval: float = Field(default=300.0, description="seconds between runs; accepts 30s, 15m, 1h")
    options: dict[str, Any] = Field(default_factory=dict)
    #: How senders to this connector's listener routes (/push/<name>/...) prove who they are.
    listener: ListenerConfig = Field(default_factory=lambda: ListenerConfig())

    @field_validator("interval", mode="before")
    @classmethod
    def _interval(cls, v: Any) -> float:
        return parse_duration(v)

    def listener_secret_env(self) -> str:
        """The environment variable holding the listener's secret."""
        return self.listener.secret_env or "VANTAGE_LISTENER_SECRET_" + re.sub(
            r"[^A-Z0-9]", "_", self.name.upper()
        )

    def listener_secret(self) -> str | None:
        """The listener's secret from the environment, or None when it is not set."""
        return os.environ.get(self.listener_secret_env()) or None

    def parsed_options(self) -> ConnectorOptions:
        """The options validated by the connector type's own model."""
        return get_connector_class(self.type).Options.model_validate(self.options)

    def build(self, clock: Callable[[], datetime] | None = None) -> Connector[Any]:
        """An instance of the configured connector with its validated options (``clock``: naive UTC now)."""
        cls = get_connector_class(self.type)
        secret = self.listener_secret() if self.listener.auth == "bearer" else None
        return cls(self.parsed_options(), ConnectorContext(name=self.name, now=clock, listener_token=secret))


class WebConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8050, ge=1, le=65535)
    #: The longest one statement of a page, callback or API request may run on PostgreSQL (a held
    #: lock, a hung server): then the request answers 503 instead of waiting. Jobs have no limit.
    statement_timeout_s: float = Field(default=15.0, gt=0)


class SchedulerConfig(_Strict):
    #: Run connector jobs inside the web process (`vantage run`). Production sets this false and
    #: runs `vantage scheduler` processes (one leads each job family), so jobs run once rather than
    #: once per web worker.
    embedded: bool = True
    #: A run that could not start on time may still start this many seconds late.
    misfire_grace_s: float = Field(default=60.0, gt=0)
    #: After a transient failure the next attempt comes sooner than the interval: backoff doubles
    #: from `retry_initial_s` up to `retry_max_s` (or follows the source's Retry-After).
    retry_initial_s: float = Field(default=10.0, gt=0)
    retry_max_s: float = Field(default=600.0, gt=0)
    #: Each delay is spread by up to this fraction either way, so sources that failed together
    #: are not retried together.
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    #: After this many transient failures in a row the circuit opens: one attempt every
    #: `retry_max_s` until the source answers, and the Sources page and /healthz say so.
    circuit_after: int = Field(default=5, ge=1)
    #: How often the incident queue is re-correlated, re-measured and re-ranked.
    queue_refresh_s: float = Field(default=30.0, gt=0)
    #: How often KPI roll-ups and statuses are brought up to date (dashboard.kpi_eval.evaluate).
    kpi_refresh_s: float = Field(default=300.0, gt=0)
    #: How often the links between KPIs are re-measured (dashboard.linkage: 30 days of daily data).
    linkage_refresh_s: float = Field(default=21600.0, gt=0)
    #: The built-in jobs (queue, KPIs, analytics, ...) first run this long after a scheduler starts
    #: leading their family (or their own interval, when shorter), so connectors write first.
    first_run_delay_s: float = Field(default=120.0, ge=0)
    #: Schedulers sharing one store: each job family has one leader (a PostgreSQL advisory lock, or
    #: a file lock beside a SQLite file) and the others try to take it over this often, so a dead
    #: leader's families are taken over within about this long.
    standby_retry_s: float = Field(default=5.0, gt=0)
    #: PostgreSQL drops the lock connection of a leader whose host stopped answering after about
    #: twice this (TCP keepalives), which frees its families for a standby.
    lock_keepalive_s: float = Field(default=10.0, ge=1)


class IngestConfig(_Strict):
    """What ingest refuses whatever the connector: times no clock could have written."""

    #: A record time later than now plus this (a source's clock may run a little ahead) is
    #: quarantined, so it can neither be stored as fact nor move an incremental cursor.
    max_future_s: float = Field(default=3600.0, alias="max_future", ge=0)
    #: A record time before this (an epoch-zero sentinel, a default date) is quarantined.
    earliest: datetime = datetime(1990, 1, 1)

    @field_validator("max_future_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return parse_duration(v)


class RetentionConfig(_Strict):
    """How long measurements are kept (dashboard/store/retention.py; docs/operations.md).

    Raw KPI samples are the bulk of the store and are kept shortest; the roll-ups the pages, the API
    and linkage read for older periods are kept longer, hourly ones shorter than daily ones. On
    PostgreSQL samples live in daily partitions, created ``partitions_ahead_days`` ahead and dropped
    whole once expired; on SQLite expired rows are deleted. 0 keeps rows for ever.
    """

    #: Delete what expired. Off, nothing is deleted; partitions are still made ahead.
    enabled: bool = True
    #: Days of raw samples (15-minute cell KPIs). Covers the churn model's 45-day read of them.
    samples_days: int = Field(default=45, ge=0)
    #: Days of hourly roll-ups (``kpi_rollups`` at grain 3600).
    hourly_rollups_days: int = Field(default=400, ge=0)
    #: Days of daily roll-ups (grain 86400).
    daily_rollups_days: int = Field(default=1830, ge=0)
    #: Daily sample partitions created ahead of today (PostgreSQL).
    partitions_ahead_days: int = Field(default=7, ge=1, le=366)
    #: How often the retention job runs: create partitions, move stray rows, drop what expired.
    interval_s: float = Field(default=3600.0, alias="interval", gt=0)

    @field_validator("interval_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return parse_duration(v)

    @model_validator(mode="after")
    def _rollups_outlive_samples(self) -> RetentionConfig:
        # A period older than the raw samples is read from roll-ups, so they must outlive them.
        for name in ("hourly_rollups_days", "daily_rollups_days"):
            days = getattr(self, name)
            if days and (self.samples_days == 0 or days < self.samples_days):
                raise ValueError(f"{name} ({days}) must be 0 (for ever) or at least samples_days")
        return self


class OidcConfig(_Strict):
    """Single sign-on by OpenID Connect (authorization code flow with PKCE)."""

    #: The provider's issuer URL; its discovery document is at <issuer>/.well-known/openid-configuration.
    issuer: str = Field(pattern=r"^https?://")
    client_id: str = Field(min_length=1)
    #: The environment variable holding the client secret (never the secret itself).
    client_secret_env: str = Field(default="VANTAGE_OIDC_CLIENT_SECRET", pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")
    scopes: str = "openid profile email"
    #: The ID token claim naming the user, and the one carrying roles or groups (a string or a list).
    user_claim: str = "preferred_username"
    role_claim: str = "roles"
    #: Claim value -> Vantage role. A user with several mapped values gets the one with most rights.
    role_map: dict[str, Literal["viewer", "operator", "analyst", "admin"]] = Field(default_factory=dict)
    #: The role of a user none of whose claim values is mapped; unset refuses them.
    default_role: Literal["viewer", "operator", "analyst", "admin"] | None = None
    #: What the login page's button says.
    label: str = "Sign in with single sign-on"


class CacheConfig(_Strict):
    """The shared cache of what every screen reads (docs/operations.md, "Web serving and the shared
    cache"): Redis, invalidated by versions the writing jobs bump."""

    #: Redis URL (``redis://127.0.0.1:6379/0``), or ``$VANTAGE_CACHE_URL``; unset: no cache, every
    #: read goes to the store (the product needs no Redis).
    url: str | None = None
    #: Serve reads from the cache. False keeps ``url`` for the shared store-query counts only.
    enabled: bool = True
    #: Every key starts with this: one prefix per deployment sharing a Redis.
    prefix: str = Field(default="vantage:", min_length=1, max_length=64)
    #: A safety net only: a cached value also goes after this long, should a writer fail to bump.
    ttl_s: float = Field(default=300.0, alias="ttl", gt=0)

    @field_validator("ttl_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("url")
    @classmethod
    def _no_secret(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not re.match(r"^(redis|rediss|unix)://", v):
            raise ValueError("expected a redis://, rediss:// or unix:// URL")
        if re.match(r"^[a-z]+://[^/@]*:[^/@]+@", v):
            raise ValueError(f"a password does not belong in the file: set ${ENV_CACHE_URL} instead")
        return v


class SecurityConfig(_Strict):
    """Who may use Vantage and how they prove it (docs/security.md)."""

    #: The role of a request with no credentials: unset (the default) means every page, callback,
    #: API route and export asks for a login. ``viewer`` opens read-only, masked access to anyone
    #: who reaches the server (a wall on a closed network); no other role may be anonymous.
    anonymous_role: Literal["viewer"] | None = None
    #: A session ends after this long without a user action (timers refreshing a page do not count)...
    session_idle_s: float = Field(default=1800.0, alias="session_idle", gt=0)
    #: ...and this long after its login, whatever happens.
    session_max_s: float = Field(default=43200.0, alias="session_max", gt=0)
    #: Send the session cookie with the Secure flag: ``auto`` when the request came over HTTPS
    #: (directly, or through a trusted proxy that says so).
    cookie_secure: Literal["auto", "always", "never"] = "auto"
    #: A user is locked out for ``lockout_for`` after this many wrong passwords in a row.
    lockout_after: int = Field(default=5, ge=1)
    lockout_for_s: float = Field(default=900.0, alias="lockout_for", gt=0)
    #: Rate limits (Flask-Limiter notation) per principal on searches of personal fields, and per
    #: client address on the login form. ``rate_limit_storage`` shares counts between web workers
    #: (redis://...); memory:// counts per process.
    search_rate_limit: str = "60/minute"
    login_rate_limit: str = "20/minute"
    rate_limit_storage: str = "memory://"
    #: Host names the server answers to (the Host header); empty means the loopback names and
    #: web.host. A request for any other host is refused (DNS rebinding, host header injection).
    allowed_hosts: list[str] = Field(default_factory=list)
    #: Addresses (or CIDR networks) of reverse proxies in front: only requests from them may set
    #: X-Forwarded-For/-Proto/-Host, and the user and role headers when ``trust_headers`` is on.
    trusted_proxies: list[str] = Field(default_factory=list)
    #: Take user and role from ``user_header``/``role_header`` set by an authenticating proxy in
    #: ``trusted_proxies``; from any other address the headers are ignored.
    trust_headers: bool = False
    user_header: str = "X-Vantage-User"
    role_header: str = "X-Vantage-Role"
    oidc: OidcConfig | None = None

    @field_validator("session_idle_s", "session_max_s", "lockout_for_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return parse_duration(v)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return v


WALL_VIEWS = ("overview", "incidents", "map", "kpis")


class WallView(_Strict):
    #: One of overview (everything), incidents (the queue, large), map (sites by status), kpis.
    view: Literal["overview", "incidents", "map", "kpis"]
    #: How long the view stays on screen before the next one.
    seconds: float = Field(default=30.0, ge=5, le=3600)


class WallConfig(_Strict):
    """The NOC wall screen (/wall): what it rotates through and how it refreshes."""

    #: How often the wall asks for changes; a request never starts before the last one answered.
    refresh_s: float = Field(default=10.0, ge=1, le=600)
    #: Incidents shown from the top of the value-weighted queue.
    top: int = Field(default=8, ge=1, le=25)
    #: A full page reload this often caps the browser's memory on screens left on for weeks.
    reload_after_s: float = Field(default=86400.0, alias="reload_after", ge=600)
    #: A new critical or VIP/enterprise incident holds the incidents view this long, highlighted.
    jump_hold_s: float = Field(default=60.0, alias="jump_hold", ge=5)
    playlist: list[WallView] = Field(
        default_factory=lambda: [
            WallView(view="overview", seconds=60),
            WallView(view="incidents", seconds=30),
            WallView(view="map", seconds=30),
            WallView(view="kpis", seconds=30),
        ],
        min_length=1,
    )

    @field_validator("reload_after_s", "jump_hold_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return parse_duration(v)


class ActionConfig(_Strict):
    """One configured action endpoint that playbook steps name: a type and its options.

    ``loopback: true`` points it at the built-in loopback sinks (``playbooks.loopback``) instead of
    a real system: the demo's SMTP server, SMS gateway and TMF621/TMF642 systems run in-process.
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_\-]{0,63}$")
    type: str
    options: dict[str, Any] = Field(default_factory=dict)
    loopback: bool = False
    #: The most messages per second this endpoint is sent (a gateway's own limit); unset: no limit.
    rate_per_s: float | None = Field(default=None, gt=0)


class PlaybooksConfig(_Strict):
    """The closed loop (docs/playbooks.md): where the playbooks are and how actions are delivered."""

    #: The playbooks file; relative paths are read beside the settings file, else the shipped one.
    file: str = "playbooks.yaml"
    #: Off unless switched on: a deployment opts in to Vantage acting on its own.
    enabled: bool = False
    #: Every playbook decides and records what it would send, and nothing is delivered.
    dry_run: bool = False
    #: Start the built-in loopback sinks (SMTP, SMS gateway, TMF621, TMF642, webhook) in-process.
    loopback: bool = False
    #: How often the outbox is delivered, and how many actions one pass takes at most.
    deliver_every_s: float = Field(default=5.0, gt=0)
    deliver_batch: int = Field(default=2000, ge=1)
    #: Delivery attempts of one action before it is failed, and the backoff between them.
    max_attempts: int = Field(default=6, ge=1)
    retry_initial_s: float = Field(default=30.0, gt=0)
    retry_max_s: float = Field(default=1800.0, gt=0)
    #: A claim older than this is a delivery whose process died (kill -9, power): it is resent when
    #: the channel cannot tell a repeat apart, else marked uncertain for a person to decide.
    claim_lease_s: float = Field(default=120.0, gt=0)
    #: The address customers reach Vantage at, for the signed offer links (accept, opt out).
    public_url: str = Field(default="http://127.0.0.1:8050", pattern=r"^https?://")

    @field_validator("deliver_every_s", "retry_initial_s", "retry_max_s", "claim_lease_s", mode="before")
    @classmethod
    def _dur(cls, v: Any) -> float:
        return parse_duration(v)

    def file_path(self, config_file: str | None) -> Path:
        """The playbooks file: relative paths beside the settings file, else the shipped one."""
        return _beside(self.file, config_file)


def _beside(name: str, config_file: str | None) -> Path:
    path = Path(name)
    if path.is_absolute():
        return path
    if config_file and Path(config_file).is_file():
        beside = Path(config_file).resolve().parent / path
        if beside.exists():
            return beside
    if path.exists():
        return path
    return Path(__file__).resolve().parents[1] / path


class Settings(_Strict):
    """Everything Vantage needs to start."""

    database_url: str = DEFAULT_DATABASE_URL
    currency: str = "EUR"
    kpi_definitions: str = "kpi_definitions.yaml"
    web: WebConfig = Field(default_factory=WebConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    wall: WallConfig = Field(default_factory=WallConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    connectors: list[ConnectorConfig] = Field(default_factory=list)
    playbooks: PlaybooksConfig = Field(default_factory=PlaybooksConfig)
    actions: list[ActionConfig] = Field(default_factory=list)
    #: Where the settings came from, for messages; not read from the file.
    config_file: str | None = Field(default=None, exclude=True)

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Z]{3}", v):
            raise ValueError("expected a three-letter ISO 4217 currency code such as EUR or USD")
        return v

    @field_validator("connectors")
    @classmethod
    def _unique_names(cls, connectors: list[ConnectorConfig]) -> list[ConnectorConfig]:
        seen: set[str] = set()
        for c in connectors:
            if c.name in seen:
                raise ValueError(f"connector name {c.name!r} is used twice; names must be unique")
            seen.add(c.name)
        return connectors

    @field_validator("actions")
    @classmethod
    def _unique_actions(cls, actions: list[ActionConfig]) -> list[ActionConfig]:
        seen: set[str] = set()
        for a in actions:
            if a.name in seen:
                raise ValueError(f"action name {a.name!r} is used twice; names must be unique")
            seen.add(a.name)
        return actions

    def connector(self, name: str) -> ConnectorConfig:
        for c in self.connectors:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.connectors) or "none"
        raise KeyError(f"no connector named {name!r} (configured: {known})")

    def kpi_definitions_path(self) -> Path:
        """The KPI catalogue: relative paths are read beside the settings file, else the shipped one."""
        return _beside(self.kpi_definitions, self.config_file)

    def playbooks_path(self) -> Path:
        return self.playbooks.file_path(self.config_file)

    @property
    def enabled_connectors(self) -> list[ConnectorConfig]:
        return [c for c in self.connectors if c.enabled]


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_problems(err: ValidationError, prefix: str = "") -> list[tuple[str, str]]:
    found = []
    for e in err.errors():
        path = _loc(tuple(e["loc"]))
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling)"
        elif e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"].startswith("value_error"):
            msg = msg.removeprefix("Value error, ")
        if (
            "input" in e
            and e["type"] not in ("missing", "extra_forbidden")
            and "got " not in msg
            and not isinstance(e["input"], dict | list)
        ):
            msg = f"{msg} (got {e['input']!r})"
        found.append((path, msg))
    return found


def _connector_problems(index: int, type_name: str, options: Any) -> list[tuple[str, str]]:
    """Check one connector's type and options with the connector type's own model."""
    where = f"connectors[{index}]"
    try:
        cls = get_connector_class(type_name)
    except UnknownConnectorType as err:
        return [(f"{where}.type", str(err.args[0]))]
    except ConnectorLoadError as err:
        return [(f"{where}.type", str(err))]
    if not isinstance(options, dict):
        return []  # already reported by the settings model
    try:
        cls.Options.model_validate(options)
    except ValidationError as err:
        return validation_problems(err, prefix=f"{where}.options")
    return []


def _action_problems(index: int, type_name: str, options: Any) -> list[tuple[str, str]]:
    """Check one action's type and options with the action type's own model."""
    where = f"actions[{index}]"
    try:
        cls = get_action_class(type_name)
    except KeyError as err:
        return [(f"{where}.type", str(err.args[0]))]
    if not isinstance(options, dict):
        return []
    try:
        cls.Options.model_validate(options)
    except ValidationError as err:
        return validation_problems(err, prefix=f"{where}.options")
    return []


def settings_from_mapping(
    data: Mapping[str, Any], *, file: str = "<settings>", environ: Mapping[str, str] | None = None
) -> Settings:
    """Validate settings from a mapping, apply environment overrides and each connector's options."""
    env = os.environ if environ is None else environ
    data = dict(data)
    if env.get(ENV_DATABASE_URL):
        data["database_url"] = env[ENV_DATABASE_URL]
    problems: list[tuple[str, str]] = []
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as err:
        problems.extend(validation_problems(err))
    raw_connectors = data.get("connectors")
    if isinstance(raw_connectors, list):
        for i, c in enumerate(raw_connectors):
            if isinstance(c, dict) and isinstance(c.get("type"), str):
                problems.extend(_connector_problems(i, c["type"], c.get("options") or {}))
    raw_actions = data.get("actions")
    if isinstance(raw_actions, list):
        for i, a in enumerate(raw_actions):
            if isinstance(a, dict) and isinstance(a.get("type"), str) and not a.get("loopback"):
                problems.extend(_action_problems(i, a["type"], a.get("options") or {}))
    if problems or settings is None:
        raise ConfigError(file, problems)
    settings.config_file = file
    if env.get(ENV_CACHE_URL):
        # Applied past validation: the environment may carry the password the file may not.
        settings.cache.url = env[ENV_CACHE_URL]
    return settings


def read_yaml_mapping(file: Path, what: str) -> dict[str, Any]:
    """A YAML file's top-level mapping (empty file: empty mapping); ConfigError naming the file, the
    line and column of a syntax error, or what was expected, otherwise."""
    if not file.exists():
        raise ConfigError(str(file), [("", "file not found")])
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(str(file), [(where, f"not valid YAML: {getattr(err, 'problem', err)}")]) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(str(file), [("", f"expected a mapping of {what}, got {type(raw).__name__}")])
    return raw


def load_settings(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Load settings from ``path``, ``$VANTAGE_CONFIG`` or ``./vantage.yaml``."""
    env = os.environ if environ is None else environ
    file = Path(path or env.get(ENV_CONFIG) or DEFAULT_CONFIG_FILE)
    raw = read_yaml_mapping(file, "settings")
    return settings_from_mapping(raw, file=str(file), environ=env)


def secret_from_env(var_name: str, *, environ: Mapping[str, str] | None = None) -> str:
    """The value of a secret named by an environment variable; the error names the variable only."""
    env = os.environ if environ is None else environ
    value = env.get(var_name)
    if not value:
        raise ConfigError("environment", [(var_name, "environment variable is not set or is empty")])
    return value
