"""Every array a generated function hands to its caller is the caller's own.

The code before this step may return one cotangent twice, or return an array the
caller passed in: the gradient of `np.sum((x + y) ** 2)` with respect to x and y is
one array, and the pullback of `x + y` returns its `out_bar` as both cotangents.
NumPy arrays are mutable, so gradient clipping (`gx *= 0.5`) would then change `gy`,
or the caller's cotangent. A returned array seen a second time, or a parameter or a
view of one, is returned as a copy:

    x_bar = out_bar * 2 * _t1              x_bar = out_bar * 2 * _t1
    y_bar = x_bar                  ==>     y_bar = np.copy(x_bar)
    return x_bar, y_bar                    return x_bar, y_bar

This runs after the passes (common-subexpression elimination would merge the copies
again), on the functions a user calls: grad, value_and_grad, a pullback, a jvp.
Floats and other immutable values are left alone.
"""
from __future__ import annotations

from dataclasses import replace

from adjoint import runtime
from adjoint.ir.core import Block, Call, Function, Value
from adjoint.passes.dce import dce
from adjoint.rules.registry import MAY_VIEW, prim_of
from adjoint.rules.structure import dict_of, list_of, tuple_of


def _through(v, defs, passes) -> Value:
    """The value `v` is made from through ops for which `passes(prim)` holds."""
    while v in defs and defs[v].args and isinstance(defs[v].args[0], Value) and \
            passes(defs[v].prim):
        v = defs[v].args[0]
    return v


def fresh_results(fn: Function, facts) -> Function:
    params, seen = set(fn.params), set()
    ops = list(fn.body.ops)
    defs = {op.result: op for op in ops if isinstance(op, Call)}
    rebuilt: dict[Value, Value] = {}

    def own(v):
        if not isinstance(v, Value):
            return v
        op = defs.get(v)
        if op is not None and op.prim.fn in (tuple_of, list_of, dict_of):
            return container(v, op)
        same = _through(v, defs, lambda p: p.fn is runtime.alias)  # `y_bar = x_bar`
        base = _through(v, defs, lambda p: p.fn is runtime.alias or p.name in MAY_VIEW)
        if same not in seen and base not in params:
            seen.add(same)
            return v
        kind = facts.kind(same) if facts is not None else None
        if kind is not None and (kind.scalar or kind.type in ("float", "int", "bool")):
            return v
        copy = Value(v.name)
        # printed np.copy(x_bar) for an observed array (passes/specialize.py), x.copy()
        # for a dask array, private(x_bar) where the kind is not known
        ops.append(Call(prim_of(runtime.private), (same,), copy))
        if facts is not None:
            facts.same_kind(copy, same)
        return copy

    def container(v, op):
        if v in rebuilt:
            return rebuilt[v]
        skip = 1 if op.prim.fn is dict_of else 0  # dict_of's first operand: the keys
        args = op.args[:skip] + tuple(own(a) for a in op.args[skip:])
        if args == op.args:
            rebuilt[v] = v
            return v
        new = Value(v.name)
        ops.append(replace(op, args=args, result=new))
        if facts is not None:
            facts.same_kind(new, v)
        rebuilt[v] = new
        return new

    results = tuple(own(r) for r in fn.body.results)
    if results == fn.body.results:
        return fn
    # the alias or container a copy replaced goes (`y_bar = x_bar` before the copy)
    return dce(replace(fn, body=Block(fn.body.args, tuple(ops), results)))
