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

from adjoint.analysis.liveness import Liveness, ties
from adjoint.errors import UnsupportedError
from adjoint.ir.core import Call, Function, walk_ops

# ops whose ndarray result may share memory with their first argument
_VIEWS = {"getitem", "np.reshape", "np.transpose", "np.ravel", "np.squeeze",
          "np.expand_dims", "np.broadcast_to", "np.asarray", "np.swapaxes", "np.moveaxis",
          "np.atleast_1d", "np.atleast_2d", "np.real", "pos", "field"}
_WRITES = ("setitem", "iadd_at", "add_at", "append")
_ARTICLE = {None: "a value of unknown type", "ndarray": "an array", "int": "an int",
            "other": "an object"}
_IMMUTABLE = ("float", "int", "bool", "complex", "tuple", "none", "range")


def check_views(fn: Function, facts) -> None:
    # `a += b` updates an array or a list in place; a number or a tuple is rebound
    inplace = set(fn.inplace)
    # a value no run reached (a loop that ran no trip) has the type of the values the loop
    # carries it with, where they agree; else it is unknown, and may be an array
    types = _carried_types(fn, facts) if inplace else {}

    def mutable(o) -> bool:
        t = types.get(o) if o in types else _kind_type(facts, o)
        return t is None or t not in _IMMUTABLE

    updates = {op for op in walk_ops(fn.body) if isinstance(op, Call) and
               op.result in inplace and mutable(op.args[0])}
    pops = [op for op in walk_ops(fn.body) if isinstance(op, Call) and op.result in inplace
            and op.prim.name == "getitem"]  # lowering's `xs.pop()`
    if pops:
        for op in pops:
            t = types.get(op.args[0])
            if t != "list":
                raise UnsupportedError(
                    f"`.pop()` of {_ARTICLE.get(t, 'a ' + str(t))}: only a "
                    f"list's pop is supported", op.loc, "pop from a list (xs = list(...))")
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

    held = []  # (element, container): a write into the element changes the container
    for op in walk_ops(fn.body):
        if isinstance(op, Call):
            k = facts.kind(op.result)
            # unknown (no call observed, or a value no run reached): it may be an array
            view = op.prim.name in _VIEWS and (k is None or k.type == "ndarray")
            if (view or op.prim.style in _WRITES or op in writes) and op.args and \
                    hasattr(op.args[0], "id"):
                union(op.args[0], op.result)
            held += [(e, c) for e, c in _holds(op, facts) if mutable(e)]
    for _, _, a, b in ties(fn.body):  # a loop's carried array is one buffer throughout
        if hasattr(b, "id"):
            union(a, b)
    holders: dict = {}
    for e, c in held:
        holders.setdefault(find(e), []).append(c)
    live = Liveness(fn, {}, set())
    members: dict = {}
    for v in set(parent) | set(parent.values()) | {c for _, c in held}:
        members.setdefault(find(v), []).append(v)
    for w in writes:
        at = live.at[id(w)]
        storage = w.args[0]
        if any(start < at < end for start, end in live.span(storage)):
            # `z = x; z += y; ... x ...`: the old value is read again under another name
            # (or through a tuple that held it: `t = (xs, 1); xs[0] = v; t[0]`)
            t, name = _kind_type(facts, storage), w.result.name
            what = _ARTICLE.get(t, "a " + str(t))
            raise UnsupportedError(
                f"this changes {what} in place that another name (or a tuple or list holding "
                f"it) still reads afterwards; the gradient would not see the change", w.loc,
                (f"write `{name} = {name} + ...` (or -, *, ...) for a new value, or " if
                 w in updates and w.prim.name != "getitem" else "") +
                "take a copy where the second name is made (`y = x.copy()`, `ys = list(xs)`)")
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
        # lists and tuples that hold the written value (and what holds those) see it too
        seen, todo = set(), list(holders.get(find(storage), ()))
        while todo:
            c = todo.pop()
            if find(c) in seen:
                continue
            seen.add(find(c))
            todo += holders.get(find(c), ())
            for m in members.get(find(c), (c,)):
                if m is not storage and m is not w.result and any(start < at < end for start, end in live.span(m)):
                    what = f"`{m.name}`" if not m.name.startswith("_") else "a list or tuple"
                    raise UnsupportedError(
                        f"this write changes a value that {what} holds, and {what} is read "
                        f"afterwards; the gradient would not see the change", w.loc,
                        "put a copy in the list (xs.append(v.copy())), or read the value "
                        "from the list again after writing it")


def _holds(op: Call, facts) -> list:
    """(element, container) pairs: `op` puts an object into a list or tuple, or reads
    one out of it (`row = rows[0]`, a list held by `rows`)."""
    out = []
    name, args = op.prim.name, op.args
    if name in ("list", "tuple"):
        out = [(a, op.result) for a in args]
    elif op.prim.style == "append":
        out = [(args[1], op.result)]
    elif op.prim.style == "setitem" and _kind_type(facts, args[0]) == "list":
        out = [(args[2], op.result)]
    elif name == "getitem" and _kind_type(facts, args[0]) in ("list", "tuple") and \
            _kind_type(facts, args[1]) == "int":  # an element; a slice is a new list
        out = [(op.result, args[0])]
    return [(e, c) for e, c in out if hasattr(e, "id")]


def _carried_types(fn: Function, facts) -> dict:
    """The type of each value, where the kinds tell it: a list whose length changes
    around a loop has no one kind, but its initial value and its versions say "list"
    (a type the values a loop carries disagree on is left out)."""
    parent: dict = {}

    def find(v):
        while parent.get(v, v) is not v:
            v = parent[v]
        return v

    for _, _, a, b in ties(fn.body):
        if hasattr(b, "id") and find(a) is not find(b):
            parent[find(b)] = find(a)
    seen: dict = {}
    for v in set(parent) | set(parent.values()):
        t = _kind_type(facts, v)
        if t is not None:
            seen.setdefault(find(v), set()).add(t)
    out = {v: _kind_type(facts, v) for v in facts.kinds}
    for v in set(parent) | set(parent.values()):
        types = seen.get(find(v), set())
        if out.get(v) is None and len(types) == 1:
            out[v] = next(iter(types))
    return out


def _kind_type(facts, o):
    k = facts.kind(o)
    return k.type if k is not None else None


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
