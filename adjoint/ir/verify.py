"""The IR verifier: every Value defined once, before use, in a scope that sees it.

Run after every pass in tests; a transform bug shows up here, not as a wrong number.
"""
from __future__ import annotations

from adjoint.ir.core import Block, Call, For, Function, If, Value, While


class VerifyError(AssertionError):
    pass


def verify(fn: Function) -> Function:
    defined: set[Value] = set()
    for p in fn.params:
        _define(p, defined)
    _verify_block(fn.body, [set(fn.params)], defined)
    return fn


def _define(v: Value, defined: set[Value]) -> None:
    if not isinstance(v, Value):
        raise VerifyError(f"{v!r} is not a Value")
    if v in defined:
        raise VerifyError(f"{v!r} (id {v.id}) is defined twice")
    defined.add(v)


def _check_use(o, scopes: list[set[Value]], where: str) -> None:
    if isinstance(o, Value) and not any(o in s for s in scopes):
        raise VerifyError(f"{o!r} (id {o.id}) is used in {where} before its definition")


def _verify_block(block: Block, scopes: list[set[Value]], defined: set[Value],
                  n_results: int | None = None) -> None:
    scope: set[Value] = set()
    for a in block.args:
        _define(a, defined)
        scope.add(a)
    scopes = scopes + [scope]
    for op in block.ops:
        for o in op.operands:
            _check_use(o, scopes, type(op).__name__)
        if isinstance(op, If):
            _verify_block(op.then, scopes, defined, len(op.results))
            _verify_block(op.orelse, scopes, defined, len(op.results))
        elif isinstance(op, For):
            if len(op.body.args) != 1 + len(op.inits):
                raise VerifyError("For body takes the target and one arg per carried value")
            _verify_block(op.body, scopes, defined, len(op.inits))
            if len(op.results) != len(op.inits):
                raise VerifyError("For has one result per carried value")
        elif isinstance(op, While):
            if not (len(op.cond.args) == len(op.body.args) == len(op.inits) == len(op.results)):
                raise VerifyError("While cond/body args, inits and results must agree")
            _verify_block(op.cond, scopes, defined, 1)
            _verify_block(op.body, scopes, defined, len(op.inits))
        elif not isinstance(op, Call):
            raise VerifyError(f"unknown op {op!r}")
        for r in op.results:
            _define(r, defined)
            scope.add(r)
    for o in block.results:
        _check_use(o, scopes, "a block's results")
    if n_results is not None and len(block.results) != n_results:
        raise VerifyError(f"block yields {len(block.results)} values, expected {n_results}")
