"""`+` and `*` on lists and tuples build sequences; they are not arithmetic.

Lowering cannot tell `a + b` of numbers from `a + b` of lists: both are an `add`.
The observed kinds can, so before differentiating, an `add` of two lists (or two
tuples) becomes a `concat`, whose adjoint splits the cotangent in two, and a `mul`
of a sequence and an int becomes a `repeat`, whose adjoint sums the copies:

    %l_1 = add(%l, %_t)       ==>     %l_1 = concat(%l, %_t)

Without an observed call (the generic code `adjoint emit` writes without --args), a
value built as a list or tuple display, or carried or extended from one, is known to
be a sequence by construction. Python raises for a sequence added to anything else,
so one operand known to be a sequence is enough.
"""
from __future__ import annotations

import operator
from dataclasses import replace

from adjoint import runtime
from adjoint.errors import UnsupportedError
from adjoint.rules.registry import prim_of
from adjoint.ir.core import Block, Call, Const, For, Function, While, map_blocks, walk_ops
from adjoint.rules.structure import list_of, tuple_of


_SEQUENCES = {tuple_of: "tuple", list_of: "list"}


def sequence_ops(fn: Function, facts) -> Function:
    concat, repeat = prim_of(runtime.concat), prim_of(runtime.repeat)

    made = {op.result: op for op in walk_ops(fn.body) if isinstance(op, Call)}
    carried = {}  # a loop's block argument -> its initial value
    for op in walk_ops(fn.body):
        if isinstance(op, (For, While)):
            args = op.body.args[1:] if isinstance(op, For) else op.body.args
            carried.update(zip(args, op.inits))

    def static(o, seen=()):
        """The sequence type `o` has by construction, when no call was observed (generic
        code): `(x, y) + (z,)` is a tuple, `L = [0, 0]; L[0] = x` a list."""
        if isinstance(o, Const):
            return type(o.value).__name__ if isinstance(o.value, (list, tuple)) else None
        if o in seen:
            return None
        if o in carried:
            return static(carried[o], seen + (o,))
        op = made.get(o)
        if op is None:
            return None
        if op.prim.fn in _SEQUENCES:
            return _SEQUENCES[op.prim.fn]
        if op.prim.fn in (operator.add, operator.mul, runtime.setitem, runtime.append):
            return next((t for t in (static(a, seen + (o,)) for a in op.args) if t), None)
        return None

    def kind(o, op):
        k = facts.kind(o)
        if k is None and not getattr(facts, "kinds", None):
            return static(o)
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
            if op.prim.fn is operator.add and (a or b) in ("list", "tuple") and \
                    {a, b} <= {a or b, None}:  # (Python raises for a tuple + a list)
                return replace(op, prim=concat)
            if op.prim.fn is operator.mul and a in ("list", "tuple") and b == "int":
                return replace(op, prim=repeat)
            if op.prim.fn is operator.mul and b in ("list", "tuple") and a == "int":
                return replace(op, prim=repeat, args=op.args[::-1])
        return map_blocks(op, block)

    def block(b: Block) -> Block:
        return replace(b, ops=tuple(one(op) for op in b.ops))

    return replace(fn, body=block(fn.body))
