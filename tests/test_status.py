"""`ringmaster status`: its table, and its one-line errors (no daemon needed)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from ringmaster.cli import main
from ringmaster.client import ApiClient, ApiError, api_url
from ringmaster.daemon.broker import free_port
from ringmaster.status import (
    AgentLine,
    CallerLine,
    ClusterStatus,
    NodeLine,
    QueueView,
    ShardLine,
    Today,
    cluster_status,
    duration,
    fetch_cluster,
    render,
)

#: The instant the tables are drawn at, and an agent's state change 42 s, then 1 h 5 min 10 s,
#: before it.
NOW = 1_796_000_000.0

SALES = QueueView(
    queue_id=1,
    tenant_id=1,
    number="600",
    name="Sales",
    strategy="ringall",
    status="active",
    waiting=2,
    longest_wait_s=42.5,
    offered=12,
    answered=9,
    abandoned=1,
    overflowed=0,
    service_level_s=20,
    answered_within=8,
    service_level_pct=88.9,
    agents=[
        AgentLine("101", "Alice", "busy", NOW - 42.7),
        AgentLine("102", "Bob Smith", "ringing", NOW - 3910),
        AgentLine("103", "", "logged_out", None),
    ],
    callers=[
        CallerLine(1, "c-17", 42.5, 5, "queued", "+4930123", "Anna", []),
        CallerLine(2, "c-18", 3725.0, 0, "ringing", "+4930999", "", ["102"]),
    ],
    today=Today(date(2026, 12, 2), "Europe/Berlin", 5, 4, 1, 3, 75.0),
)

QUIET = QueueView(
    queue_id=2,
    tenant_id=1,
    number="700",
    name="Support",
    strategy="leastrecent",
    status="inactive",
    waiting=0,
    longest_wait_s=0.0,
    offered=0,
    answered=0,
    abandoned=0,
    overflowed=0,
    service_level_s=30,
    answered_within=0,
    service_level_pct=None,
    agents=[],
    callers=[],
    today=Today(date(2026, 12, 2), "UTC"),
)


def test_the_table_shows_each_queue_its_agents_and_callers() -> None:
    assert render([SALES, QUIET], NOW) == (
        "600 Sales (queue 1, tenant 1): ringall, active\n"
        "  2 calls waiting, longest wait 0:42\n"
        "  SL today 75.0% within 20 s (3 of 4 answered; 2026-12-02, Europe/Berlin)\n"
        "  today: offered 5, answered 4, abandoned 1\n"
        "  since created: offered 12, answered 9, abandoned 1, overflowed 0; SL 88.9%\n"
        "  Agents:\n"
        "    EXT  NAME       STATE       IN STATE\n"
        "    101  Alice      busy        0:42\n"
        "    102  Bob Smith  ringing     1:05:10\n"
        "    103             logged_out\n"
        "  Callers:\n"
        "    POS  CALL  WAIT     PRIO  STATE    CALLER           RINGING\n"
        "    1    c-17  0:42     5     queued   +4930123 (Anna)\n"
        "    2    c-18  1:02:05  0     ringing  +4930999         102\n"
        "\n"
        "700 Support (queue 2, tenant 1): leastrecent, inactive\n"
        "  no calls waiting\n"
        "  SL today -- within 30 s (no call answered yet; 2026-12-02, UTC)\n"
        "  today: offered 0, answered 0, abandoned 0\n"
        "  since created: offered 0, answered 0, abandoned 0, overflowed 0; SL --\n"
        "  Agents: none enrolled\n"
        "  Callers: none waiting\n"
    )


CLUSTER = ClusterStatus(
    node="a",
    nodes=[NodeLine("a", 0.2, True), NodeLine("b", 75.4, False)],
    shards=[
        ShardLine(0, "a", 3, [1, 7]),
        ShardLine(1, None, 12, [2]),
        ShardLine(2, "a", 1, []),
    ],
)


def test_a_cluster_is_a_short_section_first() -> None:
    assert render([QUIET], NOW, CLUSTER) == (
        "cluster: node a, 2 of 3 shards held\n"
        "  nodes: a, b (down, seen 1:15 ago)\n"
        "  Shards:\n"
        "    SHARD  HOLDER  EPOCH  TENANTS\n"
        "    0      a       3      1, 7\n"
        "    1      (free)  12     2\n"
        "    2      a       1\n"
        "\n"
        "700 Support (queue 2, tenant 1): leastrecent, inactive\n"
        "  no calls waiting\n"
        "  SL today -- within 30 s (no call answered yet; 2026-12-02, UTC)\n"
        "  today: offered 0, answered 0, abandoned 0\n"
        "  since created: offered 0, answered 0, abandoned 0, overflowed 0; SL --\n"
        "  Agents: none enrolled\n"
        "  Callers: none waiting\n"
    )
    assert render([], NOW, CLUSTER).endswith("    2      a       1\n\nno queues\n")


def test_the_api_answer_becomes_the_section_and_no_cluster_shows_nothing() -> None:
    answer = {
        "node": "a",
        "shards": 3,
        "nodes": [
            {"node": "a", "last_seen_s_ago": 0.2, "api_url": "http://a", "alive": True},
            {"node": "b", "last_seen_s_ago": 75.4, "api_url": "", "alive": False},
        ],
        "shard_list": [
            {"shard": 0, "holder": "a", "epoch": 3, "expires_in_s": 1.5, "tenants": [1, 7]},
            {"shard": 1, "holder": None, "epoch": 12, "expires_in_s": None, "tenants": [2]},
            {"shard": 2, "holder": "a", "epoch": 1, "expires_in_s": 1.9, "tenants": []},
        ],
    }
    assert cluster_status(answer) == CLUSTER
    assert cluster_status({"node": "a", "shards": 0, "nodes": [], "shard_list": []}) is None
    assert render([QUIET], NOW, None) == render([QUIET], NOW)
    with pytest.raises(ApiError, match="missing 'epoch'"):
        cluster_status({**answer, "shard_list": [{"shard": 0, "holder": "a", "tenants": []}]})


@pytest.mark.parametrize("refused", [403, 404])
def test_a_tenant_token_or_an_older_daemon_shows_no_cluster(
    refused: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    def get_json(self: ApiClient, path: str) -> None:
        raise ApiError(f"answered {refused}", refused)

    monkeypatch.setattr(ApiClient, "get_json", get_json)
    assert fetch_cluster("http://127.0.0.1:1", "t") is None


def test_another_refusal_of_the_cluster_is_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def get_json(self: ApiClient, path: str) -> None:
        raise ApiError("answered 500", 500)

    monkeypatch.setattr(ApiClient, "get_json", get_json)
    with pytest.raises(ApiError, match="answered 500"):
        fetch_cluster("http://127.0.0.1:1", "t")


def test_no_queue_says_so() -> None:
    assert render([], NOW) == "no queues\n"


def test_a_time_in_state_ahead_of_this_clock_shows_as_zero() -> None:
    agent = AgentLine("101", "Alice", "available", NOW + 2)
    assert "    101  Alice  available  0:00\n" in render([replace(SALES, agents=[agent])], NOW)


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.0, "0:00"), (0.9, "0:00"), (59.9, "0:59"), (61, "1:01"), (3600, "1:00:00")],
)
def test_durations_are_minutes_and_seconds(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:8080"),
        ("::1", "http://[::1]:8080"),
        ("localhost", "http://localhost:8080"),
    ],
)
def test_the_default_url_is_the_settings_api_address(host: str, url: str) -> None:
    assert api_url(host, 8080) == url


def test_no_daemon_is_one_clear_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["status", "--api", url]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err == (
        f"ringmaster status: no daemon answered at {url} (connection refused):"
        " is the daemon running?\n"
    )


def test_without_api_the_settings_say_where_it_listens(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("RINGMASTER_API__PORT", str(port))
    assert main(["status"]) == 1
    _, err = capsys.readouterr()
    assert err.startswith(f"ringmaster status: no daemon answered at http://127.0.0.1:{port} (")


def test_a_bad_setting_is_one_line_too(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RINGMASTER_API__PORT", "0")
    assert main(["status"]) == 1
    _, err = capsys.readouterr()
    assert err.startswith("ringmaster status: bad setting: ")
    assert err.endswith(" (or give --api URL)\n")
    assert err.count("\n") == 1
