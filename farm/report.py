"""farm report: one self-contained HTML page about a spool's run, read from the spool alone.

The page is meant to be mailed, copied off a cluster or opened from a login node's disk, so
it needs nothing but itself: CSS and a small script inline, charts drawn here as SVG, and a
Content-Security-Policy that forbids loading anything else (a stray external reference then
fails loudly in the browser instead of leaking a request).  The script only adds comfort
(sorting, an app filter) and marks the page as rendered; everything is readable without it.

Sections: counts; a timeline of attempts, one row per pool.worker and one bar per attempt
(as Nextflow's timeline); figures per app; a histogram of durations; the failures with
their error, remote traceback and the tail of their stderr.  Every string that comes from
the spool (names, errors, paths, output) goes through esc(): it may hold < and &.
"""

from __future__ import annotations

import html
import math
import os
import shlex
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from farm import history
from farm.errors import unpack_exception
from farm.spool import DEP_FAILED, OK, Spool, fs
from farm.version import __version__

TAIL_LINES = 20  # of a failure's stderr
TAIL_BYTES = 64 * 1024  # read at most this much of a stream to find its last lines
DETAILED = 50  # failures shown with traceback and stderr; the others get one line each
LISTED = 1000  # one-line failures listed at most (farm list --failed has them all)
OPEN = 5  # failures shown unfolded

# Status -> CSS class (and colour); anything else a spool may say is "other".
STATUS_CLASS = {OK: "ok", "failed": "failed", "lost": "lost"}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass
class Attempt:
    """One attempt of a task: a retried or lost one (attempts/KEY.N) or its result."""

    task: history.Task
    head: dict[str, Any]

    @property
    def app(self) -> str:
        return app_of(self.task)

    @property
    def status(self) -> str:
        return str(self.head.get("status"))

    @property
    def start(self) -> float | None:
        return _num(self.head.get("t_start"))

    @property
    def end(self) -> float | None:
        return _num(self.head.get("t_end"))

    @property
    def duration(self) -> float | None:
        s, e = self.start, self.end
        return max(e - s, 0.0) if s is not None and e is not None else None

    @property
    def row(self) -> tuple[str, int]:
        """Where it ran: (pool, worker), the timeline's row."""
        w = self.head.get("worker")
        return str(self.head.get("pool")), int(w) if isinstance(w, int) else -1

    @property
    def cpu(self) -> float:
        # A bash app's command is a child of the worker: its CPU is kept apart.
        return (_num(self.head.get("cpu")) or 0.0) + (_num(self.head.get("child_cpu")) or 0.0)


def app_of(t: history.Task) -> str:
    return str(t.header.get("name") or t.name)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


@dataclass
class Run:
    spool: Spool
    tasks: list[history.Task]
    attempts: list[Attempt]  # every attempt the spool keeps a record of
    drawn: list[Attempt] = field(init=False)  # those with a start and an end: timed ones

    def __post_init__(self) -> None:
        self.drawn = [a for a in self.attempts if a.duration is not None]

    def count(self, state: str) -> int:
        return sum(1 for t in self.tasks if t.state == state)


def collect(spool: Spool) -> Run:
    """Every task and every attempt of the spool (farm.history), read once."""
    tasks = history.tasks(spool)
    # One listing of attempts/ says which tasks ran more than once; history.attempts lists
    # it per task, which costs a round trip per task on NFS, so it is asked only for those.
    retried = {n.split(".", 1)[0] for n in fs.listdir(spool.p("attempts"))}
    attempts = []
    for t in tasks:
        heads = history.attempts(spool, t) if t.key in retried else \
            ([t.result] if t.result else [])
        # (a dep_failed result is no attempt: the task never ran)
        attempts += [Attempt(t, h) for h in heads if h.get("status") != DEP_FAILED]
    return Run(spool, tasks, attempts)


def write(spool: Spool, out: str) -> Run:
    """Write the report on spool to out (all or nothing: through a temporary file)."""
    run = collect(spool)
    page = render(run)
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return run


