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

import numpy as np

from adjoint.analysis.activity import array_dtypes
from adjoint.analysis.liveness import Liveness, ties
from adjoint.errors import UnsupportedError
from adjoint.rules import registry
from adjoint.ir.core import Call, Const, For, Function, Global, If, Value, While, walk_ops

_ARTICLE = {None: "a value of unknown type", "ndarray": "an array", "int": "an int",
            "other": "an object"}
_CONTAINERS = ("list", "dict", "tuple")
_IMMUTABLE = ("float", "int", "bool", "complex", "tuple", "none", "range")


def check_views(fn: Function, facts) -> None:
    # `a += b` updates an array or a list in place; a number or a tuple is rebound
    inplace = set(fn.inplace)
    # a value no run reached (a loop that ran no trip) has the type of the values the loop
    # carries it with, where they agree; else it is unknown, and may be an array
    types = _carried_types(fn, facts)
    # no call observed (generic code): lists and dicts are known by how they are made
    made_as = array_dtypes(fn, ()) if not getattr(facts, "kinds", None) else {}

    def type_of(o):
        t = types.get(o) if o in types else _kind_type(facts, o)
        return "list" if t is None and made_as.get(o) == "container" else t

    def mutable(o) -> bool:
        t = type_of(o)
        return t is None or t not in _IMMUTABLE

    calls = [op for op in walk_ops(fn.body) if isinstance(op, Call)]
    updates = {op for op in calls if op.result in inplace and mutable(op.args[0])}
    for op in calls:
        if op.result in inplace and op.prim.name == "getitem":  # lowering's `xs.pop()`
            t = types.get(op.args[0])
            if t != "list":
                raise UnsupportedError(
                    f"`.pop()` of {_ARTICLE.get(t, 'a ' + str(t))}: only a "
                    f"list's pop is supported", op.loc, "pop from a list (xs = list(...))")
    # `c[k] += v`, where c[k] is an array: the array is changed in place
    made = {op.result: op for op in calls}
    slice_updates = {new for new, base, _ in fn.element_updates if type_of(base) == "ndarray"}
    elements = [(made[new], base) for new, base, made_here in fn.element_updates
                if new in made and mutable(made[new].args[0]) and (
                    type_of(base) in ("list", "dict") or type_of(base) is None and made_here)]
    for op in calls:  # NumPy refuses `a += x` that would change a's dtype: so does f
        if op in updates or op.result in slice_updates:
            _check_in_place(op, facts)
    writes = [op for op in calls if op.prim.style in registry.WRITES or op in updates]
    if not writes and not elements:
        return
    objects = _Objects(fn, facts, calls, writes, type_of, made)
    outside = _outside(fn)
    for w in writes + [op for op, _ in elements]:
        storage = w.args[0]
        if any(m in outside for m in [storage] + objects.members.get(objects.find(storage), [])):
            raise UnsupportedError(
                "this writes in place into an array that f did not make (a global's, a "
                "closure's or an object's, or a view or element of one); the gradient "
                "would not see the change", w.loc,
                "compute the new value and return it, or copy it first: h = "
                "CACHE['h'].copy()")
    for op, base in elements:
        _check_element_update(objects, op, base, calls)
    for w in writes:
        _check_write(objects, w, w in updates and w.prim.name != "getitem")


# ops whose result is (or may be) a part of their first operand's object: a view, an
# element of a container, an attribute, the walk of a sequence
_PARTS = frozenset({"getitem", "element", "field", "sequence"}) | registry.VIEWS


def _outside(fn: Function) -> set:
    """The values that are objects f did not make, or parts of one: a global's (or a
    closure's, or self's) array, list or dict, an element, attribute or view of it, a
    loop's target over it. Lowering refuses a write into the global itself; a write
    into a part of it would change the module's object, which no value shows."""
    out: set = set()

    def foreign(o) -> bool:
        return o in out or isinstance(o, Global) and not callable(o.value)

    for op in walk_ops(fn.body):
        if isinstance(op, Call) and op.args and op.prim.name in _PARTS and \
                foreign(registry.viewed(op)):
            out.add(op.result)
        elif isinstance(op, For) and foreign(op.iter):
            out.add(op.body.args[0])
    return out


