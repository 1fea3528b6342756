"""One chaos run: the broker, the daemon as a process, the load, the faults, the verdict."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.chaos.fuzz import corpus
from bench.chaos.link import Link, probe_session
from bench.chaos.pbx import Pbx
from bench.chaos.plan import Fault, Plan, arrivals, faults, provisioning
from bench.common import PYTHON, ROOT, daemon_env, provision, reap
from ringmaster.daemon.broker import MosquittoProcess, start_mosquitto
from ringmaster.engine.core import DEFAULT_ENDED_CALL_TTL

#: Upper bound on any single wait for a child process (never a measured figure).
WAIT_S = 30.0
#: A daemon that died this often is crash-looping: stop waiting for it to come back.
MAX_DEATHS = 50


class SetupError(Exception):
    """The run could not start (broker, persistence, provisioning, the daemon)."""


def _leaf_exceptions(exceptions: list[dict[str, Any]]) -> list[str]:
    """`Type: message` of each exception that is not a group, from structlog's JSON."""
    found = []
    for e in exceptions:
        if e.get("is_group"):
            for group in e.get("exceptions", []):
                found += _leaf_exceptions(group)
        else:
            found.append(f"{e.get('exc_type')}: {str(e.get('exc_value'))[:120]}")
    return found


class Supervisor:
    """`python -m ringmaster run` as a child, restarted like systemd restarts it.

    It dies with the harness (the parent-death signal), so an aborted run leaves
    no daemon behind.
    """

    def __init__(self, env: dict[str, str], log: Path, pbx: Pbx, restart_sec: float) -> None:
        self.env = {**os.environ, **env}
        self.log = log
        self.pbx = pbx
        self.restart_sec = restart_sec
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.unexpected_deaths = 0
        self.death_causes: list[str] = []
        self.peak_rss_kib = 0
        self._busy = False  # a kill or a restart is in progress
        self.supervise = True

    def start(self, *, measure: bool) -> None:
        """Spawn the daemon; with `measure`, time its first ring."""
        with self.log.open("ab") as out:
            started = time.time()
            # Popen from the event loop's thread: the death signal follows that thread.
            self.process = subprocess.Popen(
                ["setpriv", "--pdeathsig", "KILL", "--", PYTHON, "-m", "ringmaster", "run"],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        # A process that died before its first ring has no figure: its start is dropped.
        self.pbx.open_starts.clear()
        if measure:
            self.pbx.open_starts.append(started)

    @property
    def alive(self) -> bool:
        """The process is running."""
        return self.process is not None and self.process.poll() is None

    async def kill(self, down_s: float) -> None:
        """Kill -9 now, and start again after `down_s` seconds."""
        while self._busy:  # a restart after a death is under way  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self._busy = True
        try:
            if self.alive:
                assert self.process is not None
                self.process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(self.process.wait, WAIT_S)
                self.kills += 1
            await asyncio.sleep(down_s)
            self.start(measure=True)
        finally:
            self._busy = False

    async def watch(self) -> None:
        """Restart after an unexpected death (counted, with its cause); sample memory."""
        while True:
            await asyncio.sleep(0.1)
            self._sample_rss()
            if self._busy or self.alive or self.process is None:
                continue
            self.unexpected_deaths += 1
            self.death_causes.append(f"exit {self.process.returncode}: {self._last_error()}")
            if not self.supervise:
                continue
            self._busy = True
            try:
                await asyncio.sleep(self.restart_sec)
                self.start(measure=True)
            finally:
                self._busy = False

    def _sample_rss(self) -> None:
        if self.process is None:
            return
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                self.peak_rss_kib = max(self.peak_rss_kib, int(line.split()[1]))

    def _last_error(self) -> str:
        """The exceptions of the daemon's last `service.failed` log line (its JSON log)."""
        try:
            with self.log.open("rb") as f:
                f.seek(max(0, self.log.stat().st_size - 4_000_000))
                tail = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "?"
        for line in reversed(tail):
            if '"service.failed"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                return line[:300]
            return "; ".join(_leaf_exceptions(record.get("exception", [])))[:300]
        return tail[-1][:300] if tail else "?"

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL if it does not stop in time."""
        self.supervise = False
        p = self.process
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        reap(p, WAIT_S)


class Chaos:
    """Everything one run owns; `await Chaos(plan).run()` returns its raw results."""

    def __init__(self, plan: Plan, *, keep: bool = False, log: Any = print) -> None:
        self.plan = plan
        self.keep = keep
        self.say = log
        self.work = Path(tempfile.mkdtemp(prefix="ringmaster-chaos-"))
        self.prefix = f"chaos{plan.seed}x{uuid.uuid4().hex[:6]}"
        self.broker: MosquittoProcess | None = None
        self.fuzz_sent = 0
        self.broker_restarts = 0
        self.persistence_errors: list[str] = []
        self.pbx_lag_s = 0.0

    async def run(self) -> tuple[Pbx, dict[str, Any]]:
        """Run the plan; the PBX model (what it saw) and the run's own counts."""
        started = time.monotonic()
        self.broker = start_mosquitto(self.work / "broker")
        pbx: Pbx | None = None
        supervisor: Supervisor | None = None
        try:
            await self._check_persistence("setup")
            if self.persistence_errors:
                raise SetupError(self.persistence_errors[0])
            db = self.work / "ringmaster.sqlite3"
            config = self.work / "chaos.toml"
            config.write_text(provisioning(self.plan.queues), encoding="utf-8")
            await asyncio.to_thread(provision, db, config, self.work / "provision.log")
            pbx = Pbx(self.plan, self.prefix, self.broker.url)
            pbx.start()
            env = {
                **daemon_env(self.broker.url, self.prefix, db),
                # A broker restart should cost seconds, not the default 30 s backoff cap.
                "RINGMASTER_MQTT__RECONNECT_MAX_S": "2",
            }
            supervisor = Supervisor(env, self.work / "daemon.log", pbx, self.plan.restart_sec)
            supervisor.start(measure=False)
            await self._online(pbx, supervisor)
            pbx.login_all()
            await asyncio.sleep(1.0)
            counts = await self._load(pbx, supervisor)
            counts["wall_s"] = round(time.monotonic() - started, 1)
            return pbx, counts
        finally:
            if supervisor is not None:
                supervisor.stop()
            if pbx is not None:
                pbx.link.close()
            self.broker.close()
            if self.keep:
                self.say(f"kept {self.work}")
            else:
                shutil.rmtree(self.work, ignore_errors=True)

    async def _online(self, pbx: Pbx, supervisor: Supervisor) -> None:
        deadline = time.monotonic() + WAIT_S
        while not any(state == "online" for _, state, _ in pbx.statuses):
            if time.monotonic() > deadline or not supervisor.alive:
                raise SetupError(f"the daemon did not come online; see {supervisor.log}")
            await asyncio.sleep(0.05)

    async def _load(self, pbx: Pbx, supervisor: Supervisor) -> dict[str, Any]:
        plan = self.plan
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        calls = arrivals(plan)
        for a in calls:
            loop.call_at(t0 + a.at_s, pbx.offer, a)
        self.say(
            f"load: {len(calls)} calls over {plan.duration_s:.0f} s, {plan.kills} kills, "
            f"{plan.broker_restarts} broker restarts, {plan.fuzz} fuzz payloads"
        )
        watcher = asyncio.create_task(supervisor.watch())
        lag = asyncio.create_task(self._lag())
        fuzzer = asyncio.create_task(self._fuzz(t0))
        try:
            await self._faults(t0, faults(plan), supervisor)
            await asyncio.sleep(max(0.0, t0 + plan.duration_s - loop.time()))
            await fuzzer
            while not supervisor.alive:  # a restart after a death may be pending
                if supervisor.unexpected_deaths > MAX_DEATHS:
                    break
                await asyncio.sleep(0.1)
            self.say("load done; settling")
            await asyncio.sleep(plan.settle_s)
            pbx.hang_up_waiting()
            deadline = loop.time() + plan.drain_s
            while not pbx.settled() and loop.time() < deadline:  # noqa: ASYNC110 (polled)
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # anything late (a ring for an ended call) still counts
            # The canary is an event: the daemon forgets ended calls past their TTL in
            # its turn, and stores that before it answers.
            horizon = time.time() - DEFAULT_ENDED_CALL_TTL - 1.0
            pbx.send_canary()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await pbx.canary.wait()
            alive = supervisor.alive and pbx.canary.is_set()
            stale = await asyncio.to_thread(
                _ended_calls_before, self.work / "ringmaster.sqlite3", horizon
            )
        finally:
            watcher.cancel()
            fuzzer.cancel()
            lag.cancel()
        return {
            "kills": supervisor.kills,
            "broker_restarts": self.broker_restarts,
            "fuzz_sent": self.fuzz_sent,
            "unexpected_deaths": supervisor.unexpected_deaths,
            "death_causes": supervisor.death_causes,
            "alive_at_end": alive,
            "peak_rss_mib": supervisor.peak_rss_kib / 1024,
            "stale_ended_calls": stale,
            "pbx_lag_s": round(self.pbx_lag_s, 3),
            "persistence_failures": len(self.persistence_errors),
            "persistence_errors": self.persistence_errors,
        }

    async def _lag(self) -> None:
        """How late the PBX model's loop runs: a PBX that falls behind answers late."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.1
            await asyncio.sleep(0.1)
            self.pbx_lag_s = max(self.pbx_lag_s, loop.time() - due)

    async def _faults(self, t0: float, plan: list[Fault], supervisor: Supervisor) -> None:
        loop = asyncio.get_running_loop()
        for fault in plan:
            await asyncio.sleep(max(0.0, t0 + fault.at_s - loop.time()))
            if fault.kind == "kill":
                self.say(
                    f"t={loop.time() - t0:5.1f}s kill -9 the daemon ({fault.down_s:.1f}s down)"
                )
                await supervisor.kill(fault.down_s)
            else:
                self.say(
                    f"t={loop.time() - t0:5.1f}s restart the broker ({fault.down_s:.1f}s down)"
                )
                await self._check_persistence(f"restart at {fault.at_s:.1f}s", fault.down_s)
                self.broker_restarts += 1

    async def _check_persistence(self, when: str, down_s: float = 0.0) -> None:
        """Restart the broker, checking that a persistent session and its message survive."""
        broker = self.broker
        assert broker is not None

        def restart() -> None:
            broker.stop()
            if not any(broker.data_dir.iterdir()):
                self.persistence_errors.append(f"{when}: no persistence file in {broker.data_dir}")
            time.sleep(down_s)
            broker.start()

        error = await asyncio.to_thread(probe_session, broker.url, f"{self.prefix}/probe", restart)
        if error is not None:
            self.persistence_errors.append(f"{when}: {error}")

    async def _fuzz(self, t0: float) -> None:
        """Publish the corpus evenly over the middle of the load."""
        plan = self.plan
        if plan.fuzz <= 0:
            return
        assert self.broker is not None
        link = Link(self.broker.url, "fuzzer", inflight=500)
        link.start()
        loop = asyncio.get_running_loop()
        start, end = 0.05 * plan.duration_s, 0.85 * plan.duration_s
        per_s = plan.fuzz / (end - start)
        payloads = corpus(plan.seed, self.prefix, plan.fuzz)
        try:
            await asyncio.sleep(max(0.0, t0 + start - loop.time()))
            for topic, payload in payloads:
                due = t0 + start + self.fuzz_sent / per_s
                if due > loop.time():
                    await asyncio.sleep(due - loop.time())
                link.publish(topic, payload)
                self.fuzz_sent += 1
            deadline = loop.time() + WAIT_S
            while link.pending() and loop.time() < deadline:  # noqa: ASYNC110 (paho's state)
                await asyncio.sleep(0.1)
        finally:
            link.close()


def _ended_calls_before(db: Path, horizon: float) -> int:
    """How many calls that ended before `horizon` the daemon's store still holds."""
    # Read-only beside the running daemon (WAL): the store's size is what a
    # restart loads, so ended calls kept past their TTL slow every restart.
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
        row = connection.execute(
            "SELECT count(*) FROM calls WHERE ended_at IS NOT NULL AND ended_at < ?", (horizon,)
        ).fetchone()
    return int(row[0])
