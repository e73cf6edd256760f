"""App caching under Parsl's names: id_for_memo and BasicMemoizer.

farm's task keys already are content hashes of an app call (keys.py): identical calls of a
``cache=True`` app share one task, and a spool keeps every result, so a re-run reuses them.
What this module adds is Parsl's interface to that:

- ``id_for_memo``: a functools.singledispatch function; register a type with it to say
  what of its values identifies a call (``@id_for_memo.register(MyType)`` returning bytes or
  any plain value).  A registered type's values are keyed by what it returns.  An argument
  of a cache=True app that farm can neither encode nor pickle (and whose type is not
  registered) is an error at call time, naming its type.
- ``BasicMemoizer(memoize=, checkpoint_mode=, checkpoint_files=, checkpoint_period=)`` for
  ``Config(memoizer=...)``: the same options as Config's own.
"""

from __future__ import annotations

import pickle
from functools import singledispatch
from typing import Any

from farm.errors import ConfigError


@singledispatch
def id_for_memo(obj: Any, output_ref: bool = False) -> Any:
    """What identifies obj in a cached call's key; register a function for your types."""
    raise ValueError(f"unknown type for memoization: {type(obj).__module__}."
                     f"{type(obj).__qualname__}: register it with "
                     "farm.dataflow.memoization.id_for_memo.register")


@id_for_memo.register(str)
@id_for_memo.register(int)
@id_for_memo.register(float)
@id_for_memo.register(bool)
@id_for_memo.register(bytes)
@id_for_memo.register(type(None))
@id_for_memo.register(list)
@id_for_memo.register(tuple)
@id_for_memo.register(dict)
@id_for_memo.register(set)
@id_for_memo.register(frozenset)
def _builtin(obj: Any, output_ref: bool = False) -> bytes:
    # (what farm's keys encode themselves: for callers of id_for_memo, their pickle)
    return pickle.dumps(obj)


_BASE = id_for_memo.dispatch(object)


def registered(t: type) -> bool:
    """Has a user registered a function for t (or a base class of it)?  (Not the built-in
    types' own: a subclass of dict is keyed as before, by its pickle.)"""
    impl = id_for_memo.dispatch(t)
    return impl is not _BASE and impl is not _builtin


class BasicMemoizer:
    """Parsl's memoizer options (Config(memoizer=BasicMemoizer(...))).

    memoize: False turns app caching off (as Config(app_cache=False)).
    checkpoint_files: spools whose results cache=True apps reuse (get_last_checkpoint()).
    checkpoint_mode, checkpoint_period: accepted; a spool holds every result as soon as
        it exists, which is what any checkpoint mode asks for.
    """

    def __init__(self, memoize: bool = True, checkpoint_mode: str | None = None,
                 checkpoint_files: list[str] | None = None,
                 checkpoint_period: str | None = None):
        if not isinstance(memoize, bool):
            raise ConfigError(f"BasicMemoizer(memoize=...) must be True or False, got "
                              f"{memoize!r}")
        self.memoize = memoize
        self.checkpoint_mode = checkpoint_mode
        self.checkpoint_files = checkpoint_files
        self.checkpoint_period = checkpoint_period

    def __repr__(self) -> str:
        return (f"BasicMemoizer(memoize={self.memoize}, checkpoint_mode="
                f"{self.checkpoint_mode!r}, checkpoint_files={self.checkpoint_files!r})")


Memoizer = BasicMemoizer  # (older Parsl's name)

__all__ = ["BasicMemoizer", "Memoizer", "id_for_memo"]
