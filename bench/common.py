"""Shared pieces: the machine, percentiles, provisioning, a daemon as a child process."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
WAIT_S = 60.0  # an upper bound on any wait for a child process


def machine() -> dict[str, Any]:
    """What the figures were measured on: CPU model, cores, Python, kernel, mosquitto."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        # `mosquitto -h` prints its version first and exits non-zero: no check.
        mosquitto = subprocess.run(
            ["mosquitto", "-h"], capture_output=True, text=True, timeout=5, check=False
        ).stdout.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        mosquitto = "unknown"
    return {
        "cpu_model": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "mosquitto": mosquitto,
    }


def percentiles(samples_ns: list[int]) -> dict[str, float | int | None]:
    """p50/p99/p99.9/max in milliseconds (nearest rank)."""
    if not samples_ns:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "p999_ms": None, "max_ms": None}
    s = sorted(samples_ns)

    def rank(q: float) -> float:
        return s[min(len(s) - 1, max(0, int(q * len(s) + 0.999999) - 1))] / 1e6

    return {
        "n": len(s),
        "p50_ms": round(rank(0.50), 3),
        "p99_ms": round(rank(0.99), 3),
        "p999_ms": round(rank(0.999), 3),
        "max_ms": round(s[-1] / 1e6, 3),
    }


def numbers(agents: int) -> list[str]:
    """The extension numbers of `agents` agents, as `write_config` provisions them."""
    return [str(10000 + i) for i in range(agents)]


def write_config(
    path: Path,
    *,
    agents: int,
    queues: int = 1,
    strategy: str = "leastrecent",
    timeout: int = 30,
    other_tenant: bool = False,
) -> Path:
    """One tenant; `agents` extensions spread over `queues` queues, one DID per queue.

    DID of queue q is "+1000{q}". Agents are numbered from 10000. With
    `other_tenant`, tenant 2 too: extension "20000" in queue "700", DID "+20000".
    """
    nums = numbers(agents)
    parts = ['[[tenant]]\nid = 1\nname = "Bench"\n']
    parts += [f'[[extension]]\ntenant_id = 1\nnumber = "{n}"\n' for n in nums]
    for q in range(queues):
        mine = nums[q::queues]
        enrolled = ", ".join(f'"{n}"' for n in mine)
        parts.append(
            f'[[queue]]\ntenant_id = 1\nqueue_number = "{600 + q}"\nname = "Q{q}"\n'
            f'strategy = "{strategy}"\ntimeout = {timeout}\nretry = 5\nagents = [{enrolled}]\n'
        )
        parts.append(f'[[did_route]]\ntenant_id = 1\ndid = "+1000{q}"\nqueue = "{600 + q}"\n')
    if other_tenant:
        parts.append(
            '[[tenant]]\nid = 2\nname = "Other"\n\n[[extension]]\ntenant_id = 2\nnumber = "20000"\n'
            '\n[[queue]]\ntenant_id = 2\nqueue_number = "700"\nname = "Other"\n'
            f'strategy = "{strategy}"\ntimeout = {timeout}\nretry = 5\n'
            'agents = ["20000"]\n\n[[did_route]]\ntenant_id = 2\ndid = "+20000"\nqueue = "700"\n'
        )
    path.write_text("\n".join(parts))
    return path


