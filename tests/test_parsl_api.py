"""Parsl's programming interface under farm, checked against what Parsl documents: its import
paths, future lifting, DependencyError and JoinError, the kernel's options (exit_mode,
dependency resolvers, std_autopath), standard streams, and errors for what farm lacks."""

from __future__ import annotations

import concurrent.futures as cf
import importlib
import logging
import os
import warnings

import pytest

import farm
from farm import AUTO_LOGNAME, bash_app, join_app, python_app
from farm.executors import ThreadPoolExecutor
from tests.conftest import spool_config

T = 60


def threads(**config):
    return farm.Config(executors=[ThreadPoolExecutor(max_threads=4)], **config)


@pytest.fixture
def loaded_threads(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield farm.load(threads(run_dir=str(tmp_path)))


# -- 1. Parsl's import paths ---------------------------------------------------------------------

PATHS = {
    "farm.app.app": ["python_app", "bash_app", "join_app"],
    "farm.app.errors": ["BashExitFailure", "AppTimeout", "MissingOutputs", "BadStdStreamFile",
                        "AppException", "ParslError"],
    "farm.app.futures": ["DataFuture"],
    "farm.config": ["Config"],
    "farm.data_provider.files": ["File"],
    "farm.dataflow.errors": ["DependencyError", "JoinError", "BadCheckpoint"],
    "farm.dataflow.memoization": ["id_for_memo", "BasicMemoizer"],
    "farm.dataflow.dependency_resolvers": ["DEEP_DEPENDENCY_RESOLVER",
                                           "SHALLOW_DEPENDENCY_RESOLVER"],
    "farm.errors": ["NoDataFlowKernelError", "ConfigurationError"],
    "farm.executors": ["HighThroughputExecutor", "ThreadPoolExecutor"],
    "farm.providers": ["LocalProvider", "SlurmProvider"],
    "farm.launchers": ["SrunLauncher", "SimpleLauncher", "SingleNodeLauncher",
                       "MpiExecLauncher"],
    "farm.addresses": ["address_by_interface", "address_by_hostname"],
    "farm.channels": ["LocalChannel"],
    "farm.utils": ["get_all_checkpoints", "get_last_checkpoint"],
    "farm.concurrent": ["FarmPoolExecutor", "ParslPoolExecutor"],
    "farm": ["python_app", "bash_app", "join_app", "load", "clear", "dfk", "AUTO_LOGNAME",
             "File", "set_stream_logger", "set_file_logger", "wait_for_current_tasks",
             "HighThroughputExecutor", "ThreadPoolExecutor"],
}


@pytest.mark.parametrize("module", sorted(PATHS))
def test_parsl_import_paths_under_farm(module):
    mod = importlib.import_module(module)
    missing = [n for n in PATHS[module] if not hasattr(mod, n)]
    assert not missing, f"{module} lacks {missing}"


def test_the_paths_are_farms_own_objects_not_copies():
    from farm.app.app import python_app as p
    from farm.app.errors import BashExitFailure
    from farm.app.futures import DataFuture
    from farm.data_provider.files import File
    from farm.dataflow.errors import DependencyError
    assert p is farm.python_app and File is farm.File
    assert BashExitFailure is farm.errors.BashExitFailure
    assert DependencyError is farm.errors.DependencyError
    assert DataFuture is farm.DataFuture


@pytest.mark.parametrize("module, name, have", [
    ("farm.providers", "PBSProProvider", "LocalProvider, SlurmProvider"),
    ("farm.executors", "WorkQueueExecutor", "HighThroughputExecutor"),
    ("farm.launchers", "AprunLauncher", "SrunLauncher"),
])
def test_what_farm_lacks_is_a_clear_import_error(module, name, have):
    with pytest.raises(ImportError, match=f"farm has no .*{name}.*supports.*{have}"):
        exec(f"from {module} import {name}", {})
    with pytest.raises(farm.errors.ConfigError):
        getattr(importlib.import_module(module), name)
    with pytest.raises(AttributeError):  # (other names: the usual error)
        _ = importlib.import_module(module).NoSuchThing


def test_htex_maps_its_options_and_warns_once_about_the_rest():
    from farm.addresses import address_by_interface
    from farm.executors import HighThroughputExecutor, SpoolExecutor
    from farm.providers import LocalProvider
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ex = HighThroughputExecutor(label="htex", max_workers=3, cores_per_worker=2,
                                    mem_per_worker=1.5, available_accelerators=2,
                                    cpu_affinity="block", worker_debug=True,
                                    address=address_by_interface("no-such-if0"),
                                    worker_port_range=(1, 2), encrypted=True,
                                    provider=LocalProvider(init_blocks=1, max_blocks=1))
    assert isinstance(ex, SpoolExecutor) and ex.label == "htex"
    assert ex.workers == 3 and ex.cores_per_worker == 2 and ex.mem_per_worker == 1.5
    assert ex.accelerators == ["0", "1"] and ex.cpu_affinity == "block"
    opts = ex.pool_options()
    assert opts["debug"] is True and opts["workers"] == 3
    texts = [str(w.message) for w in caught]
    assert len(texts) == 1, texts
    assert "address, encrypted, worker_port_range" in texts[0]
    assert HighThroughputExecutor(max_workers_per_node=2, max_workers=5).workers == 2
    with pytest.raises(farm.errors.ConfigError, match="did you mean max_workers_per_node"):
        HighThroughputExecutor(max_workers_per_nod=2)


def test_worker_debug_starts_pools_with_debug_logging():
    from farm.executors.scaling import pool_command
    from farm.spool.layout import Paths

    class Where(Paths):
        def __init__(self):
            self.path = "/s"

    assert " -m farm -v pool /s " in pool_command(Where(), "b1", "py", {"debug": True})
    assert " -m farm pool /s " in pool_command(Where(), "b1", "py", {"debug": False})


def test_parsl_provider_and_launcher_options_are_accepted():
    from farm.channels import LocalChannel
    from farm.launchers import MpiExecLauncher, SimpleLauncher, SingleNodeLauncher, SrunLauncher
    from farm.providers import LocalProvider, SlurmProvider
    with pytest.warns(UserWarning, match="LocalProvider options: channel"):
        LocalProvider(channel=LocalChannel(script_dir="."), nodes_per_block=1, cmd_timeout=120)
    p = SlurmProvider("regular", nodes_per_block=2, scheduler_options="#SBATCH -C haswell",
                      worker_init="true", launcher=SrunLauncher(overrides="-c 64"),
                      walltime="00:10:00", cmd_timeout=120)
    assert p.partition == "regular" and p.nodes_per_block == 2
    SimpleLauncher(debug=False)
    SingleNodeLauncher(debug=True, fail_on_any=True)
    cmd = MpiExecLauncher(bind_cmd="--bind-to", overrides="-x")("farm pool", 2, 3)
    assert cmd.startswith("mpiexec -n 6 -ppn 2 ") and cmd.endswith("--bind-to none -x farm pool")
    assert "--bind-to" not in MpiExecLauncher()("farm pool", 1, 1)


def test_thread_pool_executor_takes_parsls_options(tmp_path):
    with pytest.warns(UserWarning, match="ThreadPoolExecutor options: working_dir"):
        ex = ThreadPoolExecutor(label="local", max_threads=3, thread_name_prefix="mine",
                                working_dir=str(tmp_path))
    with farm.load(farm.Config(executors=[ex], run_dir=str(tmp_path))):
        @python_app
        def where():
            import threading
            return threading.current_thread().name

        assert where().result(T).startswith("mine")


def test_addresses_never_fail():
    from farm import addresses
    assert addresses.address_by_interface("bond0.144")
    assert addresses.address_by_hostname() and addresses.address_by_route()


# -- 3. futures as Parsl has them ----------------------------------------------------------------

@python_app
def pair(a, b):
    return {"a": a, "b": b, "both": [a, b]}


@python_app
def identity(x):
    return x


@python_app
def add(a, b):
    return a + b


@python_app
def fail(msg):
    raise ValueError(msg)


def test_future_lifting_items_and_attributes(loaded_threads):
    from farm.dataflow.futures import lift_attributes
    lift_attributes()  # (on for Parsl programs: test_parsl_run checks when)
    f = pair(1, 2)
    assert f["a"].result(T) == 1
    assert f["both"][1].result(T) == 2
    c = identity(complex(3, 4))
    assert c.real.result(T) == 3.0 and c.imag.result(T) == 4.0
    assert add(f["a"], f["b"]).result(T) == 3  # a lifted future is a dependency
    with pytest.raises(KeyError):
        f["nope"].result(T)
    with pytest.raises(AttributeError):
        _ = f._private  # (underscore names are not lifted)
    assert f["a"].tid == f"{f.tid}['a']"


def test_lifting_on_the_spool_executor(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "spool"))
    f = pair(5, 6)
    assert add(f["a"], f["both"][1]).result(T) == 11


