"""Writes that a view would see: the one place where SSA and NumPy part ways.

In NumPy, `row = A[0]` is a view: a later `A[0, 1] = 5` changes `row` too. The IR
gives every write a new value, so `row` would keep the old numbers, and the
gradient would be that of a different program. This check finds, after the
kinds are observed, every value that shares a written array's buffer (a view,
or the array before the write) and is still read after the write, and rejects
the function at that write with a located error. Element reads (`A[i, j]`) are
numbers, not views, and pass.
"""
from __future__ import annotations

from adjoint.codegen.naming import Liveness, ties
from adjoint.errors import UnsupportedError
from adjoint.ir.core import Call, Function, walk_ops

# ops whose ndarray result may share memory with their first argument
_VIEWS = {"getitem", "np.reshape", "np.transpose", "np.ravel", "np.squeeze",
          "np.expand_dims", "np.broadcast_to", "np.asarray", "np.swapaxes", "np.moveaxis",
          "np.atleast_1d", "np.atleast_2d", "np.real", "pos"}
_WRITES = ("setitem", "iadd_at", "add_at", "append")
_IMMUTABLE = ("float", "int", "bool", "complex", "tuple", "none", "range")


def check_views(fn: Function, facts) -> None:
    # `a += b` updates an array or a list in place; a number or a tuple is rebound
    inplace = set(fn.inplace)

    def mutable(o) -> bool:
        k = facts.kind(o)  # unknown (a value no run reached): it may be an array
        return k is None or k.type not in _IMMUTABLE

    updates = {op for op in walk_ops(fn.body) if isinstance(op, Call) and
               op.result in inplace and mutable(op.args[0])}
    writes = [op for op in walk_ops(fn.body) if isinstance(op, Call) and (
              op.prim.style in _WRITES or op in updates)]
    if not writes:
        return
    parent: dict = {}

    def find(v):
        while parent.get(v, v) is not v:
            v = parent[v]
        return v

    def union(a, b):
        ra, rb = find(a), find(b)
        if ra is not rb:
            parent[rb] = ra

    for op in walk_ops(fn.body):
        if isinstance(op, Call):
            k = facts.kind(op.result)
            view = op.prim.name in _VIEWS and k is not None and k.type == "ndarray"
            if (view or op.prim.style in _WRITES or op in writes) and op.args and \
                    hasattr(op.args[0], "id"):
                union(op.args[0], op.result)
    for _, _, a, b in ties(fn.body):  # a loop's carried array is one buffer throughout
        if hasattr(b, "id"):
            union(a, b)
    live = Liveness(fn, {}, set())
    members: dict = {}
    for v in set(parent) | set(parent.values()):
        members.setdefault(find(v), []).append(v)
    for w in writes:
        at = live.at[id(w)]
        storage = w.args[0]
        if w in updates and any(start < at < end for start, end in live.span(storage)):
            # `z = x; z += y; ... x ...`: the old value is read again under another name
            k, name = facts.kind(storage), w.result.name
            raise UnsupportedError(
                f"this update changes {'an ' + k.type if k else 'a value'} in place that another "
                f"name still reads afterwards; the gradient would not see the change", w.loc,
                f"write `{name} = {name} + ...` (or -, *, ...) for a new value, or take a copy "
                f"where the second name is made (`{name} = x.copy()`)")
        for m in members.get(find(storage), ()):
            if m is storage or m is w.result:
                continue
            if any(start < at < end for start, end in live.span(m)):
                what = f"`{m.name}`" if not m.name.startswith("_") else "a view of it"
                raise UnsupportedError(
                    f"this write changes {what}, which shares the array's memory and is "
                    f"read afterwards; the gradient would not see the change", w.loc,
                    "take a copy where the alias is made (row = A[0].copy(), u = M.copy()), "
                    "write `u = u + x` for a new array, or read the array again after "
                    "writing it")





def written_arrays(fn: Function) -> set:
    """Every value whose buffer some write in `fn` may change (the written arrays, their
    versions and whatever may view them): reading one again later may differ."""
    parent: dict = {}

    def find(v):
        while parent.get(v, v) is not v:
            v = parent[v]
        return v

    writes = []
    for op in walk_ops(fn.body):
        if isinstance(op, Call) and op.args and hasattr(op.args[0], "id") and (
                op.prim.name in _VIEWS or op.prim.style in _WRITES):
            ra, rb = find(op.args[0]), find(op.result)
            if ra is not rb:
                parent[rb] = ra
            if op.prim.style in _WRITES:
                writes.append(op.args[0])
    for _, _, a, b in ties(fn.body):
        if hasattr(b, "id"):
            ra, rb = find(a), find(b)
            if ra is not rb:
                parent[rb] = ra
    dirty_roots = {find(w) for w in writes}
    return {v for v in set(parent) | set(parent.values()) if find(v) in dirty_roots}
