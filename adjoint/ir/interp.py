"""A reference interpreter for the IR, so lowering is testable as
`interpret(lower(f))(*args) == f(*args)`.

It can also observe every value it computes (`observe=`), which is how the
compiler learns the kind and shape of each value for a given call signature.
That run is the first call's cost for a long loop, so each block is turned once
into a list of Python closures, one an op, that the loop runs trip after trip
(walking the IR records each trip cost three times as much).
"""
from __future__ import annotations

from typing import Any, Callable

from adjoint.ir.core import Block, Call, For, Function, If, Value, While
from adjoint.errors import AdjointError

Observer = Callable[[Value, Any], None]
Env = dict  # Value -> what it holds


def interpret(fn: Function, observe: Observer | None = None) -> Callable:
    body = _block(fn.body, observe)

    def run(*args):
        if len(args) != len(fn.params):
            raise TypeError(f"{fn.name}() takes {len(fn.params)} arguments, got {len(args)}")
        env: Env = {}
        _bind_all(env, fn.params, args, observe)
        results = body(env, ())
        return results[0] if len(results) == 1 else tuple(results)

    return run


def _bind_all(env: Env, names, xs, observe) -> None:
    for v, x in zip(names, xs):
        env[v] = x
        if observe is not None:
            observe(v, x)


def _getter(o) -> Callable[[Env], Any]:
    if isinstance(o, Value):
        return lambda env: env[o]
    value = o.value  # Const and Global
    return lambda env: value


def _block(block: Block, observe) -> Callable[[Env, Any], list]:
    """A function of (env, the block's arguments) that runs `block` and returns its results."""
    steps = [_step(op, observe) for op in block.ops]
    results = [_getter(o) for o in block.results]
    params = block.args

    def run(env: Env, args) -> list:
        _bind_all(env, params, args, observe)
        for step in steps:
            step(env)
        return [get(env) for get in results]

    return run


def _step(op, observe) -> Callable[[Env], None]:
    if isinstance(op, Call):
        return _call(op, observe)
    if isinstance(op, If):
        cond, then, orelse = _getter(op.cond), _block(op.then, observe), _block(op.orelse, observe)

        def step(env):
            outs = then(env, ()) if cond(env) else orelse(env, ())
            _bind_all(env, op.results, outs, observe)
    elif isinstance(op, For):
        inits, it, body = [_getter(o) for o in op.inits], _getter(op.iter), _block(op.body, observe)

        def step(env):
            carried = [get(env) for get in inits]
            trips = it(env)
            for t in (reversed(trips) if op.reverse else trips):
                carried = body(env, [t] + carried)
            _bind_all(env, op.results, carried, observe)
    elif isinstance(op, While):
        inits, cond, body = [_getter(o) for o in op.inits], _block(op.cond, observe), \
            _block(op.body, observe)

        def step(env):
            carried = [get(env) for get in inits]
            while cond(env, carried)[0]:
                carried = body(env, carried)
            _bind_all(env, op.results, carried, observe)
    else:  # pragma: no cover
        raise TypeError(op)
    return step


def _call(op: Call, observe) -> Callable[[Env], None]:
    fn, result, loc = op.prim.fn, op.result, op.loc
    args = [_getter(a) for a in op.args]
    kwargs = [(k, _getter(v)) for k, v in op.kwargs]

    if kwargs or len(args) > 2:
        def compute(env):
            return fn(*[get(env) for get in args], **{k: get(env) for k, get in kwargs})
    elif len(args) == 2:  # most ops: spelt out, the list and dict above cost a third
        a, b = args
        compute = lambda env: fn(a(env), b(env))  # noqa: E731
    elif args:
        a, = args
        compute = lambda env: fn(a(env))  # noqa: E731
    else:
        compute = lambda env: fn()  # noqa: E731

    def step(env):
        try:
            x = compute(env)
        except AdjointError as e:  # an op that refuses these values: at f's line
            raise e.located(loc)
        except Exception as e:  # where it failed, for a `try` whose handler f would run
            if getattr(e, "adjoint_loc", None) is None:
                e.adjoint_loc = loc
                if loc is not None and hasattr(e, "add_note"):  # (Python 3.11+)
                    e.add_note(f"adjoint: raised running {loc.filename}:{loc.line}: "
                               f"{(loc.text or '').strip()}")
            raise
        env[result] = x
        if observe is not None:
            observe(result, x)

    return step
