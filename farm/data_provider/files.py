"""parsl.data_provider.files under farm: File (farm.data)."""

from farm.data import File

__all__ = ["File"]
