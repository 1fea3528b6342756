"""A/B of two daemons in one run: `python -m bench.ab --base SRC [--new SRC] [--rounds N]`.

Runs `python -m bench --quick --only SCENARIOS` (default: arrival; `--full` for the full
run's durations) alternately with the
daemon of `--base` (a `src` folder, e.g. a worktree of main's commit: its PYTHONPATH) and
with this tree's daemon (or `--new`'s: a copy of src, so that editing goes on meanwhile),
B first in odd rounds so that neither side always goes first. The harness (generator,
broker, bench code) is this tree's for both. `--b-env K=V` sets an environment variable
for B's daemons only (say, `RINGMASTER_MQTT__MONITORING_QOS=0`), `--a-env` for A's. Prints,
per round and side, the daemon's CPU per full-life call and arrival->ring p50/p99 at each
rate (the echo's p99 too with `ceiling`, the rate held with `sustained`), then the median
ratio B/A of each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
from pathlib import Path
from typing import Any

from bench.common import PYTHON, ROOT

#: The figures compared, per rate: (label, key in the arrival scenario's rate results).
FIGURES = [("cpu_ms", "daemon_cpu_ms_per_call"), ("p50_ms", "p50_ms"), ("p99_ms", "p99_ms")]


def _one(only: str, env: dict[str, str], *, full: bool, extra: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [PYTHON, "-m", "bench", *([] if full else ["--quick"]), "--only", only, *extra],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    ).stdout
    path = next(line for line in out.splitlines() if line.startswith("raw results: "))
    result: dict[str, Any] = json.loads(Path(path.removeprefix("raw results: ")).read_text())
    return result


def _row(result: dict[str, Any]) -> dict[str, float | None]:
    row: dict[str, float | None] = {}
    for name, data in result.get("arrival", {}).items():
        if not name.startswith("rate_") or not isinstance(data, dict):
            continue
        for label, key in FIGURES:
            row[f"{label}@{data['rate']}"] = data.get(key)
        row[f"lost@{data['rate']}"] = data.get("lost")
    for name, data in result.get("ceiling", {}).items():
        if name.startswith("rate_") and isinstance(data, dict):
            row[f"echo_p99_ms@{name.removeprefix('rate_')}"] = data.get("p99_ms")
    if "sustained" in result:
        held = result["sustained"]
        row["sustained_rate"] = held.get("sustained_rate")
        hold = held.get("holds", {}).get(str(row["sustained_rate"]), {})
        row["sustained_p99_ms"] = hold.get("p99_ms")
    return row


def main() -> None:
    """Run the rounds and print the per-run figures and the median ratios."""
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("--base", required=True, type=Path, help="the A side's src folder")
    parser.add_argument("--new", type=Path, default=ROOT / "src", help="the B side's src folder")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", default="arrival")
    parser.add_argument("--full", action="store_true", help="the full run's durations")
    parser.add_argument("--sustain-rates", help="passed on to `python -m bench`")
    parser.add_argument("--a-env", action="append", default=[], help="K=V for A's daemon only")
    parser.add_argument("--b-env", action="append", default=[], help="K=V for B's daemon only")
    args = parser.parse_args()
    sides = {
        "A": {
            "BENCH_DAEMON_PYTHONPATH": str(args.base.resolve()),
            **dict(item.split("=", 1) for item in args.a_env),
        },
        "B": {
            "BENCH_DAEMON_PYTHONPATH": str(args.new.resolve()),
            **dict(item.split("=", 1) for item in args.b_env),
        },
    }
    rows: dict[str, list[dict[str, float | None]]] = {"A": [], "B": []}
    for n in range(args.rounds):
        for side in ("B", "A") if n % 2 else ("A", "B"):
            extra = ["--sustain-rates", args.sustain_rates] if args.sustain_rates else []
            row = _row(_one(args.only, sides[side], full=args.full, extra=extra))
            rows[side].append(row)
            print(f"round {n + 1} {side}: {json.dumps(row)}", flush=True)
    print("median B/A ratio:")
    for key in rows["A"][0] if rows["A"] else []:
        ratios = []
        for a, b in zip(rows["A"], rows["B"], strict=True):
            av, bv = a.get(key), b.get(key)
            if av and bv is not None:
                ratios.append(bv / av)
        if ratios:
            print(f"  {key}: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
