"""``python -m bench.live_latency [N]``: from a PBX's message to the wallboard's board.

A private mosquitto and a daemon on a fresh store; a client reads
``/api/live/1/stream`` as the wallboard does, while a PBX publishes N calls
(``pbx/call/arrived``) one after another: each once the previous one is on the
board (back to back: the stream's coalescing, at most a board per 250 ms, holds
each), then as many after a quiet half second each. Prints the delays from
publishing to the board that has the call.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.integration.pbx import daemon_in_process, new_store, pbx_on

from ringmaster.daemon.broker import free_port, start_mosquitto


async def main(calls: int) -> None:
    """Publish `calls` calls and print how long each took to reach the stream."""
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        broker = start_mosquitto(tmp / "mosquitto")
        try:
            prefix, db = await new_store(tmp, "ringall", agents=1)
            port = free_port()
            async with (
                pbx_on(broker, prefix) as pbx,
                daemon_in_process(broker, prefix, db, api_port=port),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api,
                api.stream("GET", "/api/live/1/stream") as stream,
            ):
                lines = stream.aiter_lines()
                delays: dict[str, list[float]] = {"back to back": [], "after 0.5 s quiet": []}
                for n in range(2 * calls):
                    kind = "back to back" if n < calls else "after 0.5 s quiet"
                    if n >= calls:
                        await asyncio.sleep(0.5)
                    call = f"c{n}"
                    sent = time.perf_counter()
                    await pbx.send("call/arrived", call_id=call, did="+100")
                    async for line in lines:
                        if not line.startswith("data: "):
                            continue
                        board = json.loads(line.removeprefix("data: "))
                        if any(c["call_id"] == call for c in board["queues"][0]["calls"]):
                            delays[kind].append(time.perf_counter() - sent)
                            break
        finally:
            broker.close()
    for kind, seconds in delays.items():
        ms = sorted(d * 1000 for d in seconds)
        print(
            f"{kind}: {len(ms)} calls, median {statistics.median(ms):.0f} ms,"
            f" p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, max {ms[-1]:.0f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
