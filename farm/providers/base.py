"""What the providers share: the line a block script starts with, and the checks of the
block options every provider takes (init_blocks, min_blocks, max_blocks, nodes_per_block)."""

from __future__ import annotations

from farm.errors import ConfigError

# The line a block script runs before the launcher (when inside a Slurm job): one squeue per
# block, so that each of its pools knows when the job ends (farm pool --drain), even pools
# with no network.
END_EXPORT = ('[ -n "${SLURM_JOB_ID:-}" ] && export FARM_BLOCK_END="$(SLURM_TIME_FORMAT=%s '
              'squeue -h -j "$SLURM_JOB_ID" -o %e 2>/dev/null)"')


def check_blocks(who: str, nodes_per_block: int, init_blocks: int, min_blocks: int,
                 max_blocks: int) -> None:
    """One clear error for block counts that make no sense, the same for every provider."""
    for name, value in (("nodes_per_block", nodes_per_block), ("init_blocks", init_blocks),
                        ("min_blocks", min_blocks), ("max_blocks", max_blocks)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{who}: {name} must be a whole number, got {value!r}")
    if nodes_per_block < 1:
        raise ConfigError(f"{who}: nodes_per_block must be at least 1, got {nodes_per_block}")
    if not 0 <= min_blocks <= init_blocks <= max_blocks:
        raise ConfigError(f"{who}: need 0 <= min_blocks <= init_blocks <= max_blocks, got "
                          f"min_blocks={min_blocks}, init_blocks={init_blocks}, "
                          f"max_blocks={max_blocks}")
