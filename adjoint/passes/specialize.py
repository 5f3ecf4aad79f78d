"""Rewrites for the kinds the observed call saw; without them nothing changes.
Runs last, on the code that becomes the gradient module.

Element reads: `y[i]` that returned a number becomes an `element` op. It prints
the same, but code generation then knows that it is a copy, not a view of `y`,
so a later write into `y` can be made in place:

    _t2 = y[i - 1]                         _t2 = y[i - 1]
    y_1 = np.array(y, copy=True)   ==>     y[i] = np.sin(x[i] * _t2)
    y_1[i] = np.sin(x[i] * _t2)
    _tape.append(_t2)                      _tape.append(_t2)

Squares of numbers in a loop: `x ** 2` of a float is a call of `pow`, twice the
cost of `x * x`, and a scalar loop does little else. (An array's `x ** 2` is
already NumPy's `square`.)

    for i in _range:                       for i in _range:
        _t6 = x[i + 1] - x[i] ** 2   ==>       _t4 = x[i]
                                               _t6 = x[i + 1] - _t4 * _t4

A `private(x)` copy of an observed array is spelled `np.copy(x)`. A value whose
kind was not observed keeps its op (`y[i]` may then be a view, `private(x)` a
list's copy). Then passes/buffers.py's reuse of buffers, which needs the same kinds.
(tests/test_pass_units.py)
"""
from __future__ import annotations

import operator
from dataclasses import replace

import numpy as np

from adjoint import runtime
from adjoint.rules.registry import prim_of
from adjoint.ir.core import Block, Call, Const, For, Function, Value, While, map_blocks
from adjoint.passes import pipeline
from adjoint.passes.buffers import reuse_buffers


def specialize(fn: Function, facts) -> Function:
    element, mul, copy = prim_of(runtime.element), prim_of(operator.mul), prim_of(np.copy)

    def number(o) -> bool:
        k = facts.kind(o) if isinstance(o, Value) else None
        return k is not None and k.type in ("float", "int")

    def one(op, in_loop: bool):
        if isinstance(op, Call) and op.prim.fn is operator.getitem:
            base, out = facts.kind(op.args[0]), facts.kind(op.result)
            if base is not None and base.type == "ndarray" and out is not None and out.scalar:
                return replace(op, prim=element)
        if isinstance(op, Call) and op.prim.fn is runtime.private:
            k = facts.kind(op.args[0])
            if k is not None and k.type == "ndarray":
                return replace(op, prim=copy)  # the same copy, as NumPy spells it
        if in_loop and isinstance(op, Call) and op.prim.fn is operator.pow and not op.kwargs \
                and number(op.args[0]) and isinstance(op.args[1], Const) and \
                type(op.args[1].value) is int and op.args[1].value == 2:
            return replace(op, prim=mul, args=(op.args[0], op.args[0]))
        return map_blocks(op, lambda b: block(b, in_loop or isinstance(op, (For, While))))

    def block(b: Block, in_loop: bool = False) -> Block:
        return replace(b, ops=tuple(one(op, in_loop) for op in b.ops))

    # the kinds also decide which buffers the gradient may reuse; a pass run of its own,
    # so that bisection can turn it off alone (the driver runs only this one)
    return pipeline.run_pass(reuse_buffers, replace(fn, body=block(fn.body)), facts)
