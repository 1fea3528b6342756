"""The broker password from a systemd credential, against a mosquitto that needs one."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from ringmaster.daemon.broker import free_port, resolve_mosquitto
from ringmaster.settings import load_settings

from .pbx import WAIT_S, running

pytestmark = pytest.mark.integration

PASSWORD = "s3cret:pw@1"


@pytest.fixture
def locked_broker(tmp_path: Path) -> Iterator[int]:
    """A mosquitto refusing anonymous clients, with user `ringmaster`; yields its port."""
    passwd_tool = shutil.which("mosquitto_passwd")
    if passwd_tool is None:
        pytest.fail("mosquitto_passwd not found (Debian package 'mosquitto')", pytrace=False)
    passwd = tmp_path / "passwd"
    subprocess.run([passwd_tool, "-b", "-c", passwd, "ringmaster", PASSWORD], check=True)
    port = free_port()
    config = tmp_path / "mosquitto.conf"
    # As root, mosquitto would switch to user mosquitto, who cannot read tmp_path.
    user = "user root\n" if os.geteuid() == 0 else ""
    config.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n{user}"
    )
    broker = subprocess.Popen(
        [resolve_mosquitto(), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield port
    finally:
        broker.terminate()
        broker.wait(WAIT_S)


async def _accepting(port: int) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # polling for the broker to start, not timing
                continue
            writer.close()
            await writer.wait_closed()
            return


async def test_the_daemon_logs_in_with_the_password_of_its_credential(
    locked_broker: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _accepting(locked_broker)
    with pytest.raises(aiomqtt.MqttError):  # the broker does need the password
        async with aiomqtt.Client("127.0.0.1", locked_broker, identifier="anonymous"):
            pass
    credentials = tmp_path / "credentials"  # what LoadCredential= makes
    credentials.mkdir()
    (credentials / "mqtt-password").write_text(PASSWORD + "\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    prefix = f"rm{uuid.uuid4().hex[:10]}"
    settings = load_settings(
        None,
        mqtt={
            "url": f"mqtt://ringmaster@127.0.0.1:{locked_broker}",
            "password_file": "credential:mqtt-password",
            "topic_prefix": prefix,
            "client_id": f"ringmaster-{prefix}",
        },
        database={"path": tmp_path / "rm.sqlite3"},
        api={"enabled": False},
    )
    async with running(settings) as service:
        assert service.ready.is_set()
