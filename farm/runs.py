"""Runs of shell commands (``farm run``): task files, arrays, one command per input line,
and what became of each line, read back from the spool (``farm wait``).

A task file holds one bash command per line; empty lines and lines starting with ``#`` are
skipped.  ``--array`` and ``--each-line`` make the lines from a command template with
GNU parallel's replacement strings (``REPLACEMENTS``); each value is shell-quoted, so a
value with spaces, quotes or ``$`` reaches the command as written.

Each line is one bash app call whose key covers its command text, its directory and its
occurrence count (the kernel's ordinal among identical calls): a re-run finds the lines
that finished, wherever they moved in the file, and runs changed and new lines.  The run's
lines and keys are kept in the spool (``runs/NAME.yaml``), so that ``farm wait`` can tell
how the run is going without the driver.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from farm import requests
from farm.errors import ConfigError
from farm.spool import OK, Spool, fs

# GNU parallel's replacement strings that farm supports, longest first (so that {/.} is
# not read as {/} followed by a dot).
REPLACEMENTS = ("{//}", "{/.}", "{#}", "{/}", "{.}", "{}")


@dataclass(frozen=True)
class Line:
    """One command of a run: its number in the task file (or its value's, 1-based)."""
    number: int
    command: str


def read_taskfile(path: str) -> list[Line]:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the task file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (UTF-8)") from None
    return [Line(n, line) for n, raw in enumerate(text.splitlines(), 1)
            if (line := raw.strip()) and not line.startswith("#")]


def read_inputs(path: str) -> list[tuple[int, str]]:
    """(line number, text) of each non-empty line of an --each-line file, as written (no
    stripping but of the line end: a value may start or end with a space)."""
    try:
        with open(path, encoding="utf-8") as f:
            return [(n, line) for n, line in enumerate(f.read().splitlines(), 1) if line]
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the input file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (UTF-8)") from None


def parse_array(spec: str) -> list[int]:
    """``1-1000``, ``1-1000:10``, ``7``, or several of them joined by commas."""
    out: list[int] = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\s*-\s*(\d+)(?:\s*:\s*(\d+))?)?\s*", part)
        if not m:
            raise ConfigError(f"--array {spec!r}: use FIRST-LAST[:STEP] or a number, "
                              "comma-separated (e.g. 1-100:2,200)")
        first, last, step = int(m[1]), int(m[2] or m[1]), int(m[3] or 1)
        if last < first or step < 1:
            raise ConfigError(f"--array {spec!r}: {part.strip()} is empty (LAST < FIRST or "
                              "STEP < 1)")
        out.extend(range(first, last + 1, step))
    return out


def expand(template: list[str], values: Iterable[tuple[int, str]]) -> list[Line]:
    """One line per (number, value): the template's words joined by spaces (as GNU parallel
    does: a word may hold shell syntax, such as `>`), each replacement string replaced by
    the value, shell-quoted; with no replacement string in it, the value is appended."""
    if not template:
        raise ConfigError("no command: give it after --, e.g. farm run --array 1-10 -- "
                          "echo {}")
    text = " ".join(template)
    pattern = re.compile("|".join(re.escape(r) for r in REPLACEMENTS))
    if not pattern.search(text):
        text += " {}"
    lines = []
    for seq, (number, value) in enumerate(values, 1):
        parts = {"{}": value, "{#}": str(seq), "{.}": os.path.splitext(value)[0],
                 "{/}": os.path.basename(value), "{//}": os.path.dirname(value),
                 "{/.}": os.path.splitext(os.path.basename(value))[0]}
        lines.append(Line(number, _substitute(pattern, text, parts)))
    return lines


def _substitute(pattern: re.Pattern[str], text: str, parts: dict[str, str]) -> str:
    def quoted(m: re.Match[str]) -> str:
        return shlex.quote(parts[m[0]])
    return pattern.sub(quoted, text)


# A line's request (farm.requests), as a trailing shell comment, so that the line is still
# the command it was:  bwa mem -t 8 ref.fa r.fq > r.sam   # farm: cores=8 memory=16000
_REQUEST = re.compile(r"\s#\s*farm:(.*)$")


def split_request(line: Line) -> tuple[str, dict[str, float]]:
    """A line's command without its "# farm: KEY=VALUE ..." comment, and the request it
    makes (farm.requests keys; memory in MB)."""
    m = _REQUEST.search(line.command)
    if m is None:
        return line.command, {}
    req: dict[str, float] = {}
    for word in m[1].split():
        k, eq, v = word.partition("=")
        try:
            req[k] = float(v) if eq else float("nan")
        except ValueError:
            req[k] = float("nan")
        if req[k] != req[k]:
            raise ConfigError(f"line {line.number}: {word!r} in its '# farm:' comment is not "
                              "KEY=NUMBER (e.g. # farm: cores=8 memory=16000)")
    requests.normalize(req, f"line {line.number}")
    return line.command[:m.start()].rstrip(), req


