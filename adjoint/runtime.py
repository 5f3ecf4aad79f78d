"""The few helpers that generated code imports.

Each is a primitive with its own derivative rules (in `adjoint.rules`), so code
that calls them can be differentiated again. They are written plainly so that
the standalone option can paste them into a generated file.
"""
from __future__ import annotations

import numpy as np


def unbroadcast(g, x):
    """Sum `g` down to the shape of `x`: the reverse of NumPy broadcasting."""
    try:
        shape = np.shape(x)
    except ValueError:  # a ragged entry of a list, (h, c): NumPy cannot have broadcast it
        return g
    if np.shape(g) == shape:
        return g
    lead = np.ndim(g) - len(shape)
    if lead < 0:  # x has leading 1s that the write dropped (`H[t] = h`, h of shape (1, d))
        wide = (1,) * -lead + np.shape(g)  # (the method: dask's reshape takes no order=)
        g, lead = g.reshape(wide) if hasattr(g, "reshape") else np.reshape(g, wide), 0
    axes = tuple(range(lead)) + tuple(
        i + lead for i, n in enumerate(shape) if n == 1 and np.shape(g)[i + lead] != 1)
    total = np.sum(g, axis=axes, keepdims=True) if axes else g
    total = np.reshape(total, np.shape(total)[lead:]) if lead else total
    if not shape and isinstance(x, float) and isinstance(total, (np.ndarray, np.generic)):
        return float(total)
    return total if shape else total.reshape(())  # a lazy (dask) sum stays lazy


def sum_to(g, shape):
    """Like `unbroadcast`, for a target given by its shape."""
    return unbroadcast(g, np.empty(shape) if shape else 0.0)


def expand_to(g, x, axis=None, keepdims=False):
    """Broadcast the cotangent of a reduction of `x` back to the shape of `x`."""
    if type(g) in (int, float) and hasattr(x, "dtype"):
        # the seed out_bar=1.0: a Python number takes x's precision (a float32 x keeps
        # a float32 gradient), as it would in an expression with x
        g = np.asarray(g, dtype=np.result_type(g, x.dtype))
    if axis is not None and not keepdims:
        g = np.expand_dims(g, axis)
    return np.broadcast_to(g, np.shape(x))


def setitem(x, index, value):
    """`x[index] = value`, as a value: the IR's view of an in-place write.

    Generated code writes in place instead; this copying form serves the
    reference interpreter and generic fallbacks.
    """
    if isinstance(x, (list, dict)):  # a list stays a list (a namedtuple's cotangent too)
        x = x.copy() if isinstance(x, dict) else type(x)(x)
    elif hasattr(x, "__array_function__") and not isinstance(x, np.ndarray):
        x = x.copy()  # a lazy (dask) array: np.array would compute it
    elif hasattr(value, "__array_function__") and not isinstance(value, np.ndarray):
        # a NumPy array cannot hold a dask value uncomputed: a lazy copy, of x's dtype
        x = np.zeros_like(value, shape=np.shape(x), dtype=np.asarray(x).dtype) + x
    else:
        x = np.array(x, copy=True)
    x[index] = value
    return x


def entry_cotangents(g, index, zero):
    """The cotangent `g` of a list whose entry at `index` is overwritten, in a form that
    takes `zero`, a zero of the entry it held before: `g` itself, unless `g` is stacked
    (one array, where the list's entries share a shape) and the old entry had another
    shape (`L[k] = x[:n]`, n growing; a float accumulator that becomes an array). A row of
    the new shape would broadcast the old entry's cotangent into it; the list's
    cotangent becomes one array per entry instead."""
    if isinstance(g, (list, dict)) or np.shape(g[index]) == np.shape(zero):
        return g
    return Cotangents(list(g.copy()))


def append(xs, value):
    """`xs.append(value)`, as a value (generated code appends in place)."""
    return list(xs) + [value]


def save(x, index):
    """`x[index]` as an independent value: a slice of an array is copied, not viewed,
    so a later write into `x` cannot change it."""
    if isinstance(x, dict) and index not in x:
        return None  # a new key: nothing is overwritten
    if type(x) in (float, int, complex) and (index is Ellipsis or index == ()):
        # a 0-d array's cotangent computed as a Python number (out_bar * x, x a float):
        # z[()] and z[...] are its one entry, which a number cannot be indexed for
        return x
    v = x[index]
    return v.copy() if isinstance(v, np.ndarray) else v


def written(g, index):
    """The cotangent of the values that `x[index] = value` wrote: `save(g, index)`, except
    that a position a fancy index repeats passes its cotangent to the last write only.
    NumPy keeps the last of repeated writes; the earlier ones never reach the output."""
    v = save(g, index)
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, list) or (isinstance(p, np.ndarray) and p.dtype.kind in "iu")
           for p in parts):
        # the size from the shape: np.size of a dask array computes it
        order = np.arange(int(np.prod(np.shape(v)))).reshape(np.shape(v))
        last = np.empty(np.shape(g), dtype=np.intp)
        last[index] = order  # each position ends up holding the number of its last write
        v = np.where(last[index] == order, v, 0.0)
    return v


