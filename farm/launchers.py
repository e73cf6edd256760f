"""Launchers: turn the pool command into the command a block runs.

A launcher is a callable ``(command, tasks_per_node, nodes_per_block) -> command``.
"""

from __future__ import annotations

from typing import Any

from farm.errors import checked_options, unsupported


class Launcher:
    """Parsl's launchers take debug= (a trace of the launch script: farm's block scripts
    log to the spool's logs/ anyway), accepted by every launcher here."""

    per_node = False  # one pool on each node of the block (True), or one per block
    debug = True

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        raise NotImplementedError

    def pools(self, nodes_per_block: int) -> int:
        """How many pools a block of that many nodes runs."""
        return nodes_per_block if self.per_node else 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@checked_options
class SimpleLauncher(Launcher):
    """Run the command once, as it is."""

    def __init__(self, debug: bool = True):
        self.debug = debug

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        return command


@checked_options
class SingleNodeLauncher(Launcher):
    """Run tasks_per_node copies of the command on this node, and wait for them all.
    (fail_on_any: Parsl's; farm's pools report their own failures through the spool.)"""

    def __init__(self, debug: bool = True, fail_on_any: bool = False):
        self.debug = debug
        self.fail_on_any = fail_on_any

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        if tasks_per_node <= 1:
            return command
        return (f"for i in $(seq {tasks_per_node}); do {command} & done; wait")


@checked_options
class SrunLauncher(Launcher):
    """One copy of the command on each node of the block, through srun.

    overrides: extra srun options, e.g. "-c 64" or "--cpu-bind=none".
    """

    per_node = True

    def __init__(self, overrides: str = "", debug: bool = True):
        self.overrides = overrides
        self.debug = debug

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        extra = f" {self.overrides}" if self.overrides else ""
        return (f"srun --nodes={nodes_per_block} --ntasks-per-node={tasks_per_node}"
                f" --kill-on-bad-exit=0{extra} {command}")

    def __repr__(self) -> str:
        return f"SrunLauncher(overrides={self.overrides!r})"


@checked_options
class MpiExecLauncher(Launcher):
    """One copy of the command on each node of the block, through MPI's mpiexec (MPICH or
    Intel MPI Hydra options), for sites where mpiexec, not srun, starts programs on nodes.

    Inside a Slurm job the hosts are the job's nodes; elsewhere (PBS) $PBS_NODEFILE; with
    neither, mpiexec runs the copies here.  overrides: extra mpiexec options.  bind_cmd:
    as Parsl's, the option that turns process binding off (e.g. "--bind-to" gives
    "--bind-to none"); by default farm passes none.
    """

    per_node = True

    def __init__(self, overrides: str = "", bind_cmd: str | None = None, debug: bool = True):
        self.overrides = overrides
        self.bind_cmd = bind_cmd
        self.debug = debug

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        extra = f" {self.overrides}" if self.overrides else ""
        if self.bind_cmd:
            extra = f" {self.bind_cmd} none{extra}"
        hosts = ('$(if [ -n "${SLURM_JOB_NODELIST:-}" ]; then echo -hosts '
                 '"$(scontrol show hostnames "$SLURM_JOB_NODELIST" | paste -sd, -)"; '
                 'elif [ -n "${PBS_NODEFILE:-}" ]; then echo -f "$PBS_NODEFILE"; fi)')
        return (f"mpiexec -n {tasks_per_node * nodes_per_block} -ppn {tasks_per_node} "
                f"{hosts}{extra} {command}")

    def __repr__(self) -> str:
        return f"MpiExecLauncher(overrides={self.overrides!r})"


# Parsl's other launchers: importing one is an error that says what farm has.
PARSL_ONLY = ("AprunLauncher", "SrunMPILauncher", "GnuParallelLauncher", "MpiRunLauncher",
              "JsrunLauncher", "WrappedLauncher")


def __getattr__(name: str) -> Any:
    if name in PARSL_ONLY:
        raise unsupported("launcher", name, ["SimpleLauncher", "SingleNodeLauncher",
                                             "SrunLauncher", "MpiExecLauncher"])
    raise AttributeError(f"module 'farm.launchers' has no attribute {name!r}")
