"""From the runs' raw numbers to the figures (median/min/max), the targets, the ratios to the
machine's limits and to Parsl, the table, and the comparison of two result files.
See benchmarks/README.md for what each row means.
"""

from __future__ import annotations

import statistics
from typing import Any

from machine import LIMITS

OPKINDS = ("create", "rename", "link", "unlink", "stat", "listdir", "open", "mkdir")

# The project's targets (issue 5): metric -> (comparison, value).
TARGETS: dict[str, tuple[str, float]] = {
    "noop_tasks_per_s": (">=", 2500),
    "noop_large_tasks_per_s": (">=", 2500),
    "chain_ms_per_hop": ("<=", 1.0),
    "bash_tasks_per_s": (">=", 800),
    "first_result_s": ("<=", 1.0),
    "submit_calls_per_s": (">=", 10_000),
    "memory_bytes_per_task": ("<=", 1536),
    "noop_ops_per_task": ("<=", 4),
    "noop_large_ops_per_task": ("<=", 4),
    "pools_ratio": (">=", 0.70),
    "idle_ops_per_s": ("<=", 2),
}

# Parsl HighThroughputExecutor measured on a similar 2-core machine: the peer column when
# Parsl cannot be measured in this run.
PARSL_REFERENCE: dict[str, float] = {
    "noop_tasks_per_s": 441.0,
    "chain_ms_per_hop": 3.9,
    "bash_tasks_per_s": 184.0,
    "first_result_s": 8.3,
    "submit_calls_per_s": 1213.0,
    "memory_bytes_per_task": 5.5 * 1024,
}

# Every figure of the table: (key, runs it comes from, field of a run, unit, better, label).
# Labels are formatted with the sizes ({noop} = the no-op run's size...).
FARM_METRICS = (
    ("noop_tasks_per_s", "noop", "tasks_per_s", "tasks/s", "higher",
     "1. {noop:,} no-op python apps"),
    ("noop_submit_per_s", "noop", "submit_per_s", "calls/s", "higher",
     "   their app-call loop (pool running)"),
    ("noop_large_tasks_per_s", "noop_large", "tasks_per_s", "tasks/s", "higher",
     "   {noop_large:,} no-op python apps"),
    ("chain_ms_per_hop", "chain", "ms_per_hop", "ms/hop", "lower",
     "2. chain of {chain} dependent no-ops (warm)"),
    ("chain_queued_ms_per_hop", "chain", "queued_ms_per_hop", "ms/hop", "lower",
     "   hops alone (chain queued behind a gate)"),
    ("bash_tasks_per_s", "bash", "tasks_per_s", "tasks/s", "higher",
     "3. {bash:,} bash apps running `true`"),
    ("first_result_s", "first", "first_result_s", "s", "lower",
     "4. load -> first result (cold pool)"),
    ("first_load_s", "first", "load_s", "s", "lower",
     "   of which farm.load() (creates the spool)"),
    ("idle_round_trip_ms", "first", "idle_round_trips_s", "ms", "lower",
     "   one lone task after the pool idled 1 s"),
    ("submit_calls_per_s", "submit", "calls_per_s", "calls/s", "higher",
     "5. app-call submission, no pool ({submit:,})"),
    ("submit_written_per_s", "submit", "written_per_s", "calls/s", "higher",
     "   until all are written to the spool"),
    ("memory_bytes_per_task", "memory", "bytes_per_task", "B/task", "lower",
     "6. driver memory, {memory:,} tasks queued"),
    ("memory_written_bytes_per_task", "memory", "bytes_per_task_written", "B/task", "lower",
     "   once all are written to the spool"),
    ("memory_calls_per_s", "memory", "calls_per_s", "calls/s", "higher",
     "   submission rate up to {memory:,} queued"),
    ("memory_written_per_s", "memory", "written_per_s", "calls/s", "higher",
     "   until all are written to the spool"),
    ("noop_ops_per_task", "noop", None, "ops/task", "lower",
     "7. spool fs ops per task, {noop:,} no-ops"),
    ("noop_large_ops_per_task", "noop_large", None, "ops/task", "lower",
     "   spool fs ops per task, {noop_large:,} no-ops"),
)

