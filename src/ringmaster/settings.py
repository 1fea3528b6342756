"""Ringmaster's settings: defaults, then a TOML file, then the environment, then arguments.

Every setting has one dotted name (``mqtt.url``) that is also its TOML table and key
(``[mqtt] url = ...``) and its environment variable (``RINGMASTER_MQTT__URL``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tomllib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic import model_validator as _model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as _SourceError

ENV_PREFIX = "RINGMASTER_"
ENV_NESTED_DELIMITER = "__"
DEFAULT_CONFIG_FILE = Path("config/ringmaster.toml")

# A setting's location is (section, key); anything deeper is inside its value.
_SETTING_DEPTH = 2
_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

# The TOML file for the Settings being built. A context variable rather than a class
# attribute so that loading two files concurrently (tests) cannot mix them up.
_toml_file: ContextVar[Path | None] = ContextVar("ringmaster_toml_file", default=None)


class SettingsError(Exception):
    """The settings cannot be loaded; the message names the offending setting."""


# --- secrets in files --------------------------------------------------------------------

#: A file setting starting so names a credential that systemd's ``LoadCredential=``
#: passed to the daemon: ``credential:NAME`` reads ``$CREDENTIALS_DIRECTORY/NAME``.
CREDENTIAL_PREFIX = "credential:"
# A secret is a line or a short TOML file; a bound keeps a wrong path (/dev/zero) harmless.
_SECRET_FILE_MAX_BYTES = 64 * 1024


def secret_path(source: str) -> Path:
    """The file a secret setting names: a path, or ``credential:NAME``.

    Raises:
        ValueError: A malformed credential name, or ``credential:`` outside systemd.
    """
    if not source.startswith(CREDENTIAL_PREFIX):
        if not source.strip():
            raise ValueError("must name a file")
        return Path(source)
    name = source.removeprefix(CREDENTIAL_PREFIX)
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(
            f"{source}: a credential name is a plain file name, as in LoadCredential=NAME:PATH"
        )
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise ValueError(
            f"{source}: $CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit"
            " with LoadCredential=)"
        )
    return Path(directory) / name


def _read_secret_text(path: Path) -> str:
    # Messages name the file and never quote its content.
    try:
        with path.open("rb") as file:
            data = file.read(_SECRET_FILE_MAX_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror}") from None
    if len(data) > _SECRET_FILE_MAX_BYTES:
        raise ValueError(f"{path}: larger than {_SECRET_FILE_MAX_BYTES} bytes")
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None


@dataclass(frozen=True, slots=True)
class SecretFile:
    """A secret read from a file when the settings are loaded.

    Attributes:
        source: The setting's value (a path or ``credential:NAME``), fit for logs.
        path: The file read.
        secret: Its content, without the trailing newline.
    """

    source: str
    path: Path
    secret: SecretStr = field(repr=False)


def _read_source(value: object) -> tuple[str, Path, str]:
    """A secret setting's value as written, the file it names, and the file's text."""
    if not isinstance(value, str | Path):
        raise ValueError("must be a file path or credential:NAME")
    source = str(value)
    path = secret_path(source)
    return source, path, _read_secret_text(path)


def _secret_file(value: object) -> SecretFile:
    if isinstance(value, SecretFile):
        return value
    source, path, text = _read_source(value)
    # `echo secret > file` ends it with a newline that is not part of the secret.
    secret = text.rstrip("\r\n")
    if not secret:
        raise ValueError(f"{path}: is empty")
    return SecretFile(source, path, SecretStr(secret))


SecretFileSetting = Annotated[SecretFile, PlainValidator(_secret_file)]


@dataclass(frozen=True, slots=True)
class MqttEndpoint:
    """Where and how to connect to the MQTT broker, parsed from ``mqtt.url``."""

    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)
    tls: bool


class _Section(BaseModel):
    # A typo in the TOML file must fail loudly, not silently fall back to a default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(_Section):
    """Connection to the broker shared with the PBX."""

    url: str | None = Field(default=None, repr=False)
    """``mqtt://user:pass@host:port`` or ``mqtts://...`` for TLS; None runs the embedded broker.

    Kept out of repr because it may carry a password."""
    password_file: SecretFileSetting | None = None
    """A file holding the broker password for the user in ``url`` (which then has none).

    ``credential:NAME`` reads ``$CREDENTIALS_DIRECTORY/NAME`` (systemd's LoadCredential=)."""
    topic_prefix: str = "ringmaster"
    client_id: str = Field(default="ringmaster", min_length=1, max_length=128)
    session_expiry_s: int = Field(default=86400, ge=0, le=0xFFFFFFFF)
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    monitoring_qos: int = Field(default=1, ge=0, le=1)
    """QoS of the monitoring messages (``P/T/event/...``, ``P/T/state/...``); commands,
    errors and status are always QoS 1. 0 saves the broker's PUBACK and its handling per
    message, and gives up their delivery across a broken connection (docs/mqtt.md)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        _parse_url(url)
        return url

    @field_validator("password_file")
    @classmethod
    def _check_password_file(
        cls, password_file: SecretFile | None, info: ValidationInfo
    ) -> SecretFile | None:
        if password_file is None or "url" not in info.data:  # an invalid url says so itself
            return password_file
        url: str | None = info.data["url"]
        if url is None:
            raise ValueError("needs mqtt.url: the embedded broker takes no password")
        endpoint = _parse_url(url)
        if endpoint.password is not None:
            raise ValueError("mqtt.url holds a password too: give it in one place")
        if endpoint.username is None:
            raise ValueError("mqtt.url names no user (mqtt://USER@host) for the password")
        return password_file

    @field_validator("topic_prefix")
    @classmethod
    def _check_topic_prefix(cls, prefix: str) -> str:
        # MQTT 3.1.1 section 4.7: '+' and '#' are wildcards, never part of a topic name;
        # topics starting with '$' are reserved for the broker ($SYS).
        if not prefix:
            raise ValueError("must not be empty")
        if "+" in prefix or "#" in prefix:
            raise ValueError("must not contain the MQTT wildcards '+' or '#'")
        if prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError("must not start or end with '/'")
        if "//" in prefix:
            raise ValueError("must not contain an empty topic level ('//')")
        if prefix.startswith("$"):
            raise ValueError("must not start with '$' (reserved for the broker)")
        if "\x00" in prefix:
            raise ValueError("must not contain NUL")
        return prefix

    @_model_validator(mode="after")
    def _check_backoff(self) -> Self:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    def endpoint(self) -> MqttEndpoint | None:
        """The parsed ``url``, its password from ``password_file`` if set.

        None when the embedded broker is to be used.
        """
        if self.url is None:
            return None
        endpoint = _parse_url(self.url)
        if self.password_file is None:
            return endpoint
        return dataclasses.replace(endpoint, password=self.password_file.secret.get_secret_value())

    @property
    def host(self) -> str | None:
        """Broker host name from ``url``."""
        endpoint = self.endpoint()
        return None if endpoint is None else endpoint.host

    @property
    def port(self) -> int | None:
        """Broker port from ``url`` (1883 for mqtt://, 8883 for mqtts:// when absent)."""
        endpoint = self.endpoint()
        return None if endpoint is None else endpoint.port

    @property
    def username(self) -> str | None:
        """User name from ``url``, percent-decoded."""
        endpoint = self.endpoint()
        return None if endpoint is None else endpoint.username

    @property
    def password(self) -> str | None:
        """Password from ``url`` (percent-decoded) or ``password_file``."""
        endpoint = self.endpoint()
        return None if endpoint is None else endpoint.password

    @property
    def tls(self) -> bool:
        """True for an ``mqtts://`` url."""
        endpoint = self.endpoint()
        return endpoint is not None and endpoint.tls

    @property
    def redacted_url(self) -> str | None:
        """``url`` with the password replaced, fit for logs."""
        endpoint = self.endpoint()
        if endpoint is None:
            return None
        scheme = "mqtts" if endpoint.tls else "mqtt"
        user = ""
        if endpoint.username is not None:
            user = endpoint.username + (":***" if endpoint.password is not None else "") + "@"
        return f"{scheme}://{user}{endpoint.host}:{endpoint.port}"


def _parse_url(url: str) -> MqttEndpoint:
    parts = urlsplit(url)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError("must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ValueError("has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must not have a path, query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return MqttEndpoint(
        host=parts.hostname,
        port=port if port is not None else _DEFAULT_PORTS[parts.scheme],
        # urlsplit leaves percent-escapes in place; a password may need them for '@' or ':'.
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
        tls=parts.scheme == "mqtts",
    )


_DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres")


def database_target(url: str) -> Path | str:
    """What `Store.open` takes for a ``database.url``: a file's path, or a PostgreSQL URL.

    ``sqlite:///var/x.sqlite3`` is the relative path ``var/x.sqlite3``,
    ``sqlite:////srv/x.sqlite3`` the absolute ``/srv/x.sqlite3`` (as SQLAlchemy spells
    them); ``postgresql://user:pass@host:port/db`` (or ``postgres://``) is kept whole.

    Raises:
        ValueError: Not such a URL (the message never repeats the URL: it may hold a password).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _DATABASE_SCHEMES:
        raise ValueError("must start with sqlite:///, postgresql:// or postgres://")
    if scheme == "sqlite":
        if not rest.startswith("/") or rest == "/":
            raise ValueError("a SQLite URL is sqlite:///relative/path or sqlite:////absolute/path")
        return Path(unquote(rest[1:]))
    parts = urlsplit(url)
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("has no host")
    if parts.path in ("", "/"):
        raise ValueError("names no database (postgresql://user@host:port/DATABASE)")
    try:
        parts.port  # noqa: B018 -- urlsplit checks the port only when asked
    except ValueError:
        raise ValueError("has an invalid port") from None
    return url


def redact_database_url(url: str) -> str:
    """A database URL with its password replaced, fit for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{netloc[2]}").geturl()


class DatabaseSettings(_Section):
    """The database: a SQLite file (the default) or a PostgreSQL server (docs/store.md)."""

    path: Path = Path("var/ringmaster.sqlite3")
    """The SQLite file, when ``url`` is not given."""
    url: str | None = Field(default=None, repr=False)
    """``sqlite:///var/ringmaster.sqlite3`` or ``postgresql://user:pass@host:port/db``.

    Kept out of repr because it may carry a password."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is not None:
            database_target(url)
        return url

    @_model_validator(mode="after")
    def _check_one_place(self) -> Self:
        if self.url is None or "path" not in self.model_fields_set:
            return self
        if database_target(self.url) != self.path:
            raise ValueError(
                "database.url and database.path name different databases: give only one"
            )
        return self

    @property
    def target(self) -> Path | str:
        """What `Store.open` opens: the SQLite file's path, or the PostgreSQL URL."""
        return self.path if self.url is None else database_target(self.url)

    @property
    def redacted(self) -> str:
        """The database, fit for logs: the file's path, or the URL without its password."""
        target = self.target
        return str(target) if isinstance(target, Path) else redact_database_url(target)


def _host_name() -> str:
    return os.uname().nodename or "ringmaster"


_NODE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


class ClusterSettings(_Section):
    """Tenant shards held by several daemons (docs/cluster.md); off with ``shards = 0``.

    The timing follows the takeover target (a dead node's shards running elsewhere
    within 3 s, median): a lease lapses ``lease_ttl_s`` after its last renewal, so
    takeover waits between ``lease_ttl_s - renew_interval_s`` and ``lease_ttl_s``
    (1.75 s on average with the defaults), leaving about a second to connect the
    shard's MQTT session and restore its state.
    """

    shards: int = Field(default=0, ge=0, le=4096)
    """The fixed number of tenant shards; 0 runs no cluster (one daemon, every tenant)."""
    node: str = Field(default_factory=_host_name)
    """This daemon's name among the cluster's nodes; the host name by default."""
    lease_ttl_s: float = Field(default=2.0, gt=0, le=600)
    """How long a shard's lease lasts after its last renewal."""
    renew_interval_s: float = Field(default=0.5, gt=0, le=200)
    """How often a holder renews its leases and writes its heartbeat."""
    heartbeat_ttl_s: float = Field(default=2.0, gt=0, le=600)
    """How long after its last heartbeat a node still counts as live for placement."""
    clock_margin_s: float = Field(default=0.1, ge=0, le=60)
    """How much earlier than the database a holder considers its lease lapsed."""

    @field_validator("node")
    @classmethod
    def _check_node(cls, node: str) -> str:
        if not _NODE_NAME.fullmatch(node):
            raise ValueError("a node name is 1 to 64 of A-Z a-z 0-9 . _ -")
        return node

    @_model_validator(mode="after")
    def _check_timing(self) -> Self:
        # Three renewals per lease: two lost in a row still leave the lease held.
        if self.renew_interval_s * 3 > self.lease_ttl_s:
            raise ValueError("renew_interval_s must be at most a third of lease_ttl_s")
        if self.renew_interval_s * 3 > self.heartbeat_ttl_s:
            raise ValueError("renew_interval_s must be at most a third of heartbeat_ttl_s")
        if self.clock_margin_s >= self.renew_interval_s:
            raise ValueError("clock_margin_s must be less than renew_interval_s")
        return self


def _is_postgresql(database: DatabaseSettings) -> bool:
    return not isinstance(database.target, Path)  # a file is SQLite


class HistorySettings(_Section):
    """The call and agent history (docs/history.md)."""

    retention_days: int = Field(default=90, ge=0, le=36_500)
    """Days an ended call's history and agent activity are kept; 0 keeps them forever."""
    queue_log_file: Path | None = None
    """Also append Asterisk's queue_log lines to this file as calls go (docs/queue_log.md);
    off by default. The same lines are at ``GET /api/queue-log``."""
    queue_log_agent: str = "Local/{number}"
    """How the queue_log names an agent: ``{number}`` is its extension number."""

    @field_validator("queue_log_agent")
    @classmethod
    def _check_queue_log_agent(cls, agent: str) -> str:
        try:
            named = agent.format(number="101")
        except (KeyError, IndexError, ValueError):
            raise ValueError("may name {number} and nothing else") from None
        if "{number}" not in agent or "|" in named:
            raise ValueError("must contain {number}, and no |")
        return agent


class LogSettings(_Section):
    """Log output."""

    format: Literal["auto", "json", "console"] = "auto"
    """``auto`` is JSON lines when stderr is not a terminal (systemd), console otherwise."""
    level: str = "info"

    @field_validator("level")
    @classmethod
    def _check_level(cls, level: str) -> str:
        normalized = level.strip().lower()
        if normalized not in _LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(_LOG_LEVELS)}")
        return normalized


class EmbeddedBrokerSettings(_Section):
    """The private mosquitto started when ``mqtt.url`` is not set."""

    host: str = "127.0.0.1"
    # Not 1883: on Debian the mosquitto package starts a system broker there.
    port: int = Field(default=1884, ge=0, le=65535)
    """0 picks a free port."""
    mosquitto: str = "mosquitto"
    """The mosquitto binary: a name looked up on PATH, or a path."""
    data_dir: Path = Path("var/mosquitto")


#: A token given as its hash: ``sha256:`` and the 64 hex digits of ``sha256sum``.
SHA256_PREFIX = "sha256:"
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# No '#': the names given to unnamed tokens (admin#1) have one, so the two never clash.
_TOKEN_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


class ApiToken(_Section):
    """One bearer token: in clear or as ``sha256:<hex>``, with an optional name.

    Written as a string (``"sha256:..."``) or a table (``{name = "wallboard",
    token = "sha256:..."}``). The name, never the token, says in logs and audit
    records which token a caller used.
    """

    token: SecretStr
    name: str | None = None

    @_model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"token": value} if isinstance(value, str | SecretStr) else value

    @field_validator("token")
    @classmethod
    def _check_token(cls, token: SecretStr) -> SecretStr:
        value = token.get_secret_value()
        # A blank token would let any caller who sends an empty bearer value in.
        if not value.strip():
            raise ValueError("a token must not be empty or only whitespace")
        if value.startswith(SHA256_PREFIX):
            digest = value.removeprefix(SHA256_PREFIX)
            if not _SHA256_HEX.fullmatch(digest):
                raise ValueError(
                    "a sha256: token must be 64 hexadecimal digits"
                    " (without the '  -' that sha256sum prints after them)"
                )
            if digest.lower() == _EMPTY_SHA256:
                raise ValueError("sha256: is the hash of an empty token")
        return token

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str | None) -> str | None:
        if name is not None and not _TOKEN_NAME.fullmatch(name):
            raise ValueError("a token name is 1 to 64 of A-Z a-z 0-9 . _ @ -")
        return name

    def digest(self) -> bytes:
        """The token's SHA-256: what a presented token's hash is compared with."""
        value = self.token.get_secret_value()
        if value.startswith(SHA256_PREFIX):
            return bytes.fromhex(value.removeprefix(SHA256_PREFIX))
        return hashlib.sha256(value.encode()).digest()