class _Objects:
    """Which values may be one object when f runs: a union-find over views, writes
    and their arrays, loops' carried values, and the slots of lists, tuples and dicts
    (`_Slots`), with where each value is live."""

    def __init__(self, fn: Function, facts, calls, writes, type_of, made):
        self.parent: dict = {}
        self.type_of = type_of
        # every union but those of an `if`'s result with its branches' values, replayed
        # in `may_alias` without them: those say the result is one of the two, not that
        # the two are one object
        self.joined: list = []
        self.branches: list = []  # (an if's result, a value one branch yields)
        find, union = self.find, self.union
        for op in calls:
            k = facts.kind(op.result)
            # unknown (no call observed, or a value no run reached): it may be an array;
            # an element of a list, tuple or dict is no view of it (its slot relates them)
            view = op.prim.name in registry.VIEWS and (k is None or k.type == "ndarray") \
                and not (op.prim.name == "getitem" and (type_of(op.args[0]) in _CONTAINERS
                                                        or _advanced(op.args[1], facts, made)
                                                        or _element(op, facts))) \
                and not (op.prim.name == "attribute" and isinstance(op.args[1], Const) and
                         op.args[1].value in _NUMBER_ATTRIBUTES) \
                or op.prim.name == "sequence" and type_of(op.args[0]) != "dict" \
                or op.prim.name in ("field", "replaced")  \
                or op.prim.name == "np.array" and _no_copy(op)  # np.array(y, copy=False)
            if (view or op.prim.style in registry.WRITES or op in writes) and op.args and \
                    hasattr(registry.viewed(op), "id"):
                union(registry.viewed(op), op.result)
            if op.prim.name == "replaced" and hasattr(op.args[2], "id"):  # it holds the value
                union(op.args[2], op.result)
            known = registry.entry(op.prim)
            if known is None or not (known.vjp or known.jvp or known.nondiff or known.pure):
                for a in op.args:  # a function with no rule (iter, next): its result may
                    # be, or hold, a part of any argument
                    if hasattr(a, "id"):
                        union(a, op.result)
        loops = [op for op in walk_ops(fn.body) if isinstance(op, (For, While))]
        bodies = {id(op.body) for op in loops}
        for block, _, a, b in ties(fn.body):  # an `if`'s result is one of its branches'
            if hasattr(b, "id") and (block is None or id(block) not in bodies) and \
                    not any(a in op.results for op in loops):
                union(a, b, branch=block is not None)
        self.live = live = Liveness(fn, {}, set())
        self.zero_trips = []  # (a loop's result, its initial value, the loop's end)
        for op in reversed(loops):  # inner loops first: an outer trip's new dict holds them
            self.zero_trips += _tie_carries(op, find, union, live, made)
        self.made, self.writes = made, {id(w) for w in writes}
        self.fine = None  # may_alias's groups, made when first asked
        self.sources: dict = {}  # an if's or a loop's value -> the values it may be
        for _, _, a, b in ties(fn.body):
            if a not in made:
                self.sources.setdefault(a, []).append(b)
        self.slots = _Slots(calls, type_of, find, live)
        for node, v in self.slots.links:
            union(node, v)
        self.members: dict = {}
        for v in set(self.parent) | set(self.parent.values()):
            if isinstance(v, Value):
                self.members.setdefault(find(v), []).append(v)
        self.holders: dict = {}  # an object -> the containers that hold it
        for c, v in self.slots.held:
            self.holders.setdefault(find(v), []).append(c)

    def find(self, v):
        while self.parent.get(v, v) is not v:
            v = self.parent[v]
        return v

    def union(self, a, b, branch: bool = False):
        (self.branches if branch else self.joined).append((a, b))
        ra, rb = self.find(a), self.find(b)
        if ra is not rb:
            self.parent[rb] = ra

    def may_alias(self, a, b) -> bool:
        """Whether `a` and `b` may be one object when f runs. The groups of `find` join
        both branches of an `if` through its result, so that a write in one branch into
        the object it makes there (a comprehension's new dict) would seem to change the
        value the other branch yields (`{..} if c else q` and q): here an if's result may
        be each branch's object, and a loop's result its initial value, but the branches'
        values are not thereby one."""
        if self.fine is None:
            parent: dict = {}

            def find(v):
                while parent.get(v, v) is not v:
                    up = parent[v]
                    parent[v] = v = parent.get(up, up)
                return v

            for x, y in self.joined:
                rx, ry = find(x), find(y)
                if rx is not ry:
                    parent[ry] = rx
            down: dict = {}
            for r, y in self.branches + [(r, x) for r, x, _ in self.zero_trips]:
                down.setdefault(find(r), set()).add(find(y))
            self.fine = (find, down)
        find, down = self.fine

        def reach(v) -> set:
            out, todo = set(), [find(v)]
            while todo:
                g = todo.pop()
                if g not in out:
                    out.add(g)
                    todo += down.get(g, ())
            return out

        return not reach(a).isdisjoint(reach(b))

    def put_later(self, c, storage, write) -> bool:
        """Whether container `c` comes to hold `storage`'s object only after `write`
        changes it: every put of it into `c` (and read of it out of `c`) runs later in the
        trip of each loop around both, and each of those loops makes the object afresh
        (`h = np.zeros(2); h[0] = v; out.append(h)`), so what an earlier trip put there
        is another object."""
        slots, live, group = self.slots, self.live, self.find(storage)
        if any(c is a or c is b for a, b in slots.derived):
            return False
        # the ops that put the object into c, or read it out of c
        links = [op for box, _, v, op in slots.puts if box is c and self.find(v) is group] + \
            [self.made.get(r) for box, _, r in slots.reads if box is c and self.find(r) is group]
        if not links or any(op is None or live.at[id(op)] < live.at[id(write)] for op in links):
            return False
        around = [o for o, _ in live.def_path.get(write.result, ()) if not isinstance(o, If)]
        return all(self._made_in(storage, loop) for op in links
                   for loop, _ in live.def_path.get(op.result, ())
                   if any(loop is a for a in around))

    def _made_in(self, v, loop) -> bool:
        """Whether `v`'s object is made on each trip of `loop` by an op that makes a new
        one: back through the writes and views that keep it, and the ifs and inner loops
        that carry it, every object it may be is made by a call inside the loop."""
        todo, seen = [v], set()
        while todo:
            v = todo.pop()
            if v in seen:
                continue
            seen.add(v)
            op = self.made.get(v)
            if op is None and v in self.sources:  # an if's or a loop's value
                todo += self.sources[v]
            elif op is not None and (id(op) in self.writes or op.prim.name in registry.VIEWS):
                todo.append(registry.viewed(op))
            else:
                known = registry.entry(op.prim) if op is not None else None
                if known is None or not known.pure or op.prim.name in _OPERAND_RESULTS or \
                        not any(o is loop for o, _ in self.live.def_path.get(v, ())):
                    return False
        return True

    def read_after(self, m, at, until=None) -> bool:
        """Whether `m` is live across position `at` (and past `until`, when given)."""
        return any(start < at < end and (until is None or end > until)
                   for start, end in self.live.span(m))