def test_any_future_is_a_dependency(loaded_threads):
    plain = cf.Future()
    g = add(plain, 1)
    assert g.task_status() == "pending"
    plain.set_result(41)
    assert g.result(T) == 42
    assert g.task_status() == "exec_done"
    with cf.ThreadPoolExecutor(1) as pool:
        assert add(pool.submit(lambda: 2), 3).result(T) == 5
    bad = cf.Future()
    bad.set_exception(OSError("disk"))
    with pytest.raises(farm.errors.DependencyError):
        add(bad, 1).result(T)


def test_dependency_error_carries_the_exceptions_and_tids(loaded_threads):
    from farm.dataflow.errors import DependencyError
    a = fail("root")
    b = add(a, 1)
    c = add(b, 1)
    with pytest.raises(DependencyError) as info:
        c.result(T)
    e = info.value
    assert len(e.dependent_exceptions_tids) == 1
    exc, tid = e.dependent_exceptions_tids[0]
    assert isinstance(exc, DependencyError) and tid == b.task.label
    assert isinstance(e.__cause__, ValueError) and str(e.__cause__) == "root"
    assert a.task_status() == "failed" and c.task_status() == "dep_fail"


def test_dependency_error_on_the_spool_executor(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "spool"))
    a = fail("in a pool")
    b = add(a, 1)
    with pytest.raises(farm.errors.DependencyError) as info:
        b.result(T)
    exc, tid = info.value.dependent_exceptions_tids[0]
    assert tid == a.task.label and isinstance(exc, ValueError)


