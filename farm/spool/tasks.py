"""Tasks: payloads written once, their state entries, and claims.

``Tasks`` publishes apps and tasks (one, or a bundle of ready ones in one file), reads them
back checked, enters them in ``ready/`` or ``waiting/``, and claims them: a worker's claim
is one rename out of ``ready/`` (``Recovery.give_back`` puts claims back).
"""

from __future__ import annotations

import errno
import os
from typing import Any

from farm.errors import CorruptFile
from farm.spool import fs, records
from farm.spool.layout import (
    DOORBELL,
    SHARDS,
    _link_into,
    _read_head,
    entry_name,
    entry_tasks,
    is_bundle,
    is_entry,
    new_bundle_id,
    priority_of,
    split_name,
)
from farm.spool.results import Results


class Tasks(Results):
    def put_app(self, app_id: str, header: dict[str, Any], body: bytes) -> None:
        path = self.p("apps", app_id)
        # (a hint: if the app is there but not visible here, the link below says so)
        if fs.peek(path, 0) is None:
            self._publish(path, records.encode("APP", header, body, self.key))

    def read_app(self, app_id: str) -> tuple[dict[str, Any], bytes]:
        path = self.p("apps", app_id)
        data = fs.read(path)
        if data is None:  # perhaps only not visible here yet: the caller decides
            raise FileNotFoundError(errno.ENOENT, "app payload not found", path)
        return records.decode("APP", data, path, self.key)

    def put_task(self, key: str, header: dict[str, Any], body: bytes, state: str) -> bool:
        """put_tasks of one task, entered in state ("ready" or "waiting"); False if it
        existed already."""
        return not self.put_tasks([(key, header, body)], state)

    def put_bundle(self, items: list[tuple[str, dict[str, Any], bytes]]) -> list[str]:
        """put_tasks of several ready tasks (a bundle)."""
        return self.put_tasks(items, "ready")

    def put_tasks(self, items: list[tuple[str, dict[str, Any], bytes]],
                  state: str = "ready", links: bool = True) -> list[str]:
        """Publish task payloads with one file and enter them in state: create the file in
        tmp/, link it to tasks/XX/KEY per key (the commit point: EEXIST means that task
        exists already), rename it into state/.  One task is a plain record in
        tmp/KEY.new; several are a bundle, tmp/BID.bundle, entered as state/BID: 1 + 2/K
        operations per task instead of 3.  A chain bundle (its tasks wait for each other,
        and perhaps for tasks outside it) is entered in waiting/ whole, as one task would
        be, if it waits for a task outside it.  Returns the keys that existed already (not
        published; the caller attaches to them).

        If a key of a bundle existed, the bundle is not entered whole (it holds a task that
        is not ours to run): each new key gets its own ready/KEY link to the file instead.

        links=False (a bundle of ready tasks the driver knows to be new: Writer): no
        tasks/XX/KEY links, 2/K operations per task.  Its tasks' payload is then the bundle
        file: reached from a state entry while queued, and afterwards from bundle_path(BID)
        (named in each result's header), where the file is kept (retire_bundle).  A
        kill -9 before the rename leaves a file no key is linked to: garbage, and its
        tasks, in no state and without a result, are submitted again by the next driver.

        kill -9 of one task's submission between the link and the rename leaves
        tmp/KEY.new linked to the payload; the next driver's O_EXCL create finds it,
        removes it and starts again, its link then fails, and is_orphan() (link count 1,
        no result) tells it to enqueue.  A bundle's tmp/BID.bundle is finished by the next
        driver's recover_bundles(), which enters the keys that were linked to it.
        """
        if len(items) == 1:
            key, header, body = items[0]
            tmp = self.p("tmp", f"{key}.new")
            entry = entry_name(key, 0, priority_of(header)) if state == "ready" else key
            try:
                self._create_new(tmp, records.encode("TASK", header, body, self.key))
            except OSError:
                fs.unlink(tmp)  # (a partial file must not stay behind: ENOSPC, EROFS...)
                raise
        else:
            entry = new_bundle_id(len(items))
            recs = []
            for key, header, body in items:
                header["bundle"] = entry  # the dependents of these tasks are indexed by bundle
                recs.append((key, records.encode("TASK", header, body, self.key)))
            tmp = self.p("tmp", f"{entry}.bundle")
            fs.create(tmp, records.encode_bundle(entry, "TASK", recs))
        linked, existed = [], []
        try:
            for key, _, _ in items if links or len(items) == 1 else ():
                try:
                    _link_into(tmp, self.task_path(key))
                    linked.append(key)
                except FileExistsError:
                    existed.append(key)
            if existed:
                self.enter_each(tmp, linked)
            else:
                fs.rename(tmp, self.p(state, entry))
        except OSError:
            if not linked:
                fs.unlink(tmp)
            raise  # (linked keys are found by the next driver: is_orphan, recover_bundles)
        return existed

    @staticmethod
    def _create_new(path: str, data: bytes) -> None:
        try:
            fs.create(path, data, exclusive=True)
        except FileExistsError:
            fs.unlink(path)  # left by a driver that died here
            fs.create(path, data, exclusive=True)

    def enter_each(self, src: str, keys: list[str], attempt: int = 0,
                   data: bytes | None = None) -> None:
        """Give each key of the bundle file src an entry of its own: Graph.enter_each (a
        task that waits for another goes to waiting/, which the graph keeps)."""
        raise NotImplementedError

    def retire_bundle(self, path: str) -> None:
        """Drop a bundle's claim (or its file in tmp/) once each of its tasks has a result
        or an entry of its own: renamed to bundle_path, where it stays the payload of the
        tasks that have no tasks/XX/KEY link (put_tasks(links=False)).  One rename, as
        the unlink it replaces."""
        bid = split_name(os.path.basename(path).removesuffix(".bundle"))[0]
        if not (is_entry(bid) and is_bundle(bid)):
            fs.unlink(path)
            return
        try:
            fs.rename(path, self.bundle_path(bid))
        except FileNotFoundError:
            pass  # (retired or given back by someone else: an observer, a sweep)

    def payload_path(self, key: str) -> str | None:
        """Where key's task record is: tasks/XX/KEY, or, for a task of a bundle without
        links, its bundle's kept file (kept_bundle); None if it has neither."""
        path = self.task_path(key)
        return path if fs.read(path, 0) is not None else self.kept_bundle(key)

    def kept_bundle(self, key: str) -> str | None:
        """The kept file of the bundle key's result names (a task of a bundle without
        links has no tasks/XX/KEY), or None."""
        data = _read_head(self.result_path(key))
        if data is None:
            return None
        try:
            bid = records.pick("RESULT", data, self.result_path(key), key)[0].get("bundle")
        except CorruptFile:
            return None
        if not (isinstance(bid, str) and is_entry(bid) and is_bundle(bid)):
            return None
        return self.bundle_path(bid)

    def read_task(self, path: str, key: str | None = None) -> tuple[dict[str, Any], bytes]:
        """The task at path (a state entry or payload; key: which one, if path may be a
        bundle file under another name)."""
        got, self._prefetched = self._prefetched, None
        data = got[1] if got is not None and got[0] == path else fs.read(path)
        if data is None:
            raise FileNotFoundError(errno.ENOENT, "task vanished", path)
        key = key or split_name(os.path.basename(path))[0]
        header, body = records.pick("TASK", data, path, key, self.key)
        return _check_task(header, path), body

    def decode_task(self, rec: bytes, path: str, key: str) -> tuple[dict[str, Any], bytes]:
        """A task record from a bundle (path: the bundle's file, for messages), checked."""
        header, body = records.decode_in_bundle("TASK", rec, path, key, self.key)
        return _check_task(header, path), body

    def read_bundle(self, path: str) -> tuple[dict[str, Any], list[tuple[str, bytes]]] | None:
        """A bundle entry's index and (key, record) pairs; None if it is gone."""
        data = fs.read(path)
        return None if data is None else records.bundle_records(data, path)

    def task_header(self, key: str) -> dict[str, Any] | None:
        """A task's header, without reading (or checking) its pickled arguments."""
        path = self.task_path(key)
        data = _read_head(path)
        if data is None:  # (a task of a bundle without links: its bundle's kept file)
            kept = self.kept_bundle(key)
            if kept is None:
                return None
            path, data = kept, _read_head(kept)
        if data is None:
            return None
        return _check_task(records.pick("TASK", data, path, key)[0], path)

    def label(self, key: str) -> str:
        """NAME-KEY8, as messages name a task (the name from its header, if readable)."""
        try:
            header = self.task_header(key) or {}
        except CorruptFile:
            header = {}
        return f"{header.get('name', 'task')}-{key[:8]}"

    def task_keys(self, prefix: str = "") -> list[str]:
        """The keys of the tasks in the spool that start with prefix: those of tasks/ and
        of results/ (a task of a bundle without links has only a result), by a listing
        of each shard the prefix allows.  Queued tasks of such bundles are not among
        them (Recovery.queued_keys finds those)."""
        keys = {k for top in ("tasks", "results") for s in SHARDS if s.startswith(prefix[:2])
                for k in fs.listdir(self.p(top, s))
                if k.startswith(prefix) and is_entry(k) and not is_bundle(k)}
        return sorted(keys)

    def enqueue(self, key: str, ready: bool, priority: int = 0) -> None:
        """Link a published payload into ready/ or waiting/ (EEXIST: it is already there).
        priority: the task's (priority_of its header), for its name in ready/."""
        name = entry_name(key, 0, priority) if ready else key
        try:
            fs.link(self.task_path(key), self.p("ready" if ready else "waiting", name))
        except FileExistsError:
            pass

    def ready_names(self) -> list[str]:
        return [n for n in fs.listdir(self.p("ready")) if is_entry(n)]

    def ready_listing(self) -> tuple[list[str], bool]:
        """The entries of ready/, and whether the shutdown doorbell is rung (one listing)."""
        names = fs.listdir(self.p("ready"))
        return [n for n in names if is_entry(n)], DOORBELL in names

    def ready_tasks(self, names: list[str] | None = None) -> int:
        """Tasks in ready/ (a bundle counts as its size)."""
        return sum(entry_tasks(n) for n in (self.ready_names() if names is None else names))

    def claim(self, name: str, worker_dir: str) -> str | None:
        """Move ready/NAME into worker_dir.  The rename decides: ENOENT means another
        worker won, and we return None."""
        dst = os.path.join(worker_dir, name)
        try:
            fs.rename(self.p("ready", name), dst)
        except FileNotFoundError:
            return None
        return dst


def _check_task(header: dict[str, Any], path: str) -> dict[str, Any]:
    """A task header has the fields the protocol routes by, of the right types."""
    deps = header.get("deps")
    if (header.get("kind") not in ("python", "bash") or not isinstance(header.get("app"), str)
            or not isinstance(header.get("name"), str) or not isinstance(deps, list)
            or not all(isinstance(d, str) for d in deps)
            or not isinstance(header.get("retries", 0), int)):
        raise CorruptFile(path, "task header lacks kind, app, name or deps, or has them of "
                                "the wrong type")
    return header
