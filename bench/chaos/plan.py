"""What a run does: its settings, the tenants it provisions, and its seeded schedules.

Every decision the harness makes (when calls arrive, how patient each caller is,
how each agent reacts to each ring, when the faults strike, which payloads the
fuzzer sends) is drawn from a generator seeded by the run's seed and the thing
decided, so the same seed makes the same decisions whatever the timing.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

#: The tenants that carry calls, and the one that only the fuzzer talks to.
CALL_TENANTS = (1, 2, 3)
FUZZ_TENANT = 9
#: A DID no tenant routes: calls to it are rejected (`no_route`).
UNROUTED_DID = "+29999"


@dataclass(frozen=True)
class QueueSpec:
    """One provisioned queue, as the PBX model needs to know it."""

    tenant: int
    number: str
    strategy: str
    did: str
    timeout: int
    retry: int
    extras: str = ""  # further TOML keys of the queue
    agents: tuple[str, ...] = ()
    penalties: bool = False


@dataclass(frozen=True)
class Plan:
    """A run's settings (the command line's, after `--short`/`--long` defaults)."""

    seed: int = 1
    calls_per_s: float = 8.0
    duration_s: float = 40.0
    kills: int = 3
    broker_restarts: int = 1
    fuzz: int = 10_000
    #: Seconds after the load stops before the PBX hangs up every caller still waiting.
    settle_s: float = 3.0
    #: How long the harness waits for every call's final state after that.
    drain_s: float = 30.0
    #: The daemon's resident memory must stay below this (MiB).
    rss_bound_mib: float = 400.0
    #: Seconds between an unexpected death and the restart (systemd's RestartSec).
    restart_sec: float = 2.0
    talk_s: tuple[float, float] = (1.0, 4.0)
    patience_mean_s: float = 15.0
    queues: tuple[QueueSpec, ...] = field(default=())

    def rng(self, *what: object) -> random.Random:
        """A generator for one decision, seeded by the run's seed and `what`."""
        return random.Random(":".join(str(w) for w in (self.seed, *what)))


SHORT = {"calls_per_s": 8.0, "duration_s": 40.0, "kills": 3, "broker_restarts": 1, "fuzz": 10_000}
LONG = {
    "calls_per_s": 50.0,
    "duration_s": 600.0,
    "kills": 20,
    "broker_restarts": 5,
    "fuzz": 200_000,
}

# Every strategy family, in every tenant, with the options that make rings race:
# short timeouts, a retry pause, a queue without one, wrap-up, overflow and max_len.
_QUEUES: dict[int, list[tuple[str, int, int, str]]] = {
    1: [
        ("ringall", 4, 1, ""),
        ("leastrecent", 3, 1, ""),
        ("roundrobin", 3, 2, ""),
        ("ringprogressive", 5, 1, "ring_progressive_delay = 1\n"),
    ],
    2: [
        ("rrordered", 3, 1, ""),
        ("linear", 4, 1, 'max_wait = 8\noverflow = {type = "queue", queue_number = "602"}\n'),
        ("fewestcalls", 3, 2, "wrapup_time = 1\n"),
        ("leasttalktime", 4, 1, "max_len = 4\n"),
    ],
    3: [
        ("longestidle", 3, 1, ""),
        ("random", 4, 1, ""),
        ("wrandom", 3, 1, ""),
        ("ringall", 3, 0, "wrapup_time = 1\n"),
    ],
}


def agents_per_queue(calls_per_s: float) -> int:
    """Enough agents that most calls are answered: each call holds one ~4 s."""
    per_queue = calls_per_s / sum(len(q) for q in _QUEUES.values())
    return max(3, math.ceil(per_queue * 4.0 * 1.3))


def queues(calls_per_s: float) -> tuple[QueueSpec, ...]:
    """The queues of the call tenants, each with its own agents plus a shared one."""
    n = agents_per_queue(calls_per_s)
    specs = []
    for tenant, rows in _QUEUES.items():
        for q, (strategy, timeout, retry, extras) in enumerate(rows):
            own = tuple(str(1000 + q * 100 + k) for k in range(n))
            specs.append(
                QueueSpec(
                    tenant=tenant,
                    number=str(600 + q),
                    strategy=strategy,
                    did=f"+2000{q}",
                    timeout=timeout,
                    retry=retry,
                    extras=extras,
                    # "1999" is enrolled in every queue of its tenant: an agent offered
                    # the calls of several queues is where double rings would show.
                    agents=(*own, "1999"),
                    penalties=strategy == "wrandom",
                )
            )
    return tuple(specs)


