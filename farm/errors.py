"""Errors a farm user can see.

Task failures come back to the driver as these exceptions (or as the app's own exception,
re-raised with the remote traceback attached).  Spool problems name the file at fault.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import pickle
import traceback
from typing import Any, TypeVar

import cloudpickle


class FarmError(Exception):
    """Base class of every farm error."""


class ConfigError(FarmError):
    """A configuration value or call argument is wrong; the message says which."""


class NoDataFlowKernelError(ConfigError):
    """An app was called (or farm.dfk() asked for) with nothing loaded: call farm.load()."""


class Unsupported(ConfigError, ImportError):
    """A Parsl name farm does not provide (a provider, an executor, a launcher, a module):
    the message names what farm has instead.  Also an ImportError, as ``from parsl.providers
    import PBSProProvider`` would be for a missing name."""


def unsupported(kind: str, name: str, have: list[str], why: str = "") -> Unsupported:
    """The error for a Parsl `kind` called `name` that farm lacks: it names those it has."""
    return Unsupported(f"farm has no {kind} {name}{': ' + why if why else ''}; it supports "
                       f"{', '.join(have)} (see docs/parsl.md)")


class ProviderError(ConfigError):
    """A scheduler command failed; the message quotes what the scheduler said."""

class SpoolError(FarmError):
    """The spool directory is missing, foreign, corrupt or of an unsupported format."""


class CorruptFile(SpoolError):
    """A spool file could not be parsed; it has been (or should be) quarantined."""

    def __init__(self, path: str, why: str):
        super().__init__(f"{path}: {why}")
        self.path = path
        self.why = why


class SerializationError(FarmError):
    """A task's arguments or result could not be pickled or unpickled."""


class AppException(FarmError):
    """Base of failures raised on behalf of an app (not by the app's own code)."""


class BashExitFailure(AppException):
    """A bash app's command exited with a non-zero status."""

    def __init__(self, app_name: str, exitcode: int):
        super().__init__(f"bash app {app_name} failed with exit code {exitcode}")
        self.app_name = app_name
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.app_name, self.exitcode))


class AppTimeout(AppException):
    """The app ran past its walltime and was killed."""


class MissingOutputs(AppException):
    """The app finished but did not create every file named in outputs=[...]."""

    def __init__(self, reason: str, outputs: list[str]):
        super().__init__(f"{reason}: missing outputs {outputs}")
        self.reason = reason
        self.outputs = outputs

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.reason, self.outputs))


class MissingInputs(AppException):
    """A File named in inputs=[...] does not exist when the task starts."""

    def __init__(self, reason: str, inputs: list[str]):
        super().__init__(f"{reason}: missing inputs {inputs}")
        self.reason = reason
        self.inputs = inputs

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.reason, self.inputs))


class DependencyError(AppException):
    """A task was not run because tasks it depends on failed.

    failed: the labels of the failed dependencies; dependent_exceptions_tids: (exception,
    label) of each, as Parsl has it (the exception is None where the driver never saw it);
    task_id: the label of the task not run.  The first failure that is not itself a
    DependencyError is the ``__cause__``, so a traceback shows the root failure."""

    what = "not run: dependencies failed"

    def __init__(self, failed: list[str], task: str = "",
                 dependent_exceptions_tids: list[tuple[BaseException | None, str]] | None = None):
        names = ", ".join(failed)
        super().__init__(f"task {task} {self.what}: {names}")
        self.failed = list(failed)
        self.task = self.task_id = task
        self.dependent_exceptions_tids = (list(dependent_exceptions_tids)
                                          if dependent_exceptions_tids is not None
                                          else [(None, f) for f in self.failed])
        cause: BaseException | None = self
        while isinstance(cause, DependencyError) and cause.dependent_exceptions_tids:
            cause = cause.dependent_exceptions_tids[0][0]
        if cause is not None and cause is not self:
            self.__cause__ = cause

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.failed, self.task))


class JoinError(DependencyError):
    """A join app's inner tasks failed (a DependencyError, as farm raised before)."""

    what = "(a join app) failed: the tasks it joins failed"


class BadStdStreamFile(ConfigError, AppException):
    """A bash or python app's stdout= or stderr= is not a path, a (path, mode) tuple or
    AUTO_LOGNAME, or its mode cannot write."""


class AppBadFormatting(AppException):
    """A bash app's function raised while making its command line."""


class BashAppNoReturn(AppException):
    """A bash app's function returned no command line."""


class StagingError(AppException):
    """The driver could not download an input URL (after retrying)."""


class WorkerLost(AppException):
    """The worker (or pool) running the task died before publishing a result."""


class RemoteTraceback(Exception):
    """Carries the text of a traceback from the process where an app raised.

    Attached as ``__cause__`` of the re-raised exception, so Python prints the remote
    traceback above the local one.
    """

    def __init__(self, text: str):
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text


class RemoteError(FarmError):
    """An app raised an exception that cannot be rebuilt in the driver (not picklable)."""

    def __init__(self, type_name: str, message: str):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (type(self), (self.type_name, self.message))


# -- exceptions across processes ------------------------------------------------------------

def pack_exception(exc: BaseException) -> bytes:
    """Pickle an exception with its traceback text; the exception object itself only if it
    survives a round trip (some exception classes pickle but cannot be rebuilt)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        blob = cloudpickle.dumps(exc)
        pickle.loads(blob)
    except Exception:
        blob = None
    return pickle.dumps({"type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                         "message": str(exc), "traceback": text, "exc": blob})


def unpack_exception(body: bytes) -> BaseException:
    """The exception to raise in the driver, with the remote traceback as its cause."""
    info = pickle.loads(body)
    exc = None
    if info.get("exc") is not None:
        try:
            exc = pickle.loads(info["exc"])
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RemoteError(info["type"], info["message"])
    exc.__cause__ = RemoteTraceback(info["traceback"])
    return exc




# -- misspelt options -----------------------------------------------------------------------------

_C = TypeVar("_C", bound=type)


def checked_options(cls: _C) -> _C:
    """Class decorator: an unknown keyword argument to the constructor is a ConfigError that
    names the class and the nearest known options (not Python's bare TypeError)."""
    init = cls.__init__  # type: ignore[misc]
    known = [n for n, p in inspect.signature(init).parameters.items()
             if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        unknown = [k for k in kwargs if k not in known]
        if unknown:
            near = difflib.get_close_matches(unknown[0], known, n=2)
            raise ConfigError(f"{cls.__name__}: unknown option {unknown[0]!r}; "
                              + (f"did you mean {' or '.join(near)}?" if near else
                                 f"it takes {', '.join(known)}"))
        init(self, *args, **kwargs)

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


# -- Parsl's names (parsl.errors) -------------------------------------------------------------

ParslError = FarmError
ConfigurationError = ConfigError