# -- formatting ------------------------------------------------------------------------------

def fmt_dur(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1:
        return f"{s * 1000:.3g} ms"
    if s < 60:
        return f"{s:.3g} s"
    if s < 3600:
        return f"{int(s // 60)} m {int(s % 60):02d} s"
    if s < 86400:
        return f"{int(s // 3600)} h {int(s % 3600 // 60):02d} m"
    return f"{int(s // 86400)} d {int(s % 86400 // 3600):02d} h"


def fmt_when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def td(value: float | int | None, text: str | None = None) -> str:
    """A numeric cell; data-v is what the page's script sorts by."""
    if value is None:
        return '<td class="num" data-v="-1">-</td>'
    return f'<td class="num" data-v="{value:.6g}">{esc(text if text is not None else value)}</td>'


# -- sections --------------------------------------------------------------------------------

def summary(run: Run) -> str:
    drawn = run.drawn
    first = min((a.start for a in drawn if a.start is not None), default=None)
    last = max((a.end for a in drawn if a.end is not None), default=None)
    wall = last - first if first is not None and last is not None else None
    stats: list[tuple[str, float, str]] = [("total", len(run.tasks), f"{len(run.tasks):,}")]
    stats += [(s, run.count(s), f"{run.count(s):,}")
              for s in ("done", "failed", "waiting", "ready", "running")]
    stats += [("attempts", len(run.attempts), f"{len(run.attempts):,}"),
              ("wall", round(wall, 3) if wall is not None else -1, fmt_dur(wall))]
    cells = "".join(f'<div class="stat s-{k}" data-stat="{k}" data-value="{v}">'
                    f'<b>{esc(text)}</b><span>{"wall time" if k == "wall" else k}</span></div>'
                    for k, v, text in stats)
    pools = sorted({a.row[0] for a in drawn})
    hosts = sorted({str(a.head.get("host")) for a in drawn if a.head.get("host")})
    facts = [("spool", f'<code id="spool-path">{esc(run.spool.path)}</code>'),
             ("created", esc(run.spool.info.get("created", "-"))),
             ("ran", f"{esc(fmt_when(first))} to {esc(fmt_when(last))}"),
             ("where", f"{len(pools)} pool(s), {len({a.row for a in drawn})} worker(s) on "
                       f"{len(hosts)} host(s): {esc(', '.join(hosts[:8]))}"
                       + (" ..." if len(hosts) > 8 else ""))]
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
    return f'<div class="stats">{cells}</div><table class="facts">{rows}</table>'


# Steps of a time axis above a second: ones a clock reads (15 s, 5 m, 1 h...), not 2000 s.
CLOCK_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
               43200, 86400)


def nice_step(span: float, ticks: int = 8) -> float:
    """The step between ticks giving about `ticks` intervals over span: 1, 2 or 5 times a
    power of ten below a second and above a day, a clock's step in between."""
    raw = max(span, 1e-9) / ticks
    if 1 <= raw <= CLOCK_STEPS[-1]:
        return next(float(s) for s in CLOCK_STEPS if s >= raw)
    if raw > CLOCK_STEPS[-1]:
        return nice_step(span / 86400, ticks) * 86400
    p = 10 ** math.floor(math.log10(raw))
    return next(m * p for m in (1, 2, 5, 10) if m * p >= raw)


