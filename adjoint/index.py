"""A cache hit that does not compile: the index of generated modules (issue 16).

`load.key` names a module by a hash of f's lowered IR, so a new process must lower f
(a third of a second for a long function) before it finds the module it wrote last
time. The index names the module by what a process can read without lowering, and
checks on each hit that the rest is still what it was:

- the key (`function_key`, then `call_key`): adjoint's own source, f's module, name,
  file and that file's text, the options, and the arguments' signature
  (`guards.signature`, ints by value) and array library;
- per entry, the witnesses: each name that lowering read from outside f (the guards
  of `guards.guards`: a global, a closure cell, a module's or class's attribute),
  found again from f along the path lowering took (f's globals, a helper's closure),
  with what the code assumed of it: a number its value, an array its shape and
  dtype, a function its file, line and defaults, a list or dict what it holds, a
  module its name; the text of each file whose functions were lowered; and the
  user's derivative rules (all of them: a rule registered since may take the place
  of a helper that was inlined).

A value known only by its identity (an instance, a bound method, a functools.partial,
a user's rule inlined) cannot be witnessed in another process: such code gets no
entry, and f is lowered each time, as before. A witness that fails is a miss: f is
lowered, and the entry written again.
"""
from __future__ import annotations

import hashlib
import json
import linecache
import sys
import types
from pathlib import Path

import numpy as np

from adjoint.codegen import load
from adjoint.frontend.source import ABSENT, Attributes, ClassAttributes
from adjoint.guards import _Cell, _holds_values, folded, guard
from adjoint.ir.core import Call, walk_ops
from adjoint.rules import registry

FORMAT = 1  # the index file's layout


# ------------------------------------------------------------------------ keys


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _stable(x) -> str | None:
    """repr(x) when it means the same in another process: no object named by its
    address or by `id` (guards.folded's ("object", id))."""
    text = repr(x)
    return None if " at 0x" in text or "('object', " in text else text


def file_text(filename: str) -> str | None:
    """The text lowering reads for `filename` now (linecache, checked against the file)."""
    linecache.checkcache(filename)
    lines = linecache.getlines(filename)
    return "".join(lines) if lines else None


def code_digest(code) -> str:
    """A digest of a code object that is the same in another process for the same source:
    two functions on one line (two lambdas) are told apart."""
    def parts(c):
        consts = tuple(parts(k) if isinstance(k, types.CodeType) else
                       sorted(map(repr, k)) if isinstance(k, frozenset) else repr(k)
                       for k in c.co_consts)
        return (c.co_name, c.co_code, c.co_names, c.co_varnames, c.co_freevars, consts)
    return _digest(repr(parts(code)))[:32]


def function_key(f, options: tuple) -> str | None:
    """The index's key for f and the derivative's options, or None when f cannot have
    one (not a plain function, no source file)."""
    if not isinstance(f, types.FunctionType):
        return None
    code = f.__code__
    text = file_text(code.co_filename)
    parts = _stable((FORMAT, f.__module__, f.__qualname__, code.co_filename,
                     code.co_firstlineno, code_digest(code), options))
    if text is None or parts is None:
        return None
    return _digest(load.compiler_digest() + parts + _digest(text))


def call_key(sig: tuple, library) -> str | None:
    """The key of a call's signature (`guards.signature`) and array library."""
    text = _stable((sig, library))
    return None if text is None else _digest(text)[:32]


def index_path(name: str, key: str, cache_dir=None) -> Path:
    return load.module_path(name, key, cache_dir).with_suffix(".idx")


