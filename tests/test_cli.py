"""The `ringmaster` command's own options."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

import pytest
import uvloop

from ringmaster import __version__, cli
from ringmaster.cli import main

if TYPE_CHECKING:
    from ringmaster.daemon.service import Service


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"ringmaster {__version__}\n"


def test_run_uses_uvloop_when_installed() -> None:
    seen: list[type[asyncio.AbstractEventLoop]] = []

    async def main() -> None:
        seen.append(type(asyncio.get_running_loop()))

    cli._run_loop(main())
    assert seen == [uvloop.Loop]


async def test_async_tests_run_on_the_loop_of_ringmaster_test_loop() -> None:
    expected = os.environ.get("RINGMASTER_TEST_LOOP", "asyncio")
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uvloop.Loop) == (expected == "uvloop")


class _Daemon:
    """Stands for a `Service`: ready once started, unless its start-up fails first."""

    def __init__(self, *, fails: bool = False) -> None:
        self.ready = asyncio.Event()
        self.fails = fails

    async def run(self) -> None:
        await asyncio.sleep(0)
        if self.fails:
            raise RuntimeError("no database")
        self.ready.set()
        # Serves until frozen (the test's timeout fails it if it never is).
        while gc.get_freeze_count() == 0:  # noqa: ASYNC110 - no event announces a freeze
            await asyncio.sleep(0)


@pytest.fixture
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("_unfrozen")
async def test_the_start_up_heap_is_frozen_once_the_daemon_is_ready() -> None:
    async with asyncio.timeout(5):
        await cli._serve(cast("Service", _Daemon()))
    assert gc.get_freeze_count() > 0


@pytest.mark.usefixtures("_unfrozen")
async def test_a_failed_start_up_is_raised_and_freezes_nothing() -> None:
    with pytest.raises(RuntimeError, match="no database"):
        await cli._serve(cast("Service", _Daemon(fails=True)))
    assert gc.get_freeze_count() == 0
