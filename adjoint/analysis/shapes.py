"""What kind of value each SSA value holds, learnt by running the IR once.

The compiler specialises a gradient on its arguments' kinds and shapes (the
cache key includes them). Running the reference interpreter on the first call's
arguments tells, for every value, whether it is a Python float, an int, a float
array of some shape, and so on. A value seen with two different kinds (say,
in different loop iterations) is recorded as unknown, and code that depends on
it stays generic. Without example arguments every value is unknown and the
generated code is the generic, shape-agnostic version.
"""
from __future__ import annotations

import operator
import random
import sys
from dataclasses import dataclass

import numpy as np

from adjoint import runtime
from adjoint.errors import UnsupportedError
from adjoint.frontend.lower import Facts
from adjoint.ir.core import Call, Const, For, Function, Global, If, Value, While, walk_ops
from adjoint.ir.interp import Relearn, interpret
from adjoint.rules.registry import elementwise_ufunc
from adjoint.rules.structure import dict_of, list_of, tuple_of


@dataclass(frozen=True)
class Kind:
    """`type` is one of float, int, bool, complex, ndarray, tuple, list, dict, record (a
    dataclass), str, range, none, other."""

    type: str
    shape: tuple | None = None
    dtype: str | None = None  # numpy dtype kind: 'f', 'i', 'u', 'b', 'c'
    # an "ndarray" of another library that NumPy's functions dispatch to (NEP 18/13):
    # "dask" for a lazy dask array; None for NumPy's own. In the key: code made for one
    # is never reused for the other
    lib: str | None = None

    @property
    def floating(self) -> bool:
        """Can this value carry a gradient?"""
        if self.type in ("float", "complex"):
            return True
        if self.type == "ndarray":
            return self.dtype in ("f", "c")
        return self.type in ("tuple", "list", "dict", "record", "other")

    @property
    def scalar(self) -> bool:
        return self.type in ("float", "int", "bool", "complex")


UNKNOWN = None


def nbytes(x) -> int:
    """Memory a value holds on to (arrays: their data; Python objects: their size)."""
    size = _PLAIN_SIZES.get(type(x))
    if size is not None:
        return size
    if isinstance(x, np.ndarray):
        return x.nbytes if x.base is None else 0  # a view shares its base's memory
    if isinstance(x, (list, tuple)):
        return sys.getsizeof(x) + sum(nbytes(e) for e in x)
    if type(x) is int and -2**30 < x < 2**30:
        return _SMALL_INT_SIZE  # CPython 3.10 stores 0 in fewer bytes than 1: not a fact
    return sys.getsizeof(x)


def kind_of(x) -> Kind:
    k = _PLAIN_KINDS.get(type(x))  # the usual case, and the one a loop repeats
    if k is not None:
        return k
    if isinstance(x, (bool, np.bool_)):
        return Kind("bool", ())
    if isinstance(x, (int, np.integer)):
        return Kind("int", ())
    if isinstance(x, (float, np.floating)):
        return Kind("float", ())
    if isinstance(x, (complex, np.complexfloating)):
        return Kind("complex", ())
    if isinstance(x, np.ndarray):
        if type(x) is np.ndarray or isinstance(x, np.memmap):  # a memmap is a plain array
            return Kind("ndarray", x.shape, x.dtype.kind)
        # a subclass (np.matrix, np.ma.MaskedArray, np.recarray, a user's) has operations
        # of its own (`*` a matrix product, np.sum skipping masked entries) that the rules
        # do not know: "other", which a wrt refuses naming its type and observe refuses
        # anywhere else. Its shape keeps its key apart from a plain object's.
        return Kind("other", x.shape, x.dtype.kind)
    if isinstance(x, (tuple, list)):
        if _holds_foreign(x):  # np.shape would compute them
            inner = [kind_of(e) for e in x]
            same = all(k.type in ("ndarray", "float", "int") and k.shape is not None and
                       k.shape == inner[0].shape for k in inner)
            shape = (len(x),) + inner[0].shape if same else None
        else:
            try:  # (a namedtuple's field `shape` is no shape: np.shape would return it)
                stacked = np.asarray(tuple(x) if hasattr(x, "_fields") else x)
                # entries that are no numbers ([1.0, None]) do not stack into an array
                shape = stacked.shape if stacked.dtype != object else None
            except ValueError:
                shape = None
        ints = "i" if x and all(isinstance(e, (int, np.integer)) and not isinstance(e, bool)
                                 for e in x) else None
        # a namedtuple (slogdet's result) is a tuple: its own type name would read as a
        # kind that cannot carry a gradient
        return Kind("tuple" if isinstance(x, tuple) else "list", shape, ints)
    if isinstance(x, dict):  # parameters by name: a container, like a tuple
        return Kind("dict")
    if hasattr(type(x), "__dataclass_fields__") and not isinstance(x, type):
        return Kind("record")  # a dataclass: fields by name, like a dict
    if isinstance(x, str):  # a key
        return Kind("str", ())
    if isinstance(x, range):
        return Kind("range", ())
    if x is None:
        return Kind("none", ())
    if array_library(x) == "dask":
        # a lazy array: its shape and dtype are known without computing it (a chunk
        # size of nan, unknown until computed, leaves the shape unknown)
        shape = tuple(x.shape)
        known = all(isinstance(n, int) for n in shape)
        return Kind("ndarray", shape if known else None, np.dtype(x.dtype).kind, "dask")
    lib = array_library(x)
    if lib is not None:  # an array-API array (array_api_strict, torch, CuPy): the same facts
        shape = tuple(x.shape)
        known = all(isinstance(n, int) for n in shape)
        return Kind("ndarray", shape if known else None, _dtype_kind(x), lib)
    return Kind("other")


def _dtype_kind(x) -> str | None:
    """NumPy's dtype kind letter of an array of any array-API library."""
    try:
        return np.dtype(x.dtype).kind
    except TypeError:
        pass
    from array_api_compat import array_namespace
    xp = array_namespace(x)
    for kind, letter in (("bool", "b"), ("signed integer", "i"), ("unsigned integer", "u"),
                         ("real floating", "f"), ("complex floating", "c")):
        if xp.isdtype(x.dtype, kind):
            return letter
    return None


