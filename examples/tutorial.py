"""The script of docs/tutorial.md: count the long words of a few text files.

    python examples/tutorial.py

1. words: one bash task per text file splits it into one word per line (a file out).
2. count_long: one python task per word file counts the words of LONG letters or more.
3. total: one python task adds the counts up.

The texts are written to ./tutorial.work/ and the spool is tutorial.farm beside this script.
Run it again: nothing runs (every task is found in the spool).  Change LONG and run it
again: the count_long and total tasks run, the words tasks do not (they do not read LONG).
"""

import os
import shlex
import sys

import farm
from farm import AUTO_LOGNAME, File, bash_app, python_app

LONG = 6  # a word of this many letters or more is long

TEXTS = [
    "the driver writes tasks into a spool directory on shared scratch",
    "pools claim tasks by renaming files and publish each result once",
    "a killed driver loses nothing because the spool holds the whole graph",
    "compute nodes never open a connection back to the login node",
]


@bash_app
def words(text, outputs=(), stderr=AUTO_LOGNAME):
    """Split a text file into one word per line."""
    src, dst = shlex.quote(str(text)), shlex.quote(str(outputs[0]))
    return f"tr -s ' ' '\\n' < {src} > {dst}"


@python_app
def count_long(inputs=()):
    """How many words of the file have LONG letters or more."""
    with open(inputs[0]) as f:
        return sum(1 for word in f if len(word.strip()) >= LONG)


@python_app
def total(*counts):
    return sum(counts)


def main():
    work = os.path.abspath("tutorial.work")
    os.makedirs(work, exist_ok=True)
    with farm.load():
        counts = []
        for i, text in enumerate(TEXTS):
            path = os.path.join(work, f"text{i}.txt")
            with open(path, "w") as f:
                f.write(text + "\n")
            w = words(path, outputs=[File(os.path.join(work, f"words{i}.txt"))])
            counts.append(count_long(inputs=[w.outputs[0]]))
        got = total(*counts).result()
    print(f"words of {LONG} letters or more: {got}")
    expected = sum(len(word) >= LONG for text in TEXTS for word in text.split())
    if got != expected:
        sys.exit(f"wrong answer: {got}, expected {expected}")


if __name__ == "__main__":
    main()
