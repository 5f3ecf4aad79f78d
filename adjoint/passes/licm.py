"""Loop-invariant code motion: arithmetic in a loop body whose operands all come
from outside the loop is done once, before it. The reverse sweep of a reduction
loop multiplies by the same cotangent on every step (`s_bar * 2`), which a
person would have written outside the loop:

    for i in _range:                          _t = 200.0 * s_bar
        x_bar[i] += 200.0 * s_bar * d   ==>   for i in _range:
                                                  x_bar[i] += _t * d

A constant scale or a sign inside a product is moved onto the invariant factor
first, so that it is hoisted with it; scaling by a power of two and negating are
exact, so the result is the same to the bit:

    (_t3 * d) * 2   ==>   (_t3 * 2) * d       -(_t1 * y)   ==>   (-_t1) * y

The product `_t3 * d` that the scaled one replaced stays in the loop, unread, for
`dce` (which runs after this pass) to remove.

A value that a loop carries but yields unchanged is not carried at all: the
body reads its initial value. Only the backward sweep is changed: the forward
sweep stays as the user wrote it. Only `+ - * @ unary-` and NumPy's ufuncs are
moved: they cannot raise where the loop, run zero times, would not have. Operands that are arrays
written in place stay in the loop; so do checkpointed regions, whose bodies the
reverse sweep re-runs. (tests/test_pass_units.py holds these examples.)
"""
from __future__ import annotations

import math
import operator
from dataclasses import replace

import numpy as np

from adjoint.analysis.views import written_arrays
from adjoint.rules.registry import elementwise_ufunc, prim_of
from adjoint.ir.core import Block, Call, Const, For, Function, Value, While, map_blocks, \
    map_operands, uses

_MOVABLE = (operator.add, operator.sub, operator.mul, operator.neg, operator.matmul)


def _movable(op) -> bool:
    # NumPy's ufuncs warn instead of raising; a matrix product of operands that the
    # forward sweep already multiplied has matching shapes
    return op.prim.fn in _MOVABLE or (elementwise_ufunc(op.prim.fn) and not op.kwargs)


def hoist_invariants(fn: Function) -> Function:
    written = written_arrays(fn)
    defs: dict[Value, Call] = {}  # each value's defining op, as rewritten so far
    renames: dict[Value, Value] = {}  # results of loops that no longer carry them

    def sub(o):
        return renames.get(o, o) if isinstance(o, Value) else o

    def block(b: Block, backward: bool = True) -> Block:
        ops = []
        for op in b.ops:
            backward = backward or (isinstance(op, Call) and op.prim.style == "section")
            if not backward:  # the forward sweep stays as the user wrote it
                ops.append(op)
                continue
            op = map_blocks(map_operands(op, sub) if renames else op, block)
            if isinstance(op, (For, While)) and getattr(op, "checkpoint", None) is None:
                op = _uncarry(op, renames)
                hoisted, op = _hoist(op, written, defs)
                ops += hoisted
            ops.append(op)
            if isinstance(op, Call):
                defs[op.result] = op
        return replace(b, ops=tuple(ops), results=tuple(sub(o) for o in b.results))

    return replace(fn, body=block(fn.body, backward=False))


def _uncarry(op, renames):
    """Drop the carried values whose body yields them unchanged."""
    offset = 1 if isinstance(op, For) else 0  # a For's first block argument is its target
    args = op.body.args[offset:]
    still = [k for k, (a, y) in enumerate(zip(args, op.body.results)) if y is not a]
    if len(still) == len(args):
        return op
    gone = {args[k]: op.inits[k] for k in range(len(args)) if k not in still}
    if isinstance(op, While):
        gone.update({op.cond.args[k]: op.inits[k] for k in range(len(args)) if k not in still})
    renames.update({op.results[k]: op.inits[k] for k in range(len(args)) if k not in still})

    def sub(o):
        return gone.get(o, o) if isinstance(o, Value) else o

    def shrink(b: Block, lead: int) -> Block:
        return replace(b, args=b.args[:lead] + tuple(b.args[lead + k] for k in still),
                       ops=tuple(map_operands(o, sub) for o in b.ops),
                       results=tuple(sub(r) for r in b.results) if b is not op.body else
                       tuple(sub(b.results[k]) for k in still))
    new = replace(op, inits=tuple(op.inits[k] for k in still), body=shrink(op.body, offset),
                  results=tuple(op.results[k] for k in still))
    if isinstance(op, While):
        new = replace(new, cond=shrink(op.cond, 0))
    return new