def _check_element_update(objects: _Objects, op: Call, base, calls) -> None:
    """`c[k] += v` on an array that c holds: right when nothing else still sees it."""
    find, at, current = objects.find, objects.live.at[id(op)], op.args[0]
    # a name that may be the same array (where the entries of a container are not told
    # apart, it may be another entry's: it is then named as a possibility only)
    named = next((m for m in objects.members.get(find(current), ())
                  if m is not current and m is not op.result and objects.read_after(m, at)
                  and objects.may_alias(current, m)), None)
    what = "another value" if named is None or named.name.startswith("_") else \
        f"`{named.name}`"
    # c itself is read once more, by the write that stores the updated array back
    store = next((w for w in calls if w.prim.style == "setitem" and
                  w.args[0] is base and w.args[2] is op.result), None)
    until = objects.live.at[id(store)] if store is not None else None
    if objects.slots.copies(find(current), op) or any(
            objects.read_after(m, at, until if m is base else None)
            for c in objects.holders.get(find(current), ())
            for m in objects.members.get(find(c), (c,))):
        raise UnsupportedError(
            "this changes in place an array that shares another slot of a list or "
            "dict (`[a, a]`, `[a] * 2`, or a second container), read afterwards" +
            (f" ({what} may also refer to it)" if named is not None else "") +
            "; the gradient would not see the change", op.loc,
            "write `c[k] = c[k] + v` for a new array, or store copies (`c[k] = "
            "v.copy()`)")
    if named is not None:
        raise UnsupportedError(
            f"this changes in place an array that {what} also refers to, and {what} "
            f"is read afterwards; the gradient would not see the change", op.loc,
            "write `c[k] = c[k] + v` for a new array, or take a copy where the "
            "second name is made (`a = c[k].copy()`)")


