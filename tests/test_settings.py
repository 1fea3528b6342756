import os
import re
from pathlib import Path

import pytest

from ringmaster.settings import Settings, SettingsError, env_var_name, load_settings

REPO = Path(__file__).resolve().parent.parent
_COMMENTED_SETTING = re.compile(r"^# (\w+ = .*)$", re.MULTILINE)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("RINGMASTER_")]:
        monkeypatch.delenv(name)
    # load_settings() without a file looks in the current directory.
    monkeypatch.chdir(tmp_path)


def test_defaults_without_a_file() -> None:
    settings = load_settings()
    assert settings == Settings()
    assert settings.mqtt.url is None
    assert settings.mqtt.endpoint() is None
    assert settings.broker.port == 1884


def test_example_file_lists_every_setting_with_its_default(tmp_path: Path) -> None:
    text = (REPO / "config" / "ringmaster.toml").read_text()
    # The example's url is deliberately not the default (None cannot be written in TOML).
    uncommented = _COMMENTED_SETTING.sub(lambda m: "" if m[1].startswith("url ") else m[1], text)
    path = tmp_path / "all.toml"
    path.write_text(uncommented)
    assert load_settings(path) == Settings()
    shown = {m[1].split(" = ")[0] for m in _COMMENTED_SETTING.finditer(text)}
    for section in Settings.model_fields:
        fields = set(type(getattr(Settings(), section)).model_fields)
        assert fields <= shown, f"[{section}] misses {fields - shown}"


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
    assert [t.get_secret_value() for t in tokens[7]] == ["seven"]


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