def provision(db: Path, config: Path, log: Path) -> float:
    """`ringmaster provision` as the operator runs it; returns seconds taken."""
    started = time.perf_counter()
    with log.open("ab") as out:
        subprocess.run(
            [PYTHON, "-m", "ringmaster", "provision", "--offline", str(config)],
            env={
                **os.environ,
                "RINGMASTER_DATABASE__PATH": str(db),
                "RINGMASTER_LOG__LEVEL": "warning",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=600,
            cwd=ROOT,
        )
    return time.perf_counter() - started


def daemon_env(url: str, prefix: str, db: Path) -> dict[str, str]:
    """The daemon's settings for one scenario: its own prefix, client id and database."""
    return {
        "RINGMASTER_MQTT__URL": url,
        "RINGMASTER_MQTT__TOPIC_PREFIX": prefix,
        "RINGMASTER_MQTT__CLIENT_ID": f"ringmaster-{prefix}",
        "RINGMASTER_DATABASE__PATH": str(db),
        "RINGMASTER_LOG__FORMAT": "json",
        "RINGMASTER_LOG__LEVEL": "warning",
        "RINGMASTER_API__ENABLED": "false",
    }


def _py_spy() -> str:
    """py-spy beside the interpreter, else the one on PATH."""
    beside = Path(PYTHON).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy") or str(beside)


class Daemon:
    """`python -m ringmaster run` as a child process (its own interpreter and CPU time)."""

    def __init__(self, env: dict[str, str], log: Path, *, profile: Path | None = None) -> None:
        self.env = {**os.environ, **env}
        # The A/B driver (bench/ab.py) runs the same harness against another version's daemon.
        other = os.environ.get("BENCH_DAEMON_PYTHONPATH")
        if other:
            self.env["PYTHONPATH"] = other
        self.log = log
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None
        self.started_ns = 0

    def start(self) -> None:
        """Spawn the daemon (under py-spy when profiling); returns at once."""
        argv = [PYTHON, "-m", "ringmaster", "run"]
        if self.profile is not None:
            # py-spy records the daemon's whole life; stopped by SIGTERM to the daemon.
            argv = [
                _py_spy(),
                "record",
                "-o",
                str(self.profile),
                "-f",
                "speedscope",
                "-r",
                "200",
                "--",
                *argv,
            ]
        with self.log.open("ab") as out:
            self.started_ns = time.perf_counter_ns()
            self.process = subprocess.Popen(
                argv, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )

    @property
    def pid(self) -> int:
        """The spawned process: py-spy's when profiling, else the daemon's."""
        assert self.process is not None
        return self.process.pid

    def _daemon_pid(self) -> int | None:
        """The daemon's own process (under py-spy, py-spy's child)."""
        pid = self.pid
        if self.profile is None:
            return pid
        try:
            return int(Path(f"/proc/{pid}/task/{pid}/children").read_text().split()[0])
        except (OSError, IndexError, ValueError):
            return None

    def rss_kib(self) -> int | None:
        """Resident memory of the daemon (the python child when under py-spy)."""
        pid = self._daemon_pid()
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    def cpu_s(self) -> float | None:
        """CPU seconds (user + system, every thread) the daemon has used so far.

        Unlike latency, CPU per call hardly depends on what else the two cores are
        doing, so it is the figure to compare two versions of the daemon by.
        """
        pid = self._daemon_pid()
        if pid is None:
            return None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        # proc(5): fields after the parenthesised command; utime and stime are 14 and 15.
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """SIGTERM (a clean stop), SIGKILL if it does not stop in time."""
        p = self.process
        if p is None or p.poll() is not None:
            return
        if self.profile is not None:
            # Stop the daemon (py-spy's child) so py-spy writes its profile.
            try:
                child = int(Path(f"/proc/{p.pid}/task/{p.pid}/children").read_text().split()[0])
                os.kill(child, signal.SIGTERM)
            except (OSError, IndexError, ValueError):
                p.send_signal(signal.SIGINT)
        else:
            p.send_signal(signal.SIGTERM)
        reap(p)


def reap(p: subprocess.Popen[bytes], wait_s: float = WAIT_S) -> None:
    """Wait for a child asked to stop; SIGKILL it if it takes longer than `wait_s`."""
    try:
        p.wait(wait_s)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run_child(module: str, args: dict[str, Any], log: Path, timeout_s: float) -> dict[str, Any]:
    """Run `python -m bench.<module> '<json>'` in its own process; its last stdout line is JSON."""
    with log.open("ab") as err:
        done = subprocess.run(
            [PYTHON, "-m", f"bench.{module}", json.dumps(args)],
            stdout=subprocess.PIPE,
            stderr=err,
            timeout=timeout_s,
            cwd=ROOT,
            check=False,
        )
    lines = done.stdout.decode().strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"bench.{module} failed ({done.returncode}); see {log}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result
