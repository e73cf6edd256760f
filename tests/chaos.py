"""Chaos harness: a ~3,000-task graph while drivers and pools are killed with SIGKILL.

    python tests/chaos.py [--seconds 60] [--dir DIR] [--seed N]

The graph: BRANCHES branches, each a fan-out of LEAVES python tasks, a fan-in, then a chain
of CHAIN steps alternating python and bash apps (the bash steps pass their value on through
a File), and one final gather.  Every execution of a task leaves a marker
runs/TASK.PID.RAND, renamed to .done when the task's work is finished (PID: the worker
process).  The harness kills the driver or a whole pool at random moments, restarts the
driver, and at the end runs it to completion and checks:

- every task has exactly one result, and the final answer is right;
- a task finished ('.done') more than once only if all but one of those executions were in
  processes the harness killed (a task that finished before a driver kill never re-runs).

Prints the counts and writes them as JSON (the last line of stdout).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import psutil
import yaml

BRANCHES, LEAVES, CHAIN = 30, 60, 38  # 30 * (60 + 1 + 38) + 1 = 2,971 tasks
N_TASKS = BRANCHES * (LEAVES + 1 + CHAIN) + 1
ANSWER = sum(sum(b * 1000 + i for i in range(LEAVES)) + CHAIN for b in range(BRANCHES))

DRIVER = f'''
import os, sys
import farm
from farm import File, bash_app, python_app
from farm.executors import SpoolExecutor
from farm.providers import LocalProvider

RUNS, WORK = os.path.abspath("runs"), os.path.abspath("work")


def mark(tid):
    import os, time, uuid
    m = os.path.join(RUNS, f"{{tid}}.{{os.getpid()}}.{{uuid.uuid4().hex[:8]}}")
    open(m, "w").close()
    time.sleep(0.003)
    os.rename(m, m + ".done")


@python_app
def leaf(b, i):
    mark(f"L{{b}}.{{i}}")
    return b * 1000 + i


@python_app
def fanin(*xs, b=0):
    mark(f"F{{b}}")
    return sum(xs)


@python_app
def pstep(x=None, b=0, j=0, inputs=()):
    mark(f"C{{b}}.{{j}}")
    if inputs:
        x = int(open(inputs[0]).read())
    return x + 1


@bash_app
def bstep(x, b=0, j=0, outputs=()):
    import os
    m = f"{{RUNS}}/C{{b}}.{{j}}.{{os.getpid()}}.$RANDOM"
    return (f"m={{m}}; touch $m && sleep 0.003 && echo {{x + 1}} > {{outputs[0]}} "
            f"&& mv $m $m.done")


@python_app
def gather(*xs):
    mark("G")
    return sum(xs)


ex = SpoolExecutor(spool="spool", max_workers_per_node=2, idle_timeout=30,
                   heartbeat_period=0.5, provider=LocalProvider(init_blocks=1, max_blocks=1))
with farm.load(farm.Config(executors=[ex], retries=50)):
    ends = []
    for b in range({BRANCHES}):
        x = fanin(*[leaf(b, i) for i in range({LEAVES})], b=b)
        for j in range({CHAIN}):
            if j % 2 == 0:
                x = bstep(x, b=b, j=j, outputs=[File(f"{{WORK}}/{{b}}.{{j}}")]).outputs[0]
            else:
                x = pstep(b=b, j=j, inputs=[x])
        ends.append(x)
    print("answer", gather(*ends).result(timeout=600), flush=True)
'''


def pool_pids(spool: str) -> list[tuple[int, list[int]]]:
    """(manager pid, all pids of its process group) of pools that are running."""
    out = []
    pools = os.path.join(spool, "pools")
    for name in os.listdir(pools) if os.path.isdir(pools) else []:
        if not name.endswith(".yaml"):
            continue
        try:
            info = yaml.safe_load(open(os.path.join(pools, name)))
            proc = psutil.Process(int(info["pid"]))
            if info.get("state") != "running" or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            out.append((proc.pid, [proc.pid] + [c.pid for c in proc.children(recursive=True)]))
        except (OSError, TypeError, KeyError, ValueError, yaml.YAMLError, psutil.Error):
            continue
    return out


def start_driver(d: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, os.path.join(d, "driver.py")], cwd=d,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)


def check(d: str, killed: set[int]) -> dict:
    done: dict[str, list[int]] = {}
    started = 0
    for name in os.listdir(os.path.join(d, "runs")):
        started += 1
        if name.endswith(".done"):
            tid, pid = name.split(".")[0:-3], int(name.split(".")[-3])
            done.setdefault(".".join(tid), []).append(pid)
    results = sum(len(os.listdir(os.path.join(d, "spool", "results", s)))
                  for s in os.listdir(os.path.join(d, "spool", "results")))
    dup = {t: p for t, p in done.items() if len(p) > 1}
    bad = {t: p for t, p in dup.items() if len([x for x in p if x not in killed]) > 1}
    return {"tasks": N_TASKS, "results": results, "tasks_finished": len(done),
            "executions_started": started, "tasks_finished_twice": len(dup),
            "violations": len(bad), "violating_tasks": sorted(bad)[:10]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    d = args.dir or tempfile.mkdtemp(prefix="farm-chaos-")
    for sub in ("runs", "work"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    with open(os.path.join(d, "driver.py"), "w") as f:
        f.write(DRIVER)
    spool = os.path.join(d, "spool")
    kills = {"driver": 0, "pool": 0}
    killed: set[int] = set()
    print(f"chaos: {N_TASKS} tasks in {d}, seed {seed}, {args.seconds:g} s of kills",
          file=sys.stderr)
    end = time.monotonic() + args.seconds
    driver = start_driver(d)
    try:
        while time.monotonic() < end:
            time.sleep(rng.uniform(0.2, 2.0))
            if driver.poll() is not None:
                if driver.returncode == 0:
                    break  # the graph finished between two kills
                driver = start_driver(d)
                continue
            pools = pool_pids(spool)
            if pools and rng.random() < 0.4:
                manager, pids = rng.choice(pools)
                killed.update(pids)
                os.killpg(os.getpgid(manager), signal.SIGKILL)
                kills["pool"] += 1
            else:
                os.killpg(driver.pid, signal.SIGKILL)
                driver.wait()
                kills["driver"] += 1
                driver = start_driver(d)
        if driver.poll() is None:
            driver.wait(timeout=600)
        out = driver.stdout.read() if driver.stdout else ""
        if driver.returncode != 0 or "answer" not in out:
            driver = start_driver(d)  # the last one was killed: one more, undisturbed
            out, _ = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        subprocess.run([sys.executable, "-m", "farm", "cancel", spool, "--wait", "30"],
                       capture_output=True, timeout=60)
    answer = int(out.split()[-1]) if "answer" in out else None
    summary = {"seed": seed, "kills_driver": kills["driver"], "kills_pool": kills["pool"],
               "answer": answer, "answer_expected": ANSWER, **check(d, killed)}
    for k, v in summary.items():
        print(f"chaos: {k:22} {v}", file=sys.stderr)
    print(json.dumps(summary))
    ok = (answer == ANSWER and summary["results"] == N_TASKS
          and summary["tasks_finished"] == N_TASKS and summary["violations"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
