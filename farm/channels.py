"""parsl.channels under farm: LocalChannel, which older Parsl configs pass to providers.

Accepted (and ignored, with the provider's warning): farm runs block commands on this
machine, or through sbatch.
"""

from __future__ import annotations

from typing import Any

from farm.dataflow.futures import lift_attributes

lift_attributes()  # (a Parsl program: fut.attr lifting, see farm.dataflow.futures)


class LocalChannel:
    def __init__(self, userhome: str = ".", envs: dict | None = None,
                 script_dir: str | None = None, **options: Any):
        self.userhome, self.envs, self.script_dir = userhome, envs or {}, script_dir

    def __repr__(self) -> str:
        return "LocalChannel()"


__all__ = ["LocalChannel"]