def concat(a, b):
    """`a + b` of two lists or two tuples: a longer sequence, not a sum. (Their
    derivatives may be stacked into arrays, which are joined, not added.)"""
    if hasattr(a, "__array_function__") or hasattr(b, "__array_function__"):  # arrays
        return np.concatenate((a, b))
    if isinstance(a, tuple) and hasattr(a, "_fields"):  # a namedtuple + a tuple: a tuple,
        return tuple(a) + tuple(b)  # as in Python (it was rebuilt with b in a's first field)
    return a + b if type(a) is type(b) else type(a)(list(a) + list(b))


def repeat(xs, n):
    """`xs * n` of a list or a tuple and an int: `xs` n times over."""
    return np.concatenate((xs,) * n) if hasattr(xs, "__array_function__") else xs * n


def unrepeat(copies, k):
    """The cotangent of `xs` from that of `xs * n` (len(xs) == k): the copies summed."""
    total = copies[:k]
    for start in range(k, len(copies), k):
        total = accum(total, copies[start:start + k])
    return total


def ones_at_zeros(x):
    """`x` with each exact zero replaced by one, so that dividing by it is safe."""
    return np.where(x == 0.0, 1.0, x)


def abs_slope(x):
    """np.sign(x): the slope of abs, 0 at the kink x = 0 (the mean of -1 and 1). A
    primitive of its own, whose derivative is refused at that point: no slope there
    makes every second derivative right (abs(x) ** 2 needs a slope of +-1 at 0, a
    softplus written as max(x, 0) + log1p(exp(-abs(x))) needs 0 for its first one)."""
    return np.sign(x)


def larger_share(x1, x2):
    """The share of x1 in the slope of np.maximum(x1, x2): 1 where it is larger, 1/2 on a
    tie. A primitive of its own, for the reason abs_slope is: its derivative is refused
    on a tie, where no share makes every second derivative right."""
    return (x1 > x2) + 0.5 * (x1 == x2)


def tie_weights(w, x, tied):
    """`w`: a value that only the order of the entries of x fixes (how many tie for a
    max reduction's result, a quantile's weights), ties sharing evenly. A primitive of its own,
    for the reason larger_share is: its derivative in x is 0 but refused where `tied`
    holds (a tie that the sharing decided), where no share makes every second
    derivative right (np.max(np.array([x, -x])) ** 2 is x ** 2)."""
    return w


def size_of(x) -> int:
    """np.size(x), read from its shape: np.size of a dask array computes the array."""
    shape = getattr(x, "shape", None)
    return int(np.prod(shape)) if shape is not None else np.size(x)


_TINY = 1.0 / np.finfo(np.float64).max  # below it in magnitude, 1 / x overflows to inf


def zero_to_zero(x, y):
    """Where `x ** y` is `0 ** 0`, or `x ** 0` for an x so small (subnormal) that
    `x ** -1` overflows. There the power rule's slope `y * x ** (y - 1)` is 0 * inf; the
    rules move the exponent to 1 at these points only, so the slope is 0 (the derivative
    of the constant 1). Moving it wherever y == 0 would also be 0, but the slope's
    derivative with respect to y would then be x, not 1 / x. An int exponent has no
    derivative, so for it the move is made wherever y == 0: the slope's own derivative
    `y * (y - 1) * x ** (y - 2)` (an hvp of `x ** n` at n = 0) is then 0 for every x, not
    0 * inf where x ** -2 overflows (|x| < 1e-154)."""
    whole = isinstance(y, (bool, int, np.integer)) or \
        getattr(getattr(y, "dtype", None), "kind", "f") in "biu"
    return (whole | (np.abs(x) < _TINY)) & (y == 0)


def private(x):
    """A copy of a list or an array that the caller may then write in place."""
    return x.copy() if hasattr(x, "copy") else x


def private_entries(x):
    """A copy of a cotangent that the caller adds into entry by entry in place (`c[k] +=
    g`): a list's or dict's entries are copied too. A copy of the container alone shares
    its arrays, so the add reached the original (and every other copy of it: the tangents
    of one zero cotangent at third order, round 24's F2)."""
    c = private(x)
    keys = list(c) if isinstance(c, dict) else range(len(c)) if isinstance(c, list) else ()
    for k in keys:
        c[k] = private(c[k])
    return c


def zero_outside(cond, c, keep=True):
    """`c` where `cond` is `keep`, zero elsewhere, when `c` has `cond`'s shape; `c` itself
    when it has not. The cotangent of an np.where branch is zero where the branch was not
    taken, and stays so through the elementwise rules that compute it, but their factors
    may be inf there (1 / sqrt(x) at 0): masking again keeps 0 * inf = NaN out. Generic
    code learns the shapes as it runs: a `c` of another shape sums over cond's entries
    (a broadcast operand), where a mask entry by entry does not hold."""
    if np.shape(c) != np.shape(cond):
        return c
    out = np.where(cond, c, 0.0) if keep else np.where(cond, 0.0, c)
    return out[()] if out.ndim == 0 else out


def combinations(n, r):
    """The positions itertools.combinations yields from a sequence of length `n`."""
    import itertools
    return list(itertools.combinations(range(n), r))


def permutations(n, r):
    """The positions itertools.permutations yields from a sequence of length `n`."""
    import itertools
    return list(itertools.permutations(range(n), r))


