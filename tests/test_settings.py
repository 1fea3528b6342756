import os
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from ringmaster.settings import Settings, SettingsError, env_var_name, load_settings

REPO = Path(__file__).resolve().parent.parent
_COMMENTED_SETTING = re.compile(r"^# (\w+ = .*)$", re.MULTILINE)
#: Settings whose default (None, or the host name) cannot be written in TOML: the example
#: shows a value.
_UNSET_BY_DEFAULT = ("url ", "password_file ", "tokens_file ", "queue_log_file ", "node ")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("RINGMASTER_")]:
        monkeypatch.delenv(name)
    # As when not started by systemd with LoadCredential=.
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    # load_settings() without a file looks in the current directory.
    monkeypatch.chdir(tmp_path)


def test_defaults_without_a_file() -> None:
    settings = load_settings()
    assert settings == Settings()
    assert settings.mqtt.url is None
    assert settings.mqtt.endpoint() is None
    assert settings.broker.port == 1884
    assert settings.history.retention_days == 90


def test_the_queue_log_is_off_and_names_agents_as_local_channels_by_default() -> None:
    history = load_settings().history
    assert history.queue_log_file is None
    assert history.queue_log_agent == "Local/{number}"
    assert load_settings(None, history={"queue_log_agent": "PJSIP/{number}"}).history


@pytest.mark.parametrize("agent", ["Local/101", "SIP/{name}", "{number}|x", "{0}"])
def test_a_queue_log_agent_format_must_name_the_number_and_only_it(agent: str) -> None:
    with pytest.raises(SettingsError, match="queue_log_agent"):
        load_settings(None, history={"queue_log_agent": agent})


@pytest.mark.parametrize("days", [-1, 36_501, "soon"])
def test_a_history_retention_out_of_range_is_refused(days: object) -> None:
    with pytest.raises(SettingsError, match="retention_days"):
        load_settings(None, history={"retention_days": days})


def test_example_file_lists_every_setting_with_its_default(tmp_path: Path) -> None:
    text = (REPO / "config" / "ringmaster.toml").read_text()
    uncommented = _COMMENTED_SETTING.sub(
        lambda m: "" if m[1].startswith(_UNSET_BY_DEFAULT) else m[1], text
    )
    path = tmp_path / "all.toml"
    path.write_text(uncommented)
    assert load_settings(path) == Settings()
    shown = {m[1].split(" = ")[0] for m in _COMMENTED_SETTING.finditer(text)}
    for section in Settings.model_fields:
        values = getattr(Settings(), section)
        fields = set(type(values).model_fields)
        # a table within the section ([api.reports]) lists its own settings
        tables = {name for name in fields if isinstance(getattr(values, name), BaseModel)}
        assert fields - tables <= shown, f"[{section}] misses {fields - tables - shown}"
        for table in tables:
            inner = set(type(getattr(values, table)).model_fields)
            assert inner <= shown, f"[{section}.{table}] misses {inner - shown}"


def test_precedence_kwargs_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[mqtt]\ntopic_prefix = "file"\nclient_id = "file"\nkeepalive_s = 10\n')
    monkeypatch.setenv("RINGMASTER_MQTT__TOPIC_PREFIX", "env")
    monkeypatch.setenv("RINGMASTER_MQTT__CLIENT_ID", "env")
    settings = load_settings(path, mqtt={"client_id": "kwarg"})
    assert settings.mqtt.client_id == "kwarg"
    assert settings.mqtt.topic_prefix == "env"
    assert settings.mqtt.keepalive_s == 10


def test_default_file_in_cwd(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "ringmaster.toml").write_text('[database]\npath = "x.db"\n')
    assert load_settings().database.path == Path("x.db")


def test_url_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGMASTER_MQTT__URL", "mqtts://pbx%407:p%3Aw@broker.example")
    mqtt = load_settings().mqtt
    assert (mqtt.host, mqtt.port, mqtt.username, mqtt.password, mqtt.tls) == (
        "broker.example",
        8883,
        "pbx@7",
        "p:w",
        True,
    )
    assert mqtt.redacted_url == "mqtts://pbx@7:***@broker.example:8883"
    assert "p:w" not in repr(load_settings())