def _hoist(op, written, defs):
    body = op.body
    inside = set(body.args)
    if isinstance(op, While):
        inside |= set(op.cond.args)
    once = {v for v, n in uses(body).items() if n == 1}
    defs = {**defs, **{o.result: o for o in body.ops if isinstance(o, Call)}}

    def invariant(a) -> bool:
        return not (isinstance(a, Value) and (a in inside or a in written))

    hoisted, kept = [], []
    for o in body.ops:
        moved = _scale_onto_invariant(o, defs, once, invariant)
        if moved is not None:
            hoisted.append(moved[0])
            o = moved[1]
        if isinstance(o, Call) and _movable(o) and not any(
                isinstance(a, Value) and (a in inside or a in written) for a in o.args):
            hoisted.append(o)
        else:
            kept.append(o)
            inside.update(o.results)
    if not hoisted:
        return [], op
    return hoisted, replace(op, body=replace(body, ops=tuple(kept)))


def _exact_scale(o) -> bool:
    """A constant that multiplies exactly: plus or minus a power of two."""
    return isinstance(o, Const) and type(o.value) in (int, float) and o.value != 0 and \
        math.isfinite(o.value) and abs(math.frexp(o.value)[0]) == 0.5


def _scale_onto_invariant(o, defs, once, invariant):
    """(hoistable op, replacement of `o`) for `(a * b) * c` or `-(a * b)` with `a`
    invariant, `c` an exact scale and `a * b` used only here; otherwise None."""
    if not isinstance(o, Call) or o.kwargs:
        return None
    if o.prim.fn is operator.mul:
        scale = next((c for c in o.args if _exact_scale(c)), None)
        if scale is None:
            return None
        k, product = scale.value, o.args[1] if scale is o.args[0] else o.args[0]
    elif o.prim.fn is operator.neg:
        k, product = -1, o.args[0]
    else:
        return None
    inner = defs.get(product) if product in once else None
    if inner is None or inner.prim.fn is not operator.mul or inner.kwargs:
        return None
    a, b = inner.args if invariant(inner.args[0]) else inner.args[::-1]
    if not invariant(a) or invariant(b) or (k == -1 and not _numeric(a, defs)):
        return None
    folded = _folded(a, defs, k)
    s = Value(a.name if isinstance(a, Value) else "_t")
    factor = Call(prim_of(operator.mul), folded or (a, Const(k)), s, (), o.loc)
    return factor, Call(prim_of(operator.mul), (s, b), o.result, (), o.loc)


def _folded(a, defs, k):
    """`(c * x) * k` as the operands (c * k, x), when `a` is `c * x` or `x * c`."""
    d = defs.get(a)
    if d is None or d.prim.fn is not operator.mul or d.kwargs:
        return None
    for c, x in (d.args, d.args[::-1]):
        if isinstance(c, Const) and type(c.value) in (int, float):
            return Const(c.value * k), x
    return None


def _numeric(a, defs) -> bool:
    """`a` can be negated: it is a number, or arithmetic with a number (never a bool
    array, which NumPy refuses to negate)."""
    if isinstance(a, Const):
        return type(a.value) in (int, float)
    d = defs.get(a)
    return d is not None and (d.prim.fn is operator.neg or d.prim.fn in (
        operator.add, operator.sub, operator.mul) and any(
        isinstance(c, Const) and type(c.value) in (int, float) for c in d.args))
