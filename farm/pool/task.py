"""Running one claimed task: its app and arguments loaded, its walltime fitted, retries.

``TaskRunner`` is the part of a worker that runs what it claimed, one task at a time: it
loads the app (cached) and the arguments (a dependency's value from the worker's own
latest results, else read from the spool), checks that the task's walltime fits what is
left of the block, calls the app (farm.execute), and either retries the task (back to
ready/ as attempt + 1) or publishes its result and promotes the dependents it made
runnable.  A file the task needs that this node cannot see yet (NFS) is waited for, by
giving the task back, for up to GRACE seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import cloudpickle

from farm import execute, requests, serialize
from farm.data import substitute
from farm.errors import ConfigError, CorruptFile, FarmError, SerializationError, SpoolError
from farm.execute import Outcome
from farm.pool.limits import Limits
from farm.pool.nodes import Borrower
from farm.pool.slots import PARK_POLL, Slots
from farm.spool import Spool, fs

log = logging.getLogger("farm.pool")

GRACE = 60.0  # seconds a file the task needs may stay invisible before the task fails
NODES_GRACE = 120.0  # seconds a block may lack the pools a task across nodes needs
RECENT = 16  # values of its own latest results a worker keeps for their dependents


class _NotVisible(Exception):
    """A dependency's result is not visible here yet (NFS caching): try again later."""


