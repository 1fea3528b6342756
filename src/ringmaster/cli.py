"""The `ringmaster` command: `run`, `provision`, `simulate`, `status`, `report`, `agent`, `call`.

Each command imports what it needs when it runs: a restarted daemon's first
ring waits for its imports, and the simulator and provisioning are not its.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import urllib.parse
from collections.abc import Coroutine
from datetime import date
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from ringmaster import __version__, supervise
from ringmaster.logs import configure_logging
from ringmaster.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from ringmaster.daemon.service import Service

#: How long the daemon may take to check and apply a file: a large one is many writes.
PROVISION_TIMEOUT_S = 300.0
#: The commands that are clients of the running daemon's API (settings only for its address).
_API_CLIENTS = frozenset({"status", "report", "agent", "call"})
#: The commands that need no simulator: their parser only names `simulate`.
_LEAN_COMMANDS = frozenset({"run", "provision"}) | _API_CLIENTS


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ringmaster` console script; returns the exit status."""
    words = sys.argv[1:] if argv is None else argv
    lean = "simulate" not in words and bool(_LEAN_COMMANDS.intersection(words))
    parser = _parser(lean=lean)
    args = parser.parse_args(argv)
    if args.command == "simulate":
        from ringmaster.planning import cli as simulate_cli  # noqa: PLC0415 - see the module's docstring

        return simulate_cli.run(args)  # needs no settings: no broker, no database
    if args.command in _API_CLIENTS:
        return _run_api_client(args)
    try:
        settings = load_settings(args.config)
    except SettingsError as error:
        print(f"ringmaster: bad setting: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log.format, settings.log.level)
    if args.command == "run" and args.workers != 1:
        from ringmaster import workers  # noqa: PLC0415 - see the module's docstring

        return workers.run(settings, args.workers, config=args.config)
    if args.command == "run":
        return _run(settings)
    return _provision(settings, args)


def _run_api_client(args: argparse.Namespace) -> int:
    if args.command == "status":
        from ringmaster import status  # noqa: PLC0415 - see the module's docstring

        return status.run(args)
    if args.command == "report":
        from ringmaster import report  # noqa: PLC0415 - see the module's docstring

        return report.run(args)
    return supervise.run(args)


def _parser(*, lean: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ringmaster", description="Ringmaster, an automatic call distributor on MQTT."
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="settings file (TOML); default: config/ringmaster.toml if it exists",
    )
    parser.add_argument("--version", action="version", version=f"ringmaster {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    run.add_argument(
        "--workers", metavar="N", type=int, default=1, help="N cluster nodes, a process each"
    )
    prov = commands.add_parser(
        "provision",
        help="load tenants, extensions, queues and DID routes from a TOML file (through the"
        " running daemon, in effect at once; else into the database file)",
    )
    prov.add_argument("file", type=Path)
    prov.add_argument(
        "--offline",
        action="store_true",
        help="write the database file directly, without asking a running daemon",
    )
    _api_arguments(prov)
    _add_status_parser(commands)
    _add_report_parser(commands)
    _add_supervisor_parsers(commands)
    if lean:
        commands.add_parser(
            "simulate", help="capacity planning: simulate traffic on the real engine"
        )
    else:
        from ringmaster.planning import cli as simulate_cli  # noqa: PLC0415 - see the module's docstring

        simulate_cli.add_parser(commands)
    return parser


def _add_status_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = commands.add_parser(
        "status", help="the running daemon's queues, agents and callers (Asterisk's queue show)"
    )
    _api_arguments(status)
    status.add_argument(
        "--tenant", metavar="N", type=int, default=None, help="this tenant's queues only"
    )


def _add_report_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    report = commands.add_parser(
        "report", help="a day of a tenant's queues, hour by hour, from the running daemon's API"
    )
    report.add_argument("--tenant", metavar="N", type=int, required=True, help="the tenant")
    report.add_argument("--queue", metavar="NUMBER", default=None, help="this queue only")
    report.add_argument(
        "--day",
        metavar="YYYY-MM-DD",
        type=date.fromisoformat,
        default=None,
        help="the tenant's local calendar day; default: today in its time zone",
    )
    _api_arguments(report)


def _add_supervisor_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    agent = commands.add_parser(
        "agent", help="pause, unpause or log out an agent (the PBX applies it, then confirms)"
    )
    agent.add_argument("action", choices=sorted(supervise.PRESENCE))
    agent.add_argument("extension", help="the agent's extension number, e.g. 101")
    agent.add_argument("--tenant", metavar="N", type=int, required=True, help="its tenant")
    agent.add_argument("--reason", default=None, help="a pause's reason, e.g. lunch")
    _api_arguments(agent)
    call = commands.add_parser("call", help="move, reprioritise, send or hang up a waiting call")
    call.add_argument("action", choices=sorted(supervise.CALL_ACTIONS))
    call.add_argument("call_id", help="the call, as the PBX named it")
    call.add_argument(
        "value",
        nargs="?",
        default=None,
        help="move: the queue's number; priority: 0 to 9; send: the extension number",
    )
    call.add_argument("--tenant", metavar="N", type=int, required=True, help="its tenant")
    _api_arguments(call)


def _api_arguments(parser: argparse.ArgumentParser) -> None:
    """How a command of the daemon's API reaches it: ``--api`` and ``--token``."""
    parser.add_argument(
        "--api",
        metavar="URL",
        default=None,
        help="the daemon's admin API; default: from api.host and api.port of the settings",
    )
    parser.add_argument(
        "--token", default=None, help="a bearer token for the API; default: $RINGMASTER_API_TOKEN"
    )
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def _run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run the daemon's `main` on uvloop when it is installed, else on asyncio's own loop.

    uvloop is a dependency on every platform it supports (not Windows); its loop does
    the daemon's socket and callback work in C: measured in docs/performance.md.
    """
    try:
        import uvloop  # noqa: PLC0415 - only `run` wants it
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def _serve(service: Service) -> None:
    """Run the daemon; once it serves calls, what its start-up built leaves the GC's sight.

    The imports, the settings and the loaded state are most of the heap and live as
    long as the process: each full collection went through all of them again. Frozen
    (`gc.freeze`), a full collection only goes through what the turns made since. The
    figures (bench arrival at 500 calls/s, CPU time of each collection, this 2-core
    machine): a full collection took 36-45 ms before, 2 ms frozen; the young ones
    (0.2-1.6 ms) and the resident memory (62 MB) did not change. At 100 calls/s no
    full collection ran in 5 s either way, and no collection took 1 ms of CPU: there
    the collector is not what makes p99. A frozen object that becomes garbage is still
    freed when nothing refers to it; only a cycle among them is never collected, so
    at most the start-up's heap is kept (it would have been anyway).
    """
    running = asyncio.ensure_future(service.run())
    ready = asyncio.ensure_future(service.ready.wait())
    await asyncio.wait((running, ready), return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        gc.freeze()
    else:
        ready.cancel()
    await running


def _run(settings: Settings) -> int:
    try:
        if settings.cluster.shards:
            from ringmaster.daemon.cluster_node import ClusterNode  # noqa: PLC0415

            _run_loop(ClusterNode(settings).run())
        else:
            from ringmaster.daemon.service import Service  # noqa: PLC0415 - see the docstring

            _run_loop(_serve(Service(settings)))
    except KeyboardInterrupt:
        pass
    except SettingsError as error:
        print(f"ringmaster: bad setting: {error}", file=sys.stderr)
        return 2
    except Exception:
        structlog.get_logger("ringmaster").exception("service.failed")
        return 1
    return 0


def _provision(settings: Settings, args: argparse.Namespace) -> int:
    """Through the running daemon (in effect at once); on the database file if none answers."""
    from ringmaster.client import (  # noqa: PLC0415 - see the module's docstring
        TOKEN_VARIABLE,
        ApiClient,
        ApiError,
        NoDaemonError,
        api_url,
    )
    from ringmaster.provision import ProvisionError, ProvisionReport, read_file  # noqa: PLC0415

    if args.offline:
        return asyncio.run(_provision_file(settings, args.file))
    url = args.api if args.api is not None else api_url(settings.api.host, settings.api.port)
    token = args.token if args.token is not None else os.environ.get(TOKEN_VARIABLE)
    try:
        text = read_file(args.file)
    except ProvisionError as error:
        print(*error.errors, sep="\n", file=sys.stderr)
        return 1
    api = ApiClient(url, token, timeout=PROVISION_TIMEOUT_S)
    query = urllib.parse.urlencode({"name": str(args.file)})
    try:
        answer = api.post_text(f"/api/provision?{query}", text, "application/toml")
    except NoDaemonError:
        code = asyncio.run(_provision_file(settings, args.file))
        if code == 0:
            print(
                f"no daemon answered at {api.url}: applied to the database file"
                f" {settings.database.redacted}; it takes effect when the daemon starts"
            )
        return code
    except ApiError as error:
        if error.status == HTTPStatus.UNPROCESSABLE_ENTITY and error.errors:
            print(*error.errors, sep="\n", file=sys.stderr)  # the file's problems, as offline
        else:
            print(f"ringmaster provision: {error}", file=sys.stderr)
        return 1
    try:
        report = ProvisionReport.from_json(answer)
    except (KeyError, TypeError, ValueError):
        print(
            f"ringmaster provision: unexpected answer from {api.url}: is it Ringmaster's API?",
            file=sys.stderr,
        )
        return 1
    print(report)
    print(f"applied by the running daemon at {api.url}: in effect now")
    return 0


async def _provision_file(settings: Settings, file: Path) -> int:
    from ringmaster.api.provisioning import provision  # noqa: PLC0415
    from ringmaster.provision import ProvisionError  # noqa: PLC0415
    from ringmaster.store import Store  # noqa: PLC0415

    async with await Store.open(settings.database.target) as store:
        try:
            report = await provision(file, store)
        except ProvisionError as error:
            for line in error.errors:
                print(line, file=sys.stderr)
            return 1
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
