"""A private PostgreSQL cluster run from Debian's binaries, for the tests and bench/.

Nothing here touches the system's own cluster (Debian's ``postgresql`` package creates
one on port 5432): :func:`start_postgres` runs ``initdb`` in a fresh temporary folder and
starts that cluster on a free loopback port with its Unix socket in the same folder.
PostgreSQL refuses to run as root, so when the caller is root the folder is handed to
the unprivileged ``postgres`` user (the Debian package creates it) and every server
binary runs as that user through ``runuser``.

No event loop and no driver are needed: the databases of the tests are created and
dropped with the cluster's own ``psql``, so the fixture does not depend on the driver
the store uses.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Self

from ringmaster.daemon.broker import free_port

__all__ = ["SUPERUSER", "PostgresCluster", "PostgresError", "find_bindir", "start_postgres"]

# The bootstrap superuser (`initdb -U`): the tests and the bench connect as it.
SUPERUSER = "ringmaster"
# The unprivileged account the server runs as when we are root (Debian's package makes it).
SERVICE_USER = "postgres"
HOST = "127.0.0.1"
START_TIMEOUT_S = 60
_DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"


class PostgresError(Exception):
    """The private cluster could not be made, started, or asked something."""


def find_bindir() -> Path:
    """The directory of ``initdb``, ``pg_ctl`` and ``psql``: Debian's newest, or PATH's.

    Debian keeps the server binaries off PATH in /usr/lib/postgresql/<major>/bin, one
    directory per installed major version; the newest wins.

    Raises:
        PostgresError: No ``initdb`` anywhere, with how to install it.
    """

    def major(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = sorted(
        (p for p in Path("/").glob(_DEBIAN_BINDIRS.lstrip("/")) if (p / "initdb").is_file()),
        key=major,
    )
    if candidates:
        return candidates[-1]
    on_path = shutil.which("initdb")
    if on_path is not None:
        return Path(on_path).resolve().parent
    raise PostgresError(
        "PostgreSQL's initdb not found in /usr/lib/postgresql/*/bin nor on PATH: "
        "install the Debian package 'postgresql' (scripts/setup.sh does)"
    )


def _clean_env() -> dict[str, str]:
    # PGHOST, PGDATABASE, PGPASSWORD... of the caller's shell must not redirect psql or
    # pg_ctl to another cluster.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


class PostgresCluster:
    """A running private cluster; stop it with :meth:`close` (or use it as a context).

    Attributes:
        root: The temporary folder holding the data directory, socket and log.
        port: The TCP port the server listens on, on 127.0.0.1 only.
        durable: False when the cluster runs with fsync and synchronous_commit off.
    """

    def __init__(self, root: Path, port: int, bindir: Path, *, durable: bool) -> None:
        self.root = root
        self.port = port
        self.durable = durable
        self._bindir = bindir
        self._closed = False
        self._reaper: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        """The cluster's data directory."""
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        """The server's log file (``pg_ctl -l``)."""
        return self.root / "server.log"

    def url(self, database: str = "postgres") -> str:
        """``postgresql://ringmaster@127.0.0.1:PORT/database``, as ``database.url`` expects.

        No password: the cluster trusts every connection, which only this machine's
        loopback can make.
        """
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def sql(self, statement: str, *, database: str = "postgres") -> str:
        """Run one statement with the cluster's ``psql`` and return its unaligned output.

        Raises:
            PostgresError: psql failed; the message carries its stderr.
        """
        done = subprocess.run(
            [
                str(self._bindir / "psql"),
                "--no-psqlrc",
                "--quiet",
                "--tuples-only",
                "--no-align",
                "--set=ON_ERROR_STOP=1",
                f"--dbname={self.url(database)}",
                f"--command={statement}",
            ],
            capture_output=True,
            text=True,
            env=_clean_env(),
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise PostgresError(f"psql failed on {statement!r}: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, prefix: str = "test") -> str:
        """Create an empty database with a fresh name and return that name."""
        name = f"{prefix}_{uuid.uuid4().hex}"
        self.sql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, closing any connection a failed test left open to it."""
        self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def postmaster_pid(self) -> int | None:
        """The server's process id, or None when it is not running."""
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        """Stop the server (fast shutdown, then harder) and delete the folder. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            pid = self.postmaster_pid()
            if pid is not None:
                _stop(pid)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            if self._reaper is not None:
                self._reaper.kill()
                self._reaper.wait()

    def _watch_over(self) -> None:
        """Have a reaper process stop the server and delete its folder if we die first.

        ``pg_ctl`` detaches the server into a session of its own, so nothing that ends the
        caller without running its ``finally`` blocks (SIGKILL, ``timeout``'s SIGTERM)
        would reach it: without the reaper, every such test run would leave a cluster
        running. The reaper has a session of its own too, so the signal that kills the
        caller's process group spares it.
        """
        pid = self.postmaster_pid()
        if pid is None:
            raise PostgresError("the server is not running")
        self._reaper = subprocess.Popen(
            [sys.executable, __file__, "--reap", str(os.getpid()), str(pid), str(self.root)],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop(pid: int) -> None:
    # Signals rather than `pg_ctl stop`: root may signal the server it started as
    # postgres, and the escalation is the documented one: SIGINT is a fast shutdown
    # (rolls back open transactions, closes connections), SIGQUIT an immediate one
    # (the children exit at once; the next start would recover, but there is none).
    for sig, wait_s in ((signal.SIGINT, 15.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.02)
    raise PostgresError(f"PostgreSQL (pid {pid}) did not stop")


def _as_service_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs a server binary unprivileged, and that account."""
    if os.geteuid() != 0:
        return [], None
    try:
        account = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresError(
            f"running as root and there is no {SERVICE_USER!r} user to run PostgreSQL as "
            "(the Debian package 'postgresql' creates it)"
        ) from None
    runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
    if runuser is None:
        raise PostgresError("running as root and runuser (util-linux) is not installed")
    return [runuser, "-u", SERVICE_USER, "--"], account


def _run(argv: list[str], *, cwd: Path, what: str) -> None:
    done = subprocess.run(
        argv,
        cwd=cwd,  # the service user may not be allowed into the caller's directory
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=START_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise PostgresError(
            f"{what} failed with status {done.returncode}:\n"
            f"{(done.stdout + done.stderr).strip() or '(no output)'}"
        )


def start_postgres(*, durable: bool = True, bindir: Path | None = None) -> PostgresCluster:
    """Make and start a private cluster in a new temporary folder.

    Args:
        durable: Keep PostgreSQL's durability defaults (fsync, synchronous_commit on),
            as a benchmark must. False turns them off, which the tests may: they never
            survive an operating-system crash, and a killed server process loses
            nothing either way (the data is in the kernel's page cache).
        bindir: Where initdb, pg_ctl and psql are; :func:`find_bindir` by default.

    Returns:
        The running cluster; the caller must :meth:`~PostgresCluster.close` it (should
        the caller be killed first, a reaper process stops it and deletes its folder).

    Raises:
        PostgresError: Binaries missing, initdb failed, or the server did not start
            (its log is in the message).
    """
    bindir = bindir or find_bindir()
    prefix, account = _as_service_user()
    # Under /tmp, not pytest's tmp_path: that one sits in a folder only its owner
    # (root) may enter, and the server must reach its data as the service user.
    root = Path(tempfile.mkdtemp(prefix="ringmaster-postgres-"))
    try:
        if account is not None:
            os.chown(root, account.pw_uid, account.pw_gid)
        data = root / "data"
        _run(
            [
                *prefix,
                str(bindir / "initdb"),
                f"--pgdata={data}",
                f"--username={SUPERUSER}",
                # No password: the server listens on loopback and its own socket only,
                # and every account there is a test's or the bench's.
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                # Only initdb's own flush of the new files; says nothing about the
                # server's durability, which `durable` decides.
                "--no-sync",
            ],
            cwd=root,
            what="initdb",
        )
        settings = [
            f"listen_addresses = '{HOST}'",
            f"unix_socket_directories = '{root}'",
            # Tests and bench open a few connections each; the default (100) would
            # reserve shared memory for nothing.
            "max_connections = 50",
            "shared_buffers = '32MB'",
        ]
        if not durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# ringmaster's private cluster\n" + "\n".join(settings) + "\n")
        cluster = _start(root, bindir, prefix, durable=durable)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    try:
        cluster._watch_over()
    except BaseException:
        cluster.close()
        raise
    return cluster


def _start(root: Path, bindir: Path, prefix: list[str], *, durable: bool) -> PostgresCluster:
    # free_port's answer may be taken by another process before the server binds it:
    # try a few ports rather than fail a whole test session on such a race.
    failure = PostgresError("pg_ctl start was not tried")
    for _attempt in range(3):
        cluster = PostgresCluster(root, free_port(HOST), bindir, durable=durable)
        try:
            _run(
                [
                    *prefix,
                    str(bindir / "pg_ctl"),
                    "start",
                    "--wait",
                    f"--timeout={START_TIMEOUT_S}",
                    f"--pgdata={cluster.data_dir}",
                    f"--log={cluster.log_path}",
                    f"--options=-p {cluster.port}",
                ],
                cwd=root,
                what="pg_ctl start",
            )
        except PostgresError as exc:
            pid = cluster.postmaster_pid()
            if pid is not None:
                _stop(pid)
            log = cluster.log_path.read_text(errors="replace") if cluster.log_path.exists() else ""
            failure = PostgresError(f"{exc}\nserver log:\n{log.strip() or '(empty)'}")
            continue
        return cluster
    raise failure


def _reap(parent: int, postmaster: int, root: Path) -> None:
    """The reaper's loop: once `parent` is gone, stop `postmaster` and delete `root`."""
    while os.getppid() == parent:
        time.sleep(0.2)
    try:
        if _alive(postmaster):
            _stop(postmaster)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__" and sys.argv[1:2] == ["--reap"]:
    _reap(int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]))
