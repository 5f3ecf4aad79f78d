"""When a compiled gradient may be reused: specialisation keys and guards.

A gradient is specialised on its arguments' kinds (type, shape, dtype kind) and on
the values of ints, bools and strings among them, which the code may fold in (an
axis, a size). It is also specialised on what lowering read from outside the
function: a float global is a number in the code, a helper is inlined, a closure
cell's contents are read. `lower_watched` records those reads, and `holds` turns
them into one cheap check per call; when it fails, the function is lowered again.
"""
from __future__ import annotations

import os
import types
from typing import Callable

import gast
import numpy as np

from adjoint.analysis.shapes import kind_of
from adjoint.frontend.lower import lower_function
from adjoint.frontend.source import ABSENT, Attributes, recording
from adjoint.ir.core import Call, Function, walk_ops


def signature_kinds(sig: tuple) -> tuple:
    return tuple(k for k, _ in sig)


def same_facts(a, b) -> bool:
    """Would code generated from observations `a` and `b` be the same? It is a function
    of the kinds, trip counts and sizes observed, and of nothing else about the call."""
    return a.kinds == b.kinds and a.counts == b.counts and a.bytes == b.bytes


# values the generated code may depend on, beyond their kind: an int can be an axis or a
# size (np.mean(x, axis=k) folds 1/x.shape[k] into the code), a str or bool a mode
_FOLDED = (int, bool, str, np.integer, np.bool_)


def folded(a, floats: bool = False):
    """The part of `a`'s value that is in the key (its kind is there too): ints, bools,
    strings and None; for a tuple, list or dict, each element's kind and folded value
    (a dict's keys too, in order), since the code is specialised on what each holds.
    An argument's floats never are (each new value would compile again); a global
    container's are (`floats`): lowering may fold them in, unrolling
    `sorted(TABLE.items())`, `reduce(mul, COEF)` or `f(x, **OPTS)`."""
    if isinstance(a, _FOLDED):
        return a.item() if isinstance(a, np.generic) else a
    if floats and isinstance(a, (float, complex, np.floating, np.complexfloating)):
        return a.item() if isinstance(a, np.generic) else a
    if isinstance(a, (tuple, list)):
        return tuple((kind_of(e), folded(e, floats)) for e in a)
    if isinstance(a, dict):
        return tuple((k, kind_of(v), folded(v, floats)) for k, v in a.items())
    if hasattr(type(a), "__dataclass_fields__"):  # its class, and each field as a dict's
        return (type(a),) + tuple((f, kind_of(getattr(a, f)), folded(getattr(a, f), floats))
                                  for f in type(a).__dataclass_fields__)
    if isinstance(a, range):
        return (a.start, a.stop, a.step)
    if (callable(a) or hasattr(a, "__dict__")) and not hasattr(a, "__array_function__"):
        # an object or a function a container holds (a model's layers, a tuple of
        # activations, which a loop over them unrolls): by identity, so that one replaced
        # (`LAYERS[0] = Dense(...)`) is seen
        return ("object", id(a))
    return None


def signature(args) -> tuple:
    """Everything about the arguments that a specialisation depends on: each one's kind
    (type, shape, dtype kind) and its folded value (ints, bools, strings)."""
    return tuple((kind_of(a), folded(a)) for a in args)


# types whose kind is their type alone
_PLAIN = {float, complex, np.float64, np.float32, np.complex128, type(None)}


_INTS = {int, bool, np.int64, np.int32, np.bool_}  # keyed by value too


def quick_signature(args) -> tuple | None:
    """A cheaper key that fixes `signature(args)` (types, arrays' shapes and dtype kinds,
    the values of ints and bools), or None for arguments only `kind_of` can tell apart (lists, tuples). A call in a
    loop pays this rather than building one `Kind` per argument."""
    key = []
    for a in args:
        t = type(a)
        if t is np.ndarray:
            key.append((a.shape, a.dtype.kind))
        elif t in _INTS:
            key.append((t, a))  # its value may be folded in (an axis, a size)
        elif t in _PLAIN:
            key.append(t)
        else:
            return None
    return tuple(key)


def lower_watched(f: Callable, constants=None) -> tuple[Function, tuple]:
    """`f` lowered (`constants`: parameters read as these values), and the guards of
    what the lowering read from outside it: a float global is folded into the code, a
    helper inlined, a global array's shape may be."""
    lowered, checks, _ = lower_recorded(f, constants)
    return lowered, checks