def test_tenant_tokens_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "r.toml"
    path.write_text('[api.tenant_tokens]\n7 = ["seven"]\n')
    tokens = load_settings(path).api.tenant_tokens
    assert [t.token.get_secret_value() for t in tokens[7]] == ["seven"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[mqtt]\nurl = "http://x"', "mqtt.url: must start with mqtt:// or mqtts://"),
        ('[mqtt]\ntopic_prefix = "a/+/b"', "mqtt.topic_prefix: must not contain"),
        ('[mqtt]\ntopic_prefix = "a/"', "RINGMASTER_MQTT__TOPIC_PREFIX"),
        ('[log]\nlevel = "loud"', "log.level: must be one of"),
        ('[log]\nformat = "xml"', "log.format:"),
        ("[mqtt]\nreconnect_min_s = 5.0\nreconnect_max_s = 1.0", "reconnect_max_s must be"),
        ("[mqtt]\ntopic_prefx = 'x'", "mqtt.topic_prefx: unknown setting"),
        ("[mqtt", "invalid TOML"),
    ],
)
def test_errors_name_the_setting(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(path)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_env_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGMASTER_API__PORT", "eighty")
    with pytest.raises(SettingsError, match=r"api\.port: .*RINGMASTER_API__PORT"):
        load_settings()


def test_env_var_name() -> None:
    assert env_var_name(("database", "path")) == "RINGMASTER_DATABASE__PATH"
    assert env_var_name(("api", "tenant_tokens", "7", "0")) == "RINGMASTER_API__TENANT_TOKENS"


def test_a_blank_api_token_is_refused_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGMASTER_API__TENANT_TOKENS", '{"1": ["  "]}')
    with pytest.raises(SettingsError, match=r"empty or only whitespace") as raised:
        load_settings()
    assert "RINGMASTER_API__TENANT_TOKENS" in str(raised.value)


# --- secrets in files ----------------------------------------------------------------------

EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_the_broker_password_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("p@ss:word\n")  # `echo` adds the newline; it is not the password's
    path = tmp_path / "r.toml"
    path.write_text(
        f'[mqtt]\nurl = "mqtt://ringmaster@broker.example"\npassword_file = "{secret}"\n'
    )
    mqtt = load_settings(path).mqtt
    assert (mqtt.username, mqtt.password) == ("ringmaster", "p@ss:word")
    assert mqtt.redacted_url == "mqtt://ringmaster:***@broker.example:1883"
    assert "p@ss" not in repr(load_settings(path))


def test_a_credential_is_read_from_the_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What systemd's LoadCredential=mqtt-password:/etc/... gives the daemon.
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt-password").write_text("from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.setenv("RINGMASTER_MQTT__URL", "mqtts://ringmaster@broker.example")
    monkeypatch.setenv("RINGMASTER_MQTT__PASSWORD_FILE", "credential:mqtt-password")
    assert load_settings().mqtt.password == "from-systemd"


@pytest.mark.parametrize(
    ("url", "password_file", "message"),
    [
        ("mqtt://u@h", "missing", r"mqtt\.password_file: missing: cannot read: No such file"),
        ("mqtt://u@h", "credential:mqtt-password", r"mqtt\.password_file: .*CREDENTIALS_DIRECTORY"),
        ("mqtt://u@h", "credential:../x", r"mqtt\.password_file: .*plain file name"),
        ("mqtt://u@h", "empty", r"mqtt\.password_file: empty: is empty"),
        ("mqtt://u:inline@h", "secret", r"mqtt\.password_file: mqtt\.url holds a password too"),
        ("mqtt://h", "secret", r"mqtt\.password_file: mqtt\.url names no user"),
        (None, "secret", r"mqtt\.password_file: needs mqtt\.url"),
    ],
)
def test_a_bad_password_file_names_the_setting_and_the_file_never_the_secret(
    tmp_path: Path, url: str | None, password_file: str, message: str
) -> None:
    (tmp_path / "secret").write_text("s3cr3t-value")
    (tmp_path / "empty").write_text("\n")
    overrides = {"password_file": password_file} | ({} if url is None else {"url": url})
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings(mqtt=overrides)
    assert "s3cr3t-value" not in str(raised.value)
    assert "RINGMASTER_MQTT__PASSWORD_FILE" in str(raised.value)


def test_api_tokens_hashed_named_and_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "api-tokens").write_text(
        'admin_tokens = [{name = "ops", token = "sha256:' + "ab" * 32 + '"}]\n'
        "[tenant_tokens]\n"
        '7 = ["plain-seven"]\n'
    )
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    path = tmp_path / "r.toml"
    path.write_text(
        '[api]\ntokens_file = "credential:api-tokens"\n'
        'admin_tokens = ["in-clear", {name = "wallboard", token = "sha256:' + "CD" * 32 + '"}]\n'
    )
    api = load_settings(path).api
    assert api.has_tokens()
    listed = [(tenant, token.name) for tenant, token in api.all_tokens()]
    assert listed == [(None, None), (None, "wallboard"), (None, "ops"), (7, None)]
    digests = [token.digest() for _, token in api.all_tokens()]
    assert digests[1] == bytes.fromhex("cd" * 32)  # hex in either case
    assert digests[2] == bytes.fromhex("ab" * 32)
    assert "plain-seven" not in repr(api)
    assert "in-clear" not in repr(api)


