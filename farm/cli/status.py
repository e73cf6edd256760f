"""farm status SPOOL: task counts by state, live pools, recent failures."""

from __future__ import annotations

import argparse
import time

from farm.spool import OK, Spool

HELP = "Show what a spool holds: tasks by state, live pools, and the most recent failures."


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="summarise a spool", description=HELP)
    p.add_argument("spool", help="the spool directory")
    p.add_argument("--failures", type=int, default=5, help="how many recent failures to show")


def run(args: argparse.Namespace) -> int:
    spool = Spool(args.spool)
    c = spool.counts()
    results = list(spool.iter_results())
    done = sum(1 for _, h in results if h.get("status") == OK)
    failed = [(k, h) for k, h in results if h.get("status") != OK]
    print(f"spool {spool.path} (format {spool.info['format']}, farm {spool.info.get('farm')})")
    print(f"tasks {c['tasks']}: waiting {c['waiting']}, ready {c['ready']}, "
          f"running {c['running']}, done {done}, failed {len(failed)}")
    pools = [p for p in spool.pools() if p.get("state") == "running"]
    live = spool.live_pools()
    print(f"pools: {len(live)} live" + (f", {len(pools) - len(live)} silent"
                                         if len(pools) > len(live) else ""))
    for p in live:
        node = p.get("node")
        shape = ""
        if isinstance(node, dict) and isinstance(node.get("cores"), (int, float)):
            # (what farm.requests packs tasks into: cores, memory, accelerators)
            shape = (f" node={node['cores']:g}c/{int(node.get('memory') or 0) // 1024}G/"
                     f"{node.get('gpus', 0)}gpu")
        print(f"  {p['pool']} block={p.get('block')} workers={p.get('workers')} "
              f"busy={p.get('busy')}{shape} heartbeat {p['age']:.0f}s ago")
    if failed:
        print(f"recent failures (of {len(failed)}):")
        failed.sort(key=lambda kh: kh[1].get("t_end") or 0, reverse=True)
        for key, h in failed[: args.failures]:
            when = time.strftime("%H:%M:%S", time.localtime(h.get("t_end") or 0))
            print(f"  {when} {h.get('name')}-{key[:8]} [{h.get('status')}] {h.get('error')}")
            if h.get("stderr"):
                print(f"           stderr: {h['stderr']}")
    return 0
