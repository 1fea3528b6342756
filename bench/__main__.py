"""`python -m bench [--quick] [--only NAME,...] [--profile]`: run the benchmarks, print the table.

Every scenario runs mosquitto, the daemon (`python -m ringmaster run`) and the
load generator (`python -m bench.loadgen`) as separate processes on loopback.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import common
from bench.common import (
    PYTHON,
    ROOT,
    Daemon,
    daemon_env,
    machine,
    provision,
    run_child,
    write_config,
)
from bench.report import render
from ringmaster.broker import start_mosquitto

RESULTS = Path(__file__).resolve().parent / "results"

#: The sustained scenario's bar: a rate passes when nothing is lost and p99 is below this.
SUSTAINED_P99_MS = 50.0

QUICK: dict[str, Any] = {
    "seconds": 5,
    "echo_throughput_s": 3,
    "rates": [100, 500, 1000],
    "agents": 200,
    "agent_free_agents": 200,
    "agent_free_rate": 50,
    "sustain_s": 30,
    "probe_s": 5,
    "sustain_rates": [250, 500, 750, 1000, 1250, 1500],
    "engine": {
        "cycles": 1000,
        "agents": [100, 1000, 10000, 100000],
        "queues": [1, 100, 1000, 10000],
        "waiting": [10, 1000, 10000, 50000],
        "enrol": [1000, 5000, 10000],
        "memory_count": 10000,
    },
    "e2e_agents": [100, 10000],
    "e2e_rate": 50,
    "recovery_calls": 10000,
    "recovery_agents": 5000,
}
FULL: dict[str, Any] = {
    **QUICK,
    "seconds": 15,
    "echo_throughput_s": 5,
    "agent_free_agents": 500,
    "agent_free_rate": 100,
    "sustain_s": 60,
    "probe_s": 10,
    "sustain_rates": [250, 500, 750, 1000, 1250, 1500, 2000],
    "engine": {**QUICK["engine"], "cycles": 3000},
}


class Run:
    """One benchmark run: its settings, its folder for logs and databases, its broker."""

    def __init__(self, cfg: dict[str, Any], run_dir: Path, url: str, profile: bool) -> None:
        self.cfg, self.dir, self.url, self.profile = cfg, run_dir, url, profile
        self.log = run_dir / "children.log"
        self.n = 0

    def daemon(
        self, agents: int, queues: int = 1, *, name: str, prof: bool = False
    ) -> tuple[Daemon, str, float]:
        """A provisioned daemon, started and online: (daemon, its prefix, provisioning seconds)."""
        self.n += 1
        prefix = f"b{self.n}{name}"
        db = self.dir / f"{prefix}.sqlite3"
        took = provision(
            db, write_config(self.dir / f"{prefix}.toml", agents=agents, queues=queues), self.log
        )
        d = Daemon(
            daemon_env(self.url, prefix, db),
            self.dir / f"{prefix}.log",
            profile=self.dir / f"{prefix}.speedscope.json" if prof else None,
        )
        d.start()
        run_child(
            "loadgen",
            {"mode": "wait_online", "url": self.url, "prefix": prefix, "max_s": 300},
            self.log,
            320,
        )
        return d, prefix, took

    def child(self, args: dict[str, Any], timeout_s: float = 300) -> dict[str, Any]:
        """Run the load generator in `args["mode"]` against this run's broker."""
        return run_child("loadgen", {"url": self.url, **args}, self.log, timeout_s)


def ceiling(r: Run) -> dict[str, Any]:
    """The echo ceiling: the same two broker hops as arrival->ring, with no daemon."""
    prefix = "echo"
    server = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "bench.loadgen",
            json.dumps({"mode": "echo_server", "url": r.url, "prefix": prefix, "max_s": 600}),
        ],
        stdout=subprocess.DEVNULL,
        stderr=r.log.open("ab"),
        cwd=ROOT,
    )
    try:
        return r.child(
            {
                "mode": "echo",
                "prefix": prefix,
                "rates": r.cfg["rates"],
                "seconds": r.cfg["seconds"],
                "throughput_s": r.cfg["echo_throughput_s"],
            }
        )
    finally:
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()


