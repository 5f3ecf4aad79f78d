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

import numpy as np

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
    """`(c1 * x) * c2` or `(x * c1) * c2` -> (c1 * c2, x): gather constant factors."""
    if fn is not operator.mul:
        return None
    a, b = args
    if isinstance(b, Const) and isinstance(a, Value) and type(b.value) in (int, float):
        inner = defs.get(a)
        if inner is None or inner.prim.fn is not operator.mul:
            return None
        for c, x in (inner.args, inner.args[::-1]):
            if isinstance(c, Const) and type(c.value) in (int, float):
                return c.value * b.value, x
    return None


# ------------------------------------------------------------------ broadcasts
# A reduction's cotangent is broadcast back to its input's shape
# (`np.broadcast_to(np.expand_dims(g, 0), (K, K))`); NumPy broadcasts by itself
# in the elementwise op that usually consumes it, and a materialised broadcast
# costs a call and, after a product, a full array. These rewrites drop it where
# the result's shape stays the same.

ELEMENTWISE = (operator.add, operator.sub, operator.mul, operator.truediv,
               operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge)


def _call(defs, o, fn):
    """The op defining `o` if it is a call of `fn`."""
    op = defs.get(o) if isinstance(o, Value) else None
    return op if op is not None and op.prim.fn is fn else None


def _broadcast(defs, o):
    """(a, shape) if `o` is `np.broadcast_to(a, shape)` with a constant shape."""
    op = _call(defs, o, np.broadcast_to)
    if op is None or len(op.args) != 2 or not isinstance(op.args[1], Const):
        return None
    s = op.args[1].value
    return op.args[0], (s,) if isinstance(s, int) else tuple(s)


def _leading_axes_dropped(defs, a, shape):
    """`a` without an `np.expand_dims` that only adds leading axes, which
    broadcasting adds anyway: `expand_dims(g, 0)` against (K, K) is `g`."""
    op = _call(defs, a, np.expand_dims)
    if op is None or len(op.args) != 2 or not isinstance(op.args[1], Const):
        return a
    inner = shape(op.args[0])
    axes = op.args[1].value
    axes = axes if isinstance(axes, tuple) else (axes,)
    if inner is None or not all(isinstance(ax, int) for ax in axes):
        return a
    ndim = len(inner) + len(axes)
    return op.args[0] if sorted(ax % ndim for ax in axes) == list(range(len(axes))) else a


def _repeated(defs, a, shape):
    """The 0-d value that `a` only repeats, when `a` is broadcasts and expand_dims of it
    (`np.expand_dims(np.broadcast_to(g, (n,)), 1)`, the cotangent of a mean of row
    sums): against an operand of at least a's shape, the value itself does the same."""
    inner = a
    while True:
        op = _call(defs, inner, np.expand_dims) or _call(defs, inner, np.broadcast_to)
        if op is None:
            break
        inner = op.args[0]
    return inner if inner is not a and shape(inner) == () else None


def unbroadcast_operand(fn, args, defs, shape):
    """Rewrite `fn(*args)` for an elementwise binary `fn` with an operand
    `np.broadcast_to(a, S)`:

        broadcast_to(a, S) * b   ==>   a * b                  (b has shape S)
        broadcast_to(a, S) * c   ==>   broadcast_to(a * c, S) (c a scalar)

(in the first, `a` loses the expand_dims and broadcasts that only repeat a 0-d value)

    Returns ("args", new_args) or ("outside", new_args, S), or None.
    """
    if fn not in ELEMENTWISE or len(args) != 2:
        return None
    for i in (0, 1):
        b = _broadcast(defs, args[i])
        if b is None or not b[1]:
            continue  # a 0-d broadcast is an array where `a` may be a float: keep it
        a, target = b
        other = shape(args[1 - i])
        new = list(args)
        if other == target:
            scalar = _repeated(defs, a, shape)
            new[i] = scalar if scalar is not None else _leading_axes_dropped(defs, a, shape)
            return "args", tuple(new)
        if other == ():
            new[i] = a
            return "outside", tuple(new), target
    return None


def keepdims_dropped(args, defs, shape):
    """`np.reshape(np.sum(x, axis=k, keepdims=True), S)` where S is the shape
    without the kept axes: (x, k), to be written `np.sum(x, axis=k)`."""
    op = _call(defs, args[0], np.sum)
    if op is None or len(args) != 2 or not isinstance(args[1], Const) or len(op.args) != 1:
        return None
    kw = dict(op.kwargs)
    axis, keep = kw.get("axis"), kw.get("keepdims")
    src = shape(op.args[0])
    if not (isinstance(axis, Const) and isinstance(keep, Const) and keep.value is True) or \
            src is None or set(kw) != {"axis", "keepdims"}:
        return None
    axes = axis.value if isinstance(axis.value, tuple) else (axis.value,)
    if not all(isinstance(ax, int) for ax in axes):
        return None
    kept = {ax % len(src) for ax in axes}
    target = args[1].value
    target = (target,) if isinstance(target, int) else tuple(target)
    reduced = tuple(n for i, n in enumerate(src) if i not in kept)
    return (op.args[0], axis.value) if reduced == target else None


def contraction(args, kwargs, defs, shape):
    """`np.sum(v * M, axis=-1)` for a matrix M and a vector v is the matrix-vector
    product `M @ v`: (M, v), or None. (The adjoint of `v[None, :] + M` summed back.)"""
    kw = dict(kwargs)
    op = _call(defs, args[0], operator.mul)
    axis = kw.get("axis")
    if op is None or len(args) != 1 or set(kw) - {"axis"} or not isinstance(axis, Const):
        return None
    a, b = op.args
    sa, sb = shape(a), shape(b)
    if sa is None or sb is None:
        return None
    for m, v, sm, sv in ((a, b, sa, sb), (b, a, sb, sa)):
        if len(sm) == 2 and len(sv) == 1 and sm[1] == sv[0] and axis.value in (1, -1):
            return m, v
    return None
