"""`ringmaster.client`: each failure of the admin API is one printable line."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from ringmaster.client import ApiClient, ApiError, NoDaemonError
from ringmaster.daemon.broker import free_port


class _Answers(BaseHTTPRequestHandler):
    """Answers every request with the status and JSON body its path names."""

    answers: ClassVar[dict[str, tuple[int, Any]]] = {}
    seen: ClassVar[list[tuple[str, str, bytes, str | None]]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.seen.append((self.command, self.path, body, self.headers.get("Content-Type")))
        status, answer = self.answers[self.path]
        data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Answers.seen.clear()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_connection_refused_is_no_daemon() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NoDaemonError) as refused:
        ApiClient(url, None).get_json("/api/queues")
    assert str(refused.value) == (
        f"no daemon answered at {url} (connection refused): is the daemon running?"
    )
    assert refused.value.status is None


def test_an_http_error_carries_the_apis_detail(server: str) -> None:
    _Answers.answers = {"/api/provision": (403, {"detail": "needs an admin token"})}
    with pytest.raises(ApiError) as refused:
        ApiClient(server, "t").post_text("/api/provision", "x = 1")
    assert not isinstance(refused.value, NoDaemonError)
    assert str(refused.value) == f"{server} answered 403: needs an admin token"
    assert refused.value.status == 403


def test_a_422_lists_its_field_errors_one_a_line(server: str) -> None:
    detail = [
        {"loc": ["body", "queue_id"], "msg": "Input should be a valid integer", "type": "x"},
        "a.toml: queue[1].timeout: Input should be greater than or equal to 1",
    ]
    _Answers.answers = {"/api/x": (422, {"detail": detail})}
    with pytest.raises(ApiError) as refused:
        ApiClient(server, None).post_json("/api/x", {"queue_id": "a"})
    assert refused.value.errors == (
        "queue_id: Input should be a valid integer",
        "a.toml: queue[1].timeout: Input should be greater than or equal to 1",
    )
    assert str(refused.value) == f"{server} answered 422: " + "; ".join(refused.value.errors)


def test_requests_carry_the_token_and_body(server: str) -> None:
    _Answers.answers = {"/api/a": (200, {"ok": 1}), "/api/b": (200, [1])}
    client = ApiClient(server + "/", "s3cret")
    assert client.post_text("/api/a", "é", "application/toml") == {"ok": 1}
    assert client.post_json("/api/b", {"n": 2}) == [1]
    assert _Answers.seen == [
        ("POST", "/api/a", "é".encode(), "application/toml; charset=utf-8"),
        ("POST", "/api/b", b'{"n": 2}', "application/json"),
    ]


def test_an_answer_that_is_not_json_is_one_line(server: str) -> None:
    _Answers.answers = {"/api/a": (200, b"<html>")}
    with pytest.raises(ApiError, match=r"/api/a did not answer JSON: is it Ringmaster's API\?$"):
        ApiClient(server, None).get_json("/api/a")
