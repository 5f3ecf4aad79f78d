"""Reductions and scans: sum, mean, prod, max/min (amax/amin), var, std, cumsum,
cumprod, their nan- forms, and `np.linalg.norm`; NumPy 2's array-API names
cumulative_sum, cumulative_prod (include_initial too), `np.linalg.vector_norm` (a
vector norm over any axes) and `np.linalg.matrix_norm` (norm's rule over the last
two axes).

Every rule takes `axis` (None, an int or a tuple) and `keepdims` as NumPy does;
`expand_to(g, x, axis, keepdims)` broadcasts a reduction's cotangent back to
the shape of its input. `sum` and `prod` take `where=` and `initial=` (differentiated
in initial too), `mean` takes `where=`: an entry left out gets gradient 0.

Conventions where a derivative does not exist or a naive formula would fail:

- `prod` and `cumprod` are zero-safe: the gradient is the product of the
  *other* entries, computed without dividing by zero, so it is exact with one
  zero (only the zero entry gets a gradient) and with several (all zero).
  Their second derivatives are exact wherever no entry is exactly 0.
- `max`, `min`, `amax`, `amin`: the gradient is split evenly among tied
  maxima (minima), `initial=` counted among them where it is the result (it is
  differentiated too); `where=` leaves entries out (gradient 0), as in `sum`. `ptp`
  splits both ends' the same way. A second derivative through a tie is refused
  (np.max(np.array([x, -x])) ** 2 is x ** 2, whose 2 no split gives): the shares go
  through `tie_weights`, a primitive whose derivative is refused where a tie decided
  them, as `larger_share`'s is for np.maximum. So do the max norms', nanmax's,
  nanmedian's and (in stats) the quantiles' and median's weights.
- `std` of a constant slice: gradient 0, not NaN, also where NumPy rounds the
  slice's mean (np.std(np.full(3, 0.1)) is 1.4e-17, not 0). The std has a kink
  there: its second derivative is refused (NonDifferentiableError).
- `np.linalg.norm` at 0: gradient 0 (for the 2-norm and Frobenius norm, the
  p-norms with p >= 1 and the max norm), not NaN. A norm is a cone there: the
  2-norm's and p-norms' second derivatives are refused (NonDifferentiableError). ord=1 and the 1-norm use
  sign(0) = 0 (`abs_slope`: a second derivative at a zero entry is refused, as abs's);
  the max norm's at 0 and on a tie is refused too. Covered: vector norms (ord None, 2, 1, inf, -inf, 0 and any
  p >= 1; `axis` an int or None for a 1-d input) and the Frobenius norm (ord
  None or 'fro' over two axes, or over every axis), and every matrix norm
  NumPy computes over two axes: 'nuc' (the gradient u @ vt of the reduced SVD),
  2 and -2 (the outer product of the largest, smallest, singular pair: at a
  repeated singular value that is one subgradient), 1, -1, inf, -inf (sign(x)
  on the column or row reaching the max, min, ties sharing evenly).
  A vector norm's ord is differentiated too (a number: (n / p) sum(r^p log r),
  r = |x| / n); the other norms are piecewise constant in it.
- The nan-reductions (nansum, nanmean, nanmax, nanmin, nanprod, nanvar, nanstd,
  nanmedian, nancumsum, nancumprod) leave the NaN entries out: those get gradient
  0, the others the rule of the reduction without NaN (nanmax and nanmin split the
  gradient evenly among tied maxima, minima, nanmedian among entries tied with the
  middle ones, as np.median's rule; nanprod and nancumprod read a NaN
  as 1, zero-safe as prod and cumprod; nanstd is 0 on a constant slice as std).
  An all-NaN slice (NaN result) gets gradient 0.
"""
from __future__ import annotations

import sys

import numpy as np

from adjoint.errors import NonDifferentiableError
from adjoint.rules.located import generated_from, unsupported
from adjoint.rules.registry import defjvp, deflinear, defnondiff, defvjp, lookup, primitive
from adjoint.runtime import abs_slope, expand_to, larger_share, ones_at_zeros, size_of, \
    stop_gradient, tie_weights, unbroadcast


def norm_kind(ndim, ord=None, axis=None):
    """Which norm `np.linalg.norm(x, ord, axis)` computes, for its derivative rule.

    One of "two" (2-norm, Frobenius), "one", "inf", "-inf", "zero" (counts
    nonzeros), "p" (a general vector p-norm), and for the other matrix norms
    "nuc", "spec" (2), "-spec" (-2), "col" (1), "-col" (-1), "row" (inf),
    "-row" (-inf). Called with constants, it folds away at compile time.
    """
    if axis is None and ord is None:
        return "two"  # the 2-norm of the flattened array, whatever its ndim
    if axis is None:
        matrix = ndim == 2
        if ndim > 2:
            raise ValueError("np.linalg.norm: improper number of dimensions to norm")
    else:
        axes = axis if isinstance(axis, (tuple, list)) else (axis,)
        matrix = len(axes) == 2
    if matrix:
        if ord is None or ord == "fro":
            return "two"
        kinds = {"nuc": "nuc", 2: "spec", -2: "-spec", 1: "col", -1: "-col", np.inf: "row",
                 -np.inf: "-row"}
        if isinstance(ord, (str, int, float)) and ord in kinds:
            return kinds[ord]
        raise ValueError(f"np.linalg.norm: invalid norm order {ord!r} for matrices")
    if isinstance(ord, str):
        raise ValueError(f"np.linalg.norm: invalid norm order {ord!r} for vectors")
    if ord is None or ord == 2:
        return "two"
    if ord == 1:
        return "one"
    if ord == np.inf:
        return "inf"
    if ord == -np.inf:
        return "-inf"
    if ord == 0:
        return "zero"
    return "p"


def matrix_axes(ndim, axis):
    """The two axes a matrix norm reduces, as non-negative ints."""
    axes = (0, 1) if axis is None else axis
    return (int(axes[0]) % ndim, int(axes[1]) % ndim)


