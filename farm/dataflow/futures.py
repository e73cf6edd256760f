"""AppFuture and DataFuture: concurrent.futures.Future with a task behind them."""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from farm.data import File

if TYPE_CHECKING:
    from farm.dataflow.kernel import TaskRecord


class AppFuture(Future):
    """The future an app call returns at once.

    ``result(timeout)``, ``exception()``, ``done()`` and ``add_done_callback`` behave as for
    any Future.  ``key`` is the task's content hash (its name in the spool), ``outputs``
    holds a DataFuture per File in outputs=[...], and for bash apps ``stdout``/``stderr``
    are the paths the command's streams go to.
    """

    def __init__(self, task: TaskRecord):
        super().__init__()
        self.task = task
        self._outputs = [DataFuture(self, f) for f in task.outputs]

    @property
    def key(self) -> str:
        return self.task.key

    @property
    def tid(self) -> str:
        return self.task.key

    @property
    def outputs(self) -> list[DataFuture]:
        return self._outputs

    @property
    def stdout(self) -> str | None:
        return self.task.opts.get("stdout", [None])[0] if self.task.opts.get("stdout") else None

    @property
    def stderr(self) -> str | None:
        return self.task.opts.get("stderr", [None])[0] if self.task.opts.get("stderr") else None

    def __repr__(self) -> str:
        with self._condition:
            state = self._state.lower()
            extra = ""
            if state == "finished":
                extra = " failed" if self._exception is not None else " ok"
        return f"<AppFuture {self.task.label} state={state}{extra}>"


class DataFuture(Future):
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