def arrival(r: Run) -> dict[str, Any]:
    """Full-life calls at each rate; also the daemon's CPU time per call at each rate."""
    d, prefix, _ = r.daemon(r.cfg["agents"], name="arrival", prof=r.profile)
    out: dict[str, Any] = {"rss_kib_idle": d.rss_kib()}
    try:
        for i, rate in enumerate(r.cfg["rates"]):
            cpu_before = d.cpu_s()
            res = out[f"rate_{rate}"] = r.child(
                {
                    "mode": "arrival",
                    "prefix": prefix,
                    "agents": r.cfg["agents"],
                    "rate": rate,
                    "seconds": r.cfg["seconds"],
                    "hold_s": 0.05,
                    "login": i == 0,
                }
            )
            cpu_after = d.cpu_s()
            if cpu_before is not None and cpu_after is not None and res["calls"]:
                # The first rate also pays for the logins and the idle second after them.
                res["daemon_cpu_ms_per_call"] = round(
                    (cpu_after - cpu_before) * 1e3 / res["calls"], 3
                )
        out["rss_kib_after"] = d.rss_kib()
    finally:
        d.stop()
    return out


def agent_free(r: Run) -> dict[str, Any]:
    """Calls waiting, agents logging in one by one: time from login to that agent's ring."""
    d, prefix, _ = r.daemon(r.cfg["agent_free_agents"], name="free")
    try:
        return r.child(
            {
                "mode": "agent_free",
                "prefix": prefix,
                "agents": r.cfg["agent_free_agents"],
                "rate": r.cfg["agent_free_rate"],
            }
        )
    finally:
        d.stop()


def ok(res: dict[str, Any]) -> bool:
    """Whether a sustained-scenario run passed: nothing lost, p99 under the bar."""
    return res["lost"] == 0 and res["p99_ms"] is not None and res["p99_ms"] < SUSTAINED_P99_MS


def sustained(r: Run) -> dict[str, Any]:
    """Probe rising rates briefly; hold the best for the full time, stepping down on a miss."""
    d, prefix, _ = r.daemon(r.cfg["agents"], name="sustain")
    out: dict[str, Any] = {"probes": {}, "holds": {}}
    try:
        first = True
        best = None
        for rate in r.cfg["sustain_rates"]:
            res = r.child(
                {
                    "mode": "arrival",
                    "prefix": prefix,
                    "agents": r.cfg["agents"],
                    "rate": rate,
                    "seconds": r.cfg["probe_s"],
                    "hold_s": 0.05,
                    "login": first,
                }
            )
            first = False
            out["probes"][str(rate)] = res
            if not ok(res):
                break
            best = rate
            time.sleep(2)
        candidates = [x for x in r.cfg["sustain_rates"] if best is not None and x <= best][::-1]
        candidates += [x for x in (250, 100) if not candidates or x < candidates[-1]]
        for rate in candidates[:3]:
            time.sleep(2)
            res = r.child(
                {
                    "mode": "arrival",
                    "prefix": prefix,
                    "agents": r.cfg["agents"],
                    "rate": rate,
                    "seconds": r.cfg["sustain_s"],
                    "hold_s": 0.05,
                    "login": False,
                },
                600,
            )
            out["holds"][str(rate)] = res
            if ok(res):
                out["sustained_rate"] = rate
                break
    finally:
        d.stop()
    out.setdefault("sustained_rate", 0)
    return out


def scale(r: Run) -> dict[str, Any]:
    """The engine alone by size, then end to end with few and many agents."""
    out: dict[str, Any] = {
        "engine": run_child("engine_bench", {**r.cfg["engine"], "profile": True}, r.log, 1800)
    }
    e2e: dict[str, Any] = {}
    for n in r.cfg["e2e_agents"]:
        started = time.perf_counter()
        d, prefix, prov = r.daemon(n, name=f"scale{n}")
        startup = time.perf_counter() - started - prov
        try:
            res = r.child(
                {
                    "mode": "arrival",
                    "prefix": prefix,
                    "agents": n,
                    "rate": r.cfg["e2e_rate"],
                    "seconds": r.cfg["seconds"],
                    "hold_s": 0.05,
                }
            )
            e2e[str(n)] = {
                **res,
                "provision_s": round(prov, 2),
                "start_to_online_s": round(startup, 2),
                "rss_kib": d.rss_kib(),
            }
        finally:
            d.stop()
    out["e2e_agents"] = e2e
    return out


