"""Providers get blocks of resources and start a pool command in each."""

from farm.providers.local import LocalProvider

__all__ = ["LocalProvider"]
