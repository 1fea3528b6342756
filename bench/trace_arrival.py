"""``python -m bench.trace_arrival RATE [--seconds S] [--src PATH]``: an arrival's time, per call.

The load generator's full-life calls (bench/loadgen.py's `arrival`) run in this
process against a daemon with bench/trace_hooks on its PYTHONPATH; each call's
arrival->ring time is then cut into segments by the two processes' timestamps (one
clock, CLOCK_MONOTONIC), and the mean of each segment printed for the middle half of
the calls and for the slowest 2% and 1%: which step the tail is. Then the turns'
commits (how long, how many over 5 ms and how far apart) and the garbage collections.

Segments: `gen_late` the generator's publish after its schedule; `to_daemon` the
broker's hop until the daemon's read of the socket; `read_parse` paho's parse up to
the inbox; `inbox_wait` until a turn takes it; `engine_render` the engine, rendering
and the turn's preparation of its commit; `commit` the commit (on SQLite's thread, with
the hand-offs); `resume_send` until the ring is handed to paho; `to_write` until the
socket write; `to_gen` the broker's hop to the generator and its read.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import itertools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from bench import loadgen
from bench.__main__ import FULL, Run
from bench.common import ROOT, machine
from ringmaster.daemon.broker import start_mosquitto

#: A commit longer than this is counted as a stall (ns).
SLOW_COMMIT_NS = 5_000_000
#: The collector's oldest generation: a full collection.
FULL_COLLECTION = 2

SEGMENTS = (
    "gen_late",
    "to_daemon",
    "read_parse",
    "inbox_wait",
    "engine_render",
    "commit",
    "resume_send",
    "to_write",
    "to_gen",
    "total",
)


def _capture() -> tuple[dict[str, Any], dict[str, int]]:
    """Keep what the generator scheduled and saw, and when it really published each arrival."""
    captured: dict[str, Any] = {}
    published: dict[str, int] = {}
    outcome = loadgen._outcome

    def outcome_kept(sched: Any, ring_ns: Any, final: Any, last_final_ns: int) -> Any:
        captured["sched"], captured["ring"] = dict(sched), dict(ring_ns)
        return outcome(sched, ring_ns, final, last_final_ns)

    setattr(loadgen, "_outcome", outcome_kept)  # noqa: B010
    publish = aiomqtt.Client.publish

    async def publish_timed(
        self: aiomqtt.Client, topic: Any, payload: Any = None, **kw: Any
    ) -> Any:
        if str(topic).endswith("/pbx/call/arrived"):
            published[json.loads(payload)["call_id"]] = time.perf_counter_ns()
        return await publish(self, topic, payload, **kw)

    setattr(aiomqtt.Client, "publish", publish_timed)  # noqa: B010
    return captured, published


def _segments(
    captured: dict[str, Any], published: dict[str, int], seen: list[list[Any]]
) -> list[dict[str, int]]:
    read = {e[1]: (e[2], e[3]) for e in seen if e[0] == "r"}
    taken = {e[1]: e[2] for e in seen if e[0] == "k"}
    handed = {e[1]: e[2] for e in seen if e[0] == "s"}
    writes = sorted(e[1] for e in seen if e[0] == "w")
    commits: dict[str, tuple[int, int]] = {}
    for e in seen:
        if e[0] == "c":
            for call_id in e[4]:
                commits.setdefault(call_id, (e[1], e[2]))
    rows = []
    for call_id, at in captured["sched"].items():
        if not all(call_id in m for m in (captured["ring"], read, taken, commits, handed)):
            continue
        i = bisect.bisect_left(writes, handed[call_id])
        written = writes[i] if i < len(writes) else handed[call_id]
        begun, ended = commits[call_id]
        rows.append(
            {
                "gen_late": published[call_id] - at,
                "to_daemon": read[call_id][0] - published[call_id],
                "read_parse": read[call_id][1] - read[call_id][0],
                "inbox_wait": taken[call_id] - read[call_id][1],
                "engine_render": begun - taken[call_id],
                "commit": ended - begun,
                "resume_send": handed[call_id] - ended,
                "to_write": written - handed[call_id],
                "to_gen": captured["ring"][call_id] - written,
                "total": captured["ring"][call_id] - at,
            }
        )
    return sorted(rows, key=lambda row: row["total"])


def _report(rows: list[dict[str, int]], seen: list[list[Any]], start_ns: int) -> None:
    n = len(rows)

    def mean(part: list[dict[str, int]], key: str) -> float:
        return statistics.fmean(row[key] for row in part) / 1e6

    parts = (rows[n // 4 : 3 * n // 4], rows[int(n * 0.98) :], rows[int(n * 0.99) :])
    print(f"{'segment (ms, mean)':20} {'middle half':>12} {'slowest 2%':>12} {'slowest 1%':>12}")
    for key in SEGMENTS:
        print(f"{key:20} " + " ".join(f"{mean(part, key):12.3f}" for part in parts))
    commits = [e for e in seen if e[0] == "c" and e[1] >= start_ns]
    took = sorted((e[2] - e[1]) / 1e6 for e in commits) or [0.0]
    slow = [e for e in commits if e[2] - e[1] > SLOW_COMMIT_NS]
    gaps = [round((b[1] - a[1]) / 1e9, 2) for a, b in itertools.pairwise(slow)]
    print(
        f"commits: {len(commits)} ({len(commits) / n:.2f} a call); ms p50 "
        f"{took[len(took) // 2]:.2f}, p99 {took[int(len(took) * 0.99)]:.2f}, max {took[-1]:.2f}; "
        f"{len(slow)} over 5 ms, seconds apart: {gaps[:20]}"
    )
    collections = [e for e in seen if e[0] == "g" and e[2] >= start_ns]
    pauses = [(e[3] - e[2]) / 1e6 for e in collections]
    full = sum(1 for e in collections if e[1] == FULL_COLLECTION)
    print(
        f"collections: {len(collections)} (full: {full}), longest {max(pauses, default=0):.2f} ms"
    )


def main() -> None:
    """Trace one run at RATE calls/s for S seconds, after 3 s of warm-up with logins."""
    parser = argparse.ArgumentParser(prog="python -m bench.trace_arrival", description=__doc__)
    parser.add_argument("rate", type=int)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the daemon's src folder")
    options = parser.parse_args()
    rate, seconds = options.rate, options.seconds
    captured, published = _capture()
    run_dir = Path(tempfile.mkdtemp(prefix="ringmaster-trace-"))
    out = run_dir / "daemon-trace.json"
    os.environ["TRACE_OUT"] = str(out)
    os.environ["BENCH_DAEMON_PYTHONPATH"] = f"{ROOT / 'bench' / 'trace_hooks'}:{options.src}"
    broker = start_mosquitto(run_dir / "broker")
    try:
        run = Run(FULL, run_dir, broker.url, profile=False)
        daemon, prefix, _ = run.daemon(FULL["agents"], name="trace")
        args = {"url": broker.url, "mode": "arrival", "prefix": prefix, "agents": FULL["agents"]}
        gc.collect()
        gc.freeze()  # as loadgen's own main does
        asyncio.run(loadgen.arrival({**args, "rate": rate, "seconds": 3, "hold_s": 0.05}))
        result = asyncio.run(
            loadgen.arrival(
                {**args, "rate": rate, "seconds": seconds, "hold_s": 0.05, "login": False}
            )
        )
        daemon.stop()
    finally:
        broker.close()
    seen = json.loads(out.read_text(encoding="utf-8"))
    print(json.dumps(machine()))
    print(json.dumps({k: result.get(k) for k in ("rate", "calls", "lost", "p50_ms", "p99_ms")}))
    rows = _segments(captured, published, seen)
    print(f"calls traced: {len(rows)} of {len(captured['sched'])}")
    _report(rows, seen, min(captured["sched"].values()))


if __name__ == "__main__":
    main()
