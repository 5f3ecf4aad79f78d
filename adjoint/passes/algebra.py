"""Constant arithmetic left by composing transforms, folded on observed kinds.

A derivative of a derivative seeds its tangents with 1.0 and multiplies by the
constants of the first transform's rules, so the second-order code reads
`1.0 * 3 * _t3`. With the operands known to be floats (or float arrays), those
fold:

    1.0 * 3 * x    ==>   3.0 * x        -1.0 * x   ==>   -x
    (2 * x) * 3    ==>   6 * x          x * 1.0    ==>   x

Multiplying by 1 or -1 is exact; gathering two constants rounds once where the
code rounded twice, a last-bit change. Only values whose kind the observed call
fixed are touched: `n * 1.0` is how an int becomes a float, and stays; so does
`1.0 / 0`, which raises when run, as in Python. (The examples are tests in
tests/test_pass_units.py.)
"""
from __future__ import annotations

import operator
from dataclasses import replace

from adjoint.rules.registry import prim_of
from adjoint.ir.core import Block, Call, Const, Function, Value, map_blocks, map_operands
from adjoint.passes.fold import constant_factor, simplify

_ARITH = (operator.add, operator.sub, operator.mul, operator.truediv)


def fold_constants(fn: Function, facts) -> Function:
    subst: dict = {}
    defs: dict = {}

    def floating(o) -> bool:
        k = facts.kind(o) if isinstance(o, Value) else None
        return isinstance(o, Const) or (k is not None and (
            k.type == "float" or (k.type == "ndarray" and k.dtype == "f")))

    def sub(o):
        return subst.get(o, o) if isinstance(o, Value) else o

    def one(op):
        op = map_operands(op, sub)
        if op.blocks:
            return map_blocks(op, block)
        if not (isinstance(op, Call) and op.prim.fn in _ARITH + (operator.neg,) and
                not op.kwargs and all(floating(a) for a in op.args)):
            return op
        if all(isinstance(a, Const) and type(a.value) in (int, float) for a in op.args):
            try:
                subst[op.result] = Const(op.prim.fn(*(a.value for a in op.args)))
                return None
            except ArithmeticError:  # 1.0 / 0: left for the run to raise, as Python would
                return op
        simpler = simplify(op.prim.fn, op.args, defs)
        if simpler is not None:
            subst[op.result] = simpler
            return None
        factor = constant_factor(op.prim.fn, op.args, defs)
        if factor is not None:
            c, x = factor
            op = replace(op, args=(Const(c), x))
        if op.prim.fn is operator.mul and isinstance(op.args[0], Const) and op.args[0].value == -1:
            op = replace(op, prim=prim_of(operator.neg), args=(op.args[1],))
        defs[op.result] = op
        return op

    def block(b: Block) -> Block:
        ops = [o for o in (one(op) for op in b.ops) if o is not None]
        return replace(b, ops=tuple(ops), results=tuple(sub(r) for r in b.results))

    return replace(fn, body=block(fn.body))
