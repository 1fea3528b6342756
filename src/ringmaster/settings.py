"""Ringmaster's settings: defaults, then a TOML file, then the environment, then arguments.

Every setting has one dotted name (``mqtt.url``) that is also its TOML table and key
(``[mqtt] url = ...``) and its environment variable (``RINGMASTER_MQTT__URL``).
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
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

_LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

# The TOML file for the Settings being built. A context variable rather than a class
# attribute so that loading two files concurrently (tests) cannot mix them up.
_toml_file: ContextVar[Path | None] = ContextVar("ringmaster_toml_file", default=None)


class SettingsError(Exception):
    """The settings cannot be loaded; the message names the offending setting."""


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
    topic_prefix: str = "ringmaster"
    client_id: str = Field(default="ringmaster", min_length=1, max_length=128)
    session_expiry_s: int = Field(default=86400, ge=0, le=0xFFFFFFFF)
    keepalive_s: int = Field(default=30, ge=5, le=65535)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        _parse_url(url)
        return url

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
        """The parsed ``url``, or None when the embedded broker is to be used."""
        return None if self.url is None else _parse_url(self.url)

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
        """Password from ``url``, percent-decoded."""
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


class DatabaseSettings(_Section):
    """The SQLite state file."""

    path: Path = Path("var/ringmaster.sqlite3")


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


def _token(value: SecretStr) -> SecretStr:
    # A blank token would let any caller who sends an empty bearer value in.
    if not value.get_secret_value().strip():
        raise ValueError("a token must not be empty or only whitespace")
    return value


ApiToken = Annotated[SecretStr, AfterValidator(_token)]


class ApiSettings(_Section):
    """The HTTP admin API."""

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    enabled: bool = True
    admin_tokens: list[ApiToken] = Field(default_factory=list)
    """Bearer tokens allowed to administer every tenant."""
    tenant_tokens: dict[int, list[ApiToken]] = Field(default_factory=dict)
    """Bearer tokens per tenant id, each confined to its tenant."""

    def has_tokens(self) -> bool:
        """Whether any token is set: a tenant listed with no tokens does not count."""
        return bool(self.admin_tokens) or any(self.tenant_tokens.values())


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
    log: LogSettings = Field(default_factory=LogSettings)
    broker: EmbeddedBrokerSettings = Field(default_factory=EmbeddedBrokerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)

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
