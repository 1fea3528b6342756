"""`python -m bench [--quick] [--only NAME,...] [--profile] [--sustain-rates R,...]`: the table.

Every scenario runs mosquitto, the daemon (`python -m ringmaster run`) and the
load generator (`python -m bench.loadgen`) as separate processes on loopback.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
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
from ringmaster.daemon.broker import free_port, start_mosquitto

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
    "tenant_agents": 100,
    "tenant_rate": 50,
    "tenant_s": 8,
    "api_requests": 1000,
    "api_concurrency": 50,
    "recovery_kills": 5,
    "recovery_rate": 100,
    "recovery_period_s": 5.0,
    "recovery_down_s": 2.0,
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
    "tenant_s": 15,
    "recovery_kills": 10,
}


class Run:
    """One benchmark run: its settings, its folder for logs and databases, its broker."""

    def __init__(self, cfg: dict[str, Any], run_dir: Path, url: str, profile: bool) -> None:
        self.cfg, self.dir, self.url, self.profile = cfg, run_dir, url, profile
        self.log = run_dir / "children.log"
        self.n = 0

    def daemon(
        self,
        agents: int,
        queues: int = 1,
        *,
        name: str,
        prof: bool = False,
        other_tenant: bool = False,
        env: dict[str, str] | None = None,
    ) -> tuple[Daemon, str, float]:
        """A provisioned daemon, started and online: (daemon, its prefix, provisioning seconds)."""
        self.n += 1
        prefix = f"b{self.n}{name}"
        db = self.dir / f"{prefix}.sqlite3"
        config = write_config(
            self.dir / f"{prefix}.toml", agents=agents, queues=queues, other_tenant=other_tenant
        )
        took = provision(db, config, self.log)
        d = Daemon(
            {**daemon_env(self.url, prefix, db), **(env or {})},
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
    server = _spawn(
        r, {"mode": "echo_server", "prefix": prefix, "max_s": 600}, stdout=subprocess.DEVNULL
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

    def arrival(rate: int, seconds: float, login: bool, timeout_s: float) -> dict[str, Any]:
        args = {"mode": "arrival", "prefix": prefix, "agents": r.cfg["agents"], "rate": rate}
        return r.child({**args, "seconds": seconds, "hold_s": 0.05, "login": login}, timeout_s)

    try:
        first = True
        best = None
        for rate in r.cfg["sustain_rates"]:
            res = arrival(rate, r.cfg["probe_s"], first, 300)
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
            res = arrival(rate, r.cfg["sustain_s"], False, 600)
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
    watch = _spawn(r, {"mode": "watch_start", "prefix": prefix, "max_s": 120})
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


def _spawn(r: Run, args: dict[str, Any], stdout: int = subprocess.PIPE) -> subprocess.Popen[bytes]:
    """The load generator in `args["mode"]`, in the background (see `_result`)."""
    return subprocess.Popen(
        [PYTHON, "-m", "bench.loadgen", json.dumps({"url": r.url, **args})],
        stdout=stdout,
        stderr=r.log.open("ab"),
        cwd=ROOT,
    )


def _result(child: subprocess.Popen[bytes], timeout_s: float = 300) -> dict[str, Any]:
    """The last JSON line a background load generator printed."""
    out = child.communicate(timeout=timeout_s)[0].decode().strip().splitlines()
    if child.returncode != 0 or not out:
        raise RuntimeError(f"load generator failed ({child.returncode})")
    result: dict[str, Any] = json.loads(out[-1])
    return result


#: The phases of the tenants scenario: tenant 1's calls alone, then beside each disturbance.
TENANT_PHASES = ("warm_up", "quiet", "bad_flood", "valid_flood", "api", "quiet_again")


def tenants(r: Run) -> dict[str, Any]:
    """Tenant 1's arrival->ring at a steady rate, quiet vs beside another tenant's load.

    Disturbances (each beside the same paced calls of tenant 1): tenant 2 floods
    payloads that break the contract, then valid arrivals (window of 500 in
    flight), then 1,000 admin API requests 50 at a time. Ratios are to the quiet
    phase of the same run; a second quiet phase at the end shows the drift. The
    warm-up (agents logging in, then the same calls) is not compared.
    """
    port = free_port()
    token = "bench-admin-token"
    env = {
        "RINGMASTER_API__ENABLED": "true",
        "RINGMASTER_API__PORT": str(port),
        "RINGMASTER_API__ADMIN_TOKENS": json.dumps([token]),
    }
    agents, rate, seconds = r.cfg["tenant_agents"], r.cfg["tenant_rate"], r.cfg["tenant_s"]
    d, prefix, _ = r.daemon(agents, name="tenants", other_tenant=True, env=env, prof=r.profile)
    out: dict[str, Any] = {"rate": rate, "seconds": seconds}
    try:
        for i, phase in enumerate(TENANT_PHASES):
            disturbance = None
            if phase in ("bad_flood", "valid_flood"):
                disturbance = _spawn(
                    r,
                    {
                        "mode": "flood",
                        "prefix": prefix,
                        "tenant": 2,
                        "kind": phase.split("_")[0],
                        "did": "+20000",
                        "seconds": seconds + 1,
                    },
                )
            elif phase == "api":
                disturbance = _spawn(
                    r,
                    {
                        "mode": "api_load",
                        "api": f"http://127.0.0.1:{port}",
                        "token": token,
                        "tenant": 2,
                        "requests": r.cfg["api_requests"],
                        "concurrency": r.cfg["api_concurrency"],
                    },
                )
            cpu_before = d.cpu_s()
            res = r.child(
                {
                    "mode": "arrival",
                    "prefix": prefix,
                    "agents": agents,
                    "rate": rate,
                    "seconds": seconds,
                    "hold_s": 0.05,
                    "login": i == 0,
                    "drain_s": 60,
                }
            )
            if disturbance is not None:
                res["disturbance"] = _result(disturbance)
            cpu_after = d.cpu_s()
            if cpu_before is not None and cpu_after is not None:
                res["daemon_cpu_s"] = round(cpu_after - cpu_before, 2)
            out[phase] = res
            time.sleep(2)
    finally:
        d.stop()
    quiet = out["quiet"]
    for phase in TENANT_PHASES[2:]:
        for k in ("p50_ms", "p99_ms"):
            if quiet.get(k) and out[phase].get(k) is not None:
                out[phase][f"{k}_ratio"] = round(out[phase][k] / quiet[k], 2)
    return out


#: The start-up steps a restarted daemon logs at level info, in order.
STEPS = (
    "service.starting",
    "store.loaded",
    "mqtt.connected",
    "service.ready",
    "backlog.taken_in",
    "ring",
)


def _timeline(log: Path, spawned_at: float) -> dict[str, float]:
    """Seconds from spawn to the first log line of each step (JSON log lines)."""
    seen: dict[str, float] = {}
    for line in log.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        step = entry.get("event")
        if step in STEPS and step not in seen:
            at = datetime.datetime.fromisoformat(entry["timestamp"]).timestamp()
            seen[step] = round(at - spawned_at, 3)
    return seen


def recovery_load(r: Run) -> dict[str, Any]:
    """SIGKILL the daemon N times under 100 calls/s: seconds from spawn to the first ring."""
    kills, rate, agents = r.cfg["recovery_kills"], r.cfg["recovery_rate"], r.cfg["agents"]
    d, prefix, _ = r.daemon(agents, name="recoverload")
    period_s = r.cfg["recovery_period_s"]
    seconds = 3 + kills * (period_s + r.cfg["recovery_down_s"])
    watch = _spawn(r, {"mode": "watch_rings", "prefix": prefix, "seconds": seconds + 20})
    assert watch.stdout is not None
    watch.stdout.readline()  # subscribed
    load = _spawn(
        r,
        {
            "mode": "arrival",
            "prefix": prefix,
            "agents": agents,
            "rate": rate,
            "seconds": seconds,
            "hold_s": 0.05,
            "drain_s": 20,
        },
    )
    rng = random.Random(r.cfg.get("seed", 9))
    spawns: list[int] = []
    wall: list[float] = []
    daemons = [d]
    # BENCH_RESTART_LOG_LEVEL=info: the restarted daemons log their start-up's
    # steps, and the result says when each came (a timeline of where the time goes).
    level = os.environ.get("BENCH_RESTART_LOG_LEVEL")
    restart_env = {"RINGMASTER_LOG__LEVEL": level} if level else {}
    try:
        time.sleep(3)  # logins, and the load running
        for n in range(kills):
            time.sleep(rng.uniform(0.3, 1.0) * period_s / 2)
            assert daemons[-1].process is not None
            daemons[-1].process.kill()
            daemons[-1].process.wait()
            # Down as long as systemd's RestartSec: arrivals and answers queue in the broker.
            time.sleep(r.cfg["recovery_down_s"])
            nxt = Daemon({**d.env, **restart_env}, r.dir / f"{prefix}.restart{n}.log")
            wall.append(time.time())
            nxt.start()
            spawns.append(nxt.started_ns)
            daemons.append(nxt)
            time.sleep(period_s / 2)
        load_result = _result(load, seconds + 120)
        rings = _result(watch, 120)["rings_ns"]
    finally:
        for daemon in daemons:
            daemon.stop()
    to_ring = []
    for started in spawns:
        first = min((t for t in rings if t > started), default=None)
        to_ring.append(round((first - started) / 1e9, 3) if first is not None else None)
    measured = sorted(x for x in to_ring if x is not None)
    timelines = [_timeline(daemon.log, at) for daemon, at in zip(daemons[1:], wall, strict=True)]
    return {
        "timelines": timelines if level else None,
        "kills": kills,
        "rate": rate,
        "to_first_ring_s": to_ring,
        "median_s": statistics.median(measured) if measured else None,
        "max_s": measured[-1] if measured else None,
        "load": {k: v for k, v in load_result.items() if not isinstance(v, list)},
    }


SCENARIOS = {
    "ceiling": ceiling,
    "arrival": arrival,
    "agent_free": agent_free,
    "sustained": sustained,
    "scale": scale,
    "recovery": recovery,
    "tenants": tenants,
    "recovery_load": recovery_load,
}


def main() -> None:
    """Parse the arguments, run the scenarios, write the raw JSON and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short version (a few minutes)")
    parser.add_argument("--only", help="comma-separated: " + ",".join(SCENARIOS))
    parser.add_argument(
        "--profile", action="store_true", help="run the arrival daemon under py-spy"
    )
    parser.add_argument(
        "--sustain-rates",
        help="comma-separated calls/s the sustained scenario probes (its default grid is coarse)",
    )
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    if args.sustain_rates:
        cfg = {**cfg, "sustain_rates": [int(rate) for rate in args.sustain_rates.split(",")]}
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
