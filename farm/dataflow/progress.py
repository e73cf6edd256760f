"""What the driver says while a workflow runs: a live progress line, and a summary at the end.

On a terminal, while futures are pending, one line on stderr (drawn with rich, redrawn
twice a second): done, failed, running and queued of the tasks submitted, tasks/s and
ETA.  Not a terminal (a batch job's log): a plain line every 30 s while work is pending,
so a log shows how far a run got without thousands of lines.  At cleanup: one summary.

Nothing here touches the filesystem.  The counts come from a Tally that AppFutures update
under the lock they hold anyway when they finish (see futures.py), and from each
executor's progress() (what it knows already: a SpoolExecutor counts the busy workers of
the heartbeats its pool watcher reads every 2 s anyway).  So the cost to the driver is one
integer increment per task and a thread that wakes twice a second on a terminal.

Turn it off with Config(progress=False) or FARM_PROGRESS=0 in the environment;
FARM_PROGRESS=N (seconds) sets how often the plain line is written.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import IO, Any

ENV = "FARM_PROGRESS"
PERIOD_TTY = 0.5  # seconds between redraws of the live line
PERIOD_LOG = 30.0  # seconds between plain lines when stderr is not a terminal


class Tally:
    """How many of the kernel's tasks were submitted, and finished well or badly.  done
    and failed are counted by AppFuture under the futures' lock (no lost update)."""

    __slots__ = ("submitted", "done", "failed", "started")

    def __init__(self) -> None:
        self.submitted = self.done = self.failed = 0
        self.started = time.time()


def wanted(setting: bool | None) -> bool:
    """Config.progress: True or False as given; None (the default) means on, unless the
    environment says FARM_PROGRESS=0 (or false, no, off)."""
    if setting is not None:
        return setting
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def log_period() -> float:
    """Seconds between plain lines: FARM_PROGRESS=N if it is a number > 0, else 30."""
    try:
        value = float(os.environ.get(ENV, ""))
    except ValueError:
        return PERIOD_LOG
    return value if value > 0 else PERIOD_LOG


class Progress:
    """The live line (or plain lines) in a thread of its own, and the summary at the end.

    counts(): the executors' own figures, summed (running, reused, rerun, spool)."""

    def __init__(self, tally: Tally, counts: Callable[[], dict[str, Any]],
                 stream: IO[str] | None = None):
        self.tally = tally
        self.counts = counts
        self._stream = stream  # (None: sys.stderr as it is when we write, not as it was)
        self.tty = _isatty(self.stream)
        self.stop = threading.Event()
        # (when, finished so far): the last minute's samples, for the rate
        self.samples: deque[tuple[float, int]] = deque(maxlen=int(60 / PERIOD_TTY) + 1)
        self.thread = threading.Thread(target=self._loop, name="farm-progress", daemon=True)
        self.live: Any = None  # a rich Live, while the line is shown
        self.shown = False  # whether any progress was ever shown
        self.summarize = True  # print the summary at the end (farm run prints its own)

    @property
    def stream(self) -> IO[str]:
        return self._stream or sys.stderr

    def start(self) -> None:
        self.thread.start()

    # -- the line -------------------------------------------------------------------------------

    def line(self, now: float | None = None) -> str:
        """done / failed / running / queued of the total, tasks/s and ETA."""
        now = time.monotonic() if now is None else now
        t = self.tally
        c = self.counts()
        finished = t.done + t.failed
        running = min(int(c.get("running", 0)), max(0, t.submitted - finished))
        queued = max(0, t.submitted - finished - running)
        self.samples.append((now, finished))
        then, before = self.samples[0]
        rate = (finished - before) / (now - then) if now - then >= 1 else None
        left = t.submitted - finished
        text = (f"farm: {t.done:,} done, {t.failed:,} failed, {running:,} running, "
                f"{queued:,} queued of {t.submitted:,}")
        if rate is not None:
            text += f" · {rate:,.1f}/s"
            if rate > 0 and left > 0:
                text += f" · ETA {_duration(left / rate)}"
        return text

    def _loop(self) -> None:
        period = PERIOD_TTY if self.tty else log_period()
        last = ""
        while not self.stop.wait(period):
            try:
                pending = self.tally.submitted > self.tally.done + self.tally.failed
                if self.tty:
                    self._draw(self.line() if pending else None)
                elif pending:
                    text = self.line()
                    if text != last:  # (a stalled run says so once, not every 30 s)
                        print(text, file=self.stream, flush=True)
                        last = text
                    self.shown = True
            except Exception:  # (progress must never take a workflow down)
                pass
        self._draw(None)

    def _draw(self, text: str | None) -> None:
        """Show text as the live line, or (None) remove the line."""
        if text is None:
            if self.live is not None:
                self.live.stop()
                self.live = None
            return
        from rich.text import Text
        line = Text(text, no_wrap=True, overflow="ellipsis")  # (one line, however narrow)
        if self.live is None:
            from rich.console import Console
            from rich.live import Live
            # transient: the line goes when the work is done; redirect: what the script
            # prints meanwhile is written above the line, not through it (stdout only if
            # it is a terminal too: else it goes where it was sent, untouched).
            self.live = Live(line, console=Console(file=self.stream),
                             auto_refresh=False, transient=True,
                             redirect_stdout=_isatty(sys.stdout), redirect_stderr=True)
            self.live.start()
            self.shown = True
        self.live.update(line, refresh=True)

    # -- the end --------------------------------------------------------------------------------

    def end(self) -> None:
        """Stop the thread (which removes the live line)."""
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(5)

    def report(self) -> None:
        """The summary, if there was anything to say."""
        self.end()
        text = self.summary() if self.summarize else None
        if text:
            try:
                print(text, file=self.stream, flush=True)
            except (OSError, ValueError):  # (stderr closed: the summary is not worth dying for)
                pass

    def summary(self) -> str | None:
        t = self.tally
        if t.submitted == 0:
            return None
        c = self.counts()
        left = t.submitted - t.done - t.failed
        parts = [f"{t.done:,} done", f"{t.failed:,} failed"]
        if c.get("reused"):
            parts.append(f"{c['reused']:,} reused from the spool")
        if c.get("rerun"):
            parts.append(f"{c['rerun']:,} failed before and re-run")
        if left:
            parts.append(f"{left:,} not finished")
        text = (f"farm: {t.submitted:,} tasks: " + ", ".join(parts)
                + f" in {_duration(time.time() - t.started)}")
        spools = list(c.get("spools") or ())
        for path in spools:
            text += f"\nfarm: spool {path}; report: farm report {_quote(path)}"
        return text


def sum_counts(executors: Iterable[Any]) -> Callable[[], dict[str, Any]]:
    """counts() for Progress: the executors' progress() figures, summed."""
    executors = list(executors)

    def counts() -> dict[str, Any]:
        out: dict[str, Any] = {"running": 0, "reused": 0, "rerun": 0, "spools": []}
        for ex in executors:
            get = getattr(ex, "progress", None)
            if get is None:
                continue
            for k, v in get().items():
                if k == "spool":
                    if v:
                        out["spools"].append(v)
                else:
                    out[k] = out.get(k, 0) + v
        return out
    return counts


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{max(seconds, 0):.1f} s" if seconds < 10 else f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def _quote(path: str) -> str:
    import shlex
    return shlex.quote(path)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