def timeline(run: Run) -> str:
    drawn = run.drawn
    if not drawn:
        return "<p>No attempt has run yet.</p>"
    t0 = min(a.start for a in drawn if a.start is not None)
    span = max(max(a.end for a in drawn if a.end is not None) - t0, 1e-3)
    rows = sorted({a.row for a in drawn})
    index = {r: i for i, r in enumerate(rows)}
    # Rows shrink as they multiply, so that a thousand workers still make a page one can
    # scroll; below 10 px a row loses its own label and each pool is labelled once.
    row_h = 16 if len(rows) <= 48 else 10 if len(rows) <= 160 else 4
    bar_h = max(row_h - 4, 2)
    names = [f"{p}.{w}" for p, w in rows]
    label_w = min(max(len(n) for n in names) * 7 + 12, 280)
    plot_w, top = 1000, 22
    width, height = label_w + plot_w + 16, top + row_h * len(rows) + 4

    def x(t: float) -> float:
        return label_w + (t - t0) / span * plot_w

    out = [f'<svg id="timeline-svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="timeline of attempts">']
    step = nice_step(span)
    for i in range(int(span / step) + 1):
        tx = x(t0 + i * step)
        out.append(f'<line class="grid" x1="{tx:.1f}" y1="{top - 4}" x2="{tx:.1f}" '
                   f'y2="{height}"/><text class="tick" x="{tx:.1f}" y="{top - 8}">'
                   f'{esc(fmt_dur(i * step) if i else "0")}</text>')
    for i, (pool, _) in enumerate(rows):
        y = top + i * row_h
        if i % 2:
            out.append(f'<rect class="stripe" x="0" y="{y}" width="{width}" height="{row_h}"/>')
        if row_h >= 10:
            out.append(f'<text class="row{"" if row_h > 10 else " small"}" x="4" '
                       f'y="{y + row_h - 3}">{esc(names[i])}</text>')
        elif i == 0 or rows[i - 1][0] != pool:
            out.append(f'<line class="pool" x1="0" y1="{y}" x2="{width}" y2="{y}"/>'
                       f'<text class="row" x="4" y="{y + 9}">{esc(pool)}</text>')
    for a in sorted(drawn, key=lambda a: a.start or 0):
        start, end = a.start or t0, a.end or t0  # (both set: drawn)
        x0, y0 = x(start), top + index[a.row] * row_h + (row_h - bar_h) / 2
        w = max(x(end) - x0, 1.0)  # an attempt of a millisecond is still to be seen
        css = STATUS_CLASS.get(a.status, "other")
        tip = (f"{a.task.label} · {a.app} · {fmt_dur(a.duration)} · {a.status}"
               f" · attempt {a.head.get('attempt', 0)} · {a.row[0]}.{a.row[1]}"
               f" on {a.head.get('host', '?')}")
        out.append(f'<rect class="bar {css}" x="{x0:.1f}" y="{y0:.1f}" width="{w:.1f}" '
                   f'height="{bar_h}" data-app="{esc(a.app)}"><title>{esc(tip)}</title></rect>')
    out.append("</svg>")
    apps = sorted({a.app for a in drawn})
    options = "".join(f'<option value="{esc(n)}">{esc(n)}</option>' for n in apps)
    legend = "".join(f'<span class="chip {c}"></span>{c} ' for c in
                     ("ok", "failed", "lost", "other"))
    untimed = len(run.attempts) - len(drawn)  # (lost with their worker: no start time)
    return (f'<p class="legend">{legend} · <span id="bar-count">{len(drawn):,} attempts</span>'
            + (f" (and {untimed:,} lost with no start time)" if untimed else "")
            + f' on {len(rows)} worker(s), from {esc(fmt_when(t0))}, over {fmt_dur(span)} · '
            f'<label>app <select id="app-filter"><option value="">all</option>{options}'
            f'</select></label></p><div class="scroll" id="timeline">{"".join(out)}</div>')


