"""`x_bar[i] += c` becomes `x_bar[i] = c` when it is the only write of a loop over a
range into a fresh zero array, at the loop's own index: each element is written
once, so the read-add-write is a plain store.

    x_bar = np.zeros_like(x)               x_bar = np.zeros_like(x)
    for i in reversed(_range):     ==>     for i in reversed(_range):
        x_bar[i] += p * p_bar                  x_bar[i] = p * p_bar

A write at another index (`x_bar[0] += ...`, the same element on every step)
stays an addition. (tests/test_pass_units.py)
"""
from __future__ import annotations

import operator
from dataclasses import replace

import numpy as np

from adjoint.rules.registry import prim_of
from adjoint import runtime
from adjoint.ir.core import Block, Call, Const, For, Function, map_blocks, uses, walk_ops
from adjoint.rules.tape import iadd_at


def assign_once(fn: Function) -> Function:
    counts = uses(fn.body)
    defs = {op.result: op for op in walk_ops(fn.body) if isinstance(op, Call)}

    def is_range(v) -> bool:
        """A range of distinct indices that are never negative: x_bar[-3] and x_bar[0]
        are one element, so range(-3, 3) may write one element twice."""
        op = defs.get(v)
        if op is None:
            return False
        if op.prim.fn is operator.getitem:
            return is_range(op.args[0])
        return op.prim.fn is range and _non_negative(op.args)

    def block(b: Block) -> Block:
        ops = []
        for op in b.ops:
            op = map_blocks(op, block)
            if isinstance(op, For):
                op = _rewrite(op, counts, defs, is_range)
            ops.append(op)
        return replace(b, ops=tuple(ops))

    return replace(fn, body=block(fn.body))


def _non_negative(args) -> bool:
    """range(args) yields no negative index: range(n), range(a, b) and range(a, b, s)
    with a constant a >= 0 and s > 0, or s < 0 stopping at a constant b >= -1."""
    consts = [a.value if isinstance(a, Const) else None for a in args]
    if len(args) == 1:
        return True
    start, stop, step = (consts + [1])[:3]
    if step is None or start is None:
        return False
    return start >= 0 if step > 0 else stop is not None and stop >= -1


def _rewrite(op: For, counts, defs, is_range) -> For:
    body, target = op.body, op.body.args[0]
    source = defs.get(op.iter)
    if is_range(op.iter):
        index = target
    elif source is not None and source.prim.name == "zip_reversed" and is_range(source.args[0]):
        index = next((o.result for o in body.ops if isinstance(o, Call) and
                      o.prim.fn is operator.getitem and o.args[0] is target and
                      isinstance(o.args[1], Const) and o.args[1].value == 0), None)
    else:
        return op
    inner = uses(Block((), body.ops, ()))
    new_ops = list(body.ops)
    for k, (arg, y, init) in enumerate(zip(body.args[1:], body.results, op.inits)):
        write = defs.get(y)
        zero = defs.get(init)
        if (write is None or write.prim.fn is not iadd_at or write.args[0] is not arg
                or write.args[1] is not index or index is None or inner.get(arg) != 1
                or zero is None or zero.prim.fn is not np.zeros_like or counts.get(init) != 1):
            continue
        at = new_ops.index(write)
        new_ops[at] = replace(write, prim=prim_of(runtime.setitem))
    return replace(op, body=replace(body, ops=tuple(new_ops)))
