"""The simulated cluster figures in docs/cluster.md: ``python -m tests.cluster.figures``.

Virtual-clock results (no real time is measured): takeover after a kill, the gap of a
hand-back, and how many shards a placement change moves beyond the necessary ones.
"""

from __future__ import annotations

import itertools
import random
import statistics

from ringmaster.cluster.placement import balanced, moved

from .sim import Cluster, handover_gaps, takeover_times

RUNS = 200


def summary(values: list[float]) -> str:
    """Min, median, 95th percentile and max, in milliseconds."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    median = statistics.median(ordered)
    return (
        f"n={len(ordered)} min={ordered[0] * 1000:.0f} median={median * 1000:.0f}"
        f" p95={p95 * 1000:.0f} max={ordered[-1] * 1000:.0f} ms"
    )


def kills_and_returns(*, notify: bool) -> tuple[list[float], list[float], list[float]]:
    """Per-shard takeover times, per-kill worst takeover, per-shard hand-back gaps."""
    takeovers: list[float] = []
    worst: list[float] = []
    gaps: list[float] = []
    for seed in range(RUNS):
        phase = random.Random(seed).uniform(0.0, 1.0)
        cluster = Cluster(["a", "b", "c"], 32, seed=seed, notify=notify, turn_s=1.0)
        cluster.run_until(10.0 + phase)
        cluster.kill("a")
        killed = cluster.now
        cluster.run_until(killed + 5.0)
        times = takeover_times(cluster, "a", killed)
        takeovers += times
        worst.append(max(times))
        back = cluster.now
        cluster.start("a")
        cluster.run_until(back + 3.0)
        gaps += handover_gaps(cluster, "a", back)
    return takeovers, worst, gaps


def excess_moves() -> str:
    """Shards moved beyond a leaving node's own, over every 2..6 of 8 node names."""
    names = [f"node-{i}" for i in range(8)]
    lines = []
    for shards in (16, 32, 64):
        extra: list[int] = []
        for count in range(2, 7):
            for nodes in itertools.combinations(names, count):
                before = balanced(shards, nodes)
                for gone in nodes:
                    after = balanced(shards, [n for n in nodes if n != gone])
                    own = sum(1 for holder in before.values() if holder == gone)
                    extra.append(len(moved(before, after)) - own)
        lines.append(
            f"{shards} shards: extra moves mean={statistics.mean(extra):.2f}"
            f" max={max(extra)} (zero in {sum(e == 0 for e in extra) / len(extra):.0%})"
        )
    return "\n".join(lines)


def main() -> None:
    """Print the figures."""
    for notify in (True, False):
        takeovers, worst, gaps = kills_and_returns(notify=notify)
        print(f"NOTIFY {'on' if notify else 'off'}, 3 nodes, 32 shards, {RUNS} kills:")
        print(f"  takeover per shard (kill -> started elsewhere): {summary(takeovers)}")
        print(f"  takeover per kill (its last shard):              {summary(worst)}")
        print(f"  hand-back gap per shard (stop -> start):         {summary(gaps)}")
    print(excess_moves())


if __name__ == "__main__":
    main()
