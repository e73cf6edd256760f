"""Launchers: turn the pool command into the command a block runs.

A launcher is a callable ``(command, tasks_per_node, nodes_per_block) -> command``.
"""

from __future__ import annotations

from farm.errors import checked_options


class Launcher:
    per_node = False  # one pool on each node of the block (True), or one per block

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        raise NotImplementedError

    def pools(self, nodes_per_block: int) -> int:
        """How many pools a block of that many nodes runs."""
        return nodes_per_block if self.per_node else 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SimpleLauncher(Launcher):
    """Run the command once, as it is."""

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        return command


class SingleNodeLauncher(Launcher):
    """Run tasks_per_node copies of the command on this node, and wait for them all."""

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

    def __init__(self, overrides: str = ""):
        self.overrides = overrides

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
    neither, mpiexec runs the copies here.  overrides: extra mpiexec options.
    """

    per_node = True

    def __init__(self, overrides: str = ""):
        self.overrides = overrides

    def __call__(self, command: str, tasks_per_node: int, nodes_per_block: int) -> str:
        extra = f" {self.overrides}" if self.overrides else ""
        hosts = ('$(if [ -n "${SLURM_JOB_NODELIST:-}" ]; then echo -hosts '
                 '"$(scontrol show hostnames "$SLURM_JOB_NODELIST" | paste -sd, -)"; '
                 'elif [ -n "${PBS_NODEFILE:-}" ]; then echo -f "$PBS_NODEFILE"; fi)')
        return (f"mpiexec -n {tasks_per_node * nodes_per_block} -ppn {tasks_per_node} "
                f"{hosts}{extra} {command}")

    def __repr__(self) -> str:
        return f"MpiExecLauncher(overrides={self.overrides!r})"
