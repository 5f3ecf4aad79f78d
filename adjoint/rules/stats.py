"""Statistics: `np.median`, `np.quantile`, `np.percentile`, `np.average`, `np.cov`
and `np.corrcoef`.

A quantile is a weighted sum of the entries of its input, with weights that depend
only on their order (`quantile_weights`): the rules route the cotangent through
those weights, and the weights themselves are piecewise constant. Where two
entries tie, the derivative does not exist; tied entries share their weight
evenly, as `np.max`'s rule shares a tie (the median of [1, 2, 2] sends half of its
gradient to each 2). A second derivative through such a tie is refused, where the
sharing moved weight between the tied entries (`order_weights`: np.median of
[x, -x, 5] squared is x ** 2, whose 2 no share gives); the median of two equal
entries, which weighs both alike, is no tie to it. Covered: `axis` (None, an int or a tuple), `keepdims`, an
array of q, and the methods 'linear' (the default), 'lower', 'higher',
'midpoint' and 'nearest'; quantiles with `weights=` are refused when the
gradient runs.

The linear quantile is differentiable in q too: (n - 1) times the step between
the two sorted entries around q (n - 1). At a q where q (n - 1) is a whole
number the slope jumps; the rule gives the mean of the slopes on either side
(the limit of central differences), with a zero slope past the ends. The other
methods are piecewise constant in q: derivative 0.

`np.average` is differentiable in `a` and in `weights` (with `returned=False`).
`np.cov` in `m`, `y` and `aweights` (`fweights` are integers), for every
`rowvar`, `bias` and `ddof`; `np.corrcoef` in `x` and `y`.
"""
from __future__ import annotations

import numpy as np

from adjoint.rules.located import unsupported
from adjoint.rules.registry import defjvp, defnondiff, defvjp, primitive
from adjoint.rules.shape import unarray
from adjoint.runtime import expand_to, stop_gradient, tie_weights, unbroadcast


# ------------------------------------------------------------------ helpers

def _sorted_weights(x, q, method):
    """x's entries sorted, the order that sorts them, and the weight of each sorted
    position (q's shape + x's): 1 - frac and frac at the two around q (n - 1)."""
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    order = np.argsort(x, axis=-1, kind="stable")
    s = np.take_along_axis(x, order, -1)
    v = np.asarray(q, dtype=float) * (n - 1)  # NumPy's virtual index
    lo = np.floor(v)
    frac = v - lo
    if method == "lower":
        frac = 0.0 * v
    elif method == "higher":
        lo, frac = np.ceil(v), 0.0 * v
    elif method == "nearest":
        lo, frac = np.around(v), 0.0 * v
    elif method == "midpoint":
        frac = np.where(frac == 0.0, 0.0, 0.5)
    elif method != "linear":
        raise ValueError(f"quantile_weights: method {method!r}")
    k = np.arange(n)
    lo = np.minimum(lo, n - 1).astype(int)[..., None]
    hi = np.minimum(lo + 1, n - 1)
    frac = frac[..., None]
    at = (1.0 - frac) * (k == lo) + frac * (k == hi)  # q's shape + (n,)
    rest = x.shape[:-1]
    at = np.reshape(at, np.shape(v) + (1,) * len(rest) + (n,))
    shape = np.shape(v) + x.shape
    at = np.broadcast_to(at, shape)
    return s, order, at


def quantile_weights(x, q, method="linear"):
    """W, of shape np.shape(q) + np.shape(x), with np.quantile(x, q, axis=-1, method)
    == np.sum(W * x, axis=-1): the weights of the sorted entries at the positions
    around q (n - 1), given back to the entries they came from. Tied entries share
    their weight evenly. W changes only where two entries of x swap order."""
    s, order, at = _sorted_weights(x, q, method)
    n = s.shape[-1]
    k = np.arange(n)
    shape = at.shape
    # each run of equal sorted values shares the weight that lands on it
    new = np.ones(s.shape, dtype=bool)
    new[..., 1:] = s[..., 1:] != s[..., :-1]
    end = np.ones(s.shape, dtype=bool)
    end[..., :-1] = new[..., 1:]
    first = np.maximum.accumulate(np.where(new, k, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(end, k, n - 1), -1), -1), -1)
    before = np.concatenate((np.zeros(shape[:-1] + (1,)), np.cumsum(at, axis=-1)), axis=-1)
    total = (np.take_along_axis(before, np.broadcast_to(last + 1, shape), -1)
             - np.take_along_axis(before, np.broadcast_to(first, shape), -1))
    share = total / np.broadcast_to(last - first + 1, shape)
    w = np.zeros(shape)
    np.put_along_axis(w, np.broadcast_to(order, shape), share, -1)
    return w


