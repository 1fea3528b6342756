"""`python -m bench.cluster_takeover`: kill -9 a node of a cluster under load; time the takeover.

Each run starts the nodes (`--nodes`, named a, b, c ...) of a cluster of `--shards`
shards on one private PostgreSQL (durable unless `--no-durable`) and one private
mosquitto, provisions `--per-shard` tenants on every shard (one queue, one DID, enough
agents each), and has the chaos run's PBX model offer `--calls-per-s` calls spread over
them, answering, refusing and letting rings time out, hanging up. A third into the load
one node (each run the next) is killed with SIGKILL; two thirds in it is started again.

Per shard the killed node held:

* **takeover**: kill → the first `cmd/ring` that ringmaster decided after the kill (its
  `at`) for a call of the shard's tenants, as the PBX received it. Only the shard's new
  holder can have decided it: the issue's "kill to first ring by the new holder";
* kill → the shard's session saying `online` again (`P/status/shard/<n>`);
* return → the first ring decided after the database showed the shard back on the
  returning node (its process start included).

Every run also keeps the chaos run's invariants (bench/chaos/verdict.py): no call lost,
no agent rung for two calls at once, no in-time answer refused, ...

Exit status: 0 when every invariant held, 1 when one broke, 2 when a run could not be
set up or the cluster did not settle.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from tests.postgres import PostgresCluster, start_postgres

from bench.chaos.cluster import (
    Cluster,
    ClusterError,
    ClusterPbx,
    Fault,
    Outcome,
    cluster_plan,
    provision_plan,
    under_load,
)
from bench.common import machine
from ringmaster.daemon.broker import start_mosquitto
from ringmaster.logs import configure_logging


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m bench.cluster_takeover", description=__doc__)
    p.add_argument("--runs", type=int, default=3, help="runs, one kill and return each")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--shards", type=int, default=8)
    p.add_argument("--per-shard", type=int, default=2, help="tenants on each shard")
    p.add_argument("--calls-per-s", type=float, default=100.0)
    p.add_argument("--duration", type=float, default=24.0, help="seconds of load per run")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--no-durable",
        action="store_true",
        help="PostgreSQL with fsync and synchronous_commit off (the tests' setting)",
    )
    p.add_argument("--log-level", default="warning", help="the nodes' (their logs: --keep)")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work folders (nodes' logs)")
    return p.parse_args(argv)


def _stats(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 3) if values else None,
        "max_s": round(max(values), 3) if values else None,
        "min_s": round(min(values), 3) if values else None,
    }


async def one_run(
    args: argparse.Namespace, postgres: PostgresCluster, broker_url: str, run: int, work: Path
) -> Outcome:
    """One run: provision, start the nodes, load, kill one and start it again."""
    database = postgres.create_database("takeover")
    plan = cluster_plan(
        shards=args.shards,
        per_shard=args.per_shard,
        calls_per_s=args.calls_per_s,
        duration_s=args.duration,
        seed=args.seed + run,
    )
    await provision_plan(postgres.url(database), plan, work)
    prefix = f"takeover{run}x{uuid.uuid4().hex[:6]}"
    names = [chr(ord("a") + i) for i in range(args.nodes)]
    cluster = Cluster(
        broker_url=broker_url,
        database_url=postgres.url(database),
        prefix=prefix,
        shards=args.shards,
        work=work,
        log_level=args.log_level,
    )
    pbx = ClusterPbx(plan, prefix, broker_url)
    try:
        pbx.start()
        cluster.start(*names)
        await cluster.placed(names)
        await cluster.answering(names)
        await pbx.served(q.tenant for q in plan.queues)
        victim = names[run % len(names)]
        third = args.duration / 3
        fault = Fault(at_s=third, node=victim, back_after_s=third / 2)
        return await under_load(
            cluster, pbx, plan, [fault], say=lambda s: print(f"  {s}", file=sys.stderr, flush=True)
        )
    finally:
        pbx.link.close()
        await cluster.close()
        postgres.drop_database(database)


async def main(argv: list[str] | None = None) -> int:
    """Run, print each kill and the summary, return the exit status."""
    args = parse(argv)
    # Provisioning logs every change it writes: not this report's business.
    configure_logging("console", "warning", stream=sys.stderr)
    described = " ".join(argv if argv is not None else sys.argv[1:]) or "(defaults)"
    root = Path(tempfile.mkdtemp(prefix="ringmaster-takeover-"))
    outcomes: list[Outcome] = []
    try:
        postgres = start_postgres(durable=not args.no_durable)
    except Exception as error:
        print(f"cluster_takeover: PostgreSQL: {error}", file=sys.stderr)
        return 2
    broker = start_mosquitto(root / "broker")
    try:
        for run in range(args.runs):
            work = root / f"run{run}"
            work.mkdir()
            print(f"run {run + 1}/{args.runs}", file=sys.stderr, flush=True)
            try:
                outcomes.append(await one_run(args, postgres, broker.url, run, work))
            except ClusterError as error:
                print(f"cluster_takeover: run {run + 1}: {error}", file=sys.stderr)
                return 2
    finally:
        broker.close()
        postgres.close()
        if args.keep:
            print(f"kept {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    report = summarise(args, outcomes, described)
    print(render(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    return 1 if report["invariants_broken"] else 0


def summarise(args: argparse.Namespace, outcomes: list[Outcome], described: str) -> dict[str, Any]:
    """Every kill's figures, and over all the shards of all kills."""
    kills = [t for o in outcomes for t in o.takeovers]
    ring = [v for t in kills for v in t.ring_s.values() if v is not None]
    online = [v for t in kills for v in t.online_s.values() if v is not None]
    back = [v for t in kills for v in t.back_ring_s.values() if v is not None]
    back_online = [v for t in kills for v in t.back_online_s.values() if v is not None]
    medians = [
        statistics.median(found)
        for t in kills
        if (found := [v for v in t.ring_s.values() if v is not None])
    ]
    broken: dict[str, int] = {}
    examples: dict[str, list[str]] = {}
    for o in outcomes:
        for inv in o.invariants:
            broken[inv.name] = broken.get(inv.name, 0) + inv.broken
            if inv.examples:
                examples.setdefault(inv.name, []).extend(inv.examples)
    return {
        "args": described,
        "settings": {
            "nodes": args.nodes,
            "shards": args.shards,
            "tenants": args.shards * args.per_shard,
            "calls_per_s": args.calls_per_s,
            "duration_s": args.duration,
            "postgresql_durable": not args.no_durable,
        },
        "machine": {**machine(), "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()]},
        "kills": [t.summary() for t in kills],
        "takeover_kill_to_first_ring_per_shard": _stats(ring),
        "takeover_kill_to_first_ring_median_per_kill": _stats(medians),
        "kill_to_shard_online_per_shard": _stats(online),
        "shards_without_a_ring_after_the_kill": sum(
            1 for t in kills for v in t.ring_s.values() if v is None
        ),
        "return_to_first_ring_per_shard": _stats(back),
        "return_to_shard_online_per_shard": _stats(back_online),
        "calls_offered": sum(o.figures["calls offered"] for o in outcomes),
        "calls_bridged": sum(o.figures["calls bridged by the PBX"] for o in outcomes),
        "invariants": broken,
        "invariants_broken": sum(broken.values()),
        "examples": {k: v[:5] for k, v in examples.items()},
    }


def render(report: dict[str, Any]) -> str:
    """The report as plain text."""
    lines = [
        f"cluster takeover: {report['args']}",
        f"settings: {report['settings']}",
        f"machine: {report['machine']}",
        "",
        "per kill (seconds):",
    ]
    for k in report["kills"]:
        ring, online = k["kill_to_first_ring"], k["kill_to_shard_online"]
        ret = k["return_to_first_ring"] or {}
        ret_online = k["return_to_shard_online"] or {}
        lines.append(
            f"  kill {k['node']} (shards {k['shards']}): first ring median {ring['median_s']} "
            f"max {ring['max_s']} ({ring['measured']}/{ring['shards']}); online median "
            f"{online['median_s']} max {online['max_s']}; placed elsewhere "
            f"{k['placed_elsewhere_s']}; return: placed {k['return_to_placement_s']}, "
            f"online median {ret_online.get('median_s')}, first ring median "
            f"{ret.get('median_s')} max {ret.get('max_s')}"
        )
    lines += [
        "",
        "takeover, kill -> first ring, per shard: "
        f"{report['takeover_kill_to_first_ring_per_shard']}",
        "takeover, kill -> first ring, median of each kill: "
        f"{report['takeover_kill_to_first_ring_median_per_kill']}",
        f"kill -> shard session online, per shard: {report['kill_to_shard_online_per_shard']}",
        f"shards without a ring after the kill: {report['shards_without_a_ring_after_the_kill']}",
        f"return -> first ring, per shard: {report['return_to_first_ring_per_shard']}",
        f"return -> shard session online: {report['return_to_shard_online_per_shard']}",
        f"calls offered {report['calls_offered']}, bridged {report['calls_bridged']}",
        "",
        "invariants (broken):",
    ]
    lines += [
        f"  {name:<45} {n:>5}  {'ok' if n == 0 else 'BROKEN'}"
        for name, n in report["invariants"].items()
    ]
    for name, found in report["examples"].items():
        lines.append(f"  {name}: {found}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