def recovery(r: Run) -> dict[str, Any]:
    """A restart with many waiting calls and agents: seconds to online and to the first ring."""
    calls, agents = r.cfg["recovery_calls"], r.cfg["recovery_agents"]
    d, prefix, _ = r.daemon(agents, name="recover")
    out: dict[str, Any] = {"calls": calls, "agents": agents, "rss_kib_agents_only": d.rss_kib()}
    try:
        out["seed"] = r.child(
            {
                "mode": "seed_waiting",
                "prefix": prefix,
                "agents": agents,
                "calls": calls,
                "max_s": 240,
            },
            300,
        )
        time.sleep(1)
        out["rss_kib_with_calls"] = d.rss_kib()
    finally:
        d.stop()
    # While it is down, one agent becomes available: the broker keeps that for the daemon.
    r.child({"mode": "queue_login", "prefix": prefix, "extension": common.numbers(agents)[0]})
    watch = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "bench.loadgen",
            json.dumps({"mode": "watch_start", "url": r.url, "prefix": prefix, "max_s": 120}),
        ],
        stdout=subprocess.PIPE,
        stderr=r.log.open("ab"),
        cwd=ROOT,
    )
    assert watch.stdout is not None
    watch.stdout.readline()  # subscribed
    d2 = Daemon(d.env, r.dir / f"{prefix}.restart.log")
    d2.start()
    try:
        lines = watch.communicate(timeout=150)[0].decode().strip().splitlines()
        seen = json.loads(lines[-1])
        for k in ("ready", "ring"):
            v = seen[f"{k}_ns"]
            out[f"to_{k}_s"] = round((v - d2.started_ns) / 1e9, 3) if v else None
        out["rss_kib_restored"] = d2.rss_kib()
    finally:
        d2.stop()
    return out


SCENARIOS = {
    "ceiling": ceiling,
    "arrival": arrival,
    "agent_free": agent_free,
    "sustained": sustained,
    "scale": scale,
    "recovery": recovery,
}


def main() -> None:
    """Parse the arguments, run the scenarios, write the raw JSON and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short version (a few minutes)")
    parser.add_argument("--only", help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument(
        "--profile", action="store_true", help="run the arrival daemon under py-spy"
    )
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    names = args.only.split(",") if args.only else list(SCENARIOS)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    run_dir = Path(tempfile.mkdtemp(prefix=f"ringmaster-bench-{stamp}-"))
    result: dict[str, Any] = {
        "mode": "quick" if args.quick else "full",
        "started": stamp,
        "machine": machine(),
        "run_dir": str(run_dir),
    }
    broker = start_mosquitto(run_dir / "broker")
    started = time.perf_counter()
    try:
        r = Run(cfg, run_dir, broker.url, args.profile)
        for name in names:
            t = time.perf_counter()
            print(f"... {name}", flush=True)
            try:
                result[name] = SCENARIOS[name](r)
            except Exception as error:  # report and go on: one broken scenario is still a result
                result[name] = {"error": repr(error)}
            result.setdefault("seconds", {})[name] = round(time.perf_counter() - t, 1)
    finally:
        broker.close()
    result["total_s"] = round(time.perf_counter() - started, 1)
    path = RESULTS / f"{stamp}-{result['mode']}.json"
    path.write_text(json.dumps(result, indent=1))
    table, summary = render(result)
    (RESULTS / "latest-summary.json").write_text(json.dumps(summary, indent=1))
    print(table)
    print(f"\nraw results: {path}\nlogs: {run_dir}")


if __name__ == "__main__":
    main()
