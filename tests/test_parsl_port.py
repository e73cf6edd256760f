"""A script in the style of Parsl's tutorial runs with only its imports and config changed:
`import farm as parsl`, farm's names for the apps and File, SpoolExecutor for HTEX."""

from __future__ import annotations

import textwrap

from tests.conftest import about_pi, run_script

TUTORIAL = textwrap.dedent('''
    import os
    import farm as parsl                                  # was: import parsl
    from farm import python_app, bash_app, File           # was: from parsl.app.app ...
    from farm.config import Config                        # was: from parsl.config ...
    from farm.executors import SpoolExecutor              # was: HighThroughputExecutor
    from farm.providers import LocalProvider

    config = Config(executors=[SpoolExecutor(label="htex_local", max_workers_per_node=2,
                                             provider=LocalProvider(init_blocks=1,
                                                                    max_blocks=1))],
                    strategy=None)
    parsl.load(config)

    @bash_app
    def echo_hello(stdout="echo-hello.stdout", stderr="echo-hello.stderr"):
        return 'echo "Hello World!"'

    echo_hello().result()
    with open("echo-hello.stdout") as f:
        print(f.read().strip())

    @python_app
    def pi(num_points):
        from random import random
        inside = 0
        for i in range(num_points):
            x, y = random(), random()
            if x ** 2 + y ** 2 < 1:
                inside += 1
        return inside * 4 / num_points

    @python_app
    def mean(a, b, c):
        return (a + b + c) / 3

    a, b, c = pi(10 ** 5), pi(10 ** 5), pi(10 ** 5)
    print("pi is about", round(mean(a, b, c).result(), 1))

    @bash_app
    def generate(outputs=()):
        return "echo $(( RANDOM % (10 - 5 + 1 ) + 5 )) &> {}".format(outputs[0])

    @bash_app
    def concat(inputs=(), outputs=(), stdout="stdout.txt", stderr="stderr.txt"):
        return "cat {0} >> {1}".format(" ".join([i.filepath for i in inputs]), outputs[0])

    @python_app
    def total(inputs=()):
        total = 0
        with open(inputs[0].filepath, "r") as f:
            for line in f:
                total += int(line)
        return total

    output_files = []
    for i in range(5):
        output_files.append(generate(outputs=[File(os.path.join(os.getcwd(),
                                                                "random-%s.txt" % i))]))
    cc = concat(inputs=[i.outputs[0] for i in output_files],
                outputs=[File(os.path.join(os.getcwd(), "all.txt"))])
    t = total(inputs=[cc.outputs[0]])
    print("total", t.result())
    parsl.dfk().cleanup()
    parsl.clear()
''')


def test_tutorial_script_ports_by_changing_imports(tmp_path):
    script = tmp_path / "tutorial.py"
    script.write_text(TUTORIAL)
    r = run_script(script, tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Hello World!"
    assert about_pi(lines[1])
    total = int(lines[2].split()[1])
    assert 25 <= total <= 50  # five numbers in 5..10
    assert len((tmp_path / "all.txt").read_text().split()) == 5
    assert "ignores these Parsl Config options: ['strategy']" in r.stderr
