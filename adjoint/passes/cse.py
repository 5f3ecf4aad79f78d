"""Common-subexpression elimination: a pure call that repeats an earlier one, with
the same operands, reuses its result. Values defined in an enclosing block are
visible inside nested ones, so `x[i]` read twice in a loop body is read once.

    %a = getitem(%x, %i)
    %b = getitem(%x, %i)     ==>   %a = getitem(%x, %i)
    %c = mul(%a, %b)               %c = mul(%a, %a)

Two contributions to one cotangent that turn out equal (`x * x` gives `g * x`
twice, the second `mul(%x, %g)`: `+` and `*` commute) are added as a doubling,
which is how a person writes it and exact; the product, read only there, becomes
a temporary so that the code is one expression:

    %t = mul(%g, %x)
    %t_1 = mul(%x, %g)              %_t = mul(%g, %x)
    %x_bar = iadd(%t, %t_1)  ==>    %x_bar = mul(%_t, 2)

Never merged: two copies (`np.copy`, `private`: each is a buffer of its own),
two allocations when either is written in place, and impure ops (tapes, markers,
calls of unknown functions). tests/test_pass_units.py holds these examples.
"""
from __future__ import annotations

import operator
from dataclasses import replace

from adjoint.rules.registry import prim_of
from adjoint.ir.core import Block, Call, Const, Function, If, Value, map_blocks, map_operands, \
    uses, walk_ops
from adjoint.rules import registry

_COMMUTATIVE = {operator.add, operator.mul}
_NEVER = ("setitem", "append", "iadd_at", "add_at", "iadd", "tape_new", "tape_push", "tape_pop",
          "section", "alias")
_COPIES = ("np.copy", "private")  # made to be a buffer of its own: two are never one


def _key(o):
    if isinstance(o, Const):
        v = o.value
        try:
            hash(v)
        except TypeError:
            return ("c", type(v).__name__, repr(v))
        # repr tells 0.0 from -0.0, which compare equal but are not one constant
        return ("c", type(v).__name__, v, repr(v))
    return ("v", id(o))


def cse(fn: Function) -> Function:
    from adjoint.analysis.views import written_arrays
    subst: dict[Value, Value] = {}
    # two equal `np.zeros(n)` are two buffers when either is written in place, or
    # added into in place (a cotangent's accumulator, `x_bar += c`, in a nested loop too)
    fresh = {op.result for op in walk_ops(fn.body) if isinstance(op, Call)
             and op.prim.name in _ALLOCATIONS}
    body = _block(fn.body, [{}], subst,
                  fresh & written_arrays(fn, registry.WRITES + ("iadd",)))
    return replace(fn, body=_doublings(body, uses(body)))


def _doublings(block: Block, counts) -> Block:
    """`iadd(t, t)` -> `mul(t, 2)`; a `t` read only there becomes a temporary, so that
    the code reads `r_bar = out_bar * r * 2`."""
    ops = list(block.ops)
    at = {op.result: k for k, op in enumerate(ops) if isinstance(op, Call)}
    for k, op in enumerate(ops):
        if isinstance(op, Call) and op.prim.style == "iadd" and op.args[0] is op.args[1]:
            t = op.args[0]
            d = at.get(t)
            if d is not None and counts.get(t) == 2:
                t = Value("_t")
                ops[d] = replace(ops[d], result=t)
            ops[k] = replace(op, prim=prim_of(operator.mul), args=(t, Const(2)))
        else:
            ops[k] = map_blocks(op, lambda b: _doublings(b, counts))
    return replace(block, ops=tuple(ops))


_ALLOCATIONS = {"np.zeros", "np.ones", "np.empty", "np.full", "np.zeros_like", "np.ones_like",
                "np.empty_like", "np.full_like", "np.array", "np.copy", "np.eye", "np.identity",
                "np.arange", "np.linspace", "zeros_like", "list"}


def _block(block: Block, scopes: list[dict], subst: dict, written: set) -> Block:
    table: dict = {}
    scopes = scopes + [table]
    ops = []

    def sub(o):
        return subst.get(o, o) if isinstance(o, Value) else o

    for op in block.ops:
        if isinstance(op, Call) and any(o in subst for o in op.operands
                                        if isinstance(o, Value)):
            op = map_operands(op, sub)
        if isinstance(op, Call):
            e = registry.entry(op.prim)
            if e is not None and e.pure and op.prim.style not in _NEVER and \
                    op.prim.name not in _COPIES and op.result not in written:
                args = [_key(a) for a in op.args]
                if op.prim.fn in _COMMUTATIVE:
                    args.sort(key=repr)
                key = (op.prim.name, id(op.prim.fn), tuple(args),
                       tuple((k, _key(v)) for k, v in op.kwargs))
                for scope in reversed(scopes):
                    if key in scope:
                        subst[op.result] = scope[key]
                        break
                else:
                    table[key] = op.result
                    ops.append(op)
                continue
            ops.append(op)
            continue
        # region op: substitute its own operands, then its blocks with a nested scope
        op = replace(op, **_region_operands(op, sub))
        ops.append(map_blocks(op, lambda b: _block(b, scopes, subst, written)))
    return replace(block, ops=tuple(ops), results=tuple(sub(o) for o in block.results))


def _region_operands(op, sub) -> dict:
    if isinstance(op, If):
        return {"cond": sub(op.cond)}
    out = {"inits": tuple(sub(o) for o in op.inits)}
    if hasattr(op, "iter"):
        out["iter"] = sub(op.iter)
    return out
