import asyncio
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import uvloop
from hypothesis import settings

from ringmaster.daemon.broker import (
    BrokerError,
    MosquittoProcess,
    resolve_mosquitto,
    start_mosquitto,
)

from .postgres import PostgresCluster, PostgresError, start_postgres
from .store_backends import BACKENDS, Databases

# The suite draws the same examples on every run: CI never goes red by chance (a random
# search once found a flaw of the engine's property test mid-session). To search for new
# examples, run with HYPOTHESIS_PROFILE=explore; what it finds gets a test of its own.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))


#: The event loops the async tests may run on: asyncio's (the default) or uvloop's, which
#: `ringmaster run` uses; RINGMASTER_TEST_LOOP=uvloop runs the suite on uvloop's.
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The loop of every async test: RINGMASTER_TEST_LOOP's, default asyncio's."""
    name = os.environ.get("RINGMASTER_TEST_LOOP", "asyncio")
    if name not in LOOPS:
        raise pytest.UsageError(f"RINGMASTER_TEST_LOOP={name!r}: one of {', '.join(LOOPS)}")
    return {name: LOOPS[name]}


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


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster on a free loopback port for the whole session.

    Started only when a test asks for it (the first costs ~1 s: initdb and start), and
    stopped at the end of the session, failed or not. fsync and synchronous_commit are
    off: no test survives an operating-system crash, and a killed server loses nothing
    either way. A missing PostgreSQL is a failure, not a skip, as for mosquitto.
    """
    try:
        cluster = start_postgres(durable=False)
    except PostgresError as exc:
        pytest.fail(str(exc), pytrace=False)
    with cluster:
        yield cluster


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> Iterator[str]:
    """The URL of a new empty database in the session's cluster, dropped after the test."""
    name = postgres.create_database()
    try:
        yield postgres.url(name)
    finally:
        postgres.drop_database(name)


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    """Databases by name on each backend in turn: the store's tests run on both."""
    cluster = request.getfixturevalue("postgres") if request.param == "postgresql" else None
    made = Databases(request.param, tmp_path, cluster)
    try:
        yield made
    finally:
        made.close()
