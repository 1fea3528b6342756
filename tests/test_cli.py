"""The `ringmaster` command's own options."""

from __future__ import annotations

import asyncio
import os

import pytest
import uvloop

from ringmaster import __version__, cli
from ringmaster.cli import main


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