def histogram(run: Run, nbins: int = 30) -> str:
    """Durations of the attempts that ran, ok and failed stacked; bins on a log scale when
    durations spread over more than a factor 30 (a millisecond task and an hour one)."""
    durs = [(a.duration, STATUS_CLASS.get(a.status, "other"))
            for a in run.drawn if a.duration is not None]
    if not durs:
        return "<p>No attempt has run yet.</p>"
    hi = max(d for d, _ in durs)
    positive = [d for d, _ in durs if d > 0]
    lo = max(min(positive), hi / 1e6) if positive else hi
    log = hi > 0 and hi / lo > 30
    if log:
        edges = [lo * (hi / lo) ** (i / nbins) for i in range(nbins + 1)]
    else:
        edges = [hi * i / nbins for i in range(nbins + 1)] if hi > 0 else [0.0, 1.0]
    n = len(edges) - 1
    counts: list[dict[str, int]] = [{} for _ in range(n)]
    for d, css in durs:
        if log:
            i = 0 if d <= lo else int(math.log(d / lo) / math.log(hi / lo) * n)
        else:
            i = int(d / edges[-1] * n)
        c = counts[min(max(i, 0), n - 1)]
        c[css] = c.get(css, 0) + 1
    peak = max(sum(c.values()) for c in counts)
    left, plot_w, plot_h, top = 50, 1000, 180, 10
    bw = plot_w / n
    out = [f'<svg id="histogram-svg" width="{left + plot_w + 20}" height="{top + plot_h + 40}"'
           f' role="img" aria-label="histogram of durations">',
           f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" '
           f'y2="{top + plot_h}"/>',
           f'<text class="tick" x="{left - 6}" y="{top + 10}" text-anchor="end">{peak}</text>',
           f'<text class="tick" x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>']
    for i, c in enumerate(counts):
        total, y = sum(c.values()), float(top + plot_h)
        if total:
            tip = (f"{fmt_dur(edges[i])} to {fmt_dur(edges[i + 1])}: {total} attempt(s) ("
                   + ", ".join(f"{v} {k}" for k, v in sorted(c.items())) + ")")
            out.append(f'<g class="hbin"><title>{esc(tip)}</title>')
            for css in ("ok", "failed", "lost", "other"):
                h = c.get(css, 0) / peak * plot_h
                if h:
                    y -= h
                    out.append(f'<rect class="{css}" x="{left + i * bw + 1:.1f}" y="{y:.1f}"'
                               f' width="{max(bw - 2, 1):.1f}" height="{h:.1f}"/>')
            out.append("</g>")
        if i % 5 == 0:
            out.append(f'<text class="tick" x="{left + i * bw:.1f}" y="{top + plot_h + 16}">'
                       f'{esc(fmt_dur(edges[i]))}</text>')
    out.append(f'<text class="tick" x="{left + plot_w:.1f}" y="{top + plot_h + 16}" '
               f'text-anchor="end">{esc(fmt_dur(edges[-1]))}</text>')
    out.append(f'<text class="tick" x="{left}" y="{top + plot_h + 34}">duration of an attempt'
               f' ({"log" if log else "linear"} scale); height: number of attempts</text>')
    return f'<div class="scroll">{"".join(out)}</svg></div>'


def apps(run: Run) -> str:
    by_app: dict[str, list[history.Task]] = {}
    for t in run.tasks:
        by_app.setdefault(app_of(t), []).append(t)
    tries: dict[str, list[Attempt]] = {}
    for a in run.attempts:
        tries.setdefault(a.app, []).append(a)
    body = []
    for name in sorted(by_app):
        ts, tr = by_app[name], tries.get(name, [])
        durs = [a.duration for a in tr if a.duration is not None]
        rss = [int(a.head["maxrss_kb"]) for a in tr if isinstance(a.head.get("maxrss_kb"), int)]
        cpu = sum(a.cpu for a in tr)
        kinds = sorted({str(t.header.get("kind")) for t in ts if t.header.get("kind")})
        done = sum(t.state == "done" for t in ts)
        failed = sum(t.state == "failed" for t in ts)
        mean = statistics.fmean(durs) if durs else None
        median = statistics.median(durs) if durs else None
        top = max(durs) if durs else None
        body.append(
            f'<tr data-app="{esc(name)}"><td>{esc(name)}</td><td>{esc("/".join(kinds))}</td>'
            + td(len(ts)) + td(done) + td(failed) + td(len(ts) - done - failed) + td(len(tr))
            + td(mean, fmt_dur(mean)) + td(median, fmt_dur(median)) + td(top, fmt_dur(top))
            + td(cpu, f"{cpu:.2f}")
            + (td(max(rss), f"{max(rss) / 1024:.1f}") if rss else td(None)) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in (
        "app", "kind", "tasks", "done", "failed", "pending", "attempts", "mean", "median",
        "max", "CPU s", "max RSS MiB"))
    return (f'<table class="sortable" id="apps"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table><p class="note">Durations, CPU (the '
            "app's process and its children) and memory are over every attempt that ran; "
            "pending is waiting, ready or running. Click a column to sort.</p>")