def as_numpy(a):
    """`a` with each array-API array (array_api_strict, torch CPU...) copied to NumPy,
    through lists, tuples and dicts: observing a call runs the IR with NumPy, and an
    array's kind and shape do not depend on its library. None: an array whose memory
    NumPy cannot read (a GPU array)."""
    if type(a) in (list, tuple):
        new = [as_numpy(e) for e in a]
        return a if all(x is y for x, y in zip(new, a)) else type(a)(new)
    if type(a) is dict:
        new = {k: as_numpy(e) for k, e in a.items()}
        return a if all(new[k] is e for k, e in a.items()) else new
    lib = array_library(a)
    if lib is None or lib == "dask":
        return a
    try:
        return np.from_dlpack(a)
    except (TypeError, RuntimeError, BufferError, ValueError) as e:
        from adjoint.errors import UnsupportedError
        raise UnsupportedError(
            f"an array of {lib} ({type(a).__name__}) that NumPy cannot read ({e}): adjoint "
            "observes a call on NumPy copies of its arrays", None,
            "observe on CPU arrays first (the kinds and shapes are the same)") from None


def _holds_foreign(x) -> bool:
    """Whether a list or tuple holds, at any depth, an array of a library other than
    NumPy (np.shape of `[(a, b)]` would compute dask arrays a and b)."""
    return any(_holds_foreign(e) if isinstance(e, (tuple, list)) else
               array_library(e) is not None for e in x)


def array_library(x) -> str | None:
    """The library of an array that is not NumPy's ("dask", "array_api_strict", "cupy",
    "torch", ...), from its type's module, without importing it; None for anything
    else. Only the module is read: an object of any type can be passed."""
    if isinstance(x, (np.ndarray, np.generic)):
        return None
    t = type(x)
    if not (hasattr(t, "__array_namespace__") or hasattr(t, "__array_function__") or
            hasattr(t, "__cuda_array_interface__") or t.__module__.startswith("torch")):
        return None
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        return None
    return t.__module__.split(".")[0]


_PLAIN_KINDS = {bool: Kind("bool", ()), np.bool_: Kind("bool", ()), int: Kind("int", ()),
                np.int64: Kind("int", ()), float: Kind("float", ()),
                np.float64: Kind("float", ())}
# the size of a number of each kind: the larger of Python's and NumPy's (a float and an
# np.float64 are one kind, and a loop that turns one into the other has one size)
_PLAIN_SIZES = {t: max(sys.getsizeof(u()) for u in _PLAIN_KINDS if _PLAIN_KINDS[u] == k)
                for t, k in _PLAIN_KINDS.items() if t is not int}  # an int grows
_SMALL_INT_SIZE = _PLAIN_SIZES[np.int64]  # as an np.int64 (the same kind)
_SMALL = 2 ** 30  # ints below it in magnitude take _SMALL_INT_SIZE bytes


_UNSEEN = object()  # a value never observed (UNKNOWN is one seen with a mix of kinds)


