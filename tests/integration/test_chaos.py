"""The chaos harness's short run (`python -m bench.chaos --short`), as part of the suite.

A real mosquitto, the daemon as a process killed with SIGKILL a few times, a
broker restart, 10,000 fuzz payloads and a PBX model: every invariant of
docs/reliability.md must hold. The harness decides everything by seed, so a
failure names the invariant and the calls that broke it (see its output).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: An upper bound for the whole run (the short run takes about a minute), never a figure.
RUN_LIMIT_S = 300


def test_the_short_chaos_run_breaks_no_invariant(tmp_path: Path) -> None:
    results = tmp_path / "chaos.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.chaos", "--short", "--seed", "1", "--json", str(results)],
        cwd=ROOT,
        env=os.environ.copy(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=RUN_LIMIT_S)
    except subprocess.TimeoutExpired:
        # SIGTERM first: the harness then stops its broker and daemon.
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        pytest.fail(f"the chaos run did not finish in {RUN_LIMIT_S} s:\n{output}")
    assert process.returncode == 0, output
    summary = json.loads(results.read_text())
    assert summary["invariants"] == dict.fromkeys(summary["invariants"], 0), output
    figures = summary["figures"]
    assert figures["kill -9 survived"] >= 3, output
    assert figures["broker restarts"] >= 1, output
    assert figures["fuzz payloads published"] >= 10_000, output
    assert figures["calls bridged by the PBX"] > 0, output