# Rows 9 to 11, printed after the ops matrix (row 8).  A runs entry that is a pair
# (A, B) is the ratio A/B of the field, taken per round (run k of A over run k of B: the
# jobs go round robin, so both ran in the same round) where both runs succeeded.
SCALE_METRICS = (
    ("pools2_tasks_per_s", "pools2", "tasks_per_s", "tasks/s", "higher",
     "9. {pools2:,} no-ops, 2 pools x 1 worker"),
    ("pools32_tasks_per_s", "pools32", "tasks_per_s", "tasks/s", "higher",
     "   the same, 32 pools x 1 worker"),
    ("pools_ratio", ("pools32", "pools2"), "tasks_per_s", "ratio", "higher",
     "   32 pools / 2 pools (per round)"),
    ("pools32_ops_per_task", "pools32", None, "ops/task", "lower",
     "   spool fs ops per task, 32 pools"),
    ("idle_ops_per_s", "idle", "ops_per_s", "ops/s", "lower",
     "10. idle pool (2 workers), cold, {idle} s"),
    ("idle_manager_ops_per_s", "idle", "manager_ops_per_s", "ops/s", "lower",
     "   of which its manager"),
    ("idle_workers_ops_per_s", "idle", "workers_ops_per_s", "ops/s", "lower",
     "   of which its workers' polling"),
    ("mixed_core_utilisation", "mixed", "core_utilisation", "fraction", "higher",
     "12. cores held, 1 all-core task per 50 1-core"),
)

# Parsl's runs behind each peer figure (first result: the warm-up of each pool run).
PARSL_SOURCES = {
    "noop_tasks_per_s": (("parsl_noop",), "tasks_per_s"),
    "chain_ms_per_hop": (("parsl_chain",), "ms_per_hop"),
    "bash_tasks_per_s": (("parsl_bash",), "tasks_per_s"),
    "first_result_s": (("parsl",), "first_result_s"),
    "submit_calls_per_s": (("parsl_submit",), "calls_per_s"),
    "memory_bytes_per_task": (("parsl_submit",), "bytes_per_task"),
}

# Workloads whose spool ops per task are broken down by kind (table section 8).
OPS_WORKLOADS = ("noop", "noop_large", "chain", "bash", "submit", "pools32")

# Cost of each kind of spool op in terms of the machine rows (see README, "Ratios to the
# machine"): create = create+write+rename less a rename; link ~ rename (both add a directory
# entry); open and listdir ~ stat (a lookup; they cost more, so the bound is optimistic).
OP_COST = {"create": "create", "mkdir": "create_write_rename_per_s",
           "rename": "rename_per_s", "link": "rename_per_s", "unlink": "unlink_per_s",
           "stat": "stat_per_s", "open": "stat_per_s", "listdir": "stat_per_s"}


def stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"median": None, "min": None, "max": None, "n": 0, "runs": []}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values), "runs": values}


def _good(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r.get("ok")]


def field_values(runs: list[dict], field: str) -> list[float]:
    out: list[float] = []
    for r in _good(runs):
        v = r.get(field)
        if isinstance(v, list):  # the lone-task round trips: every trip counts, in ms
            out += [1000 * x for x in v]
        elif v is not None:
            out.append(v)
    return out


def ratio_values(a: list[dict], b: list[dict], field: str) -> list[float]:
    """field of a's run k over field of b's run k, for every k where both succeeded."""
    out = []
    for ra, rb in zip(a, b, strict=False):
        va, vb = ra.get(field), rb.get(field)
        if ra.get("ok") and rb.get("ok") and va is not None and vb:
            out.append(va / vb)
    return out


def ops_per_task(runs: list[dict]) -> dict[str, Any]:
    """Per op kind (and total): driver + pools ops per task, median/min/max over the runs,
    and the driver's and the pools' medians apart."""
    good = [r for r in _good(runs) if "driver_ops" in r]
    out: dict[str, Any] = {}
    for k in (*OPKINDS, "total"):
        def per(r, side, k=k):
            ops = r[side]
            v = sum(ops.get(x, 0) for x in OPKINDS) if k == "total" else ops.get(k, 0)
            return v / r["tasks"]
        drv = [per(r, "driver_ops") for r in good]
        pol = [per(r, "pool_ops") for r in good]
        tot = [a + b for a, b in zip(drv, pol, strict=True)]
        out[k] = {"driver": stats(drv)["median"], "pools": stats(pol)["median"], **stats(tot)}
    return out