class Observed(Facts):
    """Facts gathered by observing one or more runs."""

    def __init__(self) -> None:
        self.kinds: dict[Value, Kind | None] = {}
        self.counts: dict[Value, int] = {}  # how often each value was bound (loop trips)
        self.bytes: dict[Value, int] = {}  # the largest size seen
        self.mixed: dict[Value, set] = {}  # the types of a value whose kind varied
        self.lazy: LazyUses | None = None  # set by observe: the uses a lazy value refuses
        # ints, bools and strs the data decides (forget_data_shapes), for forget_path_kinds
        self.decided: set = set()
        self.complex_seen: set = set()  # the values seen complex on some run or trip
        self.learned = 0  # how many times a record taught something new (interp's loops)
        self.last_lists: dict = {}  # v -> (the last list of mixed lengths seen, its size)
        self.returned: Kind | None = None  # the kind of what f returned (one output)

    def record(self, v: Value, x) -> None:
        k = _PLAIN_KINDS.get(type(x))
        if k is not None and self.kinds.get(v) is k and (type(x) is not int or
                                                         -_SMALL < x < _SMALL):
            self.counts[v] += 1  # a float (or small int) seen before: nothing new to learn
            return
        self.counts[v] = self.counts.get(v, 0) + 1
        if type(x) is list and v in self.kinds and self.kinds[v] is UNKNOWN and \
                "list" in self.mixed[v]:  # a list that grows in a loop (hs.append(h))
            self._grown(v, x)
            return
        size = nbytes(x)
        if size > self.bytes.get(v, -1):
            self.bytes[v] = size
            self.learned += 1
        k = kind_of(x)
        if (k.type == "complex" or k.dtype == "c") and v not in self.complex_seen:
            self.complex_seen.add(v)
            self.learned += 1
        if k.type == "other" and k.shape is not None:  # an ndarray subclass (kind_of)
            raise _Subclass(v, x)
        if k.lib is not None and self.lazy is not None:
            self.lazy.check(v, k, self)
        if v not in self.kinds:
            self.kinds[v] = k
            self.learned += 1
        elif self.kinds[v] is not k and self.kinds[v] != k:
            old = self.kinds[v]
            types = {k.type} if old is UNKNOWN else {k.type, old.type}
            mixed = self.mixed.setdefault(v, set())
            if old is not UNKNOWN or not types <= mixed:  # (a known mix teaches nothing)
                self.learned += 1
            mixed.update(types)
            self.kinds[v] = UNKNOWN

    NUMBER_TYPES = frozenset(_PLAIN_KINDS)  # types whose kind is the type's alone

    def _grown(self, v: Value, x: list) -> None:
        """Record list `x` of a mix of lengths: its type is all the mix keeps, and its
        size is the last one's plus what was appended, when it is that list appended to.
        (Computed in full on every trip, a list appended to in a loop of n trips cost
        O(n^2) to observe: 8 s for 4000 trips.)"""
        last = self.last_lists.get(v)
        if last is not None and len(x) == len(last[0]) + 1 and len(x) > 1 and \
                x[0] is last[0][0] and x[-2] is last[0][-1]:
            size = last[1] + sys.getsizeof(x) - sys.getsizeof(last[0]) + nbytes(x[-1])
        else:
            size = nbytes(x)
        self.last_lists[v] = (x, size)
        if size > self.bytes.get(v, -1):
            self.bytes[v] = size
            self.learned += 1

    def fits(self, v: Value, x) -> bool:
        """Whether `x`, bound to `v` on a trip that runs unobserved, is of the kind
        observed, or of a type of its observed mix: a shape, dtype or type first met on a
        late trip (the short last batch of `X[b:b + 4]`) must be observed, or code
        specialised on the others would serve it. (Sizes are not compared: they only
        inform memory estimates.)"""
        k = self.kinds.get(v, _UNSEEN)
        plain = _PLAIN_KINDS.get(type(x))
        if plain is not None and k is plain:  # the usual case, first
            return True
        if k is _UNSEEN:
            return False
        if type(x) is np.ndarray and k is not UNKNOWN:
            return k.type == "ndarray" and k.lib is None and k.shape == x.shape and \
                k.dtype == x.dtype.kind
        if k is not UNKNOWN:
            return kind_of(x) == k
        # a mix: only the type matters (a list's length is not computed: it may grow)
        if isinstance(x, (list, tuple)):
            seen = "tuple" if isinstance(x, tuple) else "list"
        else:
            seen = kind_of(x)
            if (seen.type == "complex" or seen.dtype == "c") and v not in self.complex_seen:
                return False
            seen = seen.type
        return seen in self.mixed.get(v, ())

    def add_count(self, v: Value, runs: int) -> None:
        """`v` was bound `runs` more times, unobserved (a settled loop's trips)."""
        self.counts[v] = self.counts.get(v, 0) + runs

    def copy(self) -> "Observed":
        """Another Observed with the same facts, which the compiler may add to."""
        other = Observed()
        other.kinds, other.counts = dict(self.kinds), dict(self.counts)
        other.bytes, other.mixed = dict(self.bytes), {v: set(t) for v, t in self.mixed.items()}
        other.complex_seen = set(self.complex_seen)
        other.returned = self.returned
        return other

    def types(self, v) -> set:
        """The types (float, list, ...) `v` was seen with: one, unless its kind varied
        (a tuple that grows in a loop has no one kind, but is a tuple every time)."""
        k = self.kind(v)
        return {k.type} if k is not None else self.mixed.get(v, set())

    def same_kind(self, new: Value, old: Value, overwrite: bool = True) -> None:
        """`new` has the kind of `old`: a popped or exported copy, or a cotangent."""
        if old in self.kinds and (overwrite or new not in self.kinds):
            self.kinds[new] = self.kinds[old]
            if old in self.mixed:  # what it may be, when no one kind
                self.mixed[new] = set(self.mixed[old])

    def forget_data_shapes(self, fn: Function) -> set:
        """Forget the shapes that depend on the data, not on the arguments' shapes:
        `x[x > 0]`, np.nonzero(...), an int computed from the values of an array or a
        float (`x[:int(x[0])]`, `range(np.argmax(x))`), and everything computed from
        them. The code is specialised on argument kinds only, so a size this call
        happened to see must not be folded into it (np.mean(x[x > 0]) would divide by it
        on every call). Returns the values so tainted, and the ints the data decides
        (`counts`), which may pick an element or size a loop."""
        tainted: set = set()
        # ints the data decides, and tuples holding them: an int array argument's values
        # are not in the key either (its shape is). An int, bool or str is a fact only
        # when computed from constants, keyed arguments and shapes: one computed from a
        # float, an array's values or a count is a count, and so is one an `if` or a
        # loop gives when the data decides its test (`k = 2 if x[0] > 0 else 3`, the
        # index where a while loop or a break stopped, `n += 1` under a data `if`)
        counts: set = {p for p in fn.params if (k := self.kinds.get(p)) is not None and
                       k.type == "ndarray" and k.dtype in ("i", "u")}

        def add(marks: set, values) -> None:
            nonlocal changed
            for v in values:
                if v not in marks:
                    marks.add(v)
                    changed = True

        def plain(values) -> list:  # the ints, bools and strs among values
            return [v for v in values if _plain(self.kinds.get(v))]

        changed = True
        while changed:  # loops feed values back: to a fixpoint
            changed = False
            for op in walk_ops(fn.body):
                if isinstance(op, Call) and op.result not in counts and (
                        self._data_int(op, counts, tainted) or op.prim.fn in _TUPLES and
                        any(o in counts for o in op.operands)):
                    add(counts, [op.result])
                elif isinstance(op, Call) and op.result not in tainted and (
                        self._data_shaped(op) or any(o in tainted for o in op.operands) or
                        self._sized_by(op, counts)):
                    add(tainted, [op.result])
                for dst, src in _merges(op):
                    for marks in (tainted, counts):
                        if src in marks and dst not in marks:
                            add(marks, [dst])
                if isinstance(op, If) and self._decided(op.cond, counts, tainted):
                    add(counts, plain(op.results))
                elif isinstance(op, While) and op.cond.results and \
                        self._decided(op.cond.results[0], counts, tainted):
                    add(counts, plain(op.results + op.body.args + op.cond.args))
                elif isinstance(op, For) and (op.iter in tainted or op.iter in counts):
                    add(counts, plain(op.results + op.body.args))  # the target too
                if isinstance(op, (For, While)) and (isinstance(op, While) or op.iter in tainted):
                    # a list grown in a loop whose trip count depends on the data: its
                    # length changed from trip to trip, and the last one is no fact
                    for r, init in zip(op.results, op.inits):
                        k = self.kinds.get(r)
                        if r not in tainted and k is not None and (
                                k.type in _SIZED_CONTAINERS or k != self.kind(init)):
                            add(tainted, [r])
                if isinstance(op, If):
                    # a list appended to (a dict's key set) on one side only: its length
                    # is the data's choice
                    for r, a, b in zip(op.results, op.then.results, op.orelse.results):
                        k = self.kinds.get(r)
                        if r not in tainted and a is not b and k is not None and \
                                k.type in _SIZED_CONTAINERS:
                            add(tainted, [r])
        for v in tainted:
            k = self.kinds.get(v)
            if k is not None and k.shape is not None and k.type in ("ndarray", "tuple", "list"):
                self.kinds[v] = Kind(k.type, None, k.dtype, k.lib)
        self.decided = counts
        return tainted

    def forget_path_kinds(self, fn: Function, data: set = frozenset()) -> None:
        """Forget the kinds that depend on which path the data took: an if whose two
        sides give values of different kinds (`1.0 if c else np.abs(x)`), or whose side
        that did not run gives a kind nothing here can tell; a while loop, or a for loop
        over a range the data sizes (`data`, from forget_data_shapes), whose initial
        value, body and result differ in kind (it may run no trip, or one). The code is
        specialised on the arguments' kinds only, so the next call may take the other
        path; what is computed from such a value (through tapes too) is forgotten as
        well, and stays generic."""
        tainted: set = set()
        for op in walk_ops(fn.body):
            if isinstance(op, If):
                for r, a, b in zip(op.results, op.then.results, op.orelse.results):
                    if self.kind(a) is None or self.kind(a) != self.kind(b):
                        tainted.add(r)
                        self._may_be(r, a, b)
            elif isinstance(op, While) or isinstance(op, For) and op.iter in data:
                # its trip count is the data's: maybe none, maybe more than observed. A
                # carried value whose kind a trip changes is forgotten, as the loop gives
                # it and as the body reads it (one trip observed saw it only as it came in)
                args = op.body.args[1:] if isinstance(op, For) else op.body.args
                for r, a, init, out in zip(op.results, args, op.inits, op.body.results):
                    if not self.kind(r) == self.kind(init) == self.kind(out):
                        tainted.add(r)
                        self._may_be(r, init, out)
                    if self.kind(init) != self.kind(out):
                        tainted.add(a)
                        self._may_be(a, init, out)
        tainted |= self._picks(fn, set(data) | self.decided)
        roots = set(tainted)
        changed = bool(tainted)
        while changed:  # loops feed values back: to a fixpoint
            changed = False
            for op in walk_ops(fn.body):
                new = [op.result] if isinstance(op, Call) and op.result not in tainted and \
                    any(o in tainted for o in op.operands) else []
                if isinstance(op, Call) and op.prim.style == "tape_push" and \
                        op.args[0] not in tainted and any(o in tainted for o in op.args[1:]):
                    new.append(op.args[0])  # a tape holds what is pushed: its pops too
                if isinstance(op, For) and op.iter in tainted and op.body.args[0] not in tainted:
                    new.append(op.body.args[0])  # the entries of a tape walked backwards
                new += [dst for dst, src in _merges(op) if src in tainted and dst not in tainted]
                tainted.update(new)
                changed |= bool(new)
        for v in tainted:
            k = self.kinds.get(v)
            if v not in roots and k is not None and k.type in _NUMBERS:
                # computed from a forgotten value, it is still a number, not a sequence
                # (what `*` of it does): a sequence on another call makes the op that
                # reads the forgotten value refuse
                self.mixed.setdefault(v, set()).add(k.type)
            if v in self.kinds:
                self.kinds[v] = UNKNOWN

    def _may_be(self, v: Value, *sources) -> None:
        """v, forgotten, is one of `sources`: when each was seen as a number, so is v."""
        kinds = [self.kind(o) for o in sources]
        if all(k is not None and k.type in _NUMBERS for k in kinds):
            self.mixed.setdefault(v, set()).update(k.type for k in kinds)

    def _picks(self, fn: Function, data: set) -> set:
        """Elements picked from a list, tuple or dict whose elements differ in kind, by
        an index the data decides (`(x * x, 0)[int(x[0] > 0)]`, d["a" if c else "b"]),
        or in a loop on the trips a data `if` let through (L[i] under `if x[i] > 0`):
        another call picks another element, of another kind. Likewise what an int of
        the loop sizes on those trips only (x[:i + 1])."""
        made = {op.result: op for op in walk_ops(fn.body) if isinstance(op, Call)}
        partial, varying = self._partly_run(fn.body)
        out = set()
        for op in made.values():
            some_trips = op in partial
            if some_trips and op.prim.fn in _SIZED_BY and any(
                    o in varying and _plain(self.kind(o)) for o in op.operands):
                out.add(op.result)
            if op.prim.fn is not operator.getitem or len(op.args) != 2:
                continue
            seq, index = op.args
            k = self.kind(seq)
            if not isinstance(index, Value) or k is None or k.type not in _SIZED_CONTAINERS:
                continue
            if index in data or some_trips and index in varying:
                src = made.get(seq)
                if not self._same_elements(src, k):
                    out.add(op.result)
                    if src is not None and src.prim.fn in (tuple_of, list_of, dict_of):
                        # the types it may be (a number, not a sequence: `v * x`
                        # multiplies), as a value seen with several kinds
                        self.mixed.setdefault(op.result, set()).update(
                            e.type for e in map(self.kind, src.args[src.prim.fn is dict_of:])
                            if e is not None)
        return out

    def _partly_run(self, body) -> tuple[set, set]:
        """(the calls inside a loop that ran on some of its trips only, the values made
        inside loops): a call under an `if` in a loop body, or in a loop under one,
        bound fewer times than the loop ran."""
        partial, varying = set(), set()

        def walk(block, trips, inside: bool, cut: bool) -> None:
            for op in block.ops:
                if inside:
                    varying.update(op.results)
                if isinstance(op, Call):
                    if cut or inside and self.counts.get(op.result, 0) < trips:
                        partial.add(op)
                    continue
                if isinstance(op, If):
                    for b in op.blocks:
                        walk(b, trips, inside, cut)
                    continue
                # a loop: its trips (the times its target or first carried value was
                # bound), and whether it ran on fewer of the outer loop's trips
                loop_trips = self.counts.get(op.body.args[0], 0) if op.body.args else 0
                ran = self.counts.get(op.results[0], 0) if op.results else trips
                for b in op.blocks:
                    varying.update(b.args)
                    walk(b, loop_trips, True, cut or inside and ran < trips)

        walk(body, 0, False, False)
        return partial, varying

    def _same_elements(self, op, k: Kind) -> bool:
        """Whether every element of a container has the same kind: one built in f from
        values seen with one kind, or a list or tuple of ints."""
        if k.dtype == "i":
            return True
        if op is None or op.prim.fn not in (tuple_of, list_of, dict_of):
            return False
        kinds = [self.kind(a) for a in op.args[op.prim.fn is dict_of:]]
        return None not in kinds and all(e == kinds[0] for e in kinds)

    def _data_int(self, op: Call, counts: set, tainted: set = frozenset()) -> bool:
        """Whether op gives an int (a bool, a str) the data decides: read from an
        array's values or a float (int(x[0]), np.argmax(x), x[0] > 0), computed from
        one, drawn at random, or read from a list or dict of the module's or a closure's,
        whose slots may change between calls (CFG["k"]: the key holds no slot's value)."""
        out = self.kinds.get(op.result)
        outside = any(_mutable_global(o) for o in op.operands)
        if out is None:
            return False
        if out.type in _SIZED_CONTAINERS + ("record", "other"):
            return outside  # CFG["sub"]: its slots are no facts either
        if not (_plain(out) or out.type == "ndarray" and out.dtype in ("i", "u")):
            return False
        if outside or _random(op.prim.fn):
            return True
        if op.prim.fn in _SHAPE_READERS:  # len(CFG["items"]) counts; len(x) is a fact
            return any(o in counts and (k := self.kind(o)) is not None and
                       k.type in _SIZED_CONTAINERS for o in op.operands)
        if op.prim.fn is isinstance:  # a type is in the key, but not one a path chose
            return any(o in counts or o in tainted for o in op.operands)
        return any(a in counts or a in tainted or k is not None and (
            k.type in ("float", "complex") or k.type == "ndarray")
            for a, k in ((a, self.kind(a)) for a in op.operands))

    def data_decides(self, cond) -> bool:
        """Whether the data decides an if's test (not the arguments' kinds and keyed
        values alone): another call with this code may take the other side."""
        return self._decided(cond, self.decided, set())

    def _decided(self, cond, counts: set, tainted: set) -> bool:
        """Whether the data decides the test of an if or a while: a count, a float's or
        an array's truth, or a value no run saw."""
        if not isinstance(cond, Value):
            return False
        k = self.kinds.get(cond)
        return cond in counts or cond in tainted or k is None or \
            k.type in ("float", "complex", "ndarray", "other")

    def _sized_by(self, op: Call, counts: set) -> bool:
        """Whether op makes a value whose size is one of `counts` (x[:k], range(k),
        np.zeros(k), [0.0] * k); an int that indexes (x[k]) leaves the shape as it is."""
        if not any(o in counts for o in op.operands):
            return False
        out = self.kinds.get(op.result)
        return op.prim.fn in _SIZED_BY or out is not None and out.type in ("list", "tuple") \
            and op.prim.fn not in _TUPLES

    def _data_shaped(self, op: Call) -> bool:
        if op.prim.fn in _DATA_SHAPED or (op.prim.fn is np.where and len(op.args) == 1):
            return True
        if op.prim.fn in (np.histogram, np.histogram_bin_edges):  # bins='auto': the data's
            bins = op.args[1] if len(op.args) > 1 else dict(op.kwargs).get("bins")
            return isinstance(bins, Const) and isinstance(bins.value, str) or \
                isinstance(bins, Value) and _plain(self.kinds.get(bins)) and \
                self.kinds[bins].type == "str"
        if op.prim.fn is operator.getitem:  # a boolean mask picks a data-dependent count
            index = op.args[1]
            parts = self.kind(index)
            if parts is not None and (parts.type == "ndarray" and parts.dtype == "b"):
                return True
            return isinstance(index, Const) and any(
                isinstance(p, np.ndarray) and p.dtype.kind == "b"
                for p in (index.value if isinstance(index.value, tuple) else (index.value,)))
        return False

    def infer(self, fn: Function) -> "Observed":
        """Fill in values no run reached (a branch not taken) from their operands:
        arithmetic on floats gives a float, on arrays the broadcast shape."""
        for op in walk_ops(fn.body):
            if isinstance(op, Call):
                if op.result not in self.kinds:
                    k = self._infer_call(op)
                    if k is not None:
                        self.kinds[op.result] = k
            elif isinstance(op, If):
                for r, a, b in zip(op.results, op.then.results, op.orelse.results):
                    if r not in self.kinds and self.kind(a) is not None and \
                            self.kind(a) == self.kind(b):
                        self.kinds[r] = self.kind(a)
        return self

    def _infer_call(self, op: Call):
        p = op.prim
        if p.name in _MATH_NOT_FLOAT:
            return None
        matmul = p.fn is operator.matmul  # infix like `*`, but a contraction, not a broadcast
        elementwise = (p.style in ("infix", "prefix") and p.precedence >= 10) or \
            p.name.startswith("math.") or p.name in ("abs", "float") or (
                elementwise_ufunc(p.fn) and p.fn.nout == 1 and p.fn.nin == len(op.args))
        if not elementwise or op.kwargs:
            return None
        kinds = [self.kind(a) for a in op.args]
        if any(k is None or k.type not in ("float", "int", "ndarray") or
               (k.type == "ndarray" and k.shape is None) for k in kinds):
            return None
        arrays = [k for k in kinds if k.type == "ndarray"]
        if matmul and len(arrays) != 2:
            return None
        if not arrays:
            return Kind("float", ()) if any(k.type == "float" for k in kinds) or \
                p.name.startswith("math.") or p.symbol == "/" else None
        if matmul:
            shape = matmul_shape(arrays[0].shape, arrays[1].shape)
        else:
            try:
                shape = np.broadcast_shapes(*(k.shape for k in arrays))
            except ValueError:
                shape = None
        if shape is None:
            return None
        if any(k.dtype == "c" for k in arrays):
            dtype = "c"
        elif any(k.dtype == "f" for k in arrays) or any(k.type == "float" for k in kinds):
            dtype = "f"
        else:
            dtype = None
        lib = next((k.lib for k in arrays if k.lib is not None), None)  # dask wins
        if matmul and shape == () and lib is None:  # vector @ vector is a NumPy scalar
            return {"f": Kind("float", ()), "c": Kind("complex", ())}.get(dtype)
        return Kind("ndarray", shape, dtype, lib)

    def kind(self, o) -> Kind | None:
        if isinstance(o, Value):
            return self.kinds.get(o)
        if isinstance(o, (Const, Global)):
            return kind_of(o.value)
        return None

    def shape(self, o):
        k = self.kind(o)
        # a value seen only as None (an untaken branch's export) has no shape to fold
        return k.shape if k is not None and k.type not in ("tuple", "list", "other",
                                                            "none") else None

    def ndim(self, o):
        s = self.shape(o)
        return len(s) if s is not None else None