def _check_write(objects: _Objects, w: Call, rebinds: bool) -> None:
    """A write into an array (or `a += b` on one) that another value still sees."""
    find, at, storage = objects.find, objects.live.at[id(w)], w.args[0]
    if objects.read_after(storage, at):
        # `z = x; z += y; ... x ...`: the old value is read again under another name
        # (or through a tuple that held it: `t = (xs, 1); xs[0] = v; t[0]`)
        t, name = objects.type_of(storage), w.result.name
        what = _ARTICLE.get(t, "a " + str(t))
        raise UnsupportedError(
            f"this changes {what} in place that another name (or a tuple or list holding "
            f"it) still reads afterwards; the gradient would not see the change", w.loc,
            (f"write `{name} = {name} + ...` (or -, *, ...) for a new value, or " if
             rebinds else "") +
            "take a copy where the second name is made (`y = x.copy()`, `ys = list(xs)`)")
    near = [find(storage)] + [find(b) for r, x, end in objects.zero_trips if at > end
                              for a, b in ((r, x), (x, r)) if find(a) is find(storage)]
    for m in [m for g in near for m in objects.members.get(g, ())]:
        if m is not storage and m is not w.result and objects.read_after(m, at) and \
                objects.may_alias(storage, m):
            what = f"`{m.name}`" if not m.name.startswith("_") else "a view of it"
            raise UnsupportedError(
                f"this write changes {what}, which shares the array's memory and is "
                f"read afterwards; the gradient would not see the change", w.loc,
                "take a copy where the alias is made (row = A[0].copy(), u = M.copy()), "
                "write `u = u + x` for a new array, or read the array again after "
                "writing it")
    # lists, tuples and dicts that hold the written value (and what holds those) see it
    seen, todo = set(), [c for c in objects.holders.get(find(storage), ())
                         if not objects.put_later(c, storage, w)]
    while todo:
        c = todo.pop()
        if find(c) in seen:
            continue
        seen.add(find(c))
        todo += objects.holders.get(find(c), ())
        for m in objects.members.get(find(c), (c,)):
            if m is not storage and m is not w.result and objects.read_after(m, at):
                what = f"`{m.name}`" if not m.name.startswith("_") else "a container"
                raise UnsupportedError(
                    f"this write changes a value that {what} holds, and {what} is read "
                    f"afterwards; the gradient would not see the change", w.loc,
                    "put a copy in the list (xs.append(v.copy())), or read the value "
                    "from the list again after writing it")


def _tie_carries(loop, find, union, live, made) -> list:
    """A loop's carried value on the next trip is the object this trip yields: the
    same object throughout (an array written in place), unless each trip makes it
    afresh (an SGD step's new dict), when one trip's writes into it do not reach the
    value that the trip started from."""
    args = loop.body.args[1:] if isinstance(loop, For) else loop.body.args
    inside = {id(loop)}
    fresh, zero_trips = {}, []
    for i, (a, x, y, r) in enumerate(zip(args, loop.inits, loop.body.results, loop.results)):
        union(a, x)
        if isinstance(loop, While):
            union(a, loop.cond.args[i])
        fresh[i] = hasattr(y, "id") and _made_in_trip(y, loop, args, find, live, made, inside)
    for i, (a, x, y, r) in enumerate(zip(args, loop.inits, loop.body.results, loop.results)):
        if not hasattr(y, "id"):
            union(r, a)
        elif fresh[i]:
            union(r, y)
            # not a union, which would join x to every trip's object: after the loop, r
            # may be x (no trip ran)
            zero_trips.append((r, x, live.end[id(loop)]))
        else:
            union(a, y)
            union(r, a)
    for i, j in [(i, j) for i in fresh for j in fresh if i < j and fresh[i] and fresh[j]]:
        y, z = loop.body.results[i], loop.body.results[j]
        if find(y) is find(z):  # two carries that hold one object (or a view of it)
            union(args[i], args[j])
    return zero_trips


# ops whose result may be an object that they were given (`q or {}`, `d['W']`)
_OPERAND_RESULTS = ("getitem", "field", "and_", "or_", "alias", "element")


