"""One node's shard leases, sans-I/O: what the lease table says in, what to do out.

The adapter (not built yet; docs/cluster.md) runs a loop: at `NodeLeases.next_deadline`
it calls `NodeLeases.handle_timer`, writes this node's heartbeat, reads the lease table
and the heartbeats, and gives the rows to `NodeLeases.observe`. Each action returned is
either a statement for the database (`Beat`, `Acquire`, `Renew`, `Release`: compare-and-set
updates of one row, see their docstrings for the condition) whose result goes back through
`NodeLeases.outcome`, or an order for the daemon (`StartShard`, `StopShard`), carried out at
once and in the order given.

Safety does not rest on clocks agreeing. The database decides expiry with its own clock
(``expires_at < now()`` in the statements); the adapter gives this machine each lease's
expiry as its local time plus the remaining time the database reported. A holder counts
its lease from the moment it *sent* the statement that took or renewed it, minus
``clock_margin_s``: the database's expiry, counted from when the statement arrived, is
always later, so a holder stops before anyone else can take the shard. And every commit
of a shard's turn carries the lease's epoch: the store refuses one whose epoch is not the
current one (fencing), so even a holder frozen past its lease cannot write again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from ringmaster.settings import ClusterSettings

from .placement import balanced


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """The lease timing, from ``[cluster]`` (where the defaults and their argument live).

    Attributes:
        lease_ttl_s: A lease lasts this long after its last renewal.
        renew_interval_s: A holder renews (and writes its heartbeat) this often.
        heartbeat_ttl_s: A node is live this long after its last heartbeat.
        clock_margin_s: A holder counts its lease as lapsed this much early.
    """

    lease_ttl_s: float
    renew_interval_s: float
    heartbeat_ttl_s: float
    clock_margin_s: float

    @classmethod
    def from_settings(cls, cluster: ClusterSettings) -> LeaseTiming:
        """The timing of validated ``[cluster]`` settings."""
        return cls(
            cluster.lease_ttl_s,
            cluster.renew_interval_s,
            cluster.heartbeat_ttl_s,
            cluster.clock_margin_s,
        )


# --- what the tables say -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lease:
    """A row of the lease table, as read.

    Attributes:
        shard: The shard.
        holder: The node holding it, None once released (or never taken).
        epoch: Bumped by every acquisition; a commit of the shard must carry it.
        expires_at: When the lease lapses, on this node's clock.
    """

    shard: int
    holder: str | None
    epoch: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A row of the heartbeat table: a node and when it last wrote (this node's clock)."""

    node: str
    last_seen: float


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Beat:
    """Write this node's heartbeat (``INSERT ... ON CONFLICT (node) DO UPDATE``, ``now()``)."""

    node: str


@dataclass(frozen=True, slots=True)
class Acquire:
    """Take a free or lapsed lease with a new epoch; succeeds if one row changed.

    ``UPDATE cluster_leases SET holder = $node, epoch = $epoch, expires_at = now() + ttl
    WHERE shard = $shard AND epoch = $epoch - 1
    AND (holder IS NULL OR expires_at < now() OR holder = $node)``. The last case is
    this node's own lease from before a restart (or an acquisition whose answer was
    lost): taking it with a new epoch fences whatever the old epoch still had in flight.
    """

    shard: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Renew:
    """Extend a held lease; succeeds if one row changed.

    ``UPDATE cluster_leases SET expires_at = now() + ttl WHERE shard = $shard
    AND holder = $node AND epoch = $epoch AND expires_at >= now()``: a lapsed lease is
    never revived, it is acquired again with a new epoch.
    """

    shard: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Release:
    """Give a lease up (the shard is already stopped).

    ``UPDATE cluster_leases SET holder = NULL, expires_at = now() WHERE shard = $shard
    AND holder = $node AND epoch = $epoch``, then ``NOTIFY`` so the next holder acquires
    at once rather than at its next poll.
    """

    shard: int
    epoch: int


@dataclass(frozen=True, slots=True)
class StartShard:
    """Run the shard: restore its engine from the store, connect its MQTT session.

    Every commit of the shard's turns carries ``epoch``.
    """

    shard: int
    epoch: int


