"""``python -m bench.cluster_scaling``: full-life calls/s and CPU per call, 1 vs 2 processes.

One Python process uses one core; a cluster's shards spread its tenants over processes
(docs/cluster.md). This bench runs, in one invocation and on the same private
PostgreSQL (`tests.postgres.start_postgres`, durability defaults kept) and mosquitto:

- ``one``: ``ringmaster run``, one cluster node holding all `SHARDS` shards;
- ``two``: ``ringmaster run --workers 2``, two nodes holding half of them each;
- ``service`` (only with ``--configs``): ``ringmaster run`` without a cluster
  (``cluster.shards = 0``) on the same database, for the cost of the shards themselves.

Each configuration gets a fresh database provisioned with the same tenants (2 per
shard, chosen by `shard_of` so that every shard has the same load, `AGENTS` agents each
in one leastrecent queue), and the same load generator (`bench.loadgen`'s ``arrival``,
full-life calls to each tenant in turn, answered at once, hung up 50 ms later): agents
log in; nothing for `--seconds` / 2 (the idle CPU per second: leases, heartbeats,
timers); calls at `--cpu-rate` for `--seconds` (below both capacities: CPU per call);
calls at `--saturate` for `--saturate-s` (above both: the calls completed per second of
the run, from the first arrival to the last final event, is the **throughput**); then a
ladder of rates (`--rates`, `--probe-s` each) until one loses a call or its
arrival->ring p99 passes `SUSTAINED_P99_MS`, as `python -m bench`'s sustained scenario
(the highest that passed is the **sustained** rate). CPU is user + system time from
``/proc/<pid>/stat``: of every ringmaster process (the parent and its workers), of the
PostgreSQL server's processes, of mosquitto, and of the load generator (``getrusage``
of reaped children); and how long ringmaster's threads ran on a CPU and waited for one
(``schedstat``). Rounds alternate the order (one, two; two, one...). Prints the
machine, the figures and the ratios; the raw JSON goes to
``bench/results/<stamp>-cluster-scaling.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.postgres import PostgresCluster, start_postgres

from bench.chaos.cluster import spread_tenants
from bench.common import PYTHON, ROOT, machine, numbers, reap, run_child
from ringmaster.daemon.broker import MosquittoProcess, free_port, start_mosquitto

RESULTS = Path(__file__).resolve().parent / "results"
SHARDS = 8
TENANTS_PER_SHARD = 2
AGENTS = 20  # per tenant
TOKEN = "bench-cluster-admin"
#: The bar of `python -m bench`'s sustained scenario: nothing lost and p99 below this.
SUSTAINED_P99_MS = 50.0
WAIT_S = 120.0  # an upper bound on any wait for the daemons


@dataclass(frozen=True, slots=True)
class Config:
    """One way to run the daemon: its processes and whether it is a cluster."""

    name: str
    workers: int  # processes of ringmaster (the parent of --workers not counted)
    shards: int
    nodes: tuple[str, ...]  # the cluster's node names, as --workers names them

    def argv(self) -> list[str]:
        """The daemon's command line."""
        extra = ["--workers", str(self.workers)] if self.workers > 1 else []
        return [PYTHON, "-m", "ringmaster", "run", *extra]


CONFIGS = {
    "one": Config("one", 1, SHARDS, ("one",)),
    "two": Config("two", 2, SHARDS, ("two-0", "two-1")),
    "service": Config("service", 1, 0, ()),
}


def write_tenants(path: Path, tenants: list[int], agents: int) -> Path:
    """Each tenant: `agents` extensions in one leastrecent queue behind DID +10000."""
    enrolled = ", ".join(f'"{n}"' for n in numbers(agents))
    parts = []
    for t in tenants:
        parts.append(f'[[tenant]]\nid = {t}\nname = "Bench {t}"\n')
        parts += [f'[[extension]]\ntenant_id = {t}\nnumber = "{n}"\n' for n in numbers(agents)]
        parts.append(
            f'[[queue]]\ntenant_id = {t}\nqueue_number = "600"\nname = "Q"\n'
            f'strategy = "leastrecent"\ntimeout = 30\nretry = 5\nagents = [{enrolled}]\n'
        )
        parts.append(f'[[did_route]]\ntenant_id = {t}\ndid = "+10000"\nqueue = "600"\n')
    path.write_text("\n".join(parts))
    return path


