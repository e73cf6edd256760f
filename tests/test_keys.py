"""Task keys are pinned: a script run again must find its tasks in the spool, so any change
to how keys are derived (or a new cloudpickle changing what they hash) is a deliberate
spool format change (records.FORMAT), never an accident.  These values were computed once
and must not change; `make test` checks them on the newest and the oldest dependencies."""

from __future__ import annotations

import datetime

from farm.data import AUTO_LOGNAME, File
from farm.dataflow.futures import AppFuture, DataFuture
from farm.dataflow.keys import app_identity, call_digest, task_key
from farm.dataflow.task import TaskRecord
from farm.spool import records


def golden_app(x, y=1, *more, scale=2.0, **options):
    return (x + y) * scale


def _future(key: str, outputs=()) -> AppFuture:
    task = TaskRecord(key=key, name="dep", kind="python", func=None, args=(), kwargs={},
                      opts={}, outputs=list(outputs), executor=None)
    task.future = AppFuture(task)
    return task.future


IDENTITY = "tests.test_keys.golden_app:0123456789abcdef"  # a fixed identity: args alone
DEP = _future("d" * 32)
DEP_FILE = DataFuture(_future("e" * 32, [File("/data/out.txt")]), File("/data/out.txt"))

CASES = {
    "no arguments": ((), {}),
    "ints, negative and big": ((0, -1, 2**70), {}),
    "floats": ((0.1, -0.0, 1e300, float("inf")), {}),
    "strings": (("", "plain", "ünïcode ✓", "a\nb"), {}),
    "bytes, None, booleans": ((b"\x00\xff", None, True, False), {}),
    "nested containers": (([1, (2, [3, {"k": (4,)}])], {"b": 1, "a": [2]}), {}),
    "sets": (({3, 1, 2}, frozenset({"x", "y"})), {}),
    "files": ((File("/data/in.txt"), File("relative/path")), {}),
    "auto logname": ((), {"stdout": AUTO_LOGNAME}),
    "futures": ((DEP,), {"inputs": [DEP_FILE]}),
    "kwargs, in any order": ((1,), {"scale": 3.0, "options": {"z": 1, "a": 2}}),
    "a value pickled (datetime)": ((datetime.date(2020, 2, 29),), {}),
}

# name: (key of the first such call, key of the second: ordinals 0 and 1)
GOLDEN = {
    "no arguments": ("b0624fb1ce776ea318e410ead8a286ad", "58c8deee34b6d6f6e3a278bca31e9ef7"),
    "ints, negative and big":
        ("502500fde6391fb789847dacf9b0c86b", "0afb60a2ac9f742846dea502dd4856fa"),
    "floats": ("54b11c727b5db5b9c87d9fadd9677288", "5b8977c453eb9ea024a9feadfe5739d4"),
    "strings": ("4b819d20c827229d761435b11677d1a6", "c6b0140f9270385099b3b33e54f71e87"),
    "bytes, None, booleans":
        ("0caee29742dd53b27a82fe4046bf1381", "5e8c3565e89fd95a1a3e0457396c1aaf"),
    "nested containers": ("e1ea1c08a216923a4ec37a0d1257658a", "be06ea8a9bf1664044bc4360e2c6de9a"),
    "sets": ("8f54c1852fec5f2e626b469db89f9ee5", "180497d269b7f7efed0ec0695d9679d5"),
    "files": ("1e09c0b877c8fb92bda67044129eb89f", "bfc14a3312384d9fa0d8b448a61ef3b9"),
    "auto logname": ("c5515490bd566a3499ea8959d735b2b6", "9f7d24af95c1d357490fd2a37b1bce0e"),
    "futures": ("d25170e22a241bdde121110556da115c", "46442e433d8fea6695cfe93294a087ea"),
    "kwargs, in any order":
        ("29733a48948939acacfbb5e8d8bc4ca7", "c97e7418801daf17c14cef149ecf4265"),
    "a value pickled (datetime)":
        ("f08edd461685da5e4ca132960f56b9e1", "48c39d310bb615e5f0b0f0b40f4f4fef"),
}
GOLDEN_IDENTITY = "tests.test_keys.golden_app:ea574ee4fe48d370"


