"""`scipy.special`: the functions of statistics and machine learning (imported only when
SciPy is installed; see `adjoint.rules`).

Covered: `expit`, `logit`, `log_expit`, `softplus` (SciPy 1.15+), `logsumexp`
(`axis`, `keepdims`, `b=` weights), `softmax` and `log_softmax` (`axis`), `erf`,
`erfc`, `erfcx`, `erfinv`, `erfcinv`, `ndtr`, `ndtri`, `log_ndtr`, `gamma`, `gammaln`,
`loggamma` (real), `digamma` (also spelled `psi`), `polygamma(n, x)` (in x; n is a
whole order), `multigammaln(a, d)` (in a; d is an int), `beta`, `betaln`, `xlogy`,
`xlog1py`, `entr`, `rel_entr`, `kl_div`, `i0`, `i1`, `i0e` and `i1e`, and NumPy's `np.i0`
(its derivative is scipy's i1: without SciPy it has no rule), `rgamma`, and
`gammainc(a, x)`, `gammaincc(a, x)`, `jv(v, x)` and `iv(v, x)` in x: a gradient into a or into the
order v raises NonDifferentiableError at the call's line when it runs
(`no_derivative_in`; an integer a or v is a constant). (`np.sinc` is NumPy's, in
`elementwise`.) Each derivative is written with these same functions,
so a gradient can be differentiated again. `logsumexp(..., return_sign=True)` and
polygamma of an order that is not a whole number are refused, at their line.

Conventions where a formula breaks down:

- `xlogy(x, y) = x log y` and `xlog1py(x, y) = x log(1 + y)` are 0 at x = 0, y = 0
  included (scipy's value). Their derivative in x is log y (log(1 + y)) everywhere,
  -inf at y = 0, as in JAX. Their derivative in y is x / y (x / (1 + y)), and 0
  wherever x = 0: f(0, y) = 0 for every y, so 0 is exact there, also at y = 0,
  where JAX's x / y gives NaN. That quotient is `x_over_y`, with rules of its
  own, so the second derivative in x then y is still 1 / y at x = 0.
- `rel_entr(x, y) = x log(x / y)` and `kl_div(x, y) = x log(x / y) - x + y` likewise:
  in y, -x / y and 1 - x / y, exact at x = 0 (0 and 1); in x, log(x / y) + 1 and
  log(x / y), -inf at x = 0 (the one-sided limit).
- `entr(x) = -x log x`: derivative -(log x + 1) for x > 0, +inf at 0 (its
  one-sided limit, as JAX), and 0 for x < 0, where entr is -inf throughout (JAX).
- `i0e(x) = exp(-|x|) i0(x)` has a kink at 0 (slopes -1 and +1 on either
  side): the derivative there is 0, the mean of the two, as abs'(0) = 0.
- `rgamma = 1 / gamma` is 0 at gamma's poles x = -n, where its slope is the limit
  (-1)^n n!; below x = 1/2 the slope is that of the reflection form, exact to every order
  at the poles.
- `log_ndtr'(x) = ndtr'(x) / ndtr(x)` is computed as sqrt(2 / pi) / erfcx(-x /
  sqrt 2), which neither overflows nor loses digits in either tail: `log_ndtr_slope`,
  whose own rule -s (x + s) keeps every higher order finite where erfcx overflows.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import special

from adjoint.rules.located import no_derivative_in, unsupported
from adjoint.rules.registry import defjvp, defunary, defvjp, primitive
from adjoint.runtime import abs_slope, unbroadcast

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_HALF_SQRT_PI = 0.5 * math.sqrt(math.pi)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_SQRT_HALF = math.sqrt(0.5)

# `special.psi is special.digamma`: declared once, under the name most code uses
for _name in ["expit", "logit", "log_expit", "logsumexp", "softmax", "log_softmax", "erf",
              "erfc", "erfcx", "erfinv", "erfcinv", "ndtr", "ndtri", "log_ndtr", "gamma",
              "gammaln", "loggamma", "digamma", "polygamma", "multigammaln", "beta", "betaln",
              "xlogy", "xlog1py", "entr", "rel_entr", "kl_div", "i0", "i1", "i0e", "i1e",
              "gammainc", "gammaincc", "rgamma", "jv", "iv", "j0", "j1", "y0", "y1", "yv",
              "yn", "ive"]:
    primitive(getattr(special, _name), "scipy.special." + _name)
_softplus = getattr(special, "softplus", None)  # SciPy 1.15 and later
if _softplus is not None:
    primitive(_softplus, "scipy.special.softplus")


# ------------------------------------------------------------------ helpers

def x_over_y(x, y):
    """x / y, and 0 wherever x is 0 (y = 0 included): the derivative of xlogy(x, y) in y,
    exact where x = 0 since xlogy(0, y) = 0 for every y."""
    return np.where(x == 0.0, 0.0, x / np.where(x == 0.0, 1.0, y))


primitive(x_over_y, "x_over_y")


@defvjp(x_over_y)
def x_over_y_vjp(g, ans, x, y):
    # d/dx = 1 / y (at x = 0 too: x / y is x / y on either side); d/dy = -x / y^2,
    # 0 where x = 0, as the function is
    return unbroadcast(g / y, x), unbroadcast(-g * x_over_y(ans, y), y)


@defjvp(x_over_y)
def x_over_y_jvp(ans, x, y, x_dot, y_dot):
    return x_dot / y - y_dot * x_over_y(ans, y)


def log_ndtr_slope(x):
    """log_ndtr'(x) = pdf / cdf, as sqrt(2 / pi) / erfcx(-x / sqrt 2): stable in both
    tails. Its own derivative is -s (x + s), s this slope: differentiating the quotient
    instead gives inf / inf where erfcx overflows (x above about 37.6, where s is 0)."""
    return _SQRT_2_OVER_PI / special.erfcx(-_SQRT_HALF * x)


primitive(log_ndtr_slope, "log_ndtr_slope")


@defunary(log_ndtr_slope)
def log_ndtr_slope_vjp(g, ans, x):
    # (pdf / cdf)' = -x pdf / cdf - (pdf / cdf)^2
    return -g * ans * (x + ans)


def _kept(r, axis, keepdims):
    """r, a reduction's result along `axis`, with the reduced axes kept (as length 1), so
    that it broadcasts against what was reduced."""
    if axis is not None and not keepdims:
        return np.expand_dims(r, axis)
    return r


def _no_sign(return_sign):
    if return_sign:
        return unsupported("scipy.special.logsumexp with return_sign=True has no derivative "
                           "rule", "use logsumexp without it where the weighted sum is "
                           "positive, or compute the sign separately with np.sign")
    return None


def _whole_order(n):
    """Refuse a polygamma order that is not a whole number (scipy gives NaN there)."""
    if np.any(np.floor(n) != n):
        return unsupported("scipy.special.polygamma(n, x) is differentiated in x, for a "
                           "whole order n", "pass the order as an int")
    return None


# ------------------------------------------------------------------ logistic

@defunary(special.expit)
def expit_vjp(g, ans, x):
    return g * ans * (1.0 - ans)


@defunary(special.logit)
def logit_vjp(g, ans, x):
    return g / (x * (1.0 - x))


@defunary(special.log_expit)
def log_expit_vjp(g, ans, x):
    return g * special.expit(-x)  # 1 - expit(x), without the cancellation


if _softplus is not None:
    @defunary(_softplus)
    def softplus_vjp(g, ans, x):
        return g * special.expit(x)


# ------------------------------------------------------------------ logsumexp, softmax

@defvjp(special.logsumexp)
def logsumexp_vjp(g, ans, a, axis=None, b=None, keepdims=False, return_sign=False):
    # the weights exp(a - ans) are the softmax of a (times b): each row sums to 1
    _ = _no_sign(return_sign)
    w = np.exp(a - _kept(ans, axis, keepdims))
    gw = _kept(g, axis, keepdims) * w
    if b is None:
        return unbroadcast(gw, a), None, None
    return unbroadcast(gw * b, a), None, unbroadcast(gw, b)


@defjvp(special.logsumexp)
def logsumexp_jvp(ans, a, axis=None, b=None, keepdims=False, return_sign=False, a_dot=None,
                  b_dot=None):
    _ = _no_sign(return_sign)
    w = np.exp(a - _kept(ans, axis, keepdims))
    if b is None:
        return np.sum(w * a_dot, axis=axis, keepdims=keepdims)
    return np.sum(w * (b * a_dot + b_dot), axis=axis, keepdims=keepdims)


@defvjp(special.softmax)
def softmax_vjp(g, ans, x, axis=None):
    return ans * (g - np.sum(g * ans, axis=axis, keepdims=True))


@defjvp(special.softmax)
def softmax_jvp(ans, x, axis=None, x_dot=None):
    return ans * (x_dot - np.sum(x_dot * ans, axis=axis, keepdims=True))


@defvjp(special.log_softmax)
def log_softmax_vjp(g, ans, x, axis=None):
    return g - np.exp(ans) * np.sum(g, axis=axis, keepdims=True)


@defjvp(special.log_softmax)
def log_softmax_jvp(ans, x, axis=None, x_dot=None):
    return x_dot - np.sum(np.exp(ans) * x_dot, axis=axis, keepdims=True)


# ------------------------------------------------------------------ error functions, normal

@defunary(special.erf)
def erf_vjp(g, ans, x):
    return g * _TWO_OVER_SQRT_PI * np.exp(-x * x)


@defunary(special.erfc)
def erfc_vjp(g, ans, x):
    return -g * _TWO_OVER_SQRT_PI * np.exp(-x * x)


@defunary(special.erfcx)
def erfcx_vjp(g, ans, x):
    # erfcx = exp(x^2) erfc(x)
    return g * (2.0 * x * ans - _TWO_OVER_SQRT_PI)


@defunary(special.erfinv)
def erfinv_vjp(g, ans, x):
    return g * _HALF_SQRT_PI * np.exp(ans * ans)


@defunary(special.erfcinv)
def erfcinv_vjp(g, ans, x):
    return -g * _HALF_SQRT_PI * np.exp(ans * ans)


@defunary(special.ndtr)
def ndtr_vjp(g, ans, x):
    return g * np.exp(-0.5 * x * x) / _SQRT_2PI


@defunary(special.ndtri)
def ndtri_vjp(g, ans, x):
    return g * _SQRT_2PI * np.exp(0.5 * ans * ans)


@defunary(special.log_ndtr)
def log_ndtr_vjp(g, ans, x):
    return g * log_ndtr_slope(x)


# ------------------------------------------------------------------ gamma and friends

@defunary(special.gamma)
def gamma_vjp(g, ans, x):
    return g * ans * special.digamma(x)


@defunary(special.gammaln)
def gammaln_vjp(g, ans, x):
    return g * special.digamma(x)  # gammaln = log |gamma|: also where gamma < 0


@defunary(special.loggamma)
def loggamma_vjp(g, ans, x):
    return g * special.digamma(x)


@defunary(special.digamma)
def digamma_vjp(g, ans, x):
    return g * special.polygamma(1, x)


@defvjp(special.polygamma)
def polygamma_vjp(g, ans, n, x):
    _ = _whole_order(n)
    return None, unbroadcast(g * special.polygamma(n + 1, x), x)


@defjvp(special.polygamma)
def polygamma_jvp(ans, n, x, x_dot):
    _ = _whole_order(n)
    return x_dot * special.polygamma(n + 1, x)


def _multigammaln_slope(a, d):
    """d multigammaln(a, d) / da = the sum over j < d of digamma(a - j / 2)."""
    j = np.arange(d) * 0.5
    return np.sum(special.digamma(np.expand_dims(a, -1) - j), axis=-1)


@defvjp(special.multigammaln)
def multigammaln_vjp(g, ans, a, d):
    return g * _multigammaln_slope(a, d), None


@defjvp(special.multigammaln)
def multigammaln_jvp(ans, a, d, a_dot):
    return a_dot * _multigammaln_slope(a, d)


@defunary(special.rgamma)
def rgamma_vjp(g, ans, x):
    # (1 / gamma)' = -digamma / gamma for x > 1/2; at and near gamma's poles (x = -n, where
    # rgamma is 0) the derivative of the reflection form sin(pi x) gamma(1 - x) / pi, which
    # holds for every x < 1, so that its own derivative is right at the poles too
    near = np.where(x > 0.5, 0.0, x)
    reflected = special.gamma(1.0 - near) * (
        np.cos(math.pi * near) - np.sin(math.pi * near) * special.digamma(1.0 - near) / math.pi)
    return g * np.where(x > 0.5, -ans * special.digamma(np.where(x > 0.5, x, 1.0)), reflected)


def _gammainc_slope(a, x):
    """d gammainc(a, x) / dx = x^(a - 1) e^-x / gamma(a) (1 at x = 0 for a = 1)."""
    return np.exp(special.xlogy(a - 1.0, x) - x - special.gammaln(a))


# (messages of the derivatives refused: no_derivative_in is called in the templates
# themselves, where a zero tangent is still known to be zero, not in a helper)
_IN_A = ("scipy.special.gammainc(a, x) and gammaincc(a, x) are differentiated in x only: "
         "their derivative in a has no closed form")
_HOLD_A = "hold a constant, or wrap it in adjoint.stop_gradient(a)"
_IN_ORDER = "scipy.special.jv(v, x) is differentiated in x only: the order v is held constant"
_HOLD_ORDER = "wrap it in adjoint.stop_gradient(v)"


@defvjp(special.gammainc)
def gammainc_vjp(g, ans, a, x):
    return unbroadcast(no_derivative_in(g, a, _IN_A, _HOLD_A), a), unbroadcast(g * _gammainc_slope(a, x), x)


@defjvp(special.gammainc)
def gammainc_jvp(ans, a, x, a_dot=None, x_dot=None):
    return x_dot * _gammainc_slope(a, x) + no_derivative_in(a_dot, a, _IN_A, _HOLD_A)


@defvjp(special.gammaincc)
def gammaincc_vjp(g, ans, a, x):
    return unbroadcast(no_derivative_in(g, a, _IN_A, _HOLD_A), a), unbroadcast(-g * _gammainc_slope(a, x), x)


@defjvp(special.gammaincc)
def gammaincc_jvp(ans, a, x, a_dot=None, x_dot=None):
    return -x_dot * _gammainc_slope(a, x) + no_derivative_in(a_dot, a, _IN_A, _HOLD_A)


@defvjp(special.beta)
def beta_vjp(g, ans, a, b):
    both = special.digamma(a + b)
    return (unbroadcast(g * ans * (special.digamma(a) - both), a),
            unbroadcast(g * ans * (special.digamma(b) - both), b))


@defjvp(special.beta)
def beta_jvp(ans, a, b, a_dot, b_dot):
    both = special.digamma(a + b)
    return ans * (a_dot * (special.digamma(a) - both) + b_dot * (special.digamma(b) - both))


@defvjp(special.betaln)
def betaln_vjp(g, ans, a, b):
    both = special.digamma(a + b)
    return (unbroadcast(g * (special.digamma(a) - both), a),
            unbroadcast(g * (special.digamma(b) - both), b))


@defjvp(special.betaln)
def betaln_jvp(ans, a, b, a_dot, b_dot):
    both = special.digamma(a + b)
    return a_dot * (special.digamma(a) - both) + b_dot * (special.digamma(b) - both)


# ------------------------------------------------------------------ x log y, entropy

@defvjp(special.xlogy)
def xlogy_vjp(g, ans, x, y):
    # in x: log y, -inf at y = 0 (as JAX); in y: x / y, exactly 0 where x = 0, since
    # xlogy(0, y) = 0 for every y (JAX's x / y is NaN at x = y = 0)
    return unbroadcast(g * np.log(y), x), unbroadcast(g * x_over_y(x, y), y)


@defjvp(special.xlogy)
def xlogy_jvp(ans, x, y, x_dot, y_dot):
    return x_dot * np.log(y) + y_dot * x_over_y(x, y)


@defvjp(special.xlog1py)
def xlog1py_vjp(g, ans, x, y):
    return unbroadcast(g * np.log1p(y), x), unbroadcast(g * x_over_y(x, 1.0 + y), y)


@defjvp(special.xlog1py)
def xlog1py_jvp(ans, x, y, x_dot, y_dot):
    return x_dot * np.log1p(y) + y_dot * x_over_y(x, 1.0 + y)


@defunary(special.entr)
def entr_vjp(g, ans, x):
    # -inf (a constant) for x < 0; +inf at 0, the one-sided limit
    return np.where(x < 0.0, 0.0, -g * (np.log(np.where(x < 0.0, 1.0, x)) + 1.0))


@defvjp(special.rel_entr)
def rel_entr_vjp(g, ans, x, y):
    # x log(x / y): 0 at x = 0 for every y, so its derivative in y is 0 there
    return (unbroadcast(g * (np.log(x) - np.log(y) + 1.0), x),
            unbroadcast(-g * x_over_y(x, y), y))


@defjvp(special.rel_entr)
def rel_entr_jvp(ans, x, y, x_dot, y_dot):
    return x_dot * (np.log(x) - np.log(y) + 1.0) - y_dot * x_over_y(x, y)


@defvjp(special.kl_div)
def kl_div_vjp(g, ans, x, y):
    # x log(x / y) - x + y: y at x = 0, so its derivative in y is 1 there
    return (unbroadcast(g * (np.log(x) - np.log(y)), x),
            unbroadcast(g * (1.0 - x_over_y(x, y)), y))


@defjvp(special.kl_div)
def kl_div_jvp(ans, x, y, x_dot, y_dot):
    return x_dot * (np.log(x) - np.log(y)) + y_dot * (1.0 - x_over_y(x, y))


# ------------------------------------------------------------------ modified Bessel functions

@defunary(special.i0)
def i0_vjp(g, ans, x):
    return g * special.i1(x)


primitive(np.i0, "np.i0")  # NumPy's, here: its derivative is scipy.special.i1


@defunary(np.i0)
def numpy_i0_vjp(g, ans, x):
    return g * special.i1(x)


@defunary(special.i1)
def i1_vjp(g, ans, x):
    # i1' = (i0 + i2) / 2, smooth at 0 (i0 - i1 / x there is 0 / 0), to every order
    return g * 0.5 * (special.i0(x) + special.iv(2, x))


_IN_ORDER_I = "scipy.special.iv(v, x) is differentiated in x only: the order v is held constant"


@defvjp(special.iv)
def iv_vjp(g, ans, v, x):
    # I_v' = (I_(v-1) + I_(v+1)) / 2
    slope = 0.5 * (special.iv(v - 1.0, x) + special.iv(v + 1.0, x))
    return unbroadcast(no_derivative_in(g, v, _IN_ORDER_I, _HOLD_ORDER), v), unbroadcast(g * slope, x)


@defjvp(special.iv)
def iv_jvp(ans, v, x, v_dot=None, x_dot=None):
    return x_dot * 0.5 * (special.iv(v - 1.0, x) + special.iv(v + 1.0, x)) \
        + no_derivative_in(v_dot, v, _IN_ORDER_I, _HOLD_ORDER)


@defvjp(special.jv)
def jv_vjp(g, ans, v, x):
    # J_v' = (J_(v-1) - J_(v+1)) / 2
    slope = 0.5 * (special.jv(v - 1.0, x) - special.jv(v + 1.0, x))
    return unbroadcast(no_derivative_in(g, v, _IN_ORDER, _HOLD_ORDER), v), unbroadcast(g * slope, x)


@defjvp(special.jv)
def jv_jvp(ans, v, x, v_dot=None, x_dot=None):
    return x_dot * 0.5 * (special.jv(v - 1.0, x) - special.jv(v + 1.0, x)) \
        + no_derivative_in(v_dot, v, _IN_ORDER, _HOLD_ORDER)


# the exponentially scaled i0e, i1e and ive have exp(-|x|)'s kink at 0: their slope there
# is the mean of the two sides (abs_slope(0) = 0), and a second derivative through it is
# refused, as abs's is
@defunary(special.i0e)
def i0e_vjp(g, ans, x):
    return g * (special.i1e(x) - abs_slope(x) * ans)


@defunary(special.i1e)
def i1e_vjp(g, ans, x):
    return g * np.where(x == 0.0, 0.5, special.i0e(x) - ans / np.where(x == 0.0, 1.0, x)
                        - abs_slope(x) * ans)


_IN_ORDER_IVE = ("scipy.special.ive(v, x) is differentiated in x only: the order v is held "
                 "constant")


@defvjp(special.ive)
def ive_vjp(g, ans, v, x):
    slope = 0.5 * (special.ive(v - 1.0, x) + special.ive(v + 1.0, x)) - abs_slope(x) * ans
    return unbroadcast(no_derivative_in(g, v, _IN_ORDER_IVE, _HOLD_ORDER), v), unbroadcast(g * slope, x)


@defjvp(special.ive)
def ive_jvp(ans, v, x, v_dot=None, x_dot=None):
    return x_dot * (0.5 * (special.ive(v - 1.0, x) + special.ive(v + 1.0, x))
                    - abs_slope(x) * ans) + no_derivative_in(v_dot, v, _IN_ORDER_IVE, _HOLD_ORDER)


# Bessel functions of the first and second kind: J0' = -J1, J1' = (J0 - J2) / 2, and
# Y likewise; yv(v, x) and yn(n, x) in x, as jv
@defunary(special.j0)
def j0_vjp(g, ans, x):
    return g * -special.j1(x)


@defunary(special.j1)
def j1_vjp(g, ans, x):
    return g * 0.5 * (special.j0(x) - special.jv(2.0, x))


@defunary(special.y0)
def y0_vjp(g, ans, x):
    return g * -special.y1(x)


@defunary(special.y1)
def y1_vjp(g, ans, x):
    return g * 0.5 * (special.y0(x) - special.yv(2.0, x))


_IN_ORDER_Y = ("scipy.special.yv(v, x) and yn(n, x) are differentiated in x only: the "
               "order is held constant")


@defvjp(special.yv)
def yv_vjp(g, ans, v, x):
    slope = 0.5 * (special.yv(v - 1.0, x) - special.yv(v + 1.0, x))
    return unbroadcast(no_derivative_in(g, v, _IN_ORDER_Y, _HOLD_ORDER), v), unbroadcast(g * slope, x)


@defjvp(special.yv)
def yv_jvp(ans, v, x, v_dot=None, x_dot=None):
    return x_dot * 0.5 * (special.yv(v - 1.0, x) - special.yv(v + 1.0, x)) \
        + no_derivative_in(v_dot, v, _IN_ORDER_Y, _HOLD_ORDER)


@defvjp(special.yn)
def yn_vjp(g, ans, n, x):
    return None, unbroadcast(g * 0.5 * (special.yn(n - 1, x) - special.yn(n + 1, x)), x)


@defjvp(special.yn)
def yn_jvp(ans, n, x, n_dot=None, x_dot=None):
    return x_dot * 0.5 * (special.yn(n - 1, x) - special.yn(n + 1, x))
