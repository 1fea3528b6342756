"""``[cluster]``: off by default, checked timing, and only on a PostgreSQL database."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from ringmaster.cluster.leases import LeaseTiming
from ringmaster.settings import DatabaseSettings, SettingsError, _is_postgresql, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("RINGMASTER_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_no_cluster_by_default_and_the_node_is_named_after_the_host() -> None:
    cluster = load_settings().cluster
    assert cluster.shards == 0
    assert cluster.node == (os.uname().nodename or "ringmaster")
    assert LeaseTiming.from_settings(cluster) == LeaseTiming(2.0, 0.5, 2.0, 0.1)


def test_a_cluster_on_sqlite_is_refused_naming_the_setting() -> None:
    needs = r"cluster: shards = 4 needs a PostgreSQL database\.url"
    with pytest.raises(SettingsError, match=needs):
        load_settings(None, cluster={"shards": 4})


def test_only_a_postgresql_url_makes_a_database_fit_for_a_cluster() -> None:
    def with_url(url: str) -> DatabaseSettings:
        return DatabaseSettings(url=url)

    assert _is_postgresql(with_url("postgresql://ringmaster@db/ringmaster"))
    assert _is_postgresql(with_url("postgres://db/ringmaster"))
    assert not _is_postgresql(with_url("sqlite:///var/ringmaster.sqlite3"))
    assert not _is_postgresql(DatabaseSettings())


def test_a_cluster_on_a_postgresql_url_is_accepted() -> None:
    settings = load_settings(
        None, cluster={"shards": 4}, database={"url": "postgresql://ringmaster@db/ringmaster"}
    )
    assert settings.cluster.shards == 4


@pytest.mark.parametrize(
    ("cluster", "message"),
    [
        ({"shards": -1}, "cluster.shards: Input should be greater than or equal to 0"),
        ({"node": "two words"}, "cluster.node: a node name is 1 to 64 of"),
        ({"node": ""}, "cluster.node: a node name is 1 to 64 of"),
        ({"renew_interval_s": 1.0}, "renew_interval_s must be at most a third of lease_ttl_s"),
        (
            {"heartbeat_ttl_s": 1.0},
            "renew_interval_s must be at most a third of heartbeat_ttl_s",
        ),
        ({"clock_margin_s": 0.5}, "clock_margin_s must be less than renew_interval_s"),
        ({"lease_ttl_s": 0}, "cluster.lease_ttl_s: Input should be greater than 0"),
    ],
)
def test_bad_cluster_settings_are_refused_with_their_name(
    cluster: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        load_settings(None, cluster=cluster)


def test_the_cluster_settings_come_from_the_environment_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RINGMASTER_CLUSTER__NODE", "acd-2")
    monkeypatch.setenv("RINGMASTER_CLUSTER__LEASE_TTL_S", "3.0")
    cluster = load_settings().cluster
    assert (cluster.node, cluster.lease_ttl_s) == ("acd-2", 3.0)