@dataclass(frozen=True, slots=True)
class StopShard:
    """Stop the shard's engine at once (no further turn, no publish), then its session."""

    shard: int


Statement = Beat | Acquire | Renew | Release
Action = Statement | StartShard | StopShard


@dataclass(slots=True)
class _Held:
    epoch: int
    valid_until: float  # on this node's clock: stop the shard then at the latest
    renewed_at: float  # when the last successful take or renewal was sent


@dataclass(slots=True)
class _View:
    """What the last read said, for the deadlines it implies."""

    waits: list[float] = field(default_factory=list)  # expiries worth waking for


@lru_cache(maxsize=64)
def _placement(shards: int, live: frozenset[str]) -> dict[int, str]:
    return balanced(shards, live)


class NodeLeases:
    """The lease state machine of one node.

    Args:
        node: This node's name (``cluster.node``).
        shards: The cluster's number of shards (``cluster.shards``).
        timing: The lease timing.
    """

    def __init__(self, node: str, shards: int, timing: LeaseTiming) -> None:
        self.node = node
        self.shards = shards
        self.timing = timing
        self._held: dict[int, _Held] = {}
        self._sent: dict[int, tuple[Statement, float]] = {}  # shard -> statement in flight
        self._beat_sent: float | None = None
        self._next_beat = float("-inf")
        self._view = _View()

    # --- inputs ------------------------------------------------------------------------------

    def observe(self, now: float, leases: list[Lease], heartbeats: list[Heartbeat]) -> list[Action]:
        """Compare the tables with what this node holds and should hold.

        Args:
            now: The current time (this node's clock).
            leases: Every row of the lease table; a shard without a row is free at epoch 0.
            heartbeats: Every row of the heartbeat table.

        Returns:
            The actions to carry out, in order.
        """
        actions: list[Action] = [*self.handle_timer(now)]
        if now >= self._next_beat and self._beat_sent is None:
            self._beat_sent = now
            self._next_beat = now + self.timing.renew_interval_s
            actions.append(Beat(self.node))
        ttl = self.timing.heartbeat_ttl_s
        live = {h.node for h in heartbeats if h.last_seen + ttl > now} | {self.node}
        wanted = _placement(self.shards, frozenset(live))
        rows = {lease.shard: lease for lease in leases}
        waits = [h.last_seen + ttl for h in heartbeats if h.node in live and h.node != self.node]
        for shard in range(self.shards):
            if shard in self._sent:
                continue
            row = rows.get(shard, Lease(shard, None, 0, float("-inf")))
            mine = wanted[shard] == self.node
            held = self._held.get(shard)
            if held is not None:
                actions.extend(self._keep(now, shard, held, row, mine))
            elif mine and (row.holder in (None, self.node) or row.expires_at <= now):
                actions.append(self._send(Acquire(shard, row.epoch + 1), now))
            elif row.holder == self.node and row.expires_at > now:
                # Left by this node's previous life, and no longer its own: free it now.
                actions.append(self._send(Release(shard, row.epoch), now))
            elif mine:
                waits.append(row.expires_at)  # held elsewhere: free by then at the latest
        self._view.waits = waits
        return actions

    def outcome(self, statement: Statement, succeeded: bool | None, now: float) -> list[Action]:
        """Take the database's answer to a statement.

        Args:
            statement: A statement this machine returned.
            succeeded: True if it changed its row, False if its condition failed, None if
                the answer is unknown (timeout, connection lost).
            now: The current time.

        Returns:
            The actions that follow, in order.
        """
        if isinstance(statement, Beat):
            self._beat_sent = None
            return []
        sent = self._sent.pop(statement.shard, None)
        if sent is None or sent[0] != statement:
            return []  # not in flight (an answer given twice): nothing to learn
        valid_until = sent[1] + self.timing.lease_ttl_s - self.timing.clock_margin_s
        if isinstance(statement, Acquire):
            return self._taken(statement, succeeded, sent[1], valid_until, now)
        if isinstance(statement, Renew):
            return self._renewed(statement, succeeded, sent[1], valid_until, now)
        return []  # a release: the shard was stopped before it was sent

    def handle_timer(self, now: float) -> list[Action]:
        """Stop every shard whose lease lapsed on this node's clock (renewals went unanswered).

        Returns:
            A `StopShard` for each such shard.
        """
        actions: list[Action] = []
        for shard in sorted(self._held):
            if self._held[shard].valid_until <= now:
                actions.extend(self._stop(shard))
        return actions

    def shutdown(self) -> list[Action]:
        """Leave the cluster: stop every shard, then release its lease.

        Returns:
            A `StopShard` and a `Release` for each shard held.
        """
        actions: list[Action] = []
        for shard in sorted(self._held):
            epoch = self._held[shard].epoch
            actions.extend(self._stop(shard))
            actions.append(self._send(Release(shard, epoch), float("-inf")))
        return actions

    # --- outputs -------------------------------------------------------------------------------

    def next_deadline(self) -> float:
        """When to call `handle_timer` and read the tables again.

        The earliest of: the next heartbeat, each held lease's renewal and lapse, and
        the expiry (seen at the last read) of another node's heartbeat or of a lease this
        node should take over.
        """
        renew = self.timing.renew_interval_s
        times = [self._next_beat, *self._view.waits]
        for shard, held in self._held.items():
            times.append(held.valid_until)
            if shard not in self._sent:  # a renewal in flight waits for its answer
                times.append(held.renewed_at + renew)
        return min(times)

    def next_lapse(self) -> float | None:
        """When the first held lease lapses here: the timer to keep while statements are out.

        While a read or statements are in flight the adapter cannot act on
        `next_deadline` (a renewal due is already on its way), but a lease may still
        lapse before the answers come: it calls `handle_timer` then.
        """
        return min((held.valid_until for held in self._held.values()), default=None)

    @property
    def held(self) -> dict[int, int]:
        """The shards this node runs, with their epochs."""
        return {shard: held.epoch for shard, held in sorted(self._held.items())}

    def valid_until(self, shard: int) -> float | None:
        """Until when this node may run the shard (its clock); None if it does not hold it."""
        held = self._held.get(shard)
        return None if held is None else held.valid_until

    # --- internals -----------------------------------------------------------------------------

    def _keep(self, now: float, shard: int, held: _Held, row: Lease, mine: bool) -> list[Action]:
        if row.holder != self.node or row.epoch != held.epoch:
            return self._stop(shard)  # deposed (an operator's reset): stop before all else
        if not mine:
            # Its preferred node is live (placement counts live nodes only): hand it over.
            return [*self._stop(shard), self._send(Release(shard, held.epoch), now)]
        if now >= held.renewed_at + self.timing.renew_interval_s:
            return [self._send(Renew(shard, held.epoch), now)]
        return []

    def _taken(
        self,
        acquire: Acquire,
        succeeded: bool | None,
        sent_at: float,
        valid_until: float,
        now: float,
    ) -> list[Action]:
        if succeeded and now < valid_until:
            self._held[acquire.shard] = _Held(acquire.epoch, valid_until, sent_at)
            return [StartShard(acquire.shard, acquire.epoch)]
        return []  # lost the race, or unknown: the next read says who holds it

    def _renewed(
        self, renew: Renew, succeeded: bool | None, sent_at: float, valid_until: float, now: float
    ) -> list[Action]:
        held = self._held.get(renew.shard)
        if held is None or held.epoch != renew.epoch:
            return []
        if succeeded is False or (succeeded and now >= valid_until):
            return self._stop(renew.shard)
        if succeeded:
            held.valid_until = valid_until
            held.renewed_at = sent_at
        return []  # unknown: keep running on the lease already held, retry next tick

    def _stop(self, shard: int) -> list[Action]:
        del self._held[shard]
        return [StopShard(shard)]

    def _send(self, statement: Acquire | Renew | Release, now: float) -> Statement:
        self._sent[statement.shard] = (statement, now)
        return statement
