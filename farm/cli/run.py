"""farm run TASKFILE | --array SPEC -- CMD | --each-line INPUTS -- CMD: shell commands on
farm, one task per line, resumable."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from farm.errors import ConfigError

if TYPE_CHECKING:
    from farm.config import Config

HELP = """Run shell commands as farm tasks: each non-empty line of TASKFILE that does not
start with # (or one command per --array index or --each-line input) is a bash app, run
in this directory with its stdout and stderr in the spool.  farm run is the driver: kill
it at any moment and run it again; lines that finished are not run again (also when other
lines were added, removed or moved), changed lines run.  Exit status 0 when every line
succeeded, 1 otherwise (the summary names the failed lines and their stderr files).

Replacement strings in CMD (GNU parallel's): {} the value, {#} its sequence number,
{.} the value without its extension, {/} its basename, {//} its directory, {/.} its
basename without extension.  Each value is shell-quoted; with no replacement string, the
value is appended.  The words of CMD are joined by spaces, so one quoted word may hold
shell syntax: farm run --array 1-3 -- 'echo {} > out{}.txt'.

A line may say what it needs of its node in a trailing comment, which bash ignores:
  bwa mem -t 8 ref.fa r.fq > r.sam   # farm: cores=8 memory=16000
(cores, memory in MB, gpus, running_time in seconds, priority: higher runs first).  Pools
pack lines into their nodes by these; a line no node can hold fails at once."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a file of shell commands (or an array)",
                       usage="farm run [options] TASKFILE | --array SPEC -- CMD... | "
                             "--each-line INPUTS -- CMD...",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("taskfile", nargs="?", help="a file of bash commands, one per line")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--array", metavar="SPEC",
                      help="one task per index: FIRST-LAST[:STEP][,...]; CMD after --")
    what.add_argument("--each-line", metavar="INPUTS",
                      help="one task per non-empty line of INPUTS; CMD after --")
    p.add_argument("--spool", help="the spool (default: NAME.farm in the site's spool_root, "
                                   "else here; NAME: the task file's or inputs' name)")
    p.add_argument("--site", help="a site file (YAML) saying where tasks run (default: "
                                  "$FARM_SITE, else pools on this machine)")
    p.add_argument("--retries", type=int, help="times a failed line is tried again")
    p.add_argument("--walltime", type=float, metavar="SECONDS",
                   help="a line running longer is killed and fails")
    p.add_argument("--cores", type=float, help="cores each task gets (its worker's share: "
                                               "a pool runs cores/this tasks at once)")
    p.add_argument("--mem", type=float, metavar="GIB", help="memory each task gets (GiB)")
    p.add_argument("--gpus", type=int, help="accelerators on each node (one per task)")
    stop = p.add_mutually_exclusive_group()
    stop.add_argument("--max-failures", type=int, metavar="N",
                      help="submit no more lines once N have failed (those running finish)")
    stop.add_argument("--keep-going", action="store_true",
                      help="run every line whatever fails (the default)")
    p.add_argument("--detach", action="store_true",
                   help="submit and return at once; pools go on (see farm wait SPOOL)")


def run(args: argparse.Namespace) -> int:
    import farm
    from farm import runs
    from farm.spool import Spool

    command = args.cmd  # (what followed --: see farm.cli.main)
    lines, name, source = _lines(args, command)
    if not lines:
        print(f"farm run: {source} has no commands", file=sys.stderr)
        return 0
    asked = {ln: runs.split_request(ln) for ln in lines}  # (a bad comment fails here)
    config = _config(args)
    ex = config.executors[0]
    # Beside the task file (or here, for --array and --each-line), unless the site or
    # $FARM_SPOOL_ROOT says where spools go: not in whatever directory we were started in.
    root = (config.run_dir or os.environ.get("FARM_SPOOL_ROOT")
            or (os.path.dirname(os.path.abspath(args.taskfile)) if args.taskfile else "."))
    ex.spool_path = args.spool or os.path.join(root, f"{name}.farm")
    before: set[str] = set()
    if os.path.exists(os.path.join(ex.spool_path, "spool.yaml")):
        before = Spool(ex.spool_path).result_keys()
    cwd = os.getcwd()
    opts = {"walltime": args.walltime} if args.walltime else {}
    limit = None if args.keep_going else args.max_failures
    with farm.load(config) as dfk:
        if dfk.progress is not None:
            dfk.progress.summarize = False  # (ours below says more: which lines failed)
        spool = ex.spool
        assert spool is not None  # (made by load)
        if limit is None:
            futures = [_line(asked[ln][0], asked[ln][1], cwd, **opts) for ln in lines]
        else:
            futures = _submit_until(lines, asked, cwd, opts, limit, ex)
        keys = [f.key for f in futures]
        refused = _refused(futures)
        runs.write_manifest(spool, name, source, cwd, lines[:len(keys)], keys, refused)
        farm.flush()
        if args.detach:
            for ln, f in zip(lines, futures, strict=False):
                if f.key in refused:
                    print(f"farm run: line {ln.number} refused: {refused[f.key]}",
                          file=sys.stderr)
            print(f"farm run: {len(futures)} lines submitted to {spool.path}; pools go on "
                  f"without this process. See: farm wait {spool.path}", file=sys.stderr)
            return 0
        _wait(futures)
        manifest = runs.read_manifest(spool, name)
        summary = runs.summarize(spool, manifest, reused={k for k in keys if k in before},
                                 refused=_refused(futures))
        if len(futures) < len(lines):
            summary.total = len(lines)
            summary.pending += len(lines) - len(futures)
    print(summary.report(spool), file=sys.stderr)
    return 0 if summary.ok else 1


def _lines(args: argparse.Namespace, command: list[str]) -> tuple[list, str, str]:
    from farm import runs
    if args.array is not None:
        values = [(i, str(i)) for i in runs.parse_array(args.array)]
        return runs.expand(command, values), "array", f"--array {args.array}"
    if args.each_line is not None:
        stem = os.path.splitext(os.path.basename(args.each_line))[0]
        return (runs.expand(command, runs.read_inputs(args.each_line)), stem,
                f"--each-line {args.each_line}")
    if command:
        raise ConfigError("a command after -- needs --array or --each-line")
    if not args.taskfile:
        raise ConfigError("say what to run: a TASKFILE, --array SPEC -- CMD, or "
                          "--each-line INPUTS -- CMD")
    stem = os.path.splitext(os.path.basename(args.taskfile))[0]
    return runs.read_taskfile(args.taskfile), stem, args.taskfile


def _config(args: argparse.Namespace) -> Config:
    from farm import Config, site
    from farm.executors import SpoolExecutor
    config = site.load(args.site) if args.site else site.from_env() or Config()
    ex = config.executors[0]
    if not isinstance(ex, SpoolExecutor):
        raise ConfigError("farm run needs a SpoolExecutor as the first executor")
    if args.retries is not None:
        if args.retries < 0:
            raise ConfigError("--retries must be 0 or more")
        config.retries = args.retries
    for flag, value in (("--cores", args.cores), ("--mem", args.mem), ("--gpus", args.gpus),
                        ("--walltime", args.walltime), ("--max-failures", args.max_failures)):
        if value is not None and value <= 0:
            raise ConfigError(f"{flag} must be positive, got {value}")
    if args.cores:
        ex.cores_per_worker = args.cores
    if args.mem:
        ex.mem_per_worker = args.mem
    if args.gpus:
        ex.accelerators = [str(i) for i in range(args.gpus)]
    return config


def _refused(futures: list) -> dict[str, str]:
    """Why the lines whose futures failed without running failed, by key (the summary
    reads the others' outcomes from the spool, where these have none)."""
    return {f.key: f"{type(e).__name__}: {e}" for f in futures
            if f.done() and (e := f.exception()) is not None}


def _line(command: str, request: dict, cwd: str, **opts: Any) -> Any:
    if request:
        opts = {**opts, "parsl_resource_specification": request}
    return _app()(command, cwd, **opts)


_APP: Any = None


def _app() -> Any:
    """The bash app of a line (made once; its key covers the command, its directory, and
    how many identical lines came before it)."""
    global _APP
    if _APP is None:
        from farm import AUTO_LOGNAME, bash_app

        @bash_app
        def line(command: str, cwd: str, stdout: Any = AUTO_LOGNAME,
                 stderr: Any = AUTO_LOGNAME) -> str:
            return command

        _APP = line
    return _APP


def _submit_until(lines: list, asked: dict, cwd: str, opts: dict, limit: int,
                  ex: Any) -> list:
    """Submit lines a window at a time, and none more once `limit` have failed."""
    window = max(8, 2 * (ex.workers or os.cpu_count() or 1))  # (enough to keep pools busy)
    futures: list = []
    for ln in lines:
        while sum(not f.done() for f in futures[-window:]) >= window:
            time.sleep(0.05)
        if sum(1 for f in futures if f.done() and f.exception() is not None) >= limit:
            print(f"farm run: {limit} lines failed; submitting no more "
                  f"({len(lines) - len(futures)} left)", file=sys.stderr)
            break
        command, request = asked[ln]
        futures.append(_line(command, request, cwd, **opts))
    return futures


def _wait(futures: list) -> None:
    """Wait for every line (the driver's progress line says how far it got)."""
    for f in futures:
        f.exception()