class _TokenFileContent(_Section):
    admin_tokens: list[ApiToken] = Field(default_factory=list)
    tenant_tokens: dict[int, list[ApiToken]] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TokenFile:
    """API tokens read from a TOML file (``admin_tokens``, ``[tenant_tokens]``).

    Attributes:
        source: The setting's value (a path or ``credential:NAME``).
        path: The file read.
        admin_tokens: Tokens that may administer every tenant.
        tenant_tokens: Tokens per tenant id.
    """

    source: str
    path: Path
    admin_tokens: tuple[ApiToken, ...] = field(repr=False)
    tenant_tokens: dict[int, tuple[ApiToken, ...]] = field(repr=False)


def _token_file(value: object) -> TokenFile:
    if isinstance(value, TokenFile):
        return value
    source, path, text = _read_source(value)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from None
    try:
        content = _TokenFileContent.model_validate(data)
    except ValidationError as exc:
        # Only locations and messages: pydantic's own text quotes the input, a token.
        problems = []
        for error in exc.errors():
            loc = ".".join(str(part) for part in error["loc"])
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{loc}: {message.removeprefix('Value error, ')}")
        raise ValueError(f"{path}: {'; '.join(problems)}") from None
    return TokenFile(
        source,
        path,
        tuple(content.admin_tokens),
        {tenant: tuple(tokens) for tenant, tokens in content.tenant_tokens.items()},
    )