# -- the run's record in the spool -------------------------------------------------------------

def write_manifest(spool: Spool, name: str, source: str, cwd: str, lines: list[Line],
                   keys: list[str], refused: dict[str, str] | None = None) -> str:
    """The run's record (refused: why the driver refused lines that never reached the
    spool, by key: farm wait counts them as failed)."""
    path = spool.run_manifest(name)
    fs.mkdir(os.path.dirname(path))  # (a spool made before farm run existed has none)
    refused = refused or {}
    spool.replace(path, yaml.safe_dump({
        "name": name, "source": source, "cwd": cwd, "written": time.time(),
        "lines": [{"line": ln.number, "command": ln.command, "key": k,
                   **({"refused": refused[k]} if k in refused else {})}
                  for ln, k in zip(lines, keys, strict=True)]}, sort_keys=False).encode())
    return path


def read_manifest(spool: Spool, name: str | None = None) -> dict[str, Any]:
    """A run's record (name: which run; default the latest written)."""
    folder = os.path.dirname(spool.run_manifest("x"))
    names = [n[:-5] for n in fs.listdir(folder) if n.endswith(".yaml")]
    if not names:
        raise ConfigError(f"{spool.path} holds no farm run (no runs/*.yaml): it was not made "
                          "by farm run, or farm run was stopped before it submitted")
    if name is None:
        name = max(names, key=lambda n: (fs.stat(spool.run_manifest(n)) or
                                         os.stat_result((0,) * 10)).st_mtime)
    elif name not in names:
        raise ConfigError(f"no run {name!r} in {spool.path}; it has {', '.join(sorted(names))}")
    data = yaml.safe_load(fs.read(spool.run_manifest(name)) or b"")
    if not isinstance(data, dict) or not isinstance(data.get("lines"), list):
        raise ConfigError(f"{spool.run_manifest(name)}: damaged run record")
    return data


@dataclass
class Summary:
    total: int
    done: int = 0
    reused: int = 0
    pending: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)  # line, command, why, stderr

    @property
    def ok(self) -> bool:
        return self.done == self.total

    def progress(self) -> str:
        return (f"{self.done} of {self.total} lines done, {len(self.failed)} failed, "
                f"{self.pending} queued or running")

    def report(self, spool: Spool) -> str:
        out = [f"farm run: {self.total} lines: {self.done} done "
               f"({self.reused} of them from an earlier run), {len(self.failed)} failed"
               + (f", {self.pending} not finished" if self.pending else "")]
        for f in self.failed[:20]:
            out.append(f"  line {f['line']}: {f['command'][:70]}")
            out.append(f"    {f['why']}")
            if f.get("stderr"):
                out.append(f"    stderr: {f['stderr']}")
        if len(self.failed) > 20:
            out.append(f"  ... and {len(self.failed) - 20} more (farm status {spool.path})")
        if self.failed or self.pending:
            out.append("Run the same command again to run what failed or did not finish; "
                       "lines that finished are not run again.")
        out.append(f"spool {spool.path}; report: farm report {shlex.quote(spool.path)}")
        return "\n".join(out)


def summarize(spool: Spool, manifest: dict[str, Any], reused: Iterable[str] = (),
              have: set[str] | None = None,
              refused: dict[str, str] | None = None) -> Summary:
    """What became of each line: from the results in the spool (have: the keys that have a
    result, if the caller has just listed them; else they are listed here; refused: why
    the driver refused lines that never reached the spool, by key)."""
    entries = manifest["lines"]
    have = spool.result_keys() if have is None else have
    s = Summary(total=len(entries))
    for e in entries:
        key = e.get("key")
        if key not in have:
            why = e.get("refused") or (refused or {}).get(key)
            if why:
                s.failed.append({"line": e.get("line"), "command": str(e.get("command")),
                                 "why": why})
            else:
                s.pending += 1
            continue
        head = dict(next(iter(spool.iter_results([key])), (key, {}))[1])
        if head.get("status") == OK:
            s.done += 1
            s.reused += key in reused
        else:
            s.failed.append({"line": e.get("line"), "command": str(e.get("command")),
                             "why": head.get("error") or head.get("status"),
                             "stderr": head.get("stderr")})
    return s
