"""Rematerialisation: a negated parameter that the backward sweep reads is negated
again there, instead of being kept alive across the whole sweep. `-y` costs one
pass over `y`; keeping it holds a whole array (and `y` is alive anyway).

    %n = neg(%y)                        %n = neg(%y)
    %a = mul(%n, %z)                    %a = mul(%n, %z)
    section("backward")        ==>      section("backward")
    %b = mul(%g, %n)                    %n_1 = neg(%y)
                                        %b = mul(%g, %n_1)

The forward `-y` then has a single use and the emitter writes it inside that
expression (`_t2 = -y * z`), so no name holds it. A parameter that is written in
place is not negated again (the two negations could differ), and a function with
no backward sweep (no section marker) is left alone. (tests/test_pass_units.py)
"""
from __future__ import annotations

import operator
from dataclasses import replace

from adjoint.analysis.views import written_arrays
from adjoint.ir.core import Block, Call, Function, Value, map_operands, uses


def rematerialize(fn: Function) -> Function:
    ops = list(fn.body.ops)
    start = next((i for i, op in enumerate(ops) if isinstance(op, Call)
                  and op.prim.style == "section"), None)
    if start is None:
        return fn
    negated = {op.result: op for op in ops[:start] if isinstance(op, Call)
               and op.prim.fn is operator.neg and op.args[0] in fn.params}
    if not negated:  # most functions: then neither the writes nor the reads are needed
        return fn
    written = written_arrays(fn)
    negated = {v: op for v, op in negated.items() if op.args[0] not in written}
    first: dict[Value, int] = {}  # where the backward sweep first reads each
    for i in range(start + 1, len(ops)):
        for v in uses(Block((), (ops[i],), ())):
            if v in negated:
                first.setdefault(v, i)
    if not first:
        return fn
    fresh = {v: Value(v.name) for v in first}
    out = list(ops[:start + 1])
    for i in range(start + 1, len(ops)):
        out += [replace(negated[v], result=fresh[v]) for v in first if first[v] == i]
        out.append(map_operands(ops[i], lambda o: fresh.get(o, o)))
    return replace(fn, body=replace(fn.body, ops=tuple(out)))
