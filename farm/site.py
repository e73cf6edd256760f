"""Site configs: one YAML file says where things run, so that moving from a laptop to a
cluster edits no Python.

    spool_root: /scratch/me/farm       # default spools: <spool_root>/<name>.farm
    retries: 1
    executor:                          # SpoolExecutor's options
      max_workers_per_node: 64
      cores_per_worker: 2
    provider:                          # local (the default) or slurm, with its options
      type: slurm
      partition: regular
      walltime: "01:00:00"
      max_blocks: 4
      launcher: srun                   # or {type: srun, overrides: "-c 64"}

``load(path)`` turns it into a Config.  Every mistake is one SiteError naming the file,
the line and the key (an unknown key with the nearest known ones, a value of the wrong
type, a value the provider or executor refuses), raised before anything runs.  The keys
are the constructors' own parameters, so the file and the Python API never drift apart.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
from collections.abc import Callable
from typing import Any

import yaml

from farm.config import Config
from farm.errors import ConfigError

TOP = ("spool_root", "retries", "crash_retries", "executor", "provider")
SITE_ENV = "FARM_SITE"


class SiteError(ConfigError):
    """A site file that cannot be used; the message names the file, line and key."""


def load(path: str | os.PathLike[str]) -> Config:
    """The Config a site file describes (see the module docstring)."""
    return Site(path).config()


def from_env() -> Config | None:
    """The Config of $FARM_SITE, or None if it is not set."""
    path = os.environ.get(SITE_ENV)
    return load(path) if path else None


class Site:
    """A site file, read and checked; ``config()`` builds the objects it describes."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = os.fspath(path)
        try:
            with open(self.path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise SiteError(f"{self.path}: cannot read the site file: "
                            f"{e.strerror or e}") from None
        except UnicodeDecodeError:
            raise SiteError(f"{self.path}: not a text file (UTF-8)") from None
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{self.path}:{mark.line + 1}" if mark is not None else self.path
            raise SiteError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
        finally:
            loader.dispose()
        self.lines: dict[tuple[str, ...], int] = {}
        self.text: dict[tuple[str, ...], str] = {}  # scalars as written
        if node is not None:
            self._index(node, ())
        if not isinstance(data, dict):
            raise SiteError(f"{self.path}: a site file is a mapping of {', '.join(TOP)}, "
                            f"not a {type(data).__name__}")
        self.data = data
        self._check_keys(data, (), TOP)

    # -- where each key is -----------------------------------------------------------------

    def _index(self, node: yaml.Node, at: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                key = (*at, str(k.value))
                self.lines[key] = k.start_mark.line + 1
                if isinstance(v, yaml.ScalarNode):
                    self.text[key] = v.value
                self._index(v, key)

    def where(self, *key: str) -> str:
        """FILE:LINE: KEY, for messages (the line of the nearest key written in the file:
        `launcher: srun` stands for launcher.type)."""
        at = tuple(key)
        while at and at not in self.lines:
            at = at[:-1]
        line = self.lines.get(at)
        dotted = ".".join(key)
        return f"{self.path}:{line}: {dotted}" if line else f"{self.path}: {dotted}"

    def _check_keys(self, mapping: dict, at: tuple[str, ...], known: tuple[str, ...]) -> None:
        for k in mapping:
            if str(k) not in known:
                near = difflib.get_close_matches(str(k), known, n=2)
                hint = (f"did you mean {' or '.join(near)}?" if near
                        else f"known keys: {', '.join(known)}")
                raise SiteError(f"{self.where(*at, str(k))}: unknown key; {hint}")

    # -- building ------------------------------------------------------------------------------

    def config(self) -> Config:
        from farm.executors import SpoolExecutor
        counts = {}
        for name, default in (("retries", 0), ("crash_retries", 2)):
            value = self.data.get(name, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise SiteError(f"{self.where(name)}: must be a whole number >= 0, got "
                                f"{value!r}")
            counts[name] = value
        options = self._section("executor", SpoolExecutor, skip=("provider", "spool", "label"))
        root = self.data.get("spool_root")
        if root is not None and not isinstance(root, str):
            raise SiteError(f"{self.where('spool_root')}: must be a directory path, got "
                            f"{root!r}")
        ex = self._make(("executor",), SpoolExecutor, dict(options, provider=self.provider()))
        run_dir = os.path.expandvars(os.path.expanduser(root)) if root else None
        unset = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", run_dir or "")
        if unset:
            raise SiteError(f"{self.where('spool_root')}: ${unset[0]} is not set in this "
                            "environment")
        return Config(executors=[ex], run_dir=run_dir, retries=counts["retries"],
                      crash_retries=counts["crash_retries"])

    def provider(self) -> Any:
        from farm.providers import LocalProvider, SlurmProvider
        kinds: dict[str, Callable[..., Any]] = {"local": LocalProvider,
                                                "slurm": SlurmProvider}
        section = self.data.get("provider") or {}
        if not isinstance(section, dict):
            raise SiteError(f"{self.where('provider')}: must be a mapping (type: local or "
                            f"slurm, and its options), got {section!r}")
        kind = section.get("type", "local")
        if kind not in kinds:
            near = difflib.get_close_matches(str(kind), kinds, n=1)
            raise SiteError(f"{self.where('provider', 'type')}: unknown provider {kind!r}; "
                            + (f"did you mean {near[0]}?" if near else
                               f"farm has {', '.join(kinds)}"))
        cls = kinds[kind]
        options = self._section("provider", cls, skip=("launcher",), extra=("type", "launcher"))
        if "launcher" in section:
            options["launcher"] = self.launcher(section["launcher"])
        return self._make(("provider",), cls, options)

    def launcher(self, spec: Any) -> Any:
        from farm import launchers
        kinds = {"srun": launchers.SrunLauncher, "mpiexec": launchers.MpiExecLauncher,
                 "single": launchers.SingleNodeLauncher, "simple": launchers.SimpleLauncher}
        at = ("provider", "launcher")
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, dict) or "type" not in spec:
            raise SiteError(f"{self.where(*at)}: a launcher name ({', '.join(kinds)}) or "
                            f"{{type: NAME, overrides: ...}}, got {spec!r}")
        kind = spec["type"]
        if kind not in kinds:
            near = difflib.get_close_matches(str(kind), kinds, n=1)
            raise SiteError(f"{self.where(*at, 'type')}: unknown launcher {kind!r}; "
                            + (f"did you mean {near[0]}?" if near else
                               f"farm has {', '.join(kinds)}"))
        options = {k: v for k, v in spec.items() if k != "type"}
        self._check_keys(options, at, tuple(_params(kinds[kind])))
        self._check_types(options, at, kinds[kind])
        return self._make(at, kinds[kind], options)

    def _section(self, name: str, cls: Callable[..., Any], skip: tuple[str, ...] = (),
                 extra: tuple[str, ...] = ()) -> dict[str, Any]:
        section = self.data.get(name) or {}
        if not isinstance(section, dict):
            raise SiteError(f"{self.where(name)}: must be a mapping of options, got "
                            f"{section!r}")
        known = tuple(p for p in _params(cls) if p not in skip) + extra
        self._check_keys(section, (name,), known)
        options = {k: v for k, v in section.items() if k not in extra}
        self._check_types(options, (name,), cls)
        return options

    def _check_types(self, options: dict[str, Any], at: tuple[str, ...],
                     cls: Callable[..., Any]) -> None:
        params = _params(cls)
        for k, v in list(options.items()):
            want = params[k].default
            ann = str(params[k].annotation)
            text_only = isinstance(want, str) or ("str" in ann and "int" not in ann
                                                  and "float" not in ann)
            if text_only and isinstance(v, (int, float)) and not isinstance(v, bool):
                # YAML reads 1:30:00 as a number (base 60) and 0755 as octal: a string
                # option gets the text as it was written.
                v = options[k] = self.text.get((*at, k), str(v))
            if v is None or want is None or want is inspect.Parameter.empty:
                continue
            ok = (isinstance(v, bool) if isinstance(want, bool) else
                  isinstance(v, (int, float)) and not isinstance(v, bool)
                  if isinstance(want, (int, float)) else isinstance(v, type(want)))
            if isinstance(want, int) and not isinstance(want, bool) and isinstance(v, float):
                ok = v.is_integer()
            if not ok:
                raise SiteError(f"{self.where(*at, k)}: must be {_kind(want)}, got {v!r}")

    def _make(self, at: tuple[str, ...], cls: Callable[..., Any],
              options: dict[str, Any]) -> Any:
        try:
            return cls(**options)
        except ConfigError as e:
            # The constructor's own message names the option; say where it is.
            bad = next((k for k in options if k in str(e)), None)
            where = self.where(*at, bad) if bad else self.where(*at)
            raise SiteError(f"{where}: {e}") from None
        except (TypeError, ValueError) as e:
            raise SiteError(f"{self.where(*at)}: {e}") from None


def _params(cls: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    return {n: p for n, p in inspect.signature(cls).parameters.items()
            if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def _kind(example: Any) -> str:
    if isinstance(example, bool):
        return "true or false"
    if isinstance(example, int):
        return "a whole number"
    if isinstance(example, float):
        return "a number"
    if isinstance(example, str):
        return "a string"
    return f"a {type(example).__name__}"