def _made_in_trip(y, loop, args, find, live, made, inside) -> bool:
    """Whether every value of y's object is made in the loop's body by an op that
    makes a new object (not a read out of a container, not the carried value)."""
    group = find(y)
    values = [v for v in set(live.defs) if find(v) is group]
    for v in values:
        if v in args or not any(id(o) in inside for o, _ in live.def_path.get(v, ())):
            return False
        op = made.get(v)
        known = registry.entry(op.prim) if op is not None else None
        if op is not None and (op.prim.name in _OPERAND_RESULTS or known is None or
                               not known.pure):  # an unknown call may return an old object
            return False
    return True


_SPLITS = ("np.split", "np.array_split", "np.hsplit", "np.vsplit", "np.dsplit", "np.unstack",
           "np.broadcast_arrays")


def _advanced(index, facts, made: dict) -> bool:
    """Whether `x[index]` is NumPy's advanced indexing, which always copies: an index that
    is (or holds, in a tuple) an array or a list, by the kinds a call observed (a mask,
    `y[[0, 1]]`). Unknown kinds (generic code): not known to copy."""
    if isinstance(index, Const):
        parts = index.value if isinstance(index.value, tuple) else (index.value,)
        return any(isinstance(p, (list, np.ndarray)) for p in parts)
    k = facts.kind(index) if isinstance(index, Value) and facts is not None else None
    if k is not None and k.type in ("ndarray", "list"):
        return True
    op = made.get(index)
    return op is not None and op.prim.name == "index" and \
        any(_advanced(p, facts, made) for p in op.args)


# attributes of an array that are numbers or tuples of them, never a view of it
_NUMBER_ATTRIBUTES = ("shape", "ndim", "size", "dtype", "itemsize", "nbytes")


def _element(op: Call, facts) -> bool:
    """Whether `x[index]` is one entry of an array of known rank, a number and no view:
    an int index per axis (`un[2]` of a 1-D array, read on a branch no call took)."""
    base = facts.kind(op.args[0]) if facts is not None else None
    if base is None or base.type != "ndarray" or base.shape is None:
        return False
    index = op.args[1]
    parts = index.value if isinstance(index, Const) and isinstance(index.value, tuple) else \
        (index,)

    def integer(p):
        if isinstance(p, Const):
            return isinstance(p.value, (int, np.integer)) and not isinstance(p.value, bool)
        k = facts.kind(p) if isinstance(p, Value) else None
        return k is not None and k.type == "int"
    return len(parts) == len(base.shape) and all(integer(p) for p in parts)


def _no_copy(op: Call) -> bool:
    copy = dict(op.kwargs).get("copy")
    return isinstance(copy, Const) and copy.value in (False, None)


_SAMPLES = {"float": 1.0, "int": 1, "bool": True, "complex": 1j}
_DTYPES = {"f": "float64", "i": "int64", "u": "uint64", "b": "bool", "c": "complex128"}


def _check_in_place(op: Call, facts) -> None:
    """`a += x` on an array computes in place, and NumPy raises when the result's dtype
    cannot be cast back to a's (an int array += a float), or its shape is not a's: f
    fails there, so must this."""
    kinds = [facts.kind(o) if isinstance(o, Value) else None for o in op.args[:2]]
    if len(kinds) < 2 or kinds[0] is None or kinds[0].type != "ndarray" or \
            kinds[0].dtype not in _DTYPES:
        return
    target = np.dtype(_DTYPES[kinds[0].dtype])
    other, k = op.args[1], kinds[1]
    shape, other_shape = kinds[0].shape, k.shape if k is not None else None
    if shape is not None and other_shape is not None:
        try:
            wide = np.broadcast_shapes(shape, other_shape)
        except ValueError:
            wide = None  # f raises there too, as broadcasting does
        if wide != tuple(shape):
            raise UnsupportedError(
                f"f raises here: NumPy cannot update an array of shape {tuple(shape)} in "
                f"place with a result of shape {wide or other_shape}", op.loc,
                "write `a = a + x` for a new array, or reshape x to a's shape")
    if isinstance(other, Const):
        sample = other.value
    elif k is not None and k.type == "ndarray" and k.dtype in _DTYPES:
        sample = np.zeros(1, _DTYPES[k.dtype])
    elif k is not None and k.type in _SAMPLES:
        sample = _SAMPLES[k.type]
    else:
        return
    try:
        got = np.asarray(op.prim.fn(np.ones(1, target), sample)).dtype
    except Exception:  # noqa: BLE001 (not an arithmetic op we can try: no check)
        return
    if not np.can_cast(got, target, "same_kind"):
        raise UnsupportedError(
            f"f raises here: NumPy cannot update an array of {target} in place with a "
            f"{got} result (casting rule 'same_kind')", op.loc,
            f"write `a = a + x` (or -, *, /) for a new array, or convert a first: "
            f"a = a.astype(np.{got.name})")