# functions whose result's size depends on the values, not the shapes, of their inputs
_DATA_SHAPED = {np.nonzero, np.argwhere, np.flatnonzero, np.unique, np.extract, np.compress,
                np.trim_zeros, np.setdiff1d, np.intersect1d, np.union1d, np.setxor1d,
                np.roots}

_NUMBERS = ("float", "int", "bool", "complex", "ndarray")

# containers whose length an `if` or a loop may change
_SIZED_CONTAINERS = ("list", "tuple", "dict")


def _plain(k) -> bool:
    """An int, a bool or a str: a value code may fold (a size, an index, a key)."""
    return k is not None and k.type in ("int", "bool", "str")


def _mutable_global(o) -> bool:
    """A list, dict or set of the module's or a closure's: guarded by identity only, so
    what its slots hold may change between calls."""
    return isinstance(o, Global) and isinstance(o.value, (list, dict, set, bytearray))


def _random(fn) -> bool:
    """A draw from a random stream (np.random.randint, random.choice, rng.integers)."""
    owner = getattr(fn, "__self__", None)
    module = getattr(fn, "__module__", None) or type(owner).__module__ or ""
    return module.startswith(("numpy.random", "random")) or isinstance(
        owner, (np.random.Generator, np.random.RandomState, random.Random))


