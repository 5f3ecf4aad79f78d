"""A reference interpreter for the IR, so lowering is testable as
`interpret(lower(f))(*args) == f(*args)`.

It can also observe every value it computes (`observe=`), which is how the
compiler learns the kind and shape of each value for a given call signature.
"""
from __future__ import annotations

from typing import Any, Callable

from adjoint.ir.core import Block, Call, For, Function, If, Value, While
from adjoint.errors import AdjointError

Observer = Callable[[Value, Any], None]


def interpret(fn: Function, observe: Observer | None = None) -> Callable:
    def run(*args):
        if len(args) != len(fn.params):
            raise TypeError(f"{fn.name}() takes {len(fn.params)} arguments, got {len(args)}")
        env: dict[Value, Any] = {}
        for p, a in zip(fn.params, args):
            _bind(env, p, a, observe)
        results = _run_block(fn.body, env, observe)
        return results[0] if len(results) == 1 else tuple(results)

    return run


def _bind(env, v: Value, x, observe) -> None:
    env[v] = x
    if observe is not None:
        observe(v, x)


def _get(env, o):
    if isinstance(o, Value):
        return env[o]
    return o.value  # Const and Global


def _run_block(block: Block, env, observe, args=()) -> list:
    for v, x in zip(block.args, args):
        _bind(env, v, x, observe)
    for op in block.ops:
        if isinstance(op, Call):
            args_ = [_get(env, a) for a in op.args]
            kwargs = {k: _get(env, v) for k, v in op.kwargs}
            try:
                result = op.prim.fn(*args_, **kwargs)
            except AdjointError as e:  # an op that refuses these values: at f's line
                raise e.located(op.loc)
            _bind(env, op.result, result, observe)
        elif isinstance(op, If):
            branch = op.then if _get(env, op.cond) else op.orelse
            outs = _run_block(branch, env, observe)
            for r, x in zip(op.results, outs):
                _bind(env, r, x, observe)
        elif isinstance(op, For):
            carried = [_get(env, o) for o in op.inits]
            it = _get(env, op.iter)
            for t in (reversed(it) if op.reverse else it):
                carried = _run_block(op.body, env, observe, [t] + carried)
            for r, x in zip(op.results, carried):
                _bind(env, r, x, observe)
        elif isinstance(op, While):
            carried = [_get(env, o) for o in op.inits]
            while _run_block(op.cond, env, observe, carried)[0]:
                carried = _run_block(op.body, env, observe, carried)
            for r, x in zip(op.results, carried):
                _bind(env, r, x, observe)
        else:  # pragma: no cover
            raise TypeError(op)
    return [_get(env, o) for o in block.results]