def combinations_with_replacement(n, r):
    """The positions itertools.combinations_with_replacement yields from a sequence of
    length `n`."""
    import itertools
    return list(itertools.combinations_with_replacement(range(n), r))


def element(x, index):
    """`x[index]` where the compiler knows it is one element: a number, not a view."""
    return x[index]


def add_at(x, index, value):
    """`x` with `value` added at `index`, duplicates accumulating (np.add.at); a dict's
    or a list's entry (the walk of a value whose kind was not observed: sequence(xs))."""
    if isinstance(x, (dict, list)):
        x = type(x)(x) if not isinstance(x, dict) else x.copy()
        x[index] = accum(x[index], value)
        return x
    if any(hasattr(a, "__array_function__") and not isinstance(a, np.ndarray)
           for a in (x, value)):
        return lazy_add_at(x, index, value)  # np.add.at would compute a dask array
    x = np.array(x, copy=True)
    if isinstance(index, slice) and not len(range(*index.indices(len(x)))):
        return x  # the slice of no elements adds nothing (P[i + 1:] on the last trip)
    np.add.at(x, index, value)
    return x


def percent_format(template, values):
    """`template % values`, Python's %-formatting of a str (no arithmetic: no derivative)."""
    return template % values


def add_slice(x, index, value):
    """`x[index] += value` as a new value, where `x` is a list's cotangent and `value`
    the cotangent of its slice `x[index]`: each is one stacked array or, when the list
    is ragged, one entry per element (Cotangents). The slice of no elements adds nothing:
    an empty list's cotangent has no element shape to broadcast."""
    positions = range(len(x))[index]
    if not positions:
        return private(x)
    if not isinstance(x, (list, tuple)) and not isinstance(value, (list, tuple)):
        x = private(x)
        x[index] += value
        return x
    out = Cotangents(private(e) for e in x)
    for i, v in zip(positions, value, strict=True):
        out[i] = accum(out[i], v)
    return out


def add_into(x, index, value):
    """`np.add.at(x, index, value)` where x's kind is not known: a dict's or a list's
    entry gets `value` added (generic code over a dict parameter, `for k in d`). The
    slice of no elements adds nothing (`P[i + 1:]` on the last trip): its cotangent has
    no element shape to broadcast."""
    if isinstance(index, slice) and not isinstance(x, dict) and not range(len(x))[index]:
        return
    if isinstance(x, (dict, list)):
        x[index] = accum(x[index], value)
    else:
        np.add.at(x, index, value)


def unsequence(g, xs):
    """xs's cotangent from that of what `for v in xs` walked by position (structure's
    `sequence`): `g` itself, but a dict's walk reads its keys, which carry none, and an
    empty walk adds nothing (L[2:] of two entries: its zero has no entry shape)."""
    return 0.0 if isinstance(xs, dict) or isinstance(xs, (list, tuple)) and not xs else g


def stacked(xs):
    """np.array(xs), in code made for lazy (dask) arrays: a list of them is stacked
    lazily (np.array would compute each one), and a dask array is kept as it is."""
    if isinstance(xs, (list, tuple)) and any(not isinstance(e, (np.ndarray, np.generic))
                                             and hasattr(e, "__array_function__")
                                             for e in xs):
        return np.stack(xs)
    return np.array(xs) if isinstance(xs, (list, tuple, np.ndarray)) else xs


def lazy_broadcast_to(x, shape):
    """np.broadcast_to, in code made for dask arrays: a NumPy value broadcast to the
    data's shape (the cotangent of a mean) would go into the task graph as a whole array
    (sending a broadcast view copies it: 8 MB a million rows); dask's is one small task."""
    if hasattr(x, "__array_function__") and not isinstance(x, np.ndarray) or \
            np.size(x) == int(np.prod(shape)):
        return np.broadcast_to(x, shape)
    import dask.array as da  # code made for dask arrays runs where dask is installed
    return da.broadcast_to(x, shape)


def lazy_setitem(x, index, value, add=False):
    """`x[index] = value` (or `+=`, with add: a basic index) as a new array, in code made
    for lazy (dask) arrays, which writes nothing in place: NumPy's `+=` with a dask
    operand, or np.array(x, copy=True), would compute it. A dask array is copied as a
    graph node; a NumPy array is made lazy like `value` (it cannot hold it uncomputed)."""
    if isinstance(x, (list, dict)):  # (a namedtuple's cotangent: by field, copied as one)
        x = x.copy() if isinstance(x, dict) else type(x)(x)
    elif hasattr(x, "__array_function__") and not isinstance(x, np.ndarray):
        x = x.copy()
        index, value = _lazy_write(x, index, value)
    else:  # of x's dtype: a float written into an int array is truncated, as in NumPy
        x = np.zeros_like(value, shape=np.shape(x), dtype=np.asarray(x).dtype) + x
    # `x[index] + value`, not `+=`: an entry of a dict or list may be a NumPy array, and
    # NumPy's += of a dask value computes it
    x[index] = x[index] + value if add else value
    return x


