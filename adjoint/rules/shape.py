"""Shape and layout: reshape, ravel, squeeze, expand_dims, concatenate, stack,
hstack, vstack, column_stack, dstack, broadcast_to, swapaxes, moveaxis, flip,
roll, rot90, tile, repeat, append, delete, insert, split (and array_split, hsplit, vsplit,
dsplit), unstack, diag, diagonal, pad, diff, gradient, sort, partition,
take_along_axis, copy, array/asarray, astype, atleast_1d/2d/3d, linspace, full and
full_like; and the constructors, shape queries and index-valued functions,
which have a zero derivative (zeros, ones, eye, arange, shape, argmax, ...).

`np.sort` and `np.partition` send each cotangent back to the entry it came from
(ties: the derivative is not unique, one of the tied entries gets it). `np.pad`
is covered for the modes whose border is a constant (differentiable in
constant_values too) or copies of entries ('edge', 'reflect', 'symmetric',
'wrap'); other modes raise NonDifferentiableError when the gradient runs.
`np.gradient` takes one uniform spacing (differentiable too); coordinate arrays
or a spacing per axis are refused likewise.

These move values around without arithmetic, so their rules move cotangents
back. The functions that take a sequence of arrays (concatenate, stack, the
*stack family, and np.array of a list) return the cotangent of that sequence
as a *list*, one entry per element, each shaped like its element (a float for
a float), so the compiler can route entry i to element i. The helper
primitives that build these lists (`split_like`, `unstack_like`, `unarray`)
and their inverses (`join_like`) are defined here with their own rules, so a
gradient of a gradient works.

`np.astype(x, dtype)` to float64 (or a longer float) is the identity's rule; to an
int dtype a constant (derivative 0, as x.astype(int)); to float32 or float16 it
rounds, and a gradient through it raises NonDifferentiableError when it runs.

`np.linspace` is differentiable in `start` and `stop` (not with retstep=True);
`np.full` and `np.full_like` in their fill value. `np.meshgrid` takes one to
four arrays, each indexing and sparse or not: each input's cotangent is its
grid's summed over the other axes.

`np.delete` and `np.insert` take any obj (an index, a slice, a list, a mask) and
`np.insert` is differentiable in values too, broadcast as NumPy broadcasts them.

`np.ediff1d` is differentiable in `to_begin` and `to_end` too; `np.vander` in x
(the column of power 0 has slope 0, also at x = 0); `np.block` takes nested
lists, and its cotangent is nested lists like them (`unblock`).
"""
from __future__ import annotations

import numpy as np

from adjoint.rules.linalg import unsupported
from adjoint.rules.registry import defjvp, deflinear, defnondiff, defvjp, lookup, primitive
from adjoint.runtime import add_at, unbroadcast


# ------------------------------------------------------------------ helper primitives

def _like(piece, x):
    """`piece` reshaped like `x`, a float if `x` is a Python number."""
    if isinstance(x, (float, int)) and not isinstance(x, bool):
        return float(np.reshape(piece, ()))
    return np.reshape(piece, np.shape(x))


def _size(x) -> int:
    """np.size(x), read from the shape (np.size computes a dask array)."""
    return int(np.prod(x.shape)) if hasattr(x, "shape") else int(np.size(x))


