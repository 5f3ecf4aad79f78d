"""The primitive table: every callable adjoint knows, with its derivative rules.

A rule is a runnable template function written next to its primitive:

    @defvjp(np.exp)
    def exp(g, ans, x):
        return g * ans

    @defjvp(np.exp)
    def exp(ans, x, x_dot):
        return x_dot * ans

A VJP template takes the output's cotangent `g`, the output `ans`, then the
primal inputs (named and defaulted as the primitive names them); it returns one
cotangent per positional input, as a tuple (or a single expression for the
first input; inputs past the end of the tuple, and those given as None, are
not differentiable). A JVP template takes `ans`, the inputs, then a `<name>_dot`
tangent for each differentiable input, and returns the output's tangent.

Templates are lowered by the same front end as user code and inlined, so the
generated gradient reads like hand-written NumPy and can be differentiated again.
The set of supported primitives is one grep: `@defvjp(`.
"""
from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from adjoint.ir.core import Prim


@dataclass
class Entry:
    prim: Prim
    vjp: Callable | None = None
    jvp: Callable | None = None
    nondiff: bool = False  # piecewise constant or integer valued: zero derivative
    pure: bool = True  # no side effects: may be folded, moved or removed


_by_id: dict[int, Entry] = {}
_by_name: dict[str, Entry] = {}
_keepalive: list = []


def _default_name(fn: Callable) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def public_name(fn: Callable) -> str:
    """How generated code spells `fn` when no one chose a name: its qualified name, and
    for NumPy `np.` plus the public module it is reached through. That matters for
    methods bound to NumPy's module-level objects: np.random.rand is RandomState.rand
    bound to the global generator, and `RandomState` does not resolve."""
    name = _default_name(fn)
    module = getattr(fn, "__module__", None) or ""
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, np.ufunc) and getattr(np, owner.__name__, None) is owner:
        return f"np.{owner.__name__}.{fn.__name__}"  # np.add.reduce, not ufunc.reduce
    if not module and owner is not None and not isinstance(owner, type(sys)):
        # a method bound to a module's hidden instance (random.random is Random.random
        # bound to random._inst): spelled as the module exposes it
        home, short = type(owner).__module__, getattr(fn, "__name__", "")
        if short and getattr(sys.modules.get(home), short, None) == fn:
            return f"{home}.{short}"
    if module != "numpy" and not module.startswith("numpy."):
        return name
    short = getattr(fn, "__name__", "")
    public = not any(part.startswith("_") for part in module.split("."))
    if public and short and getattr(sys.modules.get(module), short, None) == fn:
        return "np" + module[len("numpy"):] + "." + short
    return "np." + name


def primitive(fn: Callable, name: str, style: str = "call", symbol: str = "",
              precedence: int = 100, *, nondiff: bool = False, pure: bool = True) -> Prim:
    """Declare `fn` a primitive printed as `name` (see `Prim` for the styles). A name
    that is just fn's qualified name (an unknown callable met in user code) becomes
    its `public_name`, one that resolves in generated code."""
    if name == _default_name(fn):
        name = public_name(fn)
    prim = Prim(name, fn, style, symbol, precedence)
    entry = Entry(prim, nondiff=nondiff, pure=pure)
    _by_id[id(fn)] = entry
    _by_name[name] = entry
    _keepalive.append(fn)
    return prim


def lookup(fn) -> Entry | None:
    return _by_id.get(id(fn))


def entry(prim: Prim) -> Entry | None:
    e = _by_name.get(prim.name)
    return e if e is not None and e.prim is prim else _by_id.get(id(prim.fn))


def entries() -> list[Entry]:
    """Every registered primitive, in registration order."""
    return list(_by_name.values())


def _ensure(fn: Callable) -> Entry:
    e = lookup(fn)
    if e is None:
        primitive(fn, public_name(fn))
        e = lookup(fn)
    return e


def defvjp(fn: Callable):
    """Register the decorated template as the VJP of primitive `fn`."""
    def register(template: Callable) -> Callable:
        _ensure(fn).vjp = template
        return template
    return register


def defjvp(fn: Callable):
    """Register the decorated template as the JVP of primitive `fn`."""
    def register(template: Callable) -> Callable:
        _ensure(fn).jvp = template
        return template
    return register


def defnondiff(*fns: Callable) -> None:
    """Declare primitives whose derivative is zero wherever it exists (floor, sign, ==)."""
    for fn in fns:
        _ensure(fn).nondiff = True


def template_inputs(template: Callable, skip: int) -> list[str]:
    """The primal input names a template binds (after `g, ans` or `ans`)."""
    params = list(inspect.signature(template).parameters.values())[skip:]
    return [p.name for p in params if not p.name.endswith("_dot")]


def named(name: str) -> Prim:
    """The primitive registered under `name` (for the front end, which cannot import
    the rule modules: they import it)."""
    return _by_name[name].prim
