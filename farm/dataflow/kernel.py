"""The DataFlowKernel: turns app calls into tasks, wires futures into dependencies, and
hands tasks to executors.

Dependencies between tasks of one SpoolExecutor are left to the spool (the graph advances
without the driver).  Anything else a task waits on (a join app, a task of another
executor) is awaited here and passed in as a value.
"""

from __future__ import annotations

import atexit
import hashlib
import inspect
import os
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor as _Threads
from typing import TYPE_CHECKING, Any

from farm import requests
from farm.data import AUTO_LOGNAME, STAGED_SCHEMES, DepRef, File, fetch_url
from farm.dataflow import progress
from farm.dataflow.dependency_resolvers import SHALLOW_DEPENDENCY_RESOLVER, DependencyResolver
from farm.dataflow.executor import Executor
from farm.dataflow.futures import AppFuture, DataFuture, failures, when_all_done
from farm.dataflow.keys import call_digest, task_key
from farm.dataflow.progress import Progress, Tally
from farm.dataflow.task import TaskRecord
from farm.errors import (
    BadStdStreamFile,
    ConfigError,
    DependencyError,
    JoinError,
    StagingError,
)

if TYPE_CHECKING:  # (both are above the kernel: they use it)
    from farm.apps import App
    from farm.config import Config

SPECIAL = ("stdout", "stderr", "walltime", "inputs", "outputs")
# The modes a stdout=(path, mode) or stderr=(path, mode) may have: they write.
STREAM_MODES = {"w", "a", "x", "w+", "a+", "x+"}
STAGE_ATTEMPTS = 3  # tries to download an input URL
STAGE_PAUSE = 1.0  # seconds before the second try (twice that before the third)
_NO_KWARGS: dict = {}  # the kwargs of every call without any (shared: never mutated)


class _Cwd:
    """os.getcwd() for every app call, without a system call per app call.

    A system call releases the GIL: with the executor's writer thread busy, getting it back
    costs tens of microseconds, most of an app call.  The directory changes only through
    os.chdir/os.fchdir, which raise the audit event "os.chdir" (before they change it):
    after one, os.getcwd() is read again on every call for SETTLE seconds (the chdir may
    still be under way when the first re-read happens), then cached again.  Without the
    audit hook (another hook refused it), every call reads it."""

    SETTLE = 1.0
    hooked = False
    changed_at = 0.0  # time.monotonic() of the last "os.chdir" event
    seen = -1.0  # changed_at when `cwd` was read (SETTLE after it): still valid if equal
    cwd = ""
    lock = threading.Lock()

    @classmethod
    def _audit(cls, event: str, args: tuple) -> None:
        if event == "os.chdir":
            cls.changed_at = time.monotonic()

    @classmethod
    def install(cls) -> None:
        with cls.lock:
            if cls.hooked:
                return
            try:
                sys.addaudithook(cls._audit)  # (for the life of the process: it cannot go)
            except Exception:
                return
            cls.hooked = True

    @classmethod
    def get(cls) -> str:
        at = cls.changed_at
        if at == cls.seen and cls.hooked:
            return cls.cwd
        cwd = os.getcwd()
        if cwd != cls.cwd:
            cls.cwd = cwd
        if time.monotonic() - at >= cls.SETTLE:
            cls.seen = at
        return cls.cwd


_opts_cache: tuple[str, dict] = ("", {})  # (cwd, the opts of a call with no special kwargs)


def _plain_opts(cwd: str) -> dict:
    """The opts of a call without walltime, inputs, outputs or streams: one dict per working
    directory, shared by all such calls (read-only).  (Tuples: the task header is JSON,
    where they are the lists they stand for.)"""
    global _opts_cache
    last = _opts_cache
    if last[0] == cwd:
        return last[1]
    opts = {"cwd": cwd, "outputs": (), "inputs": ()}
    _opts_cache = (cwd, opts)
    return opts


