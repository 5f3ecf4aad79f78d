"""What lowering binds a name to besides an IR operand, and the tests that sort Python
objects and call nodes into them.

A name in the function being lowered holds an IR operand (a Value, a Const, a Global)
or one of the compile-time objects here: a module or function (Static), a method before
it is called (Method), a lambda or nested def (Local), a partial (Partial), a user's
object read as constants (Instance), a frozen distribution (Frozen) or an object of a
plain class made in f (Built). None of these is a value: generated code never holds one.
"""
from __future__ import annotations

import enum
import functools
import inspect
import os
import sysconfig
import types
from dataclasses import dataclass
from typing import Any

import gast
import numpy as np

from adjoint.errors import AdjointError
from adjoint.ir.core import Loc, Operand

TEMP = "_t"  # the name of a temporary value
SCALARS = (bool, int, float, complex, str, type(None), type(Ellipsis), slice)


@dataclass(frozen=True)
class Static:
    """A compile-time object: a module, a function, a class, a bound method."""

    obj: Any


@dataclass(frozen=True)
class Method:
    """`value.name`, before it is called."""

    base: Operand
    name: str
    loc: Loc


@dataclass(frozen=True, eq=False)
class Local:
    """A function defined in the function being lowered: a lambda or a nested `def`.
    Calls inline it; its free names are read from `owner`'s variables when it is called
    (Python's closures bind late), its defaults were evaluated where it was defined."""

    node: Any  # gast.Lambda or gast.FunctionDef
    defaults: dict  # parameter name -> operand
    owner: Any  # the Lowerer whose variables it closes over
    name: str


@dataclass(frozen=True, eq=False)
class Partial:
    """`functools.partial(fn, *args, **kwargs)`, before it is called."""

    fn: Any  # Static or Local
    args: tuple
    kwargs: tuple


@dataclass(frozen=True, eq=False)
class Instance:
    """A user object whose attributes are read as constants: a bound method's `self`.
    `name` prefixes the names its attributes get in generated code (`self_W`)."""

    obj: Any
    name: str


@dataclass(frozen=True, eq=False)
class Frozen:
    """`scipy.stats.norm(loc, scale)`, a frozen distribution, before a method of it is
    called: `d.logpdf(x)` is `scipy.stats.norm.logpdf(x, loc=loc, scale=scale)`."""

    dist: Any  # the distribution (scipy.stats.norm)
    kwargs: tuple  # (parameter name, operand) pairs


@dataclass(eq=False)
class Built:
    """An instance of a plain class of the user's made in f (`Layer(W, b)`): the
    attributes its __init__ stored, as operands. Reads, method calls and `layer(x)` are
    inlined on it, as on a bound method's `self`; it is no value (a container, a branch,
    a loop or a return that holds it is refused), and its attributes are written only
    by its __init__, in straight-line code (`ops`: the op list __init__ was called in)."""

    cls: type
    attrs: dict
    ops: list
    building: bool = True


FUNCTIONS = (Static, Method, Local, Partial, Instance, Frozen, Built)  # not values


def is_literal(x) -> bool:
    """A constant of the code: a number, a string, None, a slice, an enum member (which
    generated code names through its class, Act.TANH), or a tuple of them."""
    if isinstance(x, tuple):
        return all(is_literal(e) for e in x)
    return isinstance(x, SCALARS + (enum.Enum,)) and not isinstance(x, np.ndarray)


def is_user_object(obj) -> bool:
    """An instance of a user's class (its attributes are read like a bound method's self)."""
    return isinstance(getattr(obj, "__dict__", None), dict) and not isinstance(
        obj, (type, types.ModuleType, functools.partial)) and not inspect.isroutine(obj) \
        and type(obj).__module__.split(".")[0] not in ("numpy", "builtins", "adjoint", "scipy") \
        and type(obj).__getattribute__ is object.__getattribute__  # obj.a is obj.__dict__['a']


def is_library(fn) -> bool:
    """A function of a library, called rather than inlined: NumPy, SciPy, ..., and the
    standard library's Python code (random.gauss is a draw, not user code to lower)."""
    module = getattr(fn, "__module__", "") or ""
    return module.split(".")[0] in ("numpy", "scipy", "math", "builtins", "jax", "torch") \
        or _in_standard_library(fn)


# the standard library's folder; site-packages may sit inside it (a Python without a venv)
_STDLIB = os.path.realpath(sysconfig.get_paths()["stdlib"]) + os.sep


def _in_standard_library(fn) -> bool:
    """Whether `fn`'s code is a file of the standard library itself (by where it is, not
    by its module's name: a user's `test.py` is not the stdlib's `test`)."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return code is not None and _stdlib_file(code.co_filename)


@functools.lru_cache(maxsize=None)
def _stdlib_file(filename: str) -> bool:
    # cached: realpath asks the file system, and lowering asks once per call it inlines
    path = os.path.realpath(filename)
    return path.startswith(_STDLIB) and not any(
        part in ("site-packages", "dist-packages") for part in path.split(os.sep))


def qualname(fn) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def type_module(obj) -> str:
    """The module of obj's type ('' where it names none: the type of a Cython function
    has a descriptor there on some NumPy builds)."""
    module = getattr(type(obj), "__module__", "")
    return module if isinstance(module, str) else ""


def dotted(node) -> str:
    """`np.mgrid` for the node of `np.mgrid` (what an error message calls it)."""
    if isinstance(node, gast.Attribute):
        return dotted(node.value) + "." + node.attr
    return node.id if isinstance(node, gast.Name) else "object"


def hint_of(node) -> str:
    if isinstance(node, gast.Name):
        return node.id
    if isinstance(node, (gast.Subscript, gast.Attribute)):
        return hint_of(node.value)
    return TEMP


def is_call_to(low, node, fn) -> bool:
    """Whether `node` calls `fn`, its callee read by the Lowerer `low`."""
    if not isinstance(node, gast.Call):
        return False
    try:
        callee = low.expr(node.func)
    except AdjointError:
        return False
    return isinstance(callee, Static) and callee.obj is fn


def dict_view(node) -> bool:
    """`d.items()`, `d.keys()` or `d.values()`: what a loop over a dict reads."""
    return (isinstance(node, gast.Call) and isinstance(node.func, gast.Attribute) and
            node.func.attr in ("items", "keys", "values") and not node.args and
            not node.keywords)
