"""Configuration: the operator's changes to tenants, extensions, queues, enrolments and routes.

Each takes effect at once: a waiting call follows its queue's new options,
new skills or enrolment options may let a waiting call ring, and a removed
queue or extension ends what depended on it.
"""

from __future__ import annotations

from ringmaster.engine import events as ev
from ringmaster.engine.base import EngineBase
from ringmaster.engine.commands import ClearQueueSnapshot
from ringmaster.engine.model import CancelReason, ExtensionId, Presence
from ringmaster.engine.state import AgentState, EngineBug, QueueState
from ringmaster.engine.strategies import STRATEGIES


class ConfigurationMixin(EngineBase):
    """The operator's changes: tenants, extensions, queues, enrolments, DID routes."""

    def _tenant_saved(self, event: ev.TenantSaved, now: float) -> None:
        self._tenants[event.tenant.tenant_id] = event.tenant

    def _tenant_removed(self, event: ev.TenantRemoved, now: float) -> None:
        self._tenants.pop(event.tenant_id, None)
        for key in [k for k in self._routes if k[0] == event.tenant_id]:
            del self._routes[key]

    def _extension_saved(self, event: ev.ExtensionSaved, now: float) -> None:
        extension = event.extension
        old = self._extensions.get(extension.extension_id)
        if old is not None:
            del self._extension_ids[(old.tenant_id, old.number)]
        self._extensions[extension.extension_id] = extension
        self._extension_ids[(extension.tenant_id, extension.number)] = extension.extension_id
        agent = self._agents.get(extension.extension_id)
        if agent is None:
            agent = AgentState(extension.extension_id, extension.tenant_id, extension.number)
            self._agents[extension.extension_id] = agent
            self._count_status(agent, +1)
            self._dirty_agents.add(extension.extension_id)
            self._removed_agents.discard(extension.extension_id)
        agent.number = extension.number
        if old is not None and old.skills != extension.skills:
            # New skills may let a waiting call ring the agent: a change
            # takes effect at once, not at the next event of its queues.
            self._to_distribute.update(self._queues_of.get(extension.extension_id, ()))

    def _extension_removed(self, event: ev.ExtensionRemoved, now: float) -> None:
        extension = self._extensions.get(event.extension_id)
        agent = self._agents.get(event.extension_id)
        if extension is None or agent is None:
            return
        self._cancel_ring_of(agent, now)
        # A connected call carries on: the PBX bridged it, and its hangup will
        # complete it. The agent simply stops existing for distribution.
        agent.presence = Presence.LOGGED_OUT
        self._refresh_agent(agent, now)
        self._count_status(agent, -1)
        del self._agents[event.extension_id]
        del self._extensions[event.extension_id]
        del self._extension_ids[(extension.tenant_id, extension.number)]
        self._dirty_agents.discard(event.extension_id)
        self._removed_agents.add(event.extension_id)

    def _queue_saved(self, event: ev.QueueSaved, now: float) -> None:
        config = event.queue
        if config.strategy not in STRATEGIES:
            raise EngineBug(f"queue {config.queue_id}: unknown strategy {config.strategy!r}")
        queue = self._queues.get(config.queue_id)
        if queue is None:
            queue = QueueState(config)
            self._queues[config.queue_id] = queue
            self._dirty_queues.add(config.queue_id)
            self._removed_queues.discard(config.queue_id)
        old, queue.config = queue.config, config
        if queue.ranked is None or old.strategy != config.strategy:
            self._rank_free_agents(queue)
        if old.ring_in_use != config.ring_in_use:
            for extension_id in list(queue.position):
                if (agent := self._agents.get(extension_id)) is not None:
                    self._refresh_free_in(queue, agent)
        self._queue_changed(queue)
        self._empty_check.add(config.queue_id)
        if old is not config and queue.line:
            # Waiting calls follow the new options from now on.
            for entry in queue.line:
                self._arm_waiting(self._calls[entry[3]], queue, now, announce_from_now=False)

    def _queue_removed(self, event: ev.QueueRemoved, now: float) -> None:
        queue = self._queues.get(event.queue_id)
        if queue is None:
            return
        for entry in list(queue.line):
            self._leave(self._calls[entry[3]], "queue_removed", now)
        queue.clear_line()
        for extension_id in list(queue.enrolled):
            self._unenrol(queue, extension_id, now)
        del self._queues[event.queue_id]
        self._touched.discard(event.queue_id)
        self._to_distribute.discard(event.queue_id)
        self._dirty_queues.discard(event.queue_id)
        self._removed_queues.add(event.queue_id)
        self._out.append(ClearQueueSnapshot(queue.config.tenant_id, event.queue_id))

    def _agent_enrolled(self, event: ev.AgentEnrolled, now: float) -> None:
        queue = self._queues.get(event.queue_id)
        if queue is None:
            return
        known = event.extension_id in queue.position
        if known and queue.options.get(event.extension_id) == event.options:
            return
        self._enrol_seq += 1
        queue.enrol(event.extension_id, event.options, self._enrol_seq)
        self._queue_changed(queue)  # new options may let a waiting call ring
        if known:
            if event.extension_id in queue.free:
                self._set_free(queue, event.extension_id, True)  # re-ranked: new penalty, place
            return
        self._queues_of.setdefault(event.extension_id, set()).add(event.queue_id)
        agent = self._agents.get(event.extension_id)
        if agent is not None:
            self._count_in(queue, agent, +1)
            self._refresh_free_in(queue, agent)

    def _agent_unenrolled(self, event: ev.AgentUnenrolled, now: float) -> None:
        queue = self._queues.get(event.queue_id)
        if queue is not None and event.extension_id in queue.position:
            self._unenrol(queue, event.extension_id, now)
            self._queue_changed(queue)

    def _unenrol(self, queue: QueueState, extension_id: ExtensionId, now: float) -> None:
        agent = self._agents.get(extension_id)
        if agent is not None and agent.ringing_for is not None:
            call = self._calls[agent.ringing_for]
            if call.queue_id == queue.queue_id:
                self._end_ring(call, extension_id, CancelReason.AGENT_UNAVAILABLE, now)
        queue.unenrol(extension_id)
        if agent is not None:
            self._count_in(queue, agent, -1)
        self._queues_of[extension_id].discard(queue.queue_id)
        if queue.stats.pop(extension_id, None) is not None:
            self._removed_stats.add((queue.queue_id, extension_id))
            self._dirty_stats.discard((queue.queue_id, extension_id))

    def _did_route_saved(self, event: ev.DidRouteSaved, now: float) -> None:
        self._routes[(event.route.tenant_id, event.route.did)] = event.route

    def _did_route_removed(self, event: ev.DidRouteRemoved, now: float) -> None:
        self._routes.pop((event.tenant_id, event.did), None)