def failures(run: Run) -> str:
    failed = sorted((t for t in run.tasks if t.state == "failed"),
                    key=lambda t: _num((t.result or {}).get("t_end")) or 0.0)
    if not failed:
        return '<p id="no-failures">No task failed.</p>'
    own = [t for t in failed if (t.result or {}).get("status") != DEP_FAILED]
    deps = [t for t in failed if (t.result or {}).get("status") == DEP_FAILED]
    labels = {t.key: t.label for t in run.tasks}
    where = shlex.quote(run.spool.path)  # (for commands to paste)
    out = [f"<p>{len(own):,} task(s) failed"
           + (f"; {len(deps):,} more did not run because a dependency failed" if deps else "")
           + ". The earliest first: it is often the cause of the rest. "
           f"<code>farm show {esc(where)} TASK</code> tells everything about one."
           "</p>"]
    for i, t in enumerate(own[:DETAILED]):
        out.append(failure(run.spool, t, unfold=i < OPEN))
    rest = own[DETAILED:] + deps
    if rest:
        out.append('<table id="more-failures"><thead><tr><th>task</th><th>status</th>'
                   "<th>error</th></tr></thead><tbody>")
        for t in rest[:LISTED]:
            r = t.result or {}
            why = str(r.get("error"))
            if r.get("failed_deps"):
                why = "its dependencies failed: " + ", ".join(
                    labels.get(str(k), str(k)[:8]) for k in r["failed_deps"])
            out.append(f'<tr class="failure-line"><td><code>{esc(t.label)}</code></td>'
                       f"<td>{esc(r.get('status'))}</td><td>{esc(why)}</td></tr>")
        out.append("</tbody></table>")
        if len(rest) > LISTED:
            out.append(f"<p>... and {len(rest) - LISTED:,} more: <code>farm list "
                       f"{esc(where)} --failed</code></p>")
    return "".join(out)


def failure(spool: Spool, t: history.Task, unfold: bool) -> str:
    """One failed task: its error, where and when, the remote traceback, the stderr tail."""
    r = t.result or {}
    where = (f"attempt {r.get('attempt', 0)} on {r.get('host')} (pool {r.get('pool')}, "
             f"worker {r.get('worker')}), {fmt_dur(Attempt(t, r).duration)}, ended "
             f"{fmt_when(_num(r.get('t_end')))}" if r.get("host") else
             f"ended {fmt_when(_num(r.get('t_end')))}")
    if r.get("exit_code") is not None:
        where += f", exit code {r['exit_code']}"
    parts = [f'<details class="failure" data-task="{esc(t.label)}"{" open" if unfold else ""}>'
             f"<summary><code>{esc(t.label)}</code> <span class=\"error\">"
             f"{esc(r.get('error'))}</span></summary><p>{esc(where)}</p>"]
    trace = remote_traceback(spool, t)
    if trace:
        parts.append(f'<h4>traceback (where it ran)</h4><pre class="traceback">{esc(trace)}</pre>')
    got = stream_tail(spool, t)
    if got:
        what, lines, cut = got
        parts.append(f"<h4>{esc(what)}: last {len(lines)} line(s)"
                     f"{' (of more)' if cut else ''}</h4>"
                     f'<pre class="stderr">{esc(chr(10).join(lines))}</pre>')
    else:
        parts.append("<p>No stderr of it is kept.</p>")
    return "".join(parts) + "</details>"


def remote_traceback(spool: Spool, t: history.Task) -> str | None:
    """The traceback text from where the task ran, as farm show finds it (the result's
    body); None if there is none or it cannot be read here."""
    try:
        got = spool.read_result(t.key)
        if not got or not got[1]:
            return None
        cause = unpack_exception(got[1]).__cause__
    except Exception:  # a damaged or foreign body: the error line above still says why
        return None
    return str(cause).rstrip() if cause is not None else None


