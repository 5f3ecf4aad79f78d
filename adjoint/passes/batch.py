"""Outer products accumulated in a loop become one matrix product after it.

The reverse sweep of `h = tanh(W @ h + x[t])` adds `np.outer(z_bar, h)` into
`W_bar` on every step: a full matrix written per step. Summing the outer
products of all steps is `U.T @ V` for the stacked vectors, one BLAS call:

    for ...:                                    _u, _v = [], []
        W_bar += np.outer(z_bar, h)     ==>     for ...:
                                                    _u.append(z_bar)
                                                    _v.append(h)
                                                W_bar += np.array(_u).T @ np.array(_v)

Applied when the accumulator is read nowhere else in the loop, and no write changes
the vectors' buffers (a state updated in place, `h[:] = ...`). The vectors kept
are as many as the steps. Where `h` is the very entry the reverse loop walks on
its tape, the tape is stacked once and read as V:

    for h in reversed(_tape):                   _tape = np.array(_tape)
        ...                             ==>     for h in reversed(_tape):
                                                    _u.append(z_bar)
                                                _u = np.array(_u[::-1])
                                                W_bar += _u.T @ _tape

Each list is stacked under its own name, so it is freed before the product.
(tests/test_pass_units.py holds the first example, and a loop that reads its
accumulator, which is left as it is.)
"""
from __future__ import annotations

import operator
from dataclasses import replace

import numpy as np

from adjoint import runtime
from adjoint.analysis.views import written_arrays
from adjoint.rules.registry import prim_of
from adjoint.rules.structure import list_of
from adjoint.ir.core import Block, Call, Const, For, Function, Value, map_blocks, \
    map_operands, uses, walk_ops
from adjoint.rules.tape import iadd


def batch_outer(fn: Function) -> Function:
    while True:  # one accumulator per loop at a time, to a fixed point
        done, fn = fn, _batch_once(fn)
        if fn is done:
            return fn


def _batch_once(fn: Function) -> Function:
    counts = uses(fn.body)
    defs = {r: op for op in walk_ops(fn.body) for r in op.results}
    written = written_arrays(fn)
    renames: dict[Value, Value] = {}

    def block(b: Block) -> Block:
        ops = []
        for op in b.ops:
            op = map_blocks(op, block)
            if isinstance(op, For):
                before, op, after = _rewrite(op, counts, defs, renames, written)
                ops += before + [op] + after
            else:
                ops.append(op)
        return replace(b, ops=tuple(ops))

    body = block(fn.body)
    if not renames:
        return fn

    def sub(o):
        return renames.get(o, o) if isinstance(o, Value) else o

    def rename(b: Block) -> Block:
        return replace(b, ops=tuple(map_operands(map_blocks(op, rename), sub) for op in b.ops),
                       results=tuple(sub(o) for o in b.results))
    return replace(fn, body=rename(body))


def _rewrite(op: For, counts, defs, renames, written):
    body = op.body
    args = body.args[1:]
    inner_defs = {o.result: o for o in body.ops if isinstance(o, Call)}
    inner = uses(Block((), body.ops, ()))
    for k, (a, y) in enumerate(zip(args, body.results)):
        acc = inner_defs.get(y)
        if acc is None or acc.prim.fn is not iadd or acc.args[0] is not a:
            continue
        terms = outer_terms(acc.args[1], inner_defs, inner)
        if terms is None or inner.get(a) != 1 or list(body.results).count(y) != 1 or \
                counts.get(y, 0) != 1:
            continue
        pairs, consumed = terms
        if any(x in written for pair in pairs for x in pair):
            # a vector whose buffer a write changes (`h[:] = ...` restoring the state in
            # place): kept in a list, every entry would be its last value
            continue
        # `v` is the tape entry the reverse loop walks: the stacked tape is V already
        walked = op.reverse and len(pairs) == 1 and pairs[0][1] is body.args[0] and \
            _is_tape(defs.get(op.iter))
        appends = [("_u", [u for u, _ in pairs])] + ([] if walked else
                                                      [("_v", [v for _, v in pairs])])
        lists = [Value(name) for name, _ in appends]
        carried = [Value(name) for name, _ in appends]
        grown, appended = [], []
        for (name, xs), c in zip(appends, carried):
            for x in xs:  # the outer products of one step, a pair each
                n = Value(name)
                appended.append(Call(prim_of(runtime.append), (c, x), n, (), acc.loc))
                c = n
            grown.append(c)
        gone = consumed | {acc}
        new_ops = tuple(o for o in body.ops if o not in gone) + tuple(appended)
        keep = [j for j in range(len(args)) if j != k]
        new_body = Block((body.args[0],) + tuple(args[j] for j in keep) + tuple(carried),
                         new_ops, tuple(body.results[j] for j in keep) + tuple(grown))
        results = [Value(name) for name, _ in appends]
        before = [Call(prim_of(list_of), (), lst, (), op.loc) for lst in lists]
        after = []
        iterated = op.iter
        if walked:
            iterated = Value("_tape")
            before.append(Call(prim_of(np.array), (op.iter,), iterated, (), op.loc))
        new_op = replace(op, iter=iterated, inits=tuple(op.inits[j] for j in keep) + tuple(lists),
                         body=new_body,
                         results=tuple(op.results[j] for j in keep) + tuple(results))
        # stacked under the list's name, so that the list of arrays goes before the product;
        # against a walked tape, _u is put in the tape's order first (a list of pointers),
        # so both factors are contiguous for the matrix product
        sources = list(results)
        if walked:
            sources[0] = Value("_t")
            after.append(Call(prim_of(operator.getitem), (results[0], Const(slice(None, None, -1))),
                              sources[0], (), acc.loc))
        stacked = [Value(r.name) for r in results]
        after += [Call(prim_of(np.array), (r,), st, (), acc.loc) for r, st in zip(sources, stacked)]
        su, prod, total = Value("_t"), Value("_t"), Value("_t")
        sv = iterated if walked else stacked[1]
        after += [Call(prim_of(np.transpose), (stacked[0],), su, (), acc.loc),
                  Call(prim_of(operator.matmul), (su, sv), prod, (), acc.loc),
                  Call(prim_of(iadd), (op.inits[k], prod), total, (), acc.loc)]
        renames[op.results[k]] = total
        return before, new_op, after
    return [], op, []


def outer_terms(v, defs, counts):
    """`v` as a sum of outer products, each used once: ([(u, w), ...], the ops), or None.
    A forward-over-reverse tangent accumulates `np.outer(u_dot, h) + np.outer(u, h_dot)`."""
    op = defs.get(v)
    if op is None or counts.get(v) != 1:
        return None
    if op.prim.fn is np.outer:
        return [tuple(op.args)], {op}
    if op.prim.fn is operator.add:
        parts = [outer_terms(x, defs, counts) for x in op.args]
        if all(p is not None for p in parts):
            return parts[0][0] + parts[1][0], parts[0][1] | parts[1][1] | {op}
    return None


def _is_tape(op) -> bool:
    return isinstance(op, Call) and op.prim.style == "tape_new"
