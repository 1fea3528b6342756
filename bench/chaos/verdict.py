"""The invariants, counted from what the PBX model saw, and the summary table."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.chaos.pbx import Pbx


@dataclass
class Invariant:
    """One promise, how often it was broken, and a few examples."""

    name: str
    broken: int
    examples: list[str] = field(default_factory=list)
    #: For the yes/no ones, what was found ("yes", "3 deaths" ...).
    shown: str | None = None


def calls(pbx: Pbx) -> dict[str, Any]:
    """Each call's final state, judged against the PBX's own knowledge."""
    lost: list[str] = []
    two: list[str] = []
    wrong: list[str] = []
    refused: list[str] = []
    outcomes: dict[str, int] = {}
    bridged = 0
    for call in pbx.calls.values():
        cid = f"{call.arrival.tenant}/{call.arrival.call_id}"
        kinds = [k for k, _ in call.finals]
        if call.bridged_to is not None:
            bridged += 1
            if call.bridged_to not in call.answered:
                refused.append(
                    f"{cid}: bridged to {call.bridged_to}, ringmaster said "
                    f"answered={call.answered} final={kinds}"
                )
        if call.arrival.overtaken and not call.queued and not kinds:
            outcomes["gone_before_arrival"] = outcomes.get("gone_before_arrival", 0) + 1
            continue
        if not kinds:
            lost.append(f"{cid}: PBX state {call.state}, queued={call.queued}")
            continue
        if len(kinds) > 1:
            two.append(f"{cid}: {kinds}")
        kind, body = call.finals[0]
        outcomes[kind] = outcomes.get(kind, 0) + 1
        if call.bridged_to is not None:
            if kind != "completed" or body.get("extension") != call.bridged_to:
                wrong.append(f"{cid}: PBX bridged {call.bridged_to}, ringmaster: {kind} {body}")
        elif kind == "completed":
            wrong.append(f"{cid}: completed by {body.get('extension')}, the PBX bridged nobody")
    return {
        "offered": len(pbx.calls),
        "bridged": bridged,
        "outcomes": outcomes,
        "lost": lost,
        "two_finals": two,
        "wrong_final": wrong,
        "answers_refused": refused,
    }


def call_invariants(pbx: Pbx) -> list[Invariant]:
    """The invariants judged from what the PBX saw of the calls, whatever ran them.

    The chaos run (one daemon) and the cluster's runs (bench/chaos/cluster.py) share
    them; each adds the invariants of its own processes.
    """
    c = calls(pbx)

    def counted(name: str, key: str) -> Invariant:
        return Invariant(name, pbx.counts[key], pbx.examples.get(key, []))

    return [
        Invariant("calls without a final state (lost)", len(c["lost"]), c["lost"][:5]),
        Invariant("calls with two final states", len(c["two_finals"]), c["two_finals"][:5]),
        Invariant("final state contradicts the PBX", len(c["wrong_final"]), c["wrong_final"][:5]),
        counted("agents rung for two calls at once", "agents_rung_for_two_calls"),
        counted("rings for an ended call", "rings_for_ended_calls"),
        Invariant(
            "answers refused while their ring was live",
            len(c["answers_refused"]),
            c["answers_refused"][:5],
        ),
        counted("agents re-rung as their ring timed out", "rerung_as_ring_timed_out"),
        counted("routes for a bridged call", "routes_of_bridged_calls"),
    ]


def invariants(pbx: Pbx, run: dict[str, Any], rss_bound_mib: float) -> list[Invariant]:
    """Every invariant of docs/reliability.md, in the order of the table."""
    peak = run["peak_rss_mib"]
    return [
        *call_invariants(pbx),
        Invariant(
            "daemon deaths not caused by the harness",
            run["unexpected_deaths"],
            run["death_causes"][:5],
        ),
        Invariant(
            "daemon alive and answering at the end",
            0 if run["alive_at_end"] else 1,
            shown="yes" if run["alive_at_end"] else "NO",
        ),
        Invariant(
            f"daemon peak RSS within {rss_bound_mib:.0f} MiB",
            0 if peak <= rss_bound_mib else 1,
            shown=f"{peak:.0f} MiB",
        ),
        Invariant(
            "ended calls stored past their TTL (at the end)",
            run["stale_ended_calls"],
        ),
        Invariant(
            "broker restarts that lost the persistent session",
            run["persistence_failures"],
            run["persistence_errors"][:5],
        ),
    ]


def figures(pbx: Pbx, run: dict[str, Any]) -> dict[str, Any]:
    """The figures of a run (besides the invariants)."""
    c = calls(pbx)
    delays = sorted(pbx.first_ring_s)
    return {
        "calls offered": c["offered"],
        "calls bridged by the PBX": c["bridged"],
        "final states": c["outcomes"],
        "kill -9 survived": run["kills"],
        "broker restarts": run["broker_restarts"],
        "fuzz payloads published": run["fuzz_sent"],
        "error messages received": pbx.errors_seen,
        "restart to first ring, median s": round(statistics.median(delays), 3) if delays else None,
        "restart to first ring, max s": round(delays[-1], 3) if delays else None,
        "restarts measured": len(delays),
        "rings crossing an answer (allowed)": pbx.counts["rings_crossing_an_answer"],
        "cancels of bridged rings (allowed)": pbx.counts["cancels_of_bridged_rings"],
        "repeated messages (at least once)": pbx.counts["repeated_messages"],
        "PBX model's worst event-loop lag s": run["pbx_lag_s"],
        "wall time s": run["wall_s"],
    }


def machine() -> dict[str, Any]:
    """CPU model, cores, and the load average when the run ended."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "load_avg_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


def render(invs: list[Invariant], figs: dict[str, Any], mach: dict[str, Any], args: str) -> str:
    """The summary as a plain-text table."""
    lines = [f"chaos run: {args}", f"machine: {mach}", ""]
    width = max(len(i.name) for i in invs) + 2
    lines.append(f"{'invariant':<{width}} {'broken':>7}  result")
    for inv in invs:
        result = "ok" if inv.broken == 0 else "BROKEN"
        shown = inv.shown if inv.shown is not None else str(inv.broken)
        lines.append(f"{inv.name:<{width}} {shown:>7}  {result}")
    lines.append("")
    for name, value in figs.items():
        lines.append(f"{name:<{width}} {value}")
    broken = [i for i in invs if i.broken and i.examples]
    if broken:
        lines.append("")
        lines.append("examples:")
        for inv in broken:
            lines.append(f"  {inv.name}:")
            lines.extend(f"    {e}" for e in inv.examples)
    return "\n".join(lines)
