"""Results: each task's outcome, published once, and the notices that tell the driver.

``Results`` publishes outcomes (one, or a batch in one file), reads them back, and says
whether a key has one: ``result_status`` for sure, ``peek_status`` as a hint (see
farm.spool.fs on why "not there" needs a listing to be believed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from farm.errors import CorruptFile
from farm.spool import fs, records
from farm.spool.layout import (
    FAILED,
    OK,
    SHARDS,
    Layout,
    _link_each,
    _link_into,
    _read_head,
    is_bundle,
    is_entry,
    new_bundle_id,
)

# A batch of independent outcomes is written as up to LINK_FILES files of at least
# LINK_FILE records, so that the links of several files overlap.
LINK_FILE, LINK_FILES = 32, 4


class Results(Layout):
    def publish_result(self, key: str, header: dict[str, Any], body: bytes = b"") -> bool:
        """Publish the outcome of key (publish_results of one); False if a result already
        existed (a racing pool won, and this outcome is dropped)."""
        return bool(self.publish_results([(key, header, body)]))

    def publish_results(self, batch: list[tuple[str, dict[str, Any], bytes]],
                        after: Mapping[str, Iterable[str]] | None = None,
                        lost: set[str] | None = None) -> list[str]:
        """Publish outcomes with one file (one record, or several as a bundle; a large batch
        with a few: LINK_FILE): linked to results/XX/KEY per key (each link decides for its
        key: EEXIST means a racing pool won, and that outcome is dropped), then renamed into
        notices/ as one notice (the same inode as the results).  For R results in a file,
        1 + 2/R operations each, and the driver reads them with one open.  Returns the keys
        published.

        If some key already had a result, its file holds an outcome that lost: it is not a
        notice then; each winner in it gets notices/KEY (a link to the file) instead.  A kill -9
        after some links leaves results without a notice (the driver's periodic check of
        pending keys finds them) and tasks without a result (their claim is still held, and
        is requeued).

        after and lost, for a chain run from values held in memory: after[KEY] are the
        keys whose values KEY's outcome was computed from; lost (updated) the keys whose
        outcome of this run lost its race.  An outcome computed from a lost one is not
        published either (the run that won publishes its own), so that a chain's results
        all come from one run of it."""
        recs = [(k, records.encode("RESULT", {"key": k, **h}, b, self.key)) for k, h, b in batch]
        # Independent outcomes go out several links at a time, from several files: links
        # from one file wait for each other (_link_each).  A chain's go in order, from one
        # file: whether one is published depends on the one before.
        n = len(recs)
        parallel = n >= 8 and not after
        size = -(-n // max(1, min(LINK_FILES, n // LINK_FILE))) if parallel else max(1, n)
        files: list[tuple[str, str, range]] = []  # (notice, tmp, indices of its records)
        try:
            for lo in range(0, n, size):
                part = range(lo, min(n, lo + size))
                if len(part) == 1:
                    notice, tmp, data = recs[lo][0], self.tmp(), recs[lo][1]
                else:
                    notice = new_bundle_id(len(part))
                    tmp, data = self.p("tmp", f"{notice}.results"), records.encode_bundle(
                        notice, "RESULT", recs[part.start:part.stop])
                fs.create(tmp, data)
                files.append((notice, tmp, part))
        except OSError:
            for _, tmp, _ in files:
                fs.unlink(tmp)
            raise
        src = [tmp for _, tmp, part in files for _ in part]
        errors = (_link_each([(src[i], self.result_path(k)) for i, (k, _) in enumerate(recs)])
                  if parallel else None)
        won: list[str] = []
        try:
            for i, (key, header, _) in enumerate(batch):
                try:
                    if errors is not None:
                        if (err := errors[i]) is not None:
                            raise err
                    elif lost is not None and after and lost.intersection(after.get(key, ())):
                        raise FileExistsError(key)  # (not ours to publish)
                    else:
                        _link_into(src[i], self.result_path(key))
                except FileExistsError:
                    if lost is not None:
                        lost.add(key)
                    continue
                won.append(key)
                if header.get("status") == OK:
                    self._status[key] = OK
        except OSError:
            mine = set(won)
            for _, tmp, part in files:  # (a partial file must not stay behind: ENOSPC...)
                if not any(recs[i][0] in mine for i in part):
                    fs.unlink(tmp)
            raise
        mine = set(won)
        for notice, tmp, part in files:
            keys = [recs[i][0] for i in part if recs[i][0] in mine]
            if len(keys) == len(part):
                fs.rename(tmp, self.notice_path(notice))
            else:
                self._enter_notices(tmp, keys)
        return won

    def _enter_notices(self, src: str, keys: list[str]) -> None:
        for key in keys:
            try:
                fs.link(src, self.notice_path(key))
            except FileExistsError:
                pass
        fs.unlink(src)

    def read_result(self, key: str, path: str | None = None) -> tuple[dict[str, Any], bytes] | None:
        path = path or self.result_path(key)
        data = fs.read(path)
        return None if data is None else records.pick("RESULT", data, path, key, self.key)

    def decode_result(self, rec: bytes, path: str, key: str) -> tuple[dict[str, Any], bytes]:
        """A result record from a bundle (path: the file, for messages), checked."""
        return records.decode_in_bundle("RESULT", rec, path, key, self.key)

    def read_notice(self, name: str) -> list[tuple[str, bytes]] | None:
        """The (key, result record) pairs of a notice: one, or a bundle's; None if the notice
        is gone.  Check each with records.decode before use."""
        path = self.p("notices", name)
        data = fs.read(path)
        if data is None:
            return None
        if not records.is_bundle(data):
            return [(name, data)]
        recs = records.bundle_records(data, path)[1]
        # notices/KEY may be a link to a bundle of results: only KEY's is its notice.
        return recs if is_bundle(name) else [(k, r) for k, r in recs if k == name]

    def result_status(self, key: str) -> str | None:
        """ok / failed / dep_failed, or None while key has no result (confirmed by a fresh
        listing of its shard).  Successes are cached (never reset); failures are not
        (rerun() may move them away)."""
        return self._result_status(key, fs.read)

    def peek_status(self, key: str) -> str | None:
        """result_status, where None is a hint: the result may exist but not be visible
        here yet.  For checks that are repeated until they see it (promotions, which the
        driver and sweeps redo; the driver's periodic look at its pending keys) and for
        first guesses that a link or rename then decides."""
        return self._result_status(key, fs.peek)

    def _result_status(self, key: str, read: Callable[..., bytes | None]) -> str | None:
        status = self._status.get(key)
        if status is None:
            path = self.result_path(key)
            data = _read_head(path, read)
            if data is None:
                return None
            try:
                status = str(records.pick("RESULT", data, path, key)[0].get("status"))
            except CorruptFile:
                return FAILED  # a damaged result: its dependents cannot run
            if status == OK:
                if len(self._status) > 500_000:
                    self._status.clear()
                self._status[key] = status
            elif fs.absent(path):
                # A failure may have been moved away by a rerun, and this node may still
                # see the old file (NFS): trust a failure only if a listing shows it.
                return None
        return status

    def notices(self) -> list[str]:
        return fs.listdir(self.p("notices"))

    def drop_notice(self, key: str) -> None:
        fs.unlink(self.p("notices", key))

    def record_attempt(self, key: str, attempt: int, header: dict[str, Any], body: bytes) -> None:
        """Keep the outcome of a failed attempt that is being retried (for reports)."""
        self._publish(self.attempt_path(key, attempt),
                      records.encode("RESULT", {"key": key, **header}, body, self.key))

    def failed_keys(self) -> list[str]:
        """Keys whose result is a failure of the task itself (not of a dependency)."""
        return [k for k, h in self.iter_results() if h.get("status") == FAILED]

    def result_keys(self) -> set[str]:
        """The keys that have a result now: one fresh listing per shard."""
        return {k for s in SHARDS for k in fs.listdir(self.p("results", s)) if is_entry(k)}

    def iter_results(self, keys: Iterable[str] | None = None
                     ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(key, header) of every result (or of the given keys that have one)."""
        if keys is None:
            keys = (k for s in SHARDS for k in fs.listdir(self.p("results", s)))
        for key in keys:
            data = _read_head(self.result_path(key))
            if data is None:
                continue
            try:
                yield key, records.pick("RESULT", data, self.result_path(key), key)[0]
            except CorruptFile:
                yield key, {"status": "corrupt"}
