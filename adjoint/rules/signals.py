"""Signals and curves: `np.convolve`, `np.correlate` (1-d, modes 'full', 'same' and
'valid'), `np.interp` and `np.polyval`.

`np.convolve` and `np.correlate` are bilinear: each cotangent is the other
operand correlated with the cotangent of the full output (the mode's window of
it, `conv_window`, padded back with zeros). Real inputs only.

`np.interp(x, xp, fp, left, right)` is differentiable in all five: linear in fp,
left and right; in x and xp through the slope of the segment x falls in. At a
knot (x equal to an entry of xp) the slope jumps: the rule takes the mean of the
slopes on either side (the limit of central differences), with a zero slope
outside [xp[0], xp[-1]] (so x == xp[0] gets half the first segment's slope).
A repeated entry of xp (a jump in the curve) has slope 0. `period=` is refused.

`np.polyval(p, x)`: for a 1-d p (an array or a list), in p and in x.
"""
from __future__ import annotations

import numpy as np

from adjoint.rules.located import unsupported
from adjoint.rules.registry import defbilinear, defjvp, defnondiff, defvjp, primitive
from adjoint.rules.shape import unarray
from adjoint.runtime import add_at


def conv_window(n, m, mode, kind):
    """Where np.convolve's (kind 'convolve') or np.correlate's output of operands of
    lengths n and m starts in the full output of n + m - 1 entries, for `mode`."""
    k = min(n, m)
    if mode == "full":
        return 0
    if mode == "valid":
        return k - 1
    if mode != "same":
        raise ValueError(f"conv_window: mode {mode!r}")
    if kind == "convolve" or n >= m:
        return (k - 1) - k // 2
    return k // 2  # np.correlate swaps its operands and reverses its result


primitive(conv_window, "conv_window", nondiff=True)
defnondiff(conv_window)
primitive(np.convolve, "np.convolve")
primitive(np.correlate, "np.correlate")


def _full(g, a, v, mode, kind):
    """The cotangent of the full output from `g`, that of the mode's window of it."""
    n, m = np.size(a), np.size(v)
    start = conv_window(n, m, mode, kind)
    return np.pad(np.ravel(g), (start, n + m - 1 - start - np.size(g)))


@defbilinear(np.convolve, "a", "v")
def convolve_vjp(g, ans, a, v, mode="full"):
    # full: ans[k] = sum_i a[i] v[k - i], so a_bar[i] = sum_k g[k] v[k - i]
    gf = _full(g, a, v, mode, "convolve")
    return (unarray(np.correlate(gf, np.ravel(v), "valid"), a),
            unarray(np.correlate(gf, np.ravel(a), "valid"), v))


@defbilinear(np.correlate, "a", "v")
def correlate_vjp(g, ans, a, v, mode="valid"):
    # full: np.correlate(a, v) == np.convolve(a, v[::-1])
    gf = _full(g, a, v, mode, "correlate")
    return (unarray(np.convolve(gf, np.ravel(v), "valid"), a),
            unarray(np.flip(np.correlate(gf, np.ravel(a), "valid")), v))


# ------------------------------------------------------------------ interp

primitive(np.interp, "np.interp")


def _no_period(period):
    if period is not None:
        return unsupported("np.interp with period= has no derivative rule",
                           "wrap x and sort xp yourself, then call np.interp without it")
    return None


def _interp_parts(x, xp, fp):
    """(the index r of the first knot right of x, the segment's ends lo and hi, x's
    place t in it, the slope at x: the mean of the two sides' at a knot)."""
    xp, fp = np.asarray(xp), np.asarray(fp)
    n = np.shape(xp)[0]
    r = np.searchsorted(xp, x, "right")
    at = np.searchsorted(xp, x, "left")  # r - 1 at a knot, else r
    width = np.diff(xp)
    flat = width == 0.0
    step = np.where(flat, 0.0, np.diff(fp) / np.where(flat, 1.0, width))
    edge = 0.0 * step[:1]
    steps = np.concatenate((edge, step, edge))  # steps[j]: between knots j - 1 and j
    slope = 0.5 * (steps[at] + steps[r])
    lo = np.minimum(np.maximum(r - 1, 0), n - 1)
    hi = np.minimum(r, n - 1)
    span = xp[hi] - xp[lo]  # 0 outside the knots: t = 0 there
    t = np.where(span == 0.0, 0.0, (x - xp[lo]) / np.where(span == 0.0, 1.0, span))
    return r, lo, hi, t, slope


@defvjp(np.interp)
def interp_vjp(g, ans, x, xp, fp, left=None, right=None, period=None):
    _ = _no_period(period)
    r, lo, hi, t, slope = _interp_parts(x, xp, fp)
    last = np.asarray(xp)[-1]
    gi = g  # what reaches fp: not where left or right was returned instead
    g_left, g_right = None, None
    if left is not None:
        gi = np.where(r == 0, 0.0, gi)
        g_left = np.sum(np.where(r == 0, g, 0.0))
    if right is not None:
        gi = np.where(x > last, 0.0, gi)
        g_right = np.sum(np.where(x > last, g, 0.0))
    zeros = np.zeros(np.shape(xp))
    g_fp = add_at(add_at(zeros, lo, gi * (1.0 - t)), hi, gi * t)
    # moving a segment's end moves the line through it: -slope times x's weight on it
    moved = g * slope
    g_xp = add_at(add_at(zeros, lo, -moved * (1.0 - t)), hi, -moved * t)
    return g * slope, unarray(g_xp, xp), unarray(g_fp, fp), g_left, g_right


@defjvp(np.interp)
def interp_jvp(ans, x, xp, fp, left=None, right=None, period=None, x_dot=None, xp_dot=None,
               fp_dot=None, left_dot=None, right_dot=None):
    _ = _no_period(period)
    r, lo, hi, t, slope = _interp_parts(x, xp, fp)
    fpd, xpd = np.asarray(fp_dot), np.asarray(xp_dot)
    inner = (1.0 - t) * fpd[lo] + t * fpd[hi]
    if left is not None:
        inner = np.where(r == 0, left_dot, inner)
    if right is not None:
        inner = np.where(x > np.asarray(xp)[-1], right_dot, inner)
    return slope * (x_dot - ((1.0 - t) * xpd[lo] + t * xpd[hi])) + inner


# ------------------------------------------------------------------ polyval

primitive(np.polyval, "np.polyval")


def _derivative(p):
    """The coefficients of the polynomial's derivative (np.polyder's)."""
    pa = np.asarray(p)
    return pa[:-1] * np.arange(np.shape(pa)[0] - 1.0, 0.0, -1.0)


@defvjp(np.polyval)
def polyval_vjp(g, ans, p, x):
    deg = np.shape(p)[0] - 1
    powers = np.expand_dims(np.asarray(x), -1) ** np.arange(deg, -1.0, -1.0)
    g_p = np.sum(np.reshape(np.expand_dims(g, -1) * powers, (-1, deg + 1)), axis=0)
    return unarray(g_p, p), g * np.polyval(_derivative(p), x)


@defjvp(np.polyval)
def polyval_jvp(ans, p, x, p_dot, x_dot):
    return np.polyval(p_dot, x) + np.polyval(_derivative(p), x) * x_dot