def _lazy_write(x, index, value):
    """dask's write fails on an int index beside a reversed slice (`a[0, ::-1] = v`, also
    through `...`): the int as a slice of one, and the value shaped to it."""
    parts = _without_ellipsis(index, x.ndim)
    parts = parts if isinstance(parts, tuple) else (parts,)
    if not (any(isinstance(p, slice) and (p.step or 1) < 0 for p in parts) and
            any(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in parts)):
        return index, value
    wanted = x[index].shape
    parts = tuple(slice(p, p + 1 or None) if isinstance(p, (int, np.integer)) and
                  not isinstance(p, bool) else p for p in parts)
    return parts, np.reshape(np.broadcast_to(value, wanted), x[parts].shape)


def _without_ellipsis(index, ndim: int):
    """`index` with its `...` spelt out as the full slices it stands for."""
    parts = index if isinstance(index, tuple) else (index,)
    if not any(p is Ellipsis for p in parts):
        return index
    k = next(i for i, p in enumerate(parts) if p is Ellipsis)
    named = sum(np.ndim(p) if getattr(p, "dtype", None) == bool else 1
                for p in parts if p is not None and p is not Ellipsis)
    return parts[:k] + (slice(None),) * (ndim - named) + parts[k + 1:]


def lazy_add_at(x, index, value):
    """np.add.at(x, index, value) as a new value, for lazy arrays, which have no ufunc.at.
    For an index of full slices and one 1-d integer array (or mask): the values of each
    repeated position are summed first (a product with a 0/1 matrix of the k indices by
    their distinct positions), then added where they go, once each."""
    lazy = hasattr(x, "__array_function__") and not isinstance(x, np.ndarray)
    parts = index if isinstance(index, tuple) else (index,)
    arrays = [k for k, p in enumerate(parts) if not isinstance(p, (slice, int, np.integer))
              and p is not None]
    if not arrays:  # a basic index repeats no position
        x = x.copy() if lazy else np.zeros_like(value, shape=np.shape(x), dtype=x.dtype) + x
        x[index] = x[index] + value
        return x
    picked = np.asarray(parts[arrays[0]]) if len(arrays) == 1 else None
    if picked is None or np.ndim(picked) != 1 or picked.dtype.kind not in "iub" or \
            any(p != slice(None) for p in parts if not isinstance(p, np.ndarray) and
                not isinstance(p, list)):
        raise NotImplementedError(
            f"np.add.at with the index {index!r} is not supported on lazy arrays; index with "
            "one 1-d integer array (and full slices), or compute the arrays first")
    axis = arrays[0]
    n = np.shape(x)[axis]
    idx = np.flatnonzero(picked) if picked.dtype.kind == "b" else picked % n
    where, which = np.unique(idx, return_inverse=True)
    scatter = np.zeros((where.size, idx.size))  # k x k at most: the data's size never
    scatter[which.ravel(), np.arange(idx.size)] = 1.0
    shape = np.shape(x)[:axis] + (idx.size,) + np.shape(x)[axis + 1:]
    summed = np.tensordot(scatter, np.moveaxis(np.broadcast_to(value, shape), axis, 0), axes=1)
    at = parts[:axis] + (where,) + parts[axis + 1:]
    x = x.copy() if lazy else np.zeros_like(summed, shape=np.shape(x), dtype=x.dtype) + x
    x[at] = x[at] + np.moveaxis(summed, 0, axis)
    return x


