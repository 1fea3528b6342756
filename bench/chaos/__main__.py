"""`python -m bench.chaos [--short|--long] [--seed N] ...`: one chaos run, its verdict.

Exit status: 0 when every invariant held, 1 when one was broken, 2 when the run
could not be set up (no mosquitto, persistence not working, the daemon never
came online).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import signal
import sys
from pathlib import Path

from bench.chaos import verdict
from bench.chaos.plan import LONG, SHORT, Plan, queues
from bench.chaos.run import Chaos, SetupError


def parse(argv: list[str] | None = None) -> tuple[Plan, argparse.Namespace]:
    """The plan the command line asks for."""
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--short", action="store_true", help="the test suite's run (default)")
    mode.add_argument("--long", action="store_true", help="the run docs/reliability.md reports")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--calls-per-s", type=float)
    p.add_argument("--duration", type=float, help="seconds of load")
    p.add_argument("--kills", type=int, help="kill -9 of the daemon")
    p.add_argument("--broker-restarts", type=int)
    p.add_argument("--fuzz", type=int, help="fuzz payloads to publish")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--keep", action="store_true", help="keep the work folder (daemon log)")
    args = p.parse_args(argv)
    preset = LONG if args.long else SHORT
    chosen = {
        "calls_per_s": args.calls_per_s,
        "duration_s": args.duration,
        "kills": args.kills,
        "broker_restarts": args.broker_restarts,
        "fuzz": args.fuzz,
    }
    values = {k: (v if v is not None else preset[k]) for k, v in chosen.items()}
    plan = Plan(seed=args.seed, **values)  # type: ignore[arg-type]
    plan = dataclasses.replace(plan, queues=queues(plan.calls_per_s))
    return plan, args


async def main(argv: list[str] | None = None) -> int:
    """Run, print the summary, return the exit status."""
    plan, args = parse(argv)
    described = " ".join(argv if argv is not None else sys.argv[1:]) or "--short"
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    # A SIGTERM (a test's timeout) cancels the run, so that its cleanup stops the
    # broker and the daemon.
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        pbx, run = await Chaos(plan, keep=args.keep, log=lambda s: print(s, flush=True)).run()
    except SetupError as exc:
        print(f"chaos: setup failed: {exc}", file=sys.stderr)
        return 2
    invs = verdict.invariants(pbx, run, plan.rss_bound_mib)
    figs = verdict.figures(pbx, run)
    mach = verdict.machine()
    print(verdict.render(invs, figs, mach, described), flush=True)
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "args": described,
                    "plan": {k: v for k, v in dataclasses.asdict(plan).items() if k != "queues"},
                    "machine": mach,
                    "invariants": {i.name: i.broken for i in invs},
                    "examples": {i.name: i.examples for i in invs if i.examples},
                    "figures": figs,
                },
                indent=2,
                default=str,
            ),
            encoding="utf-8",
        )
    return 1 if any(i.broken for i in invs) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
