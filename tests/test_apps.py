"""The Parsl programming model, on both executors (threads and a spool with real pools)."""

from __future__ import annotations

import os
import traceback

import pytest

import farm
from farm import AUTO_LOGNAME, File, bash_app, join_app, python_app
from farm.errors import (
    AppTimeout,
    BashExitFailure,
    ConfigError,
    DependencyError,
    MissingInputs,
    MissingOutputs,
)

T = 60  # seconds any single result may take


@python_app
def add(a, b=0):
    return a + b


@python_app
def total(*xs, inputs=()):
    return sum(xs) + sum(inputs)


@python_app
def boom(msg):
    raise ValueError(f"boom: {msg}")


@bash_app
def echo(msg, stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME):
    return f"echo {msg}; echo err-{msg} >&2"


@bash_app
def fail(code):
    return f"exit {code}"


@python_app(cache=True, ignore_for_cache=["note"])
def cached(x, note=""):
    import os
    return (x, os.getpid(), note)


def test_python_and_bash(loaded):
    assert add(1, 2).result(T) == 3
    f = echo("hi")
    assert f.result(T) == 0
    assert open(f.stdout).read() == "hi\n"
    assert open(f.stderr).read() == "err-hi\n"


def test_futures_as_args_kwargs_inputs(loaded):
    a, b = add(1, 1), add(2, 2)
    c = add(a, b=b)
    d = total(a, c, inputs=[b, add(10)])
    assert c.result(T) == 6
    assert d.result(T) == 2 + 6 + 4 + 10


def test_decorator_forms_and_repr(loaded):
    @python_app()
    def one():
        return 1

    f = one()
    assert f.result(T) == 1
    assert f.key in repr(f)[:30] or f.key[:8] in repr(f)
    assert "one-" in repr(f) and "finished" in repr(f)


def test_remote_exception_with_traceback(loaded):
    f = boom("x")
    with pytest.raises(ValueError, match="boom: x") as info:
        f.result(T)
    # the traceback printed in the driver shows the line that raised, wherever it ran
    text = "".join(traceback.format_exception(info.value))
    assert 'raise ValueError(f"boom: {msg}")' in text
    if loaded.kind == "spool":
        assert "raise ValueError" in str(info.value.__cause__)


def test_bash_exit_failure(loaded):
    with pytest.raises(BashExitFailure) as info:
        fail(3).result(T)
    assert info.value.exitcode == 3


def test_dependency_error_names_failed_dep(loaded):
    bad = boom("dep")
    after = add(bad, 1)
    with pytest.raises(DependencyError) as info:
        after.result(T)
    assert bad.task.label in str(info.value)
    assert after.task.label in str(info.value)


def test_file_outputs_and_datafutures(loaded, tmp_path):
    @bash_app
    def make(n, outputs=()):
        return f"seq {n} > {outputs[0]}"

    @bash_app
    def double(inputs=(), outputs=()):
        return f"awk '{{print 2*$1}}' {inputs[0]} > {outputs[0]}"

    @python_app
    def read_sum(inputs=()):
        return sum(int(x) for x in open(inputs[0]))

    m = make(4, outputs=[File(tmp_path / "a.txt")])
    d = double(inputs=[m.outputs[0]], outputs=[File(str(tmp_path / "b.txt"))])
    s = read_sum(inputs=[d.outputs[0]])
    assert s.result(T) == 20
    assert d.outputs[0].result(T).filepath == str(tmp_path / "b.txt")
    assert os.fspath(m.outputs[0]) == str(tmp_path / "a.txt")


def test_missing_outputs_and_inputs(loaded, tmp_path):
    @bash_app
    def lazy(outputs=()):
        return "true"

    with pytest.raises(MissingOutputs):
        lazy(outputs=[File(tmp_path / "never")]).result(T)
    with pytest.raises(MissingInputs) as info:
        echo("x", inputs=[File(tmp_path / "absent.txt")]).result(T)
    assert "absent.txt" in str(info.value)


def test_walltime(loaded):
    @bash_app
    def slow(walltime=0.5):
        return "sleep 30"

    with pytest.raises(AppTimeout):
        slow().result(T)