def lower_recorded(f: Callable, constants=None) -> tuple[Function, tuple, tuple]:
    """`lower_watched`, and the source files of the functions lowering parsed (f's and
    its helpers', adjoint's own left out): the code is made from their text."""
    with recording() as reads:
        lowered = lower_function(f, constants=constants)
    own = os.path.dirname(os.path.dirname(__file__))
    files = {parsed.filename for where, _, parsed in reads
             if where is None and not parsed.filename.startswith(own)}
    return lowered, guards(reads), tuple(sorted(files))


def guards(reads) -> tuple:
    """(namespace, name, value, shape, detail) per free name read: the code stays valid
    while `namespace.get(name, ABSENT) is value` (a cell: its contents) and, for an
    array, while its shape and dtype (the detail) are the same; for a function, while
    its code and defaults (the detail) are: IPython's autoreload swaps __code__ in
    place; for a list, tuple, dict or dataclass, while what it holds has the same kinds
    and numbers (its elements' shapes may be folded in, and so may its numbers where
    lowering unrolls it; `P['w'] = np.ones(5)` leaves P the same object).
    Reads of adjoint's own modules (the rule templates) are left out: they do not
    change under a running program."""
    out, seen = [], set()
    for where, name, value in reads + _attribute_reads(reads):
        if where is None or isinstance(where, dict) and \
                str(where.get("__name__", "")).startswith("adjoint."):
            continue
        key = (id(getattr(where, "obj", where)), name)
        if key in seen:
            continue
        seen.add(key)
        out.append(guard(where if isinstance(where, (dict, Attributes)) else _Cell(where),
                         name, value))
    return tuple(out)


def guard(where, name: str, value) -> tuple:
    """The guard that `where.get(name)` is still `value` and holds what it held: for an
    array its shape and dtype, for a function its state, for a container its contents."""
    arr = isinstance(value, np.ndarray)
    detail = value.dtype if arr else function_state(value) if isinstance(
        value, types.FunctionType) else folded(value, True) if _holds_values(value) else None
    return (where, name, value, value.shape if arr else None, detail)


def user_rule_entries(fn: Function) -> list:
    """The registry entries of the primitives `fn` calls whose rules a user registered
    (adjoint.defvjp, defjvp, nondifferentiable), in order: the IR names only the
    primitive, not what its rules say."""
    from adjoint.rules import registry
    out, seen = [], set()
    for op in walk_ops(fn.body):
        e = registry.entry(op.prim) if isinstance(op, Call) else None
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        rules = [t for t in (e.vjp, e.jvp) if t is not None]
        owner = getattr(e.prim.fn, "__module__", None) or ""
        if not all((getattr(t, "__module__", None) or "").startswith("adjoint.") for t in rules) \
                or not rules and not owner.startswith(_OWN_MODULES):
            out.append(e)
    return out


def rule_guards(fn: Function) -> tuple:
    """Guards on the user's rules that `fn`'s gradient inlines: each entry's templates (a
    notebook cell that registers a rule again) and what the templates read from their
    module (a number folded in when the rule is inlined)."""
    from adjoint.frontend.source import parse_function
    reads = []
    for e in user_rule_entries(fn):
        reads += [(vars(e), attr, getattr(e, attr)) for attr in ("vjp", "jvp", "nondiff")]
        for t in rule_functions(e):
            reads += [(t.__globals__, n, t.__globals__[n]) for n in t.__code__.co_names
                      if n in t.__globals__]
            try:  # `cfg.SCALE`, `Cfg.k`: read through a module or a class
                reads.append((None, None, parse_function(t)))
            except Exception:  # noqa: BLE001 - no source: its own names are still guarded
                pass
    return guards(reads)


def rule_functions(e) -> list:
    """A user entry's templates and the user functions they call, as far as they reach
    (a rule that calls `_scale(g)`, which reads a number of its module)."""
    out, todo = [], [t for t in (e.vjp, e.jvp) if t is not None]
    while todo:
        f = todo.pop()
        f = getattr(f, "__func__", f)  # a staticmethod's or classmethod's function
        if not isinstance(f, types.FunctionType) or f in out or \
                (f.__module__ or "").startswith(_OWN_MODULES):
            continue
        out.append(f)
        todo += [f.__globals__[n] for n in f.__code__.co_names if n in f.__globals__]
        todo += [c.cell_contents for c in f.__closure__ or () if _filled(c)]
    return out


