"""Common-subexpression elimination: a pure call that repeats an earlier one, with
the same operands, reuses its result. Values defined in an enclosing block are
visible inside nested ones, so `x[i]` read twice in a loop body is read once.

    %a = getitem(%x, %i)
    %b = getitem(%x, %i)     ==>   %a = getitem(%x, %i)
    %c = mul(%a, %b)               %c = mul(%a, %a)
"""
from __future__ import annotations

import operator
from dataclasses import replace

from adjoint.ir.core import Block, Call, Const, Function, If, Value, map_blocks, map_operands, walk_ops
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
        return ("c", type(v).__name__, v)
    return ("v", id(o))


def cse(fn: Function) -> Function:
    from adjoint.analysis.views import written_arrays
    subst: dict[Value, Value] = {}
    # two equal `np.zeros(n)` are two buffers when either is written in place
    fresh = {op.result for op in walk_ops(fn.body) if isinstance(op, Call)
             and op.prim.name in _ALLOCATIONS}
    body = _block(fn.body, [{}], subst, fresh & written_arrays(fn))
    return replace(fn, body=body)


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
        op = map_operands(op, sub) if not op.blocks else op
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
