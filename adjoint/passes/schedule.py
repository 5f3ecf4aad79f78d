"""Scheduling: in the backward sweep, a pure op moves down to just before its first
use, among the ops of its own source line. A rule gives its cotangents in operand
order, so a loop's carried cotangent is often computed before the last read of its
old value, and then needs a second name; moved, it is written in place of the old
one, or into the expression that uses it:

    p_bar_1 = p_bar * x[i]              x_bar[i] = p_bar * p
    x_bar[i] = p_bar * p        ==>     p_bar = p_bar * x[i]
    p_bar = p_bar_1

(`x[i]`, read only by the new `p_bar`, moves down with it into that expression.)
An op that reads an array some write may change stays where it is; so does one
whose line ends before its use (the `# line N` groups stay as they are), and so
does every op of the forward sweep. (tests/test_pass_units.py)
"""
from __future__ import annotations

from dataclasses import replace

from adjoint.analysis.views import written_arrays
from adjoint.ir.core import Block, Call, For, Function, Value, While, map_blocks, uses
from adjoint.passes.privatize import IN_PLACE
from adjoint.rules import registry


def sink(fn: Function) -> Function:
    written = written_arrays(fn)

    def movable(op) -> bool:
        # tapes and markers are impure; a write in place stays where it is too
        if not isinstance(op, Call) or op.loc is None or op.prim.style in IN_PLACE:
            return False
        e = registry.entry(op.prim)
        return e is not None and e.pure and not any(
            isinstance(a, Value) and a in written for a in op.operands)

    def regions(op):
        if isinstance(op, For):
            return replace(op, body=block(op.body, op.body.args[1:]))
        if isinstance(op, While):
            return replace(op, cond=block(op.cond), body=block(op.body, op.body.args))
        return map_blocks(op, block)

    def block(b: Block, carried_args=()) -> Block:
        """`carried_args`: a loop body's carried values, which its results replace."""
        ops = [regions(op) for op in b.ops]
        counts = uses(b)
        carried = dict(zip(b.results, carried_args))  # each yield's old value
        for i in reversed(range(len(ops))):
            op = ops[i]
            if not movable(op):
                continue
            j = i + 1
            while j < len(ops) and _line(ops[j]) == _line(op) and op.result not in _reads(ops[j]):
                j += 1
            passed = set().union(*map(_reads, ops[i + 1:j]))
            # worth it when the use can take it as an expression, or the old value it
            # replaces is read by the ops it moves past
            used_next = j < len(ops) and op.result in _reads(ops[j])
            if j > i + 1 and (used_next and counts.get(op.result) == 1 or
                              j == len(ops) and carried.get(op.result) in passed):
                ops[i:j] = ops[i + 1:j] + [op]
        return replace(b, ops=tuple(ops))

    ops = list(fn.body.ops)
    start = next((i for i, op in enumerate(ops) if isinstance(op, Call)
                  and op.prim.style == "section"), len(ops))
    tail = block(replace(fn.body, ops=tuple(ops[start:])))
    return replace(fn, body=replace(fn.body, ops=tuple(ops[:start]) + tail.ops))


def _line(op):
    return (op.loc.filename, op.loc.line) if op.loc is not None else None


def _reads(op) -> set:
    """The values `op` reads, in its nested blocks too."""
    out = {o for o in op.operands if isinstance(o, Value)}
    for b in op.blocks:
        for inner in b.ops:
            out |= _reads(inner)
        out |= {o for o in b.results if isinstance(o, Value)}
    return out