# calls that read an array's shape, not its values: an int they give is the signature's
_SHAPE_READERS = {np.shape, len, np.ndim, np.size}

# tuples built in f (an index, a shape): they hold an int the data decides, as the int
_TUPLES = (tuple_of, runtime.index_tuple)

# calls whose result's size is an int argument's value
_SIZED_BY = {slice, range, np.zeros, np.ones, np.empty, np.full, np.arange, np.linspace,
             np.eye, np.identity, np.tri, np.reshape, np.repeat, np.tile, np.broadcast_to,
             np.split, np.array_split, np.resize, np.pad, np.diag, np.diagflat}


def _merges(op) -> list:
    """(merged value, incoming value) pairs of a region op: an if's results, a loop's
    carried values."""
    if isinstance(op, If):
        return list(zip(op.results, op.then.results)) + list(zip(op.results, op.orelse.results))
    if isinstance(op, Call):
        return []
    args = op.body.args[1:] if isinstance(op, For) else op.body.args + op.cond.args
    results = op.body.results * (1 + isinstance(op, While))  # a while's test reads them too
    return (list(zip(args, op.inits * (1 + isinstance(op, While)))) +
            list(zip(args, results)) + list(zip(op.results, op.body.results)))


# math functions of a float that give an int or a bool
_MATH_NOT_FLOAT = {"math.floor", "math.ceil", "math.trunc", "math.isnan", "math.isinf",
                   "math.isfinite"}


