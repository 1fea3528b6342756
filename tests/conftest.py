from collections.abc import Iterator

import pytest

from ringmaster.daemon.broker import (
    BrokerError,
    MosquittoProcess,
    resolve_mosquitto,
    start_mosquitto,
)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoProcess]:
    """A real mosquitto on a free loopback port for the whole session.

    Integration tests need the real broker's behaviour (sessions, QoS 1 redelivery,
    retained messages), so a missing binary is a failure, not a skip: CI must not go
    green by testing nothing.
    """
    try:
        resolve_mosquitto()
    except BrokerError as exc:
        pytest.fail(str(exc), pytrace=False)
    broker = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    try:
        yield broker
    finally:
        broker.close()
