"""`ringmaster provision FILE`: through the daemon if one answers, else on the database file."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ringmaster.cli import main
from ringmaster.daemon.broker import free_port
from ringmaster.store import Store

FILE = """
[[tenant]]
id = 1
name = "Acme"

[[extension]]
tenant_id = 1
number = "101"
"""

REPORT = [
    "tenants: 1 created, 0 updated, 0 unchanged",
    "extensions: 1 created, 0 updated, 0 unchanged",
    "queues: 0 created, 0 updated, 0 unchanged",
    "enrolments: 0 created, 0 updated, 0 unchanged",
    "did_routes: 0 created, 0 updated, 0 unchanged",
]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file to provision; the settings' database in `tmp_path`, its API on a free port."""
    monkeypatch.setenv("RINGMASTER_DATABASE__PATH", str(tmp_path / "rm.sqlite3"))
    monkeypatch.setenv("RINGMASTER_API__PORT", str(free_port()))
    monkeypatch.setenv("RINGMASTER_LOG__LEVEL", "warning")
    monkeypatch.delenv("RINGMASTER_API_TOKEN", raising=False)
    path = tmp_path / "site.toml"
    path.write_text(FILE)
    return path


async def _tenants(db: Path) -> list[str]:
    async with await Store.open(db) as store, store.snapshot() as tx:
        return [t.name for t in (await tx.tenants(None, limit=10)).items]


def test_without_a_daemon_the_file_is_written_and_says_so(
    site: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = int(os.environ["RINGMASTER_API__PORT"])
    db = site.parent / "rm.sqlite3"
    assert main(["provision", str(site)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.splitlines() == [
        *REPORT,
        f"no daemon answered at http://127.0.0.1:{port}: applied to the database file {db};"
        " it takes effect when the daemon starts",
    ]
    assert asyncio.run(_tenants(db)) == ["Acme"]


def test_offline_writes_the_file_without_asking(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["provision", "--offline", str(site)]) == 0
    assert capsys.readouterr().out.splitlines() == REPORT
    assert asyncio.run(_tenants(site.parent / "rm.sqlite3")) == ["Acme"]


def test_an_invalid_file_without_a_daemon_is_its_lines(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site.write_text(FILE.replace('number = "101"', "number = 101"))
    assert main(["provision", str(site)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"{site}: extension[1].number: Input should be a valid string"
        " (entry: tenant 1, number 101)\n"
    )


def test_a_missing_file_is_one_line(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["provision", str(site.parent / "none.toml")]) == 1
    assert capsys.readouterr().err == (
        f"{site.parent / 'none.toml'}: cannot read: No such file or directory\n"
    )


class _Refuses(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.dumps({"detail": "an admin token is required"}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def refusing() -> Iterator[str]:
    """A daemon's API that refuses the token."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_refusing_daemon_is_printed_and_never_falls_back_to_the_file(
    site: Path, refusing: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["provision", str(site), "--api", refusing, "--token", "t1"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"ringmaster provision: {refusing} answered 403: an admin token is required\n"
    assert not (site.parent / "rm.sqlite3").exists()
