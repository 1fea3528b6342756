"""``ringmaster run --workers N``: N nodes of a cluster on one machine, a process each.

One Python process uses one core (docs/performance.md). A cluster spreads its tenant
shards over its nodes (docs/cluster.md), so N processes on one machine, each a node
named ``<cluster.node>-<i>``, use N cores. This parent only starts them, starts one
again when it dies, forwards SIGTERM and SIGINT to them and waits for them: the
workers find each other and share the shards through the database, as nodes on
different machines do. No event loop: child processes, signals and a self-pipe.

Each worker ``i`` (0 to N-1) is ``python -m ringmaster run`` with the parent's settings
and three overrides in its environment: ``cluster.node`` (``<node>-<i>``), ``mqtt.url``
(when the parent runs the embedded broker, which it then starts once for all of them)
and ``api.port`` (``api.port + i``: a node's ``api_url`` must name that one process,
since a request for a tenant another node holds is answered 421 and sent there).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import structlog
from pydantic import ValidationError

from ringmaster.daemon import sdnotify
from ringmaster.daemon.broker import BrokerError, MosquittoProcess
from ringmaster.settings import ENV_PREFIX, ClusterSettings, Settings

__all__ = ["Workers", "refusal", "run"]

_log = structlog.get_logger("ringmaster.workers")

#: A worker that died waits this long before it is started again, doubled at each
#: death in a row up to `RESTART_MAX_S`: a worker that cannot start (the database
#: down, say) is retried without spinning.
RESTART_MIN_S = 1.0
RESTART_MAX_S = 30.0
#: A worker that lived this long before dying starts again after `RESTART_MIN_S`.
HEALTHY_AFTER_S = 60.0
#: How long the stopped workers may take to finish their turns and release their
#: shards before they are killed (systemd's TimeoutStopSec should be longer).
STOP_TIMEOUT_S = 60.0
#: `ringmaster run`'s exit status for settings it refuses: starting the worker again
#: would only repeat it, so the parent stops them all and exits with it.
EXIT_SETTINGS = 2

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Variables of systemd's notification protocol: the parent answers for the workers.
_SYSTEMD_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
_PR_SET_PDEATHSIG = 1  # prctl(2)
_MAX_PORT = 65535


def refusal(settings: Settings, workers: int) -> str | None:
    """Why these settings cannot run ``workers`` processes, or None when they can."""
    if workers < 1:
        return f"--workers {workers}: at least one worker"
    if workers == 1:
        return None
    if settings.cluster.shards == 0:
        return (
            f"--workers {workers} needs a cluster: set cluster.shards (e.g. 8) and a"
            " PostgreSQL database.url, see docs/cluster.md"
        )
    last = _node(settings, workers - 1)
    try:
        ClusterSettings.model_validate({**settings.cluster.model_dump(), "node": last})
    except ValidationError:
        return f"--workers {workers}: the node name {last!r} is not valid; shorten cluster.node"
    if settings.api.enabled and settings.api.port + workers - 1 > _MAX_PORT:
        return f"--workers {workers}: api.port + {workers - 1} is beyond 65535"
    return None


def run(settings: Settings, workers: int, *, config: Path | None) -> int:
    """``ringmaster run --workers N``: refuse, or run the workers until stopped.

    Args:
        settings: The parent's settings, which the workers load again.
        workers: How many processes (nodes) to run.
        config: The settings file given on the command line, passed on to the workers.

    Returns:
        The exit status: 0 when stopped, 2 for refused settings, 1 when the embedded
        broker cannot start.
    """
    problem = refusal(settings, workers)
    if problem is not None:
        print(f"ringmaster: {problem}", file=sys.stderr)
        return EXIT_SETTINGS
    command = [sys.executable, "-m", "ringmaster"]
    if config is not None:
        command += ["--config", str(config)]
    return Workers(settings, workers, [*command, "run"]).run()


def _node(settings: Settings, index: int) -> str:
    return f"{settings.cluster.node}-{index}"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, before exec
    # A parent killed with SIGKILL cannot forward anything: its workers must not run
    # on unsupervised, or a new parent's workers of the same names would meet them.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass(slots=True)
class _Worker:
    index: int
    node: str
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restart_at: float | None = None
    backoff_s: float = RESTART_MIN_S


class Workers:
    """The parent of N workers: start, restart, forward the stop signals, wait.

    Args:
        settings: The parent's settings (the workers load their own, plus overrides).
        count: How many workers.
        command: The worker's command line (``python -m ringmaster [--config F] run``).
    """

    def __init__(self, settings: Settings, count: int, command: list[str]) -> None:
        self._settings = settings
        self._command = command
        self._broker: MosquittoProcess | None = None
        self._workers = [_Worker(i, _node(settings, i), self._env_of(i)) for i in range(count)]
        self._signals: list[int] = []
        self._stop_deadline: float | None = None
        self._status = 0

    def _env_of(self, index: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SYSTEMD_VARIABLES}
        env[f"{ENV_PREFIX}CLUSTER__NODE"] = _node(self._settings, index)
        env[f"{ENV_PREFIX}API__PORT"] = str(self._settings.api.port + index)
        return env

    def run(self) -> int:
        """Run the workers until SIGTERM or SIGINT; returns the exit status."""
        wake_read, wake_write = os.pipe()
        for fd in (wake_read, wake_write):
            os.set_blocking(fd, False)
        previous = {signum: signal.getsignal(signum) for signum in (*_STOP_SIGNALS, signal.SIGCHLD)}
        old_wakeup = signal.set_wakeup_fd(wake_write)
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._asked_to_stop)
        # Only to wake the loop (through the wake-up pipe) when a worker exits.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        try:
            if not self._start_broker():
                return 1
            for worker in self._workers:
                self._start(worker)
            sdnotify.notify("READY=1")
            self._loop(wake_read)
            return self._status
        finally:
            self._kill_all()
            if self._broker is not None:
                self._broker.close()
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                if handler is not None:
                    signal.signal(signum, handler)
            os.close(wake_read)
            os.close(wake_write)

    def _asked_to_stop(self, signum: int, frame: FrameType | None) -> None:
        self._signals.append(signum)

    def _start_broker(self) -> bool:
        if self._settings.mqtt.url is not None:
            return True
        broker = self._settings.broker
        try:
            self._broker = MosquittoProcess(
                broker.data_dir, host=broker.host, port=broker.port, mosquitto=broker.mosquitto
            )
            self._broker.start()
        except BrokerError as error:
            _log.error("workers.broker_failed", error=str(error))
            return False
        _log.info("broker.embedded", url=self._broker.url)
        for worker in self._workers:
            worker.env[f"{ENV_PREFIX}MQTT__URL"] = self._broker.url
        return True

    def _start(self, worker: _Worker) -> None:
        worker.restart_at = None
        worker.started_at = time.monotonic()
        worker.process = subprocess.Popen(
            self._command,
            env=worker.env,
            # Its own session: a terminal's Ctrl-C reaches the parent only, which
            # forwards it once, and decides the order of the stop.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509 - no threads here
        )
        _log.info("worker.started", node=worker.node, pid=worker.process.pid)

    def _loop(self, wake_read: int) -> None:
        watchdog = sdnotify.watchdog_period()
        while True:
            self._forward_signals()
            self._reap()
            now = time.monotonic()
            if self._stop_deadline is not None:
                if not any(w.process is not None for w in self._workers):
                    return
                if now >= self._stop_deadline:
                    _log.warning("workers.stop_timeout", seconds=STOP_TIMEOUT_S)
                    self._kill_all()
                    return
            else:
                for worker in self._workers:
                    if worker.restart_at is not None and now >= worker.restart_at:
                        self._start(worker)
            self._check_broker()
            if watchdog is not None:
                sdnotify.notify("WATCHDOG=1")
            select.select([wake_read], [], [], self._timeout(now, watchdog))
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_read, 512):
                    pass

    def _timeout(self, now: float, watchdog: float | None) -> float | None:
        due = [w.restart_at for w in self._workers if w.restart_at is not None]
        if self._stop_deadline is not None:
            due = [self._stop_deadline]
        if self._broker is not None:
            due.append(now + RESTART_MIN_S)  # mosquitto is not our child's child: poll it
        if watchdog is not None:
            due.append(now + watchdog)
        return max(0.0, min(due) - now) if due else None

    def _forward_signals(self) -> None:
        while self._signals:
            self._stop(self._signals.pop(0))

    def _stop(self, signum: int) -> None:
        if self._stop_deadline is None:
            _log.info("workers.stopping", signal=signal.Signals(signum).name)
            self._stop_deadline = time.monotonic() + STOP_TIMEOUT_S
            sdnotify.notify("STOPPING=1")
        for worker in self._workers:
            worker.restart_at = None
            if worker.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signum)

    def _reap(self) -> None:
        for worker in self._workers:
            if worker.process is None or (status := worker.process.poll()) is None:
                continue
            worker.process = None
            if self._stop_deadline is not None:
                _log.info("worker.stopped", node=worker.node, status=status)
            elif status == EXIT_SETTINGS:
                _log.error("worker.settings_refused", node=worker.node)
                self._status = EXIT_SETTINGS
                self._stop(signal.SIGTERM)
            else:
                lived = time.monotonic() - worker.started_at
                if lived >= HEALTHY_AFTER_S:
                    worker.backoff_s = RESTART_MIN_S
                # Until it is back, the other workers take its shards as its leases
                # lapse (docs/cluster.md): its tenants wait seconds, not for an operator.
                _log.warning(
                    "worker.died", node=worker.node, status=status, restart_in_s=worker.backoff_s
                )
                worker.restart_at = time.monotonic() + worker.backoff_s
                worker.backoff_s = min(worker.backoff_s * 2, RESTART_MAX_S)

    def _check_broker(self) -> None:
        if self._broker is None or self._broker.running or self._stop_deadline is not None:
            return
        _log.warning("broker.died", stderr=self._broker.stderr[-2000:])
        try:
            self._broker.start()  # same port and data: the workers reconnect to it
        except BrokerError as error:
            _log.error("broker.restart_failed", error=str(error))

    def _kill_all(self) -> None:
        for worker in self._workers:
            if worker.process is not None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                worker.process.wait()
                worker.process = None