def stream_tail(spool: Spool, t: history.Task) -> tuple[str, list[str], bool] | None:
    """(what, last lines, whether there was more) of a failed task's stderr: its own file
    (stderr=, as bash apps have), else its byte range of the worker's output file."""
    r, h = t.result or {}, t.header
    path = r.get("stderr")
    if not path and isinstance(h.get("stderr"), list) and h["stderr"]:
        path = h["stderr"][0]  # ([path, mode], as the call gave it)
    if isinstance(path, str) and path:
        if not os.path.isabs(path) and h.get("cwd"):
            path = os.path.join(str(h["cwd"]), path)
        return _tail(f"stderr {path}", path, 0, None)
    out = r.get("output")
    if isinstance(out, list) and len(out) == 3:
        name, start, end = out
        path = os.path.join(spool.path, str(name))
        return _tail(f"output (stdout and stderr) {path} bytes {start}-{end}", path,
                     start, end)
    return None


def _tail(what: str, path: str, start: Any, end: Any) -> tuple[str, list[str], bool]:
    """The last TAIL_LINES lines of bytes start..end of path (end None: to its end)."""
    try:
        start = int(start)
        with open(path, "rb") as f:
            end = f.seek(0, os.SEEK_END) if end is None else int(end)
            begin = max(start, end - TAIL_BYTES)
            f.seek(begin)
            data = f.read(max(end - begin, 0))
    except (OSError, ValueError, TypeError) as e:  # (TypeError: a range that is no numbers)
        return what, [f"(cannot read it: {e})"], False
    lines = data.decode(errors="replace").splitlines()
    if begin > start and lines:
        lines = lines[1:]  # (it begins mid-line)
    return what, lines[-TAIL_LINES:], begin > start or len(lines) > TAIL_LINES


# -- the page --------------------------------------------------------------------------------

# Nothing may be fetched: scripts and styles are inline, images are SVG in the page.
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data:; base-uri 'none'; form-action 'none'")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;
  max-width:1260px;padding:0 16px 40px;color:#222}