def accum(a, b):
    """`a + b` for cotangents whose kind is not known to be a number or an array:
    lists and tuples add element by element (Python's `+` would concatenate them). None
    is the cotangent of a slot with no derivative (a key in `list(p.items())`, a str
    setting): a zero."""
    if a is None or b is None:
        return b if a is None else a
    if isinstance(a, FieldCotangents) or isinstance(b, FieldCotangents):
        return a + b  # a namedtuple's, by field; the other may come by position
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a)(accum(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):  # a key missing on one side is a zero
        return {k: accum(a[k], b[k]) if k in a and k in b else a.get(k, b.get(k))
                for k in {**a, **b}}
    if isinstance(a, (list, tuple)):
        return np.asarray(a) + b
    if isinstance(b, (list, tuple)):
        return a + np.asarray(b)
    if isinstance(a, dict) or isinstance(b, dict):  # a zero (0.0) on one side
        zero = b if isinstance(a, dict) else a
        if not (np.ndim(zero) == 0 and zero == 0):
            raise TypeError(f"cannot add a dict's cotangent and {type(zero).__name__}")
        return CotangentDict(a if isinstance(a, dict) else b)
    return a + b


def alias(x):
    """`x` under another name (the generated code says `b_bar = z_bar`)."""
    return x


class Cotangents(list):
    """The cotangent of a ragged sequence, one per element: `+` and `+=` add element by
    element, where a plain list would concatenate (`layers_bar[k] += W_b_bar`)."""

    def __add__(self, other):
        return Cotangents(accum(a, b) for a, b in zip(self, other))

    __radd__ = __add__

    def __iadd__(self, other):
        for i, b in enumerate(other):
            self[i] = accum(self[i], b)
        return self

    def __getitem__(self, k):  # a slice is a cotangent too: its `+=` adds, not extends
        got = super().__getitem__(k)
        return Cotangents(got) if isinstance(k, slice) else got

    def copy(self):  # entries included: the copy's `c[i] += g` leaves this one as it is
        return Cotangents(private(e) for e in self)


class CotangentDict(dict):
    """The cotangent of a dict, by key: `+` and `+=` add entry by entry (a dict held in
    a tuple or list: `p_bar[1] += extra_bar`)."""

    def __add__(self, other):
        return CotangentDict(accum(self, other))

    __radd__ = __add__

    def __iadd__(self, other):
        for k, b in other.items():
            self[k] = accum(self[k], b) if k in self else b
        return self

    def copy(self):  # entries included: the copy's `c[k] += g` leaves this one as it is
        return CotangentDict((k, private(v)) for k, v in self.items())


class FieldCotangents(CotangentDict):
    """The cotangent of a namedtuple, by field: `layer_bar['W']` and `layer_bar[0]` are
    one entry (the code reads a namedtuple's fields by name and by position)."""

    def __init__(self, names, values):
        super().__init__(zip(names, values))
        self.names = tuple(names)

    __array_ufunc__ = None  # array + this: NumPy defers to __radd__ below

    def _key(self, k):
        return self.names[k] if isinstance(k, (int, np.integer)) else k

    def __getitem__(self, k):
        if isinstance(k, slice):  # p[:1]'s cotangent, by position
            return Cotangents(self[n] for n in self.names[k])
        return super().__getitem__(self._key(k))

    def __setitem__(self, k, v):
        if isinstance(k, slice):
            for n, e in zip(self.names[k], v):
                super().__setitem__(n, e)
        else:
            super().__setitem__(self._key(k), v)

    def _named(self, other):
        """`other` by field: the cotangent of the namedtuple used as a sequence (np.stack(p),
        np.sum(p), p[:1]) comes by position, an array or a list."""
        return other if isinstance(other, dict) else by_field(other, self)

    def __add__(self, other):
        other = self._named(other)
        return FieldCotangents(self.names, [accum(self[n], other.get(n)) for n in self.names])

    __radd__ = __add__

    def __iadd__(self, other):
        return CotangentDict.__iadd__(self, self._named(other))

    def copy(self):  # entries included, as CotangentDict's
        return FieldCotangents(self.names, [private(v) for v in self.values()])


def by_field(g, like):
    """`g`, the cotangent of the namedtuple `like`, by field: it comes by position (an
    array or a list) where f used the namedtuple as a sequence (np.stack(p), p[:1])."""
    names = like.names if isinstance(like, FieldCotangents) else \
        getattr(type(like), "_fields", None)
    if isinstance(g, dict) or names is None:
        return g
    if len(g) != len(names):  # never zip it short
        raise ValueError(f"a cotangent of {len(g)} entries for a namedtuple of {len(names)}")
    return FieldCotangents(names, list(g))


def zeros_like(x):
    """A zero of `x`'s shape and kind: 0.0 for a float, an array for an array."""
    if isinstance(x, (float, int)) and not isinstance(x, bool):
        return 0.0
    if x is None or isinstance(x, (str, bytes)):  # a setting ({'act': 'tanh'}): no gradient
        return None
    if isinstance(x, dict):  # parameters by name: a zero per entry
        return CotangentDict((k, zeros_like(v)) for k, v in x.items())
    if hasattr(x, "_fields"):  # a namedtuple: by field
        return FieldCotangents(x._fields, [zeros_like(v) for v in x])
    if hasattr(type(x), "__dataclass_fields__"):  # a dataclass: a zero per field
        return CotangentDict((f, zeros_like(v) if _may_carry(v) else None)
                             for f, v in ((f, getattr(x, f))
                                          for f in type(x).__dataclass_fields__))
    if isinstance(x, (list, tuple)):  # the adjoint of a sequence: stacked if it can be
        if any(hasattr(e, "__array_function__") and not isinstance(e, np.ndarray)
               for e in x):  # dask arrays: np.shape would compute them
            zeros = [zeros_like(e) for e in x]
            if len({np.shape(z) for z in zeros}) == 1:
                return np.stack(zeros)
            return Cotangents(zeros)
        try:
            if any(isinstance(e, (dict, list, tuple)) or hasattr(type(e), "__dataclass_fields__")
                   or e is None for e in x):  # a list of dicts (layers), an optional entry
                raise ValueError  # (None): one zero per element
            complex_ = any(np.iscomplexobj(e) for e in x)  # [x * 1j, x]: one complex zero
            return np.zeros(np.shape(x), dtype=complex if complex_ else float)
        except ValueError:  # ragged: one zero per element
            return Cotangents(zeros_like(e) for e in x)
    # 0.0, a Python float, keeps float32 float32 (NumPy 2's weak scalars); an int is float64
    if isinstance(x, np.ndarray) or not hasattr(x, "__array_function__"):
        return np.zeros(np.shape(x), dtype=np.result_type(x, 0.0))
    return np.zeros_like(x, dtype=np.result_type(x.dtype, 0.0))  # lazy, chunked like x


def _may_carry(v) -> bool:
    """Whether a dataclass's field may hold a gradient: a number (not a bool), an array
    (a dask array too), or a container or record of them; not a name, a flag or a
    function."""
    return isinstance(v, (float, int, np.number, np.ndarray, list, tuple, dict)) and \
        not isinstance(v, bool) or hasattr(v, "__array_function__") or \
        hasattr(type(v), "__dataclass_fields__")


def zeros_tangent(x):
    """A zero tangent for `x`: 0.0 for a number, float zeros for an array, and the same
    structure for a list, tuple or dict (so a tangent list can be appended to)."""
    if hasattr(x, "_fields"):  # a namedtuple
        return rebuilt(x, [zeros_tangent(e) for e in x])
    if isinstance(x, (list, tuple)):
        return type(x)(zeros_tangent(e) for e in x)
    if isinstance(x, FieldCotangents):  # the tangent of a cotangent (hvp)
        return FieldCotangents(x.names, [zeros_tangent(v) for v in x.values()])
    if isinstance(x, dict):
        return CotangentDict((k, zeros_tangent(v)) for k, v in x.items())
    if hasattr(type(x), "__dataclass_fields__"):  # the same class, a zero per field
        return rebuilt(x, {f: zeros_tangent(getattr(x, f)) for f in type(x).__dataclass_fields__})
    if isinstance(x, np.ndarray):
        return np.zeros(x.shape, dtype=np.result_type(x, float))
    if hasattr(x, "__array_function__"):  # a dask array: a lazy zero, chunked like it
        return np.zeros_like(x, dtype=np.result_type(x.dtype, float))
    if x is None:
        return None
    return 0.0


def stop_gradient(x):
    """`x`, seen by the differentiator as a constant."""
    return x


def rebuilt(x, values):
    """An object of x's class holding `values` (a namedtuple's in field order, a
    dataclass's by field name) in place of x's, made without calling the class: its
    __new__, __init__ or __post_init__ (a normalisation, an abs) would run on a
    gradient or a tangent, which is no instance the user made."""
    if hasattr(x, "_fields"):
        return tuple.__new__(type(x), values)
    import copy
    out = copy.copy(x)
    for name, v in values.items():
        object.__setattr__(out, name, v)  # (a frozen dataclass's too)
    return out


def fresh_tapes(x):
    """A copy of the lists (tapes) and dicts (a checkpoint plan's snapshots) inside `x`,
    so a pullback can pop and free them again."""
    if isinstance(x, list):
        return [fresh_tapes(e) for e in x]
    if type(x) is dict:
        return {k: fresh_tapes(e) for k, e in x.items()}
    if isinstance(x, tuple):
        items = [fresh_tapes(e) for e in x]
        return rebuilt(x, items) if hasattr(x, "_fields") else tuple(items)  # a namedtuple
    return x


class checkpoint_plan:
    """The binomial checkpointing schedule (Griewank and Walther's "revolve") of a loop
    of `n` steps that holds at most `snapshots` states at once, its initial state
    included. It keeps O(snapshots) numbers, never a list of the O(n) actions:

    `stored` names the steps whose input state the forward sweep keeps (the chain of
    first splits, and the state before the last step: at most snapshots + 1), and
    `actions()` (or a loop over the plan) yields the backward sweep's actions one by
    one, as (what, i, j):

        ("advance", i, j)   run steps i .. j - 1 from the state in hand (recomputation)
        ("store", i, 0)     keep the state in hand as the snapshot of step i
        ("restore", i, 0)   take the state of step i back from its snapshot
        ("free", i, 0)      drop the snapshot of step i
        ("reverse", i, 0)   run step i forward and backward (its adjoint)

    With beta(s, t) = C(s + t, s): if beta(s + 1, t - 1) < l <= beta(s + 1, t), then
    reversing l steps, the state at the start kept and s more slots free, takes at
    least cost(l, s) = t * l - beta(s + 2, t - 1) forward steps, and this schedule
    takes that many: each range is split where the rest costs least.
    """

    def __init__(self, n, snapshots):
        if snapshots < 1:
            raise ValueError("checkpointing needs at least one snapshot")
        self.n, self.snapshots = n, snapshots
        stored = {0, n - 1} if n else set()
        start, s = 0, snapshots - 1  # the schedule's first moves, up to its first reversal
        while n - start > 1 and s > 0:
            start += self.split(n - start, s)
            stored.add(start)
            s -= 1
        self.stored = frozenset(stored)
        # the steps the backward sweep runs again: the forward sweep did the first n - 1
        self.recomputed = self.cost(n, snapshots - 1) - (n - 1) if n else 0

    @staticmethod
    def cost(l, s):
        """The least number of forward steps that reverse `l` steps with the state at
        the start kept and `s` slots free."""
        if l <= 1:
            return 0
        if s == 0:
            return l * (l - 1) // 2
        t, b = 0, 1  # b = beta(s + 1, t), up to the first t with b >= l
        while b < l:
            t += 1
            b = b * (s + 1 + t) // t
        return t * l - b * t // (s + 2)  # beta(s + 2, t - 1) = beta(s + 1, t) t / (s + 2)

    @staticmethod
    def split(l, s):
        """The first m in 1 .. l - 1 that minimises m + cost(l - m, s - 1) + cost(m, s).

        The total is convex in m; its forward difference is 1 + t(s, m + 1) - t(s - 1,
        l - m), with t(s, x) the least t such that beta(s + 1, t) >= x (the cost's
        slope). It is >= 0 when some tau has t(s - 1, l - m) <= tau <= 1 + t(s, m + 1),
        that is m >= l - beta(s, tau) and m >= beta(s + 1, tau - 2). The first bound
        falls and the second grows with tau: the least m is the smaller of the first
        bound just before they cross and the second where they do."""
        tau, a, b = 0, 1, 0  # a = beta(s, tau), b = beta(s + 1, tau - 2) (0 for tau < 2)
        before = l - 1
        while l - a > b:
            before = l - a
            tau += 1
            a = a * (s + tau) // tau
            if tau >= 2:
                b = b * (s + tau - 1) // (tau - 2) if tau > 2 else 1
        return max(1, min(before, b))

    def __iter__(self):
        return self.actions()

    def actions(self):
        """The backward sweep's actions, made one at a time: the schedule from its
        first reversal on, after taking back the state the forward sweep kept before
        the last step (the forward sweep itself did the schedule's first moves)."""
        # the work left, last first: runs (start, end, free slots) and frees (step,);
        # each split holds a run and a free for its left part, so this holds O(snapshots)
        todo = [(0, self.n, self.snapshots - 1)] if self.n else []
        in_hand = True  # the state at `start` is the one in hand
        forward = True  # still on the forward sweep's path: its moves are done already
        while todo:
            item = todo.pop()
            if len(item) == 1:
                yield ("free", item[0], 0)
                continue
            start, end, s = item
            if not in_hand:
                yield ("restore", start, 0)
            in_hand = True
            if s == 0 or end - start == 1:  # no slot left: each step from the start
                for i in range(end - 1, start - 1, -1):
                    if forward:  # the first reversal, of the last step
                        yield ("restore", i, 0)
                        forward = False
                    else:
                        if not in_hand:
                            yield ("restore", start, 0)
                        if i > start:
                            yield ("advance", start, i)
                    yield ("reverse", i, 0)
                    in_hand = False
                continue
            m = start + self.split(end - start, s)
            if not forward:
                yield ("advance", start, m)
                yield ("store", m, 0)
            # the right part first, with one slot fewer, then the left part from `start`
            todo += [(start, m, s), (m,), (m, end, s - 1)]


def plan_stores(plan, k):
    """Whether the forward sweep keeps the state before step `k`."""
    return k in plan.stored


def plan_actions(plan):
    """The backward sweep's actions, (what, i, j) triples, as the schedule makes them:
    each loop over the plan makes them afresh (loops of the same n and k share a plan)."""
    return plan


def snapshots_new():
    """An empty set of snapshots, by step."""
    return {}


def snap_store(snaps, k, *state):
    snaps[k] = state[0] if len(state) == 1 else state


def snap_load(snaps, k):
    return snaps[k]


def snap_free(snaps, k):
    del snaps[k]


def outer_sum(total):
    """`total` with room for outer products still to add: [matrix, us, vs].

    A checkpointed loop's step gradients add one outer product per step; a matrix
    product of a few stacked at once costs a fraction of as many `np.outer` calls.
    At most 16 pairs wait, so memory stays bounded."""
    return [total, [], []]


def outer_add(acc, u, v):
    """`acc + np.outer(u, v)` for an `outer_sum` buffer (the same list, updated)."""
    acc[1].append(np.ravel(u))
    acc[2].append(np.ravel(v))
    if len(acc[1]) >= 16:
        outer_total(acc)
    return acc


def outer_total(acc):
    """The matrix an `outer_sum` buffer holds, every waiting product added."""
    if acc[1]:
        acc[0] = acc[0] + np.stack(acc[1]).T @ np.stack(acc[2])  # np.array would compute
        acc[1], acc[2] = [], []
    return acc[0]


def one_real_number(x) -> bool:
    """Whether an output can be differentiated by grad: a real number, or an array of one
    real entry (code generated without example arguments checks it as f returns)."""
    return not isinstance(x, (tuple, list, dict)) and np.size(x) == 1 and \
        not np.iscomplexobj(x)


def real_arguments(*xs):
    """Whether no argument holds a complex number, at any depth of a list, tuple or
    dict: code generated without example arguments assumes real ones."""
    for x in xs:
        if isinstance(x, (list, tuple)):
            if not real_arguments(*x):
                return False
        elif isinstance(x, dict):
            if not real_arguments(*x.values()):
                return False
        elif isinstance(x, (complex, np.complexfloating)) or \
                getattr(getattr(x, "dtype", None), "kind", None) == "c":
            return False
    return True


def no_integers(*xs) -> bool:
    """Whether no argument is an int or a bool, or an array of them."""
    return not any(isinstance(x, (bool, int, np.integer, np.bool_)) or
                   getattr(getattr(x, "dtype", None), "kind", "f") in "biu" for x in xs)


def no_none_entries(*xs, inside: bool = False) -> bool:
    """Whether no list, tuple or dict among the arguments holds None, at any depth."""
    for x in xs:
        if x is None and inside:
            return False
        if isinstance(x, (list, tuple, dict)) and \
                not no_none_entries(*(x.values() if isinstance(x, dict) else x), inside=True):
            return False
    return True


def no_fields_named(names, *xs):
    """Whether no argument, at any depth of a list, tuple or dict, is a namedtuple or a
    dataclass with a field in `names`: code generated without example arguments reads
    `p.shape` as an array's attribute."""
    for x in xs:
        fields = getattr(type(x), "_fields", None) or getattr(type(x), "__dataclass_fields__",
                                                              None)
        if fields is not None and any(n in fields for n in names):
            return False
        if isinstance(x, (list, tuple, dict)) or fields is not None:
            items = x.values() if isinstance(x, dict) else x if isinstance(x, (list, tuple)) \
                else [getattr(x, f) for f in fields]
            if not no_fields_named(names, *items):
                return False
    return True


def line_of_f(e: Exception, path: str):
    """(file or None, line, text) of f's line whose derivative the generated module at
    `path` was computing when it raised `e`: the `# line N: ...` comment above the line
    that raised (the file is None for f's own file). None if no frame of `e` is there."""
    import linecache
    import re
    import traceback
    frames = [fr for fr in traceback.extract_tb(e.__traceback__) if fr.filename == path]
    if not frames:
        return None
    for text in reversed(linecache.getlines(path)[:frames[-1].lineno]):
        m = re.match(r"\s*# (?:(\S+), )?line (\d+): (.*)", text)
        if m:
            return m.group(1), int(m.group(2)), m.group(3)
    return None


def numpy_floats(args: tuple) -> tuple:
    """`args` with each Python float, also in lists, tuples and dicts, as np.float64
    (`args` itself when it holds none)."""
    changed = []

    def convert(a):
        if type(a) is float:
            changed.append(a)
            return np.float64(a)
        if type(a) in (list, tuple):
            return type(a)(convert(e) for e in a)
        if type(a) is dict:
            return {k: convert(e) for k, e in a.items()}
        return a
    out = tuple(convert(a) for a in args)
    return out if changed else args


def numpy_floats_where_python_raises(sweep: str):
    """A decorator for a generated function called with Python floats, whose arithmetic
    raises ZeroDivisionError where NumPy's gives inf or NaN (the derivative of sqrt at
    0.0). A raise in the derivative's code (a `sweep="backward"` function, or the lines
    under a `sweep="grad"` function's `# --- backward ---`) runs the function again with
    NumPy's floats, as the API does; one in f's own code is f's error, raised as it is.
    In a tangent sweep f's lines and their derivatives' interleave, so a raise there is
    said where it is."""
    import functools
    import inspect

    def decorate(fn):
        path = fn.__code__.co_filename

        def derivative_raised(e):
            if sweep != "grad":
                return True
            try:
                body, first = inspect.getsourcelines(fn)
            except OSError:  # text run without a file: which sweep raised is not known
                return False
            marker = next((first + i for i, line in enumerate(body)
                           if line.strip() == "# --- backward ---"), None)
            tb, at = e.__traceback__, None
            while tb is not None:
                if tb.tb_frame.f_code is fn.__code__:
                    at = tb.tb_lineno
                tb = tb.tb_next
            return marker is not None and at is not None and at > marker

        def said(e):
            at = line_of_f(e, path)
            where = f"line {at[1]} ({at[2].strip()})" if at else "the function"
            what = f"{where} or its derivative" if sweep == "tangent" else \
                f"the derivative of {where}"
            return ValueError(f"{what} divides by zero at these Python floats ({e}); pass "
                              f"NumPy floats (np.float64(x)), whose division gives inf, or "
                              f"keep away from this point")

        @functools.wraps(fn)
        def retried(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except ZeroDivisionError as e:
                if not derivative_raised(e):
                    raise  # f's own division by zero
                values = tuple(kwargs.values())
                numpy_args, numpy_values = numpy_floats(args), numpy_floats(values)
                if sweep == "tangent" or (numpy_args is args and numpy_values is values):
                    raise said(e) from e
            try:
                return fn(*numpy_args, **dict(zip(kwargs, numpy_values)))
            except ZeroDivisionError as e:  # math.sqrt(0.0)'s derivative: a Python float
                raise said(e) from e
        return retried
    return decorate


def refused_where_f_catches(filename: str, handlers):
    """A decorator for a generated function whose f has `try` bodies with handlers that
    catch some failures (`handlers`: (file, first line, last line, exception names, where
    the handler is) of each). The gradient runs a body only, never its handler, so a
    failure there means f took the handler on this call: it is said so, not raised raw."""
    import functools

    def decorate(fn):
        @functools.wraps(fn)
        def checked(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                at = line_of_f(e, fn.__code__.co_filename)
                caught = {c.__name__ for c in type(e).__mro__}
                for file, first, last, names, where in handlers:
                    if at is not None and (at[0] or filename) == file and \
                            first <= at[1] <= last and caught & set(names):
                        raise ValueError(
                            f"{where}: on this call the `try` body raised "
                            f"{type(e).__name__} ({e}), which f's handler catches; this "
                            f"gradient runs the body only, not the handler. Test the "
                            f"condition with an `if` in f instead") from e
                raise
        return checked
    return decorate


def index_tuple(*parts):
    """The index `a[i, j:k]`: a tuple of ints, slices, None and arrays."""
    return parts


__all__ = ["accum", "alias", "element", "private", "private_entries", "unbroadcast", "sum_to",
           "expand_to", "setitem",
           "append", "save", "written", "concat", "repeat", "unrepeat", "zeros_tangent",
           "ones_at_zeros", "abs_slope", "larger_share", "tie_weights", "size_of", "zero_to_zero", "add_at", "zeros_like", "stop_gradient",
           "index_tuple", "real_arguments", "no_none_entries", "no_integers",
           "numpy_floats_where_python_raises", "zero_outside", "combinations", "permutations",
           "combinations_with_replacement"]
