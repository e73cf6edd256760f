"""The chaos run (tests/chaos.py) as a test: ~3,000 tasks, drivers and pools killed with
SIGKILL at random for 40 s; every task ends with one result and the right answer, and only
tasks whose pool was killed mid-run ever ran twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys

HARNESS = os.path.join(os.path.dirname(__file__), "chaos.py")


def test_chaos(tmp_path):
    r = subprocess.run([sys.executable, HARNESS, "--seconds", "40", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=900)
    print(r.stderr)  # the counts (and the seed, to reproduce a failure)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["answer"] == summary["answer_expected"], summary
    assert summary["results"] == summary["tasks"] == summary["tasks_finished"], summary
    assert summary["violations"] == 0, summary
    assert summary["kills_driver"] + summary["kills_pool"] >= 10, summary
    assert r.returncode == 0
