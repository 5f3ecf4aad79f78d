"""Outer products accumulated in a loop become one matrix product after it.

The reverse sweep of `h = tanh(W @ h + x[t])` adds `np.outer(z_bar, h)` into
`W_bar` on every step: a full matrix written per step. Summing the outer
products of all steps is `U.T @ V` for the stacked vectors, one BLAS call:

    for ...:                                    _u, _v = [], []
        W_bar += np.outer(z_bar, h)     ==>     for ...:
                                                    _u.append(z_bar)
                                                    _v.append(h)
                                                W_bar += np.array(_u).T @ np.array(_v)

Applied when the accumulator is read nowhere else in the loop. The vectors kept
are as many as the steps (the tape already holds one per step).
"""
from __future__ import annotations

import operator
from dataclasses import replace

import numpy as np

from adjoint import runtime
from adjoint.frontend.lower import _prim, list_of
from adjoint.ir.core import Block, Call, For, Function, Value, map_blocks, uses
from adjoint.rules.tape import iadd


def batch_outer(fn: Function) -> Function:
    counts = uses(fn.body)
    renames: dict[Value, Value] = {}

    def block(b: Block) -> Block:
        ops = []
        for op in b.ops:
            op = map_blocks(op, block)
            if isinstance(op, For):
                before, op, after = _rewrite(op, counts, renames)
                ops += before + [op] + after
            else:
                ops.append(op)
        return replace(b, ops=tuple(ops))

    body = block(fn.body)
    if not renames:
        return fn
    from adjoint.ir.core import map_operands

    def sub(o):
        return renames.get(o, o) if isinstance(o, Value) else o

    def rename(b: Block) -> Block:
        return replace(b, ops=tuple(map_operands(map_blocks(op, rename), sub) for op in b.ops),
                       results=tuple(sub(o) for o in b.results))
    return replace(fn, body=rename(body))


def _rewrite(op: For, counts, renames):
    body = op.body
    args = body.args[1:]
    defs = {o.result: o for o in body.ops if isinstance(o, Call)}
    inner = uses(Block((), body.ops, ()))
    for k, (a, y) in enumerate(zip(args, body.results)):
        acc = defs.get(y)
        if acc is None or acc.prim.fn is not iadd or acc.args[0] is not a:
            continue
        outer = defs.get(acc.args[1])
        if outer is None or outer.prim.fn is not np.outer or inner.get(outer.result) != 1 \
                or inner.get(a) != 1 or list(body.results).count(y) != 1 or counts.get(y, 0) != 1:
            continue
        u, v = outer.args
        lu, lv = Value("_u"), Value("_v")
        au, av, nu, nv = Value("_u"), Value("_v"), Value("_u"), Value("_v")
        new_ops = tuple(o for o in body.ops if o is not acc and o is not outer) + (
            Call(_prim(runtime.append), (au, u), nu, (), acc.loc),
            Call(_prim(runtime.append), (av, v), nv, (), acc.loc))
        keep = [j for j in range(len(args)) if j != k]
        new_body = Block((body.args[0],) + tuple(args[j] for j in keep) + (au, av), new_ops,
                         tuple(body.results[j] for j in keep) + (nu, nv))
        ru, rv = Value("_u"), Value("_v")
        new_op = replace(op, inits=tuple(op.inits[j] for j in keep) + (lu, lv), body=new_body,
                         results=tuple(op.results[j] for j in keep) + (ru, rv))
        before = [Call(_prim(list_of), (), lu, (), None), Call(_prim(list_of), (), lv, (), None)]
        su, sv, st, prod, total = (Value("_t") for _ in range(5))
        after = [Call(_prim(np.array), (ru,), su, (), acc.loc),
                 Call(_prim(np.array), (rv,), sv, (), acc.loc),
                 Call(_prim(np.transpose), (su,), st, (), acc.loc),
                 Call(_prim(operator.matmul), (st, sv), prod, (), acc.loc),
                 Call(_prim(iadd), (op.inits[k], prod), total, (), acc.loc)]
        renames[op.results[k]] = total
        # one accumulator per loop is rewritten at a time; the pass runs to a fixed point
        return before, new_op, after
    return [], op, []