def _filled(cell) -> bool:
    try:
        cell.cell_contents
        return True
    except ValueError:
        return False


_OWN_MODULES = ("adjoint.", "numpy", "math", "builtins")


def _attribute_reads(reads) -> list:
    """(namespace, attr, value) for each `name.attr` in a function read whose `name` is a
    user module or class: `config.scale` is folded in as a number too; and along a chain,
    `pkg.config.scale`, each link whose base is one (the base's read first)."""
    out, done = [], set()
    for where, _, parsed in reads:
        if where is not None or parsed in done:
            continue
        done.add(parsed)
        if parsed.filename.startswith(os.path.dirname(os.path.dirname(__file__))):
            continue  # adjoint's own rule templates
        for node in gast.walk(parsed.node):
            if isinstance(node, gast.Attribute):
                _attribute_chain(node, parsed, out)
    return out


def _attribute_chain(node, parsed, out: list):
    """The object `node` (a name or a chain of attributes on one) stands for, ABSENT if
    none: each `base.attr` on its way whose base is a user module or class is added to
    `out` as a read."""
    if isinstance(node, gast.Name):
        found, value = parsed.lookup(node.id)
        return value if found else ABSENT
    if not isinstance(node, gast.Attribute):
        return ABSENT
    base = _attribute_chain(node.value, parsed, out)
    if base is ABSENT or not isinstance(base, (type, types.ModuleType)) or \
            getattr(base, "__name__", "").split(".")[0] in _LIBRARIES:
        return ABSENT
    value = getattr(base, node.attr, ABSENT)
    out.append((Attributes(base), node.attr, value))
    return value


_LIBRARIES = {"numpy", "math", "builtins", "adjoint", "random", "operator"}


class _Cell:
    """A closure cell read like a namespace."""

    def __init__(self, cell) -> None:
        self.cell = cell

    def get(self, name, default):
        try:
            return self.cell.cell_contents
        except ValueError:
            return default


def holds(checks: tuple):
    """A function that is True while every check holds (None when there are none), as
    one expression: a call pays a dict lookup and an `is` per global (~40 ns), not a loop."""
    if not checks:
        return None
    ns, terms = {"ABSENT": ABSENT}, []
    for i, (where, name, value, shape, dtype) in enumerate(checks):
        ns[f"w{i}"], ns[f"v{i}"], ns[f"s{i}"], ns[f"d{i}"] = where, value, shape, dtype
        terms.append(f"w{i}.get({name!r}, ABSENT) is v{i}")
        if shape is not None:
            terms.append(f"v{i}.shape == s{i} and v{i}.dtype == d{i}")
        if isinstance(value, types.FunctionType):  # IPython's autoreload swaps __code__
            terms.append(f"state(v{i}) == d{i}")
        if _holds_values(value):  # P['w'] = np.ones(5) keeps P itself
            terms.append(f"folded(v{i}, True) == d{i}")
    ns["folded"], ns["state"] = folded, function_state
    exec(f"def holds():\n    return {' and '.join(terms)}\n", ns)
    return ns["holds"]


def stale(checks: tuple) -> str | None:
    """The name of the first free name that changed since `checks` were made, or None."""
    for where, name, value, shape, detail in checks:
        if where.get(name, ABSENT) is not value or (
                shape is not None and (value.shape != shape or value.dtype != detail)) or (
                isinstance(value, types.FunctionType) and function_state(value) != detail) or (
                _holds_values(value) and folded(value, True) != detail):
            return name
    return None


def function_state(f) -> tuple:
    """What of a helper its inlined code depends on, beyond its name: its code object
    (IPython's autoreload swaps __code__ in place) and its defaults, folded in as the
    caller's constants (`helper.__defaults__ = (5.0,)`, `__kwdefaults__['a'] = 5.0`)."""
    return (f.__code__, folded(f.__defaults__ or (), True),
            folded(f.__kwdefaults__ or {}, True))


def _holds_values(value) -> bool:
    """A list, tuple, dict or dataclass: what it holds can change while it stays itself,
    and the code may be specialised on its elements' kinds (shapes folded in)."""
    return isinstance(value, (tuple, list, dict)) or hasattr(type(value), "__dataclass_fields__") \
        and not isinstance(value, type)