def quantile_ties(x, q, method="linear"):
    """Whether a tie among the entries of x decides quantile_weights: two equal sorted
    entries whose positions weigh differently (the sharing moved weight between them;
    where they weigh the same, as the median's two middle ones, no order changes W)."""
    s, order, at = _sorted_weights(x, q, method)
    return np.any((s[..., 1:] == s[..., :-1]) & (at[..., 1:] != at[..., :-1]))


def order_weights(x, q, method="linear"):
    """quantile_weights(x, q, method), through tie_weights: its derivative in x is 0,
    refused where a tie decides the weights (np.median(np.array([x, -x, 5.0])) ** 2 is
    x ** 2, whose 2 no share gives)."""
    return tie_weights(quantile_weights(x, q, method), x, quantile_ties(x, q, method))


primitive(quantile_weights, "quantile_weights", nondiff=True)
primitive(quantile_ties, "quantile_ties", nondiff=True)
defnondiff(quantile_weights, quantile_ties)


def _to_last(a, axis):
    """a with the axes a reduction along `axis` reduces moved last and made one."""
    if axis is None:
        return np.ravel(a)
    if np.ndim(axis) == 0:
        return np.moveaxis(a, axis, -1)
    ends = np.arange(-np.size(axis), 0)
    moved = np.moveaxis(a, axis, ends)
    return np.reshape(moved, np.shape(moved)[:np.ndim(moved) - np.size(axis)] + (-1,))


def _from_last(x, a, axis):
    """The inverse of `_to_last(., axis)`: x, shaped like _to_last(a, axis), put back
    in a's shape."""
    if axis is None:
        return np.reshape(x, np.shape(a))
    if np.ndim(axis) == 0:
        return np.moveaxis(x, -1, axis)
    ends = np.arange(-np.size(axis), 0)
    return np.moveaxis(np.reshape(x, np.shape(np.moveaxis(a, axis, ends))), ends, axis)


def _q_last(t, nq):
    """t, of shape q's + rest, with q's axes moved after the rest's."""
    nd = np.ndim(t)
    return np.moveaxis(t, np.arange(nq), np.arange(nd - nq, nd))


def _q_first(t, nq):
    """The inverse of `_q_last`."""
    nd = np.ndim(t)
    return np.moveaxis(t, np.arange(nd - nq, nd), np.arange(nq))


def _quantile_slope(x, q, method):
    """d np.quantile(x, q, axis=-1) / d q, of shape x's rest + q's: (n - 1) times the
    step between the sorted entries around q (n - 1), the mean of the two steps on
    either side where q (n - 1) is a whole number (a zero step past the ends)."""
    n = np.shape(x)[-1]
    s = np.sort(x, axis=-1)
    edge = 0.0 * s[..., :1]
    steps = np.concatenate((edge, np.diff(s, axis=-1), edge), axis=-1)  # n + 1 of them
    v = np.ravel(np.asarray(q) * (n - 1.0))
    knots = np.arange(n)
    left = np.take(steps, np.searchsorted(knots, v, "left"), axis=-1)
    right = np.take(steps, np.searchsorted(knots, v, "right"), axis=-1)
    slope = np.reshape((0.5 * (n - 1.0)) * (left + right), np.shape(x)[:-1] + np.shape(q))
    if method == "linear":
        return slope
    return 0.0 * slope  # piecewise constant in q


def _weights_in_q(x, q, method):
    """quantile_weights(x, q, method), its value, with the linear method's derivative in
    q (quantile_weights is a constant to the differentiator): (n - 1) times the weight
    moving from the entry below q (n - 1) to the one above, the mean of the two sides
    where q (n - 1) is whole (as _quantile_slope), 0 past the ends. Without it the
    gradient in x of a quantile had no derivative in q (it was 0)."""
    w = order_weights(x, q, method)
    if method != "linear":
        return w
    n = np.shape(x)[-1]
    v = np.asarray(q) * (n - 1.0)
    whole = v == np.floor(v)
    below = _weight_step(x, np.where(whole, v - 0.5, v), n)
    above = _weight_step(x, np.where(whole, v + 0.5, v), n)
    moved = np.reshape(v - stop_gradient(v), np.shape(v) + (1,) * np.ndim(x))
    return w + moved * (0.5 * (below + above))