primitive(np.sum, "np.sum")
primitive(np.mean, "np.mean")
primitive(np.prod, "np.prod")
primitive(np.max, "np.max")
primitive(np.min, "np.min")
if lookup(np.amax) is None:  # NumPy >= 2 keeps separate functions for amax/amin
    primitive(np.amax, "np.amax")
    primitive(np.amin, "np.amin")
primitive(np.var, "np.var")
primitive(np.std, "np.std")
primitive(np.cumsum, "np.cumsum")
primitive(np.cumprod, "np.cumprod")
primitive(np.linalg.norm, "np.linalg.norm")
primitive(norm_kind, "norm_kind", nondiff=True)
primitive(matrix_axes, "matrix_axes", nondiff=True)
defnondiff(norm_kind, matrix_axes)


# ------------------------------------------------------------------ sum, mean

def kept(x, where):
    """`x` where a reduction's `where=` keeps an entry, 0 where it leaves it out (None:
    every entry counts)."""
    if where is None:
        return x
    return np.where(where, x, 0.0)


@defvjp(np.sum)
def sum_vjp(g, ans, a, axis=None, dtype=None, out=None, keepdims=False, initial=None,
            where=None):
    # NumPy reduces a 0-d a along axis 0 or -1 too: a itself, no axis to put back
    if axis is not None:
        if np.ndim(a) == 0:
            return kept(g, where), None, None, None, None, _added_bar(g, initial)
    return kept(expand_to(g, a, axis, keepdims), where), None, None, None, None, \
        _added_bar(g, initial)


def _added_bar(g, initial):
    """The cotangent of sum's `initial=`, added to every entry of the result."""
    if initial is None:
        return None
    return np.sum(g)


@defjvp(np.sum)
def sum_jvp(ans, a, axis=None, dtype=None, out=None, keepdims=False, initial=None,
            where=None, a_dot=None, initial_dot=None):
    total = np.sum(kept(a_dot, where), axis=axis, keepdims=keepdims)
    if initial is None:
        return total
    return total + initial_dot


@deflinear(np.mean)
def mean_vjp(g, ans, a, axis=None, dtype=None, out=None, keepdims=False, where=True):
    if where is True:  # (NumPy's default: every entry counts)
        return expand_to(g, a, axis, keepdims) * (size_of(ans) / size_of(a))
    # the mean of the entries `where` keeps: each of them counts 1 / their number
    count = np.sum(np.where(where, 1.0, 0.0) * np.ones(np.shape(a)), axis=axis, keepdims=True)
    return kept(expand_to(g, a, axis, keepdims) / count, where)


# ------------------------------------------------------------------ nansum, nanmean, ptp

primitive(np.nansum, "np.nansum")
primitive(np.nanmean, "np.nanmean")
primitive(np.ptp, "np.ptp")


@defvjp(np.nansum)
def nansum_vjp(g, ans, a, axis=None, dtype=None, out=None, keepdims=False):
    # a NaN entry is left out of the sum: no gradient reaches it
    return np.where(np.isnan(a), 0.0, expand_to(g, a, axis, keepdims))


@defjvp(np.nansum)
def nansum_jvp(ans, a, axis=None, dtype=None, out=None, keepdims=False, a_dot=None):
    return np.sum(np.where(np.isnan(a), 0.0, a_dot), axis=axis, keepdims=keepdims)


@defvjp(np.nanmean)
def nanmean_vjp(g, ans, a, axis=None, dtype=None, out=None, keepdims=False):
    kept = np.sum(~np.isnan(a), axis=axis, keepdims=True)  # the entries averaged
    return np.where(np.isnan(a), 0.0, expand_to(g, a, axis, keepdims) / kept)


@defjvp(np.nanmean)
def nanmean_jvp(ans, a, axis=None, dtype=None, out=None, keepdims=False, a_dot=None):
    kept = np.sum(~np.isnan(a), axis=axis, keepdims=keepdims)
    return np.sum(np.where(np.isnan(a), 0.0, a_dot), axis=axis, keepdims=keepdims) / kept


def _extremes(a, axis):
    """The weights of max(a) - min(a) along `axis`: 1 at the maximum, -1 at the
    minimum, shared evenly among ties (as max's and min's rules share them)."""
    top = a == np.max(a, axis=axis, keepdims=True)
    low = a == np.min(a, axis=axis, keepdims=True)
    return top / tie_count(top, a, axis) - low / tie_count(low, a, axis)


@defvjp(np.ptp)
def ptp_vjp(g, ans, a, axis=None, out=None, keepdims=False):
    return expand_to(g, a, axis, keepdims) * _extremes(a, axis)


@defjvp(np.ptp)
def ptp_jvp(ans, a, axis=None, out=None, keepdims=False, a_dot=None):
    return np.sum(a_dot * _extremes(a, axis), axis=axis, keepdims=keepdims)


def _trapezoid_weights(y, dx, axis):
    """w with np.trapezoid(y, dx=dx, axis=axis) = sum(w * y, axis): dx at the inner
    points, dx / 2 at the two ends."""
    n = np.shape(y)[axis]
    w = dx * np.ones(n) - (0.5 * dx) * ((np.arange(n) == 0) + (np.arange(n) == n - 1))
    return np.moveaxis(np.broadcast_to(w, np.shape(np.moveaxis(y, axis, -1))), -1, axis)


