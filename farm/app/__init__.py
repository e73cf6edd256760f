"""Parsl's import paths under farm (parsl.app.*): thin re-exports of farm's own modules.

    from farm.app.app import python_app      # was: from parsl.app.app import python_app
"""

from farm.dataflow.futures import lift_attributes

lift_attributes()  # (a Parsl program: fut.attr lifting, see farm.dataflow.futures)
