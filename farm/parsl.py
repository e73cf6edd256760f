"""Run a Parsl program on farm without editing it: ``farm parsl SCRIPT [ARGS]`` or
``python -m farm.parsl SCRIPT [ARGS]``.

Within that process, ``import parsl`` and ``import parsl.X`` are served by farm: an import
hook (first in sys.meta_path) puts farm's module under the Parsl name in sys.modules, so
``parsl.load`` is ``farm.load``, ``parsl.executors.HighThroughputExecutor`` farm's (a
SpoolExecutor), and so on; the objects are farm's own (they pickle by farm's names, so
pools need no hook).  A Parsl module farm has no counterpart for is an ImportError that
says so.  The script runs as ``__main__``, with sys.argv as if Python ran it, so its spool
is ``<script>.farm`` beside it, as when it is run with its imports changed to farm.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import runpy
import sys
import traceback
from types import ModuleType

from farm.errors import Unsupported

# Parsl modules whose farm counterpart has another path; the rest map parsl.X -> farm.X.
RENAMED = {
    "parsl.executors.high_throughput": "farm.executors.htex",
    "parsl.executors.high_throughput.executor": "farm.executors.htex",
    "parsl.executors.threads": "farm.executors.threads",
    "parsl.providers.local": "farm.providers.local",
    "parsl.providers.local.local": "farm.providers.local",
    "parsl.providers.slurm": "farm.providers.slurm",
    "parsl.providers.slurm.slurm": "farm.providers.slurm",
    "parsl.launchers.launchers": "farm.launchers",
    "parsl.dataflow.dflow": "farm.dataflow.kernel",
    "parsl.dataflow.futures": "farm.dataflow.futures",
    "parsl.dataflow.taskrecord": "farm.dataflow.task",
    "parsl.app.python": "farm.apps",
    "parsl.app.bash": "farm.apps",
    "parsl.channels.local": "farm.channels",
    "parsl.channels.local.local": "farm.channels",
    "parsl.version": "farm.version",
}
# Parsl modules farm leaves out on purpose, and why (the error says it).
ABSENT = {
    "parsl.data_provider.globus": "compute nodes have no network; stage files in the driver",
}


class MonitoringHub:
    """Parsl's monitoring hub, accepted so that configs that make one run: farm has no
    monitoring database (`farm status`, `farm watch`, `farm report` read the spool), and
    Config ignores its monitoring= with a warning."""

    def __init__(self, *args: object, **options: object):
        self.options = options

    def __repr__(self) -> str:
        return "MonitoringHub(ignored by farm)"


def _stub(name: str) -> ModuleType:
    """The modules under Parsl's names that hold only what configs pass along."""
    mod = ModuleType(name, "Accepted for Parsl configs; farm does not use it (docs/parsl.md).")
    if name.startswith("parsl.monitoring"):
        mod.MonitoringHub = MonitoringHub  # type: ignore[attr-defined]
    else:  # parsl.usage_tracking(.levels): the levels Config(usage_tracking=) takes
        for i, level in enumerate(("DISABLED", "LEVEL_1", "LEVEL_2", "LEVEL_3")):
            setattr(mod, level, i)
    mod.__path__ = []  # (a package: its submodules are stubs too)
    return mod


STUBS = ("parsl.monitoring", "parsl.monitoring.monitoring", "parsl.usage_tracking",
         "parsl.usage_tracking.levels")


def farm_name(name: str) -> str:
    """The farm module that serves Parsl's module `name`."""
    if name in RENAMED:
        return RENAMED[name]
    return "farm" + name[len("parsl"):]


class ParslAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``parsl`` and ``parsl.*`` from farm (install() puts it first in sys.meta_path)."""

    def find_spec(self, fullname: str, path: object = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname != "parsl" and not fullname.startswith("parsl."):
            return None
        if fullname in STUBS:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        for prefix, why in ABSENT.items():
            if fullname == prefix or fullname.startswith(prefix + "."):
                raise Unsupported(f"farm has no {fullname}: {why} (see docs/parsl.md)")
        try:
            found = importlib.util.find_spec(farm_name(fullname)) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise Unsupported(f"farm has no counterpart of Parsl's module {fullname}; it "
                              "serves parsl, parsl.app.*, parsl.config, parsl.executors, "
                              "parsl.providers, parsl.launchers, parsl.addresses, "
                              "parsl.utils, parsl.concurrent, parsl.data_provider.files and "
                              "parsl.dataflow.* (see docs/parsl.md)")
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # (a placeholder: exec_module puts farm's module in its place)

    def exec_module(self, module: ModuleType) -> None:
        # importlib returns what sys.modules holds under the name once this is done: farm's
        # module itself, not a copy (so isinstance checks and module globals are shared).
        name = module.__name__
        if name in STUBS:
            sys.modules[name] = _stub(name)
            return
        target = importlib.import_module(farm_name(name))
        if not hasattr(target, "__path__") and any(k.startswith(name + ".") for k in RENAMED):
            # A package in Parsl whose farm counterpart is a module (parsl.providers.slurm,
            # whose parsl.providers.slurm.slurm is imported too): the module's names, in a
            # module that can have submodules.
            proxy = ModuleType(name, target.__doc__)
            proxy.__dict__.update({k: v for k, v in vars(target).items()
                                   if not k.startswith("__")})
            proxy.__path__ = []
            target = proxy
        sys.modules[name] = target


_ALIAS = ParslAlias()
# Set by run() for the pools the program starts (they inherit the environment): `import
# farm` installs the alias there too, for apps that import parsl themselves.
ENV = "FARM_PARSL_ALIAS"


def install() -> None:
    """Serve ``import parsl...`` from farm in this process (idempotent), with Parsl's
    defaults where farm's differ: a SlurmProvider given no launcher runs one pool on its
    block's first node (SingleNodeLauncher), not one per node; ``fut.attr`` lifting is on."""
    from farm.dataflow.futures import lift_attributes
    from farm.launchers import SingleNodeLauncher
    from farm.providers import slurm
    slurm.default_launcher = SingleNodeLauncher
    lift_attributes()
    if _ALIAS not in sys.meta_path:
        sys.meta_path.insert(0, _ALIAS)


def uninstall() -> None:
    """Undo install(), and forget the Parsl names already imported."""
    from farm.launchers import SrunLauncher
    from farm.providers import slurm
    slurm.default_launcher = SrunLauncher
    if _ALIAS in sys.meta_path:
        sys.meta_path.remove(_ALIAS)
    for name in [n for n in sys.modules if n == "parsl" or n.startswith("parsl.")]:
        del sys.modules[name]


def run(script: str, args: list[str]) -> int:
    """Run the Parsl program `script` with `args`, its ``parsl`` served by farm; its exit
    status (1, with the traceback printed, if it raised)."""
    if not os.path.isfile(script):
        print(f"farm parsl: {script}: no such file", file=sys.stderr)
        return 2
    install()
    os.environ[ENV] = "1"
    path = os.path.abspath(script)
    saved_argv, saved_path0 = sys.argv, sys.path[0] if sys.path else None
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(path))
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = e.code
        if code is None or isinstance(code, int):
            return code or 0
        print(code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: B036 - the script's own failure, reported as Python would
        traceback.print_exc()
        return 1
    finally:
        sys.argv = saved_argv
        if sys.path and sys.path[0] == os.path.dirname(path):
            del sys.path[0]
        elif saved_path0 is not None and saved_path0 not in sys.path:
            sys.path.insert(0, saved_path0)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[0] + "\n\nusage: python -m farm.parsl SCRIPT [ARGS...]")
        return 0 if argv else 2
    return run(argv[0], argv[1:])


if __name__ == "__main__":
    sys.exit(main())