def _weight_step(x, t, n):
    """d quantile_weights / d (q (n - 1)) at a virtual index t that is not whole: the
    weight of the sorted entry above t less that of the one below; 0 outside [0, n - 1]."""
    inside = (t > 0.0) & (t < n - 1.0)
    q = np.clip(t, 0.0, n - 1.0) / max(n - 1.0, 1.0)
    step = quantile_weights(x, q, "higher") - quantile_weights(x, q, "lower")
    return np.reshape(inside, np.shape(t) + (1,) * np.ndim(x)) * step


def _quantile_bars(g, a, q, axis, method):
    """The cotangents of np.quantile(a, q, axis, method=method) for a and q."""
    x = _to_last(a, axis)
    w = _weights_in_q(x, q, method)
    nq = np.ndim(q)
    g_rows = np.reshape(g, np.shape(w)[:-1])  # q's shape + the rest (keepdims or not)
    # summed over q's axes, then over the rest's (flattened into one first)
    gx = np.sum(np.reshape(np.expand_dims(g_rows, -1) * w, (-1,) + np.shape(w)[nq:]), axis=0)
    gq = np.sum(np.reshape(_q_last(g_rows, nq) * _quantile_slope(x, q, method),
                           (-1,) + np.shape(q)), axis=0)
    return _from_last(gx, a, axis), unarray(gq, q)


def _quantile_dot(ans, a, q, axis, method, a_dot, q_dot):
    x = _to_last(a, axis)
    w = _weights_in_q(x, q, method)
    t_a = np.sum(w * _to_last(a_dot, axis), axis=-1)
    t_q = _q_first(_quantile_slope(x, q, method) * np.asarray(q_dot), np.ndim(q))
    return np.reshape(t_a + t_q, np.shape(ans))


def _no_weights(weights, method="linear"):
    """Refuse np.quantile's and np.percentile's weights=, and a method quantile_weights
    does not know (when the gradient runs, or at its line when they are constants)."""
    if weights is not None:
        return unsupported("np.quantile and np.percentile with weights= have no derivative "
                        "rule", "weights are for the 'inverted_cdf' method, which is "
                        "piecewise constant")
    if method not in ("linear", "lower", "higher", "nearest", "midpoint"):
        return unsupported("np.quantile and np.percentile have derivative rules for the "
                           "methods linear, lower, higher, nearest and midpoint only",
                           "use method='linear' (the default)")
    return None


# ------------------------------------------------------------------ quantile, percentile, median

primitive(np.quantile, "np.quantile")
primitive(np.percentile, "np.percentile")
primitive(np.median, "np.median")


@defvjp(np.quantile)
def quantile_vjp(g, ans, a, q, axis=None, out=None, overwrite_input=False, method="linear",
                 keepdims=False, *, weights=None):
    _ = _no_weights(weights, method)
    bars = _quantile_bars(g, a, q, axis, method)
    return bars[0], bars[1]


@defjvp(np.quantile)
def quantile_jvp(ans, a, q, axis=None, out=None, overwrite_input=False, method="linear",
                 keepdims=False, *, weights=None, a_dot=None, q_dot=None):
    _ = _no_weights(weights, method)
    return _quantile_dot(ans, a, q, axis, method, a_dot, q_dot)


@defvjp(np.percentile)
def percentile_vjp(g, ans, a, q, axis=None, out=None, overwrite_input=False, method="linear",
                   keepdims=False, *, weights=None):
    _ = _no_weights(weights, method)
    bars = _quantile_bars(g, a, np.asarray(q) / 100.0, axis, method)
    return bars[0], unarray(np.asarray(bars[1]) / 100.0, q)


@defjvp(np.percentile)
def percentile_jvp(ans, a, q, axis=None, out=None, overwrite_input=False, method="linear",
                   keepdims=False, *, weights=None, a_dot=None, q_dot=None):
    _ = _no_weights(weights, method)
    return _quantile_dot(ans, a, np.asarray(q) / 100.0, axis, method, a_dot,
                         np.asarray(q_dot) / 100.0)


@defvjp(np.median)
def median_vjp(g, ans, a, axis=None, out=None, overwrite_input=False, keepdims=False):
    x = _to_last(a, axis)
    w = order_weights(x, 0.5)
    return _from_last(np.reshape(g, np.shape(w)[:-1] + (1,)) * w, a, axis)


@defjvp(np.median)
def median_jvp(ans, a, axis=None, out=None, overwrite_input=False, keepdims=False,
               a_dot=None):
    x = _to_last(a, axis)
    return np.reshape(np.sum(order_weights(x, 0.5) * _to_last(a_dot, axis), axis=-1),
                      np.shape(ans))


