"""The table: each figure beside its ceiling or target, with pass/miss and by how much."""

from __future__ import annotations

from typing import Any


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
        return f"{v:.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def render(r: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    rows: list[tuple[str, str, str, str]] = []  # figure, measured, ceiling/target, verdict
    m = r["machine"]
    head = (
        f"Ringmaster benchmarks ({r['mode']}), {m['cpu_model']}, {m['cores']} cores, "
        f"Python {m['python']}, {m['mosquitto']}"
    )
    ce, ar = r.get("ceiling", {}), r.get("arrival", {})
    rows.append(
        (
            "echo ceiling: round trips/s (200 in flight)",
            _fmt(_g(ce, "throughput_msgs_per_s")),
            "",
            "",
        )
    )
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
        if rate == 100:
            target, verdict = "p99 <= 5 ms", _verdict(a.get("p99_ms"), 5.0)
        elif rate == 500:
            target = "p99 <= 2x echo p99"
            verdict = _verdict(ratio, 2.0)
        rows.append(
            (
                f"arrival->ring @{rate}/s p50/p99/p99.9 ms (lost {a.get('lost', '-')}, lag {a.get('max_send_lag_ms', '-')} ms)",
                f"{_fmt(a.get('p50_ms'))} / {_fmt(a.get('p99_ms'))} / {_fmt(a.get('p999_ms'))}"
                + (f"  ({ratio:.1f}x echo p99)" if ratio else ""),
                target,
                verdict,
            )
        )
    af = r.get("agent_free", {})
    rows.append(
        (
            f"agent free->ring @{af.get('rate', '-')}/s, {af.get('waiting', '-')} waiting p50/p99 ms",
            f"{_fmt(af.get('p50_ms'))} / {_fmt(af.get('p99_ms'))}",
            "p99 <= 5 ms",
            _verdict(af.get("p99_ms"), 5.0),
        )
    )
    su = r.get("sustained", {})
    rate = su.get("sustained_rate")
    hold = _g(su, "holds", str(rate)) or {}
    rows.append(
        (
            f"sustained full-life calls/s (nothing lost, p99 < 50 ms, held {hold.get('send_s', '-')} s)",
            f"{_fmt(rate)} (p99 {_fmt(hold.get('p99_ms'))} ms)",
            ">= 1,000/s",
            _verdict(rate, 1000, higher_is_better=True),
        )
    )
    eng = _g(r, "scale", "engine") or {}
    ratios: dict[str, Any] = {}
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
                "100k/100 <= 2x" if dim == "agents" else "",
                (_verdict(hi / lo, 2.0) if dim == "agents" else f"ratio {hi / lo:.1f}x"),
            )
        )
    if eng.get("enrol_s"):
        rows.append(
            (
                "engine start-up: replaying enrolments of one queue (s)",
                ", ".join(f"{int(k):,}: {v}" for k, v in eng["enrol_s"].items()),
                "",
                "quadratic",
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
    rc = r.get("recovery", {})
    rows.append(
        (
            f"recovery: {rc.get('calls', '-')} waiting, {rc.get('agents', '-')} agents: start to READY (s)",
            _fmt(rc.get("to_ready_s")),
            "<= 2 s",
            _verdict(rc.get("to_ready_s"), 2.0),
        )
    )
    rows.append(("recovery: start to first ring (s)", _fmt(rc.get("to_ring_s")), "", ""))
    mem = _g(eng, "memory") or {}
    for what, key in (("waiting call", "bytes_per_waiting_call"), ("agent", "bytes_per_agent")):
        rows.append(
            (
                f"engine memory per {what} (tracemalloc, bytes)",
                _fmt(mem.get(key)),
                "<= 2,048",
                _verdict(mem.get(key), 2048),
            )
        )
    if rc.get("rss_kib_with_calls") and rc.get("rss_kib_agents_only"):
        per_call = (rc["rss_kib_with_calls"] - rc["rss_kib_agents_only"]) * 1024 / rc["calls"]
        rows.append(
            (
                "daemon RSS per waiting call (bytes, whole process)",
                _fmt(round(per_call)),
                "<= 2,048",
                _verdict(per_call, 2048),
            )
        )
        ar_idle = ar.get("rss_kib_idle")
        if ar_idle:
            per_agent = (rc["rss_kib_agents_only"] - ar_idle) * 1024 / (rc["agents"] - 200)
            rows.append(
                (
                    "daemon RSS per agent (bytes, 5,000 vs 200 agents)",
                    _fmt(round(per_agent)),
                    "<= 2,048",
                    _verdict(per_agent, 2048),
                )
            )
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