def read(path: Path) -> dict:
    """The index file at `path` ({} when absent, unreadable or of another format)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and data.get("format") == FORMAT else {}


KEPT = 4  # entries per call key: globals that alternate between runs (a config) all hit
CALLS = 64  # call keys per index file, the latest (an int argument may key each value)


def write(path: Path, header: dict, call: str, entry: dict) -> None:
    """Add `entry` first among those of the call key `call` in the index at `path`
    (another process's entry written meanwhile may be lost: it is only a miss)."""
    data = read(path)
    if data.get("header") != header:
        data = {"format": FORMAT, "header": header, "entries": {}}
    entries = data["entries"]
    older = [e for e in entries.pop(call, []) if e != entry]
    entries[call] = [entry] + older[:KEPT - 1]  # last in the file's order: the latest
    for stale in list(entries)[:-CALLS]:
        del entries[stale]
    load.write_atomic(path, json.dumps(data, indent=1))


# ------------------------------------------------------------------ witnesses


def witness(value) -> str | None:
    """What compiled code assumes of a value lowering read, as text that means the same
    in another process; None for a value known only by its identity."""
    if value is ABSENT:
        return "absent"
    t = type(value)
    if t in (bool, int, float, complex, str, bytes, type(None)):
        return repr((t.__name__, value))
    if isinstance(value, np.generic) and t.__module__ == "numpy":
        return repr(("scalar", value.dtype.str, value.tolist()))
    if t is np.ndarray:
        return repr(("array", value.shape, value.dtype.str))
    if isinstance(value, types.ModuleType):
        return repr(("module", value.__name__))
    if isinstance(value, types.FunctionType):
        code = value.__code__
        defaults = _stable((folded(value.__defaults__ or (), True),
                            folded(value.__kwdefaults__ or {}, True)))
        return None if defaults is None else repr((
            "function", value.__module__, value.__qualname__, code.co_filename,
            code.co_firstlineno, code_digest(code), defaults))
    if _holds_values(value):
        held = _stable(folded(value, True))
        return None if held is None else repr(("holds", t.__module__, t.__qualname__, held))
    where = _named(value)
    if where is None or not isinstance(value, type) or _library(value.__module__):
        return None if where is None else repr(("named",) + where)
    # a user's class: what lowering reads of it (a namedtuple's fields and defaults, a
    # dataclass's fields, its methods) may differ under one name (made by a function)
    body = [(c.__qualname__, k, _outline(v)) for c in value.__mro__
            if not _library(c.__module__)
            for k, v in vars(c).items() if k not in ("__dict__", "__weakref__")]
    return repr(("class",) + where + (body,))


def _outline(v) -> str:
    """A class member's witness, or where it has none, its type (and a dict's keys)."""
    if isinstance(v, type):
        where = _named(v)
        return repr(("named",) + where) if where else type(v).__name__
    found = witness(v)
    if found is None and isinstance(v, dict):
        return repr((type(v).__name__, sorted(map(str, v))))
    return found if found is not None else type(v).__name__


def _library(module: str) -> bool:
    root = module.split(".")[0]
    return root in sys.stdlib_module_names or root in ("numpy", "scipy", "builtins")


def _named(value) -> tuple | None:
    """(module, qualified name) by which `value` is found again (a class, NumPy's ufunc,
    math.sin), or None."""
    module = getattr(value, "__module__", None)
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not isinstance(module, str) or not isinstance(name, str):
        return None
    return (module, name) if _find_named(module, name) is value else None


def _find_named(module: str, name: str):
    found = sys.modules.get(module)
    for part in name.split("."):
        found = getattr(found, part, ABSENT) if found is not None else ABSENT
        if found is ABSENT:
            return ABSENT
    return found


def _files_of(value) -> list[str]:
    """The source files whose text a value's witness stands for: a function's, a user
    class's module's (a class is known by its name, its body by its file)."""
    if isinstance(value, types.FunctionType):
        return [value.__code__.co_filename]
    if isinstance(value, type):
        if _library(value.__module__):
            return []
        path = getattr(sys.modules.get(value.__module__), "__file__", None)
        return [path] if path else ["<no file>"]  # no file: a witness that never holds
    return []


def _locate(where, roots: list):
    """How to find the namespace `where` again from f and the values read before it
    (`roots`), as JSON; None when it cannot be found that way."""
    if isinstance(where, _Cell):
        for j, r in enumerate(roots):
            if isinstance(r, types.FunctionType) and r.__closure__:
                for name, cell in zip(r.__code__.co_freevars, r.__closure__):
                    if cell is where.cell:
                        return ["cell", j, name]
        return None
    if isinstance(where, Attributes):
        kind = "class" if isinstance(where, ClassAttributes) else "attrs"
        if type(where) not in (Attributes, ClassAttributes):
            return None
        j = next((j for j, r in enumerate(roots) if r is where.obj), None)
        if j is None and kind == "class":  # a method of an instance read (self.step())
            j = next((j for j, r in enumerate(roots) if type(r) is where.obj), None)
            kind = "class-of"
        return None if j is None else [kind, j]
    if isinstance(where, dict):
        for j, r in enumerate(roots):
            if isinstance(r, types.FunctionType) and r.__globals__ is where:
                return ["globals", j]
            if getattr(r, "__dict__", None) is where and not isinstance(r, type):
                return ["vars", j]  # a module's globals, an instance's attributes
        name = where.get("__name__")
        module = sys.modules.get(name) if isinstance(name, str) else None
        return ["module", name] if module is not None and vars(module) is where else None
    return None


def _resolve(loc: list, roots: list):
    """The namespace that `loc` (from `_locate`) finds now, or None."""
    kind = loc[0]
    if kind == "module":
        module = sys.modules.get(loc[1])
        return vars(module) if module is not None else None
    r = roots[loc[1]] if loc[1] < len(roots) else None
    if kind == "cell" and isinstance(r, types.FunctionType) and r.__closure__ and \
            loc[2] in r.__code__.co_freevars:
        return _Cell(r.__closure__[r.__code__.co_freevars.index(loc[2])])
    if kind == "globals" and isinstance(r, types.FunctionType):
        return r.__globals__
    if kind == "vars" and isinstance(getattr(r, "__dict__", None), dict):
        return vars(r)
    if kind == "attrs" and r is not None:
        return Attributes(r)
    if kind == "class" and isinstance(r, type):
        return ClassAttributes(r)
    if kind == "class-of" and r is not None:
        return ClassAttributes(type(r))
    return None


def _users(e) -> bool:
    """Whether registry entry `e` holds a rule a user wrote (a template of theirs, or
    nondifferentiable declared on a function of theirs)."""
    if any(t is not None and not (getattr(t, "__module__", None) or "").startswith("adjoint.")
           for t in (e.vjp, e.jvp)):
        return True
    return e.nondiff and not _library(getattr(e.prim.fn, "__module__", None) or "builtins")


def rules_digest() -> str:
    """A digest of every derivative rule a user registered (adjoint.defvjp, defjvp,
    nondifferentiable): a rule registered since a module was made may take the place of
    a helper that was inlined."""
    from adjoint.driver import _code_print
    from adjoint.guards import rule_functions
    out = [(e.prim.name, e.nondiff, [_code_print(t) for t in rule_functions(e)])
           for e in registry.entries() if _users(e)]
    return _digest(repr(sorted(out, key=repr)))


def registry_guard() -> tuple:
    """The guard that no rule was registered since (in this process, after a hit)."""
    return guard(vars(registry), "generation", registry.generation)


def entry(f, lowered, checks: tuple, files: tuple, namespace: dict, path: Path,
          written: list) -> dict | None:
    """The index entry for the module at `path`, made from f's lowering (`checks`: its
    guards, `files`: the files it read, `namespace`: the objects the module is given),
    or None when something it read cannot be witnessed in another process."""
    called = (registry.entry(op.prim) for op in walk_ops(lowered.body) if isinstance(op, Call))
    if any(e is not None and _users(e) for e in called):
        return None  # an inlined user rule reads what its own module holds
    roots, names, witnesses, texts = [f], [None], [], set(files)
    pending = list(checks)
    while pending:  # in an order where each is found from f and those before it
        found = [(c, _locate(c[0], roots)) for c in pending]
        found = [(c, loc) for c, loc in found if loc is not None]
        if not found:
            return None
        for (where, name, value, _, _), loc in found:
            w = witness(value)
            if w is None:
                return None
            witnesses.append([loc, name, w])
            names.append(_global_name(loc, name, roots, names))
            roots.append(value)
            texts.update(_files_of(value))
        pending = [c for c in pending if all(c is not d for d, _ in found)]
    given = []
    for name, value in namespace.items():
        found = _given(name, value, roots, names)
        if found is None:
            return None
        given.append([name, found])
    digests = {}
    for filename in sorted(texts):
        text = file_text(filename)
        if text is None:
            return None
        digests[filename] = _digest(text)
    return {"module": path.name, "written": list(written), "witnesses": witnesses,
            "namespace": given, "files": digests, "rules": rules_digest()}


def _global_name(loc: list, name: str, roots: list, names: list) -> str:
    """What lowering names a value read as `name` from where `loc` finds: `cfg.W` is the
    global cfg_W, an instance's `CFG.w` CFG_w (lower.expr_Attribute)."""
    owner = roots[loc[1]] if isinstance(loc[1], int) else None
    if loc[0] in ("attrs", "class", "class-of") or \
            loc[0] == "vars" and not isinstance(owner, types.ModuleType):
        return f"{names[loc[1]]}_{name}"
    return name


def _given(name: str, value, roots: list, names: list) -> list | None:
    """How to find again the object the module is given as `name`: the read of that
    name (the same object under another name, `W` where f reads `A = W`, or an entry
    of a list read, may be another object in another process), or a library object by
    its module and name."""
    j = next((j for j, r in enumerate(roots) if r is value and names[j] == name), None)
    if j is not None:
        return [j]
    named = _named(value)
    return list(named) if named is not None and _library(named[0]) else None


def check(f, entry: dict, folder: Path):
    """(module path, namespace, guards) when every witness of `entry` holds now for f,
    else None. The guards are those lowering would have recorded, so that a later call
    in this process sees a change as it does after a compile."""
    path = folder / entry["module"]
    if not load._complete(path) or entry["rules"] != rules_digest():
        return None
    for filename, digest in entry["files"].items():
        text = file_text(filename)
        if text is None or _digest(text) != digest:
            return None
    roots, checks = [f], []
    for loc, name, w in entry["witnesses"]:
        where = _resolve(loc, roots)
        value = where.get(name, ABSENT) if where is not None else ABSENT
        if where is None or witness(value) != w:
            return None
        roots.append(value)
        checks.append(guard(where, name, value))
    checks.append(registry_guard())
    namespace = {}
    for name, found in entry["namespace"]:
        value = roots[found[0]] if len(found) == 1 else _find_named(*found)
        if value is ABSENT:
            return None
        namespace[name] = value
    return path, namespace, tuple(checks)
