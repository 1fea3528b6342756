"""``ringmaster run --workers N``: what it refuses before starting anything.

The workers themselves run in tests/integration/test_workers.py (a private PostgreSQL
and mosquitto).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import pytest

from ringmaster.cli import main
from ringmaster.daemon.broker import free_port

T = TypeVar("T")

A_POSTGRESQL_URL = "postgresql://ringmaster@127.0.0.1:1/ringmaster"  # never connected to


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no config/ringmaster.toml: the defaults and these
    monkeypatch.setenv("RINGMASTER_DATABASE__PATH", str(tmp_path / "rm.sqlite3"))
    monkeypatch.setenv("RINGMASTER_LOG__LEVEL", "warning")


def _refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["run", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1, err  # one line
    return err


def test_workers_without_a_cluster_on_sqlite_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    err = _refused(capsys, "--workers", "2")
    assert err == (
        "ringmaster: --workers 2 needs a cluster: set cluster.shards (e.g. 8) and a"
        " PostgreSQL database.url, see docs/cluster.md\n"
    )
    assert list(tmp_path.iterdir()) == []  # nothing started, no database made


def test_workers_on_postgresql_without_shards_are_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RINGMASTER_DATABASE__PATH")
    monkeypatch.setenv("RINGMASTER_DATABASE__URL", A_POSTGRESQL_URL)
    assert "--workers 3 needs a cluster" in _refused(capsys, "--workers", "3")


def test_shards_on_sqlite_are_refused_as_a_bad_setting(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RINGMASTER_CLUSTER__SHARDS", "4")
    err = _refused(capsys, "--workers", "2")
    assert err.startswith("ringmaster: bad setting: ")
    assert "needs a PostgreSQL database.url" in err


def test_no_workers_at_all_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RINGMASTER_DATABASE__PATH")
    monkeypatch.setenv("RINGMASTER_DATABASE__URL", A_POSTGRESQL_URL)
    monkeypatch.setenv("RINGMASTER_CLUSTER__SHARDS", "4")
    assert _refused(capsys, "--workers", "0") == "ringmaster: --workers 0: at least one worker\n"


def test_a_worker_node_name_too_long_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RINGMASTER_DATABASE__PATH")
    monkeypatch.setenv("RINGMASTER_DATABASE__URL", A_POSTGRESQL_URL)
    monkeypatch.setenv("RINGMASTER_CLUSTER__SHARDS", "4")
    monkeypatch.setenv("RINGMASTER_CLUSTER__NODE", "n" * 63)  # valid; "n...n-1" is 65
    err = _refused(capsys, "--workers", "2")
    assert err == f"ringmaster: --workers 2: the node name '{'n' * 63}-1' is not valid;" + (
        " shorten cluster.node\n"
    )


def test_api_ports_beyond_the_last_are_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RINGMASTER_DATABASE__PATH")
    monkeypatch.setenv("RINGMASTER_DATABASE__URL", A_POSTGRESQL_URL)
    monkeypatch.setenv("RINGMASTER_CLUSTER__SHARDS", "4")
    monkeypatch.setenv("RINGMASTER_API__PORT", "65535")
    assert "api.port + 1 is beyond 65535" in _refused(capsys, "--workers", "2")


# --- the parent, with stand-in workers --------------------------------------------------

#: A stand-in for `ringmaster run`: it writes its node, API port and broker into a file
#: named after its node and pid, exits with $EXIT_<node> if set (once both are up), and
#: on SIGTERM writes a `.stopped` file and exits 0.
STAND_IN = """
import os, pathlib, signal, sys
folder = pathlib.Path(os.environ["WORKERS_TEST_DIR"])
node = os.environ["RINGMASTER_CLUSTER__NODE"]
me = folder / f"{node}.{os.getpid()}"
def stop(signum, frame):
    me.with_suffix(me.suffix + ".stopped").write_text(signal.Signals(signum).name)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
seen = [node, os.environ["RINGMASTER_API__PORT"], os.environ.get("RINGMASTER_MQTT__URL", "")]
seen.append(os.environ.get("NOTIFY_SOCKET", "-"))
me.write_text(" ".join(seen))
if f"EXIT_{node}" in os.environ:
    while len({path.name.split(".")[0] for path in folder.iterdir()}) < 2:
        signal.sigtimedwait([], 0.01)  # the other is up, its SIGTERM handler in place
    sys.exit(int(os.environ[f"EXIT_{node}"]))
while True:
    signal.pause()
"""

#: The parent: `Workers` as `ringmaster run --workers 2` builds it, but for the stand-in.
PARENT = """
import sys
from ringmaster.logs import configure_logging
from ringmaster.settings import load_settings
from ringmaster.workers import Workers
configure_logging("json", "info")
sys.exit(Workers(load_settings(None), 2, [sys.executable, "-c", sys.argv[1]]).run())
"""

WAIT_S = 30.0


def _wait_for(
    found: Callable[[], T | None], what: str, parent: subprocess.Popen[bytes] | None
) -> T:
    """`found()` once it is not None; fails if `parent` (when given) exits first."""
    deadline = time.monotonic() + WAIT_S
    while (value := found()) is None:
        if parent is not None:
            assert parent.poll() is None, f"the parent exited ({parent.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {WAIT_S} s"
        time.sleep(0.02)
    return value


def _workers(folder: Path) -> dict[str, dict[int, list[str]]]:
    """Every stand-in started so far: node -> pid -> what it saw."""
    seen: dict[str, dict[int, list[str]]] = {}
    for path in folder.iterdir():
        node, _, pid = path.name.partition(".")
        if pid.isdigit() and (text := path.read_text()):
            seen.setdefault(node, {})[int(pid)] = text.split(" ")
    return seen


def _written(path: Path) -> str | None:
    """The file's text once written: `write_text` creates it empty, then writes."""
    try:
        return path.read_text() or None
    except FileNotFoundError:
        return None


