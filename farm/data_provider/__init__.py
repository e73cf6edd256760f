"""Parsl's parsl.data_provider under farm: File (farm.data)."""