def test_a_join_app_whose_inner_tasks_fail_raises_join_error(loaded_threads):
    from farm.dataflow.errors import DependencyError, JoinError

    @join_app
    def fan(n):
        return [add(1, 1), fail("inner"), *(fail("more") for _ in range(n))]

    with pytest.raises(JoinError) as info:
        fan(1).result(T)
    e = info.value
    assert isinstance(e, DependencyError)  # (what farm raised before: still caught)
    assert len(e.dependent_exceptions_tids) == 2
    assert all(isinstance(x, ValueError) for x, _ in e.dependent_exceptions_tids)


def test_task_status_and_tid(loaded_threads):
    import threading
    gate = threading.Event()

    @python_app
    def wait_gate():
        gate.wait(T)
        return 1

    f = wait_gate()
    g = add(f, 1)
    assert f.task_status() == "launched" and g.task_status() == "pending"
    gate.set()
    assert g.result(T) == 2 and g.task_status() == "exec_done"
    assert isinstance(f.tid, str) and f.tid != g.tid


# -- 4. the kernel and Config --------------------------------------------------------------------

def test_cleanup_unloads_so_load_works_again(tmp_path):
    dfk = farm.load(threads(run_dir=str(tmp_path)))
    assert add(1, 1).result(T) == 2
    farm.dfk().cleanup()
    with pytest.raises(farm.errors.NoDataFlowKernelError):
        farm.dfk()
    farm.load(threads(run_dir=str(tmp_path)))
    assert farm.dfk() is not dfk and add(2, 2).result(T) == 4
    farm.clear()
    farm.clear()  # (nothing loaded: nothing to do)


