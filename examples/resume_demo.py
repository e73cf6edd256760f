"""Crash-proof resume: kill the driver half way, run the script again, lose nothing.

    python examples/resume_demo.py      # 1st run: kills itself with SIGKILL half way
    python examples/resume_demo.py      # 2nd run: resumes and collects every result

The script submits 20 tasks of about 0.2 s each.  Every execution of a task leaves a marker
file in ./resume_demo.work/runs/ (named by task number, worker pid and time), so a task
that ran twice would show up as two markers.  A marker ends in .started while its
execution runs and .done once it has finished.

First run (no ./resume_demo.work/first-run.json yet): once half of the results have
arrived, the driver writes that state file and kills itself with SIGKILL: no cleanup, no
atexit, nothing.  The pools it started are separate processes and do not notice; they
finish the queued tasks and leave the results in the spool ./resume_demo.farm.

Second run (the state file exists): the same calls give the same task keys, so farm
finds the tasks in the spool instead of submitting them again.  Tasks that are done
resolve at once; the rest (if the old pools are still at it) resolve when their results
land.  The script then counts the markers and checks that no task finished twice.

Later runs behave like the second one.  To start over, delete ./resume_demo.farm and
./resume_demo.work.  Pools left behind by the killed driver exit on their own after their
idle timeout (60 s by default).
"""

import json
import os
import signal
import sys
import time
from concurrent.futures import as_completed

import farm
from farm import python_app

N_TASKS = 20
WORK = os.path.abspath("resume_demo.work")
RUNS = os.path.join(WORK, "runs")
STATE = os.path.join(WORK, "first-run.json")


@python_app
def slow_square(i, runs_dir):
    import os
    import time
    # One marker per execution: made when it starts (NAME.started) and renamed when it
    # finishes (NAME.done), so an execution cut short by a dying worker shows too.
    marker = os.path.join(runs_dir, f"task{i:02d}-pid{os.getpid()}-{time.time_ns()}")
    with open(marker + ".started", "x"):
        pass
    time.sleep(0.2)
    os.rename(marker + ".started", marker + ".done")
    return i * i


def executions():
    """task number -> [(start time in ns, finished?)] for each execution, from the markers."""
    runs: dict[int, list[tuple[int, bool]]] = {}
    for name in os.listdir(RUNS):
        stem, _, state = name.partition(".")
        task, _pid, t_ns = stem.split("-")
        runs.setdefault(int(task[len("task"):]), []).append((int(t_ns), state == "done"))
    return runs


def first_run(futures):
    done = 0
    for fut in as_completed(futures):
        fut.result()
        done += 1
        if done == N_TASKS // 2:
            break
    with open(STATE, "w") as f:
        json.dump({"collected": done, "of": N_TASKS, "killed_at": time.time()}, f)
    print(f"first run: {done} of {N_TASKS} results are in; the driver now kills itself "
          f"(SIGKILL). Run the script again to collect the rest.", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def later_run(futures, started_ns, already_done):
    with open(STATE) as f:
        state = json.load(f)
    results = [fut.result() for fut in futures]
    print(f"first run: collected {state['collected']} of {state['of']} results, "
          f"then was killed")
    print(f"this run: {already_done} of {N_TASKS} tasks were already done when resubmitted, "
          f"{N_TASKS - already_done} were still queued or running")

    runs = executions()
    starts = [t for execs in runs.values() for t, _ in execs]
    before = sum(1 for t in starts if t < started_ns)
    finished = {i: sum(done for _, done in execs) for i, execs in runs.items()}
    print(f"executions recorded: {len(starts)} for {len(runs)} tasks "
          f"({before} started before this run, {len(starts) - before} during it)")
    print(f"interrupted executions (re-run by farm): {len(starts) - sum(finished.values())}")
    twice = sorted(i for i, n in finished.items() if n > 1)
    print(f"tasks that finished more than once (re-executed): {len(twice)}")

    problems = []
    if results != [i * i for i in range(N_TASKS)]:
        problems.append(f"wrong results {results}")
    if twice:
        problems.append(f"tasks ran more than once: {twice}")
    never = sorted(i for i in range(N_TASKS) if not finished.get(i))
    if never:
        problems.append(f"tasks with no finished execution recorded: {never}")
    if problems:
        sys.exit("resume_demo: " + "; ".join(problems))
    print(f"resume_demo: OK (all {N_TASKS} results collected, no finished task ran twice)")


def main():
    os.makedirs(RUNS, exist_ok=True)
    resuming = os.path.exists(STATE)
    started_ns = time.time_ns()
    with farm.load():
        futures = [slow_square(i, RUNS) for i in range(N_TASKS)]
        # Once the calls are written, those whose result is already in the spool are done.
        farm.flush()
        already_done = sum(fut.done() for fut in futures)
        if resuming:
            later_run(futures, started_ns, already_done)
        else:
            first_run(futures)


if __name__ == "__main__":
    main()
