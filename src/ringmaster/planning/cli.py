"""`ringmaster simulate`: the command-line face of `ringmaster.planning.simulate`.

Reads the scenario (a provisioning file, or flags for one queue), runs the simulation
or the staffing search, and prints a table or JSON on stdout; the speed of the run,
the search's steps and the progress bar go to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ringmaster.engine.strategies import strategy_names
from ringmaster.planning.simulate import (
    HandleDistribution,
    Progress,
    QueueResult,
    Scenario,
    SimulationError,
    SimulationResult,
    StaffingStep,
    Workload,
    scenario_from_spec,
    simulate,
    single_queue,
    staff_for,
)
from ringmaster.planning.simulate.results import ServiceLevelEstimate
from ringmaster.planning.simulate.staffing import CONFIDENCE, MAX_REPLICATIONS, MIN_REPLICATIONS
from ringmaster.provision import ProvisionError, check_file

_DURATION = re.compile(r"^(\d+(?:\.\d*)?)\s*([smh]?)$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration(text: str) -> float:
    """Seconds from "90", "90s", "15m" or "8h"."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 15m, 8h)")
    return float(match[1]) * _UNITS[match[2]]


def service_target(text: str) -> tuple[float, float]:
    """(fraction, seconds) from "80/20": 80% of calls answered within 20 s."""
    try:
        percent, seconds = text.split("/")
        target, threshold = float(percent) / 100, float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not SL/T: {text!r} (e.g. 80/20)") from None
    if not 0 < target <= 1 or threshold < 0:
        raise argparse.ArgumentTypeError(f"not SL/T: {text!r} (SL in (0, 100], T >= 0)")
    return target, threshold


def confidence(text: str) -> float:
    """A confidence level strictly between 0 and 1, from "0.95"."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"not a confidence in (0, 1): {text!r} (e.g. 0.95)")
    return value


def replications(text: str) -> int:
    """A positive number of replications."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a number of replications >= 1: {text!r}")
    return value


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the `simulate` subcommand to the `ringmaster` parser's subparsers."""
    sim = commands.add_parser(
        "simulate",
        help="capacity planning: simulate traffic on the real engine",
        description=(
            "Simulate calls against the real engine on a virtual clock: service level, "
            "ASA, abandonment and occupancy per queue, or with --staff-for the fewest "
            "agents that meet a service level. See docs/simulate.md."
        ),
    )
    sim.add_argument("file", type=Path, nargs="?", help="a provisioning TOML file (else: --agents)")
    one = sim.add_argument_group("one queue, without a file (queue key 600)")
    one.add_argument("--agents", type=int, default=None, help="agents in the queue")
    one.add_argument("--strategy", choices=sorted(strategy_names()), default="leastrecent")
    one.add_argument("--timeout", type=int, default=15, help="seconds one agent rings")
    one.add_argument("--retry", type=int, default=5, help="seconds between ring rounds")
    traffic = sim.add_argument_group("traffic and behaviour")
    traffic.add_argument(
        "--rate",
        action="append",
        default=[],
        metavar="[QUEUE=]R[,R...]",
        help="calls per hour (Poisson) into QUEUE (its queue_number or name); a list is a "
        "schedule, one rate per --interval; repeat for each queue",
    )
    traffic.add_argument("--interval", type=duration, default=3600.0, help="schedule step (1h)")
    traffic.add_argument(
        "--handle", choices=[d.value for d in HandleDistribution], default="exponential"
    )
    traffic.add_argument("--handle-mean", type=duration, default=180.0, help="mean handle time")
    traffic.add_argument("--handle-sigma", type=float, default=0.8, help="lognormal sigma")
    traffic.add_argument(
        "--patience", type=duration, default=None, help="callers' mean patience (default: none)"
    )
    traffic.add_argument("--wrapup", type=int, default=None, help="wrap-up seconds, all queues")
    traffic.add_argument("--no-answer", type=float, default=0.0, help="P(agent lets it ring)")
    traffic.add_argument("--ring-delay", type=duration, default=3.0, help="ring before answer")
    run = sim.add_argument_group("the run")
    run.add_argument("--calls", type=int, default=None, help="calls to simulate (default 20000)")
    run.add_argument("--duration", type=duration, default=None, help="simulated time, e.g. 8h")
    run.add_argument("--warmup", type=duration, default=0.0, help="do not count early calls")
    run.add_argument("--seed", type=int, default=1)
    run.add_argument(
        "--threshold",
        type=duration,
        default=20.0,
        help="the service-level threshold T (20 s); --staff-for's T replaces it",
    )
    run.add_argument(
        "--staff-for",
        type=service_target,
        default=None,
        metavar="SL/T",
        help="find the fewest agents for which SL%% are answered within T s",
    )
    run.add_argument("--queue", default=None, help="the queue --staff-for staffs")
    run.add_argument(
        "--confidence",
        type=confidence,
        default=CONFIDENCE,
        help=f"--staff-for: the confidence of the service levels' intervals ({CONFIDENCE:g})",
    )
    run.add_argument(
        "--max-replications",
        type=replications,
        default=MAX_REPLICATIONS,
        metavar="N",
        help="--staff-for: at most N runs (independent seeds) of each count at the boundary "
        f"until its interval is clear of the target ({MAX_REPLICATIONS}; at least "
        f"{MIN_REPLICATIONS} are made, or N if fewer)",
    )
    run.add_argument("--json", action="store_true", help="print JSON instead of a table")
    sim.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return sim