class Output:
    """Where the apps a worker runs print: its own file, logs/POOL.W.out, on the spool.

    The worker's file descriptors 1 and 2 (so also a bash command's, and C code's) point to
    it for the worker's whole life, and the result header of each task records the byte
    range its call wrote (``output``: name, start, end), which farm logs shows.  One file
    per worker, opened once, and file positions read with SEEK_CUR (a SEEK_END would ask
    the metadata server for the size): no filesystem request per task.  A call that names
    its own stdout= or stderr= writes there instead (farm.execute).  The worker's own log
    messages land in the same file."""

    def __init__(self, pool: str, index: int):
        self.name = f"logs/{pool}.{index}.out"
        self.fd = -1
        self.start = self.end = 0

    def open(self, spool_path: str) -> None:
        """In the worker's own process, after the fork."""
        try:
            self.fd = os.open(os.path.join(spool_path, self.name),
                              os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as e:  # (the apps' output then goes to the pool's log)
            log.error("cannot open %s: %s", self.name, fs.explain(e))
            return
        sys.stdout.flush()
        sys.stderr.flush()
        os.lseek(self.fd, 0, os.SEEK_END)  # (a restarted worker appends)
        for fd in (1, 2):
            os.dup2(self.fd, fd)
        # Only 1 and 2 stay open on it: each descriptor of a spool file that a bash
        # command's process inherits is one more request to the filesystem when the
        # process closes it (FUSE and NFS clients flush on every close).
        os.close(self.fd)
        self.fd = 1

    def __enter__(self) -> Output:
        self.start = self.end = self._where()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end = self._where()

    def _where(self) -> int:
        if self.fd < 0:
            return 0
        sys.stdout.flush()
        sys.stderr.flush()
        # O_APPEND: every write, this process's or a child's (they share the open file),
        # leaves the position at the end.
        return os.lseek(self.fd, 0, os.SEEK_CUR)


class TaskRunner:
    """Runs a worker's claimed tasks (the first layer of Worker).  spool and dir (the
    worker's claim directory) are set in the worker's own process, after the fork."""

    spool: Spool
    dir: str

    def __init__(self, pool: str, index: int, limits: Limits):
        self.pool, self.index, self.limits = pool, index, limits
        self.host = socket.gethostname()
        self.pid = os.getpid()  # (again in Worker.main, after the fork)
        self.apps: dict[str, Callable[..., Any]] = {}
        self.too_long: set[str] = set()  # tasks whose walltime overruns our block's end
        self.later: dict[str, float] = {}  # tasks not to claim again before a time
        self.short_since: dict[str, float] = {}  # tasks across nodes the block lacks pools for
        self.misses: dict[str, float] = {}  # key -> when a file it needs was first missing
        self.values: dict[str, bytes] = {}  # pickled values of our latest successes
        self.output = Output(pool, index)
        self.slots: Slots  # (set by Worker)
        self.borrower: Borrower  # (set by Worker.main)

    def run_task(self, path: str, key: str, attempt: int) -> str | None:
        """Run the claimed task at path (not a bundle); return the next claim to run (a
        dependent this task made runnable), or None."""
        t_claimed = time.time()
        try:
            header, body = self.spool.read_task(path)
        except FileNotFoundError:
            return None
        except CorruptFile as e:
            self.spool.fail_damaged(key, e, path)
            return self.spool.settle_dependents(key, self.dir, key)
        outcome = self.run_one(path, key, attempt, header, body)
        if outcome is None:
            return None
        self._finish(key, path, header, outcome, attempt, t_claimed)
        return self.spool.settle_dependents(key, self.dir, header.get("bundle") or key)

    def run_one(self, path: str, key: str, attempt: int, header: dict[str, Any],
                body: bytes) -> Outcome | None:
        """Run one claimed task (of the claim at path); its outcome, or None if the task
        went back to ready/ (a file it needs is not visible yet, it does not fit in the
        block's time, or it failed and is retried)."""
        req: dict[str, Any] = {}
        try:
            func = self._load(header["app"])
            args, kwargs = cloudpickle.loads(body)
            args, kwargs = substitute(args, kwargs, self._dep_value)
            req = self._request(header, attempt)
        except (_NotVisible, FileNotFoundError) as e:
            # On NFS a file can stay invisible to this node for a while: never conclude
            # from one miss.  Give the task back and look again, for up to GRACE seconds.
            missing = e.filename if isinstance(e, FileNotFoundError) else e.args[0]
            first = self.misses.setdefault(key, time.monotonic())
            if time.monotonic() - first < GRACE:
                time.sleep(0.5)
                self.spool.give_back(path, key, attempt=attempt)
                return None
            outcome = execute.failure(SpoolError(
                f"task {header.get('name')}-{key[:8]}: {missing} is still missing after "
                f"{GRACE:g} s; the spool is incomplete (was it cleaned or moved?)"))
        except CorruptFile as e:  # a damaged or forged app payload or dependency result
            if self.spool.is_app(e.path):
                self.spool.quarantine(e.path, str(e))  # (a result stays: it is not ours)
            outcome = execute.failure(SpoolError(
                f"task {header.get('name')}-{key[:8]}: {e.path} is damaged or forged "
                f"({e.why}); the task was not run"))
        except ConfigError as e:  # (a request that cannot be: its sizer's error)
            outcome = execute.failure(e)
        except Exception as e:
            outcome = execute.failure(e if isinstance(e, SerializationError) else
                                      SerializationError(f"task {header.get('name')}-{key[:8]}: "
                                                         f"cannot load its arguments: {e}"))
        else:
            if not self.limits.fits(header.get("walltime") or req.get("running_time")):
                # It could not finish before the block ends: leave it to another block
                # (this worker will not claim it again).
                self.too_long.add(key)
                self.spool.give_back(path, key, attempt=attempt)
                return None
            across = int(req.get("num_nodes") or 1) > 1  # (a task across nodes: MPI)
            if across and (short := self.borrower.short_of(req)) is not None:
                # Pools of the block may be starting still; if not, the task can never run
                # here: it fails (after NODES_GRACE), rather than waiting for ever.
                first = self.short_since.setdefault(key, time.monotonic())
                if time.monotonic() - first < NODES_GRACE:
                    self.spool.give_back(path, key, attempt=attempt)
                    self.later[key] = time.monotonic() + random.uniform(2.0, 4.0)
                    return None
                got: list[int] | Outcome | None = execute.failure(ConfigError(
                    f"task {header.get('name')}-{key[:8]}: {short}"))
            else:
                got = self._slots_for(path, key, attempt, header, req) if req else [self.index]
            if got is None:
                return None  # (back in ready/)
            if isinstance(got, Outcome):
                outcome = got
            else:
                try:  # (whatever happens, the slots borrowed go back)
                    beats = None
                    if across:
                        beats = self._nodes_for(path, key, attempt, req)
                        if beats is None:
                            return None  # (back in ready/)
                    outcome = self._call(key, header, func, args, kwargs, got, req, beats)
                finally:
                    if len(got) > 1:
                        self.slots.release(got)
        if outcome.head["status"] != "ok":
            try:
                if self._retry(key, attempt, header, outcome, path):
                    return None
            except (FarmError, ValueError, TypeError) as e:  # a damaged attempts/ record...
                log.error("pool %s: retry of %s not possible: %s", self.pool, key, e)
        return outcome

    def _call(self, key: str, header: dict[str, Any], func: Callable[..., Any],
              args: tuple, kwargs: dict[str, Any], taken: list[int],
              req: dict[str, Any], beats: list[dict[str, Any]] | None = None) -> Outcome:
        """Call the app in the task's directory, on its slots (taken: their indexes, this
        worker's first) and the nodes lent to it (beats: their pools' heartbeats, for a
        task across nodes), with what it prints counted (Output)."""
        cwd = header.get("cwd")
        nodefile = ""
        try:  # (whatever happens, the nodes lent go back: the caller frees the slots)
            try:
                if cwd and cwd != os.getcwd() and os.path.isdir(cwd):
                    os.chdir(cwd)
            except OSError as e:
                return execute.failure(SpoolError(
                    f"task {header['name']}-{key[:8]}: cannot enter its directory: "
                    f"{fs.explain(e)}"))
            env: dict[str, str] = {}
            if beats:
                env, nodefile = Borrower.environment(req, beats)
            with self.output as span, (self.slots.granted(taken, req, env) if req
                                       else contextlib.nullcontext()):
                outcome = execute.call(header["kind"], header["name"], func, args, kwargs,
                                       header)
        finally:
            if beats:
                self.borrower.release([str(b["pool"]) for b in beats])
            if nodefile:
                os.unlink(nodefile)
        if span.end > span.start:
            outcome.head["output"] = [span.name, span.start, span.end]
        if req:  # (what it held: farm show says)
            outcome.head["slots"] = len(taken)
            if beats:
                outcome.head["hosts"] = [str(b.get("host")) for b in beats]
        return outcome

    def _request(self, header: dict[str, Any], attempt: int) -> dict[str, Any]:
        """What the task asks of the node at this attempt (farm.requests): its header's
        request, or what its sizer (a request that depends on the attempt) says."""
        req = header.get("resources") or {}
        if header.get("sizer"):
            req = requests.at(self._load(header["sizer"])(attempt), attempt,
                              f"task {header.get('name')}-{header.get('key', '')[:8]}")
        return req if isinstance(req, dict) else {}

    def _slots_for(self, path: str, key: str, attempt: int, header: dict[str, Any],
                   req: dict[str, Any]) -> list[int] | Outcome | None:
        """The slots a task with a request runs on (farm.pool.slots), once their workers
        have parked; a failure if it can never fit this pool's node; None if it went back
        to ready/ (another task holds this worker's slot, or the block is ending)."""
        node = self.slots.node
        k = requests.slots_needed(req, node)
        if k <= 1:
            return [self.index]
        if k > int(node["slots"]):
            return execute.failure(ConfigError(
                f"task {header.get('name')}-{key[:8]}: {requests.too_big(req, node)}"))
        delay = PARK_POLL[0]
        taken = self.slots.take(k)
        while taken is None or not self.slots.lenders_parked(taken):
            if self.slots.lent() or self.limits.draining() or self._orphaned():
                if taken is not None:
                    self.slots.release(taken)
                self.slots.give_up()
                self.spool.give_back(path, key, attempt=attempt)
                return None
            time.sleep(delay)
            delay = min(delay * 2, PARK_POLL[1])
            if taken is None:
                taken = self.slots.take(k)
        return taken

    def _nodes_for(self, path: str, key: str, attempt: int,
                   req: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The nodes lent to a task across nodes (farm.pool.nodes), this worker's slots
        all held (the caller frees them); None if it went back to ready/ (for a few
        seconds, for this worker: the nodes are busy with another such task, or not up
        yet)."""
        beats = self.borrower.gather(
            key, req, lambda: not (self._orphaned() or self.limits.draining()))
        if beats is None:
            self.spool.give_back(path, key, attempt=attempt)
            self.later[key] = time.monotonic() + random.uniform(1.0, 3.0)
        return beats

    def _orphaned(self) -> bool:
        parent = getattr(self, "parent", None)
        return parent is not None and os.getppid() != parent

    def result_head(self, header: dict[str, Any], outcome: Outcome, attempt: int,
                    t_claimed: float) -> dict[str, Any]:
        """The outcome's result header, with who ran the task, where and when."""
        head = outcome.head
        head.update(name=header.get("name"), attempt=attempt, pool=self.pool, worker=self.index,
                    host=self.host, pid=self.pid, t_claimed=t_claimed)
        if header.get("bundle"):
            head["bundle"] = header["bundle"]  # (where its payload is: Spool.payload_path)
        return head

    def _finish(self, key: str, path: str, header: dict[str, Any], outcome: Outcome,
                attempt: int, t_claimed: float) -> None:
        if self.spool.publish_result(key, self.result_head(header, outcome, attempt, t_claimed),
                                     outcome.body) and outcome.head["status"] == "ok":
            self._remember(key, outcome.body)
        if path:
            fs.unlink(path)

    def _remember(self, key: str, body: bytes) -> None:
        """Keep the value of a result this worker published (a success: never changes),
        for the dependent it runs next: a chain passes values without reading them back."""
        if len(body) > 65536:
            return
        if len(self.values) >= RECENT:
            self.values.pop(next(iter(self.values)))
        self.values[key] = body

    def _retry(self, key: str, attempt: int, header: dict[str, Any], outcome: Outcome,
               path: str) -> bool:
        """Requeue a failed task as attempt+1 if Config.retries allows; True if requeued."""
        retries = header.get("retries") or 0
        if not retries:
            return False
        final = header.get("last_attempt")
        if isinstance(final, int) and attempt >= final:
            # (what the next attempt would ask for, no block of the run could give it)
            log.warning("pool %s: %s-%s is not retried: its attempt %d would ask for more "
                        "than any block has", self.pool, header.get("name"), key[:8],
                        attempt + 1)
            return False
        last = self.spool.prior_attempt(key, attempt)
        prior = float(last.get("fail_cost", attempt))
        handler = None
        if header.get("retry_handler"):
            try:
                handler = self._load(header["retry_handler"])
            except Exception as e:
                log.error("pool %s: cannot load the retry handler of %s: %s", self.pool, key, e)
                return False
        info = {"key": key, "func_name": header["name"], "try_id": attempt,
                "fail_count": attempt + 1, "fail_cost": prior}
        cost = prior + execute.retry_cost(outcome.exc, handler, info)
        if cost > retries:
            return False
        head = outcome.head
        head.update(name=header["name"], attempt=attempt, pool=self.pool, worker=self.index,
                    host=self.host, pid=self.pid, fail_cost=cost,
                    crashes=last.get("crashes", 0))
        self.spool.record_attempt(key, attempt, head, outcome.body)
        # If the claim is gone, an observer took the task over (we were slow): the task is
        # still handled, by someone else, and we must not publish a result for it.
        self.spool.give_back(path, key, attempt=attempt + 1)
        return True

    def _load(self, app_id: str) -> Callable[..., Any]:
        func = self.apps.get(app_id)
        if func is None:
            header, body = self.spool.read_app(app_id)
            made_by = str(header.get("python", ""))
            here = "{}.{}".format(*sys.version_info[:2])
            if made_by and ".".join(made_by.split(".")[:2]) != here:
                raise SerializationError(
                    f"app {header.get('name')} was pickled by Python {made_by}; this pool "
                    f"on {self.host} runs Python {here}. Run pools with the driver's Python")
            try:
                func = serialize.loads(body)
            except Exception as e:
                raise SerializationError(
                    f"cannot load app {app_id[:12]} on {self.host}: {type(e).__name__}: {e}. "
                    "The modules an app uses must be importable where pools run") from e
            self.apps[app_id] = func
        return func

    def _dep_value(self, key: str) -> Any:
        body = self.values.get(key)
        if body is not None:
            return cloudpickle.loads(body)
        res = self.spool.read_result(key)
        if res is None:
            raise _NotVisible(self.spool.result_path(key))
        return cloudpickle.loads(res[1])