def test_calling_an_app_with_nothing_loaded():
    with pytest.raises(farm.errors.NoDataFlowKernelError, match="farm.load"):
        add(1, 2)
    assert issubclass(farm.errors.NoDataFlowKernelError, farm.errors.ConfigError)


def test_exit_mode_wait_waits_and_skip_stays_loaded(tmp_path):
    import threading
    import time
    release = threading.Event()

    @python_app
    def slow():
        release.wait(T)
        return time.monotonic()

    threading.Timer(0.2, release.set).start()
    with farm.load(threads(exit_mode="wait")):
        f = slow()
    assert f.done() and f.result() > 0
    with pytest.raises(farm.errors.NoDataFlowKernelError):
        farm.dfk()
    with farm.load(threads(exit_mode="skip")) as dfk:
        pass
    assert farm.dfk() is dfk
    farm.clear()
    with pytest.raises(farm.errors.ConfigError, match="exit_mode"):
        threads(exit_mode="later")


def test_an_exception_in_the_block_goes_up_and_skips_the_wait(tmp_path):
    import threading
    never = threading.Event()

    @python_app
    def stuck():
        never.wait(5)

    with pytest.raises(RuntimeError, match="boom"):
        with farm.load(threads(exit_mode="wait")):
            stuck()
            raise RuntimeError("boom")
    never.set()
    with pytest.raises(farm.errors.NoDataFlowKernelError):
        farm.dfk()


@python_app
def total(values, table=None):
    out = sum(values)
    for k, v in (table or {}).items():
        out += k + v
    return out


def test_deep_dependency_resolver_finds_nested_futures(loaded_threads):
    farm.clear()
    from farm.dataflow.dependency_resolvers import DEEP_DEPENDENCY_RESOLVER
    farm.load(threads(dependency_resolver=DEEP_DEPENDENCY_RESOLVER))
    one, two = identity(1), identity(2)

    @python_app
    def shape(value):
        return value

    assert shape([one, (two, 3), {identity(4)}]).result(T) == [1, (2, 3), {4}]
    assert total([one, two], table={identity(10): identity(20)}).result(T) == 33
    with pytest.raises(farm.errors.DependencyError):
        total([fail("x")]).result(T)


def test_deep_resolver_with_the_spool_executor(tmp_path, monkeypatch):
    from farm.dataflow.dependency_resolvers import DEEP_DEPENDENCY_RESOLVER
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "spool", dependency_resolver=DEEP_DEPENDENCY_RESOLVER))
    a = identity(1)
    assert total([a, identity(2)], table={3: a}).result(T) == 7
    assert add(a, identity(5)).result(T) == 6  # (direct ones: wired in the spool)


def test_the_default_resolver_stays_shallow(loaded_threads):
    one = identity(1)
    one.result(T)

    @python_app
    def kind(values):
        return type(values[0]).__name__

    assert kind([one]).result(T) == "AppFuture"


def test_loggers(tmp_path):
    log = tmp_path / "logs" / "farm.log"
    logger = farm.set_file_logger(str(log), name="parsl", level=logging.INFO)
    assert logger.name == "farm"
    logging.getLogger("farm.test").info("hello file")
    stream = farm.set_stream_logger(name="farm.x", level=logging.WARNING)
    try:
        assert "hello file" in log.read_text()
        assert stream.name == "farm.x"
    finally:
        for lg in (logger, stream):
            for h in list(lg.handlers):
                lg.removeHandler(h)
                h.close()


# -- 7. standard streams -------------------------------------------------------------------------

@bash_app
def say(msg, label=None, stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME):
    return f"echo {msg}; echo err-{msg} >&2"