if hasattr(np, "trapezoid"):  # NumPy >= 2.0
    primitive(np.trapezoid, "np.trapezoid")

    @defvjp(np.trapezoid)
    def trapezoid_vjp(g, ans, y, x=None, dx=1.0, axis=-1):
        if x is not None:
            _ = unsupported("np.trapezoid with sample points x has no derivative rule; "
                            "pass a uniform spacing dx")
        return np.expand_dims(g, axis) * _trapezoid_weights(y, dx, axis), None, \
            np.sum(g * ans) / dx

    @defjvp(np.trapezoid)
    def trapezoid_jvp(ans, y, x=None, dx=1.0, axis=-1, y_dot=None, x_dot=None, dx_dot=0.0):
        if x is not None:
            _ = unsupported("np.trapezoid with sample points x has no derivative rule; "
                            "pass a uniform spacing dx")
        return np.trapezoid(y_dot, None, dx, axis) + ans * (dx_dot / dx)


# ------------------------------------------------------------------ prod

def _products_of_others(a, axis):
    """For each entry, the product over `axis` of all the other entries: the product
    of those before it times the product of those after it. Cumulative products, no
    division: smooth where an entry is zero, so derivatives of it are right too."""
    if axis is None:
        x = np.ravel(a)
    elif np.ndim(axis) == 0:
        x = np.moveaxis(a, axis, -1)
    else:  # several axes: moved last, then flattened into one
        ends = np.arange(-np.size(axis), 0)
        moved = np.moveaxis(a, axis, ends)
        x = np.reshape(moved, np.shape(moved)[:np.ndim(moved) - np.size(axis)] + (-1,))
    one = np.ones_like(x[..., :1])
    before = np.cumprod(np.concatenate((one, x[..., :-1]), axis=-1), axis=-1)
    after = np.flip(np.cumprod(np.flip(np.concatenate((x[..., 1:], one), axis=-1), axis=-1),
                               axis=-1), axis=-1)
    if axis is None:
        return np.reshape(before * after, np.shape(a))
    if np.ndim(axis) == 0:
        return np.moveaxis(before * after, -1, axis)
    return np.moveaxis(np.reshape(before * after, np.shape(moved)), ends, axis)


def _factors(a, where):
    """prod's factors: the entries of a that `where=` keeps, 1 in place of the others."""
    if where is None:
        return a
    return np.where(where, a, 1.0)


def _times_initial(x, initial):
    if initial is None:
        return x
    return x * initial


@defvjp(np.prod)
def prod_vjp(g, ans, a, axis=None, dtype=None, out=None, keepdims=False, initial=None,
             where=None):
    # initial * the product of the kept entries: d / d a_i is initial times the product
    # of the other kept entries (no division by a_i, which may be zero); d / d initial
    # the product of the kept entries
    b = _factors(a, where)
    if initial is None:
        gi = None
    else:
        gi = np.sum(g * np.prod(b, axis=axis, keepdims=keepdims))
    if axis is not None:
        if np.ndim(a) == 0:
            return _times_initial(kept(g, where), initial), None, None, None, None, gi
    others = _products_of_others(b, axis)
    return _times_initial(kept(expand_to(g, a, axis, keepdims) * others, where), initial), \
        None, None, None, None, gi


@defjvp(np.prod)
def prod_jvp(ans, a, axis=None, dtype=None, out=None, keepdims=False, initial=None,
             where=None, a_dot=None, initial_dot=None):
    b = _factors(a, where)
    if axis is not None:
        if np.ndim(a) == 0:
            t = _times_initial(kept(a_dot, where), initial)
            if initial is None:
                return t
            return t + initial_dot * b
    t = _times_initial(np.sum(kept(a_dot, where) * _products_of_others(b, axis), axis=axis,
                              keepdims=keepdims), initial)
    if initial is None:
        return t
    return t + initial_dot * np.prod(b, axis=axis, keepdims=keepdims)


# ------------------------------------------------------------------ max, min

def tie_count(mask, x, axis, keepdims=True, tied=False):
    """How many entries `mask` marks along `axis` (they share a gradient evenly), a float
    through tie_weights: a second derivative through a tie (a count above 1, or `tied`) is
    refused. (A float: an int is no value that a derivative reaches.)"""
    count = np.sum(mask, axis=axis, keepdims=keepdims)
    return tie_weights(1.0 * count, x, (count > 1) | tied)


def _extremum_count(ans, a, axis, keepdims, initial, where):
    """How many of the values max (min) chose from equal its result, shaped like it: the
    entries `where` keeps, and `initial` when given. Ties share the gradient evenly."""
    count = np.sum(kept(a == expand_to(ans, a, axis, keepdims), where), axis=axis,
                   keepdims=keepdims)
    if initial is not None:
        count = count + (ans == initial)
    # a float (an int is no value a derivative reaches), through tie_weights: a second
    # derivative through a tie is refused
    return tie_weights(1.0 * count, a, count > 1)


def _extremum_bar(g, ans, a, axis, keepdims, initial, where):
    """The cotangent of a, for max (min) with `initial=` or `where=`."""
    if axis is not None:
        if np.ndim(a) == 0:  # (a 0-d a: no axis to put back)
            return kept(g * (a == ans) / _extremum_count(ans, a, None, keepdims, initial,
                                                         where), where)
    share = g / _extremum_count(ans, a, axis, keepdims, initial, where)
    return kept(expand_to(share, a, axis, keepdims) * (a == expand_to(ans, a, axis, keepdims)),
                where)


def _initial_bar(g, ans, a, axis, keepdims, initial, where):
    """The cotangent of max's (min's) `initial=`, where it is the result."""
    if initial is None:
        return None
    if axis is not None:
        if np.ndim(a) == 0:
            axis = None
    return np.sum(g * (ans == initial) / _extremum_count(ans, a, axis, keepdims, initial,
                                                         where))


@defvjp(np.amin)
@defvjp(np.min)
@defvjp(np.amax)
@defvjp(np.max)
def max_vjp(g, ans, a, axis=None, out=None, keepdims=False, initial=None, where=None):
    if initial is not None or where is not None:
        return _extremum_bar(g, ans, a, axis, keepdims, initial, where), None, None, None, \
            _initial_bar(g, ans, a, axis, keepdims, initial, where)
    # NumPy reduces a 0-d a along axis 0 or -1 too: a itself, no axis to put back
    if axis is not None:
        if np.ndim(a) == 0:
            return g
    mask = a == expand_to(ans, a, axis, keepdims)  # ties share the gradient evenly
    return expand_to(g, a, axis, keepdims) * mask / tie_count(mask, a, axis)