def split_like(x, seq, axis=0):
    """Split `x` along `axis` into pieces sized like the elements of `seq`.

    The cotangent of `np.concatenate(seq, axis)` (and of hstack, vstack,
    column_stack, dstack, which concatenate after promoting their inputs):
    a list whose entry i is shaped like `seq[i]`. With axis=None, `x` is the
    flattened concatenation.
    """
    x = x if hasattr(x, "shape") else np.asarray(x)  # (a dask array stays lazy)
    if axis is None:
        x, axis = np.ravel(x), 0
    axis = axis % x.ndim
    extent = x.shape[axis]
    other = int(np.prod(x.shape)) // extent if extent else 0
    sizes = [_size(s) // other if other else 0 for s in seq]
    ends = np.cumsum([0] + sizes)
    lead = (slice(None),) * axis
    return [_like(x[lead + (slice(int(a), int(b)),)], s) for a, b, s in
            zip(ends[:-1], ends[1:], seq)]


def join_like(parts, x, axis=0):
    """The inverse of `split_like(x, ...)`: concatenate `parts` into the shape of `x`."""
    x_shape = np.shape(x)
    if axis is None:
        return np.concatenate([np.ravel(p) for p in parts])
    axis = axis % len(x_shape)
    extent = x_shape[axis]
    other = int(np.prod(x_shape)) // extent if extent else 0
    shaped = []
    for p in parts:
        shape = list(x_shape)
        shape[axis] = int(np.size(p)) // other if other else 0
        shaped.append(np.reshape(p, shape))
    return np.concatenate(shaped, axis=axis)


def unstack_like(x, seq, axis=0):
    """The cotangent of `np.stack(seq, axis)`: the slices of `x` along `axis`, as a list."""
    if not hasattr(x, "__array_function__"):  # (np.asarray would compute a dask array)
        x = np.asarray(x)
    return [_like(np.take(x, i, axis=axis), s) for i, s in enumerate(seq)]


def unarray(x, obj):
    """The cotangent of `np.array(obj)`: `x` shaped like `obj`, as nested lists if
    `obj` is a list or tuple (of numbers or arrays), as an array otherwise."""
    if isinstance(obj, (list, tuple)):
        x = np.reshape(x, np.shape(obj))
        return [unarray(x[i], o) for i, o in enumerate(obj)]
    return _like(x, obj)


def untile(x, a, reps):
    """The cotangent of `np.tile(a, reps)`: `x` summed over the tiles, shaped like `a`."""
    reps = (reps,) if np.ndim(reps) == 0 else tuple(reps)
    a_shape = np.shape(a)
    d = max(len(reps), len(a_shape))
    reps = (1,) * (d - len(reps)) + reps
    a_shape_d = (1,) * (d - len(a_shape)) + a_shape
    interleaved = []
    for r, s in zip(reps, a_shape_d):
        interleaved += [r, s]
    total = np.sum(np.reshape(x, interleaved), axis=tuple(range(0, 2 * d, 2)))
    return _like(total, a)


def unrepeat_array(x, a, repeats, axis=None):
    """The cotangent of `np.repeat(a, repeats, axis)`: `x` summed over the repeats."""
    x = np.asarray(x)
    if axis is None:  # np.repeat flattened `a` first
        n, ax = int(np.size(a)), 0
    else:
        n, ax = np.shape(a)[axis], axis
    owner = np.repeat(np.arange(n), np.broadcast_to(repeats, (n,)))  # source of each slice
    moved = np.moveaxis(x, ax, 0)
    total = np.zeros((n,) + moved.shape[1:], dtype=np.result_type(x, float))
    np.add.at(total, owner, moved)
    return _like(np.moveaxis(total, 0, ax), a)


def neg_shift(shift):
    """`-shift` for an int or a tuple of ints (for np.roll's rule)."""
    if isinstance(shift, (tuple, list)) or np.ndim(shift) == 1:  # (an array of shifts too)
        return tuple(-int(s) for s in shift)
    return -int(shift)


def hstack_axis(ndim):
    """The axis `np.hstack` concatenates along, given the result's ndim."""
    return 0 if ndim == 1 else 1


def linspace_weights(num, endpoint, ndim, axis=0):
    """t in [0, 1] such that np.linspace(start, stop) == start + (stop - start) * t,
    shaped to broadcast against the result (of `ndim` dimensions) along `axis`."""
    t = np.linspace(0.0, 1.0, num, endpoint)
    shape = [1] * ndim
    shape[axis] = num
    return np.reshape(t, shape)


def r_concat(parts):
    """`np.r_[parts]` (the front end lowers `np.r_[a, b]` to `r_concat((a, b))`)."""
    return np.r_[tuple(parts)]


def c_concat(parts):
    """`np.c_[parts]`."""
    return np.c_[tuple(parts)]


def _index_grid(which):
    return (np.r_, 0) if which == "r" else (np.c_, -1)


def split_index(x, parts, which):
    """The cotangent of `np.r_[parts]` (which == "r") or `np.c_[parts]` ("c"): `x`
    cut along the joined axis into one piece per part, shaped like the part; None
    for a slice (an integer range, no gradient)."""
    grid, axis = _index_grid(which)
    x = np.asarray(x)
    out, start = [], 0
    for p in parts:
        n = np.shape(grid[p, ])[axis]  # how far the part extends in the result
        piece = np.take(x, np.arange(start, start + n), axis=axis)
        start += n
        out.append(None if isinstance(p, slice) else _like(piece, p))
    return out


def join_index(pieces, parts, which):
    """The inverse of `split_index`: the pieces joined as `np.r_`/`np.c_` joins
    `parts`, zeros where a part is a slice or its piece is None."""
    grid, axis = _index_grid(which)
    items = []
    for c, p in zip(pieces, parts):
        if isinstance(p, slice):  # a range: zeros of its length, promoted as it is
            c = np.zeros(len(np.r_[p]))
        elif c is None:
            c = np.zeros(np.shape(p))
        items.append(c)
    return grid[tuple(items)]


for _fn, _name in [(split_like, "split_like"), (join_like, "join_like"),
                   (unstack_like, "unstack_like"), (unarray, "unarray"), (untile, "untile"),
                   (unrepeat_array, "unrepeat_array"), (r_concat, "r_concat"),
                   (c_concat, "c_concat"), (split_index, "split_index"),
                   (join_index, "join_index")]:
    primitive(_fn, _name)
for _fn, _name in [(neg_shift, "neg_shift"), (hstack_axis, "hstack_axis"),
                   (linspace_weights, "linspace_weights")]:
    primitive(_fn, _name, nondiff=True)

_DIFFERENTIABLE = ["reshape", "ravel", "squeeze", "expand_dims", "concatenate", "stack",
                   "hstack", "vstack", "column_stack", "dstack", "broadcast_to", "swapaxes",
                   "moveaxis", "flip", "fliplr", "flipud", "roll", "tile", "repeat", "copy",
                   "array", "asarray", "ascontiguousarray", "atleast_1d", "atleast_2d",
                   "atleast_3d", "linspace", "full", "full_like", "arange"]
_NONDIFF = ["zeros", "ones", "empty", "zeros_like", "ones_like", "empty_like", "eye",
            "identity", "shape", "ndim", "size", "argmax", "argmin", "argsort",
            "nonzero", "flatnonzero", "count_nonzero", "isclose", "allclose", "array_equal",
            "any", "all", "searchsorted", "tri", "indices", "diag_indices",
            "diag_indices_from", "triu_indices", "triu_indices_from", "tril_indices",
            "tril_indices_from", "unravel_index", "ravel_multi_index"]
for _name in _DIFFERENTIABLE + _NONDIFF:
    _fn = getattr(np, _name, None)
    if _fn is not None and lookup(_fn) is None:
        primitive(_fn, "np." + _name)
defnondiff(neg_shift, hstack_axis, linspace_weights,
           *[getattr(np, _n) for _n in _NONDIFF if hasattr(np, _n)])


@deflinear(split_like)
def split_like_vjp(g, ans, x, seq, axis=0):
    return join_like(g, x, axis)


@deflinear(join_like)
def join_like_vjp(g, ans, parts, x, axis=0):
    return split_like(g, parts, axis)


@deflinear(unstack_like)
def unstack_like_vjp(g, ans, x, seq, axis=0):
    return np.stack(g, axis)


@deflinear(unarray)
def unarray_vjp(g, ans, x, obj):
    return np.reshape(np.array(g), np.shape(x))


@deflinear(untile)
def untile_vjp(g, ans, x, a, reps):
    return np.reshape(np.tile(g, reps), np.shape(x))


@deflinear(unrepeat_array)
def unrepeat_array_vjp(g, ans, x, a, repeats, axis=None):
    return np.repeat(g, repeats, axis)


# ------------------------------------------------------------------ reshaping

@deflinear(np.reshape)
def reshape_vjp(g, ans, a, shape, order="C"):
    if order == "C":  # said only where it is not the default: dask's reshape takes no order=
        return np.reshape(g, np.shape(a))
    return np.reshape(g, np.shape(a), order=order)


@deflinear(np.ravel)
def ravel_vjp(g, ans, a, order="C"):
    if order == "C":
        return np.reshape(g, np.shape(a))
    return np.reshape(g, np.shape(a), order=order)


@deflinear(np.squeeze)
def squeeze_vjp(g, ans, a, axis=None):
    return np.reshape(g, np.shape(a))


@deflinear(np.expand_dims)
def expand_dims_vjp(g, ans, a, axis):
    return np.reshape(g, np.shape(a))


@deflinear(np.atleast_1d)
def atleast_1d_vjp(g, ans, a):
    return np.reshape(g, np.shape(a))


@deflinear(np.atleast_2d)
def atleast_2d_vjp(g, ans, a):
    return np.reshape(g, np.shape(a))


@deflinear(np.atleast_3d)
def atleast_3d_vjp(g, ans, a):
    return np.reshape(g, np.shape(a))


@deflinear(np.broadcast_to)
def broadcast_to_vjp(g, ans, array, shape, subok=False):
    return unbroadcast(g, array)


@deflinear(np.swapaxes)
def swapaxes_vjp(g, ans, a, axis1, axis2):
    return np.swapaxes(g, axis1, axis2)


@deflinear(np.moveaxis)
def moveaxis_vjp(g, ans, a, source, destination):
    return np.moveaxis(g, destination, source)


@deflinear(np.flip)
def flip_vjp(g, ans, m, axis=None):
    return np.flip(g, axis)


@deflinear(np.fliplr)
def fliplr_vjp(g, ans, m):
    return np.fliplr(g)


@deflinear(np.flipud)
def flipud_vjp(g, ans, m):
    return np.flipud(g)


@deflinear(np.roll)
def roll_vjp(g, ans, a, shift, axis=None):
    return np.roll(g, neg_shift(shift), axis)


@deflinear(np.tile)
def tile_vjp(g, ans, A, reps):
    return untile(g, A, reps)


@deflinear(np.repeat)
def repeat_vjp(g, ans, a, repeats, axis=None):
    return unrepeat_array(g, a, repeats, axis)


# ------------------------------------------------------------------ joining

@deflinear(np.concatenate)
def concatenate_vjp(g, ans, arrays, axis=0, out=None):
    return split_like(g, arrays, axis)


@deflinear(np.stack)
def stack_vjp(g, ans, arrays, axis=0, out=None):
    return unstack_like(g, arrays, axis)


@deflinear(np.hstack)
def hstack_vjp(g, ans, tup):
    return split_like(g, tup, hstack_axis(np.ndim(ans)))


@deflinear(np.vstack)
def vstack_vjp(g, ans, tup):
    return split_like(g, tup, 0)


@deflinear(np.column_stack)
def column_stack_vjp(g, ans, tup):
    return split_like(g, tup, 1)


@deflinear(np.dstack)
def dstack_vjp(g, ans, tup):
    return split_like(g, tup, 2)


@defvjp(r_concat)
def r_concat_vjp(g, ans, parts):
    return split_index(g, parts, "r")


@defjvp(r_concat)
def r_concat_jvp(ans, parts, parts_dot):
    return join_index(parts_dot, parts, "r")


@defvjp(c_concat)
def c_concat_vjp(g, ans, parts):
    return split_index(g, parts, "c")


@defjvp(c_concat)
def c_concat_jvp(ans, parts, parts_dot):
    return join_index(parts_dot, parts, "c")


@deflinear(split_index)
def split_index_vjp(g, ans, x, parts, which):
    return join_index(g, parts, which)


@deflinear(join_index)
def join_index_vjp(g, ans, pieces, parts, which):
    return split_index(g, parts, which)


# ------------------------------------------------------------------ copies

@deflinear(np.copy)
def copy_vjp(g, ans, a, order="K", subok=False):
    return g


@deflinear(np.array)
def array_vjp(g, ans, object, dtype=None, copy=True, order="K", subok=False, ndmin=0):
    return unarray(g, object)


@deflinear(np.asarray)
def asarray_vjp(g, ans, a, dtype=None, order=None):
    return unarray(g, a)


@deflinear(np.ascontiguousarray)
def ascontiguousarray_vjp(g, ans, a, dtype=None):
    return unarray(g, a)


def cast_kind(dtype):
    """What a cast to `dtype` does to a float64: "int" (truncates: a constant, derivative 0,
    as x.astype(int) is), "narrow" (float32, float16: it rounds, and a gradient through it
    is refused, as through x.astype(np.float32)), "same" (float64, longer floats)."""
    d = np.dtype(dtype)
    if d.kind in "biu":
        return "int"
    if d.kind == "f" and d.itemsize < 8:
        return "narrow"
    return "same"


def _cast_derivative(dtype):
    """`cast_kind(dtype)`, refused when the gradient runs where the cast rounds."""
    kind = cast_kind(dtype)
    if kind == "narrow":
        _ = unsupported("np.astype to a narrower float rounds, and has no derivative rule",
                        "cast after differentiating, or keep float64")
    return kind


primitive(cast_kind, "cast_kind", nondiff=True)
defnondiff(cast_kind)
if hasattr(np, "astype"):  # NumPy >= 2.1
    primitive(np.astype, "np.astype")

    @defvjp(np.astype)
    def astype_vjp(g, ans, x, dtype, copy=True, device=None):
        if _cast_derivative(dtype) == "int":
            return np.zeros(np.shape(x))
        return g

    @defjvp(np.astype)
    def astype_jvp(ans, x, dtype, copy=True, device=None, x_dot=None):
        if _cast_derivative(dtype) == "int":
            return np.zeros(np.shape(ans))
        return np.astype(x_dot, dtype)


# ------------------------------------------------------------------ constructors with a value

@deflinear(np.full, 'fill_value')
def full_vjp(g, ans, shape, fill_value, dtype=None, order="C"):
    return None, unbroadcast(g, fill_value)


@defvjp(np.full_like)
def full_like_vjp(g, ans, a, fill_value, dtype=None, order="K", subok=True, shape=None):
    return None, unbroadcast(g, fill_value)


@defjvp(np.full_like)
def full_like_jvp(ans, a, fill_value, dtype=None, order="K", subok=True, shape=None,
              fill_value_dot=None):
    return np.full_like(ans, fill_value_dot)


@deflinear(np.linspace, 'start', 'stop')
def linspace_vjp(g, ans, start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    if retstep:
        _ = unsupported("np.linspace(..., retstep=True) has no derivative rule",
                        "compute the step as (stop - start) / (num - 1)")
    t = linspace_weights(num, endpoint, np.ndim(ans), axis)
    return (unbroadcast(np.sum(g * (1.0 - t), axis=axis), start),
            unbroadcast(np.sum(g * t, axis=axis), stop))


# np.arange(start, stop, step) is start + step * [0, 1, ..., n - 1]: differentiable in
# start and step (a float's gradient flows into a time grid); n, a count, is piecewise
# constant in all three, so stop gets no gradient, nor does arange(stop)'s one argument
@defvjp(np.arange)
def arange_vjp(g, ans, start, stop=None, step=None, dtype=None):
    first = None if stop is None else np.sum(g)  # (arange(stop): 0, 1, ..., whatever stop is)
    last = None if step is None else np.sum(g * np.arange(np.size(ans), dtype=float))
    return first, None, last


@defjvp(np.arange)
def arange_jvp(ans, start, stop=None, step=None, dtype=None, start_dot=0.0, step_dot=0.0):
    if stop is None:
        return np.zeros(np.shape(ans))
    return start_dot + step_dot * np.arange(np.size(ans), dtype=float)


# ------------------------------------------------------------------ rot90, diag, diagonal
# (the decorators register the functions they give rules to)

def undiagonal(x, a, offset=0, axis1=0, axis2=1):
    """The cotangent of `np.diagonal(a, offset, axis1, axis2)`: zeros shaped like `a`
    with `x` (the diagonal as its last axis) written on that diagonal."""
    shape = np.shape(a)
    out = np.zeros(shape, dtype=np.result_type(x, float))
    moved = np.moveaxis(out, (axis1, axis2), (-2, -1))  # a view: writes reach `out`
    n = np.shape(x)[-1]
    rows = np.arange(n) + max(-offset, 0)
    moved[..., rows, rows + offset] = x
    return out




def rolled_to(ndim, axis, start=0):
    """Where np.rollaxis(a, axis, start) puts `axis` (as np.moveaxis would)."""
    axis, start = axis % ndim, start + ndim if start < 0 else start
    return start - 1 if start > axis else start


primitive(rolled_to, "rolled_to", nondiff=True)
defnondiff(rolled_to)


@deflinear(np.rollaxis)
def rollaxis_vjp(g, ans, a, axis, start=0):
    return np.moveaxis(g, rolled_to(np.ndim(a), axis, start), axis)


@deflinear(np.rot90)
def rot90_vjp(g, ans, m, k=1, axes=(0, 1)):
    return np.rot90(g, -k, axes)


@deflinear(np.diagonal)
def diagonal_vjp(g, ans, a, offset=0, axis1=0, axis2=1):
    return undiagonal(g, a, offset, axis1, axis2)


@deflinear(undiagonal)
def undiagonal_vjp(g, ans, x, a, offset=0, axis1=0, axis2=1):
    return np.diagonal(g, offset, axis1, axis2)


@deflinear(np.diag)
def diag_vjp(g, ans, v, k=0):
    if np.ndim(v) == 1:
        return np.diagonal(g, k)
    return undiagonal(g, v, k, 0, 1)


primitive(np.diagflat, "np.diagflat")


@deflinear(np.diagflat)
def diagflat_vjp(g, ans, v, k=0):
    return np.reshape(np.diagonal(g, k), np.shape(v))


# ------------------------------------------------------------------ append, split, diff

def undiff(x, n=1, axis=-1):
    """The cotangent of `np.diff(a, n, axis)`: the transpose of the first difference
    (-np.diff of x with a zero at each end), n times."""
    x = x if hasattr(x, "shape") else np.asarray(x)  # (a dask array stays lazy)
    for _ in range(n):
        zero = np.zeros_like(np.take(x, [0], axis=axis))
        x = -np.diff(np.concatenate((zero, x, zero), axis=axis), axis=axis)
    return x


def join_split(parts, axis):
    """The cotangent of a split: the pieces' cotangents joined again along `axis`."""
    return np.concatenate(parts, axis=axis)


def split_axis(ndim, which):
    """The axis np.hsplit ("h"), np.vsplit ("v") or np.dsplit ("d") splits."""
    if which == "h":
        return 1 if ndim > 1 else 0
    return 0 if which == "v" else 2


primitive(split_axis, "split_axis", nondiff=True)
defnondiff(split_axis)


def entry_numbers(x):
    """The flat positions of x's entries, in x's shape: moved by np.delete or np.insert,
    they say where each entry of x went."""
    return np.reshape(np.arange(np.size(x)), np.shape(x))


primitive(entry_numbers, "entry_numbers", nondiff=True)
defnondiff(entry_numbers)
primitive(np.delete, "np.delete")
primitive(np.insert, "np.insert")


@deflinear(np.delete)
def delete_vjp(g, ans, arr, obj, axis=None):
    # each kept entry's cotangent goes back where it came from; the deleted get 0
    return untake(g, arr, np.delete(entry_numbers(arr), obj, axis), None)


@deflinear(np.insert, "arr", "values")
def insert_vjp(g, ans, arr, obj, values, axis=None):
    # np.insert of the entries' numbers (and -1 for the others) says where each entry of
    # arr, and of values as np.insert broadcasts them, went
    from_arr = np.insert(entry_numbers(arr), obj, np.full(np.shape(values), -1), axis)
    from_values = np.insert(0 * entry_numbers(arr) - 1, obj, entry_numbers(values), axis)
    return (untake(np.where(from_arr >= 0, g, 0.0), arr, np.maximum(from_arr, 0), None),
            None,
            untake(np.where(from_values >= 0, g, 0.0), values, np.maximum(from_values, 0),
                   None))


@deflinear(np.append, "arr", "values")
def append_vjp(g, ans, arr, values, axis=None):
    parts = split_like(g, [arr, values], axis)
    return parts[0], parts[1]


@deflinear(np.split)
def split_vjp(g, ans, ary, indices_or_sections, axis=0):
    return np.concatenate(g, axis)


@deflinear(np.array_split)
def array_split_vjp(g, ans, ary, indices_or_sections, axis=0):
    return np.concatenate(g, axis)


@deflinear(np.hsplit)
def hsplit_vjp(g, ans, ary, indices_or_sections):
    return np.concatenate(g, split_axis(np.ndim(ary), "h"))


@deflinear(np.vsplit)
def vsplit_vjp(g, ans, ary, indices_or_sections):
    return np.concatenate(g, 0)


@deflinear(np.dsplit)
def dsplit_vjp(g, ans, ary, indices_or_sections):
    return np.concatenate(g, 2)


if hasattr(np, "unstack"):  # NumPy >= 2.1
    primitive(np.unstack, "np.unstack")

    @deflinear(np.unstack)
    def unstack_vjp(g, ans, x, axis=0):
        return np.stack(g, axis)


@deflinear(np.diff)
def diff_vjp(g, ans, a, n=1, axis=-1):
    if np.shape(a)[axis] <= n:  # differences of none: NumPy's result is empty
        return np.zeros(np.shape(a))
    return undiff(g, n, axis)


@deflinear(undiff)
def undiff_vjp(g, ans, x, n=1, axis=-1):
    return np.diff(g, n, axis)


# ------------------------------------------------------------------ sort, partition

def source_index(a, ans, axis=-1):
    """Where each entry of `ans` (a rearrangement of `a` along `axis`: np.sort,
    np.partition) came from: `np.take_along_axis(a, i, axis) == ans`. Found from the
    values, so it holds whatever order the sort left between the others; tied values
    are matched in order (their derivative is not unique)."""
    if axis is None:
        a, ans, axis = np.ravel(a), np.ravel(ans), 0
    by_value = np.argsort(a, axis=axis, kind="stable")
    rank = np.argsort(np.argsort(ans, axis=axis, kind="stable"), axis=axis, kind="stable")
    return np.take_along_axis(by_value, rank, axis)


def untake(x, arr, indices, axis):
    """The cotangent of `np.take_along_axis(arr, indices, axis)`: each entry of `x`
    added back where it was read (an index read twice gets both)."""
    x = np.asarray(x, dtype=np.result_type(x, float))
    if axis is None:
        out = np.zeros(int(np.size(arr)), dtype=x.dtype)
        np.add.at(out, np.ravel(indices), np.ravel(x))
        return _like(np.reshape(out, np.shape(arr)), arr)
    shape = np.shape(arr)
    axis = axis % len(shape)
    grid = list(np.indices(x.shape, sparse=True))
    for d in range(len(shape)):  # a length-1 axis of arr was broadcast: always row 0
        if d != axis and shape[d] == 1:
            grid[d] = np.zeros_like(grid[d])
    grid[axis] = np.broadcast_to(indices, x.shape)
    out = np.zeros(shape, dtype=x.dtype)
    np.add.at(out, tuple(grid), x)
    return out


primitive(source_index, "source_index", nondiff=True)
defnondiff(source_index)


@defvjp(np.sort)
def sort_vjp(g, ans, a, axis=-1, kind=None, order=None):
    return untake(g, a, source_index(a, ans, axis), axis)


@defjvp(np.sort)
def sort_jvp(ans, a, axis=-1, kind=None, order=None, a_dot=None):
    return np.take_along_axis(a_dot, source_index(a, ans, axis), axis)


@defvjp(np.partition)
def partition_vjp(g, ans, a, kth, axis=-1, kind="introselect", order=None):
    return untake(g, a, source_index(a, ans, axis), axis)


@defjvp(np.partition)
def partition_jvp(ans, a, kth, axis=-1, kind="introselect", order=None, a_dot=None):
    return np.take_along_axis(a_dot, source_index(a, ans, axis), axis)


@deflinear(np.take_along_axis)
def take_along_axis_vjp(g, ans, arr, indices, axis):
    return untake(g, arr, indices, axis)


@deflinear(untake)
def untake_vjp(g, ans, x, arr, indices, axis):
    return np.take_along_axis(g, indices, axis)


# ------------------------------------------------------------------ pad

_PAD_COPIES = ("edge", "reflect", "symmetric", "wrap")  # each entry a copy of an input entry


def unpad(x, array, pad_width, mode="constant"):
    """The cotangent of `np.pad(array, pad_width, mode)` for `array`: each entry of `x`
    added to the entry of `array` it is a copy of (the entries of a constant border
    are nobody's). np.pad of the entries' numbers says which that is."""
    shape = np.shape(array)
    n = int(np.prod(shape))
    if mode == "constant":
        source = np.pad(np.arange(n).reshape(shape), pad_width, constant_values=-1)
    else:
        source = np.pad(np.arange(n).reshape(shape), pad_width, mode)
    keep = source >= 0
    total = np.bincount(source[keep], np.asarray(x, dtype=float)[keep], minlength=n)
    return _like(np.reshape(total, shape), array)


def pad_border(x, array, pad_width, constant_values):
    """The cotangent of np.pad's `constant_values`: the sum of `x` over the border
    each of its (axis, side) entries filled, summed to the shape it was given in."""
    ndim = len(np.shape(array))
    out = np.zeros((ndim, 2))
    for axis in range(ndim):
        for side in range(2):
            which = np.zeros((ndim, 2))
            which[axis, side] = 1.0
            out[axis, side] = np.sum(x * np.pad(np.zeros(np.shape(array)), pad_width,
                                                constant_values=which))
    return _like(_sum_like(out, np.shape(constant_values)), constant_values)


def _sum_like(x, shape):
    """x, an (ndim, 2) array, summed to `shape` (as np.pad broadcasts a value to it)."""
    lead = np.ndim(x) - len(shape)
    x = np.sum(x, axis=tuple(range(lead))) if lead > 0 else x
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and np.shape(x)[i] != 1)
    return np.sum(x, axis=axes, keepdims=True) if axes else x


def pad_mode_ok(mode):
    """Whether np.pad's `mode` has a derivative rule: a constant border, or a border
    made of copies of the input's entries."""
    return mode == "constant" or mode in _PAD_COPIES


primitive(pad_mode_ok, "pad_mode_ok", nondiff=True)
defnondiff(pad_mode_ok)


@defvjp(np.pad)
def pad_vjp(g, ans, array, pad_width, mode="constant", *, constant_values=0):
    # one cotangent per parameter, constant_values (keyword only, as in NumPy) last
    if not pad_mode_ok(mode):
        _ = unsupported("np.pad has a derivative rule for mode 'constant', 'edge', 'reflect', "
                        "'symmetric' and 'wrap', not mode " + mode)
    if mode == "constant":
        return (unpad(g, array, pad_width, mode), None, None,
                pad_border(g, array, pad_width, constant_values))
    return unpad(g, array, pad_width, mode), None, None, None


@defjvp(np.pad)
def pad_jvp(ans, array, pad_width, mode="constant", *, constant_values=0, array_dot=None,
            constant_values_dot=0.0):
    if not pad_mode_ok(mode):
        _ = unsupported("np.pad has a derivative rule for mode 'constant', 'edge', 'reflect', "
                        "'symmetric' and 'wrap', not mode " + mode)
    if mode == "constant":
        return np.pad(array_dot, pad_width, constant_values=constant_values_dot)
    return np.pad(array_dot, pad_width, mode)


@deflinear(unpad)
def unpad_vjp(g, ans, x, array, pad_width, mode="constant"):
    return np.pad(g, pad_width, mode)


@defvjp(pad_border)
def pad_border_vjp(g, ans, x, array, pad_width, constant_values):
    return np.pad(np.zeros(np.shape(array)), pad_width, constant_values=g)


@defjvp(pad_border)
def pad_border_jvp(ans, x, array, pad_width, constant_values, x_dot):
    return pad_border(x_dot, array, pad_width, constant_values)


# ------------------------------------------------------------------ gradient

def _gradient_axes(ndim, axis):
    if axis is None:
        return tuple(range(ndim))
    return (axis,) if np.ndim(axis) == 0 else tuple(axis)


def _ungradient_along(x, edge_order):
    """The transpose of np.gradient along axis 0 with unit spacing."""
    out = np.zeros_like(x)
    out[2:] += 0.5 * x[1:-1]  # interior: (f[i+1] - f[i-1]) / 2
    out[:-2] -= 0.5 * x[1:-1]
    if edge_order == 1:  # f[1] - f[0] and f[-1] - f[-2]
        out[1] += x[0]
        out[0] -= x[0]
        out[-1] += x[-1]
        out[-2] -= x[-1]
    else:  # (-3 f[0] + 4 f[1] - f[2]) / 2 and (3 f[-1] - 4 f[-2] + f[-3]) / 2
        out[:3] += np.multiply.outer([-1.5, 2.0, -0.5], x[0])
        out[-3:] += np.multiply.outer([0.5, -2.0, 1.5], x[-1])
    return out


def ungradient(x, f, axis=None, edge_order=1):
    """The cotangent of np.gradient(f, axis=axis, edge_order=edge_order) (unit spacing)
    for f: `x` is one array, or a tuple of one per axis."""
    axes = _gradient_axes(np.ndim(f), axis)
    parts = [x] if len(axes) == 1 else list(x)
    out = np.zeros(np.shape(f))
    for ax, part in zip(axes, parts):
        moved = np.moveaxis(np.asarray(part, dtype=float), ax, 0)
        out = out + np.moveaxis(_ungradient_along(moved, edge_order), 0, ax)
    return _like(out, f)




@defvjp(np.gradient)
def gradient_vjp(g, ans, f, dx=1.0, *, axis=None, edge_order=1):
    # one uniform spacing dx (by position, as NumPy takes it); ans = G f / dx
    if np.ndim(dx) != 0:
        _ = unsupported("np.gradient has a derivative rule for one uniform spacing, not "
                        "for coordinate arrays or a spacing per axis")
    gf = ungradient(g, f, axis, edge_order)
    return gf / dx, -np.sum(gf * f) / (dx * dx)


@defjvp(np.gradient)
def gradient_jvp(ans, f, dx=1.0, *, axis=None, edge_order=1, f_dot=None, dx_dot=0.0):
    if np.ndim(dx) != 0:
        _ = unsupported("np.gradient has a derivative rule for one uniform spacing, not "
                        "for coordinate arrays or a spacing per axis")
    return np.gradient(f_dot - f * (dx_dot / dx), dx, axis=axis, edge_order=edge_order)


@defvjp(ungradient)
def ungradient_vjp(g, ans, x, f, axis=None, edge_order=1):
    # a tuple of arrays over several axes is x's one cotangent, not one per input
    return np.gradient(g, axis=axis, edge_order=edge_order), None, None, None


@defjvp(ungradient)
def ungradient_jvp(ans, x, f, axis=None, edge_order=1, x_dot=None):
    return ungradient(x_dot, f, axis, edge_order)


# ------------------------------------------------------------------ take

primitive(np.take, "np.take")


@deflinear(np.take, "a")
def take_vjp(g, ans, a, indices, axis=None, out=None, mode="raise"):
    # each taken entry's cotangent goes back to where it was taken from; an entry
    # taken twice gets both (np.add.at adds at repeated indices). Where it was taken
    # from is where `mode` says: np.add.at reads indices as mode 'raise' does
    # (negative ones from the end), so 'clip' and 'wrap' map them first
    n = np.size(a) if axis is None else np.shape(a)[axis]
    if mode == "clip":  # into [0, n): a negative index reads entry 0
        indices = np.clip(indices, 0, n - 1)
    elif mode == "wrap":
        indices = np.mod(indices, n)
    if axis is None:
        flat = add_at(np.zeros(np.size(a)), np.ravel(indices), np.ravel(g))
        return np.reshape(flat, np.shape(a)), None
    if np.ndim(indices) > 1:
        _ = unsupported("np.take with an axis and indices of two or more dimensions has no "
                        "derivative rule", "take along the axis with a 1-d index array")
    moved = np.moveaxis(np.zeros(np.shape(a)), axis, 0)  # the axis taken from, first
    if np.ndim(indices) == 1:
        g = np.moveaxis(g, axis, 0)
    return np.moveaxis(add_at(moved, indices, g), 0, axis), None


# ------------------------------------------------------------------ meshgrid

primitive(np.meshgrid, "np.meshgrid")


def _grid_bar(g, x, i, n, indexing):
    """The cotangent of meshgrid's input i of n: its grid's cotangent summed over every
    axis but the one x runs along (the first two swap with indexing 'xy')."""
    axis = i
    if indexing == "xy" and n >= 2 and i < 2:
        axis = 1 - i
    moved = np.moveaxis(g, axis, 0)
    total = np.sum(np.reshape(moved, (np.shape(moved)[0], -1)), axis=1)
    return unarray(np.reshape(total, np.shape(x)), x)


@defvjp(np.meshgrid)
def meshgrid_vjp(g, ans, x1, x2=None, x3=None, x4=None, *, copy=True, sparse=False,
                 indexing="xy"):
    # (up to four inputs, by position: meshgrid takes *xi)
    n = len(ans)
    b2, b3, b4 = None, None, None
    if n > 1:
        b2 = _grid_bar(g[1], x2, 1, n, indexing)
    if n > 2:
        b3 = _grid_bar(g[2], x3, 2, n, indexing)
    if n > 3:
        b4 = _grid_bar(g[3], x4, 3, n, indexing)
    return _grid_bar(g[0], x1, 0, n, indexing), b2, b3, b4


@defjvp(np.meshgrid)
def meshgrid_jvp(ans, x1, x2=None, x3=None, x4=None, *, copy=True, sparse=False,
                 indexing="xy", x1_dot=None, x2_dot=None, x3_dot=None, x4_dot=None):
    if x2 is None:
        return np.meshgrid(x1_dot, sparse=sparse, indexing=indexing)
    if x3 is None:
        return np.meshgrid(x1_dot, x2_dot, sparse=sparse, indexing=indexing)
    if x4 is None:
        return np.meshgrid(x1_dot, x2_dot, x3_dot, sparse=sparse, indexing=indexing)
    return np.meshgrid(x1_dot, x2_dot, x3_dot, x4_dot, sparse=sparse, indexing=indexing)


# ------------------------------------------------------------------ ediff1d, vander, block

primitive(np.ediff1d, "np.ediff1d")
primitive(np.vander, "np.vander")
primitive(np.block, "np.block")


@defvjp(np.ediff1d)
def ediff1d_vjp(g, ans, ary, to_end=None, to_begin=None):
    # ans is to_begin, then the differences of the flattened ary, then to_end
    start = 0
    if to_begin is not None:
        start = np.size(to_begin)
    stop = start + max(np.size(ary) - 1, 0)
    ary_bar = np.zeros(np.shape(ary))  # one entry has no differences
    if np.size(ary) > 1:
        ary_bar = np.reshape(undiff(g[start:stop]), np.shape(ary))
    end_bar = None
    if to_end is not None:
        end_bar = _like(g[stop:], to_end)
    begin_bar = None
    if to_begin is not None:
        begin_bar = _like(g[:start], to_begin)
    return ary_bar, end_bar, begin_bar


@defjvp(np.ediff1d)
def ediff1d_jvp(ans, ary, to_end=None, to_begin=None, ary_dot=None, to_end_dot=None,
                to_begin_dot=None):
    parts = [np.diff(np.ravel(ary_dot))]
    if to_begin is not None:
        parts = [np.ravel(to_begin_dot) + np.zeros(np.size(to_begin))] + parts
    if to_end is not None:
        parts = parts + [np.ravel(to_end_dot) + np.zeros(np.size(to_end))]
    return np.concatenate(parts)


def _vander_slopes(x, N=None, increasing=False):
    """d np.vander(x, N, increasing) / d x, column j: p_j x^(p_j - 1) for the power p_j
    of that column (0 for p_j = 0, with no x^-1 to multiply by 0 at x = 0)."""
    n = len(x) if N is None else N
    powers = np.arange(n)
    lower = np.concatenate((np.zeros((len(x), 1)), np.vander(x, max(n - 1, 0), True)), axis=1)
    slopes = (powers * lower)[:, :n]
    if increasing:
        return slopes
    return np.flip(slopes, 1)


@defvjp(np.vander)
def vander_vjp(g, ans, x, N=None, increasing=False):
    return np.sum(g * _vander_slopes(x, N, increasing), axis=1)


@defjvp(np.vander)
def vander_jvp(ans, x, N=None, increasing=False, x_dot=None):
    return np.expand_dims(x_dot, 1) * _vander_slopes(x, N, increasing)


def _block_shape(parts, ndim, axis):
    """The shape of np.block(parts) promoted to `ndim` axes, `parts` joined along `axis`
    (negative: the outermost list joins along -depth, each inner one along the next)."""
    if not isinstance(parts, list):
        shape = tuple(np.shape(parts))
        return (1,) * (ndim - len(shape)) + shape
    shapes = [_block_shape(p, ndim, axis + 1) for p in parts]
    at = ndim + axis
    return shapes[0][:at] + (sum(s[at] for s in shapes),) + shapes[0][at + 1:]


def _block_depth(parts):
    return 1 + _block_depth(parts[0]) if isinstance(parts, list) else 0


def _block_ndim(parts):
    if isinstance(parts, list):
        return max(_block_ndim(p) for p in parts)
    return np.ndim(parts)


def _unblock(x, parts, ndim, axis):
    if not isinstance(parts, list):
        return _like(x, parts)
    at = ndim + axis
    sizes = [_block_shape(p, ndim, axis + 1)[at] for p in parts]
    ends = np.cumsum([0] + sizes)
    lead = (slice(None),) * at
    return [_unblock(x[lead + (slice(int(a), int(b)),)], p, ndim, axis + 1)
            for a, b, p in zip(ends[:-1], ends[1:], parts)]


def unblock(x, arrays):
    """The cotangent of `np.block(arrays)`: `x` cut into nested lists like `arrays`,
    each piece shaped like its block (a float for a float)."""
    x = x if hasattr(x, "shape") else np.asarray(x)
    depth = _block_depth(arrays)
    return _unblock(x, arrays, max(depth, _block_ndim(arrays)), -depth)


primitive(unblock, "unblock")


@deflinear(np.block)
def block_vjp(g, ans, arrays):
    return unblock(g, arrays)


def block_lists(parts):
    """np.block of nested lists that may be cotangents (`Cotangents`, a list subclass,
    which NumPy before 2.3 reads as one array)."""
    return np.block(_as_lists(parts))


def _as_lists(parts):
    return [_as_lists(p) for p in parts] if isinstance(parts, list) else parts


primitive(block_lists, "block_lists")


@deflinear(block_lists)
def block_lists_vjp(g, ans, parts):
    return unblock(g, parts)


@deflinear(unblock)
def unblock_vjp(g, ans, x, arrays):
    return np.reshape(block_lists(g), np.shape(x))


# ------------------------------------------------------------------ bincount

primitive(np.bincount, "np.bincount")


@deflinear(np.bincount, "weights")
def bincount_vjp(g, ans, x, weights=None, minlength=0):
    # linear in the weights: weight i was added into bin x[i] (counts alone, with no
    # weights, are ints: no derivative)
    return None, g[x], None
