"""Running one app call: python or bash, with walltime, streams and file checks.

Shared by the pool's worker processes and the in-process ThreadPoolExecutor, so both run
apps the same way.  ``call`` never raises for the app's own failures: it returns an outcome
(header fields + pickled body) that a result record carries to the driver.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from types import FrameType
from typing import IO, Any, NamedTuple

import cloudpickle
import psutil

from farm.errors import (
    AppTimeout,
    BashExitFailure,
    MissingInputs,
    MissingOutputs,
    SerializationError,
    pack_exception,
)


class Outcome(NamedTuple):
    """What running an app gave: the result header's fields (status, error, times...), the
    body (the pickled value, or the packed exception), and the exception (None if ok)."""

    head: dict[str, Any]
    body: Any  # bytes, except a success's with call(raw=True): the value itself
    exc: BaseException | None


# Parsl's retry_handler: (the exception, the task's record) -> what this failure costs
RetryHandler = Callable[[BaseException | None, dict[str, Any]], float]


def call(kind: str, name: str, func: Callable[..., Any], args: tuple[Any, ...],
         kwargs: dict[str, Any], opts: Mapping[str, Any], in_main_thread: bool = True,
         raw: bool = False) -> Outcome:
    """Run one app call and return its Outcome.  opts: walltime, stdout, stderr, inputs,
    outputs, cwd (as the task header holds them).  With raw, the body of a success is the
    value itself, unpickled (for in-process executors)."""
    t_start = time.time()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    head: dict[str, Any] = {"t_start": t_start}
    exc: BaseException | None = None
    try:
        missing = [p for p in opts.get("inputs") or [] if not os.path.exists(p)]
        if missing:
            raise MissingInputs(f"{kind} app {name}", missing)
        if kind == "bash":
            value = _run_bash(name, func, args, kwargs, opts, head, in_main_thread)
        else:
            for s in ("stdout", "stderr"):
                if opts.get(s) and in_main_thread:
                    head[s] = opts[s][0]
            value = _run_python(name, func, args, kwargs, opts.get("walltime"), in_main_thread,
                                opts)
        try:
            body = value if raw else cloudpickle.dumps(value)
        except Exception as e:
            raise SerializationError(
                f"the result of {name} cannot be pickled ({type(e).__name__}: {e}); return "
                "plain data, or write it to a File in outputs=[...]") from e
        head["status"] = "ok"
    except BaseException as e:  # noqa: B036 - an app may raise anything; SystemExit too
        if isinstance(e, KeyboardInterrupt):
            raise
        head["status"] = "failed"
        head["error"] = f"{type(e).__name__}: {e}"[:500]
        body = pack_exception(e)
        exc = e
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    head["t_end"] = time.time()
    head["cpu"] = round(ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime, 6)
    head["maxrss_kb"] = max(ru1.ru_maxrss, head.get("maxrss_kb", 0))
    return Outcome(head, body, exc)


def failure(exc: BaseException) -> Outcome:
    """The outcome of a task that failed before its app could be called."""
    now = time.time()
    return Outcome({"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500],
                    "t_start": now, "t_end": now}, pack_exception(exc), exc)


def _run_python(name: str, func: Callable[..., Any], args: tuple[Any, ...],
                kwargs: dict[str, Any], walltime: float | None, in_main_thread: bool,
                opts: Mapping[str, Any] | None = None) -> Any:
    with _streams(opts or {}, in_main_thread):
        return _call_python(name, func, args, kwargs, walltime, in_main_thread)


@contextlib.contextmanager
def _streams(opts: Mapping[str, Any], in_process_of_its_own: bool) -> Iterator[None]:
    """While a python app runs in a worker: its stdout and stderr go to the files its call
    named (stdout=, stderr=), at the file descriptor level, so that C extensions and
    subprocesses write there too.  In a thread of the driver (ThreadPoolExecutor) the
    process's streams are shared, and are left alone."""
    specs = [(fd, opts.get(name)) for fd, name in ((1, "stdout"), (2, "stderr"))]
    specs = [(fd, spec) for fd, spec in specs if spec]
    if not specs or not in_process_of_its_own:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = []
    try:
        for fd, spec in specs:
            stream = _open_stream(spec)
            assert stream is not None
            saved.append((fd, os.dup(fd)))
            os.dup2(stream.fileno(), fd)
            stream.close()
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, old in saved:
            os.dup2(old, fd)
            os.close(old)