def test_a_tokens_file_alone_counts_as_tokens(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.toml"
    tokens.write_text('admin_tokens = ["only-here"]\n')
    assert load_settings(api={"tokens_file": str(tokens)}).api.has_tokens()
    tokens.write_text("")
    assert not load_settings(api={"tokens_file": str(tokens)}).api.has_tokens()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('admin_tokens = ["   "]', r"api\.tokens_file: .*tokens\.toml: admin_tokens\.0.*empty"),
        ("admin_tokens = [", r"api\.tokens_file: .*tokens\.toml: invalid TOML"),
        ('admin_token = ["x"]', r"api\.tokens_file: .*tokens\.toml: admin_token: unknown"),
        ('[tenant_tokens]\nseven = ["x"]', r"api\.tokens_file: .*tenant_tokens\.seven"),
    ],
)
def test_a_bad_tokens_file_names_the_setting_and_the_file(
    tmp_path: Path, content: str, message: str
) -> None:
    (tmp_path / "tokens.toml").write_text(content)
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings(api={"tokens_file": str(tmp_path / "tokens.toml")})
    assert "RINGMASTER_API__TOKENS_FILE" in str(raised.value)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("sha256:abc", "64 hexadecimal digits"),
        ("sha256:" + "g" * 64, "64 hexadecimal digits"),
        (f"sha256:{EMPTY_SHA256}  -", "64 hexadecimal digits"),
        (f"sha256:{EMPTY_SHA256}", "the hash of an empty token"),
        ({"name": "has space", "token": "t"}, "name"),
        ({"name": "admin#1", "token": "t"}, "name"),
        ({"name": "x", "token": "t", "role": "admin"}, "role"),
    ],
)
def test_bad_token_entries_are_refused(token: Any, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings(api={"admin_tokens": [token]})
    assert "RINGMASTER_API__ADMIN_TOKENS" in str(raised.value)


def test_abuse_limits_have_sane_defaults_and_bounds() -> None:
    api = load_settings().api
    assert (api.auth_failures_per_minute, api.max_body_bytes) == (10, 1024 * 1024)
    with pytest.raises(SettingsError, match=r"api\.auth_failures_per_minute"):
        load_settings(api={"auth_failures_per_minute": 0})
    with pytest.raises(SettingsError, match=r"api\.max_body_bytes"):
        load_settings(api={"max_body_bytes": 100})


def test_the_short_abandon_threshold_is_an_api_reports_setting(tmp_path: Path) -> None:
    assert Settings().api.reports.short_abandon_s == 5.0
    path = tmp_path / "r.toml"
    path.write_text("[api.reports]\nshort_abandon_s = 8\n")
    assert load_settings(path).api.reports.short_abandon_s == 8.0
    with pytest.raises(SettingsError, match="short_abandon_s"):
        load_settings(None, api={"reports": {"short_abandon_s": -1}})


# --- database.url ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("database", "target"),
    [
        ({}, Path("var/ringmaster.sqlite3")),
        ({"path": "/srv/rm.db"}, Path("/srv/rm.db")),
        ({"url": "sqlite:///var/x.sqlite3"}, Path("var/x.sqlite3")),
        ({"url": "sqlite:////srv/x.sqlite3"}, Path("/srv/x.sqlite3")),
        # the same file both ways is no disagreement
        ({"url": "sqlite:////srv/x.sqlite3", "path": "/srv/x.sqlite3"}, Path("/srv/x.sqlite3")),
        ({"url": "postgresql://rm:pw@db:5432/acd"}, "postgresql://rm:pw@db:5432/acd"),
        ({"url": "postgres://rm@db/acd"}, "postgres://rm@db/acd"),
    ],
)
def test_the_database_is_a_path_or_a_url(database: dict[str, str], target: Path | str) -> None:
    assert load_settings(database=database).database.target == target


@pytest.mark.parametrize(
    ("database", "message"),
    [
        (
            {"url": "postgresql://rm:s3cr3t-value@db/acd", "path": "x.db"},
            "database.url and database.path name different databases",
        ),
        ({"url": "sqlite:///a.db", "path": "b.db"}, "name different databases"),
        ({"url": "mysql://rm:s3cr3t-value@db/acd"}, "must start with sqlite:///, postgresql://"),
        ({"url": "postgresql://rm:s3cr3t-value@db"}, "names no database"),
        ({"url": "postgresql://rm:s3cr3t-value@db:99999/acd"}, "invalid port"),
        ({"url": "sqlite://x.db"}, "sqlite:///relative/path"),
    ],
)
def test_a_bad_database_url_is_refused_never_showing_the_password(
    database: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message) as raised:
        load_settings(database=database)
    assert "s3cr3t-value" not in str(raised.value)


def test_the_database_password_stays_out_of_reprs_and_logs() -> None:
    settings = load_settings(database={"url": "postgresql://rm:s3cr3t-value@db:5432/acd"})
    assert "s3cr3t-value" not in repr(settings)
    assert settings.database.redacted == "postgresql://rm:***@db:5432/acd"
    sqlite = load_settings(database={"path": "/srv/rm.db"})
    assert sqlite.database.redacted == "/srv/rm.db"


def test_monitoring_qos_comes_from_the_environment_as_a_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RINGMASTER_MQTT__MONITORING_QOS", "0")
    assert load_settings(None).mqtt.monitoring_qos == 0
    monkeypatch.setenv("RINGMASTER_MQTT__MONITORING_QOS", "2")
    with pytest.raises(SettingsError, match="monitoring_qos"):
        load_settings(None)