# ------------------------------------------------------------------ average

primitive(np.average, "np.average")


def _weights_like(weights, a, axis):
    """np.average's weights, shaped to multiply a: as given, or a 1-d array laid
    along `axis`."""
    if np.shape(weights) == np.shape(a):
        return weights
    if np.ndim(axis) != 0 or np.ndim(weights) != 1:
        _ = unsupported("np.average with weights shaped unlike a has a derivative rule for "
                        "1-d weights along one axis")
    nd = np.ndim(a)
    return np.moveaxis(np.reshape(weights, (1,) * (nd - 1) + (-1,)), -1, axis)


def _average_refusals(weights, returned):
    if returned:
        return unsupported("np.average with returned=True has no derivative rule",
                           "compute the sum of the weights with np.sum")
    return None


@defvjp(np.average)
def average_vjp(g, ans, a, axis=None, weights=None, returned=False, *, keepdims=False):
    _ = _average_refusals(weights, returned)
    if weights is None:
        return expand_to(g, a, axis, keepdims) * (np.size(ans) / np.size(a))
    w = _weights_like(weights, a, axis)
    total = np.sum(w * np.ones(np.shape(a)), axis=axis, keepdims=True)
    ge = expand_to(g, a, axis, keepdims) / total
    gw = ge * (a - expand_to(ans, a, axis, keepdims))
    return ge * w, None, unarray(np.reshape(unbroadcast(gw, w), np.shape(weights)), weights)


@defjvp(np.average)
def average_jvp(ans, a, axis=None, weights=None, returned=False, *, keepdims=False,
                a_dot=None, weights_dot=None):
    _ = _average_refusals(weights, returned)
    if weights is None:
        return np.mean(a_dot, axis=axis, keepdims=keepdims)
    w = _weights_like(weights, a, axis)
    total = np.sum(w * np.ones(np.shape(a)), axis=axis, keepdims=keepdims)
    centred = a - expand_to(ans, a, axis, keepdims)
    # shaped like w by a reshape, not by _weights_like: with the weights constant their
    # tangent is a symbolic zero, which the reshape keeps zero, where _weights_like's
    # `if` would make it a branch result that is never defined (round 16, C1)
    w_dot = np.reshape(weights_dot, np.shape(w))
    return np.sum(w * a_dot + w_dot * centred, axis=axis, keepdims=keepdims) / total


# ------------------------------------------------------------------ cov, corrcoef

primitive(np.cov, "np.cov")
primitive(np.corrcoef, "np.corrcoef")


def _variables(m, y, rowvar):
    """The (variables, observations) matrix np.cov works on."""
    x = np.atleast_2d(m)
    if not rowvar and np.ndim(m) != 1:
        x = x.T
    if y is None:
        return x
    y2 = np.atleast_2d(y)
    if not rowvar and np.shape(y2)[0] != 1:
        y2 = y2.T
    return np.concatenate((x, y2), axis=0)


def _unvariables(gx, m, y, rowvar):
    """The cotangents of m and y from that of `_variables(m, y, rowvar)`."""
    if not rowvar and np.ndim(m) != 1:
        gm = gx[:np.shape(m)[1]].T
    else:
        gm = gx[:np.shape(np.atleast_2d(m))[0]]
    gm = unarray(np.reshape(gm, np.shape(m)), m)
    if y is None:
        return gm, None
    if not rowvar and np.shape(np.atleast_2d(y))[0] != 1:
        gy = gx[np.shape(gx)[0] - np.shape(y)[1]:].T
    else:
        gy = gx[np.shape(gx)[0] - np.shape(np.atleast_2d(y))[0]:]
    return gm, unarray(np.reshape(gy, np.shape(y)), y)


def _ddof(ddof, bias):
    if ddof is None:
        if bias:
            return 0
        return 1
    return ddof


def _cov_parts(m, y, rowvar, bias, ddof, fweights, aweights):
    """(f, w, x centred on its weighted means, the normalisation): np.cov's
    frequency weights f (1.0 without them), its weights w = f * aweights, and its
    normalisation, which aweights enter."""
    x = _variables(m, y, rowvar)
    f = np.ones(np.shape(x)[1])
    if fweights is not None:
        f = f * fweights
    w = f
    if aweights is not None:
        w = f * aweights
    v1 = np.sum(w)
    xc = x - np.sum(x * w, axis=1, keepdims=True) / v1
    if aweights is None:
        fact = v1 - _ddof(ddof, bias)
    else:
        fact = v1 - _ddof(ddof, bias) * np.sum(w * aweights) / v1
    return f, w, xc, fact


