"""farm report: one self-contained HTML page from a real run's spool, checked as text and
then opened in a real headless Chromium (installed with apt-get if it is missing)."""

from __future__ import annotations

import csv
import io
import os
import pathlib
import re
import shutil
import struct
import subprocess
import textwrap
from collections import Counter
from html.parser import HTMLParser

import pytest

from tests.conftest import FARM, run_script

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHROMIUM = ROOT / "scripts" / "chromium-headless"

# 300 short python apps, 3 python apps that print 30 lines to stderr and raise, 2 bash apps
# that do the same with a stderr file of their own, one that fails once and then succeeds,
# and a dependent of a failure.  Errors and output hold < and & (to be escaped).
SCRIPT = textwrap.dedent("""
    import farm
    from farm import AUTO_LOGNAME, bash_app, python_app
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider

    @python_app
    def work(i):
        import time
        time.sleep(0.002 * (i % 5))
        return i * i

    @python_app
    def explode(i):
        import sys
        for k in range(30):
            print(f"explode {i} line {k} <tag> & amp", file=sys.stderr)
        raise ValueError(f"bad <input> & {i}")

    @python_app
    def flaky(marker):
        import os
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("first try fails")
        return "second try"

    @python_app
    def after(x):
        return x

    @bash_app
    def crash(i, stderr=AUTO_LOGNAME):
        return f'for k in $(seq 0 29); do echo "crash {i} line $k <b> & c" >&2; done; exit 3'

    ex = SpoolExecutor(spool="wf.farm", provider=LocalProvider(), max_workers_per_node=2,
                       idle_timeout=5)
    with farm.load(farm.Config(executors=[ex], retries=1)):
        futs = [work(i) for i in range(300)] + [explode(i) for i in range(3)]
        futs += [crash(i) for i in range(2)] + [flaky("marker"), after(futs[300])]
        for f in futs:
            f.exception(60)
""")
TASKS, DONE, FAILED = 307, 301, 6
ATTEMPTS = 300 + 3 * 2 + 2 * 2 + 2  # retries=1: each failure ran twice, flaky twice
FAILED_ATTEMPTS = 3 * 2 + 2 * 2 + 1