TokenFileSetting = Annotated[TokenFile, PlainValidator(_token_file)]


class ReportSettings(_Section):
    """The interval reports of the admin API (docs/reports.md)."""

    short_abandon_s: float = Field(default=5.0, ge=0, le=3600)
    """A call abandoned after at most this many seconds of waiting is a short abandon:
    counted apart, and left out of ``service_level_all_pct``."""


class ApiSettings(_Section):
    """The HTTP admin API."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    enabled: bool = True
    admin_tokens: list[ApiToken] = Field(default_factory=list)
    """Bearer tokens allowed to administer every tenant."""
    tenant_tokens: dict[int, list[ApiToken]] = Field(default_factory=dict)
    """Bearer tokens per tenant id, each confined to its tenant."""
    tokens_file: TokenFileSetting | None = None
    """A TOML file with more ``admin_tokens`` and ``[tenant_tokens]``, added to these.

    ``credential:NAME`` reads ``$CREDENTIALS_DIRECTORY/NAME`` (systemd's LoadCredential=)."""
    auth_failures_per_minute: int = Field(default=10, ge=1, le=10_000)
    """Failed authentications a client address may make per minute (as a burst, then
    refilled evenly); past them its requests get 429 until one is refilled."""
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=1024 * 1024 * 1024)
    """The largest request body accepted; a larger one gets 413."""
    max_streams: int = Field(default=100, ge=1, le=10_000)
    """Live streams (wallboards) open at once; one more gets 503 with Retry-After."""
    reports: ReportSettings = Field(default_factory=ReportSettings)
    """``[api.reports]``: the interval reports."""

    def all_tokens(self) -> Iterator[tuple[int | None, ApiToken]]:
        """Every token with its tenant id (None for an admin token).

        In order: ``admin_tokens``, then the file's admin tokens, then each tenant's
        (settings first, then file).
        """
        file = self.tokens_file
        for token in (*self.admin_tokens, *(file.admin_tokens if file else ())):
            yield None, token
        tenants = dict.fromkeys([*self.tenant_tokens, *(file.tenant_tokens if file else ())])
        for tenant_id in tenants:
            from_file = file.tenant_tokens.get(tenant_id, ()) if file else ()
            for token in (*self.tenant_tokens.get(tenant_id, []), *from_file):
                yield tenant_id, token

    def has_tokens(self) -> bool:
        """Whether any token is set: a tenant listed with no tokens does not count."""
        return any(True for _ in self.all_tokens())


