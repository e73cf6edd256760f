"""What the providers share: the line a block script starts with, and the checks of the
block options every provider takes (init_blocks, min_blocks, max_blocks, nodes_per_block)."""

from __future__ import annotations

import warnings
from typing import Any

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


def warn_ignored(who: str, **options: Any) -> None:
    """One warning naming the Parsl options given to a provider that farm has no use for
    (those left at None are not named)."""
    given = sorted(k for k, v in options.items() if v is not None)
    if given:
        warnings.warn(f"farm ignores these {who} options: {', '.join(given)} (see "
                      "docs/parsl.md)", stacklevel=4)
