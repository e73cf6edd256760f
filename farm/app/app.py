"""parsl.app.app under farm: the app decorators (farm.apps)."""

from farm.apps import App, bash_app, join_app, python_app

AppBase = App

__all__ = ["App", "AppBase", "bash_app", "join_app", "python_app"]