h1{font-size:22px;margin:18px 0 4px}h2{font-size:17px;margin:28px 0 8px;
  border-bottom:1px solid #ddd;padding-bottom:3px}h4{margin:10px 0 4px;font-size:13px}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
pre{background:#f6f6f6;border:1px solid #e2e2e2;padding:8px;overflow:auto;max-height:360px;
  white-space:pre-wrap;word-break:break-all}
.stats{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0}
.stat{border:1px solid #ddd;border-radius:6px;padding:6px 12px;min-width:80px}
.stat b{display:block;font-size:20px}.stat span{color:#666;font-size:12px}
.s-done b{color:#2e7d32}.s-failed b{color:#c62828}
table{border-collapse:collapse;margin:6px 0}th,td{padding:3px 9px;text-align:left;
  border-bottom:1px solid #eee;vertical-align:top}td.num{text-align:right}
.facts th{color:#666;font-weight:normal}
table.sortable th{cursor:pointer;user-select:none;background:#fafafa}
th[data-sort=asc]::after{content:" \\25B2"}th[data-sort=desc]::after{content:" \\25BC"}
.scroll{overflow:auto;max-height:75vh;border:1px solid #eee}
svg text{font:11px ui-monospace,"DejaVu Sans Mono",monospace;fill:#444}
svg text.small{font-size:9px}
.grid,.axis{stroke:#ddd}.pool{stroke:#999}.stripe{fill:#f7f7f7}
.ok{fill:#59a14f}.failed{fill:#e15759}.lost{fill:#f28e2b}.other{fill:#9c9c9c}
rect.bar.dim{opacity:.12}rect.bar:hover{stroke:#000;stroke-width:1}
.chip{display:inline-block;width:10px;height:10px;margin:0 3px 0 8px}
.chip.ok{background:#59a14f}.chip.failed{background:#e15759}.chip.lost{background:#f28e2b}
.chip.other{background:#9c9c9c}
.legend,.note{color:#555;font-size:13px}
details.failure{border:1px solid #e6c4c4;border-radius:6px;padding:6px 10px;margin:8px 0}
details.failure summary{cursor:pointer}.error{color:#b71c1c}
#js-errors{background:#fdecea;border:1px solid #e57373;padding:8px}
"""

# Runs first, in <head>: any script error on the page, or anything the CSP blocked, is
# kept on <html data-errors> and shown, so a reader (or a headless browser's test) sees it.
JS_ERRORS = """
window.farmErrors = [];
function farmError(what) {
  window.farmErrors.push(what);
  document.documentElement.setAttribute("data-errors", window.farmErrors.join(" | "));
  var box = document.getElementById("js-errors");
  if (box) { box.hidden = false; box.textContent = "This page's script failed: " +
    window.farmErrors.join("; "); }
}
window.addEventListener("error", function (e) {
  farmError((e.message || "a resource failed to load") + (e.lineno ? " (line " + e.lineno +
    ")" : ""));
}, true);
window.addEventListener("unhandledrejection", function (e) { farmError(String(e.reason)); });
window.addEventListener("securitypolicyviolation", function (e) {
  farmError("blocked " + e.blockedURI + " (" + e.violatedDirective + ")");
});
"""

JS_MAIN = """
(function () {
  "use strict";
  var bars = document.querySelectorAll("#timeline rect.bar");
  var pick = document.getElementById("app-filter");
  if (pick) pick.addEventListener("change", function () {
    for (var i = 0; i < bars.length; i++) {
      bars[i].classList.toggle("dim", pick.value !== "" &&
                               bars[i].getAttribute("data-app") !== pick.value);
    }
  });
  function sortBy(th) {
    var table = th.closest("table"), tbody = table.tBodies[0], col = th.cellIndex;
    var asc = th.getAttribute("data-sort") !== "asc";
    var rows = Array.prototype.slice.call(tbody.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col], y = b.cells[col];
      var u = x.getAttribute("data-v"), v = y.getAttribute("data-v");
      var c = u !== null && v !== null ? parseFloat(u) - parseFloat(v)
                                       : x.textContent.localeCompare(y.textContent);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { tbody.appendChild(r); });
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("data-sort"); });
    th.setAttribute("data-sort", asc ? "asc" : "desc");
  }
  document.querySelectorAll("table.sortable th").forEach(function (th) {
    th.addEventListener("click", function () { sortBy(th); });
  });
  // What the page shows, counted by the browser: for a reader, and for a headless test.
  var count = document.getElementById("bar-count");
  if (count) count.textContent = bars.length.toLocaleString() + " attempts";
  document.body.setAttribute("data-bars", String(bars.length));
  document.body.setAttribute("data-rendered", window.farmErrors.length ? "errors" : "ok");
})();
"""


def render(run: Run) -> str:
    name = os.path.basename(run.spool.path)
    sections = [("summary", "Run", summary(run)),
                ("timeline", "Timeline: attempts per pool.worker", timeline(run)),
                ("apps", "Apps", apps(run)),
                ("durations", "Durations", histogram(run)),
                ("failures", f"Failures ({run.count('failed'):,})", failures(run))]
    body = "".join(f'<section id="s-{sid}"><h2>{esc(title)}</h2>{content}</section>'
                   for sid, title, content in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="farm {esc(__version__)}">
<title>farm report: {esc(name)}</title>
<style>{CSS}</style>
<script>{JS_ERRORS}</script>
</head><body data-tasks="{len(run.tasks)}" data-attempts="{len(run.drawn)}">
<div id="js-errors" hidden></div>
<h1>farm report: {esc(name)}</h1>
<p class="note">Written {esc(fmt_when(time.time()))} by farm {esc(__version__)} from the spool
alone; it changes no file there. Hover over a bar for its task.</p>
{body}
<script>{JS_MAIN}</script>
</body></html>
"""