def matmul_shape(a: tuple, b: tuple) -> tuple | None:
    """The shape of `A @ B` for arrays of shapes a and b (None where matmul raises): a
    1-d operand is a row (left) or a column (right) whose axis is then dropped, and the
    leading axes broadcast."""
    if not a or not b:
        return None
    a2 = a if len(a) > 1 else (1,) + a
    b2 = b if len(b) > 1 else b + (1,)
    if a2[-1] != b2[-2]:
        return None
    try:
        batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    except ValueError:
        return None
    return batch + (a2[-2],) * (len(a) > 1) + (b2[-1],) * (len(b) > 1)


class LazyUses:
    """The uses of a value that a lazy (dask) array cannot have without being computed:
    the test of an `if` or a `while`, float(), int(), bool(), math.*, np.asarray...
    Observing a call on dask arrays meets each value before its use: a lazy one is
    refused there, at the use's line, before anything computes it. A Python loop that
    reads a dask array element by element gets a warning: it builds one graph node per
    element, which is correct but slow."""

    def __init__(self, fn: Function) -> None:
        import math
        self.tests: dict[Value, object] = {}  # value -> the If or While it decides
        self.forced: dict[Value, Call] = {}  # value -> a call that would compute it
        self.made: dict[Value, Call] = {}
        self.in_loop: set = set()  # calls inside a loop's body
        self.iterated: dict[Value, For] = {}
        self.indexes: dict[Value, Call] = {}  # an index -> the x[index] it reads with
        # an argument of a NumPy function that dask answers with another result
        # (np.linalg.cholesky of a dask array is dask's, the upper factor)
        self.unlike: dict[Value, Call] = {}
        self.warned: set = set()
        # Python's max and min compare with `>`, whose truth computes a lazy value
        forcing = {float, int, bool, complex, max, min, sorted, np.asarray, np.array,
                   np.asanyarray}
        for op in walk_ops(fn.body):
            if isinstance(op, If) and isinstance(op.cond, Value):
                self.tests.setdefault(op.cond, op)
            elif isinstance(op, While) and op.cond.results and \
                    isinstance(op.cond.results[0], Value):
                self.tests.setdefault(op.cond.results[0], op)
            elif isinstance(op, For) and isinstance(op.iter, Value):
                self.iterated.setdefault(op.iter, op)
            if isinstance(op, (For, While)):
                self.in_loop.update(o for o in walk_ops(op.body) if isinstance(o, Call))
            if isinstance(op, Call):
                self.made[op.result] = op
                if op.prim.fn is operator.getitem and isinstance(op.args[1], Value):
                    self.indexes.setdefault(op.args[1], op)
                if op.prim.fn is np.linalg.cholesky and isinstance(op.args[0], Value):
                    self.unlike.setdefault(op.args[0], op)
                if op.prim.fn in forcing or op.prim.fn in vars(math).values() and \
                        callable(op.prim.fn) or op.prim.name.endswith((".item", ".tolist")):
                    for a in op.args:
                        if isinstance(a, Value):
                            self.forced.setdefault(a, op)

    def check(self, v: Value, k: Kind, facts: "Observed") -> None:
        from adjoint.errors import UnsupportedError
        hint = ("compute it first and pass the result (c = c.compute(), or "
                "dask.compute(...)); or keep it lazy: np.where(cond, a, b) instead of a branch")
        if k.shape is None:
            op = self.made.get(v)
            raise UnsupportedError(
                f"the shape of {_name(v, 'this value')} depends on the values of a dask array "
                "(a boolean mask, np.nonzero...), which a lazy array does not know until it "
                "is computed",
                op.loc if op is not None else None,
                "use np.where(mask, x, 0.0) to keep the shape, or compute the arrays first "
                "(x.compute_chunk_sizes() for unknown chunks)")
        if v in self.tests:
            op = self.tests[v]
            what = "an `if`" if isinstance(op, If) else "a `while` loop"
            raise UnsupportedError(
                f"{what} tests {_test_text(op) or _name(v, 'a lazy dask value', '')}"
                f"{', a lazy dask value' if _test_text(op) or _name(v, '') else ''}: "
                "deciding it would compute the array (the gradient is lazy, and computes "
                "nothing before it is asked)",
                op.loc, hint)
        if v in self.indexes and k.shape != () and k.dtype in ("i", "u"):
            raise UnsupportedError(
                f"{_name(v, 'a lazy dask array', ', a lazy dask array,')} indexes an array: "
                "its gradient adds at the positions it holds, which computes it (the "
                "gradient is lazy, and computes nothing before it is asked)",
                self.indexes[v].loc, "compute the index first: idx = idx.compute()")
        if v in self.unlike and k.shape != ():
            raise UnsupportedError(
                f"{self.unlike[v].prim.name} of a lazy dask array is dask's, which returns "
                "the upper factor where NumPy's returns the lower", self.unlike[v].loc,
                "compute the matrix first (a = a.compute()), or pass NumPy arrays")
        if v in self.forced:
            op = self.forced[v]
            raise UnsupportedError(
                f"{op.prim.name}() of {_name(v, 'a lazy dask value', ', a lazy dask value')} "
                "would compute it (the gradient is lazy, and computes nothing before it is "
                "asked)", op.loc, hint)
        op = self.iterated.get(v) or self.made.get(v)
        if v not in self.iterated:  # or a read in a loop that drops an axis: x[i], X[i]
            source = facts.kind(op.args[0]) if op is not None and op in self.in_loop and \
                op.prim.fn is operator.getitem else None
            if source is None or source.shape is None or len(k.shape) >= len(source.shape):
                return
        key = (op.loc.filename, op.loc.line) if op.loc is not None else op
        if key in self.warned:  # once a line
            return
        self.warned.add(key)
        import warnings
        array = v if v in self.iterated else op.args[0]
        message = (f"a Python loop reads the dask array {_name(array, 'here')} element "
                   "by element: each read is one more node in the task graph, so this is "
                   "correct but slow; write it with whole-array operations (np.sum, @, "
                   "slices of whole chunks)")
        if op.loc is None:
            warnings.warn(message, LazyLoopWarning, stacklevel=2)
        else:  # shown at the user's line, not at the compiler's
            warnings.warn_explicit(message, LazyLoopWarning, op.loc.filename, op.loc.line)


