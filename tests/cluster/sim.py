"""A cluster on a virtual clock: nodes running `NodeLeases` against a fake lease table.

The fake database does what PostgreSQL does with the statements in
`ringmaster.cluster.leases`: each statement is atomic and decided by the database's
clock (here the simulation's). Between a node and the database every statement
and answer takes a random delay; the database may stall (statements arriving in a
window are applied at its end), a node may be killed (its statements in flight still
land), frozen (its events wait, as in a long GC pause or a stopped VM), or restarted.

Each node runs the adapter loop docs/cluster.md describes: at its machine's deadline,
`handle_timer`, then a read of both tables, `observe`, the statements sent together
(pipelined), their answers to `outcome`. Running shards commit a turn every
``turn_s`` carrying their epoch; the database's fence accepts it only for the current
holder and epoch of an unexpired lease.

`Cluster.check` asserts the invariants after every event.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from ringmaster.cluster.leases import (
    Acquire,
    Action,
    Beat,
    Heartbeat,
    Lease,
    LeaseTiming,
    NodeLeases,
    Release,
    Renew,
    StartShard,
    Statement,
    StopShard,
)
from ringmaster.cluster.placement import balanced
from ringmaster.settings import ClusterSettings

TIMING = LeaseTiming.from_settings(ClusterSettings(node="sim"))


@dataclass
class Row:
    """One row of the fake lease table."""

    holder: str | None = None
    epoch: int = 0
    expires_at: float = float("-inf")


@dataclass
class Database:
    """The lease and heartbeat tables, with the statements' compare-and-set conditions."""

    shards: int
    ttl: float
    rows: dict[int, Row] = field(default_factory=dict)
    beats: dict[str, float] = field(default_factory=dict)
    epochs: dict[int, list[int]] = field(default_factory=dict)  # every epoch taken, in order
    accepted: dict[int, list[tuple[float, str, int]]] = field(default_factory=dict)
    rejected: list[tuple[float, str, int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rows = {s: Row() for s in range(self.shards)}

    def execute(self, node: str, statement: Statement, now: float) -> bool:
        """Apply a statement as the SQL in its docstring would; True if a row changed."""
        if isinstance(statement, Beat):
            self.beats[node] = now
            return True
        if isinstance(statement, Acquire):
            return self._acquire(node, statement, now)
        row = self.rows[statement.shard]
        mine = row.holder == node and row.epoch == statement.epoch
        if isinstance(statement, Renew):
            if mine and row.expires_at >= now:
                row.expires_at = now + self.ttl
                return True
            return False
        if mine:  # a release
            row.holder, row.expires_at = None, now
        return mine

    def _acquire(self, node: str, statement: Acquire, now: float) -> bool:
        row = self.rows[statement.shard]
        takeable = row.holder is None or row.expires_at < now or row.holder == node
        if row.epoch != statement.epoch - 1 or not takeable:
            return False
        row.holder, row.epoch, row.expires_at = node, statement.epoch, now + self.ttl
        taken = self.epochs.setdefault(statement.shard, [])
        assert not taken or statement.epoch > taken[-1], "epochs strictly increase"
        taken.append(statement.epoch)
        return True

    def commit(self, node: str, shard: int, epoch: int, now: float) -> bool:
        """The fence of a turn's commit: the holder's current epoch of an unexpired lease."""
        row = self.rows[shard]
        if row.holder != node or row.epoch != epoch or row.expires_at < now:
            self.rejected.append((now, node, shard, epoch))
            return False
        done = self.accepted.setdefault(shard, [])
        assert not done or epoch >= done[-1][2], "a commit of an older epoch came through"
        done.append((now, node, epoch))
        return True

    def read(self) -> tuple[list[Lease], list[Heartbeat]]:
        """Both tables (one clock: expiries need no conversion)."""
        leases = [Lease(s, r.holder, r.epoch, r.expires_at) for s, r in self.rows.items()]
        return leases, [Heartbeat(n, t) for n, t in self.beats.items()]


@dataclass
class Node:
    """A daemon: its lease machine and the shards it runs."""

    name: str
    machine: NodeLeases
    life: int = 0  # bumped by a kill or restart: events of an earlier life are dropped
    alive: bool = True
    frozen_until: float = float("-inf")
    #: Until its thaw has run: a node whose freeze ends at the instant another event
    #: runs is still frozen for that event, as a process is until its loop resumes.
    frozen: bool = False
    busy: bool = False  # a read or statements are in flight
    again: bool = False  # a NOTIFY came while busy: read again when done
    running: dict[int, int] = field(default_factory=dict)  # shard -> epoch


@dataclass(frozen=True)
class Change:
    """A shard started or stopped on a node."""

    at: float
    node: str
    shard: int
    started: bool


class Cluster:
    """Nodes, a database and the events between them, on one virtual clock.

    Args:
        names: The nodes, started at time 0.
        shards: The number of shards.
        seed: Seeds the delays.
        timing: The lease timing.
        latency: Bounds of a one-way delay between a node and the database (s).
        notify: Whether a release wakes the other nodes (LISTEN/NOTIFY).
        turn_s: How often a running shard commits a turn.
        lost: The probability that a statement's answer is lost (applied, but unknown).
    """

    def __init__(
        self,
        names: list[str],
        shards: int,
        *,
        seed: int = 0,
        timing: LeaseTiming = TIMING,
        latency: tuple[float, float] = (0.0005, 0.005),
        notify: bool = True,
        turn_s: float = 0.1,
        lost: float = 0.0,
    ) -> None:
        self.shards = shards
        self.timing = timing
        self.rng = random.Random(seed)
        self.latency = latency
        self.notify = notify
        self.turn_s = turn_s
        self.lost = lost
        self.now = 0.0
        self.db = Database(shards, timing.lease_ttl_s)
        self.nodes: dict[str, Node] = {}
        self.changes: list[Change] = []
        self.stalls: list[tuple[float, float]] = []
        self._events: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        for name in names:
            self.start(name)

    # --- faults and life ----------------------------------------------------------------------

    def start(self, name: str) -> None:
        """Start (or restart) a node: a new process with a fresh machine."""
        old = self.nodes.get(name)
        node = Node(name, NodeLeases(name, self.shards, self.timing))
        node.life = old.life + 1 if old else 0
        self.nodes[name] = node
        self._at(self.now, self._waker(node))
        self._at(self.now + self.turn_s, self._turns(node))

    def kill(self, name: str) -> None:
        """``kill -9``: the process is gone; its statements in flight still land."""
        node = self.nodes[name]
        node.alive = False
        node.life += 1
        for shard in list(node.running):
            self._change(node, shard, started=False)

    def freeze(self, name: str, seconds: float) -> None:
        """Stop a node's clock-driven work for a while (GC pause, stopped VM).

        A turn being committed as it froze leaves only when it wakes: the zombie commit
        that fencing must refuse.
        """
        node = self.nodes[name]
        node.frozen_until = max(node.frozen_until, self.now + seconds)
        node.frozen = True
        life = node.life
        self._at(node.frozen_until, self._thaw(node, life))
        for shard, epoch in node.running.items():
            self._at(node.frozen_until, self._send_commit(node, life, shard, epoch))

    def stall(self, start: float, end: float) -> None:
        """The database applies nothing in [start, end): what arrives then waits for end."""
        self.stalls.append((start, end))

    # --- running ------------------------------------------------------------------------------

    def run_until(self, end: float) -> None:
        """Process events up to ``end``, checking the invariants after each."""
        while self._events and self._events[0][0] <= end:
            at, _, event = heapq.heappop(self._events)
            self.now = at
            event()
            self.check()
        self.now = end

    def check(self) -> None:
        """At most one node runs a shard under a lease it still counts as valid."""
        for shard in range(self.shards):
            runners = [
                n.name
                for n in self.nodes.values()
                if n.alive
                and not n.frozen
                and shard in n.running
                and (n.machine.valid_until(shard) or float("-inf")) > self.now
            ]
            assert len(runners) <= 1, f"shard {shard} run by {runners} at {self.now}"
        for n in self.nodes.values():
            if n.alive and not n.frozen:
                assert n.running == n.machine.held, n.name
                for shard in n.running:
                    assert (n.machine.valid_until(shard) or 0.0) >= self.now, (n.name, shard)

    def holders(self) -> dict[int, str]:
        """Who runs each shard now (live nodes only)."""
        return {s: n.name for n in self.nodes.values() if n.alive for s in n.running}

    def preferred(self) -> dict[int, str]:
        """The placement over the nodes alive now."""
        return balanced(self.shards, [n.name for n in self.nodes.values() if n.alive])

    # --- the adapter loop -----------------------------------------------------------------------

    def _at(self, at: float, event: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, self._seq, event))

    def _delay(self) -> float:
        return self.rng.uniform(*self.latency)

    def _arrival(self, sent: float) -> float:
        at = sent + self._delay()
        for start, end in self.stalls:
            if start <= at < end:
                at = end
        return at

    def _current(self, node: Node, life: int) -> bool:
        return node.alive and node.life == life and self.nodes[node.name] is node

    def _deferred(self, node: Node, event: Callable[[], None]) -> bool:
        if node.frozen:  # after its thaw, even when that is due at this very instant
            self._at(max(node.frozen_until, self.now), event)
            return True
        return False

    def _waker(self, node: Node) -> Callable[[], None]:
        life = node.life

        def wake() -> None:
            if not self._current(node, life) or self._deferred(node, wake):
                return
            self._apply(node, node.machine.handle_timer(self.now))
            if node.busy:  # the tick in progress re-arms when its answers are in
                self._arm_lapse(node)
                return
            if self.now < node.machine.next_deadline() - 1e-9:
                self._arm(node)  # woken for an earlier deadline since moved
                return
            node.busy = True
            self._arm_lapse(node)
            self._at(self._arrival(self.now), self._read(node, life))

        return wake

    def _arm_lapse(self, node: Node) -> None:
        # While a tick is out, only a lease lapsing here needs the timer.
        lapse = node.machine.next_lapse()
        if lapse is not None:
            self._at(lapse, self._waker(node))

    def _arm(self, node: Node) -> None:
        self._at(max(self.now, node.machine.next_deadline()), self._waker(node))

    def _read(self, node: Node, life: int) -> Callable[[], None]:
        def at_database() -> None:
            tables = self.db.read()
            self._at(self.now + self._delay(), self._observe(node, life, tables))

        return at_database

    def _observe(
        self, node: Node, life: int, tables: tuple[list[Lease], list[Heartbeat]]
    ) -> Callable[[], None]:
        def observe() -> None:
            if not self._current(node, life) or self._deferred(node, observe):
                return
            actions = node.machine.observe(self.now, *tables)
            statements = self._apply(node, actions)
            pending = {"n": len(statements)}
            for statement in statements:
                self._at(self._arrival(self.now), self._execute(node, life, statement, pending))
            if not statements:
                self._done(node)

        return observe

    def _execute(
        self, node: Node, life: int, statement: Statement, pending: dict[str, int]
    ) -> Callable[[], None]:
        def at_database() -> None:
            changed = self.db.execute(node.name, statement, self.now)
            if changed and isinstance(statement, Release) and self.notify:
                for other in self.nodes.values():
                    if other is not node:
                        self._at(self.now + self._delay(), self._notified(other))
            answer = None if self.rng.random() < self.lost else changed
            self._at(self.now + self._delay(), self._answer(node, life, statement, answer, pending))

        return at_database

    def _answer(
        self,
        node: Node,
        life: int,
        statement: Statement,
        answer: bool | None,
        pending: dict[str, int],
    ) -> Callable[[], None]:
        def answer_arrives() -> None:
            if not self._current(node, life) or self._deferred(node, answer_arrives):
                return
            self._apply(node, node.machine.outcome(statement, answer, self.now))
            pending["n"] -= 1
            if pending["n"] == 0:
                self._done(node)
            else:  # re-armed after every input: a shard just started may lapse first
                self._arm_lapse(node)

        return answer_arrives

    def _done(self, node: Node) -> None:
        node.busy = False
        if node.again:  # a NOTIFY came while busy: read again now
            node.again = False
            self._at(self.now, self._forced(node))
        self._arm(node)

    def _forced(self, node: Node) -> Callable[[], None]:
        life = node.life

        def read_now() -> None:
            if not self._current(node, life) or self._deferred(node, read_now) or node.busy:
                return
            self._apply(node, node.machine.handle_timer(self.now))
            node.busy = True
            self._arm_lapse(node)
            self._at(self._arrival(self.now), self._read(node, life))

        return read_now

    def _notified(self, node: Node) -> Callable[[], None]:
        life = node.life

        def notified() -> None:
            if not self._current(node, life) or self._deferred(node, notified):
                return
            if node.busy:
                node.again = True
            else:
                self._forced(node)()

        return notified

    def _thaw(self, node: Node, life: int) -> Callable[[], None]:
        def thaw() -> None:
            # A freeze that a longer one overlapped thaws with the longer one.
            if self._current(node, life) and self.now >= node.frozen_until:
                node.frozen = False
                # The loop's first callback after a freeze: leases that lapsed stop first.
                self._apply(node, node.machine.handle_timer(self.now))
                self._arm(node)

        return thaw

    def _apply(self, node: Node, actions: list[Action]) -> list[Statement]:
        statements: list[Statement] = []
        for action in actions:
            if isinstance(action, StartShard):
                node.running[action.shard] = action.epoch
                self._change(node, action.shard, started=True)
            elif isinstance(action, StopShard):
                node.running.pop(action.shard, None)
                self._change(node, action.shard, started=False)
            else:
                statements.append(action)
        return statements

    def _change(self, node: Node, shard: int, *, started: bool) -> None:
        self.changes.append(Change(self.now, node.name, shard, started))

    def _turns(self, node: Node) -> Callable[[], None]:
        life = node.life

        def turns() -> None:
            if not self._current(node, life) or self._deferred(node, turns):
                return
            for shard, epoch in node.running.items():
                self._send_commit(node, life, shard, epoch)()
            self._at(self.now + self.turn_s, turns)

        return turns

    def _send_commit(self, node: Node, life: int, shard: int, epoch: int) -> Callable[[], None]:
        def send() -> None:
            self._at(self._arrival(self.now), lambda: self._commit(node.name, shard, epoch))

        return send

    def _commit(self, name: str, shard: int, epoch: int) -> None:
        self.db.commit(name, shard, epoch, self.now)


def takeover_times(cluster: Cluster, victim: str, killed_at: float) -> list[float]:
    """For each shard the victim ran when killed: seconds until another node started it."""
    lost = {c.shard for c in cluster.changes if c.at == killed_at and c.node == victim}
    firsts: dict[int, float] = {}
    for c in cluster.changes:
        if c.started and c.at > killed_at and c.shard in lost and c.shard not in firsts:
            firsts[c.shard] = c.at - killed_at
    return [firsts[s] for s in sorted(lost) if s in firsts]


def handover_gaps(cluster: Cluster, returning: str, since: float) -> list[float]:
    """For each shard handed back to a returning node: its stop elsewhere to its start there."""
    gaps: list[float] = []
    stopped: dict[int, float] = {}
    for c in cluster.changes:
        if c.at < since:
            continue
        if not c.started and c.node != returning:
            stopped[c.shard] = c.at
        elif c.started and c.node == returning and c.shard in stopped:
            gaps.append(c.at - stopped.pop(c.shard))
    return gaps
