"""The driver's progress: a live line on a terminal, plain lines in a log, a summary at the
end, and a switch to turn them off."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import textwrap

from tests.conftest import run_script

SCRIPT = textwrap.dedent("""
    import os, sys, time
    import farm
    from farm import python_app
    from farm.executors import SpoolExecutor
    from farm.providers import LocalProvider

    @python_app
    def work(i, gate):
        import os, time
        while not os.path.exists(gate):  # (the first run holds its tasks until told)
            time.sleep(0.01)
        if i % 10 == 3:
            raise ValueError(i)
        return i

    gate = sys.argv[1]
    ex = SpoolExecutor(spool="wf.farm", provider=LocalProvider(), idle_timeout=5)
    with farm.load(farm.Config(executors=[ex])):
        futs = [work(i, gate) for i in range(40)]
        print("submitted", flush=True)
        time.sleep(float(sys.argv[2]))  # (long enough for a progress line or two)
        open(gate, "w").close()
        bad = sum(1 for f in futs if f.exception(60) is not None)
        print("failed", bad, flush=True)
""")


def summary(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if " tasks: " in ln]
    assert len(lines) == 1, stderr
    return lines[0]


def test_log_lines_and_summary_then_resume(tmp_path):
    (tmp_path / "wf.py").write_text(SCRIPT)
    env_before = os.environ.get("FARM_PROGRESS")
    os.environ["FARM_PROGRESS"] = "0.5"  # (a plain line every 0.5 s: stderr is a pipe)
    try:
        r = run_script(tmp_path / "wf.py", tmp_path, str(tmp_path / "gate"), "2", timeout=120)
    finally:
        if env_before is None:
            del os.environ["FARM_PROGRESS"]
        else:
            os.environ["FARM_PROGRESS"] = env_before
    assert r.returncode == 0, r.stderr
    assert "failed 4" in r.stdout
    # While the tasks were held: plain lines, no terminal escapes, all 40 counted.
    lines = re.findall(r"farm: (\d+) done, (\d+) failed, (\d+) running, (\d+) queued of (\d+)",
                       r.stderr)
    assert lines, r.stderr
    for done, failed, running, queued, total in lines:
        assert int(total) == 40
        assert int(done) + int(failed) + int(running) + int(queued) == 40
    assert "\x1b[" not in r.stderr
    s = summary(r.stderr)
    assert "40 tasks: 36 done, 4 failed in " in s, s
    spool = str(tmp_path / "wf.farm")
    assert f"farm report {spool}" in r.stderr

    # The same script again: 36 results reused, the 4 failures run again (and fail again).
    r = run_script(tmp_path / "wf.py", tmp_path, str(tmp_path / "gate"), "0", timeout=120)
    assert r.returncode == 0, r.stderr
    s = summary(r.stderr)
    assert "40 tasks: 36 done, 4 failed, 36 reused from the spool, 4 failed before and " \
           "re-run in " in s, s


def test_off_by_environment(tmp_path):
    (tmp_path / "wf.py").write_text(SCRIPT)
    (tmp_path / "gate").touch()
    r = subprocess.run([sys.executable, "wf.py", "gate", "0"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "FARM_PROGRESS": "0"})
    assert r.returncode == 0, r.stderr
    assert " tasks: " not in r.stderr and " done, " not in r.stderr, r.stderr


def test_live_line_on_a_terminal(tmp_path):
    """On a terminal: a line redrawn in place (rich), gone at the end, then the summary."""
    (tmp_path / "wf.py").write_text(SCRIPT)
    main, sub = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, "wf.py", "gate", "2"], cwd=tmp_path,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=sub,
                             env={k: v for k, v in os.environ.items() if k != "FARM_PROGRESS"})
        os.close(sub)
        seen = b""
        while True:  # (until the child closes the terminal: it has exited)
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: no writer left
                break
            if not chunk:
                break
            seen += chunk
        out, _ = p.communicate(timeout=120)
    finally:
        os.close(main)
    assert p.returncode == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert re.search(r"farm: \d+ done, \d+ failed, \d+ running, \d+ queued of 40", text), text
    assert "\x1b[2K" in text  # (erased and redrawn in place)
    assert "40 tasks: 36 done, 4 failed in " in text, text
    # What the script printed to stdout while the line was shown is intact.
    assert b"failed 4" in out
