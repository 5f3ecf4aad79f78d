"""A loop that writes into an array someone else still reads gets its own copy.

    y = np.tanh(x)                         y = np.tanh(x)
    for i in ...:                          y_1 = private(y)
        y[i] += 1.0               ==>      for i in ...:
    ... y is read again ...                    y_1[i] += 1.0

Without the copy, each in-place write would have to copy the array first (the
old value is still needed), once per iteration; with it, once per loop. An array
that only the loop reads is written as it is. (tests/test_pass_units.py)
"""
from __future__ import annotations

from dataclasses import replace

from adjoint import runtime
from adjoint.rules.registry import prim_of
from adjoint.ir.core import Block, Call, For, Function, Value, While, map_blocks, uses

IN_PLACE = ("setitem", "iadd_at", "add_at", "append", "iadd")  # styles writing into operand 0


def privatize(fn: Function) -> Function:
    counts = uses(fn.body)

    def block(b: Block) -> Block:
        ops = []
        for op in b.ops:
            op = map_blocks(op, block)
            if isinstance(op, (For, While)):
                args = op.body.args[1:] if isinstance(op, For) else op.body.args
                defs = _defs(op.body)
                inits = list(op.inits)
                for k, (a, y, init) in enumerate(zip(args, op.body.results, op.inits)):
                    if isinstance(init, Value) and counts.get(init, 0) > 1 and \
                            _writes_into(a, y, defs):
                        copy = Value(init.name)
                        ops.append(Call(prim_of(runtime.private), (init,), copy, (), op.loc))
                        inits[k] = copy
                op = replace(op, inits=tuple(inits))
            ops.append(op)
        return replace(b, ops=tuple(ops))

    return replace(fn, body=block(fn.body))


def _defs(b: Block) -> dict:
    """What makes each value of `b`: a call, or (a nested loop, the index of its carry)."""
    out = {o.result: o for o in b.ops if isinstance(o, Call)}
    out.update((r, (o, k)) for o in b.ops if isinstance(o, (For, While))
               for k, r in enumerate(o.results))
    return out


def _writes_into(arg, y, defs) -> bool:
    """Whether the body's yield is `arg` written into in place (a chain of writes, which
    may pass through a nested loop that writes into its carry: a reverse sweep's inner
    loop adding into `x_bar`)."""
    seen = False
    while y is not arg:
        op = defs.get(y)
        if isinstance(op, tuple):  # a nested loop's carry: written in it, from what it starts at
            loop, k = op
            inner = loop.body.args[1:] if isinstance(loop, For) else loop.body.args
            if not _writes_into(inner[k], loop.body.results[k], _defs(loop.body)):
                return False
            y, seen = loop.inits[k], True
            continue
        if op is None or op.prim.style not in IN_PLACE:
            return False
        y, seen = op.args[0], True
    return seen
