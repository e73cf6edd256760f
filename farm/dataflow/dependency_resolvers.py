"""Where the kernel looks for futures in an app call's arguments (Config(dependency_resolver=)).

SHALLOW_DEPENDENCY_RESOLVER (the default, as in Parsl): futures passed as arguments, as
keyword arguments, or as items of inputs=[...].  DEEP_DEPENDENCY_RESOLVER: also futures
nested inside lists, tuples, sets and dicts (keys and values), at any depth; the app gets
the same containers with each future replaced by its result.

A resolver is two functions: gather(value) -> the futures in it, and unwrap(value) -> the
value with its (finished) futures replaced by their results.  Both are functools
singledispatch functions, so a user type can be taught to either with ``.register``.
Futures found by a deep resolver inside containers are awaited in the driver before the
task is handed to its executor (futures passed directly are wired in the spool, as always).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import singledispatch
from typing import Any

from farm.dataflow.futures import DataFuture


@dataclass(frozen=True)
class DependencyResolver:
    """traverse_to_gather(value) -> list of futures; traverse_to_unwrap(value) -> value."""
    traverse_to_gather: Callable[[Any], list[Future]]
    traverse_to_unwrap: Callable[[Any], Any]


def _result(fut: Future) -> Any:
    # (a DataFuture stands for its File, which the app opens: not for the parent's result)
    return fut.file_obj if isinstance(fut, DataFuture) else fut.result()


@singledispatch
def shallow_gather(value: Any) -> list[Future]:
    return []


@shallow_gather.register
def _(value: Future) -> list[Future]:
    return [value]


@singledispatch
def shallow_unwrap(value: Any) -> Any:
    return value


@shallow_unwrap.register
def _(value: Future) -> Any:
    return _result(value)


@singledispatch
def deep_gather(value: Any) -> list[Future]:
    return []


@deep_gather.register
def _(value: Future) -> list[Future]:
    return [value]


@deep_gather.register(list)
@deep_gather.register(tuple)
@deep_gather.register(set)
@deep_gather.register(frozenset)
def _(value: Any) -> list[Future]:
    return [f for item in value for f in deep_gather(item)]


@deep_gather.register(dict)
def _(value: dict) -> list[Future]:
    return [f for k, v in value.items() for f in (*deep_gather(k), *deep_gather(v))]


@singledispatch
def deep_unwrap(value: Any) -> Any:
    return value


@deep_unwrap.register
def _(value: Future) -> Any:
    return _result(value)


@deep_unwrap.register(list)
@deep_unwrap.register(set)
@deep_unwrap.register(frozenset)
def _(value: Any) -> Any:
    return type(value)(deep_unwrap(v) for v in value)


@deep_unwrap.register(tuple)
def _(value: tuple) -> Any:
    items = [deep_unwrap(v) for v in value]
    if hasattr(value, "_fields"):  # a namedtuple: built from its fields, not an iterable
        return type(value)(*items)
    return type(value)(items)


@deep_unwrap.register(dict)
def _(value: dict) -> Any:
    return type(value)((deep_unwrap(k), deep_unwrap(v)) for k, v in value.items())


SHALLOW_DEPENDENCY_RESOLVER = DependencyResolver(shallow_gather, shallow_unwrap)
DEEP_DEPENDENCY_RESOLVER = DependencyResolver(deep_gather, deep_unwrap)

__all__ = ["DEEP_DEPENDENCY_RESOLVER", "SHALLOW_DEPENDENCY_RESOLVER", "DependencyResolver"]
