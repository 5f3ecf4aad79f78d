"""Casts: `np.float64(v)`, `np.asarray(x, np.float32)`, `x.astype(dtype)`. A cast to a
narrower float rounds, and is lowered as a call without a derivative rule, so that a
gradient flowing through it is refused at its line.

Each function takes the Lowerer `low` of the call.
"""
from __future__ import annotations

import operator

import numpy as np

from adjoint.frontend.bindings import TEMP, Method, Static, qualname
from adjoint.ir.core import Const, Global
from adjoint.rules import registry
from adjoint.rules.registry import prim_of


# NumPy's casts, whose dtype= says what the value becomes (astype is lowered to two of them)
CASTS = (np.asarray, np.array, np.asanyarray, np.ascontiguousarray, np.asfortranarray)
# dtype kinds a cast is lowered for: bool, ints, floats and complex numbers
NUMERIC_KINDS = "biufc"


def dtype_position(callee) -> int | None:
    """Where `callee` takes a dtype by position: x.astype(np.float64), np.asarray(x, float)."""
    if isinstance(callee, Method) and callee.name == "astype":
        return 0
    if isinstance(callee, Static) and any(callee.obj is c for c in CASTS):
        return 1
    return None


def dtype_of(o) -> np.dtype | None:
    """The dtype a dtype operand names (a class, a string), when it is known here."""
    value = o.value if isinstance(o, (Const, Global)) else None
    if value is None:
        return None
    try:
        return np.dtype(value)
    except (TypeError, ValueError):
        return None


def narrows(dtype) -> bool:
    """A cast to it rounds a float64: float32, float16."""
    return dtype.kind == "f" and dtype.itemsize < 8


def scalar_cast(low, cls, args, kwargs, node, hint):
    """`np.float64(v)` as np.asarray(v, dtype=np.float64)[()]: the number, or the
    array (v itself when it has that dtype already, as NumPy returns it)."""
    if len(args) != 1 or kwargs:
        raise low.error(f"`np.{cls.__name__}` takes one value here", node,
                        f"write np.{cls.__name__}(v)")
    dtype = np.dtype(cls)
    if narrows(dtype):
        return narrowed(low, dtype, args[0], node, hint)
    cast = low.call(Static(np.asarray), args, [("dtype", Global(
        cls.__name__, cls, cls.__module__))], node, TEMP)
    return low.emit(prim_of(operator.getitem), (cast, Const(())), hint=hint, node=node)


def narrowed(low, dtype, x, node, hint):
    """A cast to a narrower float (float32, float16) rounds: the call has no
    derivative rule, so a gradient that flows through it is refused at its line
    (on values that carry none, data cast to float32, it is only computed)."""
    cls = dtype.type
    entry = registry.lookup(cls)
    prim = entry.prim if entry is not None else registry.primitive(
        cls, qualname(cls), pure=False)
    return low.emit(prim, (x,), hint=hint, node=node)


def astype(low, x, args, kwargs, node, hint):
    """`x.astype(dtype)`: a copy of x of that dtype (`copy=False`: x itself when it has
    it already), as np.array(x, dtype=...) or np.asarray. An int dtype makes a constant,
    as int() does (analysis/activity.py reads the dtype); see `call` for float32."""
    options = dict(kwargs)
    if "dtype" in options and not args:
        args = [options.pop("dtype")]
    copy = options.pop("copy", Const(True))
    if len(args) != 1 or options or not isinstance(copy, Const):
        raise low.error("write x.astype(dtype) or x.astype(dtype, copy=False)", node)
    if dtype_of(args[0]) is None:
        raise low.error("x.astype() of a dtype that is not known here", node,
                        "name it: x.astype(np.float64), x.astype(float) or x.astype(int)")
    return low.call(Static(np.array if copy.value else np.asarray), [x],
                    [("dtype", args[0])], node, hint)