# -- ratios to the machine's limits --------------------------------------------------------

def machine_seconds(ops: dict[str, Any], limits: dict[str, float], side: str = "median",
                    trips: float = 0, spawns: float = 0) -> float | None:
    """Seconds the machine needs, doing nothing else, for one task's spool ops (the medians
    per kind; side "driver" or "pools": that side's alone) one after another, plus `trips`
    cloudpickle round trips and `spawns` process spawns."""
    if not limits or ops.get("total", {}).get(side) is None:
        return None
    cost = {k: 1 / v for k, v in limits.items() if v}
    cost["create"] = max(cost["create_write_rename_per_s"] - cost["rename_per_s"], 0.0)
    t = sum((ops[k][side] or 0) * cost[OP_COST[k]] for k in OPKINDS)
    return t + trips * cost["pickle_per_s"] + spawns * cost["spawn_per_s"]


def machine_ratios(metrics: dict, ops: dict, limits: dict[str, float],
                   cores: int) -> dict[str, Any]:
    """For each farm figure with a matching machine limit: the share of that limit it reaches
    (1.00 = as fast as the machine allows).  The limit of a workload is what its parts cost
    at the machine's rates (README, "Ratios to the machine"): independent tasks spread over
    all cores; the hops of a chain (the pool's part) and the driver's submissions one after
    another."""
    if not limits:
        return {}

    def per_second(w, cpus, **parts):
        s = machine_seconds(ops.get(w, {}), limits, **parts)
        return cpus / s if s else None

    # A hop's critical path is the worker's part (claim, run, publish, promote the next):
    # the driver's submissions and result reads overlap with the hops.
    hop_s = machine_seconds(ops.get("chain", {}), limits, side="pools", trips=1)
    limit_of = {  # metric -> the machine's figure in the metric's unit
        "noop_tasks_per_s": per_second("noop", cores, trips=2),
        "noop_large_tasks_per_s": per_second("noop_large", cores, trips=2),
        "chain_ms_per_hop": 1000 * hop_s if hop_s else None,
        "bash_tasks_per_s": per_second("bash", cores, trips=2, spawns=1),
        "submit_written_per_s": per_second("submit", 1, side="driver", trips=0.5),
    }
    out = {}
    for key, lim in limit_of.items():
        med = metrics.get(key, {}).get("median")
        if lim and med:
            share = med / lim if metrics[key]["better"] == "higher" else lim / med
            out[key] = {"machine_limit": lim, "share_of_machine": share}
    return out


# -- all the figures -----------------------------------------------------------------------

def _metric(values: list[float], unit: str, better: str, key: str) -> dict[str, Any]:
    m = {**stats(values), "unit": unit, "better": better}
    if key in TARGETS:
        op, goal = TARGETS[key]
        m["target"] = f"{op}{goal:g}"
        med = m["median"]
        m["pass"] = None if med is None else (med >= goal if op == ">=" else med <= goal)
    return m


def _parsl_figure(key: str, runs: dict[str, list[dict]], measured: bool) -> dict[str, Any]:
    if measured and key in PARSL_SOURCES:
        names, field = PARSL_SOURCES[key]
        vals = [v for n in names for v in field_values(runs.get(n, []), field)]
        if vals:
            return {"parsl": statistics.median(vals), "parsl_source": "measured",
                    "parsl_stats": stats(vals)}
    if key in PARSL_REFERENCE:
        return {"parsl": PARSL_REFERENCE[key], "parsl_source": "reference"}
    return {"parsl": None, "parsl_source": None}