class Page(HTMLParser):
    """What a test needs from the report, parsed as a browser would read the markup
    (entities decoded): stats, bars, row labels, app rows, failures, references out."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stats: dict[str, str] = {}
        self.bars: list[dict[str, str]] = []  # attributes, plus "title"
        self.rows: list[str] = []
        self.apps: dict[str, list[str]] = {}
        self.failures: dict[str, str] = {}  # task label -> its text
        self.lines: list[str] = []  # the one-line failures' rows
        self.refs: list[str] = []  # src=, href=, action= values
        self.tags: set[str] = set()
        self.csp = ""  # the Content-Security-Policy the page declares
        self.text: list[str] = []
        self._app: str | None = None  # the app of the table row being read
        self._in: list[tuple[str, str]] = []  # (what, key) being collected
        self._buf: dict[tuple[str, str], list[str]] = {}
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.add(tag)
        self.refs += [v for k, v in a.items() if k in ("src", "href", "action", "xlink:href")]
        if tag == "meta" and a.get("http-equiv") == "Content-Security-Policy":
            self.csp = a["content"]
        if "data-stat" in a:
            self.stats[a["data-stat"]] = a["data-value"]
        cls = a.get("class", "").split()
        if tag == "rect" and "bar" in cls:
            self.bars.append(a)
            self._open("bar", str(len(self.bars) - 1))
        elif tag == "text" and "row" in cls:
            self._open("row", str(len(self.rows)))
        elif tag == "tr" and "data-app" in a:
            self._app = a["data-app"]
            self.apps[self._app] = []
        elif tag == "td" and self._app:
            self._open("cell", self._app)
        elif tag == "details" and "failure" in cls:
            self._open("failure", a["data-task"])
        elif tag == "tr" and "failure-line" in cls:
            self._open("line", str(len(self.lines)))

    def _open(self, what: str, key: str) -> None:
        self._in.append((what, key))
        self._buf[(what, key)] = []

    def handle_endtag(self, tag: str) -> None:
        ends = {"rect": "bar", "text": "row", "td": "cell", "details": "failure", "tr": "line"}
        if tag == "tr":
            self._app = None
        if self._in and ends.get(tag) == self._in[-1][0]:
            what, key = self._in.pop()
            got = "".join(self._buf.pop((what, key)))
            if what == "bar":
                self.bars[int(key)]["title"] = got
            elif what == "row":
                self.rows.append(got)
            elif what == "cell":
                self.apps[key].append(got)
            elif what == "failure":
                self.failures[key] = got
            else:
                self.lines.append(got)

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for k in self._in:
            self._buf[k].append(data)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A real run (local pool, 2 workers) in a directory whose name needs escaping, and
    its report written by the farm command."""
    d = tmp_path_factory.mktemp('report <&> "dir"')
    (d / "wf.py").write_text(SCRIPT)
    r = run_script(d / "wf.py", d, timeout=120)
    assert r.returncode == 0, r.stderr
    spool, out = d / "wf.farm", d / "report.html"
    r = subprocess.run([*FARM, "report", str(spool), "-o", str(out)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    trace = subprocess.run([*FARM, "trace", str(spool)], capture_output=True, text=True,
                           timeout=60)
    assert trace.returncode == 0, trace.stderr
    rows = list(csv.DictReader(io.StringIO(trace.stdout), delimiter="\t"))
    return {"dir": d, "spool": spool, "out": out, "stdout": r.stdout, "trace": rows,
            "html": out.read_text(encoding="utf-8")}


def test_the_command_says_where_the_report_is(run):
    lines = run["stdout"].splitlines()
    assert lines[0].startswith(f"farm report: wrote {run['out']} ({TASKS} tasks")
    assert run["out"].as_uri() in lines[1]


def test_counts_and_wall_time(run):
    page = Page(run["html"])
    assert {k: page.stats[k] for k in ("total", "done", "failed", "waiting", "ready",
                                       "running", "attempts")} == {
        "total": str(TASKS), "done": str(DONE), "failed": str(FAILED), "waiting": "0",
        "ready": "0", "running": "0", "attempts": str(ATTEMPTS)}
    ran = [r for r in run["trace"] if r["started"]]
    wall = max(float(r["ended"]) for r in ran) - min(float(r["started"]) for r in ran)
    assert abs(float(page.stats["wall"]) - wall) < 0.01
    assert str(run["spool"].resolve()) in page.text  # the absolute path, decoded
    assert 'report &lt;&amp;&gt; &quot;dir' in run["html"]


def test_one_bar_per_attempt_on_its_workers_row(run):
    page = Page(run["html"])
    assert len(page.bars) == ATTEMPTS
    assert Counter(b["class"] for b in page.bars) == {
        "bar ok": ATTEMPTS - FAILED_ATTEMPTS, "bar failed": FAILED_ATTEMPTS}
    ran = [r for r in run["trace"] if r["started"]]
    # Each bar's tooltip names its task, app and status: the same attempts as farm trace.
    assert Counter(b["title"].split(" · ")[0] for b in page.bars) == \
        Counter(r["task"] for r in ran)
    assert all(f" · {b['data-app']} · " in b["title"] for b in page.bars)
    assert sorted(page.rows) == sorted({f"{r['pool']}.{r['worker']}" for r in ran})


def test_per_app_figures(run):
    apps = Page(run["html"]).apps
    # app, kind, tasks, done, failed, pending, attempts, mean, median, max, CPU, RSS
    assert {a: cells[2:7] for a, cells in apps.items()} == {
        "work": ["300", "300", "0", "0", "300"], "explode": ["3", "0", "3", "0", "6"],
        "crash": ["2", "0", "2", "0", "4"], "flaky": ["1", "1", "0", "0", "2"],
        "after": ["1", "0", "1", "0", "0"]}
    assert apps["crash"][1] == "bash" and apps["work"][1] == "python"
    assert all(apps["work"][i] != "-" for i in (7, 8, 9, 11))
    assert float(apps["work"][11]) > 1  # max RSS, MiB


def test_failures_with_error_traceback_and_stderr_tail(run):
    page, raw = Page(run["html"]), run["html"]
    assert "bad &lt;input&gt; &amp; 0" in raw and "bad <input>" not in raw
    assert "<tag>" not in raw and "<b> & c" not in raw
    explode = {label: text for label, text in page.failures.items()
               if label.startswith("explode-")}
    crash = {label: text for label, text in page.failures.items()
             if label.startswith("crash-")}
    assert len(explode) == 3 and len(crash) == 2 and len(page.failures) == 5
    labels = {}
    for i in range(3):
        labels[i], text = next((k, v) for k, v in explode.items()
                               if f"bad <input> & {i}" in v)
        assert 'raise ValueError(f"bad <input> & {i}")' in text and "wf.py" in text
        # The last 20 of its 30 lines of output, its own and no other task's.
        assert f"explode {i} line 29 <tag> & amp" in text
        assert f"explode {i} line 10 <tag>" in text and f"explode {i} line 9 <tag>" not in text
        assert text.count("<tag>") == 20
    for i in range(2):
        text = next(v for v in crash.values() if f"crash {i} line" in v)
        assert "exit code 3" in text and "BashExitFailure" in text
        assert f"crash {i} line 29 <b> & c" in text and f"crash {i} line 9 <b>" not in text
        assert text.count("<b> & c") == 20
    # The dependent that never ran: one line naming the failure that stopped it.
    (line,) = page.lines
    assert line.startswith("after-") and "dep_failed" in line
    assert f"its dependencies failed: {labels[0]}" in line


def test_the_page_is_self_contained(run):
    raw, page = run["html"], Page(run["html"])
    assert page.refs == []
    assert not page.tags & {"link", "img", "iframe", "object", "embed", "base"}
    assert not re.search(r"https?:|@import|url\(", raw, re.I)
    assert page.csp.startswith("default-src 'none'; ")  # the browser fetches nothing
    assert "http" not in page.csp and "self" not in page.csp
    assert raw.rstrip().endswith("</html>")


def test_waiting_and_ready_counts(run, tmp_path):
    """A copy of the spool with its failures requeued and no pool to run them."""
    copy = tmp_path / "copy.farm"
    shutil.copytree(run["spool"], copy, ignore=lambda d, names: names
                    if os.path.basename(d) == "tmp" else [])
    r = subprocess.run([*FARM, "retry", str(copy), "--failed"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0 and "6 task(s) requeued" in r.stdout, r.stdout + r.stderr
    out = tmp_path / "r.html"
    r = subprocess.run([*FARM, "report", str(copy), "-o", str(out)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    stats = Page(out.read_text()).stats
    assert [stats[k] for k in ("total", "done", "failed", "ready", "waiting", "running")] == \
        [str(TASKS), str(DONE), "0", "5", "1", "0"]


def test_a_spool_that_does_not_exist(tmp_path):
    r = subprocess.run([*FARM, "report", str(tmp_path / "nosuch"), "-o",
                        str(tmp_path / "r.html")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == f"farm report: no spool at {tmp_path / 'nosuch'}: the directory " \
                       "does not exist\n"
    assert not (tmp_path / "r.html").exists()


# -- in a real browser -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def chromium():
    """A Chromium to run headless: scripts/chromium-headless installs the Debian package
    with apt-get if there is none (bounded; about a minute)."""
    r = subprocess.run([str(CHROMIUM), "--install"], capture_output=True, text=True,
                       timeout=660)
    assert r.returncode == 0, f"cannot install Chromium (scripts/chromium-headless " \
                              f"--install):\n{r.stderr}"
    return r.stdout.strip()


def headless(*args: str) -> subprocess.CompletedProcess:
    """Chromium, headless (--no-sandbox as root, a fresh profile, no GPU), with args; its
    log on stderr, where it reports the page's console messages and uncaught errors."""
    return subprocess.run([str(CHROMIUM), "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CHROMIUM_TIMEOUT": "90"})


def dom(page: pathlib.Path) -> tuple[str, str]:
    r = headless("--dump-dom", page.as_uri())
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout, r.stderr


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines()
            if re.search(r"CONSOLE|Uncaught|Refused to", line)]


@pytest.mark.timeout(720)
def test_chromium_renders_it_without_errors(run, chromium):
    page, log = dom(run["out"])
    html_tag = re.search(r"<html[^>]*>", page)[0]
    body_tag = re.search(r"<body[^>]*>", page)[0]
    assert "data-errors" not in html_tag, html_tag
    assert console_errors(log) == []
    # The script ran to its end, and the browser's DOM holds one bar per attempt.
    assert 'data-rendered="ok"' in body_tag, body_tag
    assert f'data-bars="{ATTEMPTS}"' in body_tag, body_tag
    assert f'<span id="bar-count">{ATTEMPTS} attempts</span>' in page
    assert len(Page(page).bars) == ATTEMPTS


@pytest.mark.timeout(720)
def test_chromium_would_report_a_script_error(run, chromium, tmp_path):
    """The two ways the test above hears of errors do hear of them: a page with a failing
    script and a blocked remote image."""
    broken = tmp_path / "broken.html"
    broken.write_text(run["html"].replace(
        "<div id=\"js-errors\" hidden></div>",
        "<div id=\"js-errors\" hidden></div><script>window.noSuchFunction();</script>"
        "<img src=\"https://127.0.0.1:9/x.png\">", 1))
    page, log = dom(broken)
    html_tag = re.search(r"<html[^>]*>", page)[0]
    assert "noSuchFunction is not a function" in html_tag
    assert "blocked https://127.0.0.1:9/x.png" in html_tag
    assert 'data-rendered="errors"' in page
    errors = console_errors(log)
    assert any("Uncaught TypeError: window.noSuchFunction" in line for line in errors), log
    assert any("https://127.0.0.1:9/x.png" in line and "Content Security Policy" in line
               for line in errors), log
    assert '<div id="js-errors">This page\'s script failed' in page


@pytest.mark.timeout(720)
def test_chromium_sorts_the_apps_and_filters_the_timeline(run, chromium, tmp_path):
    """The page's script at work: two clicks on the "tasks" header sort the app table by
    it, descending; picking an app in the filter dims every other app's bars."""
    probe = tmp_path / "probe.html"
    probe.write_text(run["html"].replace("</body>", """<script>
      var th = document.querySelectorAll("#apps th")[2];
      th.click(); th.click();
      var order = Array.prototype.map.call(document.querySelectorAll("#apps tbody tr"),
                                           function (r) { return r.getAttribute("data-app"); });
      var pick = document.getElementById("app-filter");
      pick.value = "explode";
      pick.dispatchEvent(new Event("change"));
      var lit = document.querySelectorAll("#timeline rect.bar:not(.dim)");
      document.body.setAttribute("data-probe", order.join(",") + " " + lit.length + " " +
        Array.prototype.every.call(lit, function (b) {
          return b.getAttribute("data-app") === "explode"; }));
    </script></body>""", 1))
    page, log = dom(probe)
    assert console_errors(log) == [] and "data-errors" not in re.search(r"<html[^>]*>", page)[0]
    order, lit, only = re.search(r'data-probe="([^"]*)"', page)[1].split()
    # 300, 3, 2 tasks, then the two apps of one task each in the table's order (by name):
    # the sort is stable.
    assert order == "work,explode,crash,after,flaky"
    assert (lit, only) == ("6", "true")


@pytest.mark.timeout(720)
def test_chromium_screenshot(run, chromium, tmp_path):
    png = tmp_path / "report.png"
    r = headless(f"--screenshot={png}", "--window-size=1400,1000", "--hide-scrollbars",
                 run["out"].as_uri())
    assert r.returncode == 0, r.stderr[-3000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1400, 1000)
    assert len(data) > 40_000, len(data)  # text, bars and tables, not a blank page