def _test_text(op) -> str | None:
    """`s > 0` for the line `if s > 0:` (the test as the user wrote it), else None."""
    text = op.loc.text.split("#")[0].strip() if op.loc is not None else ""
    for word in ("if ", "elif ", "while "):
        if text.startswith(word) and text.endswith(":"):
            return f"`{text[len(word):-1].strip()}`"
    return None


def _name(o, otherwise: str = "it", then: str = "") -> str:
    """`x` (and `then`) for a user's value; compiler temporaries (_t1) are not named."""
    name = getattr(o, "name", "_")
    return f"`{name}`{then}" if not name.startswith("_") else otherwise


class LazyLoopWarning(UserWarning):
    """A Python loop reads a dask array element by element."""


def refuse_handled(fn: Function, e: Exception, loc=None) -> None:
    """Observing raised `e` (or the generated code did, computing `loc`) inside a `try`
    whose handler catches it: f ran the handler on this call, which the gradient would
    not (it runs the body only)."""
    loc = loc or getattr(e, "adjoint_loc", None)
    caught = {c.__name__ for c in type(e).__mro__}
    for filename, first, last, names, where in fn.handlers:
        if loc is not None and loc.filename == filename and first <= loc.line <= last \
                and caught & names:
            raise UnsupportedError(
                f"on this call the `try` body raised {type(e).__name__} ({e}), which f's "
                f"handler catches; the gradient runs the body only, not the handler", where,
                "test the condition instead: v = d['k'] if 'k' in d else default, or "
                "hasattr(o, 'k')") from None


def observe(fn: Function, args) -> Observed:
    """Run `fn` on `args` once, recording every value. That run is one more than the
    caller made: the draws it takes from NumPy's and Python's global random streams are
    given back, so that compiling changes nothing the caller's program computes."""
    facts = Observed()
    args = [as_numpy(a) for a in args]  # array-API arrays: observed as NumPy copies
    run, lazy = fn, any(_lazy_arg(a) for a in args)
    if lazy:
        facts.lazy = LazyUses(fn)
        run = _on_dask(fn)
    _refuse_subclasses(fn, args)
    saved = np.random.get_state(), random.getstate()
    generators = _generators(fn, args)
    states = [_state(g) for g in generators]
    try:
        if lazy:
            import dask
            with dask.config.set(scheduler=_refuse_to_compute):
                out = interpret(run, observe=facts.record)(*args)
        else:
            try:  # loops observed until their kinds settle
                out = interpret(run, facts=facts)(*args)
            except Relearn:  # a block first ran after its loop settled: every trip
                facts = Observed()
                np.random.set_state(saved[0])
                random.setstate(saved[1])
                out = interpret(run, observe=facts.record)(*args)
        if len(fn.body.results) == 1:  # (its value's kind may be forgotten: a path's)
            facts.returned = kind_of(out)
    except _Subclass as e:  # made by a call in fn (np.asmatrix(x), np.ma.masked_less...)
        op = next((op for op in walk_ops(fn.body) if e.value in op.results or
                   any(e.value in b.args for b in op.blocks)), None)  # or a loop's target
        raise _subclass_error(f"`{e.value.name}`", e.array,
                              op.loc if op is not None else fn.loc) from None
    except Exception as e:
        refuse_handled(fn, e)
        raise
    finally:
        np.random.set_state(saved[0])
        random.setstate(saved[1])
        for g, state in zip(generators, states):
            _set_state(g, state)
    facts.lazy = None
    data = facts.forget_data_shapes(fn)
    facts.infer(fn)
    facts.forget_path_kinds(fn, data)
    return facts