@defjvp(np.amin)
@defjvp(np.min)
@defjvp(np.amax)
@defjvp(np.max)
def max_jvp(ans, a, axis=None, out=None, keepdims=False, initial=None, where=None,
            a_dot=None, initial_dot=None):
    if initial is not None or where is not None:
        if axis is not None:
            if np.ndim(a) == 0:
                axis = None
        count = _extremum_count(ans, a, axis, keepdims, initial, where)
        chosen = np.sum(kept(a_dot * (a == expand_to(ans, a, axis, keepdims)), where),
                        axis=axis, keepdims=keepdims)
        if initial is None:
            return chosen / count
        return (chosen + initial_dot * (ans == initial)) / count
    if axis is not None:
        if np.ndim(a) == 0:
            return a_dot
    mask = a == expand_to(ans, a, axis, keepdims)
    return (np.sum(a_dot * mask, axis=axis, keepdims=keepdims)
            / tie_count(mask, a, axis, keepdims))


# ------------------------------------------------------------------ var, std

def _centered(a, axis):
    """`a` minus its mean along `axis`, exactly 0 on a constant slice. NumPy may round
    the mean of constant data (np.std(np.full(3, 0.1)) is 1.4e-17, not 0), and those
    residues over that std made an O(1) gradient (round 16, S5); shifted first by the
    slice's minimum, a constant slice is all 0 before its mean is taken. The shift
    cancels in the value, so it is a constant to the differentiator."""
    shifted = a - stop_gradient(np.min(a, axis=axis, keepdims=True))
    return shifted - np.mean(shifted, axis=axis, keepdims=True)


