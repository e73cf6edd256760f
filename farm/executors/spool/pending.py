"""The futures this driver waits for, by task key: the one table all its threads share.

The writer thread adds a key's future before the task can finish in the spool (so no
notice can arrive for a key nobody waits for yet); the collector takes a key's futures
when it reads the key's result; upkeep fails every future when the spool is taken over or
the blocks keep failing; the caller's thread counts what is left at shutdown.  Each method
holds the lock only for the dict operations, never across a filesystem call.
"""

from __future__ import annotations

import threading

from farm.dataflow.futures import AppFuture


class Pending:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.futures: dict[str, list[AppFuture]] = {}
        # Queued key -> the bundle it was written in: its dependents are indexed under the
        # bundle's id (deps/XX/BID-K/), so a completer lists one directory per bundle.
        self.bundle_of: dict[str, str] = {}

    def add(self, key: str, future: AppFuture) -> None:
        with self.lock:
            self.futures.setdefault(key, []).append(future)

    def __contains__(self, key: str) -> bool:
        with self.lock:
            return key in self.futures

    def empty(self) -> bool:
        with self.lock:
            return not self.futures

    def __len__(self) -> int:
        """How many keys are pending (queued, running, or waiting for dependencies)."""
        with self.lock:
            return len(self.futures)

    def keys(self) -> list[str]:
        with self.lock:
            return list(self.futures)

    def first(self, key: str) -> AppFuture | None:
        """One of key's futures (for its task's label), if any."""
        with self.lock:
            futs = self.futures.get(key)
        return futs[0] if futs else None

    def left(self) -> int:
        """How many futures are not done yet."""
        with self.lock:
            return sum(1 for futs in self.futures.values() for f in futs if not f.done())

    def take(self, key: str) -> list[AppFuture]:
        """key's futures, which the caller resolves: the key is no longer pending."""
        with self.lock:
            self.bundle_of.pop(key, None)
            return self.futures.pop(key, [])

    def fail(self, key: str, exc: BaseException) -> None:
        with self.lock:
            futs = self.futures.pop(key, [])
        for f in futs:
            if not f.done():
                f.set_exception(exc)

    def fail_all(self, exc: BaseException) -> None:
        for key in self.keys():
            self.fail(key, exc)