def test_keys_of_a_fixed_set_of_calls_never_change():
    got = {name: (task_key(call_digest(IDENTITY, a, kw), 0),
                  task_key(call_digest(IDENTITY, a, kw), 1))
           for name, (a, kw) in CASES.items()}
    changed = {n for n in CASES if got[n] != GOLDEN[n]}
    assert not changed, (
        f"task keys changed for {sorted(changed)}: every user's spool would be re-run. If "
        f"that is meant, bump the spool format (records.FORMAT, now {records.FORMAT}) and "
        "update these values")


def test_the_identity_of_an_app_covers_its_name_and_source():
    assert app_identity(golden_app) == GOLDEN_IDENTITY


def test_keys_do_not_depend_on_the_order_of_kwargs_or_set_items():
    a = call_digest(IDENTITY, (), {"x": 1, "y": {"p": 1, "q": 2}, "s": {1, 2, 3}})
    b = call_digest(IDENTITY, (), {"s": {3, 2, 1}, "y": {"q": 2, "p": 1}, "x": 1})
    assert a == b
    assert call_digest(IDENTITY, (1,), {}) != call_digest(IDENTITY, (1.0,), {})
    assert call_digest(IDENTITY, ([1],), {}) != call_digest(IDENTITY, ((1,),), {})


# -- what an app's identity covers besides its source ----------------------------------------

MODULE = '''
import math
from os.path import join

SCALE = 10
UNUSED = 1
OFFSET = 5

def helper(x):
    return x * SCALE

class Shape:
    sides = 3

def app(x, n=OFFSET):
    return helper(x) + math.sqrt(n) + Shape.sides + len(join("a", "b"))

def plain(x):
    return x + 1
'''


def _load(tmp_path, name, text):
    import importlib.util
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    import sys
    sys.modules[name] = mod  # (as a script's __main__ is: inspect finds classes through it)
    spec.loader.exec_module(mod)
    return mod


def test_the_identity_covers_globals_helpers_classes_and_default_names(tmp_path):
    base = _load(tmp_path, "wf0", MODULE)
    ident = app_identity(base.app)
    assert app_identity(base.plain).endswith(
        ":" + __import__("hashlib").sha256(b"def plain(x):\n    return x + 1\n")
        .hexdigest()[:16])  # (reads nothing: the source alone, as before)
    edits = {
        "a global it reads": ("SCALE = 10", "SCALE = 1000"),
        "a helper's source": ("return x * SCALE", "return x * SCALE + 1"),
        "a class it uses": ("sides = 3", "sides = 4"),
        "a global in a default value": ("OFFSET = 5", "OFFSET = 6"),
    }
    for i, (what, (old, new)) in enumerate(edits.items()):
        mod = _load(tmp_path, f"wf{i + 1}", MODULE.replace(old, new))
        assert app_identity(mod.app).split(":")[1] != ident.split(":")[1], what
    same = {
        "a global it does not read": ("UNUSED = 1", "UNUSED = 2"),
        "code above it moved": ("import math\n", "import math\n\n\n# a comment\n"),
    }
    for i, (what, (old, new)) in enumerate(same.items()):
        mod = _load(tmp_path, f"same{i}", MODULE.replace(old, new))
        assert app_identity(mod.app).split(":")[1] == ident.split(":")[1], what


def test_the_identity_covers_closures_and_is_stable_for_sets(tmp_path):
    def make(k):
        def inner(x):
            return x * k
        return inner
    assert app_identity(make(2)) != app_identity(make(3))
    assert app_identity(make(2)) == app_identity(make(2))
    # A global set of strings: its order varies with PYTHONHASHSEED, its key must not.
    import subprocess
    import sys
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import wfset; "
            "from farm.dataflow.keys import app_identity; print(app_identity(wfset.app))")
    (tmp_path / "wfset.py").write_text(
        "NAMES = {'alpha', 'beta', 'gamma', 'delta'}\n\ndef app():\n    return sorted(NAMES)\n")
    got = {subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, check=True, timeout=60,
                          env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout
           for seed in ("1", "2", "3")}
    assert len(got) == 1, got


GOLDEN_READS = "wfg.app:"  # an app that reads a global: its identity, pinned below


def test_the_identity_of_an_app_that_reads_a_global_never_changes(tmp_path):
    mod = _load(tmp_path, "wfg", "SCALE = 10\n\ndef app(x):\n    return x * SCALE\n")
    assert app_identity(mod.app) == GOLDEN_READS + "df942d5dbabf2337"