def _cov_bars(gc, m, y, rowvar, bias, ddof, fweights, aweights):
    """The cotangents of m, y and aweights from gc, that of the (k, k) covariance
    c = xc diag(w) xc^T / fact."""
    f, w, xc, fact = _cov_parts(m, y, rowvar, bias, ddof, fweights, aweights)
    # the centring's own term vanishes: the weighted rows of xc sum to zero
    gm, gy = _unvariables((gc + gc.T) @ (xc * w) / fact, m, y, rowvar)
    if aweights is None:
        return gm, gy, None
    c = (xc * w) @ xc.T / fact
    v1 = np.sum(w)
    # d fact / d aweights, with d w = f d aweights and d sum(w aweights) = 2 w d aweights
    dfact = f - _ddof(ddof, bias) * (2.0 * w / v1 - np.sum(w * aweights) * f / (v1 * v1))
    ga = f * np.sum((gc @ xc) * xc, axis=0) / fact - np.sum(gc * c) / fact * dfact
    return gm, gy, unarray(ga, aweights)


def _cov_dot(m, y, rowvar, bias, ddof, fweights, aweights, m_dot, y_dot, aweights_dot):
    f, w, xc, fact = _cov_parts(m, y, rowvar, bias, ddof, fweights, aweights)
    if y is None:  # (y_dot is then a zero, not None)
        dx = _variables(m_dot, None, rowvar)
    else:
        dx = _variables(m_dot, y_dot, rowvar)
    dxc = dx - np.sum(dx * w, axis=1, keepdims=True) / np.sum(w)
    half = (dxc * w) @ xc.T / fact
    if aweights is None:
        return half + half.T
    dw = f * aweights_dot
    v1 = np.sum(w)
    dfact = np.sum(dw) - _ddof(ddof, bias) * (
        2.0 * np.sum(w * aweights_dot) / v1 - np.sum(w * aweights) * np.sum(dw) / (v1 * v1))
    c = (xc * w) @ xc.T / fact
    return half + half.T + ((xc * dw) @ xc.T - c * dfact) / fact


@defvjp(np.cov)
def cov_vjp(g, ans, m, y=None, rowvar=True, bias=False, ddof=None, fweights=None,
            aweights=None, *, dtype=None):
    k = np.shape(_variables(m, y, rowvar))[0]
    bars = _cov_bars(np.reshape(g, (k, k)), m, y, rowvar, bias, ddof, fweights, aweights)
    return bars[0], bars[1], None, None, None, None, bars[2]


@defjvp(np.cov)
def cov_jvp(ans, m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None,
            *, dtype=None, m_dot=None, y_dot=None, aweights_dot=None):
    dc = _cov_dot(m, y, rowvar, bias, ddof, fweights, aweights, m_dot, y_dot, aweights_dot)
    return np.reshape(dc, np.shape(ans))


def _corr_parts(x, y, rowvar):
    """(the (k, k) correlation matrix, the standard deviations) of np.corrcoef."""
    c = np.atleast_2d(np.cov(x, y, rowvar))
    d = np.sqrt(np.diagonal(c))
    return c / (d[:, None] * d[None, :]), d


@defvjp(np.corrcoef)
def corrcoef_vjp(g, ans, x, y=None, rowvar=True, *, dtype=None):
    # r = c / (d d^T), d = sqrt(diag c): the diagonal's share comes back through d
    r, d = _corr_parts(x, y, rowvar)
    gr = np.reshape(g, np.shape(r))
    gd = np.sum(gr * r, axis=1) + np.sum(gr * r, axis=0)
    gc = gr / (d[:, None] * d[None, :]) - np.eye(np.shape(r)[0]) * (gd / (2.0 * d * d))
    bars = _cov_bars(gc, x, y, rowvar, False, None, None, None)
    return bars[0], bars[1]


@defjvp(np.corrcoef)
def corrcoef_jvp(ans, x, y=None, rowvar=True, *, dtype=None, x_dot=None, y_dot=None):
    r, d = _corr_parts(x, y, rowvar)
    dc = _cov_dot(x, y, rowvar, False, None, None, None, x_dot, y_dot, None)
    rel = np.diagonal(dc) / (2.0 * d * d)  # d(d_i) / d_i
    return np.reshape(dc / (d[:, None] * d[None, :]) - r * (rel[:, None] + rel[None, :]),
                      np.shape(ans))