def run(args: argparse.Namespace, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Carry out `ringmaster simulate`; returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        build, rates = _scenario(args)
        workload = _workload(args, rates)
        if args.staff_for is not None:
            return _staff(args, build, workload, out, err)
        clock = _Stopwatch()
        bar = _progress_bar(workload, err)
        result = simulate(build(None), workload, bar)
        if bar is not None:
            err.write("\r\033[K")  # the bar goes when the run is over
        clock.report(result.calls, err)
    except (ProvisionError, SimulationError) as error:
        print(f"ringmaster simulate: {error}", file=err)
        return 2
    _print_result(result, args.json, out)
    return 0


Builder = Callable[[int | None], Scenario]


def _scenario(args: argparse.Namespace) -> tuple[Builder, dict[str, list[float]]]:
    if (args.file is None) == (args.agents is None):
        raise SimulationError("give either a provisioning file or --agents N")
    if args.file is None:

        def build_one(agents: int | None) -> Scenario:
            count = args.agents if agents is None else agents
            return single_queue(
                count,
                args.strategy,
                timeout=args.timeout,
                retry=args.retry,
                wrapup=args.wrapup or 0,
            )

        keys = ["600"]
        builder: Builder = build_one
    else:
        spec = check_file(args.file)

        def build_file(agents: int | None) -> Scenario:
            staff = {} if agents is None else {args.queue_key: agents}
            return scenario_from_spec(spec, staff)

        keys = [q.queue_number for q in spec.queue]
        builder = build_file
    scenario = builder(None)
    rates: dict[str, list[float]] = {}
    for text in args.rate:
        name, _, values = text.rpartition("=")
        if not name:
            if len(keys) != 1:
                raise SimulationError(f"--rate {text}: say which queue (QUEUE=R)")
            name = keys[0]
        try:
            rates[scenario.queue(name).key] = [float(v) for v in values.split(",")]
        except ValueError:
            raise SimulationError(f"--rate {text}: not calls per hour") from None
    if args.staff_for is not None:
        key = args.queue or (keys[0] if len(keys) == 1 else None)
        if key is None:
            raise SimulationError("--staff-for with several queues: say which with --queue")
        args.queue_key = scenario.queue(key).key
    return builder, rates


def _workload(args: argparse.Namespace, rates: dict[str, list[float]]) -> Workload:
    calls, span = args.calls, args.duration
    if calls is None and span is None:
        longest = max((len(r) for r in rates.values()), default=1)
        if longest > 1:
            span = longest * args.interval  # a schedule runs once through
        else:
            calls = 20_000
    return Workload(
        rates=rates,
        interval_s=args.interval,
        handle=HandleDistribution(args.handle),
        handle_mean_s=args.handle_mean,
        handle_sigma=args.handle_sigma,
        patience_mean_s=args.patience,
        no_answer=args.no_answer,
        ring_delay_s=args.ring_delay,
        wrapup_s=args.wrapup,
        calls=calls,
        duration_s=span,
        warmup_s=args.warmup,
        sl_threshold_s=args.threshold,
        seed=args.seed,
    )


def _staff(
    args: argparse.Namespace, build: Builder, workload: Workload, out: IO[str], err: IO[str]
) -> int:
    target, threshold = args.staff_for
    print(
        f"searching for SL {target:.0%} within {threshold:g} s in queue {args.queue_key}:", file=err
    )

    def step(s: StaffingStep) -> None:
        verdict = "meets" if s.meets else "short"
        if s.replications == 1 and s.low is None:
            print(f"  {s.agents:>5} agents: SL {s.service_level:6.1%}  {verdict}", file=err)
            return
        sure = "clear" if s.clear else "not clear"
        interval = "" if s.low is None or s.high is None else f" [{s.low:.1%}, {s.high:.1%}]"
        print(
            f"  {s.agents:>5} agents: SL {s.service_level:6.1%}{interval} over "
            f"{s.replications} runs  {verdict}, {sure}",
            file=err,
        )

    clock = _Stopwatch()
    answer = staff_for(
        build,
        workload,
        queue=args.queue_key,
        target=target,
        threshold_s=threshold,
        confidence=args.confidence,
        max_replications=args.max_replications,
        on_step=step,
    )
    clock.report(sum(s.calls for s in answer.steps), err)
    if answer.agents is None or answer.result is None or answer.at is None:
        print(f"ringmaster simulate: no agent count up to 2000 reaches {target:.0%}", file=err)
        return 1
    if args.json:
        document = _result_json(answer.result)
        document["staffing"] = {
            "queue": args.queue_key,
            "target": target,
            "threshold_s": threshold,
            "agents": answer.agents,
            "clear": answer.clear,
            "confidence": args.confidence,
            "max_replications": args.max_replications,
            "at": answer.at.to_json(),
            "below": None if answer.below is None else answer.below.to_json(),
            "steps": [
                {
                    "agents": s.agents,
                    "service_level": s.service_level,
                    "replications": s.replications,
                    "low": s.low,
                    "high": s.high,
                    "meets": s.meets,
                    "clear": s.clear,
                }
                for s in answer.steps
            ],
        }
        print(json.dumps(document, indent=2), file=out)
    else:
        for line in _staffing_lines(answer.agents, answer.at, answer.below, answer.clear, args):
            print(line, file=out)
        print(f"one run of {answer.agents} agents (seed {answer.result.seed}):", file=out)
        print(format_table(answer.result.queues), file=out)
    return 0


def _staffing_lines(
    agents: int,
    at: ServiceLevelEstimate,
    below: ServiceLevelEstimate | None,
    clear: bool,
    args: argparse.Namespace,
) -> list[str]:
    target, threshold = args.staff_for
    if clear:
        head = f"{agents} agents in queue {args.queue_key}"
    else:
        head = (
            f"{agents} agents in queue {args.queue_key}, NOT CLEAR after "
            f"{args.max_replications} runs: an interval still straddles {target:.0%}"
        )
    lines = [head]
    for found in (at, below):
        if found is None:
            continue
        interval = (
            f"{found.confidence:.0%} interval {found.low:.1%} to {found.high:.1%}"
            if math.isfinite(found.low)
            else "no interval from one run"
        )
        lines.append(
            f"  {found.agents:>5} agents: SL {found.mean:.1%} within {threshold:g} s "
            f"({interval}, {found.replications} runs)"
        )
    return lines


class _Stopwatch:
    """Wall and CPU time since creation: on a shared machine the two tell different stories."""

    def __init__(self) -> None:
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def report(self, calls: int, err: IO[str]) -> None:
        wall = time.perf_counter() - self._wall
        cpu = time.process_time() - self._cpu
        rate = calls / wall if wall > 0 else float("inf")
        print(
            f"simulated {calls} calls in {wall:.2f} s ({cpu:.2f} s CPU): {rate:,.0f} calls/s",
            file=err,
        )


def _progress_bar(workload: Workload, err: IO[str]) -> Progress | None:
    if not err.isatty():
        return None
    total = workload.calls
    if total is None and workload.duration_s is not None:
        per_hour = sum(sum(r) / len(r) for r in workload.rates.values() if r)
        total = max(1, int(per_hour * workload.duration_s / 3600))
    started = time.perf_counter()

    def show(calls: int) -> None:
        if time.perf_counter() - started < 1.0:
            return  # short runs need no bar
        share = min(1.0, calls / total) if total else 0.0
        filled = int(share * 30)
        err.write(f"\r[{'#' * filled}{' ' * (30 - filled)}] {share:4.0%} {calls} calls")
        err.flush()

    return show


# --- output -------------------------------------------------------------------------------

_ROWS: Sequence[tuple[str, str, Callable[[QueueResult], str]]] = (
    ("agents", "", lambda q: f"{q.agents}"),
    ("offered", "", lambda q: f"{q.offered}"),
    ("answered", "", lambda q: f"{q.answered}"),
    ("abandoned", "", lambda q: f"{q.abandoned}"),
    ("waiting at end", "", lambda q: f"{q.waiting_at_end}"),
    ("service level", "SL", lambda q: f"{q.service_level:.1%}"),
    ("service level 2", "SL2", lambda q: f"{q.service_level_2:.1%}"),
    ("ASA", "s", lambda q: f"{q.asa_s:.1f}"),
    ("AHT (talk)", "s", lambda q: f"{q.aht_s:.1f}"),
    ("abandonment", "", lambda q: f"{q.abandon_rate:.1%}"),
    ("occupancy", "", lambda q: f"{q.occupancy:.1%}"),
    ("longest wait", "s", lambda q: f"{q.longest_wait_s:.1f}"),
    ("wait p50", "s", lambda q: f"{q.wait_p50_s:.1f}"),
    ("wait p90", "s", lambda q: f"{q.wait_p90_s:.1f}"),
    ("wait p99", "s", lambda q: f"{q.wait_p99_s:.1f}"),
)


def format_table(queues: Sequence[QueueResult]) -> str:
    """One column per queue, one row per figure, aligned."""
    if not queues:
        return ""
    threshold = f"{queues[0].sl_threshold_s:g}"
    labels = []
    for label, unit, _ in _ROWS:
        if unit in ("SL", "SL2"):
            labels.append(f"{label} ({unit}, {threshold} s)")
        else:
            labels.append(f"{label} ({unit})" if unit else label)
    header = ["queue", *(f"{q.queue} {q.name}" for q in queues)]
    rows = [header] + [
        [labels[i], *(render(q) for q in queues)] for i, (_, _, render) in enumerate(_ROWS)
    ]
    widths = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            v.rjust(w) for v, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _result_json(result: SimulationResult) -> dict[str, Any]:
    return {
        "seed": result.seed,
        "calls": result.calls,
        "simulated_s": result.simulated_s,
        "queues": [q.to_json() for q in result.queues],
    }


def _print_result(result: SimulationResult, as_json: bool, out: IO[str]) -> None:
    if as_json:
        print(json.dumps(_result_json(result), indent=2), file=out)
    else:
        print(format_table(result.queues), file=out)