def _call_python(name: str, func: Callable[..., Any], args: tuple[Any, ...],
                 kwargs: dict[str, Any], walltime: float | None, in_main_thread: bool) -> Any:
    if not walltime or not in_main_thread:
        return func(*args, **kwargs)

    def expire(signum: int, frame: FrameType | None) -> None:
        raise AppTimeout(f"python app {name} exceeded its walltime of {walltime} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, float(walltime))
    try:
        return func(*args, **kwargs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_dirs: dict[str, tuple[bool, float]] = {}  # cwd -> (is a directory, when looked at)


def _is_dir(path: str) -> bool:
    """os.path.isdir, looked up at most every 10 s per path: on a network filesystem each
    look is a request to the server, and a bash app's cwd rarely changes."""
    known = _dirs.get(path)
    now = time.monotonic()
    if known is None or now - known[1] > 10.0:
        if len(_dirs) > 1000:
            _dirs.clear()
        known = _dirs[path] = (os.path.isdir(path), now)
    return known[0]


# The bash child of the task being run, so a worker told to stop can kill its group.
current_child: subprocess.Popen[bytes] | None = None


def _run_bash(name: str, func: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any], opts: Mapping[str, Any], head: dict[str, Any],
              in_main_thread: bool) -> int:
    global current_child
    cmd = func(*args, **kwargs)
    if not isinstance(cmd, str):
        raise TypeError(f"bash app {name} must return the command line as a str, "
                        f"not {type(cmd).__name__}")
    streams = [_open_stream(opts.get(s)) for s in ("stdout", "stderr")]
    head["stdout"], head["stderr"] = (opts.get(s, [None])[0] if opts.get(s) else None
                                      for s in ("stdout", "stderr"))
    cwd = opts.get("cwd")
    try:
        proc = subprocess.Popen(
            ["/bin/bash", "-c", cmd], stdin=subprocess.DEVNULL, stdout=streams[0],
            stderr=streams[1], start_new_session=True,
            cwd=cwd if cwd and _is_dir(cwd) else None)
    finally:
        for s in streams:
            if s is not None:
                s.close()
    current_child = proc
    timer, expired = None, threading.Event()
    if opts.get("walltime"):
        def expire() -> None:
            expired.set()
            kill_tree(proc.pid)
        timer = threading.Timer(float(opts["walltime"]), expire)
        timer.daemon = True
        timer.start()
    try:
        # wait4 gives this child's own resource use (RUSAGE_CHILDREN would sum them all)
        _, status, ru = os.wait4(proc.pid, 0)
    finally:
        current_child = None
        if timer:
            timer.cancel()
    proc.returncode = rc = os.waitstatus_to_exitcode(status)
    head["exit_code"] = rc
    head["maxrss_kb"] = ru.ru_maxrss
    head["child_cpu"] = round(ru.ru_utime + ru.ru_stime, 6)
    if rc < 0:
        head["signal"] = -rc
    if expired.is_set():
        raise AppTimeout(f"bash app {name} exceeded its walltime of {opts['walltime']} s "
                         "and was killed")
    if rc != 0:
        raise BashExitFailure(name, rc)
    missing = [p for p in opts.get("outputs") or [] if not os.path.exists(p)]
    if missing:
        raise MissingOutputs(f"bash app {name}", missing)
    return rc


def _open_stream(spec: list[str] | None) -> IO[str] | None:
    if not spec:
        return None
    path, mode = spec
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    return open(path, mode)


def kill_tree(pid: int) -> None:
    """Kill a bash app's whole process group, and any descendant that left it."""
    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        procs = []
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    for p in procs:
        try:
            p.kill()
        except psutil.Error:
            pass


def retry_cost(exc: BaseException | None, handler: RetryHandler | None,
               info: dict[str, Any]) -> float:
    """What one failure costs against Config.retries (1, unless a retry_handler says)."""
    if handler is None:
        return 1.0
    try:
        return float(handler(exc, info))
    except Exception:
        traceback.print_exc()
        return float("inf")
