"""Element reads: `y[i]` that the observed call saw return a number becomes an
`element` op. It prints the same, but code generation then knows that it is a
copy, not a view of `y`, so a later write into `y` can be made in place:

    _t2 = y[i - 1]                         _t2 = y[i - 1]
    y_1 = np.array(y, copy=True)   ==>     y[i] = np.sin(x[i] * _t2)
    y_1[i] = np.sin(x[i] * _t2)
    _tape.append(_t2)                      _tape.append(_t2)

Runs last, on code specialised to observed kinds (without them nothing changes).
"""
from __future__ import annotations

import operator
from dataclasses import replace

from adjoint import runtime
from adjoint.frontend.lower import _prim
from adjoint.ir.core import Block, Call, Function, map_blocks


def mark_elements(fn: Function, facts) -> Function:
    element = _prim(runtime.element)

    def one(op):
        if isinstance(op, Call) and op.prim.fn is operator.getitem:
            base, out = facts.kind(op.args[0]), facts.kind(op.result)
            if base is not None and base.type == "ndarray" and out is not None and out.scalar:
                return replace(op, prim=element)
        return map_blocks(op, block)

    def block(b: Block) -> Block:
        return replace(b, ops=tuple(one(op) for op in b.ops))

    return replace(fn, body=block(fn.body))