# --- CPU from /proc ---------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The live children of `pid` (every thread's)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += map(int, (task / "children").read_text().split())
    except OSError:
        pass
    return found


def cpu_s(pids: list[int]) -> float:
    """User + system seconds the live processes `pids` have used (every thread)."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # proc(5): after the parenthesised command; utime and stime are fields 14 and 15.
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run_and_wait_s(pids: list[int]) -> tuple[float, float]:
    """Seconds the processes' threads ran on a CPU, and waited for one while runnable.

    ``/proc/<pid>/task/<tid>/schedstat`` (the kernel's sched-stats): a thread that waits
    for a CPU about as long as it runs is starved by the machine's other processes, so
    its throughput says more about the machine than about it.
    """
    ran = waited = 0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                on_cpu, on_queue, _ = (task / "schedstat").read_text().split()
            except (OSError, ValueError):
                continue
            ran += int(on_cpu)
            waited += int(on_queue)
    return ran / 1e9, waited / 1e9


def generator_cpu_s() -> float:
    """CPU seconds of this process's reaped children: the load generator runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def mosquitto_pid() -> int:
    """Our mosquitto: the child of this process whose command is mosquitto."""
    for pid in children(os.getpid()):
        if Path(f"/proc/{pid}/comm").read_text().strip() == "mosquitto":
            return pid
    raise RuntimeError("no mosquitto among this process's children")


# --- one configuration, started ---------------------------------------------------------


def free_ports(count: int) -> int:
    """A port p with p + 1 ... p + count - 1 free too (the workers' APIs)."""
    while True:
        port = free_port()
        if all(_bindable(port + i) for i in range(1, count)):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _api(port: int, path: str) -> dict[str, Any] | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            answer: dict[str, Any] = json.load(response)
            return answer
    except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
        return None


@dataclass
class Running:
    """A configuration's daemon processes, started and serving."""

    config: Config
    process: subprocess.Popen[bytes]
    prefix: str
    ports: list[int]
    log: Path

    def ringmaster_pids(self) -> list[int]:
        """The daemon's processes: ``run`` and, with --workers, its workers."""
        return [self.process.pid, *children(self.process.pid)]

    def serving(self) -> bool:
        """Whether every API answers and, in a cluster, the shards are spread evenly."""
        if self.process.poll() is not None:
            raise RuntimeError(
                f"{self.config.name} exited ({self.process.returncode}); see {self.log}"
            )
        answers = [_api(port, "/api/cluster") for port in self.ports]
        if any(answer is None for answer in answers) or not self.config.nodes:
            return all(answer is not None for answer in answers)
        held: dict[str, int] = {}
        for shard in answers[0]["shard_list"]:  # type: ignore[index]
            if shard["holder"] is not None:
                held[shard["holder"]] = held.get(shard["holder"], 0) + 1
        even = SHARDS // len(self.config.nodes)
        return held == dict.fromkeys(self.config.nodes, even)

    def stop(self) -> None:
        """SIGTERM (the parent forwards it to its workers); SIGKILL past the wait."""
        self.process.terminate()
        reap(self.process, WAIT_S)


@dataclass(frozen=True)
class Bench:
    """What every configuration shares: the database server, the broker, the folder."""

    pg: PostgresCluster
    broker: MosquittoProcess
    folder: Path
    opts: argparse.Namespace

    def start(self, config: Config, n: int) -> Running:
        """A fresh database with the tenants, the daemon on it, waited for until it serves."""
        database = self.pg.url(self.pg.create_database(f"bench_{config.name}"))
        tenants = write_tenants(
            self.folder / "tenants.toml", spread_tenants(SHARDS, TENANTS_PER_SHARD), AGENTS
        )
        log = self.folder / f"{n}-{config.name}.log"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RINGMASTER_")},
            "RINGMASTER_DATABASE__URL": database + self.opts.url_suffix,
            "RINGMASTER_LOG__FORMAT": "json",
            "RINGMASTER_LOG__LEVEL": "warning",
        }
        with log.open("ab") as out:
            subprocess.run(
                [PYTHON, "-m", "ringmaster", "provision", "--offline", str(tenants)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=600,
                cwd=ROOT,
            )
        prefix = f"cs{n}{config.name}"
        port = free_ports(config.workers)
        env |= {
            "RINGMASTER_MQTT__URL": self.broker.url,
            "RINGMASTER_MQTT__TOPIC_PREFIX": prefix,
            "RINGMASTER_MQTT__CLIENT_ID": f"ringmaster-{prefix}",
            "RINGMASTER_API__PORT": str(port),
            "RINGMASTER_API__ADMIN_TOKENS": json.dumps([TOKEN]),
            "RINGMASTER_CLUSTER__SHARDS": str(config.shards),
            "RINGMASTER_CLUSTER__NODE": config.name,
        }
        with log.open("ab") as out:
            process = subprocess.Popen(
                config.argv(), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )
        running = Running(config, process, prefix, [port + i for i in range(config.workers)], log)
        deadline = time.monotonic() + WAIT_S
        try:
            while not running.serving():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{config.name} not serving within {WAIT_S} s; see {log}")
                time.sleep(0.2)
        except BaseException:
            running.stop()
            raise
        return running

    def _pids(self, running: Running) -> dict[str, list[int]]:
        postmaster = self.pg.postmaster_pid()
        assert postmaster is not None
        return {
            "ringmaster": running.ringmaster_pids(),
            "postgresql": [postmaster, *children(postmaster)],
            "mosquitto": [mosquitto_pid()],
        }

    def idle(self, running: Running, seconds: float) -> dict[str, float]:
        """CPU ms per second with no calls: leases, heartbeats, timers (no generator)."""
        pids = self._pids(running)
        before = {name: cpu_s(p) for name, p in pids.items()}
        time.sleep(seconds)
        return {
            name: round((cpu_s(p) - before[name]) * 1e3 / seconds, 1) for name, p in pids.items()
        }

    def measure(self, running: Running, args: dict[str, Any]) -> dict[str, Any]:
        """One arrival run, with every process's CPU time per call over it."""
        pids = self._pids(running)
        before = {name: cpu_s(p) for name, p in pids.items()}
        sched = run_and_wait_s(pids["ringmaster"])
        generator = generator_cpu_s()
        started = time.perf_counter()
        result = run_child("loadgen", args, self.folder / "generator.log", 900)
        result["wall_s"] = round(time.perf_counter() - started, 2)
        ran, waited = (
            b - a for a, b in zip(sched, run_and_wait_s(pids["ringmaster"]), strict=True)
        )
        result["ringmaster_ran_s"], result["ringmaster_waited_s"] = round(ran, 2), round(waited, 2)
        calls = max(1, result["calls"])
        cpu = {name: cpu_s(p) - before[name] for name, p in pids.items()}
        cpu["generator"] = generator_cpu_s() - generator
        result["cpu_ms_per_call"] = {name: round(s * 1e3 / calls, 3) for name, s in cpu.items()}
        if result.get("done_s"):
            result["throughput"] = round(result["completed"] / result["done_s"], 1)
        return result

    def run(self, config: Config, n: int) -> dict[str, Any]:
        """Start a configuration, log its agents in, measure CPU per call, climb the ladder."""
        running = self.start(config, n)
        base = {
            "mode": "arrival",
            "url": self.broker.url,
            "prefix": running.prefix,
            "tenants": spread_tenants(SHARDS, TENANTS_PER_SHARD),
            "agents": AGENTS,
            "hold_s": 0.05,
            "drain_s": 30,
            "login": False,
        }
        out: dict[str, Any] = {"config": config.name, "processes": config.workers, "ladder": []}
        try:
            self.measure(running, {**base, "rate": 50, "seconds": 2, "login": True})  # warm-up
            time.sleep(1)
            out["idle_cpu_ms_per_s"] = self.idle(running, self.opts.seconds / 2)
            steady = {"rate": self.opts.cpu_rate, "seconds": self.opts.seconds}
            out["steady"] = self.measure(running, {**base, **steady})
            time.sleep(1)
            # Above what either configuration takes: the calls completed per second is
            # the capacity (the backlog waits in the broker and the daemon meanwhile).
            overload = {"rate": self.opts.saturate, "seconds": self.opts.saturate_s, "drain_s": 120}
            out["saturated"] = self.measure(running, {**base, **overload})
            for rate in self.opts.rates:
                time.sleep(1)
                res = self.measure(running, {**base, "rate": rate, "seconds": self.opts.probe_s})
                out["ladder"].append(res)
                if not passed(res):
                    break
        finally:
            running.stop()
        out["sustained_rate"] = max((r["rate"] for r in out["ladder"] if passed(r)), default=0)
        out["throughput"] = out["saturated"].get("throughput", 0)
        return out


def passed(result: dict[str, Any]) -> bool:
    """Nothing lost and arrival->ring p99 under the bar."""
    p99 = result.get("p99_ms")
    return result["lost"] == 0 and p99 is not None and p99 < SUSTAINED_P99_MS


# --- the report -------------------------------------------------------------------------


def summarise(rounds: list[dict[str, dict[str, Any]]], names: list[str]) -> dict[str, Any]:
    """Per configuration: medians over the rounds; and each one's ratio to ``one``."""
    summary: dict[str, Any] = {}
    for name in names:
        runs = [r[name] for r in rounds if name in r]
        cpu_groups = runs[0]["steady"]["cpu_ms_per_call"].keys()
        summary[name] = {
            "processes": runs[0]["processes"],
            "sustained_rate": [r["sustained_rate"] for r in runs],
            "throughput": [r["throughput"] for r in runs],
            "steady_p50_p99_ms": [(r["steady"]["p50_ms"], r["steady"]["p99_ms"]) for r in runs],
            "steady_lost": [r["steady"]["lost"] for r in runs],
            "saturated_lost": [r["saturated"]["lost"] for r in runs],
            "saturated_ran_waited_s": [
                (r["saturated"]["ringmaster_ran_s"], r["saturated"]["ringmaster_waited_s"])
                for r in runs
            ],
            "idle_cpu_ms_per_s": [r["idle_cpu_ms_per_s"] for r in runs],
            "cpu_ms_per_call": {
                g: round(statistics.median(r["steady"]["cpu_ms_per_call"][g] for r in runs), 3)
                for g in cpu_groups
            },
            "saturated_cpu_ms_per_call": {
                g: round(statistics.median(r["saturated"]["cpu_ms_per_call"][g] for r in runs), 3)
                for g in cpu_groups
            },
        }
    if "one" in summary:
        one = summary["one"]
        for name, s in summary.items():
            if name == "one":
                continue
            s["ratio_to_one"] = {
                "sustained_rate": _ratio(s["sustained_rate"], one["sustained_rate"]),
                "throughput": _ratio(s["throughput"], one["throughput"]),
                "ringmaster_cpu_per_call": round(
                    s["cpu_ms_per_call"]["ringmaster"] / one["cpu_ms_per_call"]["ringmaster"], 2
                ),
                "ringmaster_cpu_per_call_saturated": round(
                    s["saturated_cpu_ms_per_call"]["ringmaster"]
                    / one["saturated_cpu_ms_per_call"]["ringmaster"],
                    2,
                ),
            }
    return summary


def _ratio(these: list[float], those: list[float]) -> float | None:
    a, b = statistics.median(these), statistics.median(those)
    return round(a / b, 2) if b else None


def render(result: dict[str, Any]) -> str:
    """The table printed at the end."""
    m = result["machine"]
    options = result["options"]
    lines = [
        f"Cluster scaling, {m['cpu_model']}, {m['cores']} cores, Python {m['python']},"
        f" {m['mosquitto']}, {result['postgresql']}",
        f"load average before / after: {result['load_before']} / {result['load_after']};"
        f" {SHARDS} shards, {len(result['tenants'])} tenants x {AGENTS} agents;"
        f" steady {options['cpu_rate']}/s for {options['seconds']} s; each round's figure",
        "",
        "config    procs  sustained calls/s  throughput calls/s  steady p50/p99 ms"
        "  CPU ms/call (median): ringmaster / postgresql / mosquitto / generator",
    ]
    for name, s in result["summary"].items():
        cpu = s["cpu_ms_per_call"]
        latency = ", ".join(f"{a}/{b}" for a, b in s["steady_p50_p99_ms"])
        groups = " / ".join(str(cpu[g]) for g in ("ringmaster", "postgresql", "mosquitto"))
        lines.append(
            f"{name:<8} {s['processes']:>5}  {', '.join(map(str, s['sustained_rate'])):>17}"
            f"  {', '.join(map(str, s['throughput'])):>18}  {latency:>17}"
            f"  {groups} / {cpu['generator']}"
        )
    lines.append(
        "CPU ms/call at saturation (median): ringmaster / postgresql / mosquitto / generator"
    )
    for name, s in result["summary"].items():
        cpu = s["saturated_cpu_ms_per_call"]
        groups = " / ".join(str(cpu[g]) for g in ("ringmaster", "postgresql", "mosquitto"))
        sched = ", ".join(f"{a}/{b}" for a, b in s["saturated_ran_waited_s"])
        lines.append(
            f"{name:<8} {groups} / {cpu['generator']}; lost {s['saturated_lost']};"
            f" ringmaster's threads ran / waited for a CPU (s) {sched}"
        )
    lines.append("idle CPU ms/s, each round: ringmaster / postgresql / mosquitto")
    for name, s in result["summary"].items():
        rounds = ", ".join(
            " / ".join(str(v) for v in idle.values()) for idle in s["idle_cpu_ms_per_s"]
        )
        lines.append(f"{name:<8} {rounds}")
    for name, s in result["summary"].items():
        if "ratio_to_one" in s:
            lines.append(f"{name} / one: {s['ratio_to_one']}")
    return "\n".join(lines)


def main() -> None:
    """Parse the options, run the rounds, print and save the figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_scaling", description=__doc__)
    parser.add_argument(
        "--configs", default="one,two", help="comma-separated: " + ",".join(CONFIGS)
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cpu-rate", type=int, default=50, help="calls/s of the CPU phase")
    parser.add_argument("--seconds", type=float, default=10, help="length of the CPU phase")
    parser.add_argument(
        "--saturate", type=int, default=400, help="calls/s beyond capacity: the throughput"
    )
    parser.add_argument("--saturate-s", type=float, default=8, help="length of the saturation")
    parser.add_argument("--probe-s", type=float, default=5, help="length of each ladder rate")
    parser.add_argument("--rates", default="50,75,100,125,150,200,250,300,400")
    parser.add_argument(
        "--url-suffix",
        default="",
        help="appended to the database URL, e.g. ?synchronous_commit=off",
    )
    opts = parser.parse_args()
    opts.rates = [int(r) for r in opts.rates.split(",")]
    names = opts.configs.split(",")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = Path(tempfile.mkdtemp(prefix=f"ringmaster-cluster-scaling-{stamp}-"))
    result: dict[str, Any] = {
        "started": stamp,
        "machine": machine(),
        "load_before": os.getloadavg(),
        "tenants": spread_tenants(SHARDS, TENANTS_PER_SHARD),
        "options": dict(vars(opts)),
        "folder": str(folder),
    }
    rounds: list[dict[str, dict[str, Any]]] = []
    with start_postgres(durable=True) as pg:
        result["postgresql"] = pg.sql("SELECT version()").split(" on ")[0].strip()
        broker = start_mosquitto(folder / "broker")
        bench = Bench(pg, broker, folder, opts)
        try:
            n = 0
            for r in range(opts.rounds):
                order = names if r % 2 == 0 else names[::-1]
                done: dict[str, dict[str, Any]] = {}
                for name in order:
                    n += 1
                    print(f"... round {r + 1}: {name}", flush=True)
                    done[name] = bench.run(CONFIGS[name], n)
                rounds.append(done)
        finally:
            broker.close()
    result["load_after"] = os.getloadavg()
    result["rounds"] = rounds
    result["summary"] = summarise(rounds, names)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp}-cluster-scaling.json"
    path.write_text(json.dumps(result, indent=1))
    print(render(result))
    print(f"\nraw results: {path}\nlogs: {folder}")


if __name__ == "__main__":
    main()
