"""`make chaos`, short: orders flow while an order-service instance, catalog-service, the Connect worker and
MariaDB are killed with -9 and started again in turn; the auditor finds the run's orders consistent after each
fault and at the end."""

import subprocess
import sys

import pytest

from stack_description.settings import REPO_ROOT

pytestmark = pytest.mark.stack


def test_short_chaos_run_ends_with_a_consistent_verdict() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "chaos", "--short"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(run.stdout, run.stderr)  # the timeline, in the test report when it fails
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "FAULT" in run.stdout and "REPAIR" in run.stdout
    verdicts = [line for line in run.stdout.splitlines() if "audit after" in line and "looking again" not in line]
    assert len(verdicts) == run.stdout.count("FAULT"), "one verdict after each fault"
    assert all(": consistent (" in line for line in verdicts), verdicts
    assert "verdict: consistent" in run.stdout, "the final full pass"
