"""A three-stage bash pipeline whose stages are linked only by files.

    python examples/pipeline.py

1. generate: N tasks, each writes a block of integers (in descending order) to a file.
2. square:   one task per file: square every number and sort the result.
3. merge:    one task merges all the sorted files into one sorted file.

No stage is handed a value.  Each task names the files it writes in outputs=[File(...)];
``future.outputs[0]`` is a DataFuture for that file, and passing it in inputs=[...] of the
next stage makes that stage wait until the file exists.  The driver only builds the graph
and, at the end, reads the final file.

Work files go in ./pipeline.work/, next to the spool ./pipeline.farm (both in the current
directory).  Delete both to start from scratch.
"""

import os
import shlex
import sys

import farm
from farm import File, bash_app

N_FILES = 5
PER_FILE = 4
WORK = os.path.abspath("pipeline.work")


@bash_app
def generate(first, count, outputs=()):
    last = first + count - 1
    return f"seq {last} -1 {first} > {shlex.quote(str(outputs[0]))}"


@bash_app
def square(inputs=(), outputs=()):
    src, dst = (shlex.quote(str(f)) for f in (inputs[0], outputs[0]))
    return f"awk '{{ print $1 * $1 }}' {src} | sort -n > {dst}"


@bash_app
def merge(inputs=(), outputs=()):
    srcs = " ".join(shlex.quote(str(f)) for f in inputs)
    return f"sort -n -m {srcs} > {shlex.quote(str(outputs[0]))}"


def main():
    os.makedirs(WORK, exist_ok=True)

    def work_file(name):
        return File(os.path.join(WORK, name))

    with farm.load():
        raw = [generate(i * PER_FILE, PER_FILE, outputs=[work_file(f"raw-{i}.txt")])
               for i in range(N_FILES)]
        squared = [square(inputs=[g.outputs[0]], outputs=[work_file(f"squared-{i}.txt")])
                   for i, g in enumerate(raw)]
        merged = merge(inputs=[s.outputs[0] for s in squared],
                       outputs=[work_file("merged.txt")])

        final = merged.outputs[0].result()  # the File, once merge has written it
        print(f"stage 1 wrote {len(raw)} files, stage 2 squared each, stage 3 merged them "
              f"into {final.filepath}")

    with open(final) as f:
        got = [int(line) for line in f]
    want = [n * n for n in range(N_FILES * PER_FILE)]
    print(f"merged file: {len(got)} numbers: {' '.join(map(str, got))}")
    if got != want:
        sys.exit(f"pipeline: wrong content in {final}: expected {want}")
    print(f"pipeline: OK (the squares of 0..{N_FILES * PER_FILE - 1}, in order)")


if __name__ == "__main__":
    main()