class _Slots:
    """Which objects lists, tuples and dicts hold, as union-find links: each slot of a
    container (`d['W']`, `L[0]`) is a node that every value put there or read from
    there is joined to. A key not known when compiling (`L[i]`, a comprehension's
    `d[k]`), or a container made from others (`[a] * 2`, `L + M`, `dict(d)`),
    collapses the container's slots into one."""

    def __init__(self, calls: list, type_of, find, live):
        puts, reads, derived = [], [], []
        same_keys = []  # (copy, container): the same objects under the same keys
        for op in calls:
            name, args, r = op.prim.name, op.args, op.result
            if name in ("list", "tuple"):
                puts += [(r, Const(i), a, op) for i, a in enumerate(args)]
            elif op.prim.style == "dict":
                puts += [(r, Const(k), a, op) for k, a in zip(args[0].value, args[1:])]
            elif op.prim.style == "setitem" and type_of(args[0]) in ("list", "dict"):
                puts.append((r, args[1], args[2], op))
            elif op.prim.style == "append":
                puts.append((r, None, args[1], op))
            elif name in _SPLITS:  # a list of views of the array
                puts.append((r, None, args[0], op))
            elif name == "getitem" and type_of(args[0]) in _CONTAINERS:
                is_slice = isinstance(args[1], Const) and isinstance(args[1].value, slice) \
                    or type_of(args[1]) == "slice"
                if is_slice:  # a new list of the same objects
                    derived.append((r, args[0]))
                else:
                    reads.append((args[0], args[1], r))
            elif name == "private" and type_of(args[0]) in _CONTAINERS + (None,):
                same_keys.append((r, args[0]))  # a list's or dict's copy holds the same objects
            elif type_of(r) in _CONTAINERS and name not in ("keys", "sequence"):
                # `[a] * 2`, `L + M`, `dict(d)`, a helper's list: may hold the same objects
                derived += [(r, a) for a in args if type_of(a) in _CONTAINERS]
        boxes = {c: find(c) for c, *_ in puts + reads} | {  # containers' roots, fixed now
            c: find(c) for pair in derived + same_keys for c in pair}
        self.repeated = {boxes[c] for pair in derived + same_keys for c in pair}
        collapsed = {boxes[c] for pair in derived for c in pair} | {
            boxes[c] for c, k, *_ in puts + reads if not (
                isinstance(k, Const) and not isinstance(k.value, slice))}
        while any((boxes[r] in collapsed) != (boxes[a] in collapsed) for r, a in same_keys):
            collapsed |= {boxes[c] for r, a in same_keys for c in (r, a)
                          if boxes[r] in collapsed or boxes[a] in collapsed}
        # a copy's slot is its original's slot, key by key
        keys: dict = {}
        for c, k, *_ in puts + reads:
            keys.setdefault(boxes[c], set()).add(k)
        for _ in same_keys:  # a copy of a copy: the keys reach through each
            for r, a in same_keys:
                keys[boxes[r]] = keys[boxes[a]] = keys.get(boxes[r], set()) | \
                    keys.get(boxes[a], set())
        interned: dict = {}

        def node(c, k):
            key = "*" if boxes[c] in collapsed or k is None else k.value
            try:
                return interned.setdefault(("slot", boxes[c], key), ("slot", boxes[c], key))
            except TypeError:  # an unhashable key: one node for the container
                return interned.setdefault(("slot", boxes[c], "*"), ("slot", boxes[c], "*"))

        puts = [p for p in puts if isinstance(p[2], Value)]
        self.links = [(node(c, k), v) for c, k, v, _ in puts] + \
            [(node(c, k), v) for c, k, v in reads] + \
            [(node(r, None), node(a, None)) for r, a in derived] + \
            [(node(r, k), node(a, k)) for r, a in same_keys for k in keys.get(boxes[r], [None])]
        self.held = [(c, v) for c, _, v, _ in puts] + [(c, v) for c, _, v in reads] + \
            [(r, node(r, None)) for r, _ in derived] + \
            [(r, node(r, k)) for r, _ in same_keys for k in keys.get(boxes[r], [None])]
        self._find, self._node, self._live = find, node, live
        # (container, key, value, op) puts, (container, key, result) reads, and
        # (container, container) pairs that may share objects: read by _Objects.put_later
        self.puts, self.reads, self.derived = puts, reads, derived + same_keys

    def copies(self, group, write) -> bool:
        """Whether the object `group` may sit in more than one slot at once (`[a, a]`,
        `[a] * 2`, `{k: a for k in ks}`, or in two containers) when `write` changes it."""
        where = [(self._node(c, k), v, op) for c, k, v, op in self.puts
                 if self._find(v) is group and self._before(op, write)]
        places = {n for n, _, _ in where}
        if len(places) > 1 or any(n[1] in self.repeated for n in places):
            return True
        unknown = [(v, op) for n, v, op in where if n[2] == "*"]
        return len(unknown) > 1 or any(self._put_again(v, op) for v, op in unknown)

    def _before(self, op, write) -> bool:
        """Whether `op` may run before `write`: earlier, or in a loop around both."""
        live = self._live
        if live.at[id(op)] < live.at[id(write)]:
            return True
        around = {id(o) for o, _ in live.def_path.get(write.result, ()) if not isinstance(o, If)}
        return any(id(o) in around for o, _ in live.def_path.get(op.result, ()))

    def _put_again(self, v, op) -> bool:
        """Whether `op`, in a loop, puts the same object `v` (made outside it) each trip."""
        loops = [o for o, _ in self._live.def_path.get(op.result, ()) if not isinstance(o, If)]
        return bool(loops) and all(o is not loops[-1]
                                   for o, _ in self._live.def_path.get(v, ()))


