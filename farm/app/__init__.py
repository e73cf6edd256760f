"""Parsl's import paths under farm (parsl.app.*): thin re-exports of farm's own modules.

    from farm.app.app import python_app      # was: from parsl.app.app import python_app
"""
