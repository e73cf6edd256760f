"""Parsl's parsl.data_provider under farm: File (farm.data)."""

from farm.dataflow.futures import lift_attributes

lift_attributes()  # (a Parsl program: fut.attr lifting, see farm.dataflow.futures)