def provisioning(specs: tuple[QueueSpec, ...], *, fuzz_tenant: bool = True) -> str:
    """The TOML file `ringmaster provision` loads: the queues' tenants and the fuzz tenant."""
    parts = []
    tenants = sorted({spec.tenant for spec in specs})
    for tenant in (*tenants, FUZZ_TENANT) if fuzz_tenant else tenants:
        parts.append(f'[[tenant]]\nid = {tenant}\nname = "Chaos {tenant}"\n')
    extensions: set[tuple[int, str]] = set()
    for spec in specs:
        extensions.update((spec.tenant, a) for a in spec.agents)
    if fuzz_tenant:
        extensions.update({(FUZZ_TENANT, "101"), (FUZZ_TENANT, "102")})
    for tenant, number in sorted(extensions):
        parts.append(f'[[extension]]\ntenant_id = {tenant}\nnumber = "{number}"\n')
    for spec in specs:
        if spec.penalties:
            agents = ", ".join(
                f'{{extension = "{a}", penalty = {i % 3}}}' for i, a in enumerate(spec.agents)
            )
        else:
            agents = ", ".join(f'"{a}"' for a in spec.agents)
        parts.append(
            f"[[queue]]\ntenant_id = {spec.tenant}\nqueue_number = {spec.number!r}\n"
            f'name = "{spec.strategy} {spec.number}"\nstrategy = "{spec.strategy}"\n'
            f"timeout = {spec.timeout}\nretry = {spec.retry}\n{spec.extras}agents = [{agents}]\n"
        )
        parts.append(
            f"[[did_route]]\ntenant_id = {spec.tenant}\ndid = {spec.did!r}\n"
            f"queue = {spec.number!r}\n"
        )
    if fuzz_tenant:
        parts.append(
            f'[[queue]]\ntenant_id = {FUZZ_TENANT}\nqueue_number = "600"\nname = "Fuzz"\n'
            'strategy = "ringall"\ntimeout = 5\nagents = ["101", "102"]\n'
        )
        parts.append(f'[[did_route]]\ntenant_id = {FUZZ_TENANT}\ndid = "+100"\nqueue = "600"\n')
    return "\n".join(parts).replace("'", '"')


@dataclass(frozen=True)
class Arrival:
    """One call the PBX will offer."""

    at_s: float  # seconds after the load starts
    tenant: int
    call_id: str
    did: str
    patience_s: float
    talk_s: float
    #: The PBX's client sends the hangup before the arrival, as after an outage.
    overtaken: bool


def arrivals(plan: Plan) -> list[Arrival]:
    """The calls of the run: Poisson arrivals over every DID (and a few unrouted)."""
    rng = plan.rng("arrivals")
    out: list[Arrival] = []
    t = 0.0
    i = 0
    while True:
        t += rng.expovariate(plan.calls_per_s)
        if t >= plan.duration_s:
            return out
        spec = rng.choice(plan.queues)
        did = UNROUTED_DID if rng.random() < 0.02 else spec.did
        if rng.random() < 0.1:
            # Callers who give up while the first rings are still on.
            patience = rng.uniform(0.2, 3.0)
        else:
            patience = max(0.3, rng.expovariate(1.0 / plan.patience_mean_s))
        out.append(
            Arrival(
                at_s=t,
                tenant=spec.tenant,
                call_id=f"c{plan.seed}-{i}",
                did=did,
                patience_s=patience,
                talk_s=rng.uniform(*plan.talk_s),
                overtaken=rng.random() < 0.01,
            )
        )
        i += 1


@dataclass(frozen=True)
class Fault:
    """A kill -9 of the daemon or a broker restart, and how long the victim stays down."""

    at_s: float
    kind: str  # "kill" or "broker"
    down_s: float


def faults(plan: Plan) -> list[Fault]:
    """The faults of the run, in the middle 80 % of the load, in time order."""
    rng = plan.rng("faults")
    lo, hi = 0.1 * plan.duration_s, 0.9 * plan.duration_s
    out = [Fault(rng.uniform(lo, hi), "kill", rng.uniform(0.0, 1.0)) for _ in range(plan.kills)]
    out += [
        Fault(rng.uniform(lo, hi), "broker", rng.uniform(0.3, 2.0))
        for _ in range(plan.broker_restarts)
    ]
    return sorted(out, key=lambda f: f.at_s)


@dataclass(frozen=True)
class Reaction:
    """How an agent reacts to one ring, drawn when the ring arrives."""

    kind: str  # "answer", "rejected", "busy", "unreachable", "no_answer"
    after_s: float
    #: When the PBX's own ring timer fires, as a fraction of the ring's timeout.
    pbx_timer: float


def reaction(
    plan: Plan, tenant: int, call_id: str, extension: str, *, n: int, timeout: float
) -> Reaction:
    """The agent's reaction to its `n`-th ring for this call."""
    rng = plan.rng("ring", tenant, call_id, extension, n)
    # Most PBX timers fire at the timeout; some a little early, racing our cancel_ring.
    pbx_timer = 1.0 if rng.random() < 0.8 else rng.uniform(0.9, 1.0)
    roll = rng.random()
    if roll < 0.55:
        return Reaction("answer", rng.uniform(0.3, 0.8) * timeout, pbx_timer)
    if roll < 0.65:
        # Answers at the last moment: they cross ringmaster's own timeout.
        return Reaction("answer", rng.uniform(0.85, 1.0) * pbx_timer * timeout, pbx_timer)
    if roll < 0.73:
        return Reaction("rejected", rng.uniform(0.2, 1.5), pbx_timer)
    if roll < 0.77:
        return Reaction("busy", 0.05, pbx_timer)
    if roll < 0.80:
        return Reaction("unreachable", 0.1, pbx_timer)
    return Reaction("no_answer", timeout * pbx_timer, pbx_timer)
