"""Agents: presence and device state, whether each is free, and what each queue counts.

An agent is free (`_is_free`) when the contract lets it be rung; its status
(`_status_of`) is what `event/agent/state` publishes. `_refresh_agent` keeps
both, the queues' free sets (ranked, for strategies with a fixed order) and
the queues' counts by status and condition, up to date after any change.
"""

from __future__ import annotations

from ringmaster.engine import events as ev
from ringmaster.engine.base import EngineBase
from ringmaster.engine.commands import PublishAgentState, RejectInput
from ringmaster.engine.free_agents import RankedFreeAgents
from ringmaster.engine.model import AgentCondition, AgentStatus, DeviceState, ExtensionId, Presence
from ringmaster.engine.rules import condition_of
from ringmaster.engine.state import AgentState, QueueState
from ringmaster.engine.strategies import STRATEGIES, RankedStrategy


class AgentsMixin(EngineBase):
    """Agents: presence and device, whether each is free, and the counts of each queue."""

    def _agent_for(
        self, event: ev.AgentPresenceChanged | ev.DeviceStateChanged, now: float
    ) -> AgentState | None:
        extension_id = self._extension_ids.get((event.tenant_id, event.extension))
        if extension_id is None:
            self._out.append(RejectInput(event, f"unknown extension {event.extension}", now))
            return None
        return self._agents[extension_id]

    def _presence_changed(self, event: ev.AgentPresenceChanged, now: float) -> None:
        agent = self._agent_for(event, now)
        if agent is None:
            return
        if (agent.presence, agent.presence_reason) == (event.presence, event.reason):
            return
        agent.presence = event.presence
        agent.presence_reason = event.reason
        self._dirty_agents.add(agent.extension_id)
        if event.presence is not Presence.AVAILABLE:
            self._cancel_ring_of(agent, now)
        self._refresh_agent(agent, now)

    def _device_changed(self, event: ev.DeviceStateChanged, now: float) -> None:
        agent = self._agent_for(event, now)
        if agent is None or agent.device is event.state:
            return
        agent.device = event.state
        self._dirty_agents.add(agent.extension_id)
        # `in_use` and `ringing` while our ring is on are that very ring being
        # answered or ringing; only a phone that went away ends it.
        if event.state is DeviceState.UNAVAILABLE:
            self._cancel_ring_of(agent, now)
        self._refresh_agent(agent, now)

    def _is_free(self, agent: AgentState, now: float, *, in_use: bool = False) -> bool:
        # Contract: rung only while available by presence, not in use by
        # device state, not ringing for or connected to another call, and not
        # in wrap-up. A phone that is ringing or unregistered is not rung either.
        # `in_use`: as a queue with `ring_in_use` sees it, a phone on a call
        # that is not ours (ours set `connected_to`) may be rung too.
        return (
            agent.presence is Presence.AVAILABLE
            and (
                agent.device is DeviceState.IDLE or (in_use and agent.device is DeviceState.IN_USE)
            )
            and agent.ringing_for is None
            and agent.connected_to is None
            and (agent.wrapup_until is None or agent.wrapup_until <= now)
            and (agent.skip_until is None or agent.skip_until <= now)
        )

    def _status_of(self, agent: AgentState, now: float) -> tuple[AgentStatus, str]:  # noqa: PLR0911
        if agent.connected_to is not None:
            return AgentStatus.BUSY, ""
        if agent.ringing_for is not None:
            return AgentStatus.RINGING, ""
        if agent.presence is Presence.LOGGED_OUT:
            return AgentStatus.LOGGED_OUT, agent.presence_reason
        if agent.presence is Presence.PAUSED:
            return AgentStatus.PAUSED, agent.presence_reason
        if agent.device is DeviceState.UNAVAILABLE:
            return AgentStatus.LOGGED_OUT, "device_unavailable"
        if agent.device is not DeviceState.IDLE:
            return AgentStatus.BUSY, ""
        if agent.wrapup_until is not None and agent.wrapup_until > now:
            return AgentStatus.WRAPUP, ""
        return AgentStatus.AVAILABLE, ""

    def _refresh_agent(self, agent: AgentState, now: float) -> None:
        """Bring the queues' free sets and the published status up to date."""
        # Every ring starts and ends here: the hot path of a busy centre (a
        # `ringall` call is 12 rings and 11 cancellations), so the checks of
        # `_is_free` and `_status_of` are taken in the order that settles
        # the common cases first, with the same outcome.
        if agent.connected_to is not None:
            free = free_in_use = False
            status, reason, condition = AgentStatus.BUSY, "", AgentCondition.BUSY
        elif agent.ringing_for is not None:
            free = free_in_use = False
            status, reason, condition = AgentStatus.RINGING, "", None
        elif self._is_free(agent, now):
            # Free by the contract is available by status, with no reason.
            free = free_in_use = True
            status, reason, condition = AgentStatus.AVAILABLE, "", None
        else:
            free = False
            # Only a phone in use can be free for a queue with `ring_in_use` alone.
            free_in_use = agent.device is DeviceState.IN_USE and self._is_free(
                agent, now, in_use=True
            )
            status, reason = self._status_of(agent, now)
            condition = condition_of(status, reason)
        free_changed = free != agent.free or free_in_use != agent.free_in_use
        old_status, old_condition = agent.status, agent.condition
        published = status is not old_status
        recount = published or condition is not old_condition
        if not free_changed and not recount:
            return
        agent.free, agent.free_in_use = free, free_in_use
        agent.status, agent.condition = status, condition
        # One pass over the agent's queues for both its free sets and its
        # counts. A ring's start and end change the status alone, never the
        # condition (available <-> ringing).
        condition_changed = condition is not old_condition
        queues = self._queues
        for queue_id in self._queues_of.get(agent.extension_id, ()):
            queue = queues.get(queue_id)
            if queue is None:
                continue
            if free_changed:
                self._refresh_free_in(queue, agent)
            if recount:
                counts = queue.status_counts
                counts[old_status] -= 1
                counts[status] += 1
                self._touched.add(queue_id)
            if condition_changed:
                conditions = queue.condition_counts
                conditions[old_condition] -= 1
                conditions[condition] += 1
                self._empty_check.add(queue_id)
        if recount:
            self._dirty_agents.add(agent.extension_id)
            if published and self._publish_events:
                self._out.append(
                    PublishAgentState(agent.tenant_id, agent.number, status, now, reason)
                )

    def _refresh_ring_edge(self, agent: AgentState, now: float) -> None:
        """`_refresh_agent` for an agent whose ring just began or ended: the same outcome.

        The hot path of a busy centre: a `ringall` call rings 12 agents and
        cancels 11. A free agent rung, or a ringing agent whose ring ended and
        who is free again, changes its status (available <-> ringing, neither
        with a condition), its cached freedom and its place in each queue's
        free set, nothing else: the general path's tests of what changed are
        known here, and its steps per queue are taken in one loop. Any other
        case (a phone in use rung for a `ring_in_use` queue, an agent paused
        by `max_no_answer` as its ring ended, ...) takes the general path.
        `tests/engine/test_agents_refresh.py` compares the two.
        """
        if agent.connected_to is not None or agent.condition is not None:
            self._refresh_agent(agent, now)
            return
        old_status = agent.status
        if agent.ringing_for is not None:  # rung
            if not agent.free or old_status is not AgentStatus.AVAILABLE:
                self._refresh_agent(agent, now)
                return
            free, status = False, AgentStatus.RINGING
        elif old_status is AgentStatus.RINGING and not agent.free and self._is_free(agent, now):
            free, status = True, AgentStatus.AVAILABLE  # its ring ended
        else:
            self._refresh_agent(agent, now)
            return
        agent.free = agent.free_in_use = free
        agent.status = status
        extension_id = agent.extension_id
        queues, touched = self._queues, self._touched
        for queue_id in self._queues_of.get(extension_id, ()):
            queue = queues.get(queue_id)
            if queue is None:
                continue
            # `_refresh_free_in`: free for every queue alike, `ring_in_use` or not.
            if (extension_id in queue.free) != free:
                self._set_free(queue, extension_id, free)
                if free:
                    self._to_distribute.add(queue.config.queue_id)
            counts = queue.status_counts
            counts[old_status] -= 1
            counts[status] += 1
            touched.add(queue_id)
        self._dirty_agents.add(extension_id)
        if self._publish_events:
            self._out.append(PublishAgentState(agent.tenant_id, agent.number, status, now, ""))

    def _refresh_free_in(self, queue: QueueState, agent: AgentState) -> None:
        """Put the agent in the queue's free agents, or take it out, as the queue sees it."""
        free = agent.free or (agent.free_in_use and queue.config.ring_in_use)
        extension_id = agent.extension_id
        if (extension_id in queue.free) != free:
            self._set_free(queue, extension_id, free)
            if free:
                self._to_distribute.add(queue.config.queue_id)

    def _set_free(self, queue: QueueState, extension_id: ExtensionId, free: bool) -> None:
        """Add an agent to the queue's free agents (ranked, if it ranks) or take it out."""
        if free:
            queue.free.add(extension_id)
            if queue.ranked is not None:
                queue.ranked.add(extension_id, self._rank(queue, extension_id))
        else:
            queue.free.discard(extension_id)
            if queue.ranked is not None:
                queue.ranked.discard(extension_id)

    def _rank(self, queue: QueueState, extension_id: ExtensionId) -> tuple[float, ...]:
        strategy = STRATEGIES[queue.config.strategy]
        assert isinstance(strategy, RankedStrategy)
        return (
            queue.option(extension_id).penalty,
            strategy.rank(extension_id, self._view(queue)),
            *queue.order_key[extension_id],
        )

    def _rank_free_agents(self, queue: QueueState) -> None:
        """Keep the queue's free agents in its strategy's order, if it has a fixed one."""
        strategy = STRATEGIES[queue.config.strategy]
        if not isinstance(strategy, RankedStrategy) or not strategy.tiers_by_penalty:
            queue.ranked = None
            return
        queue.ranked = RankedFreeAgents()
        for extension_id in queue.free:
            queue.ranked.add(extension_id, self._rank(queue, extension_id))

    def _count_status(self, agent: AgentState, delta: int) -> None:
        for queue_id in self._queues_of.get(agent.extension_id, ()):
            queue = self._queues.get(queue_id)
            if queue is not None:
                self._count_in(queue, agent, delta)

    def _count_in(self, queue: QueueState, agent: AgentState, delta: int) -> None:
        queue.status_counts[agent.status] += delta
        queue.condition_counts[agent.condition] += delta
        self._touched.add(queue.queue_id)
        self._empty_check.add(queue.queue_id)
