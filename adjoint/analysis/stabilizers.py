"""Shifts that cancel: the max in a numerically stable log-sum-exp.

    m = np.max(x, axis=a)
    lse = m + np.log(np.sum(np.exp(x - m), axis=a))        # log-sum-exp
    logp = (x - m) - np.log(np.sum(np.exp(x - m), axis=a))  # log-softmax

Both are exactly independent of m (any shift gives the same value), so their
derivative through m is zero: the reverse sweep would compute the max's mask and
subtract terms that cancel to rounding. This analysis finds such shifts and
reports them as constants for the transforms. It only accepts the patterns when
every use of every intermediate is part of the pattern (`e / s`, the softmax, is
allowed too, being shift-invariant as well); anything else keeps the full
derivative.
"""
from __future__ import annotations

import operator

import numpy as np

from adjoint.ir.core import Call, Function, Value, walk_ops

_MAX = {"np.max", "np.amax"}


def invariant_shifts(fn: Function) -> set[Value]:
    calls = [op for op in walk_ops(fn.body) if isinstance(op, Call)]
    users: dict[Value, list] = {}
    for op in walk_ops(fn.body):
        for o in op.operands:
            if isinstance(o, Value):  # read by an if, a loop's inits: escapes the pattern
                users.setdefault(o, []).append(op if isinstance(op, Call) else None)
        for b in op.blocks:
            for o in b.results:
                if isinstance(o, Value):
                    users.setdefault(o, []).append(None)  # escapes into a region's result
    for o in fn.body.results:
        if isinstance(o, Value):
            users.setdefault(o, []).append(None)
    out = set()
    for op in calls:
        if op.prim.name in _MAX and _is_shift(op, users):
            out.add(op.result)
    return out


def _axis(op: Call):
    kw = dict(op.kwargs)
    axis = kw.get("axis", op.args[1] if len(op.args) > 1 else None)
    return getattr(axis, "value", axis) if axis is not None else None


def _keepdims(op: Call) -> bool:
    k = dict(op.kwargs).get("keepdims")
    return bool(getattr(k, "value", False))


def _broadcasts_back(op: Call) -> bool:
    """Whether a reduction's result lines up with its operand along the reduced axes
    when broadcast against it: kept dims, all axes, or leading axes only (np.max(x,
    axis=1) of a square batch would be subtracted from x's columns, not its rows)."""
    axis = _axis(op)
    if axis is None or _keepdims(op):
        return True
    axes = axis if isinstance(axis, tuple) else (axis,)
    return all(isinstance(a, int) for a in axes) and sorted(axes) == list(range(len(axes)))


def _is_shift(mx: Call, users) -> bool:
    x, m, axis = mx.args[0], mx.result, _axis(mx)
    if not _broadcasts_back(mx):
        return False
    uses = users.get(m, [])
    subs = [u for u in uses if _call(u, operator.sub) and u.args == (x, m)]
    adds = [u for u in uses if _call(u, operator.add) and m in u.args]
    if len(subs) != 1 or len(uses) != len(subs) + len(adds) or len(adds) > 1:
        return False
    d = subs[0].result
    exp = _only(users, d, lambda u: u.prim.fn is np.exp) if adds else None
    if adds:  # m + log(sum(exp(x - m)))
        if exp is None:
            return False
        l = _lse_tail(exp.result, axis, users, _keepdims(mx))  # m + l: one shape
        return l is not None and users.get(l) == adds and l in adds[0].args
    # (x - m) - log(sum(exp(x - m))): d feeds the exp and the final subtraction
    d_uses = users.get(d, [])
    exps = [u for u in d_uses if _call(u, np.exp)]
    finals = [u for u in d_uses if _call(u, operator.sub) and u.args[0] is d]
    if len(exps) != 1 or len(d_uses) != 1 + len(finals) or len(finals) != 1:
        return False
    l = _lse_tail(exps[0].result, axis, users, None)
    return l is not None and users.get(l) == finals and finals[0].args[1] is l


def _lse_tail(e: Value, axis, users, keepdims):
    """log(sum(e, axis)) where e's and the sum's other uses are only `e / sum`, and the
    sum broadcasts back along its axes (`keepdims`: it must keep dims as the max does,
    None: either way)."""
    sums = [u for u in users.get(e, []) if _call(u, np.sum) and _axis(u) == axis]
    if len(sums) != 1 or not _broadcasts_back(sums[0]) or \
            keepdims is not None and _keepdims(sums[0]) != keepdims:
        return None
    s = sums[0].result
    ratio = {u for u in users.get(e, []) + users.get(s, [])
             if _call(u, operator.truediv) and u.args == (e, s)}
    if any(u is not sums[0] and u not in ratio for u in users.get(e, [])):
        return None
    logs = [u for u in users.get(s, []) if _call(u, np.log)]
    if len(logs) != 1 or any(u is not logs[0] and u not in ratio for u in users.get(s, [])):
        return None
    return logs[0].result


def _call(op, fn) -> bool:
    return isinstance(op, Call) and op.prim.fn is fn


def _only(users, v, test):
    got = users.get(v, [])
    return got[0] if len(got) == 1 and isinstance(got[0], Call) and test(got[0]) else None