def _all_started(folder: Path, count: int) -> dict[str, dict[int, list[str]]] | None:
    seen = _workers(folder)
    return seen if len(seen) == count else None


def _parent(folder: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with (folder.parent / "parent.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", PARENT, STAND_IN],
            env={
                **{k: v for k, v in os.environ.items() if k != "RINGMASTER_DATABASE__PATH"},
                "WORKERS_TEST_DIR": str(folder),
                "RINGMASTER_DATABASE__URL": A_POSTGRESQL_URL,
                "RINGMASTER_CLUSTER__SHARDS": "4",
                "RINGMASTER_CLUSTER__NODE": "t",
                "RINGMASTER_LOG__FORMAT": "json",
                "NOTIFY_SOCKET": "@not-systemd",  # not passed on: the parent notifies alone
                **env,
            },
            cwd=folder.parent,
            stderr=log,
        )


def _accepts(url: str) -> bool:
    host, port = url.removeprefix("mqtt://").rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            return True
    except OSError:
        return False


def test_the_parent_starts_restarts_and_stops_its_workers(tmp_path: Path) -> None:
    folder = tmp_path / "workers"
    folder.mkdir()
    port = free_port()
    parent = _parent(
        folder,
        {
            "RINGMASTER_API__PORT": str(port),
            "RINGMASTER_BROKER__PORT": "0",  # the embedded broker, on a free port
            "RINGMASTER_BROKER__DATA_DIR": str(tmp_path / "mosquitto"),
        },
    )
    try:
        first = _wait_for(lambda: _all_started(folder, 2), "workers", parent)
        ((pid0, seen0),) = first["t-0"].items()
        ((pid1, seen1),) = first["t-1"].items()
        assert seen0[:2] == ["t-0", str(port)]
        assert seen1[:2] == ["t-1", str(port + 1)]
        broker = seen0[2]
        assert broker.startswith("mqtt://127.0.0.1:")
        assert seen1[2] == broker
        assert _accepts(broker)  # one embedded broker, started by the parent for both
        assert seen0[3] == seen1[3] == "-"

        os.kill(pid1, signal.SIGKILL)  # a worker dies: started again, the other left alone
        restarted = _wait_for(
            lambda: [p for p in _workers(folder).get("t-1", {}) if p != pid1] or None,
            "restarted t-1",
            parent,
        )
        assert len(restarted) == 1
        assert list(_workers(folder)["t-0"]) == [pid0]

        parent.send_signal(signal.SIGTERM)
        assert parent.wait(WAIT_S) == 0
        stopped = sorted(p.name for p in folder.iterdir() if p.name.endswith(".stopped"))
        assert stopped == [f"t-0.{pid0}.stopped", f"t-1.{restarted[0]}.stopped"]
        assert not _accepts(broker)  # stopped after its workers
    finally:
        parent.kill()
        parent.wait()
    log = (tmp_path / "parent.log").read_text()
    events = [json.loads(line)["event"] for line in log.splitlines()]
    assert events.count("worker.started") == 3
    assert "worker.died" in events
    assert events[-2:] == ["worker.stopped", "worker.stopped"]


def test_a_worker_refusing_its_settings_stops_them_all(tmp_path: Path) -> None:
    folder = tmp_path / "workers"
    folder.mkdir()
    parent = _parent(folder, {"RINGMASTER_MQTT__URL": "mqtt://127.0.0.1:1", "EXIT_t-1": "2"})
    try:
        assert parent.wait(WAIT_S) == 2
    finally:
        parent.kill()
        parent.wait()
    seen = _workers(folder)
    assert len(seen["t-1"]) == 1  # not started again: it would only refuse again
    ((pid0, _),) = seen["t-0"].items()
    assert (folder / f"t-0.{pid0}.stopped").read_text() == "SIGTERM"


def test_a_parent_killed_takes_its_workers_with_it(tmp_path: Path) -> None:
    folder = tmp_path / "workers"
    folder.mkdir()
    parent = _parent(folder, {"RINGMASTER_MQTT__URL": "mqtt://127.0.0.1:1"})
    started: dict[str, dict[int, list[str]]] = {}
    try:
        started = _wait_for(lambda: _all_started(folder, 2), "workers", parent)
        parent.kill()  # nothing forwards anything now: the kernel sends the SIGTERM
        parent.wait()
        for node, pids in started.items():
            ((pid, _),) = pids.items()
            stopped = folder / f"{node}.{pid}.stopped"
            assert _wait_for(partial(_written, stopped), f"{node} stopped", None) == "SIGTERM"
    finally:
        parent.kill()
        parent.wait()
        for pids in started.values():  # orphans, had the test failed
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