def _carried_types(fn: Function, facts) -> dict:
    """The type of each value, where the kinds tell it: a list whose length changes
    around a loop has no one kind, but its initial value and its versions say "list"
    (a type the values a loop carries disagree on is left out)."""
    parent: dict = {}

    def find(v):
        while parent.get(v, v) is not v:
            up = parent[v]
            parent[v] = v = parent.get(up, up)  # path halving: chains grow with fn
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
    """The one type `o` was seen with: a float whose kind varied from trip to trip is
    still a float (a number is rebound by `+=`, never changed in place)."""
    k = facts.kind(o)
    if k is not None:
        return k.type
    seen = facts.types(o) if hasattr(facts, "types") and isinstance(o, Value) else set()
    return next(iter(seen)) if len(seen) == 1 else None


def written_arrays(fn: Function, writes: tuple = registry.WRITES) -> set:
    """Every value whose buffer some write in `fn` may change (the written arrays, their
    versions and whatever may view them): reading one again later may differ. `writes`:
    the styles of the ops that write into their first operand."""
    styles = writes
    parent: dict = {}

    def find(v):
        while parent.get(v, v) is not v:
            up = parent[v]
            parent[v] = v = parent.get(up, up)  # path halving: chains grow with fn
        return v

    writes = []
    for op in walk_ops(fn.body):
        if isinstance(op, Call) and op.args and (
                op.prim.name in registry.VIEWS or op.prim.style in styles) and \
                hasattr(registry.viewed(op), "id"):  # (most calls neither view nor write)
            ra, rb = find(registry.viewed(op)), find(op.result)
            if ra is not rb:
                parent[rb] = ra
            if op.prim.style in styles:
                writes.append(op.args[0])
        elif isinstance(op, Call) and op.prim.fn is None:  # a function generated beside
            # fn (a checkpointed loop's step gradient) adds into the arrays it is given
            for a in op.args:
                if hasattr(a, "id"):
                    parent.setdefault(a, a)
                    writes.append(a)
    for _, _, a, b in ties(fn.body):
        if hasattr(b, "id"):
            ra, rb = find(a), find(b)
            if ra is not rb:
                parent[rb] = ra
    dirty_roots = {find(w) for w in writes}
    return {v for v in set(parent) | set(parent.values()) if find(v) in dirty_roots}
