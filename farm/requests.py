"""What a task asks of its node (cores, memory, GPUs, running time, priority), and how
many of a pool's slots that takes.

A pool splits its node into equal slots, one per worker: a slot is 1/N of the node's
cores and memory, and one accelerator when the pool has them.  A task without a request
takes its worker's slot; a task with one takes as many slots as its largest need (so an
8-core task on a node of 1-core slots takes 8, a 2-GPU task takes 2), and runs only when
the workers of the other slots are idle (farm.pool.slots).  The driver and the pools work
out the same count from the same shape, so a request that no pool can ever hold fails at
submission, not after a wait.

Requests are written in Parsl's spelling, ``parsl_resource_specification={"cores": 8,
"memory": 16000, "gpus": 1, "running_time": 600, "priority": 10}`` (memory in MB), on a
call, or as defaults of an app (``@bash_app(cores=8)``); a value may be a function of the
attempt number (0 first), so that a retry can ask for more.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from farm.errors import ConfigError

# What a request may name (Parsl's keys).  disk is accepted and not managed (pools share
# the node's disks); running_time_min is running_time in minutes (Work Queue's key);
# num_nodes, ranks_per_node and num_ranks are Parsl's MPI keys: whole nodes of one block
# (farm.pool.nodes).
KEYS = ("cores", "memory", "gpus", "running_time", "priority", "disk", "running_time_min",
        "num_nodes", "ranks_per_node", "num_ranks")
SPEC = "parsl_resource_specification"


def normalize(spec: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """A request checked: known keys, values non-negative numbers (or functions of the
    attempt).  where names the call or app in errors."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: {SPEC} must be a dict such as {{'cores': 4}}, got "
                          f"{type(spec).__name__}")
    out: dict[str, Any] = {}
    for k, v in spec.items():
        if k not in KEYS:
            raise ConfigError(f"{where}: resource {k!r} is not one farm knows; use "
                              f"{', '.join(KEYS)} (memory in MB, running_time in seconds)")
        if v is None:
            continue
        if not callable(v):
            _check(k, v, where)
        out[k] = v
    return out


def _check(k: str, v: Any, where: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or math.isnan(v):
        raise ConfigError(f"{where}: resource {k}={v!r} must be a number of 0 or more")
    if k == "priority":
        return int(v)
    return v


def dynamic(spec: Mapping[str, Any]) -> bool:
    """Whether some value depends on the attempt."""
    return any(callable(v) for v in spec.values())


def at(spec: Mapping[str, Any], attempt: int, where: str = "task") -> dict[str, Any]:
    """The request of one attempt: functions called with the attempt number."""
    out = {}
    for k, v in spec.items():
        if callable(v):
            try:
                v = v(attempt)
            except Exception as e:
                raise ConfigError(f"{where}: resource {k} for attempt {attempt} raised "
                                  f"{type(e).__name__}: {e}") from e
        if v is not None:
            out[k] = _check(k, v, where)
    if "running_time_min" in out:
        out["running_time"] = max(out.get("running_time", 0), 60 * out["running_time_min"])
    return out


def sizer(spec: Mapping[str, Any]) -> Callable[[int], dict[str, Any]]:
    """A function of the attempt that gives the request (what a pool loads and calls
    when a request has functions in it)."""
    frozen = dict(spec)

    def request(attempt: int) -> dict[str, Any]:
        return at(frozen, attempt)
    return request


def shape(slots: int, cores: float, memory_mb: float, gpus: int,
          nodes: int = 1) -> dict[str, Any]:
    """A pool's node as its slots see it, and the nodes of its block (what heartbeats
    advertise)."""
    # (at least 1 MB: a pool started with no memory left still divides by it)
    return {"slots": slots, "cores": cores, "memory": max(1, int(memory_mb)), "gpus": gpus,
            "nodes": nodes}


def slots_needed(req: Mapping[str, Any], node: Mapping[str, Any]) -> int:
    """The slots a request takes in a pool of this shape; more than node["slots"]: it
    can never run there."""
    n = int(node["slots"])
    need = 1
    cores = float(req.get("cores") or 0)
    if cores:
        need = max(need, math.ceil(cores / (float(node["cores"]) / n) - 1e-9))
    memory = float(req.get("memory") or 0)
    if memory:
        need = max(need, math.ceil(memory / (float(node["memory"]) / n) - 1e-9))
    gpus = int(req.get("gpus") or 0)
    if gpus:
        need = max(need, gpus if node["gpus"] else n + 1)
    nodes = int(req.get("num_nodes") or 1)
    if nodes > 1:  # whole nodes (farm.pool.nodes)
        need = max(need, n) if nodes <= int(node.get("nodes") or 1) else n + 1
    return need


def too_big(req: Mapping[str, Any], node: Mapping[str, Any]) -> str | None:
    """Why a request cannot run in a pool of this shape, or None if it can."""
    if slots_needed(req, node) <= int(node["slots"]):
        return None
    if int(req.get("num_nodes") or 1) > int(node.get("nodes") or 1):
        return (f"it asks for num_nodes={_num(req['num_nodes'])}, more than a block of its "
                f"pools has ({int(node.get('nodes') or 1)}: one pool per node); raise the "
                "provider's nodes_per_block (with a launcher that starts a pool on each "
                "node, such as SrunLauncher), or ask for fewer nodes")
    asked = ", ".join(f"{k}={_num(v)}" for k, v in req.items()
                      if k in ("cores", "memory", "gpus"))
    return (f"it asks for {asked}, more than the largest node of its pools has "
            f"({describe(node)}); ask for less, or give the pools bigger nodes")


def _num(v: float) -> str:
    return f"{v:g}" if abs(v) < 1e6 else f"{v:.0f}"


def describe(node: Mapping[str, Any]) -> str:
    return (f"{_num(node['cores'])} cores, {node['memory']:,} MB, {node['gpus']} GPUs, "
            f"{node['slots']} workers")
