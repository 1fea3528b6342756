"""Per-arrival timestamps inside the daemon, for `python -m bench.trace_arrival`.

Put on the daemon's PYTHONPATH (`BENCH_DAEMON_PYTHONPATH=bench/trace_hooks:src`) with
`TRACE_OUT` set, it wraps a few of the daemon's functions and, when the daemon exits,
writes what it saw to `TRACE_OUT` as JSON: when each `call/arrived` was read from the
socket and parsed, when its turn took it, each turn's commit (start, end, the calls it
rang), when each ring was handed to paho and each write to the socket, and each
garbage collection. The clock is `perf_counter_ns` (CLOCK_MONOTONIC: the same in the
generator's process). An instrument, not part of Ringmaster: it costs the daemon some
CPU (a JSON parse per arrival and ring), so its figures are a little slower than a
plain run's.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

OUT = os.environ.get("TRACE_OUT")


def _call_id(payload: bytes | str) -> str | None:
    try:
        return str(json.loads(payload)["call_id"])
    except (ValueError, KeyError, TypeError):
        return None


def _install(out: str) -> None:  # noqa: PLR0915 - one wrapper per traced step, read as one
    from ringmaster.daemon import mqtt, mqtt_connection, service  # noqa: PLC0415
    from ringmaster.store import database  # noqa: PLC0415

    now = time.perf_counter_ns
    seen: list[list[Any]] = []
    state = {"read": 0, "gc": 0}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            state["gc"] = now()
        else:
            seen.append(["g", info["generation"], state["gc"], now()])

    gc.callbacks.append(on_gc)

    buffer_reads = mqtt_connection.buffer_reads

    def buffer_reads_traced(client: Any) -> None:
        buffer_reads(client)
        read = client.loop_read

        def loop_read(max_packets: int = 1) -> Any:
            state["read"] = now()
            return read(max_packets)

        client.loop_read = loop_read

    # Rebound where the link calls it (it imported the name).
    setattr(mqtt, "buffer_reads", buffer_reads_traced)  # noqa: B010

    write = mqtt_connection._write_coalesced

    def write_traced(client: Any) -> Any:
        before = len(client._out_packet)
        result = write(client)
        if len(client._out_packet) < before:  # something went out (not EAGAIN, not empty)
            seen.append(["w", now()])
        return result

    setattr(mqtt_connection, "_write_coalesced", write_traced)  # noqa: B010

    deliver = mqtt.MqttLink._deliver

    def deliver_traced(self: Any, connection: Any, message: Any) -> None:
        if message.topic.endswith("/pbx/call/arrived"):
            seen.append(["r", _call_id(message.payload), state["read"], now()])
        deliver(self, connection, message)

    setattr(mqtt.MqttLink, "_deliver", deliver_traced)  # noqa: B010

    take = service.Service._take

    def take_traced(self: Any, received: Any, at: float) -> Any:
        if received.message.topic.endswith("/pbx/call/arrived"):
            seen.append(["k", _call_id(received.message.payload), now()])
        return take(self, received, at)

    setattr(service.Service, "_take", take_traced)  # noqa: B010

    commit = database.Store.commit

    async def commit_traced(self: Any, changes: Any, outbox: Any, *args: Any, **kw: Any) -> Any:
        started = now()
        seqs = await commit(self, changes, outbox, *args, **kw)
        rings = [_call_id(m.payload) for m in outbox if "/cmd/ring" in m.topic]
        seen.append(["c", started, now(), len(outbox), rings])
        return seqs

    setattr(database.Store, "commit", commit_traced)  # noqa: B010

    send = mqtt.MqttLink.send

    def send_traced(self: Any, seq: int, message: Any) -> bool:
        if "/cmd/ring" in message.topic:
            seen.append(["s", _call_id(message.payload), now()])
        return send(self, seq, message)

    setattr(mqtt.MqttLink, "send", send_traced)  # noqa: B010

    def dump() -> None:
        Path(out).write_text(json.dumps(seen), encoding="utf-8")

    atexit.register(dump)


if OUT and "run" in sys.argv:
    _install(OUT)
