"""Remote tracebacks name the user's file and show the line that raised, whatever cloudpickle
does with code file names (3.1.3 writes "<dynamic-code>"), also on a node without the file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback

import pytest

import farm
from farm import python_app, serialize
from tests.conftest import run_script, spool_config

T = 60

SCRIPT = '''\
import os, sys, traceback
import farm
from farm import python_app
from farm.executors import SpoolExecutor
from farm.providers import LocalProvider


def helper(x):
    raise ValueError(f"helper says no to {x}")


@python_app
def boom(x):
    return helper(x) + 1


@python_app
def apply(f, x):
    return f(x)


ex = SpoolExecutor(spool=sys.argv[1], provider=LocalProvider(init_blocks=1, max_blocks=1),
                   max_workers_per_node=1, idle_timeout=5)
with farm.load(farm.Config(executors=[ex])):
    os.unlink(__file__)  # from here on, no process can read this script
    for fut in (boom(3), apply(lambda v: 1 / v, 0)):
        try:
            fut.result(60)
        except Exception as e:
            print("".join(traceback.format_exception(e)))
            print("=" * 20)
'''


def _frame(path, line: int, func: str) -> str:
    return f'File "{path}", line {line}, in {func}'


def test_traceback_from_a_pool_that_cannot_read_the_script(tmp_path):
    script = tmp_path / "gone.py"
    script.write_text(SCRIPT)
    lines = SCRIPT.splitlines()
    r = run_script(script, tmp_path, str(tmp_path / "spool"), timeout=120)
    assert r.returncode == 0, r.stderr
    assert not script.exists()
    boom_tb, lambda_tb = r.stdout.split("=" * 20)[:2]
    # the app's frame and the helper's, each with its source line, under the real file name
    for func, text in (("boom", "return helper(x) + 1"),
                       ("helper", 'raise ValueError(f"helper says no to {x}")')):
        n = next(i for i, s in enumerate(lines, 1) if s.strip() == text)
        assert _frame(script, n, func) in boom_tb, boom_tb
        assert text in boom_tb
    # a lambda passed as an argument (pickled with the arguments, not as an app)
    n = next(i for i, s in enumerate(lines, 1) if "lambda v: 1 / v" in s)
    assert _frame(script, n, "<lambda>") in lambda_tb, lambda_tb
    assert "ZeroDivisionError" in lambda_tb
    assert "<dynamic-code>" not in r.stdout


@python_app
def nested_boom(n):
    def inner(k):
        raise KeyError(f"inner {k}")
    return inner(n)


def test_traceback_of_a_nested_function_on_local_pools(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "spool", workers=1))
    with pytest.raises(KeyError) as info:
        nested_boom(7).result(T)
    text = "".join(traceback.format_exception(info.value))
    assert _frame(__file__, inner_line(), "inner") in text, text
    assert 'raise KeyError(f"inner {k}")' in text


def inner_line() -> int:
    code = nested_boom.func.__code__
    inner = next(c for c in code.co_consts if hasattr(c, "co_name") and c.co_name == "inner")
    return inner.co_firstlineno + 1


def test_loaded_code_carries_its_file_and_source_to_a_process_without_it(tmp_path):
    # dumps in one process, loads in another where the defining file is gone
    src = tmp_path / "defs.py"
    src.write_text(textwrap.dedent('''\
        def f(x):
            return [x][x]  # IndexError here
        '''))
    blob = tmp_path / "blob"
    maker = (f"import runpy; from farm import serialize; g = runpy.run_path({str(src)!r}); "
             f"open({str(blob)!r}, 'wb').write(serialize.dumps(g['f']))")
    subprocess.run([sys.executable, "-c", maker], check=True, timeout=60)
    src.unlink()
    user = ("import sys, traceback; from farm import serialize; "
            f"f = serialize.loads(open({str(blob)!r}, 'rb').read())\n"
            "try:\n    f(5)\nexcept IndexError:\n    traceback.print_exc()")
    r = subprocess.run([sys.executable, "-c", user], capture_output=True, text=True,
                       timeout=60)
    assert _frame(src, 2, "f") in r.stderr, r.stderr
    assert "return [x][x]  # IndexError here" in r.stderr


def test_pickles_are_deterministic_and_plain_objects_untouched():
    def f(x):
        return x + 1
    assert serialize.dumps(f) == serialize.dumps(f)
    assert serialize.loads(serialize.dumps(f))(1) == 2
    assert serialize.loads(serialize.dumps({"a": (1, 2.5, "s")})) == {"a": (1, 2.5, "s")}