_RNGS = (np.random.Generator, np.random.RandomState)


def _generators(fn: Function, args) -> list:
    """The random generators f is given (as arguments, or in a list, tuple or dict one
    holds) or reads as globals: observing draws from them too, and gives the draws back."""
    out = [a for a in args if isinstance(a, _RNGS)]
    out += [e for a in args if isinstance(a, (list, tuple, dict))
            for e in (a.values() if isinstance(a, dict) else a) if isinstance(e, _RNGS)]
    out += [o.value for op in walk_ops(fn.body) if isinstance(op, Call)
            for o in op.args if isinstance(o, Global) and isinstance(o.value, _RNGS)]
    return list({id(g): g for g in out}.values())


def _state(g):
    return g.bit_generator.state if isinstance(g, np.random.Generator) else g.get_state()


def _set_state(g, state) -> None:
    if isinstance(g, np.random.Generator):
        g.bit_generator.state = state
    else:
        g.set_state(state)


class _Subclass(Exception):
    def __init__(self, value: Value, array) -> None:
        self.value, self.array = value, array


def _is_subclass(x) -> bool:
    return isinstance(x, np.ndarray) and kind_of(x).type == "other"


def _subclass_error(what: str, x, loc):
    """A located refusal of an ndarray subclass: differentiating it as a plain array
    would give masked entries gradients and np.matrix's `*` the elementwise one."""
    from adjoint.errors import UnsupportedError
    name = type(x).__name__
    plain = what.strip("`")
    hint = (f"pass the data as a plain array and the mask apart: {plain}.filled(0.0), "
            f"or np.asarray({plain}) with np.where(mask, ...) in f"
            if isinstance(x, np.ma.MaskedArray) else
            f"pass np.asarray({plain}) and write @ for a matrix product"
            if isinstance(x, np.matrix) else f"pass np.asarray({plain})")
    return UnsupportedError(
        f"{what} is a {name}, a subclass of np.ndarray whose operations are its own "
        "(a masked array's np.sum skips masked entries, np.matrix's `*` is a matrix "
        "product); adjoint differentiates plain NumPy arrays", loc, hint)


def _refuse_subclasses(fn: Function, args) -> None:
    """An ndarray subclass as an argument (or inside a list, tuple or dict argument), or
    read from outside fn (a global, a closure cell), refused before fn runs on it."""
    def leaves(name, a):
        if isinstance(a, (list, tuple)):
            for k, e in enumerate(a):
                yield from leaves(f"{name}[{k}]", e)
        elif isinstance(a, dict):
            for k, e in a.items():
                yield from leaves(f"{name}[{k!r}]", e)
        else:
            yield name, a

    for name, a in zip(fn.param_names, args):
        for where, x in leaves(name, a):
            if _is_subclass(x):
                raise _subclass_error(f"`{where}`", x, fn.loc)
    for op in walk_ops(fn.body):
        for o in op.operands:
            if isinstance(o, (Global, Const)):
                for where, x in leaves(getattr(o, "name", "a constant"), o.value):
                    if _is_subclass(x):
                        raise _subclass_error(f"`{where}`", x, op.loc)


class _WouldCompute(Exception):
    pass


def _refuse_to_compute(*args, **kwargs):
    """The dask scheduler while observing: nothing is computed to compile a gradient."""
    raise _WouldCompute


def _on_dask(fn: Function) -> Function:
    """`fn` as it is run on dask arrays to observe it: the same values (what is observed
    describes `fn`), each call refused at its line where dask would compute, fail or
    read an argument otherwise than NumPy.

    Lowering reads `x.copy()` as np.copy(x), which dask does not implement (NumPy's
    would compute the array): it runs as x.copy(), what the user wrote."""
    from dataclasses import replace

    from adjoint import runtime
    from adjoint.ir.core import Block, map_blocks
    from adjoint.rules.registry import prim_of

    def block(b: Block) -> Block:
        ops = []
        for op in b.ops:
            if isinstance(op, Call):
                prim = prim_of(runtime.private) if op.prim.fn is np.copy and \
                    len(op.args) == 1 and not op.kwargs else op.prim
                ops.append(replace(op, prim=replace(prim, fn=_guarded(prim.fn, op))))
            else:
                ops.append(map_blocks(op, block))
        return replace(b, ops=tuple(ops))

    return replace(fn, body=block(fn.body))


def _guarded(fn, op: Call):
    from adjoint.errors import AdjointError, UnsupportedError
    name = op.prim.name

    def call(*args, **kwargs):
        lazy = any(array_library(a) == "dask" for a in list(args) + list(kwargs.values()))
        if lazy and fn is np.reshape and (len(args) > 2 or kwargs.get("order", "C") != "C"):
            # dask's reshape has no order: it would read 'F' as another argument
            raise UnsupportedError(f"{name}(..., order=...) of a dask array: dask reshapes "
                                   "in C order only", op.loc,
                                   "reshape in C order (np.moveaxis or .T first), or "
                                   "compute the array first")
        try:
            if not lazy:
                return fn(*args, **kwargs)
            import warnings
            with warnings.catch_warnings():  # refused below, with the reason and the line
                warnings.filterwarnings("ignore", "The `.*` function is not implemented by "
                                        "Dask", FutureWarning)
                return fn(*args, **kwargs)
        except _WouldCompute:
            raise UnsupportedError(
                f"{name}() of a dask array would compute it (dask does not implement it "
                "lazily), and the gradient computes nothing before it is asked", op.loc,
                "compute the array first (x.compute()) and pass NumPy arrays, or write it "
                "with functions dask implements") from None
        except AdjointError:
            raise
        except Exception as e:
            if not lazy:
                raise
            raise UnsupportedError(f"{name}() of a dask array failed in dask: "
                                   f"{type(e).__name__}: {str(e).strip().splitlines()[0]}",
                                   op.loc, "rechunk it as dask asks, or compute it first "
                                   "(x.compute()) and pass NumPy arrays") from e

    return call


def _lazy_arg(a) -> bool:
    if isinstance(a, (list, tuple)):
        return any(_lazy_arg(e) for e in a)
    if isinstance(a, dict):
        return any(_lazy_arg(e) for e in a.values())
    return array_library(a) == "dask"


def generic() -> Observed:
    """No example arguments: every value of unknown kind."""
    return Observed()
