"""`+` and `*` on lists and tuples build sequences; they are not arithmetic.

Lowering cannot tell `a + b` of numbers from `a + b` of lists: both are an `add`.
The observed kinds can, so before differentiating, an `add` of two lists (or two
tuples) becomes a `concat`, whose adjoint splits the cotangent in two, and a `mul`
of a sequence and an int becomes a `repeat`, whose adjoint sums the copies:

    %l_1 = add(%l, %_t)       ==>     %l_1 = concat(%l, %_t)
"""
from __future__ import annotations

import operator
from dataclasses import replace

from adjoint import runtime
from adjoint.errors import UnsupportedError
from adjoint.frontend.lower import _prim
from adjoint.ir.core import Block, Call, Function, map_blocks


def sequence_ops(fn: Function, facts) -> Function:
    concat, repeat = _prim(runtime.concat), _prim(runtime.repeat)

    def kind(o, op):
        k = facts.kind(o)
        if k is not None or not hasattr(facts, "types"):
            return k.type if k is not None else None
        types = facts.types(o)  # a tuple that grows in a loop has no one shape
        if len(types) > 1 and types & {"list", "tuple"}:
            raise UnsupportedError(
                f"an operand of `{op.prim.name}` was a {' and then a '.join(sorted(types))}: "
                "adding sequences concatenates them, adding numbers sums them", op.loc,
                "keep each variable one type")
        return types.pop() if types else None

    def one(op):
        if isinstance(op, Call) and op.prim.fn in (operator.add, operator.mul) and \
                not op.kwargs and len(op.args) == 2:
            a, b = (kind(x, op) for x in op.args)
            if op.prim.fn is operator.add and a == b and a in ("list", "tuple"):
                return replace(op, prim=concat)
            if op.prim.fn is operator.mul and a in ("list", "tuple") and b == "int":
                return replace(op, prim=repeat)
            if op.prim.fn is operator.mul and b in ("list", "tuple") and a == "int":
                return replace(op, prim=repeat, args=op.args[::-1])
        return map_blocks(op, block)

    def block(b: Block) -> Block:
        return replace(b, ops=tuple(one(op) for op in b.ops))

    return replace(fn, body=block(fn.body))
