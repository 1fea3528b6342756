"""The `ringmaster` command's own options."""

from __future__ import annotations

import pytest

from ringmaster import __version__
from ringmaster.cli import main


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"ringmaster {__version__}\n"