def build_results(runs: dict[str, list[dict]], limits: list[dict], parsl_measured: bool,
                  cores: int) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for key, _label, unit in LIMITS:
        metrics[f"machine_{key}"] = _metric([x[key] for x in limits if key in x], unit,
                                            "higher", key)
    ops = {w: ops_per_task(runs.get(w, [])) for w in OPS_WORKLOADS}
    for key, w, field, unit, better, _label in FARM_METRICS + SCALE_METRICS:
        if isinstance(w, tuple):
            vals = ratio_values(runs.get(w[0], []), runs.get(w[1], []), field)
        elif field is None:  # the total spool ops per task
            total = ops[w]["total"]
            vals = total["runs"]
        else:
            vals = field_values(runs.get(w, []), field)
        m = _metric(vals, unit, better, key)
        m.update(_parsl_figure(key, runs, parsl_measured))
        p, med = m["parsl"], m["median"]
        m["ratio_farm_over_parsl"] = med / p if med is not None and p else None
        metrics[key] = m
    lim_medians = {k: metrics[f"machine_{k}"]["median"] for k, _, _ in LIMITS
                   if metrics[f"machine_{k}"]["median"]}
    for key, extra in machine_ratios(metrics, ops, lim_medians, cores).items():
        metrics[key].update(extra)
    return {"metrics": metrics, "ops_per_task": ops}


# -- the table -----------------------------------------------------------------------------

def num(v: float | None) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _versus(m: dict) -> str:
    r = m.get("ratio_farm_over_parsl")
    if r is None or r <= 0:
        return ""
    better = r >= 1 if m["better"] == "higher" else r <= 1
    x = r if r >= 1 else 1 / r
    return f"{x:.1f}x {'better' if better else 'worse'}"


W = 44  # width of the label column
HEAD = (f"{'figure':<{W}} {'unit':<8} {'median':>9} {'min':>9} {'max':>9} {'target':>8} "
        f"{'':4} {'of limit':>8} {'Parsl':>9}  farm vs Parsl")


def _row(label: str, m: dict) -> str:
    mark = {True: "pass", False: "FAIL", None: "-"}.get(m.get("pass"), "") \
        if "target" in m else ""
    share = m.get("share_of_machine")
    parsl = num(m.get("parsl")) + ("*" if m.get("parsl_source") == "reference" else " ")
    if m.get("parsl") is None:
        parsl = "- "
    return (f"{label:<{W}} {m['unit']:<8} {num(m['median']):>9} {num(m['min']):>9} "
            f"{num(m['max']):>9} {m.get('target', ''):>8} {mark:<4} "
            f"{(f'{share:.2f}' if share else ''):>8} {parsl:>10} {_versus(m)}").rstrip()


def _ops_matrix(ops: dict, sizes: dict) -> list[str]:
    """Op kinds down, workloads across (driver + pools), plus the no-op run's driver share."""
    cols = [("noop", None, f"no-op {sizes['noop']:,}"), ("noop", "driver", "of it driver"),
            ("noop_large", None, f"no-op {sizes['noop_large']:,}"), ("chain", None, "chain"),
            ("bash", None, "bash"), ("submit", None, "submit, no pool"),
            ("pools32", None, "32 pools")]
    cols = [c for c in cols if ops[c[0]]["total"]["median"] is not None]
    lines = [f"{'8. spool fs ops per task, by kind (medians)':<{W}} {'op':<8}"
             + "".join(f"{title:>16}" for _, _, title in cols)]
    for k in (*OPKINDS, "total"):
        lines.append(f"{'':<{W}} {k:<8}" + "".join(
            f"{num(ops[w][k][side or 'median']):>16}" for w, side, _ in cols))
    return lines


def render(results: dict, sizes: dict, runs: dict, info: dict) -> str:
    M = results["metrics"]
    rule = "-" * (len(HEAD) + 8)
    lines = [
        f"farm {info['farm']} benchmark ({info['git']}): {info['cpus']} cores, "
        f"Python {info['python']}, {info['platform']}",
        f"spools on {info['base']} ({info['fstype']}); {info['repeats']} run(s) per workload "
        "(1 for the once-only ones), each on a fresh spool; 1 local pool, 2 workers (9, 10: as "
        "labelled)",
        rule, HEAD, rule, "machine's own limits (one operation at a time, next to the spools)"]
    for key, label, _unit in LIMITS:
        lines.append(_row(f"   {label}", M[f"machine_{key}"]))
    lines += [rule, "farm"]
    for key, _w, _f, _u, _b, label in FARM_METRICS:
        lines.append(_row(label.format(**sizes), M[key]))
    for w in dict.fromkeys(x[1] for x in FARM_METRICS):  # each workload once, in order
        lines += _failures(w, runs.get(w, []))
    lines.append(rule)
    lines += _ops_matrix(results["ops_per_task"], sizes)
    lines.append(rule)
    for key, _w, _f, _u, _b, label in SCALE_METRICS:
        lines.append(_row(label.format(**sizes), M[key]))
    for w in dict.fromkeys(x[1] for x in SCALE_METRICS if isinstance(x[1], str)):
        lines += _failures(w, runs.get(w, []))
    lines.append(rule)
    lines += _legend(info)
    return "\n".join(lines)


