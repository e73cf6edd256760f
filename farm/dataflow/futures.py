"""AppFuture and DataFuture: concurrent.futures.Future with a task behind them.

Both are LightFutures: Futures without a threading.Condition of their own (about 1.2 KB
each, most of a queued task's memory in the driver).  They share one lock, and a thread
that waits (result(), exception()) waits on an Event made for that call only.  Everything
else in concurrent.futures (wait, as_completed, add_done_callback, asyncio.wrap_future)
works on them as on any Future.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures._base import (
    CANCELLED,
    CANCELLED_AND_NOTIFIED,
    FINISHED,
    LOGGER,
    PENDING,
    RUNNING,
    InvalidStateError,
)
from typing import TYPE_CHECKING, Any

from farm.data import File

if TYPE_CHECKING:
    from farm.dataflow.task import TaskRecord

_CANCELLED = (CANCELLED, CANCELLED_AND_NOTIFIED)
_DONE = (CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED)
# One lock for every LightFuture (reentrant: concurrent.futures.wait acquires the
# "condition" of each future it is given, here the same one many times).  It is only ever
# held for a few attribute updates.  Nobody waits on the Condition itself: result() and
# exception() wait on a _Wakeup each.  (It is still notified at every completion, in case
# a Future method not overridden here waits on it.)
_LOCK = threading.RLock()
_SHARED = threading.Condition(_LOCK)


class _Wakeup:
    """The waiter one result()/exception() call puts in the future's waiters: set_result,
    set_exception and cancel set its event (the waiters of concurrent.futures.wait and
    as_completed have the same three methods)."""

    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()

    def add_result(self, future: Future) -> None:
        self.event.set()

    add_exception = add_cancelled = add_result


class LightFuture(Future):
    """A concurrent.futures.Future that costs ~110 bytes until somebody waits on it: no
    Condition of its own, and its waiter and callback lists are made when first needed.
    (All LightFutures share one lock: waiting on one while holding the _condition of
    another would deadlock; nothing in farm or concurrent.futures does.)"""

    _condition = _SHARED  # what Future's own methods and concurrent.futures.wait lock
    _w: list | None = None  # waiters (concurrent.futures.wait, result(), exception())
    _cbs: list | None = None  # done callbacks

    def __init__(self) -> None:  # (not Future.__init__: it makes the Condition)
        self._state = PENDING
        self._result = None
        self._exception = None

    # Future's own methods use these two as plain lists: properties, made on first use.
    @property
    def _waiters(self) -> list:  # type: ignore[override]
        with _LOCK:
            if self._w is None:
                self._w = []
            return self._w

    @property
    def _done_callbacks(self) -> list:
        with _LOCK:
            if self._cbs is None:
                self._cbs = []
            return self._cbs

    def _invoke_callbacks(self) -> None:
        for callback in self._cbs or ():
            try:
                callback(self)
            except Exception:
                LOGGER.exception("exception calling callback for %r", self)

    def add_done_callback(self, fn: Callable[[Future], object]) -> None:
        with _LOCK:
            if self._state not in _DONE:
                self._done_callbacks.append(fn)
                return
        try:
            fn(self)
        except Exception:
            LOGGER.exception("exception calling callback for %r", self)

    def cancel(self) -> bool:
        with _LOCK:
            if self._state in (RUNNING, FINISHED):
                return False
            if self._state in _CANCELLED:
                return True
            self._state = CANCELLED
            # Future.cancel wakes the threads in result() (through its Condition); the
            # waiters of wait()/as_completed hear of it from set_running_or_notify_cancel.
            for w in self._w or ():
                if type(w) is _Wakeup:
                    w.event.set()
            _SHARED.notify_all()
        self._invoke_callbacks()
        return True

    def set_running_or_notify_cancel(self) -> bool:
        with _LOCK:
            if self._state == CANCELLED:
                self._state = CANCELLED_AND_NOTIFIED
                for w in self._w or ():
                    w.add_cancelled(self)
                return False
            if self._state == PENDING:
                self._state = RUNNING
                return True
            LOGGER.critical("Future %s in unexpected state: %s", id(self), self._state)
            raise RuntimeError("Future in unexpected state")

    def set_result(self, result: Any) -> None:
        self._finish(result, None, False)

    def set_exception(self, exception: BaseException | None) -> None:
        self._finish(None, exception, True)

    def _finish(self, result: Any, exception: BaseException | None, failed: bool) -> None:
        with _LOCK:
            if self._state in _DONE:
                raise InvalidStateError(f"{self._state}: {self!r}")
            self._result, self._exception = result, exception
            self._state = FINISHED
            self._count(failed)
            for w in self._w or ():
                if failed:
                    w.add_exception(self)
                else:
                    w.add_result(self)
            _SHARED.notify_all()  # (nobody waits on it: for a Future method we do not know)
        self._invoke_callbacks()

    def _count(self, failed: bool) -> None:
        """Called under the lock as the future finishes (AppFuture counts it)."""

    def _wait(self, timeout: float | None) -> None:
        """Until the future is done, at most timeout seconds."""
        with _LOCK:
            if self._state in _DONE:
                return
            w = _Wakeup()
            self._waiters.append(w)
        try:
            w.event.wait(timeout)
        finally:
            with _LOCK:
                self._waiters.remove(w)

    def result(self, timeout: float | None = None) -> Any:
        try:
            self._wait(timeout)
            with _LOCK:
                if self._state in _CANCELLED:
                    raise CancelledError()
                if self._state != FINISHED:
                    raise FutureTimeout()
                if not self._exception:
                    return self._result
                exc = self._exception
            try:
                raise exc
            finally:
                exc = None  # type: ignore[assignment]  # no cycle through the traceback
        finally:
            self = None  # type: ignore[assignment]  # (as Future.result does)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._wait(timeout)
        with _LOCK:
            if self._state in _CANCELLED:
                raise CancelledError()
            if self._state != FINISHED:
                raise FutureTimeout()
            return self._exception




class Lifting:
    """Future lifting, as Parsl has it: ``fut[key]`` and ``fut.attr`` are futures of the
    item and the attribute of fut's result, made at once (no task: they resolve when fut
    does).  Passed to an app, they are dependencies like any future.  (Names that start
    with "_" are not lifted: Python's own protocols look those up.)

    ``fut.attr`` needs ``__getattr__`` on the class, which makes every attribute lookup
    on its instances about 3 times slower in CPython (no specialisation): for AppFuture it
    is added by lift_attributes(), which Parsl programs turn on (see there)."""

    def __getitem__(self, key: Any) -> LiftedFuture:
        return LiftedFuture(self, _item, key, f"[{key!r}]")  # type: ignore[arg-type]


def _lift_attribute(self: Future, name: str) -> LiftedFuture:
    if name.startswith("_"):
        raise AttributeError(name)
    return LiftedFuture(self, getattr, name, f".{name}")


def _item(value: Any, key: Any) -> Any:
    return value[key]


class LiftedFuture(Lifting, LightFuture):
    """The future of an item or attribute of another future's result (see Lifting).  Its
    tid is its parent's with the item or attribute added (``KEY[0]``, ``KEY.name``), so a
    task it is passed to gets the same key in every run."""

    __getattr__ = _lift_attribute

    def __init__(self, parent: Future, op: Callable[[Any, Any], Any], arg: Any, how: str):
        LightFuture.__init__(self)
        self.__dict__["parent"] = parent
        self.__dict__["tid"] = f"{getattr(parent, 'tid', None) or _anon(parent)}{how}"
        self.__dict__["_op"] = (op, arg)
        parent.add_done_callback(self._parent_done)

    def _parent_done(self, parent: Future) -> None:
        exc = parent.exception()
        if exc is not None:
            self.set_exception(exc)
            return
        op, arg = self.__dict__["_op"]
        try:
            value = op(parent.result(), arg)
        except Exception as e:
            self.set_exception(e)
        else:
            self.set_result(value)

    def __repr__(self) -> str:
        return f"<LiftedFuture {self.__dict__['tid']} state={self._state.lower()}>"


def _anon(fut: Future) -> str:
    return f"{type(fut).__name__}@{id(fut):x}"


class AppFuture(Lifting, LightFuture):
    """The future an app call returns at once.

    ``result(timeout)``, ``exception()``, ``done()`` and ``add_done_callback`` behave as for
    any Future.  ``key`` is the task's content hash (its name in the spool), ``outputs``
    holds a DataFuture per File in outputs=[...], and for bash apps ``stdout``/``stderr``
    are the paths the command's streams go to.
    """

    from_memo = False  # resolved from a checkpoint (an earlier spool) without running

    def __init__(self, task: TaskRecord):
        super().__init__()
        self.task = task
        self._outputs: list[DataFuture] | tuple[()] = (
            [DataFuture(self, f) for f in task.outputs] if task.outputs else ())

    def _count(self, failed: bool) -> None:
        tally = self.task.tally
        if tally is not None:  # (the driver's progress line: progress.Tally)
            if failed:
                tally.failed += 1
            else:
                tally.done += 1

    @property
    def key(self) -> str:
        return self.task.key

    @property
    def tid(self) -> str:
        return self.task.key

    @property
    def outputs(self) -> list[DataFuture]:
        return self._outputs if isinstance(self._outputs, list) else []

    def task_status(self) -> str:
        """The task's state under Parsl's names: pending (waiting for dependencies),
        launched (given to its executor, or for a join app running), exec_done, memo_done
        (its result came from a checkpoint), failed, or dep_fail (not run: a dependency
        failed)."""
        with _LOCK:
            state, exc = self._state, self._exception
        if state in _CANCELLED:
            return "failed"
        if state == FINISHED:
            if exc is None:
                return "memo_done" if self.from_memo else "exec_done"
            from farm.errors import DependencyError, JoinError
            return "dep_fail" if (isinstance(exc, DependencyError)
                                  and not isinstance(exc, JoinError)) else "failed"
        return "pending" if any(not f.done() for f in self.task.waits_on) else "launched"

    @property
    def stdout(self) -> str | None:
        return self.task.opts.get("stdout", [None])[0] if self.task.opts.get("stdout") else None

    @property
    def stderr(self) -> str | None:
        return self.task.opts.get("stderr", [None])[0] if self.task.opts.get("stderr") else None

    def __repr__(self) -> str:
        with _LOCK:
            state = self._state.lower()
            extra = ""
            if state == "finished":
                extra = " failed" if self._exception is not None else " ok"
        return f"<AppFuture {self.task.label} state={state}{extra}>"


class DataFuture(LightFuture):
    """A File that an app produces: resolves to the File when the app succeeds."""

    def __init__(self, parent: AppFuture, file: File):
        super().__init__()
        self.parent = parent
        self.file_obj = file
        parent.add_done_callback(self._parent_done)

    def _parent_done(self, parent: Future) -> None:
        exc = parent.exception()
        if exc is not None:
            self.set_exception(exc)
        else:
            self.set_result(self.file_obj)

    @property
    def filepath(self) -> str:
        return self.file_obj.filepath

    @property
    def filename(self) -> str:
        return self.file_obj.filename

    @property
    def tid(self) -> str:
        return self.parent.key

    def __fspath__(self) -> str:
        return self.file_obj.filepath

    def __repr__(self) -> Any:
        return f"<DataFuture {self.file_obj.filepath} of {self.parent.task.label}>"


def lift_attributes() -> None:
    """Turn on ``fut.attr`` lifting for AppFutures (``fut[key]`` always works).  Parsl
    programs get it without asking: `farm parsl`, importing one of Parsl's paths under
    farm (farm.app.*, farm.data_provider.*, farm.addresses, farm.utils, farm.concurrent,
    farm.channels, farm.dataflow.errors) or making a HighThroughputExecutor turns it on.
    It stays off otherwise: it slows every attribute lookup on a future (see Lifting)."""
    if "__getattr__" not in AppFuture.__dict__:
        AppFuture.__getattr__ = _lift_attribute  # type: ignore[attr-defined]


def describe(fut: Future) -> str:
    """How a dependency is named in errors: its task's label, else its tid, else its repr."""
    if isinstance(fut, AppFuture):
        return fut.task.label
    if isinstance(fut, DataFuture):
        return fut.parent.task.label
    return str(fut.__dict__.get("tid") or repr(fut))


def failures(futures: Iterable[Future]) -> list[tuple[BaseException | None, str]]:
    """(exception, name) of each of the futures that is done and failed (or cancelled)."""
    out: list[tuple[BaseException | None, str]] = []
    for f in futures:
        if f.done():
            try:
                exc = f.exception()
            except CancelledError as e:  # (a cancelled future: failed, for its dependents)
                exc = e
            if exc is not None:
                out.append((exc, describe(f)))
    return out


def when_all_done(futures: Sequence[Future], then: Callable[[], None]) -> None:
    """Call then() once every future is done (at once if none is pending), in the thread
    that finishes the last of them."""
    if not futures:
        then()
        return
    left = [len(futures)]
    lock = threading.Lock()

    def one_done(_: Future) -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            then()

    for f in futures:
        f.add_done_callback(one_done)
