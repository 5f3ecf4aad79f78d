"""Algebraic simplification of inlined derivative rules.

Rules are written for the general case: `g * y * x ** (y - 1)` for a power,
`unbroadcast(g, x)` for any binary op. Once operands are known constants most
of that collapses, and the generated code should show what is left:

    g * 2 * x ** (2 - 1)   ==>   g * 2 * x
    (0.5 * g) * 2          ==>   1.0 * g   ==>   g
    -(-a)                  ==>   a

Only rewrites that keep the value's shape and kind are made: `x * 0` is never
folded to 0, since that would lose the shape of an array. The rewrites apply
to rule templates, whose operands are float cotangents and primal values; user
code is left as written (there, `n * 1.0` may be how an int becomes a float).
"""
from __future__ import annotations

import operator

from adjoint.ir.core import Const, Value


def _is(o, value) -> bool:
    return isinstance(o, Const) and type(o.value) in (int, float) and o.value == value


def simplify(fn, args, defs):
    """The operand `fn(*args)` reduces to, or None to emit the call."""
    if fn is operator.pow and _is(args[1], 1):
        return args[0]
    if fn is operator.mul:
        a, b = args
        if _is(a, 1):
            return b
        if _is(b, 1):
            return a
    if fn in (operator.add, operator.sub) and _is(args[1], 0):
        return args[0]
    if fn is operator.add and _is(args[0], 0):
        return args[1]
    if fn is operator.truediv and _is(args[1], 1):
        return args[0]
    if fn is operator.neg and isinstance(args[0], Value):
        inner = defs.get(args[0])
        if inner is not None and inner.prim.fn is operator.neg:
            return inner.args[0]
    return None


def constant_factor(fn, args, defs):
    """`(c1 * x) * c2` -> (c1 * c2, x): gather constant factors of a product."""
    if fn is not operator.mul:
        return None
    a, b = args
    if isinstance(b, Const) and isinstance(a, Value) and type(b.value) in (int, float):
        inner = defs.get(a)
        if inner is not None and inner.prim.fn is operator.mul and isinstance(
                inner.args[0], Const) and type(inner.args[0].value) in (int, float):
            return inner.args[0].value * b.value, inner.args[1]
    return None
