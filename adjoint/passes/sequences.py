"""`for v in xs` over a value whose type lowering cannot see (a parameter, a loop's
carried value, an element of a container) walks `sequence(xs)` by position. Once the
kinds are observed, a dict's loop walks its keys and any other loop xs itself (a value
seen as a dict and as something else, or never seen, keeps sequence(xs)):

    %s = sequence(%p)        ==>   %s = keys(%p)        (p a dict)
    %s = sequence(%xs)       ==>   (uses of %s read %xs)

Without a call to observe (generic code), the generated code calls sequence(xs).
"""
from __future__ import annotations

from dataclasses import replace

from adjoint.analysis.liveness import ties
from adjoint.ir.core import Block, Call, For, Function, If, Value, map_blocks, map_operands
from adjoint.rules.registry import prim_of
from adjoint.rules.structure import keys, sequence


def resolve_sequences(fn: Function, facts=None) -> Function:
    if not getattr(facts, "kinds", None):  # generic code: sequence(xs) decides when run
        return fn
    subst: dict = {}
    sources: dict = {}  # a loop's or an if's value -> the values it may be
    for _, _, a, b in ties(fn.body):
        sources.setdefault(a, []).append(b)

    def types(v, seen=frozenset()) -> set:
        """The types v was seen with, or else those of the values it is carried from
        (a value the optimised code made anew, which no run observed)."""
        k = facts.kind(v)
        seen_here = facts.types(v) if hasattr(facts, "types") else {k.type} if k else set()
        if seen_here or v in seen:
            return seen_here
        return set().union(*[types(b, seen | {v}) for b in sources.get(v, ())
                             if isinstance(b, Value)])

    def read(o):
        return subst.get(o, o)

    def own(op):  # a region op's own operands; its blocks are mapped by `block`
        if isinstance(op, If):
            return replace(op, cond=read(op.cond))
        if isinstance(op, For):
            return replace(op, iter=read(op.iter), inits=tuple(map(read, op.inits)))
        return replace(op, inits=tuple(map(read, op.inits)))

    def block(b: Block) -> Block:
        ops = []
        for op in b.ops:
            op = map_operands(op, read) if isinstance(op, Call) else own(map_blocks(op, block))
            if isinstance(op, Call) and op.prim.fn is sequence:
                seen = types(op.args[0])
                if seen == {"dict"}:
                    op = replace(op, prim=prim_of(keys))
                elif seen and "dict" not in seen:
                    subst[op.result] = op.args[0]
                    continue
                # (not seen, or a dict on one call path only: sequence(xs) decides when run)
            ops.append(op)
        return replace(b, ops=tuple(ops), results=tuple(map(read, b.results)))

    return replace(fn, body=block(fn.body))