class Settings(BaseSettings):
    """All of Ringmaster's settings.

    Sources, highest priority first: keyword arguments, ``RINGMASTER_*`` environment
    variables (``__`` separates the section from the key), the TOML file given to
    :func:`load_settings`, the defaults.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
    )

    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    history: HistorySettings = Field(default_factory=HistorySettings)
    log: LogSettings = Field(default_factory=LogSettings)
    broker: EmbeddedBrokerSettings = Field(default_factory=EmbeddedBrokerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)

    @field_validator("cluster")
    @classmethod
    def _check_cluster_database(
        cls, cluster: ClusterSettings, info: ValidationInfo
    ) -> ClusterSettings:
        database = info.data.get("database")
        if cluster.shards and database is not None and not _is_postgresql(database):
            raise ValueError(
                f"shards = {cluster.shards} needs a PostgreSQL database.url"
                " (postgresql://...): the nodes of a cluster share one database"
            )
        return cluster

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Keyword arguments, then environment, then the TOML file (no .env, no secrets dir)."""
        toml_file = _toml_file.get()
        if toml_file is None:
            return (init_settings, env_settings)
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file))


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Load the settings.

    Args:
        config_file: The TOML file to read. None reads ``config/ringmaster.toml`` when it
            exists in the current directory, and nothing otherwise.
        **overrides: Section values that win over every other source (tests, CLI flags).

    Returns:
        The validated settings.

    Raises:
        SettingsError: The file is missing or not valid TOML, or a value is invalid.
    """
    if config_file is None:
        config_file = DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None
    elif not config_file.is_file():
        raise SettingsError(f"{config_file}: config file not found")
    token = _toml_file.set(config_file)
    try:
        return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{config_file}: invalid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"{config_file}: cannot read: {exc.strerror}") from None
    except _SourceError as exc:
        # pydantic-settings raises this when an environment variable holding a list or
        # dict is not valid JSON; its message names the variable.
        raise SettingsError(f"{exc} (a list or table must be given as JSON)") from None
    except ValidationError as exc:
        raise SettingsError(_describe(exc, config_file)) from None
    finally:
        _toml_file.reset(token)


def _describe(exc: ValidationError, config_file: Path | None) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        name = ".".join(loc) or "settings"
        if error["type"] == "extra_forbidden" and len(loc) > _SETTING_DEPTH:
            # Inside a setting's value, say a token's table: the setting itself is known.
            lines.append(f"{name}: unknown key (environment variable {env_var_name(loc)})")
            continue
        if error["type"] == "extra_forbidden":
            where = f" in {config_file}" if config_file is not None else ""
            lines.append(f"{name}: unknown setting{where}")
            continue
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message} (environment variable {env_var_name(loc)})")
    return "; ".join(lines)


def env_var_name(loc: tuple[str, ...]) -> str:
    """The environment variable that sets the setting at ``loc``, e.g. ``("mqtt", "url")``.

    Keys inside a list or dict setting map to the variable of the whole setting,
    which then holds JSON.
    """
    parts: list[str] = []
    model: type[BaseModel] | None = Settings
    for part in loc:
        if model is None or part not in model.model_fields:
            break
        parts.append(part)
        annotation = model.model_fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            model = None
    return ENV_PREFIX + ENV_NESTED_DELIMITER.join(parts).upper()