class DataFlowKernel:
    """Created by ``farm.load(config)``; usable as a context manager (cleanup on exit)."""

    def __init__(self, config: Config):
        self.config = config
        self.executors: dict[str, Executor] = {}
        for ex in config.executors:
            if ex.label in self.executors:
                raise ConfigError(f"two executors are labelled {ex.label!r}; labels must differ")
            self.executors[ex.label] = ex
        if not self.executors:
            raise ConfigError("Config(executors=[...]) is empty; give at least one executor")
        self._lock = threading.Lock()
        # Identical calls seen so far, by the first 8 bytes of their digest (an int is half
        # the size of the digest; two digests sharing them only shift an ordinal).
        self._ordinals: Counter[int] = Counter()
        self._cached: dict[str, AppFuture] = {}
        # Every future not known to be done, for wait_for_current_tasks: weak references
        # (a future nobody holds any more is freed with its result, as before), the dead
        # and done ones dropped whenever the list has doubled (no per-future callback).
        self._live: list[weakref.ref[AppFuture]] = []
        self._live_max = 1024
        _Cwd.install()
        self._joins = _Threads(max_workers=4, thread_name_prefix="farm-join")
        self._closed = False
        # Where futures are looked for in the arguments (dependency_resolvers.py): the
        # default, shallow, is the kernel's own fast path; any other is asked as well.
        self.resolver: DependencyResolver = (getattr(config, "dependency_resolver", None)
                                             or SHALLOW_DEPENDENCY_RESOLVER)
        self._deep = self.resolver is not SHALLOW_DEPENDENCY_RESOLVER
        self._stages: dict[str, AppFuture] = {}  # URL -> the future of its download
        # key -> (value,) if an earlier spool named in Config(checkpoint_files=) has the
        # result of a cached call (farm.checkpoints), else None.
        self._memo: Callable[[str], tuple[Any] | None] | None = getattr(
            config, "memo_lookup", None)
        # Called once cleanup is done (farm.load sets it: the kernel is no longer loaded,
        # so that farm.load() works again).
        self.on_exit: Callable[[], None] | None = None
        for ex in self.executors.values():
            ex.start(self)
        self.tally = Tally()
        self.progress: Progress | None = None
        if progress.wanted(config.progress):
            self.progress = Progress(self.tally, progress.sum_counts(self.executors.values()))
            self.progress.start()
        atexit.register(self.cleanup)

    def __enter__(self) -> DataFlowKernel:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        """Config(exit_mode=): "cleanup" (the default) cleans up at once; "wait" waits for
        the tasks submitted so far first, unless the block raised; "skip" does nothing
        (the kernel stays loaded until farm.clear() or the interpreter's exit).  An
        exception raised in the block goes on up in every mode."""
        mode = getattr(self.config, "exit_mode", "cleanup")
        if mode == "skip":
            return
        if mode == "wait" and exc_type is None:
            self.wait_for_current_tasks()
        self.cleanup()

    # -- submission ------------------------------------------------------------------------

    def submit(self, app: App, args: tuple, kwargs: dict) -> AppFuture:
        if self._closed:
            raise ConfigError("this DataFlowKernel was cleaned up; call farm.load() again")
        ex = self._executor_for(app) if app.kind != "join" else None  # joins run here
        if app.defaults:
            kwargs = {**{k: v for k, v in app.defaults.items() if k not in kwargs}, **kwargs}
        elif kwargs:
            kwargs = dict(kwargs)  # (_make_task may change it: not the caller's)
        else:
            kwargs = _NO_KWARGS
        # (what a call asks of its node is not part of what it computes: not in its key)
        hashed = ({k: v for k, v in kwargs.items()
                   if k not in app.ignore_for_cache and k != requests.SPEC}
                  if app.ignore_for_cache or requests.SPEC in kwargs else kwargs)
        cache = app.cache and self.config.app_cache
        digest = call_digest(app.identity, args, hashed, strict=cache)
        with self._lock:
            if cache:
                key = task_key(digest, 0)
                if key in self._cached:
                    return self._cached[key]
            else:
                seen = int.from_bytes(digest[:8], "little")
                key = task_key(digest, self._ordinals[seen])
                self._ordinals[seen] += 1
        try:
            task = self._make_task(app, ex, key, args, kwargs)
        except BadStdStreamFile as e:  # (Parsl's way: the call's future fails with it)
            task = TaskRecord(key=key, name=app.name, kind=app.kind, func=app.func, args=args,
                              kwargs=kwargs, opts=_plain_opts(_Cwd.get()), outputs=(),
                              executor=ex)
            task.future = AppFuture(task)
            task.future.set_exception(e)
            return task.future
        task.tally = self.tally
        fut = task.future = AppFuture(task)
        memo = self._memo(key) if cache and self._memo is not None else None
        with self._lock:
            self.tally.submitted += 1
            if cache:
                self._cached[key] = fut
            live = self._live
            live.append(weakref.ref(fut))
            if len(live) >= self._live_max:
                live[:] = [r for r in live if (f := r()) is not None and not f.done()]
                self._live_max = max(1024, 2 * len(live))
        if memo is not None:  # (a checkpoint had its result: Config(checkpoint_files=))
            fut.from_memo = True
            fut.set_result(memo[0])
            return fut
        pending = [f for f in task.waits_on if not (ex is not None and ex.native(f))]
        if self._deep:
            nested = self._nested(task)
            if nested:
                task.waits_on = [*task.waits_on, *nested]
                pending += nested
        if not pending:
            self._launch(task)
        else:
            when_all_done(pending, lambda: self._launch(task))
        return fut

    def _executor_for(self, app: App) -> Executor:
        if app.executors == "all":
            return next(iter(self.executors.values()))
        for label in app.executors:
            if label in self.executors:
                return self.executors[label]
        raise ConfigError(f"app {app.name} asks for executors {app.executors}, but the config "
                          f"has only {list(self.executors)}")

    def _make_task(self, app: App, ex: Executor | None, key: str, args: tuple,
                   kwargs: dict) -> TaskRecord:
        cwd = _Cwd.get()
        if not kwargs and not app.resources:  # the common case: no kwargs at all
            return TaskRecord(key=key, name=app.name, kind=app.kind, func=app.func,
                              args=args, kwargs=kwargs, opts=_plain_opts(cwd), outputs=(),
                              executor=ex, retries=self.config.retries,
                              retry_handler=self.config.retry_handler,
                              waits_on=self._waits_on(args))
        opts: dict[str, Any] = {"cwd": cwd}
        walltime = kwargs.get("walltime")
        if walltime is not None:
            if not isinstance(walltime, (int, float)) or walltime <= 0:
                raise ConfigError(f"app {app.name}: walltime must be a positive number of "
                                  f"seconds, got {walltime!r}")
            opts["walltime"] = walltime
        if "walltime" in kwargs and "walltime" not in app.params:
            kwargs = {k: v for k, v in kwargs.items() if k != "walltime"}
        outputs = [o if isinstance(o, File) else File(o) for o in kwargs.get("outputs") or []]
        if "outputs" in kwargs:
            kwargs["outputs"] = outputs
        for o in outputs:
            if o.scheme != "file":
                raise ConfigError(f"app {app.name}: outputs=[{o.url!r}]: farm writes outputs to "
                                  "files on the shared filesystem only (no staging out); give "
                                  "a path, and copy the file where it must go afterwards")
        opts["outputs"] = [o.path for o in outputs]
        staging: list[AppFuture] = []
        if kwargs.get("inputs") and any(isinstance(i, File) and i.scheme != "file"
                                        for i in kwargs["inputs"]):
            kwargs["inputs"] = [self._stage(app, ex, i, staging)
                                if isinstance(i, File) and i.scheme != "file" else i
                                for i in kwargs["inputs"]]
        opts["inputs"] = [i.local_path or i.path for i in kwargs.get("inputs") or []
                          if isinstance(i, File)]
        name = app.name
        if app.kind in ("bash", "python"):  # (python apps too, as in Parsl)
            for stream in ("stdout", "stderr"):
                spec = kwargs.get(stream)
                if spec is None:
                    continue
                if spec is AUTO_LOGNAME and ex is not None:
                    spec = self._autopath(ex, key, name, args, kwargs, stream)
                if isinstance(spec, (str, os.PathLike)):
                    spec = (os.fspath(spec), "a")
                elif not (isinstance(spec, tuple) and len(spec) == 2
                          and isinstance(spec[0], (str, os.PathLike))
                          and isinstance(spec[1], str)
                          and spec[1].replace("t", "") in STREAM_MODES):
                    raise BadStdStreamFile(
                        f"{app.kind} app {name}: {stream}={spec!r} is not a path, a (path, "
                        "mode) tuple whose mode writes (w, a, x, w+, a+) or AUTO_LOGNAME")
                opts[stream] = [os.path.abspath(os.fspath(spec[0])), spec[1]]
                if stream in app.params:
                    kwargs[stream] = opts[stream][0]
                elif app.kind == "python":  # (a python app need not declare them)
                    kwargs = {k: v for k, v in kwargs.items() if k != stream}
        if walltime is None and not outputs and not opts["inputs"] and len(opts) == 3:
            opts = _plain_opts(cwd)  # (no stdout, no stderr either)
        if app.resources or kwargs.get(requests.SPEC):
            opts = {**opts, **self._requests(app, kwargs.get(requests.SPEC))}
        if requests.SPEC in kwargs and requests.SPEC not in app.params:
            kwargs = {k: v for k, v in kwargs.items() if k != requests.SPEC}
        waits_on = self._waits_on(
            list(args) + list(kwargs.values()) + list(kwargs.get("inputs") or []) + staging)
        return TaskRecord(key=key, name=name, kind=app.kind, func=app.func, args=args,
                          kwargs=kwargs, opts=opts, outputs=outputs, executor=ex,
                          retries=self.config.retries, retry_handler=self.config.retry_handler,
                          waits_on=waits_on)

    def _requests(self, app: App, spec: Any) -> dict[str, Any]:
        """The opts of a call that asks for resources (farm.requests): its request at the
        first attempt, and when it depends on the attempt, the function (a "sizer") that
        gives it, for the pool to call at each attempt."""
        where = f"app {app.name}"
        req = {**app.resources, **requests.normalize(spec, where)}
        if not req:
            return {}
        opts: dict[str, Any] = {"resources": requests.at(req, 0, where)}
        if requests.dynamic(req):
            opts["sizer"] = requests.sizer(req)
        return opts

    # -- staging in ------------------------------------------------------------------------

    def _stage(self, app: App, ex: Executor | None, f: File, staging: list[AppFuture]) -> File:
        """An input File with a URL: a copy whose local_path is where the driver downloads
        it, once per URL (a task of its own, stage_in, whose future is added to staging);
        the app's task waits for it.  A scheme farm cannot fetch is an error now."""
        if f.scheme not in STAGED_SCHEMES:
            raise ConfigError(f"app {app.name}: inputs=[File({f.url!r})]: farm cannot stage "
                              f"{f.scheme}:// files (it downloads {', '.join(STAGED_SCHEMES)} "
                              "in the driver; compute nodes have no network): copy the file "
                              "to the shared filesystem and pass its path")
        digest = hashlib.sha256(f.url.encode()).hexdigest()
        stage_dir = getattr(ex, "stage_dir", None)
        root = (stage_dir() if stage_dir is not None
                else os.path.join(os.path.abspath(self.config.run_dir or "."), "farm-staged"))
        path = os.path.join(root, digest[:16], f.filename or "download")
        with self._lock:
            fut = self._stages.get(f.url)
            if fut is None:
                task = TaskRecord(key=digest[:32], name="stage_in", kind="python",
                                  func=fetch_url, args=(f.url, path), kwargs=_NO_KWARGS,
                                  opts=_plain_opts(_Cwd.get()), outputs=(), executor=None)
                task.tally = self.tally
                fut = self._stages[f.url] = task.future = AppFuture(task)
                self.tally.submitted += 1
                self._joins.submit(self._run_stage, task)
        staging.append(fut)
        copy = File(f.url)
        copy.local_path = path
        return copy

    def _run_stage(self, task: TaskRecord) -> None:
        """Download a URL (task.args) to its path, unless an earlier run did (the path
        exists only once whole); STAGE_ATTEMPTS tries, a second apart, then it fails."""
        url, path = task.args
        last: BaseException | None = None
        for attempt in range(STAGE_ATTEMPTS):
            if _there(path):
                task.future.set_result(path)
                return
            try:
                fetch_url(url, path)
            except Exception as e:
                last = e
                if attempt + 1 < STAGE_ATTEMPTS and not self._closed:
                    time.sleep(STAGE_PAUSE * (attempt + 1))
                continue
        if _there(path):
            task.future.set_result(path)
        else:
            task.future.set_exception(StagingError(
                f"could not download {url} ({STAGE_ATTEMPTS} attempts): "
                f"{type(last).__name__}: {last}"))

    def _autopath(self, ex: Executor, key: str, name: str, args: tuple, kwargs: dict,
                  stream: str) -> Any:
        """Where an AUTO_LOGNAME stream goes: Config(std_autopath=f) decides if given (f gets
        a record with the task's id, func_name, args and kwargs, as Parsl's has, and the stream's
        name); else a file in the spool named for the app, the call's label= if it has one,
        and the task."""
        auto = getattr(self.config, "std_autopath", None)
        if auto is not None:
            return auto({"id": key, "func_name": name, "args": args, "kwargs": kwargs},
                        stream)
        label = kwargs.get("label")
        logname = name if label is None else f"{name}_{label}"
        return (ex.log_path(key, logname, stream), "w")

    @staticmethod
    def _waits_on(values: Iterable[Any]) -> list | tuple:
        """The futures among values (a DataFuture stands for its app's), each once."""
        waits_on: list[Future] = []
        for v in values:
            if isinstance(v, DataFuture):
                v = v.parent
            if isinstance(v, Future) and v not in waits_on:
                waits_on.append(v)
        return waits_on or ()

    def _nested(self, task: TaskRecord) -> list[Future]:
        """The futures a resolver other than the default finds that the default did not
        (inside containers): each once, awaited here before the task is launched."""
        top = set(map(id, task.waits_on))
        out: list[Future] = []
        values = [*task.args, *task.kwargs.values(), *(task.kwargs.get("inputs") or ())]
        for v in values:
            if isinstance(v, Future):
                continue  # (passed directly: the default's)
            for f in self.resolver.traverse_to_gather(v):
                if isinstance(f, DataFuture):
                    f = f.parent
                if id(f) not in top:
                    top.add(id(f))
                    out.append(f)
        return out

    def _launch(self, task: TaskRecord) -> None:
        """All non-native deps are done: fail on a failed one, else wire and submit."""
        fut = task.future
        ex = task.executor
        native = task.kind != "join"
        # A failed dep fails this task here, even a native one: it may have failed in the
        # driver (e.g. unpicklable arguments) and then has no result in the spool.
        bad = failures(task.waits_on)
        if bad:
            fut.set_exception(DependencyError([n for _, n in bad], task.label, bad))
            return

        deps: list[str] = []

        def wire(v: Any, unwrap: bool = True) -> Any:
            if isinstance(v, DataFuture):
                if native and ex.native(v.parent) and v.parent.key not in deps:
                    deps.append(v.parent.key)
                return v.file_obj
            if isinstance(v, AppFuture):
                if native and ex.native(v):
                    if v.key not in deps:
                        deps.append(v.key)
                    return DepRef(v.key)
                return v.result()
            if isinstance(v, Future):  # any other future: done by now (awaited)
                return v.result()
            if deep and unwrap:  # (futures inside containers: awaited, see _nested)
                return self.resolver.traverse_to_unwrap(v)
            return v

        deep = self._deep
        if task.waits_on:  # (else there is nothing to wire)
            task.args = tuple(wire(a) for a in task.args)
            # (inputs=[...] is not unwrapped whole: its items are wired one by one below)
            task.kwargs = {k: wire(v, k != "inputs") for k, v in task.kwargs.items()}
        if isinstance(task.kwargs.get("inputs"), (list, tuple)):  # (the app gets a list)
            task.kwargs["inputs"] = [wire(v) for v in task.kwargs["inputs"]]
        if deps:
            task.deps = deps
        if task.kind == "join":
            self._joins.submit(self._run_join, task)
        else:
            try:
                ex.submit(task)
            except Exception as e:  # a bad task must not take the script down at call time
                if not fut.done():
                    fut.set_exception(e)

    def _run_join(self, task: TaskRecord) -> None:
        fut = task.future
        try:
            inner = task.func(*task.args, **task.kwargs)
        except BaseException as e:
            fut.set_exception(e)
            return
        many = isinstance(inner, (list, tuple))
        inner_list = list(inner) if many else [inner]
        if not all(isinstance(f, Future) for f in inner_list):
            fut.set_exception(TypeError(f"join app {task.name} must return a future or a list "
                                        f"of futures, not {type(inner).__name__}"))
            return

        def finish() -> None:
            bad = failures(inner_list)
            if bad:
                fut.set_exception(JoinError([n for _, n in bad], task.label, bad))
            else:
                values = [f.result() for f in inner_list]
                fut.set_result(values if many else values[0])

        if inner_list:
            when_all_done(inner_list, finish)
        else:
            fut.set_result([])

    # -- waiting and cleanup -----------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every executor has written the calls made so far (see farm.flush)."""
        return all(ex.flush(timeout) for ex in self.executors.values())

    def wait_for_current_tasks(self, timeout: float | None = None) -> None:
        """Block until every task submitted so far has finished (successfully or not)."""
        import concurrent.futures
        with self._lock:
            live = [f for r in self._live if (f := r()) is not None]
        concurrent.futures.wait(live, timeout=timeout)

    def cleanup(self) -> None:
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.cleanup)
        try:
            self._joins.shutdown(wait=False)
            if self.progress is not None:
                self.progress.end()  # (the line goes before the executors' last words)
            for ex in self.executors.values():
                ex.shutdown()
            if self.progress is not None:
                self.progress.report()
        finally:
            # (farm.load's: this kernel is no longer the loaded one, even if its cleanup
            # failed: it cannot be used again, and a new one can be loaded)
            forget, self.on_exit = self.on_exit, None
            if forget is not None:
                forget()


def _there(path: str) -> bool:
    """Is the file at path there?  A stat that says no is confirmed by a fresh listing of its
    directory: the staged file may have been made by a driver on another node, and an NFS
    client believes "no such file" for a while after it last looked."""
    if os.path.exists(path):
        return True
    try:
        return os.path.basename(path) in os.listdir(os.path.dirname(path))
    except OSError:
        return False


def signature_info(func: Callable[..., Any]) -> tuple[set[str], dict[str, Any]]:
    """(parameter names, defaults of the special keyword arguments) of an app function."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return set(), {}
    defaults = {n: p.default for n, p in params.items()
                if n in SPECIAL and p.default is not inspect.Parameter.empty}
    return set(params), defaults