def test_python_walltime_in_pool(tmp_path, monkeypatch):
    from tests.conftest import spool_config
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "s"))

    @python_app
    def spin(walltime=0.3):
        import time
        time.sleep(30)

    with pytest.raises(AppTimeout):
        spin().result(T)


def test_join_app(loaded):
    @join_app
    def fan(n):
        return [add(i, 1) for i in range(n)]

    @join_app
    def single(x):
        return add(x, 100)

    assert fan(4).result(T) == [1, 2, 3, 4]
    assert add(single(1), 1).result(T) == 102


def test_cache_and_ignore_for_cache(loaded):
    a, b = cached(1, note="x"), cached(1, note="y")
    assert a is b  # identical call (ignoring note): one task
    assert a.result(T)[0] == 1
    assert cached(2).key != a.key


def test_identical_calls_without_cache_are_distinct(loaded):
    a, b = add(5), add(5)
    assert a.key != b.key
    assert a.result(T) == b.result(T) == 5


def test_retries(tmp_path, monkeypatch, request):
    for kind in ("threads", "spool"):
        farm.clear()
        counter = tmp_path / f"count-{kind}"
        if kind == "threads":
            from farm.executors import ThreadPoolExecutor
            cfg = farm.Config(executors=[ThreadPoolExecutor()], retries=2)
        else:
            from tests.conftest import spool_config
            cfg = spool_config(tmp_path / "s", retries=2)
        farm.load(cfg)

        @python_app
        def flaky(path, fail_times):
            n = int(open(path).read()) if os.path.exists(path) else 0
            open(path, "w").write(str(n + 1))
            if n < fail_times:
                raise RuntimeError(f"attempt {n}")
            return n

        assert flaky(str(counter), 2).result(T) == 2
        with pytest.raises(RuntimeError, match="attempt 2"):
            flaky(str(tmp_path / f"other-{kind}"), 5).result(T)


def test_retry_handler(tmp_path):
    from tests.conftest import spool_config

    def costly(exc, info):
        return 10.0 if isinstance(exc, KeyError) else 1.0

    farm.load(spool_config(tmp_path / "s", retries=3, retry_handler=costly))

    @python_app
    def raise_key(path):
        with open(path, "a") as f:
            f.write("x")
        raise KeyError("no retry for this")

    marker = tmp_path / "runs"
    with pytest.raises(KeyError):
        raise_key(str(marker)).result(T)
    assert marker.read_text() == "x"  # cost 10 > retries 3: not retried


def test_executor_labels(tmp_path):
    from farm.executors import ThreadPoolExecutor
    farm.load(farm.Config(executors=[ThreadPoolExecutor(label="a"),
                                     ThreadPoolExecutor(label="b")]))

    @python_app(executors=["b"])
    def where():
        import threading
        return threading.current_thread().name

    @python_app(executors=["nope"])
    def nowhere():
        return 1

    assert "farm-b" in where().result(T)
    with pytest.raises(ConfigError, match="nope"):
        nowhere()


def test_load_errors():
    @python_app
    def f():
        return 1

    with pytest.raises(ConfigError, match="farm.load"):
        f()
    from farm.executors import ThreadPoolExecutor
    farm.load(farm.Config(executors=[ThreadPoolExecutor()]))
    with pytest.raises(ConfigError, match="already loaded"):
        farm.load(farm.Config(executors=[ThreadPoolExecutor()]))


def test_wait_for_current_tasks(loaded):
    fs = [add(i, i) for i in range(20)]
    farm.wait_for_current_tasks()
    assert all(f.done() for f in fs)


def test_context_manager(tmp_path):
    from farm.executors import ThreadPoolExecutor
    with farm.load(farm.Config(executors=[ThreadPoolExecutor()])):
        assert add(2, 2).result(T) == 4
    with pytest.raises(ConfigError):
        farm.dfk()


def test_walltime_kills_the_whole_process_group(loaded, tmp_path):
    import psutil

    from tests.conftest import eventually

    @bash_app
    def spawner(pidfile, walltime=1):
        return f"sleep 60 & echo $! > {pidfile}; sleep 60"

    pidfile = tmp_path / "child.pid"
    with pytest.raises(AppTimeout):
        spawner(str(pidfile)).result(T)
    child = int(pidfile.read_text())

    def gone():
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    eventually(gone, 10, f"the background child {child} to be killed")