@defvjp(np.var)
def var_vjp(g, ans, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    centered = _centered(a, axis)
    n = size_of(a) / size_of(ans)
    return expand_to(g, a, axis, keepdims) * centered * (2.0 / (n - ddof))


@defjvp(np.var)
def var_jvp(ans, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, a_dot=None):
    centered = _centered(a, axis)
    n = size_of(a) / size_of(ans)
    return np.sum(a_dot * centered, axis=axis, keepdims=keepdims) * (2.0 / (n - ddof))


def _std_divisor(ans, centered, axis, keepdims):
    """The std to divide by: 1 on a constant slice (centered all 0, gradient 0, not 0/0;
    NumPy's std there may be 1e-17, not 0). The std has a kink there (|t| std(u) along
    any u): no second derivative, and ones_at_zeros's derivative refuses at that 0
    (it gave a finite number)."""
    constant = np.all(centered == 0.0, axis=axis, keepdims=keepdims)
    return ones_at_zeros(np.where(constant, 0.0, ans))


@defvjp(np.std)
def std_vjp(g, ans, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    centered = _centered(a, axis)
    n = size_of(a) / size_of(ans)
    s = expand_to(_std_divisor(ans, centered, axis, keepdims), a, axis, keepdims)
    return expand_to(g, a, axis, keepdims) * centered / (s * (n - ddof))


@defjvp(np.std)
def std_jvp(ans, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, a_dot=None):
    centered = _centered(a, axis)
    n = size_of(a) / size_of(ans)
    return (np.sum(a_dot * centered, axis=axis, keepdims=keepdims)
            / (_std_divisor(ans, centered, axis, keepdims) * (n - ddof)))


# ------------------------------------------------------------------ scans

@deflinear(np.cumsum)
def cumsum_vjp(g, ans, a, axis=None, dtype=None, out=None):
    if axis is None:  # the scan ran over the flattened array
        return np.reshape(np.flip(np.cumsum(np.flip(g))), np.shape(a))
    return np.flip(np.cumsum(np.flip(g, axis), axis), axis)


@defvjp(np.cumprod)
def cumprod_vjp(g, ans, a, axis=None, dtype=None, out=None):
    # d ans_i / d a_k = prod_{j <= i, j != k} a_j for k <= i. Let z be the first zero:
    # for k < z the sum over i is revcumsum(g * ans)_k / a_k (terms past z vanish);
    # at k = z it is revcumsum(g * skip)_z, skip being the scan that omits a_z;
    # past z every term holds a_z = 0.
    if axis is None:
        x = np.ravel(a)
        ax = 0
    else:
        x = a
        ax = axis
    zero = x == 0.0
    nzeros = np.cumsum(zero, ax)
    before = nzeros == 0
    first = zero & (nzeros == 1)
    safe = ones_at_zeros(x)  # its derivative refuses a zero: see no_zeros
    skip = np.cumprod(np.where(first, 1.0, x), ax)
    tail = np.flip(np.cumsum(np.flip(g * ans, ax), ax), ax)
    tail_skip = np.flip(np.cumsum(np.flip(g * skip, ax), ax), ax)
    gx = np.where(before, tail / safe, np.where(first, tail_skip, 0.0))
    if axis is None:
        return np.reshape(gx, np.shape(a))
    return gx


@defjvp(np.cumprod)
def cumprod_jvp(ans, a, axis=None, dtype=None, out=None, a_dot=None):
    if axis is None:
        x = np.ravel(a)
        x_dot = np.ravel(a_dot)
        ax = 0
    else:
        x = a
        x_dot = a_dot
        ax = axis
    zero = x == 0.0
    nzeros = np.cumsum(zero, ax)
    before = nzeros == 0
    first = zero & (nzeros == 1)
    safe = ones_at_zeros(x)  # its derivative refuses a zero: see no_zeros
    skip = np.cumprod(np.where(first, 1.0, x), ax)
    at_first = np.sum(np.where(first, x_dot, 0.0), axis=ax, keepdims=True)
    return np.where(before, ans * np.cumsum(x_dot / safe, ax), at_first * skip)


def _scan_axis(axis):
    """The axis np.cumulative_sum (np.cumulative_prod) scans: `axis`, or 0 for a 1-d x
    (NumPy asks for an axis on more dimensions)."""
    if axis is None:
        return 0
    return axis


def _without_initial(x, axis, include_initial):
    """A scan's result (or cotangent) without the leading entry that include_initial=True
    adds along `axis`."""
    if not include_initial:
        return x
    return np.moveaxis(np.moveaxis(x, axis, 0)[1:], 0, axis)


def _with_initial(x, axis, include_initial):
    """A scan's tangent with a leading 0 along `axis` where include_initial=True adds the
    initial entry (a constant, 0 or 1)."""
    if not include_initial:
        return x
    moved = np.moveaxis(x, axis, 0)
    return np.moveaxis(np.concatenate((0.0 * moved[:1], moved)), 0, axis)


if hasattr(np, "cumulative_sum"):  # NumPy >= 2.1
    primitive(np.cumulative_sum, "np.cumulative_sum")
    primitive(np.cumulative_prod, "np.cumulative_prod")

    @deflinear(np.cumulative_sum)
    def cumulative_sum_vjp(g, ans, x, axis=None, dtype=None, out=None, include_initial=False):
        ax = _scan_axis(axis)
        return cumsum_vjp(_without_initial(g, ax, include_initial), ans, x, ax)

    @defvjp(np.cumulative_prod)
    def cumulative_prod_vjp(g, ans, x, axis=None, dtype=None, out=None,
                            include_initial=False):
        ax = _scan_axis(axis)
        return cumprod_vjp(_without_initial(g, ax, include_initial),
                           _without_initial(ans, ax, include_initial), x, ax)

    @defjvp(np.cumulative_prod)
    def cumulative_prod_jvp(ans, x, axis=None, dtype=None, out=None, include_initial=False,
                            x_dot=None):
        ax = _scan_axis(axis)
        return _with_initial(cumprod_jvp(_without_initial(ans, ax, include_initial), x, ax,
                                        None, None, x_dot), ax, include_initial)


def no_zeros(v, x, what):
    """`v`, where `x` holds no exact zero. A zero-safe first derivative (cumprod's) is
    piecewise, and its own derivative is wrong at a zero: refuse rather than guess,
    at the user's line. On a lazy array the check runs when `v` is computed."""
    if hasattr(x, "map_blocks"):  # a dask array
        def check(any_zero):
            no_zeros(0.0, any_zero, what)  # raises on a zero
            return np.zeros_like(any_zero, dtype=float)
        return v + np.any(x == 0.0).map_blocks(check, dtype=float)
    if np.any(np.asarray(x) == 0.0):
        raise NonDifferentiableError(
            f"the derivative of the gradient of {what} is not supported (it would be wrong "
            "there)", generated_from(sys._getframe(1)),
            "the first derivative is right there; move off that point for the second")
    return v


primitive(ones_at_zeros, "ones_at_zeros")
primitive(size_of, "size_of", nondiff=True)
# what divides by ones_at_zeros: its derivative's refusal names them
ZERO_SAFE = ("np.cumprod at an exact zero of its input, of np.std on a constant slice, or "
             "of a 2- or p-norm or np.hypot at 0,")
primitive(no_zeros, "no_zeros")


@defvjp(ones_at_zeros)
def ones_at_zeros_vjp(g, ans, x):
    return no_zeros(g, x, ZERO_SAFE)


@defjvp(ones_at_zeros)
def ones_at_zeros_jvp(ans, x, x_dot):
    return no_zeros(x_dot, x, ZERO_SAFE)


primitive(abs_slope, "abs_slope")
KINK = "np.abs (or abs) at 0, where its slope jumps from -1 to 1,"


@defvjp(abs_slope)
def abs_slope_vjp(g, ans, x):
    return no_zeros(np.zeros_like(x, dtype=float), x, KINK)


@defjvp(abs_slope)
def abs_slope_jvp(ans, x, x_dot):
    return no_zeros(np.zeros_like(x, dtype=float), x, KINK)


primitive(larger_share, "larger_share")
TIE = ("a maximum or minimum on a tie (np.maximum, np.fmax, max, min, np.clip at a bound), "
       "where the slope jumps from 0 to 1,")


@defvjp(larger_share)
def larger_share_vjp(g, ans, x1, x2):
    zero = no_zeros(np.zeros_like(ans, dtype=float), x1 - x2, TIE)
    return unbroadcast(zero, x1), unbroadcast(zero, x2)


@defjvp(larger_share)
def larger_share_jvp(ans, x1, x2, x1_dot=None, x2_dot=None):
    return no_zeros(np.zeros_like(ans, dtype=float), x1 - x2, TIE)


primitive(tie_weights, "tie_weights")
TIES = ("a reduction that chose among tied entries (np.max, np.min, np.ptp, np.median, "
        "np.quantile, a max norm), where the weights jump,")


def _refused_where(tied):
    """A zero where `tied` holds and one elsewhere: what no_zeros refuses at."""
    return np.where(tied, 0.0, 1.0)


@defvjp(tie_weights)
def tie_weights_vjp(g, ans, w, x, tied):
    # linear in w (the value is w); piecewise constant in x, refused where it jumps
    return g, no_zeros(np.zeros_like(x, dtype=float), _refused_where(tied), TIES), None


@defjvp(tie_weights)
def tie_weights_jvp(ans, w, x, tied, w_dot=None, x_dot=None):
    if x_dot is None:
        return w_dot
    jump = no_zeros(np.zeros_like(ans, dtype=float), _refused_where(tied), TIES)
    if w_dot is None:
        return jump
    return w_dot + jump


@defvjp(no_zeros)
def no_zeros_vjp(g, ans, v, x, what):
    return no_zeros(g, x, what), None, None


@defjvp(no_zeros)
def no_zeros_jvp(ans, v, x, what, v_dot):
    return no_zeros(v_dot, x, what)


# ------------------------------------------------------------------ norm

def _matrix_norm_weight(x, kind):
    """d norm / d x for a matrix norm of the last two axes of x (a stack of matrices)."""
    if kind == "nuc" or kind == "spec" or kind == "-spec":
        u, sv, vt = np.linalg.svd(x, full_matrices=False)
        # a zero singular value adds nothing (its vectors are arbitrary): the norms of a
        # zero matrix have gradient 0, as the vector norms at 0 do
        # (np.multiply: a `*` of svd's unpacked result could be a list's repetition
        # to the second derivative, which only follows kinds a call observed)
        vt = np.multiply(vt, (sv > 0.0)[..., :, None])
        if kind == "spec":
            return u[..., :, :1] @ vt[..., :1, :]
        if kind == "-spec":
            return u[..., :, -1:] @ vt[..., -1:, :]
        return u @ vt
    # 1, -1 sum |x| down each column, inf, -inf along each row; the max (min) one counts
    along = -2 if kind == "col" or kind == "-col" else -1
    across = -1 if along == -2 else -2
    sums = np.sum(np.abs(x), axis=along, keepdims=True)
    if kind == "col" or kind == "row":
        best = np.max(sums, axis=across, keepdims=True)
    else:
        best = np.min(sums, axis=across, keepdims=True)
    mask = sums == best
    # (abs_slope, tie_count: a second derivative at a zero entry or on a tie is refused)
    return abs_slope(x) * mask / tie_count(mask, x, across)


def _matrix_norm_grad(x, kind, axis):
    axes = matrix_axes(np.ndim(x), axis)
    w = _matrix_norm_weight(np.moveaxis(x, axes, (-2, -1)), kind)
    return np.moveaxis(w, (-2, -1), axes)


def _norm_in_ord(ans, x, ord, axis, keepdims, kind):
    """d norm / d ord, of the output's shape: for a vector p-norm (sum |x|^p)^(1/p)
    it is (n / p) sum(r^p log r), r = |x| / n (0 at x = 0); the other norms are
    piecewise constant in ord."""
    if kind == "two" or kind == "one" or kind == "p":
        n = expand_to(ans, x, axis, keepdims)
        r = np.abs(x) / (n + (n == 0.0))
        safe = np.where(r > 0.0, r, 1.0)  # r^p log r -> 0 as r -> 0
        terms = np.where(r > 0.0, np.power(safe, ord) * np.log(safe), 0.0)
        return ans / ord * np.sum(terms, axis=axis, keepdims=keepdims)
    return 0.0 * ans


def _max_abs_count(mask, x, top, axis, keepdims):
    """How many entries reach the max (min) norm, whose gradient is sign(x) on them: a
    second derivative is refused on a tie and where the norm is 0 (|x|'s kink; elsewhere
    the entries that reach it are not 0, and their sign is constant)."""
    return tie_count(mask, x, axis, keepdims, np.any(top == 0.0))


def _norm_ord_bar(g, ans, x, ord, axis, keepdims, kind):
    """ord's cotangent: None unless ord is a float (an int or a string is never active)."""
    if not isinstance(ord, float):
        return None
    return np.sum(g * _norm_in_ord(ans, x, ord, axis, keepdims, kind))


@defvjp(np.linalg.norm)
def norm_vjp(g, ans, x, ord=None, axis=None, keepdims=False):
    kind = norm_kind(np.ndim(x), ord, axis)
    bars = _norm_x_bar(g, ans, x, ord, axis, keepdims, kind)
    return bars, _norm_ord_bar(g, ans, x, ord, axis, keepdims, kind)


def _x_kind(kind, ord):
    """The norm's kind for the derivative in x: a float ord (which may vary) of the
    2-norm or the 1-norm is a p-norm's, whose gradient in x has a derivative in ord
    (the 2-norm's x / n has none: that mixed derivative was 0)."""
    if isinstance(ord, float) and (kind == "two" or kind == "one"):
        return "p"
    return kind


def _norm_x_bar(g, ans, x, ord, axis, keepdims, kind):
    kind = _x_kind(kind, ord)
    gx = expand_to(g, x, axis, keepdims)
    if kind == "two":
        n = expand_to(ones_at_zeros(ans), x, axis, keepdims)
        return gx * x / n  # 0 at x == 0, not 0/0 (and no second derivative there)
    if kind == "one":
        return gx * abs_slope(x)  # (its second derivative at a zero entry: refused)
    if kind == "zero":
        return gx * 0.0
    if kind == "p":
        n = expand_to(ones_at_zeros(ans), x, axis, keepdims)
        return gx * np.sign(x) * np.power(np.abs(x) / n, ord - 1.0)
    if kind == "inf" or kind == "-inf":
        top = expand_to(ans, x, axis, keepdims)
        mask = np.abs(x) == top  # ties share evenly
        return gx * np.sign(x) * mask / _max_abs_count(mask, x, top, axis, True)
    return gx * _matrix_norm_grad(x, kind, axis)  # a matrix norm other than Frobenius


@defjvp(np.linalg.norm)
def norm_jvp(ans, x, ord=None, axis=None, keepdims=False, x_dot=None, ord_dot=None):
    return _norm_dot(ans, x, ord, axis, keepdims, x_dot, ord_dot,
                     norm_kind(np.ndim(x), ord, axis))


def _norm_dot(ans, x, ord, axis, keepdims, x_dot, ord_dot, kind):
    if not isinstance(ord, float):  # an int or a string is never active
        return _norm_x_dot(ans, x, ord, axis, keepdims, x_dot, kind)
    return (_norm_x_dot(ans, x, ord, axis, keepdims, x_dot, kind)
            + _norm_in_ord(ans, x, ord, axis, keepdims, kind) * ord_dot)


def _norm_x_dot(ans, x, ord, axis, keepdims, x_dot, kind):
    kind = _x_kind(kind, ord)
    if kind == "two":
        return np.sum(x_dot * x, axis=axis, keepdims=keepdims) / ones_at_zeros(ans)
    if kind == "one":
        return np.sum(x_dot * abs_slope(x), axis=axis, keepdims=keepdims)
    if kind == "zero":
        return ans * 0.0
    if kind == "p":
        n = expand_to(ones_at_zeros(ans), x, axis, keepdims)
        w = np.sign(x) * np.power(np.abs(x) / n, ord - 1.0)
        return np.sum(x_dot * w, axis=axis, keepdims=keepdims)
    if kind == "inf" or kind == "-inf":
        top = expand_to(ans, x, axis, keepdims)
        mask = np.abs(x) == top
        return (np.sum(x_dot * np.sign(x) * mask, axis=axis, keepdims=keepdims)
                / _max_abs_count(mask, x, top, axis, keepdims))
    return np.sum(x_dot * _matrix_norm_grad(x, kind, axis), axis=axis, keepdims=keepdims)


if hasattr(np.linalg, "vector_norm"):  # NumPy >= 2.0: the array API's two halves of norm
    primitive(np.linalg.vector_norm, "np.linalg.vector_norm")
    primitive(np.linalg.matrix_norm, "np.linalg.matrix_norm")

    @defvjp(np.linalg.vector_norm)
    def vector_norm_vjp(g, ans, x, axis=None, keepdims=False, ord=2):
        # a vector norm over `axis`, whatever x's ndim (every axis for None): the kind
        # np.linalg.norm gives a 1-d x
        kind = norm_kind(1, ord, None)
        return _norm_x_bar(g, ans, x, ord, axis, keepdims, kind), None, None, \
            _norm_ord_bar(g, ans, x, ord, axis, keepdims, kind)

    @defjvp(np.linalg.vector_norm)
    def vector_norm_jvp(ans, x, axis=None, keepdims=False, ord=2, x_dot=None, ord_dot=None):
        return _norm_dot(ans, x, ord, axis, keepdims, x_dot, ord_dot, norm_kind(1, ord, None))

    @defvjp(np.linalg.matrix_norm)
    def matrix_norm_vjp(g, ans, x, keepdims=False, ord="fro"):
        # np.linalg.norm over the last two axes
        kind = norm_kind(np.ndim(x), ord, (-2, -1))
        return _norm_x_bar(g, ans, x, ord, (-2, -1), keepdims, kind), None, \
            _norm_ord_bar(g, ans, x, ord, (-2, -1), keepdims, kind)

    @defjvp(np.linalg.matrix_norm)
    def matrix_norm_jvp(ans, x, keepdims=False, ord="fro", x_dot=None, ord_dot=None):
        return _norm_dot(ans, x, ord, (-2, -1), keepdims, x_dot, ord_dot,
                         norm_kind(np.ndim(x), ord, (-2, -1)))


# ------------------------------------------------------------------ nan-reductions

for _nan_form in (np.nanmax, np.nanmin, np.nanprod, np.nanvar, np.nanstd, np.nancumsum,
                  np.nancumprod):
    primitive(_nan_form, "np." + _nan_form.__name__)


def _nan_extremes(ans, a, axis, keepdims):
    """The entries equal to the reduced `ans`, and 1 / their number (ties share). A NaN
    entry never equals it; an all-NaN slice (ans NaN) has none."""
    mask = a == expand_to(ans, a, axis, keepdims)
    count = np.sum(mask, axis=axis, keepdims=True)
    return mask, tie_weights(1.0 / np.maximum(count, 1), a, count > 1)


@defvjp(np.nanmin)
@defvjp(np.nanmax)
def nanmax_vjp(g, ans, a, axis=None, out=None, keepdims=False):
    if axis is not None:
        if np.ndim(a) == 0:
            return np.where(np.isnan(a), 0.0, g)
    mask, share = _nan_extremes(ans, a, axis, keepdims)
    # np.where, not a product: the cotangent of an all-NaN slice's NaN may be NaN itself
    return np.where(mask, expand_to(g, a, axis, keepdims) * share, 0.0)


@defjvp(np.nanmin)
@defjvp(np.nanmax)
def nanmax_jvp(ans, a, axis=None, out=None, keepdims=False, a_dot=None):
    if axis is not None:
        if np.ndim(a) == 0:
            return np.where(np.isnan(a), 0.0, a_dot)
    mask, share = _nan_extremes(ans, a, axis, keepdims)
    return np.sum(np.where(mask, a_dot * share, 0.0), axis=axis, keepdims=keepdims)


@defvjp(np.nanprod)
def nanprod_vjp(g, ans, a, axis=None, dtype=None, out=None, keepdims=False):
    if axis is not None:
        if np.ndim(a) == 0:
            return np.where(np.isnan(a), 0.0, g)
    # NaN entries count as 1: the product of the others, as prod's rule (zero-safe)
    others = _products_of_others(np.where(np.isnan(a), 1.0, a), axis)
    return np.where(np.isnan(a), 0.0, expand_to(g, a, axis, keepdims) * others)


@defjvp(np.nanprod)
def nanprod_jvp(ans, a, axis=None, dtype=None, out=None, keepdims=False, a_dot=None):
    if axis is not None:
        if np.ndim(a) == 0:
            return np.where(np.isnan(a), 0.0, a_dot)
    others = _products_of_others(np.where(np.isnan(a), 1.0, a), axis)
    return np.sum(np.where(np.isnan(a), 0.0, a_dot * others), axis=axis, keepdims=keepdims)


def _nan_centered(a, axis):
    """`a` minus the mean of its non-NaN entries along `axis`, 0 at the NaN entries and
    exactly 0 on a constant slice (shifted by its minimum first, as `_centered`)."""
    shifted = a - stop_gradient(np.nanmin(a, axis=axis, keepdims=True))
    return np.where(np.isnan(a), 0.0, shifted - np.nanmean(shifted, axis=axis, keepdims=True))


def _kept(a, axis, keepdims):
    """How many entries a nan-reduction along `axis` counts: the non-NaN ones."""
    return np.sum(~np.isnan(a), axis=axis, keepdims=keepdims)


@defvjp(np.nanvar)
def nanvar_vjp(g, ans, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    # (np.where: an all-NaN slice divides by a count of 0, and its entries get 0)
    return np.where(np.isnan(a), 0.0, expand_to(g, a, axis, keepdims) * _nan_centered(a, axis)
                    * (2.0 / (_kept(a, axis, True) - ddof)))


@defjvp(np.nanvar)
def nanvar_jvp(ans, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, a_dot=None):
    centered = _nan_centered(a, axis)
    return (np.sum(np.where(np.isnan(a), 0.0, a_dot) * centered, axis=axis, keepdims=keepdims)
            * (2.0 / (_kept(a, axis, keepdims) - ddof)))


@defvjp(np.nanstd)
def nanstd_vjp(g, ans, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False):
    centered = _nan_centered(a, axis)
    s = expand_to(_std_divisor(ans, centered, axis, keepdims), a, axis, keepdims)
    return np.where(np.isnan(a), 0.0,
                    expand_to(g, a, axis, keepdims) * centered / (s * (_kept(a, axis, True) - ddof)))


@defjvp(np.nanstd)
def nanstd_jvp(ans, a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, a_dot=None):
    centered = _nan_centered(a, axis)
    return (np.sum(np.where(np.isnan(a), 0.0, a_dot) * centered, axis=axis, keepdims=keepdims)
            / (_std_divisor(ans, centered, axis, keepdims) * (_kept(a, axis, keepdims) - ddof)))


@defvjp(np.nancumsum)
def nancumsum_vjp(g, ans, a, axis=None, dtype=None, out=None):
    # NaN entries are read as 0: no gradient reaches them
    return np.where(np.isnan(a), 0.0, cumsum_vjp(g, ans, a, axis))


@defjvp(np.nancumsum)
def nancumsum_jvp(ans, a, axis=None, dtype=None, out=None, a_dot=None):
    return np.cumsum(np.where(np.isnan(a), 0.0, a_dot), axis=axis)


@defvjp(np.nancumprod)
def nancumprod_vjp(g, ans, a, axis=None, dtype=None, out=None):
    # NaN entries are read as 1: cumprod's rule (zero-safe) on that array, 0 at the NaNs
    ones = np.where(np.isnan(a), 1.0, a)
    return np.where(np.isnan(a), 0.0, cumprod_vjp(g, ans, ones, axis))


@defjvp(np.nancumprod)
def nancumprod_jvp(ans, a, axis=None, dtype=None, out=None, a_dot=None):
    ones = np.where(np.isnan(a), 1.0, a)
    return cumprod_jvp(ans, ones, axis, None, None, np.where(np.isnan(a), 0.0, a_dot))


def nanmedian_weights(a, axis=None):
    """w with np.nanmedian(a, axis) == np.sum(w * a, axis) over the non-NaN entries: 1/2
    to the sorted entries on either side of the middle (1 to the middle one of an odd
    count), shared evenly among entries tied with them, as np.median's rule shares them;
    0 at the NaN entries (and on an all-NaN slice). Piecewise constant: derivative 0."""
    a = np.asarray(a, dtype=float)
    below = np.nanquantile(a, 0.5, axis=axis, method="lower", keepdims=True)
    above = np.nanquantile(a, 0.5, axis=axis, method="higher", keepdims=True)
    at_below, at_above = a == below, a == above
    return (0.5 * at_below / np.maximum(np.sum(at_below, axis=axis, keepdims=True), 1)
            + 0.5 * at_above / np.maximum(np.sum(at_above, axis=axis, keepdims=True), 1))


def nanmedian_ties(a, axis=None):
    """Whether a tie decides nanmedian_weights: more entries equal to a middle value than
    the sorted positions the median reads there (1, or 2 where both middle entries of an
    even count are equal), so that the sharing moved weight between them."""
    a = np.asarray(a, dtype=float)
    below = np.nanquantile(a, 0.5, axis=axis, method="lower", keepdims=True)
    above = np.nanquantile(a, 0.5, axis=axis, method="higher", keepdims=True)
    n_below = np.sum(a == below, axis=axis, keepdims=True)
    n_above = np.sum(a == above, axis=axis, keepdims=True)
    middle = 2 - np.sum(~np.isnan(a), axis=axis, keepdims=True) % 2
    return np.any(np.where(below == above, n_below > middle, (n_below > 1) | (n_above > 1)))


def _nanmedian_weights(a, axis):
    """nanmedian_weights through tie_weights: a second derivative through a tie is refused."""
    return tie_weights(nanmedian_weights(a, axis), a, nanmedian_ties(a, axis))


primitive(np.nanmedian, "np.nanmedian")
primitive(nanmedian_weights, "nanmedian_weights", nondiff=True)
primitive(nanmedian_ties, "nanmedian_ties", nondiff=True)
defnondiff(nanmedian_weights, nanmedian_ties)


@defvjp(np.nanmedian)
def nanmedian_vjp(g, ans, a, axis=None, out=None, overwrite_input=False, keepdims=False):
    w = _nanmedian_weights(a, axis)
    return np.where(w > 0.0, expand_to(g, a, axis, keepdims) * w, 0.0)


@defjvp(np.nanmedian)
def nanmedian_jvp(ans, a, axis=None, out=None, overwrite_input=False, keepdims=False,
                  a_dot=None):
    w = _nanmedian_weights(a, axis)
    return np.sum(np.where(w > 0.0, a_dot * w, 0.0), axis=axis, keepdims=keepdims)
