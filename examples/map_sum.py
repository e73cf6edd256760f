"""Map-sum: the same small sum computed by a python app and by a bash app, then reduced.

    python examples/map_sum.py

The items are every (a, b, c) with a, b, c in {0, 1}: 8 triples whose sums add up to 12.

- map, python: ``argsum(a, b, c)`` returns a + b + c to the driver (pickled).
- map, bash: ``argsum_bash(a, b, c)`` runs the helper program calc_sum.py (shipped next to
  this script) with bash; the sum is what the helper prints, in the stdout file farm names
  (stdout=AUTO_LOGNAME), and the future itself resolves to the exit code.
- reduce: a python app that takes the mapped futures as arguments.  It waits for them in
  the spool, not in the driver: the pool runs it as soon as the last map task is done.

The spool is ./map_sum.farm in the current directory.
"""

import os
import shlex
import sys

import farm
from farm import AUTO_LOGNAME, bash_app, python_app

HERE = os.path.dirname(os.path.abspath(__file__))
CALC_SUM = os.path.join(HERE, "calc_sum.py")
EXPECTED = 12


@python_app
def argsum(a, b, c):
    return a + b + c


@bash_app
def argsum_bash(a, b, c, stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME):
    # The same python that runs the pools runs the helper, by absolute path: the command
    # works whatever the current directory is.
    python, helper = shlex.quote(sys.executable), shlex.quote(CALC_SUM)
    return f"{python} {helper} -a {a} -b {b} -c {c}"


@python_app
def total(*parts):
    """Reduce: the mapped futures arrive here as their values."""
    return sum(parts)


@python_app
def total_of_outputs(paths, inputs=()):
    """Reduce for the bash map: inputs holds the bash futures (so this waits for them),
    paths their stdout files, each holding one number."""
    values = []
    for path in paths:
        with open(path) as f:
            values.append(int(f.read()))
    return sum(values)


def main():
    items = [(a, b, c) for a in (0, 1) for b in (0, 1) for c in (0, 1)]

    with farm.load():
        # Map phase: every call returns a future at once; the pool runs them in parallel.
        mapping = [argsum(*item) for item in items]
        bashing = [argsum_bash(*item) for item in items]

        # Reduce phase: hand the futures to another app.
        python_total = total(*mapping)
        bash_total = total_of_outputs([f.stdout for f in bashing], inputs=bashing)

        for item, fut in zip(items, mapping, strict=True):
            print(f"python: sum{item} = {fut.result()}")
        for item, fut in zip(items, bashing, strict=True):
            fut.result()  # the exit code (0); the sum is in the stdout file
            with open(fut.stdout) as f:
                print(f"bash:   sum{item} = {f.read().strip()}")

        totals = {"python": python_total.result(), "bash": bash_total.result()}

    ok = True
    for kind, value in totals.items():
        print(f"{kind} total: {value}")
        if value != EXPECTED:
            print(f"map_sum: the {kind} total is {value}, expected {EXPECTED}", file=sys.stderr)
            ok = False
    if not ok:
        sys.exit(1)
    print("map_sum: OK")


if __name__ == "__main__":
    main()
