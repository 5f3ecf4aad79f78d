"""Tapes made lean: dead slots dropped, and popping replaced by iteration.

Dead slots: drop the values a loop pushes that its reverse never pops into use
(dead-code elimination cannot see through a tape, since pushes are effects).

    _tape.append((y, _old, _t1))          _tape.append(_t1)
    ...                             ==>   ...
    _saved = _tape.pop()                  _t1 = _tape.pop()
    _t1 = _saved[2]

Runs to a fixed point with `dce`, which then removes what fed the dropped slots.

Iteration: a reverse loop that never reads its own index walks its tape backwards
instead of popping it, as a person would write it:

    for _ in reversed(_range):
        y = _tape.pop()           ==>     for y in reversed(_tape):

A tape used anywhere else (saved on an outer tape, say) is left as it is, by
both rewrites. (tests/test_pass_units.py)
"""
from __future__ import annotations

import operator
from dataclasses import replace

from adjoint.rules.registry import prim_of
from adjoint.rules.registry import primitive

from adjoint.ir.core import Block, Call, Const, For, Function, Value, map_blocks, uses, walk_ops


def tapes(fn: Function) -> Function:
    ops = list(walk_ops(fn.body))
    counts = uses(fn.body)
    rewrites: dict = {}  # op -> replacement op, or None to delete
    for new in ops:
        if not (isinstance(new, Call) and new.prim.style == "tape_new"):
            continue
        tape = new.result
        pushes = [o for o in ops if isinstance(o, Call) and o.prim.style == "tape_push"
                  and o.args[0] is tape]
        pops = [o for o in ops if isinstance(o, Call) and o.prim.style == "tape_pop"
                and o.args[0] is tape]
        if len(pushes) != 1 or len(pops) != 1 or counts.get(tape, 0) != 2:
            continue  # a tape saved on an outer tape: leave it
        push, pop = pushes[0], pops[0]
        values = push.args[1:]
        if len(values) == 1:
            if not counts.get(pop.result):
                rewrites[push] = rewrites[pop] = rewrites[new] = None
            continue
        readers = [o for o in ops if isinstance(o, Call) and o.prim.fn is operator.getitem
                   and o.args[0] is pop.result]
        if len(readers) != counts.get(pop.result, 0) or not all(
                isinstance(r.args[1], Const) for r in readers):
            continue
        used = sorted({r.args[1].value for r in readers if counts.get(r.result)})
        if len(used) == len(values):
            continue
        if not used:
            rewrites[push] = rewrites[pop] = rewrites[new] = None
            for r in readers:
                rewrites[r] = None
            continue
        rewrites[push] = replace(push, args=(tape,) + tuple(values[i] for i in used))
        if len(used) == 1:
            (reader,) = [r for r in readers if r.args[1].value == used[0] and
                         counts.get(r.result)][:1]
            rewrites[pop] = replace(pop, result=reader.result)
            for r in readers:
                rewrites[r] = None
        else:
            position = {old: k for k, old in enumerate(used)}
            for r in readers:
                rewrites[r] = (replace(r, args=(r.args[0], Const(position[r.args[1].value])))
                               if r.args[1].value in position else None)
    if not rewrites:
        return fn
    return replace(fn, body=_apply(fn.body, rewrites))


def _apply(block: Block, rewrites: dict) -> Block:
    out = []
    for op in block.ops:
        if op in rewrites:
            op = rewrites[op]
            if op is None:
                continue
        out.append(map_blocks(op, lambda b: _apply(b, rewrites)))
    return replace(block, ops=tuple(out))



def iterate_tapes(fn: Function) -> Function:
    """Reverse loops walk their tape instead of popping it (see above); one that reads
    its index walks `zip(reversed(_range), reversed(_tape))`."""
    counts = uses(fn.body)

    def block(b: Block) -> Block:
        ops = []
        for op in b.ops:
            op = map_blocks(op, block)
            first = op.body.ops[0] if isinstance(op, For) and op.body.ops else None
            if (first is not None and op.reverse and isinstance(first, Call)
                    and first.prim.style == "tape_pop"
                    and counts.get(first.args[0]) == 2):
                tape, index = first.args[0], op.body.args[0]
                if not counts.get(index):
                    body = replace(op.body, args=(first.result,) + op.body.args[1:],
                                   ops=op.body.ops[1:])
                    op = replace(op, iter=tape, body=body)
                else:
                    pairs, step = Value("_steps"), Value("_step")
                    ops.append(Call(prim_of(zip_reversed), (op.iter, tape), pairs, (), None))
                    head = (Call(prim_of(operator.getitem), (step, Const(0)), index, (), None),
                            replace(first, prim=prim_of(operator.getitem),
                                    args=(step, Const(1))))
                    body = replace(op.body, args=(step,) + op.body.args[1:],
                                   ops=head + op.body.ops[1:])
                    op = replace(op, iter=pairs, body=body, reverse=False)
            ops.append(op)
        return replace(b, ops=tuple(ops))

    return replace(fn, body=block(fn.body))


def zip_reversed(steps, tape):
    """The loop's steps and its tape's entries, both from the last."""
    return zip(reversed(steps), reversed(tape))


primitive(zip_reversed, "zip_reversed", "format", "zip(reversed({0}), reversed({1}))",
          nondiff=True)
