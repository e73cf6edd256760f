"""Per-task requests (cores, memory, GPUs, running time): a pool packs tasks into its
node's slots and never oversubscribes it; a request no pool can hold fails at once.
Real pools, real worker processes, on a pool of 2 slots."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

import farm
from farm import bash_app, python_app, requests
from farm.errors import BashExitFailure, ConfigError
from farm.executors import SpoolExecutor
from farm.providers import LocalProvider
from tests.conftest import FARM, eventually

T = 90
SPEC = "parsl_resource_specification"


def _load(tmp_path, monkeypatch, retries: int = 0, workers: int = 2, **opts):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")  # a node of 2 cores, on any machine
    ex = SpoolExecutor(spool=tmp_path / "s", provider=LocalProvider(), idle_timeout=10,
                       heartbeat_period=0.5, max_workers_per_node=workers, **opts)
    farm.load(farm.Config(executors=[ex], retries=retries))
    return ex


@python_app
def span(i, hold=0.4):
    import os
    import time
    t0 = time.time()
    time.sleep(hold)
    return (t0, time.time(), os.getpid(), os.environ.get("OMP_NUM_THREADS"),
            tuple(sorted(os.sched_getaffinity(0))))


def _overlap(a, b):
    return a[0] < b[1] and b[0] < a[1]


def test_two_core_tasks_never_overlap_one_core_tasks_pair_up(tmp_path, monkeypatch):
    _load(tmp_path, monkeypatch)
    wide = [span(i, **{SPEC: {"cores": 2}}) for i in range(4)]
    narrow = [span(100 + i) for i in range(6)]
    w = [f.result(T) for f in wide]
    n = [f.result(T) for f in narrow]
    for i, a in enumerate(w):  # a 2-core task has the node to itself
        for b in w[i + 1:] + n:
            assert not _overlap(a, b), (a, b)
        assert a[3] == "2"  # OMP_NUM_THREADS
        assert len(a[4]) == len(set().union(*[x[4] for x in w]))  # pinned to both slots
    # One-core tasks run two at a time: some pair overlaps, on two different workers.
    pairs = [(a, b) for i, a in enumerate(n) for b in n[i + 1:] if _overlap(a, b)]
    assert pairs and all(a[2] != b[2] for a, b in pairs)


def test_app_defaults_and_a_request_that_never_fits(tmp_path, monkeypatch):
    ex = _load(tmp_path, monkeypatch)

    @python_app(cores=2)
    def threads():
        import os
        return os.environ["OMP_NUM_THREADS"], os.environ["FARM_CORES"]

    wide = threads()
    assert wide.result(T) == ("2", "2")
    shown = subprocess.run([*FARM, "show", str(ex.spool.path), wide.task.key],
                           capture_output=True, text=True, timeout=T).stdout
    assert "asks     cores=2" in shown and ", 2 slots" in shown, shown
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match=r"cores=3, more than the largest node .*2 cores"):
        span(1, **{SPEC: {"cores": 3}}).result(T)
    big = ex.node_shape()["memory"] * 2
    with pytest.raises(ConfigError, match=f"memory={big}"):
        span(2, **{SPEC: {"memory": big}}).result(T)
    with pytest.raises(ConfigError, match="GPUs"):
        span(3, **{SPEC: {"gpus": 1}}).result(T)  # (this pool has none)
    assert time.monotonic() - t0 < 10  # at submission, not after a wait
    with pytest.raises(ConfigError, match="resource 'threads' is not one farm knows"):
        span(4, **{SPEC: {"threads": 2}})
    with pytest.raises(ConfigError, match="cores=-1"):
        span(5, **{SPEC: {"cores": -1}})


@bash_app
def gpu_ids(i, stdout=None, parsl_resource_specification=None):
    return ("echo $CUDA_VISIBLE_DEVICES $ROCR_VISIBLE_DEVICES $(date +%s.%N); sleep 0.3; "
            "echo $(date +%s.%N)")


def test_gpu_tasks_never_share_an_accelerator(tmp_path, monkeypatch):
    _load(tmp_path, monkeypatch, available_accelerators=["g0", "g1"])
    ones = [gpu_ids(i, stdout=str(tmp_path / f"one{i}"), **{SPEC: {"gpus": 1}})
            for i in range(6)]
    two = gpu_ids(99, stdout=str(tmp_path / "two"), **{SPEC: {"gpus": 2}})
    for f in [*ones, two]:
        f.result(T)

    def read(name):
        first, end = open(tmp_path / name).read().split("\n")[:2]
        cuda, rocr, start = first.split()
        assert cuda == rocr
        return cuda, float(start), float(end)

    seen = [read(f"one{i}") for i in range(6)]
    assert {s[0] for s in seen} == {"g0", "g1"}
    together = [(a, b) for i, a in enumerate(seen) for b in seen[i + 1:]
                if a[1] < b[2] and b[1] < a[2]]
    assert together and all(a[0] != b[0] for a, b in together)
    wide = read("two")
    assert wide[0] == "g0,g1"
    assert not any(a[1] < wide[2] and wide[1] < a[2] for a in seen)
    status = subprocess.run([*FARM, "status", str(tmp_path / "s")], capture_output=True,
                            text=True, timeout=T)
    assert " node=2c/" in status.stdout and "/2gpu " in status.stdout, status.stdout


def test_a_retry_asks_for_more(tmp_path, monkeypatch):
    _load(tmp_path, monkeypatch, retries=2)

    @bash_app(memory=lambda attempt: 100 * (attempt + 1))
    def grows(marker):
        # fails until it is given 300 MB: the third attempt
        return f'echo $FARM_MEMORY >> {marker}; test "$FARM_MEMORY" = 300'

    marker = tmp_path / "m"
    assert grows(str(marker)).result(T) == 0
    assert marker.read_text().split() == ["100", "200", "300"]


def test_a_failed_sizer_names_the_task(tmp_path, monkeypatch):
    _load(tmp_path, monkeypatch)

    @bash_app(cores=lambda attempt: 1 / 0)
    def broken():
        return "true"

    with pytest.raises(ConfigError, match="resource cores for attempt 0 raised Zero"):
        broken()


def test_requests_are_not_part_of_the_key(tmp_path, monkeypatch):
    ex = _load(tmp_path, monkeypatch)

    @bash_app
    def job(x, parsl_resource_specification=None):
        return f"exit {x}"

    first = job(0, parsl_resource_specification={"cores": 1})
    assert first.result(T) == 0
    farm.clear()
    ex = _load(tmp_path, monkeypatch)
    again = job(0, parsl_resource_specification={"cores": 2})
    assert again.result(T) == 0
    assert again.task.key == first.task.key and ex.stats["done_before"] == 1
    with pytest.raises(BashExitFailure):
        job(3).result(T)


def test_slots_needed_counts_the_largest_need():
    node = requests.shape(4, 8, 16000, 2)  # 4 slots of 2 cores, 4000 MB, (2 GPUs)
    assert requests.slots_needed({}, node) == 1
    assert requests.slots_needed({"cores": 2}, node) == 1
    assert requests.slots_needed({"cores": 3}, node) == 2
    assert requests.slots_needed({"memory": 9000}, node) == 3
    assert requests.slots_needed({"gpus": 2, "cores": 1}, node) == 2
    assert requests.too_big({"cores": 9}, node)
    assert "more than a block of its pools has (1:" in requests.too_big({"num_nodes": 2}, node)
    three = requests.shape(4, 8, 16000, 0, nodes=3)  # a block of 3 such nodes
    assert requests.slots_needed({"num_nodes": 2}, three) == 4  # whole nodes
    assert requests.too_big({"num_nodes": 3}, three) is None
    assert requests.too_big({"cores": 8, "memory": 16000}, node) is None
    assert os.environ.get("FARM_CORES") is None  # (nothing leaks into the test process)


def test_higher_priority_starts_first(tmp_path, monkeypatch):
    ex = _load(tmp_path, monkeypatch, workers=1)
    gate = tmp_path / "gate"

    @python_app
    def blocker(gate):
        import os
        import time
        open(gate + ".started", "w").close()
        deadline = time.time() + 60
        while not os.path.exists(gate) and time.time() < deadline:
            time.sleep(0.01)
        return time.time()

    @python_app
    def stamp(i, parsl_resource_specification=None):
        import time
        return time.time()

    # The one worker busy, then 20 low and 5 high-priority tasks queued.
    busy = blocker(str(gate))
    eventually(lambda: os.path.exists(f"{gate}.started"), T, "the blocker to start")
    low = [stamp(i) for i in range(20)]
    high = [stamp(100 + i, parsl_resource_specification={"priority": 10}) for i in range(5)]
    assert ex.flush(T)
    names = os.listdir(ex.spool.p("ready"))
    assert sum(n.endswith("~10") for n in names) == 5, names
    gate.touch()
    assert busy.result(T)
    last_high = max(f.result(T) for f in high)
    assert all(f.result(T) > last_high for f in low)


def test_a_big_task_is_not_starved_by_smaller_ones_on_several_slots(tmp_path, monkeypatch):
    """3 slots; 2-slot tasks would always leave one slot free to each other: the 3-slot
    task, once it waits, is first in line and starts after the ones running end.  (It has
    a priority so that it is claimed early: which of equals a worker claims first is left
    to chance, and the guarantee starts when it is claimed.)"""
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    monkeypatch.chdir(tmp_path)
    ex = SpoolExecutor(spool=tmp_path / "s", provider=LocalProvider(), idle_timeout=10,
                       heartbeat_period=0.5, max_workers_per_node=3)
    farm.load(farm.Config(executors=[ex]))
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    pairs = [span(i, 0.3, **{SPEC: {"cores": 2}}) for i in range(3)]
    whole = span(99, 0.3, **{SPEC: {"cores": 3, "priority": 10}})
    pairs += [span(10 + i, 0.3, **{SPEC: {"cores": 2}}) for i in range(9)]
    big = whole.result(T)
    starts = sorted(f.result(T)[0] for f in pairs)
    assert big[0] < starts[4], (big[0], starts)  # not after (nearly) all the others
    assert not any(_overlap(big, f.result(T)) for f in pairs)


def test_an_attempt_no_node_could_hold_is_not_made(tmp_path, monkeypatch):
    """The driver works out each attempt's request: the second would ask for more memory
    than the node has, so the first failure is the last (not a retry that never fits)."""
    _load(tmp_path, monkeypatch, retries=2)

    @bash_app(memory=lambda attempt: 100 if attempt == 0 else 10**9)
    def once(marker):
        return f"echo ran >> {marker}; exit 3"

    marker = tmp_path / "m"
    with pytest.raises(BashExitFailure) as info:
        once(str(marker)).result(T)
    assert info.value.exitcode == 3 and marker.read_text() == "ran\n"
