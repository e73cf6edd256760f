#!/usr/bin/env python
"""The measured Parsl peer: Parsl's HighThroughputExecutor on the benchmark's workloads.

run.py runs this file as a child process, one per run, with a hard timeout, and only when
`import parsl` works in its Python (see benchmarks/README.md):

    python benchmarks/parsl_peer.py --probe                     # prints Parsl's version
    python benchmarks/parsl_peer.py pool --sizes noop=2000,chain=200,bash=500 \
                                         --out RESULT.json --timeout S
    python benchmarks/parsl_peer.py submit --sizes submit=5000 --out RESULT.json ...

"pool" runs the no-op, chain and bash workloads one after another on one HTEX (a Parsl
start costs ~7 s here, so one start per round instead of three), after the warm-up task
that times load -> first result.  "submit" queues calls with no block at all.

The apps are defined here, in __main__, so Parsl pickles them by value (its workers cannot
import this file), as farm's children do with run.py's apps.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

import parsl
from parsl import bash_app, python_app
from workloads import Deadline, chain, first_result, submission, throughput

WORKLOADS = ("pool", "submit")


@python_app
def noop():
    return None


@python_app
def hop(prev=None):
    return None


@bash_app
def true_cmd():
    return "true"


def config(blocks: int):
    """HTEX as farm's runs are set up: 2 workers in one local block, workers connecting on
    the loopback address; Parsl's other options at their defaults (logging included)."""
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider
    return Config(executors=[HighThroughputExecutor(
        label="htex", address="127.0.0.1", max_workers_per_node=2,
        provider=LocalProvider(init_blocks=blocks, min_blocks=0, max_blocks=blocks))])


def measure(workload: str, sizes: dict[str, int], deadline: Deadline, res: dict,
            out: str) -> None:
    """Run the workload, putting its figures in res (written to out after each part, so
    that a later hang loses nothing measured before it)."""
    t_load = time.perf_counter()
    # The submission workload runs with no block at all: the tasks queue in the interchange.
    parsl.load(config(0 if workload == "submit" else 1))
    t_loaded = time.perf_counter()
    if workload == "submit":
        figures, _futs = submission(noop, sizes["submit"])
        res.update(load_s=t_loaded - t_load, **figures)
        return
    res.update(first_result(noop, t_load, t_loaded, deadline))  # also the warm-up
    res["parts"] = {}
    for part, size in sizes.items():
        if part == "noop":
            figures = throughput(noop, None, size, deadline)
        elif part == "bash":
            figures = throughput(true_cmd, 0, size, deadline)
        else:
            figures = chain(hop, size, deadline)
        res["parts"][part] = {"size": size, **figures}
        res["failed"] = res.get("failed", 0) + figures["failed"]
        _write(out, res)


def _write(out: str, res: dict) -> None:
    with open(out, "w") as f:
        json.dump(res, f)


def child(workload: str, sizes: dict[str, int], out: str, timeout: float) -> int:
    deadline = Deadline(timeout - 10)  # the parent's kill stays the last resort

    def alarm(signum, frame):
        raise TimeoutError(f"Parsl {workload} run overran its {timeout:.0f} s timeout")

    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(max(1, int(timeout - 5)))
    res: dict[str, Any] = {"workload": workload, "sizes": sizes, "ok": False,
                           "parsl": parsl.__version__}
    try:
        measure(workload, sizes, deadline, res, out)
        res["ok"] = res.get("failed", 0) == 0
    except BaseException as e:  # noqa: B036 - report anything (even a KeyboardInterrupt)
        why = str(e) or ("no result within the run's time limit"
                         if isinstance(e, TimeoutError) else "")
        res["error"] = f"{type(e).__name__}: {why}"
        traceback.print_exc()
    # Written before the cleanup: HTEX's cleanup can hang or abort (a ZeroMQ assertion),
    # and the figures must survive that.
    res["cleanup"] = "started"
    _write(out, res)
    if workload == "submit":
        # With tasks queued and no worker, Parsl's cleanup hangs in ZeroMQ's context.term():
        # leave without it.  run.py then kills the interchange (it carries the run's marker).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0 if res["ok"] else 1)
    try:
        t0 = time.perf_counter()
        parsl.dfk().cleanup()
        parsl.clear()
        res.update(cleanup="done", clear_s=time.perf_counter() - t0)
    except Exception as e:  # not loaded, or a failed cleanup: run.py kills the leftovers
        res["cleanup"] = f"failed: {type(e).__name__}: {e}"
    signal.alarm(0)
    _write(out, res)
    return 0 if res["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", nargs="?", choices=WORKLOADS)
    ap.add_argument("--probe", action="store_true", help="print Parsl's version and exit")
    ap.add_argument("--sizes", default="noop=100,chain=20,bash=50",
                    help="PART=N,...: the parts of the workload and their sizes")
    ap.add_argument("--out", default="parsl-result.json")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)
    if args.probe:
        from parsl.executors import HighThroughputExecutor  # noqa: F401 - must import too
        print(parsl.__version__)
        return 0
    if not args.workload:
        ap.error("give a workload or --probe")
    sizes = {k: int(v) for k, v in (x.split("=") for x in args.sizes.split(","))}
    return child(args.workload, sizes, args.out, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
