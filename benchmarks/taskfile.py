"""Row 11: `farm run` of a task file of `true` lines, next to GNU parallel on the same file.

GNU parallel (`parallel < tasks.txt`, one job per core) is what shell users reach for; farm
run should be at least as fast while it also writes each line's stdout and stderr to files
and keeps what it needs to resume.  Both run the same N lines, alternately, `repeats`
times; GNU parallel comes from Debian's packages (installed here if missing).  A third
figure is the re-run of the finished file: every line found done, nothing run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

TARGET = 1.0  # farm run / GNU parallel, tasks per second


def ensure_parallel() -> str | None:
    """The path of GNU parallel, installing Debian's package if need be; None if not."""
    path = shutil.which("parallel")
    if path:
        return path
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "-q", "--no-install-recommends", "parallel"],
                ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", "parallel"]):
        try:
            subprocess.run(cmd, env=env, capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if shutil.which("parallel"):
            return shutil.which("parallel")
    return None


def _timed(cmd: list[str], cwd: str, stdin: str | None = None) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    with open(stdin) if stdin else open(os.devnull) as f:
        p = subprocess.run(cmd, cwd=cwd, stdin=f, capture_output=True, text=True, timeout=600)
    return time.perf_counter() - t0, p.returncode, p.stderr[-500:]


def measure(base: str, lines: int, repeats: int, progress) -> dict[str, Any]:
    parallel = ensure_parallel()
    res: dict[str, Any] = {"lines": lines, "parallel": [], "farm": [], "rerun": [],
                           "parallel_path": parallel, "errors": []}
    farm = [sys.executable, "-m", "farm", "run"]
    for rep in range(1, repeats + 1):
        d = os.path.join(base, f"taskfile-{rep}")
        os.makedirs(d)
        tasks = os.path.join(d, "tasks.txt")
        with open(tasks, "w") as f:
            f.write("true\n" * lines)
        if parallel:
            s, rc, err = _timed([parallel, "--will-cite"], d, stdin=tasks)
            res["parallel"].append(lines / s if rc == 0 else None)
            if rc:
                res["errors"].append(f"parallel: exit {rc}: {err}")
        s, rc, err = _timed([*farm, "tasks.txt"], d)
        res["farm"].append(lines / s if rc == 0 else None)
        if rc:
            res["errors"].append(f"farm run: exit {rc}: {err}")
        s, rc, err = _timed([*farm, "tasks.txt"], d)
        res["rerun"].append(s if rc == 0 else None)
        progress(f"  taskfile run {rep}/{repeats}: farm run "
                 f"{res['farm'][-1] or 0:,.0f} lines/s, GNU parallel "
                 + (f"{res['parallel'][-1] or 0:,.0f}" if parallel else "-")
                 + f" lines/s; re-run {res['rerun'][-1] or 0:.2f} s")
    return res


def _median(values: list) -> float | None:
    good = [v for v in values if v]
    return statistics.median(good) if good else None


def render(res: dict[str, Any]) -> str:
    farm, par, rerun = (_median(res["farm"]), _median(res["parallel"]),
                        _median(res["rerun"]))
    ratio = farm / par if farm and par else None
    mark = "" if ratio is None else ("pass" if ratio >= TARGET else "FAIL")
    n = f"{res['lines']:,}"
    rows = [
        f"11. farm run, {n} `true` lines            lines/s  {farm or 0:>9,.0f}",
        "    GNU parallel, the same file (-j cores)  lines/s  "
        + (f"{par:>9,.0f}" if par else "  not run (no GNU parallel: see errors)"),
        "    farm run / GNU parallel                 ratio    "
        + (f"{ratio:>9.2f}   >={TARGET:g} {mark}" if ratio else "        -"),
        f"    farm run again (every line done)        s        {rerun or 0:>9.2f}",
        "    (farm run also writes each line's stdout and stderr to a file, and can "
        "resume; medians of the runs)",
    ]
    rows += [f"    error: {e}" for e in res["errors"][:3]]
    return "\n".join(rows)
