"""The table: each figure beside its ceiling or target, with pass/miss and by how much."""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str]  # figure, measured, ceiling/target, verdict

#: The issue's targets.
P99_TARGET_MS = 5.0
ECHO_RATIO_TARGET = 2.0
SUSTAINED_TARGET = 1000
SCALE_RATIO_TARGET = 2.0
RECOVERY_TARGET_S = 2.0
BYTES_TARGET = 2048
#: Rates with a target: 100/s against an absolute p99, 500/s against the echo's p99.
ABSOLUTE_RATE, RELATIVE_RATE = 100, 500
#: Agents of the arrival scenario (the baseline of the per-agent RSS figure).
ARRIVAL_AGENTS = 200
#: Per-enrolment cost growing by less than this across sizes counts as linear.
LINEAR_RATIO = 2.0
#: Numbers below this print with three significant digits, above it as integers.
SMALL = 100


def _g(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _verdict(value: float | None, limit: float | None, *, higher_is_better: bool = False) -> str:
    if value is None or limit is None:
        return "n/a"
    if higher_is_better:
        return "PASS" if value >= limit else f"MISS ({value / limit:.2f}x of target)"
    return "PASS" if value <= limit else f"MISS ({value / limit:.1f}x over)"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < SMALL else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _latency_rows(r: dict[str, Any]) -> list[Row]:
    ce, ar = r.get("ceiling", {}), r.get("arrival", {})
    rows: list[Row] = [
        (
            "echo ceiling: round trips/s (200 in flight)",
            _fmt(ce.get("throughput_msgs_per_s")),
            "",
            "",
        )
    ]
    for rate in (100, 500, 1000):
        e, a = _g(ce, f"rate_{rate}") or {}, _g(ar, f"rate_{rate}") or {}
        rows.append(
            (
                f"echo @{rate}/s p50/p99 ms",
                f"{_fmt(e.get('p50_ms'))} / {_fmt(e.get('p99_ms'))}",
                "",
                "",
            )
        )
        ratio = (a["p99_ms"] / e["p99_ms"]) if a.get("p99_ms") and e.get("p99_ms") else None
        target, verdict = "", ""
        if rate == ABSOLUTE_RATE:
            target, verdict = (
                f"p99 <= {P99_TARGET_MS:g} ms",
                _verdict(a.get("p99_ms"), P99_TARGET_MS),
            )
        elif rate == RELATIVE_RATE:
            target = f"p99 <= {ECHO_RATIO_TARGET:g}x echo p99"
            verdict = _verdict(ratio, ECHO_RATIO_TARGET)
        lost, lag = a.get("lost", "-"), a.get("max_send_lag_ms", "-")
        rows.append(
            (
                f"arrival->ring @{rate}/s p50/p99/p99.9 ms (lost {lost}, lag {lag} ms)",
                f"{_fmt(a.get('p50_ms'))} / {_fmt(a.get('p99_ms'))} / {_fmt(a.get('p999_ms'))}"
                + (f"  ({ratio:.1f}x echo p99)" if ratio else ""),
                target,
                verdict,
            )
        )
    cpu = {rate: _g(ar, f"rate_{rate}", "daemon_cpu_ms_per_call") for rate in (100, 500, 1000)}
    if any(v is not None for v in cpu.values()):
        rows.append(
            (
                "daemon CPU ms per full-life call @100/500/1000/s",
                " / ".join(_fmt(v) for v in cpu.values()),
                "",
                "",
            )
        )
    af = r.get("agent_free", {})
    rows.append(
        (
            f"agent free->ring @{af.get('rate', '-')}/s, {af.get('waiting', '-')} waiting"
            " p50/p99 ms",
            f"{_fmt(af.get('p50_ms'))} / {_fmt(af.get('p99_ms'))}",
            f"p99 <= {P99_TARGET_MS:g} ms",
            _verdict(af.get("p99_ms"), P99_TARGET_MS),
        )
    )
    su = r.get("sustained", {})
    rate = su.get("sustained_rate")
    hold = _g(su, "holds", str(rate)) or {}
    rows.append(
        (
            "sustained full-life calls/s (nothing lost, p99 < 50 ms,"
            f" held {hold.get('send_s', '-')} s)",
            f"{_fmt(rate)} (p99 {_fmt(hold.get('p99_ms'))} ms)",
            f">= {SUSTAINED_TARGET:,}/s",
            _verdict(rate, SUSTAINED_TARGET, higher_is_better=True),
        )
    )
    return rows


def _scale_rows(r: dict[str, Any], ratios: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    eng = _g(r, "scale", "engine") or {}
    for dim, label in (
        ("agents", "agents in one queue"),
        ("queues", "queues"),
        ("waiting", "waiting calls"),
    ):
        sizes = eng.get(dim) or {}
        if not sizes:
            continue
        keys = sorted(sizes, key=int)
        lo, hi = sizes[keys[0]]["us_per_event"], sizes[keys[-1]]["us_per_event"]
        ratios[dim] = round(hi / lo, 1)
        series = ", ".join(f"{int(k):,}: {sizes[k]['us_per_event']:.0f}" for k in keys)
        rows.append(
            (
                f"engine us/event by {label}",
                series,
                f"100k/100 <= {SCALE_RATIO_TARGET:g}x" if dim == "agents" else "",
                (
                    _verdict(hi / lo, SCALE_RATIO_TARGET)
                    if dim == "agents"
                    else f"ratio {hi / lo:.1f}x"
                ),
            )
        )
    enrol = eng.get("enrol_s") or {}
    if enrol:
        keys = sorted(enrol, key=int)
        per = [enrol[k] / int(k) for k in (keys[0], keys[-1])]
        growth = per[1] / per[0] if per[0] else None
        rows.append(
            (
                "engine start-up: replaying enrolments of one queue (s)",
                ", ".join(f"{int(k):,}: {enrol[k]}" for k in keys),
                "",
                "n/a"
                if growth is None
                else ("linear" if growth < LINEAR_RATIO else f"superlinear ({growth:.1f}x)"),
            )
        )
    e2e = _g(r, "scale", "e2e_agents") or {}
    if e2e:
        keys = sorted(e2e, key=int)
        rows.append(
            (
                f"end to end arrival->ring p50/p99 ms by agents @{e2e[keys[0]].get('rate')}/s",
                ", ".join(
                    f"{int(k):,}: {_fmt(e2e[k].get('p50_ms'))}/{_fmt(e2e[k].get('p99_ms'))}"
                    for k in keys
                ),
                "",
                "",
            )
        )
        rows.append(
            (
                "end to end: daemon start to online (s) by agents",
                ", ".join(f"{int(k):,}: {e2e[k].get('start_to_online_s')}" for k in keys),
                "",
                "",
            )
        )
    return rows


def _recovery_and_memory_rows(r: dict[str, Any]) -> list[Row]:
    rc = r.get("recovery", {})
    rows: list[Row] = [
        (
            f"recovery: {rc.get('calls', '-')} waiting, {rc.get('agents', '-')} agents:"
            " start to READY (s)",
            _fmt(rc.get("to_ready_s")),
            f"<= {RECOVERY_TARGET_S:g} s",
            _verdict(rc.get("to_ready_s"), RECOVERY_TARGET_S),
        ),
        ("recovery: start to first ring (s)", _fmt(rc.get("to_ring_s")), "", ""),
    ]
    mem = _g(r, "scale", "engine", "memory") or {}
    for what, key in (("waiting call", "bytes_per_waiting_call"), ("agent", "bytes_per_agent")):
        rows.append(
            (
                f"engine memory per {what} (tracemalloc, bytes)",
                _fmt(mem.get(key)),
                f"<= {BYTES_TARGET:,}",
                _verdict(mem.get(key), BYTES_TARGET),
            )
        )
    if rc.get("rss_kib_with_calls") and rc.get("rss_kib_agents_only"):
        per_call = (rc["rss_kib_with_calls"] - rc["rss_kib_agents_only"]) * 1024 / rc["calls"]
        rows.append(
            (
                "daemon RSS per waiting call (bytes, whole process)",
                _fmt(round(per_call)),
                f"<= {BYTES_TARGET:,}",
                _verdict(per_call, BYTES_TARGET),
            )
        )
        ar_idle = _g(r, "arrival", "rss_kib_idle")
        if ar_idle:
            per_agent = (
                (rc["rss_kib_agents_only"] - ar_idle) * 1024 / (rc["agents"] - ARRIVAL_AGENTS)
            )
            rows.append(
                (
                    f"daemon RSS per agent (bytes, {rc['agents']:,} vs {ARRIVAL_AGENTS} agents)",
                    _fmt(round(per_agent)),
                    f"<= {BYTES_TARGET:,}",
                    _verdict(per_agent, BYTES_TARGET),
                )
            )
    return rows


#: Issue 9's targets for a restart under 100 calls/s: spawn to first ring.
RECOVERY_LOAD_MEDIAN_S, RECOVERY_LOAD_MAX_S = 1.0, 2.0


def _load_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    te = r.get("tenants") or {}
    for phase in ("quiet", "bad_flood", "valid_flood", "api", "quiet_again"):
        res = te.get(phase)
        if not isinstance(res, dict):
            continue
        load = res.get("disturbance") or {}
        what = {
            "bad_flood": f"tenant 2 floods {_fmt(load.get('sent'))} bad payloads",
            "valid_flood": f"tenant 2 floods {_fmt(load.get('sent'))} arrivals",
            "api": f"{_fmt((load.get('request') or {}).get('n'))} admin API requests",
        }.get(phase, phase.replace("_", " "))
        ratio = ""
        if res.get("p99_ms_ratio") is not None:
            ratio = f"  (x{res.get('p50_ms_ratio')} / x{res.get('p99_ms_ratio')} of quiet)"
        rows.append(
            (
                f"tenant 1 arrival->ring @{te.get('rate')}/s p50/p99 ms, {what}",
                f"{_fmt(res.get('p50_ms'))} / {_fmt(res.get('p99_ms'))}{ratio}",
                "",
                "",
            )
        )
    rl = r.get("recovery_load") or {}
    if rl.get("median_s") is not None:
        rows.append(
            (
                f"restart under {rl.get('rate')} calls/s, spawn to first ring (s),"
                f" {rl.get('kills')} kill -9: median / max",
                f"{_fmt(rl['median_s'])} / {_fmt(rl['max_s'])}",
                f"<= {RECOVERY_LOAD_MEDIAN_S:g} / {RECOVERY_LOAD_MAX_S:g}",
                "PASS"
                if rl["median_s"] <= RECOVERY_LOAD_MEDIAN_S and rl["max_s"] <= RECOVERY_LOAD_MAX_S
                else "MISS",
            )
        )
    return rows


def render(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The table as text, and the same rows as a JSON-ready summary.

    Args:
        r: The raw results of one run (what `python -m bench` writes to `results/`).
    """
    m = r["machine"]
    head = (
        f"Ringmaster benchmarks ({r['mode']}), {m['cpu_model']}, {m['cores']} cores, "
        f"Python {m['python']}, {m['mosquitto']}"
    )
    ratios: dict[str, Any] = {}
    rows = [
        *_latency_rows(r),
        *_scale_rows(r, ratios),
        *_recovery_and_memory_rows(r),
        *_load_rows(r),
    ]
    w = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        head,
        "",
        " | ".join(
            h.ljust(w[i]) for i, h in enumerate(("figure", "measured", "target", "verdict"))
        ),
    ]
    lines.append("-+-".join("-" * x for x in w))
    lines += [" | ".join(c.ljust(w[i]) for i, c in enumerate(row)) for row in rows]
    summary = {
        "machine": m,
        "mode": r["mode"],
        "started": r["started"],
        "rows": [
            dict(zip(("figure", "measured", "target", "verdict"), row, strict=True)) for row in rows
        ],
        "scale_ratios": ratios,
    }
    return "\n".join(lines), summary
