"""`ringmaster simulate`'s speed per strategy, A/B: a base tree against this one.

    python -m bench.simulate_speed [--base /tmp/base/src] [--calls 20000] [--reps 3]

Each run is a child process that imports ringmaster from one source tree (the
base, or this worktree's `src`) and simulates the same scenario as
docs/simulate.md's speed figures: one queue of 12 agents, 0.5 calls/hour (so
every agent is free for every call: `ringall` rings all 12 and cancels 11),
seed 1. Runs alternate base/new per strategy and repetition, so that a busy
neighbour on the machine weighs on both sides alike. Printed: the median
simulated calls per second of CPU time and of wall time, the ratio new/base,
and the machine. Without `--base` only this tree is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from bench.common import PYTHON, ROOT, machine

STRATEGIES = ("ringall", "leastrecent", "roundrobin", "random")
AGENTS = 12
RATE_PER_HOUR = 0.5


def worker(strategy: str, calls: int) -> dict[str, Any]:
    """One run in this process (ringmaster from whatever tree is on the path)."""
    from ringmaster.planning.simulate.run import simulate  # noqa: PLC0415 - the tree under test
    from ringmaster.planning.simulate.scenario import Workload, single_queue  # noqa: PLC0415

    scenario = single_queue(AGENTS, strategy)
    workload = Workload(rates={"600": [RATE_PER_HOUR]}, calls=calls, seed=1)
    wall, cpu = time.perf_counter(), time.process_time()
    result = simulate(scenario, workload)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    answered = sum(q.answered for q in result.queues)
    return {"calls": result.calls, "wall_s": wall, "cpu_s": cpu, "answered": answered}


def _child(src: str, strategy: str, calls: int) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([src, str(ROOT)]))
    out = subprocess.run(
        [PYTHON, "-m", "bench.simulate_speed", "--worker", strategy, "--calls", str(calls)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the A/B comparison (or, with `--worker`, one run) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="the base tree's src folder (A side)")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--only", choices=STRATEGIES, action="append")
    parser.add_argument("--worker", choices=STRATEGIES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.calls)))
        return 0
    sides = {"new": str(ROOT / "src")}
    if args.base:
        sides = {"base": args.base, **sides}
    strategies = args.only or list(STRATEGIES)
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.reps):
        for strategy in strategies:
            for side, src in sides.items():
                run = _child(src, strategy, args.calls)
                runs.setdefault((strategy, side), []).append(run)
                if side == "new" and "base" in sides:
                    base = runs[(strategy, "base")][-1]
                    if base["answered"] != run["answered"]:
                        print(f"{strategy}: the two trees disagree: {base} {run}", file=sys.stderr)
                        return 1
    print(json.dumps({"machine": machine(), "calls": args.calls, "reps": args.reps}))
    head = f"{'strategy':<12}" + "".join(f"{s + ' cpu':>12}{s + ' wall':>12}" for s in sides)
    print(head + ("  new/base cpu  new/base wall" if "base" in sides else ""))
    for strategy in strategies:
        line = f"{strategy:<12}"
        rates: dict[str, tuple[float, float]] = {}
        for side in sides:
            done = runs[(strategy, side)]
            cpu = statistics.median(r["calls"] / r["cpu_s"] for r in done)
            wall = statistics.median(r["calls"] / r["wall_s"] for r in done)
            rates[side] = (cpu, wall)
            line += f"{cpu:>12,.0f}{wall:>12,.0f}"
        if "base" in rates:
            line += f"{rates['new'][0] / rates['base'][0]:>14.2f}"
            line += f"{rates['new'][1] / rates['base'][1]:>15.2f}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