def test_auto_logname_names_the_app_and_the_label(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    farm.load(spool_config(tmp_path / "spool"))
    f = say("hi", label="first")
    g = say("ho")
    assert f.result(T) == 0 and g.result(T) == 0
    assert os.path.basename(f.stdout).startswith("say_first-") and f.stdout.endswith(".stdout")
    assert os.path.basename(g.stderr).startswith("say-") and g.stderr.endswith(".stderr")
    assert open(f.stdout).read() == "hi\n" and open(g.stderr).read() == "err-ho\n"


def test_std_autopath(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = []

    def where(record, stream):
        seen.append((record["func_name"], stream))
        return str(tmp_path / f"{record['func_name']}.{record['args'][0]}.{stream}")

    farm.load(threads(std_autopath=where))
    assert say("yo").result(T) == 0
    assert (tmp_path / "say.yo.stdout").read_text() == "yo\n"
    assert sorted(seen) == [("say", "stderr"), ("say", "stdout")]


@pytest.mark.parametrize("spec", [("out.txt", "r"), ("out.txt", "wb+x"), 42, ("a", "w", "x"),
                                  (None, "w")])
def test_a_bad_stream_spec_raises_bad_std_stream_file(loaded_threads, spec):
    from farm.app.errors import BadStdStreamFile
    with pytest.raises(BadStdStreamFile, match="stdout"):
        say("x", stdout=spec).result(T)


def test_stream_tuples_with_a_mode(loaded_threads, tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old\n")
    assert say("new", stdout=(str(out), "a")).result(T) == 0
    assert out.read_text() == "old\nnew\n"
    assert say("only", stdout=(out, "w")).result(T) == 0
    assert out.read_text() == "only\n"


# -- 5. memoization and checkpoints --------------------------------------------------------------

def counted(path):
    """A cache=True app that counts its runs in the file at path."""
    @python_app(cache=True, ignore_for_cache=["note"])
    def square(x, note=""):
        with open(path, "a") as f:
            f.write("run\n")
        return x * x

    return square


def runs(path) -> int:
    return len(open(path).read().split()) if os.path.exists(path) else 0


def test_cache_and_ignore_for_cache(loaded_threads, tmp_path):
    square = counted(tmp_path / "runs")
    a, b, c = square(3, note="a"), square(3, note="b"), square(4)
    assert a is b and (a.result(T), c.result(T)) == (9, 16)
    assert runs(tmp_path / "runs") == 2


def test_memoize_false_turns_caching_off(tmp_path, monkeypatch):
    from farm.dataflow.memoization import BasicMemoizer
    monkeypatch.chdir(tmp_path)
    farm.load(threads(memoizer=BasicMemoizer(memoize=False)))
    square = counted(tmp_path / "runs")
    assert square(3).result(T) == 9 and square(3).result(T) == 9
    assert runs(tmp_path / "runs") == 2


class Handle:
    """A user type that cannot be pickled (it holds a lock)."""

    def __init__(self, name):
        import threading
        self.name, self.lock = name, threading.Lock()


def test_id_for_memo_registry_and_the_unmemoizable_error(loaded_threads):
    from farm.dataflow.memoization import id_for_memo

    @python_app(cache=True)
    def named(h):
        return h.name

    with pytest.raises(ValueError, match="cannot memoize an argument of type "
                                         "tests.test_parsl_api.Handle.*id_for_memo"):
        named(Handle("x"))

    @id_for_memo.register(Handle)
    def _(h, output_ref=False):
        return h.name.encode()

    # (a singledispatch registry cannot drop a type: Handle stays registered, harmlessly)
    one, same, other = named(Handle("x")), named(Handle("x")), named(Handle("y"))
    assert one is same and one is not other
    assert (one.result(T), other.result(T)) == ("x", "y")
    assert id_for_memo(Handle("z")) == b"z" and isinstance(id_for_memo([1]), bytes)


def test_a_checkpoint_is_an_earlier_spool(tmp_path, monkeypatch):
    from farm.dataflow.memoization import BasicMemoizer
    from farm.utils import get_all_checkpoints, get_last_checkpoint
    monkeypatch.chdir(tmp_path)
    counter = tmp_path / "runs"
    square = counted(counter)
    assert get_last_checkpoint(str(tmp_path / "runinfo")) == []
    with farm.load(spool_config(tmp_path / "runinfo" / "first.farm")):
        assert square(5).result(T) == 25
        assert square(6).result(T) == 36
    assert runs(counter) == 2
    last = get_last_checkpoint(str(tmp_path / "runinfo"))
    assert last == [str(tmp_path / "runinfo" / "first.farm")]
    memo = BasicMemoizer(checkpoint_mode="task_exit", checkpoint_files=last)
    with farm.load(spool_config(tmp_path / "runinfo" / "second.farm", memoizer=memo)):
        again, new = square(5), square(7)
        assert again.result(T) == 25 and again.task_status() == "memo_done"
        assert new.result(T) == 49 and new.task_status() == "exec_done"
    assert runs(counter) == 3  # 5 was not run again
    assert get_all_checkpoints(str(tmp_path / "runinfo")) == [
        str(tmp_path / "runinfo" / "first.farm"), str(tmp_path / "runinfo" / "second.farm")]


def test_a_checkpoint_that_is_no_spool(tmp_path):
    from farm.dataflow.errors import BadCheckpoint
    with pytest.raises(BadCheckpoint, match="is not a farm spool"):
        threads(checkpoint_files=[str(tmp_path / "runinfo" / "000" / "checkpoint")])
    with pytest.raises(farm.errors.ConfigError, match="checkpoint_mode"):
        threads(checkpoint_mode="sometimes")


# -- 8. FarmPoolExecutor -------------------------------------------------------------------------

def test_farm_pool_executor_over_the_spool(tmp_path, monkeypatch):
    from farm.concurrent import FarmPoolExecutor, ParslPoolExecutor
    monkeypatch.chdir(tmp_path)
    assert ParslPoolExecutor is FarmPoolExecutor
    with FarmPoolExecutor(spool_config(tmp_path / "spool")) as pool:
        assert isinstance(pool, cf.Executor)
        assert pool.submit(pow, 2, 10).result(T) == 1024
        assert list(pool.map(lambda x: x * x, range(6), timeout=T)) == [0, 1, 4, 9, 16, 25]
        f = pool.submit(divmod, 7, 2)
        assert pool.submit(sum, f).result(T) == 4  # a future passed in: a dependency
        assert pool.get_app(pow) is pool.get_app(pow)
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(pow, 1, 1)
    with pytest.raises(farm.errors.NoDataFlowKernelError):
        farm.dfk()  # (the pool's kernel was its own: nothing was loaded)


def test_farm_pool_executor_on_a_loaded_kernel(loaded_threads):
    from farm.concurrent import FarmPoolExecutor
    pool = FarmPoolExecutor(dfk=farm.dfk())
    assert sorted(pool.map(abs, [-2, 1, -3])) == [1, 2, 3]
    pool.shutdown()
    assert add(1, 2).result(T) == 3  # the loaded kernel goes on
    with pytest.raises(farm.errors.ConfigError, match="one of them"):
        FarmPoolExecutor()


# -- 6. Files and staging ------------------------------------------------------------------------

@pytest.mark.parametrize("url, scheme, netloc, path, filename", [
    ("data/in.txt", "file", "", "data/in.txt", "in.txt"),
    ("file:///scratch/p/in.txt", "file", "", "/scratch/p/in.txt", "in.txt"),
    ("https://example.org/d/x.csv?v=2", "https", "example.org", "/d/x.csv", "x.csv"),
    ("http://h:8080/a.txt", "http", "h:8080", "/a.txt", "a.txt"),
    ("ftp://ftp.example.org/pub/f.gz", "ftp", "ftp.example.org", "/pub/f.gz", "f.gz"),
    ("globus://ddb59aef-6d04/home/jd/input.txt", "globus", "ddb59aef-6d04", "/home/jd/input.txt",
     "input.txt"),
])
def test_file_parses_urls_as_parsl_does(url, scheme, netloc, path, filename):
    from farm.data_provider.files import File
    f = File(url)
    assert (f.url, f.scheme, f.netloc, f.path, f.filename) == (url, scheme, netloc, path,
                                                               filename)
    assert f.local_path is None
    assert repr(f) == (f"<{File} at 0x{id(f):x} url={url} scheme={scheme} netloc={netloc} "
                       f"path={path} filename={filename}>")
    if scheme == "file":
        assert f.filepath == path == str(f) == os.fspath(f)
    else:
        with pytest.raises(ValueError, match="no local_path"):
            _ = f.filepath
        f.local_path = "/tmp/here"
        assert f.filepath == "/tmp/here" and "local_path=/tmp/here" in repr(f)
        assert f.cleancopy().local_path is None


class Server:
    """An HTTP server on loopback in a thread: serves BODY[path]; counts requests by path;
    FAIL[path] requests fail with 500 first."""

    def __init__(self):
        import http.server
        import threading
        self.body: dict[str, bytes] = {}
        self.fail: dict[str, int] = {}
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if server.fail.get(self.path, 0) > 0:
                    server.fail[self.path] -= 1
                    self.send_error(500)
                    return
                if self.path not in server.body:
                    self.send_error(404)
                    return
                data = server.body[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@python_app
def count_lines(inputs=()):
    with open(inputs[0]) as f:
        return inputs[0].filepath, len(f.read().splitlines())


def test_http_inputs_are_staged_by_the_driver_once_per_url(tmp_path, monkeypatch, server):
    from farm.dataflow import kernel
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(kernel, "STAGE_PAUSE", 0.01)  # (retry pause: short for the test)
    server.body["/data/lines.txt"] = b"a\nb\nc\n"
    server.fail["/data/lines.txt"] = 1  # the first try fails: retried
    url = server.url + "/data/lines.txt"
    spool = tmp_path / "spool"
    with farm.load(spool_config(spool)) as dfk:
        a = count_lines(inputs=[farm.File(url)])
        b = count_lines(inputs=[farm.File(url)])
        (path_a, n_a), (path_b, n_b) = a.result(T), b.result(T)
        assert n_a == n_b == 3 and path_a == path_b
        assert path_a.startswith(str(spool / "staged")) and path_a.endswith("/lines.txt")
        assert dfk.tally.submitted == 3  # two calls and one stage_in task
    assert server.hits["/data/lines.txt"] == 2  # one failure, one download: once per URL
    with farm.load(spool_config(spool)):  # the next run on the spool: downloaded already
        c = count_lines(inputs=[farm.File(url)], walltime=60)
        assert c.result(T)[1] == 3
    assert server.hits["/data/lines.txt"] == 2


def test_a_url_that_cannot_be_fetched_fails_its_dependents(loaded_threads, monkeypatch,
                                                           server):
    from farm.dataflow import kernel
    monkeypatch.setattr(kernel, "STAGE_PAUSE", 0.01)
    f = count_lines(inputs=[farm.File(server.url + "/missing.txt")])
    with pytest.raises(farm.errors.DependencyError, match="stage_in") as info:
        f.result(T)
    assert isinstance(info.value.__cause__, farm.errors.StagingError)
    assert "404" in str(info.value.__cause__)
    assert server.hits["/missing.txt"] == kernel.STAGE_ATTEMPTS


def test_schemes_farm_cannot_stage_are_an_error_at_call_time(loaded_threads):
    with pytest.raises(farm.errors.ConfigError, match="cannot stage globus://"):
        count_lines(inputs=[farm.File("globus://ep1/data/in.txt")])
    with pytest.raises(farm.errors.ConfigError, match="outputs to files"):
        count_lines(inputs=[], outputs=[farm.File("https://example.org/out.txt")])