def _failures(name: str, runs: list[dict]) -> list[str]:
    bad = [r for r in runs if not r.get("ok")]
    if not bad:
        return []
    r = bad[0]
    why = r.get("error") or f"{r.get('failed')} tasks failed: {r.get('first_error')}"
    return [f"    !! {name}: {len(bad)} run(s) FAILED: {why}"]


def _legend(info: dict) -> list[str]:
    parsl = info.get("parsl") or {}
    lines = ["target: the project's targets (issue 5), pass/FAIL on the median.  of limit: the "
             "share of the machine's own limit reached (1.00 = as fast as the machine allows):",
             "  what the workload's spool fs ops, cloudpickle round trips (and spawns, for bash) "
             "cost at the rates above, tasks spread over all cores (README).",
             "farm vs Parsl: ratio of medians; tasks/s and calls/s higher is better, ms, s "
             "and B/task lower."]
    if parsl.get("measured"):
        lines.append(f"Parsl: measured in this run (parsl {parsl.get('version')}, "
                     "HighThroughputExecutor, 1 local block, 2 workers, 127.0.0.1) on smaller "
                     f"sizes: {parsl.get('sizes_text')}.  * = reference figure (the Parsl "
                     "run failed).")
        for f in parsl.get("failures", []):
            lines.append(f"  !! Parsl {f}")
    else:
        lines.append("Parsl *: reference figures of Parsl's HighThroughputExecutor measured on a "
                     "similar 2-core machine, NOT measured in this run "
                     f"({parsl.get('why', 'parsl not available')}).")
    return lines


# -- comparing two result files ------------------------------------------------------------

def flat_figures(doc: dict) -> dict[str, tuple[float, str, str]]:
    """Every figure of a result file: name -> (median, unit, better)."""
    out = {}
    for key, m in doc.get("metrics", {}).items():
        if m.get("median") is not None:
            out[key] = (m["median"], m.get("unit", ""), m.get("better", "higher"))
    for w, kinds in doc.get("ops_per_task", {}).items():
        for k, x in kinds.items():
            if x.get("median") is not None:
                out[f"ops_{w}_{k}"] = (x["median"], "ops/task", "lower")
    return out


def compare(old: dict, new: dict) -> str:
    a, b = flat_figures(old), flat_figures(new)
    lines = [f"{'figure':<36} {'unit':<9} {'old':>10} {'new':>10} {'new/old':>8}",
             "-" * 90]
    for key in list(b) + [k for k in a if k not in b]:
        if key not in a or key not in b:
            side = "new" if key in b else "old"
            v = b[key][0] if key in b else a[key][0]
            unit = (b.get(key) or a[key])[1]
            lines.append(f"{key:<36} {unit:<9} "
                         + (f"{'-':>10} {num(v):>10}" if side == "new" else
                            f"{num(v):>10} {'-':>10}") + f"  (only in the {side} file)")
            continue
        (vo, unit, better), vn = a[key], b[key][0]
        if vo == vn == 0:
            continue
        r = vn / vo if vo else None
        note = ""
        if r is not None and abs(r - 1) >= 0.1:
            note = "  better" if (r > 1) == (better == "higher") else "  WORSE"
        lines.append(f"{key:<36} {unit:<9} {num(vo):>10} {num(vn):>10} "
                     f"{(f'{r:.2f}' if r is not None else '-'):>8}{note}")
    return "\n".join(lines)
