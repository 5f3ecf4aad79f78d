"""NumPy's elementwise functions (ufuncs), plus `np.clip`, `np.where`, `np.select`,
`np.nan_to_num` and `np.sinc`.

Every binary rule undoes broadcasting with `unbroadcast`, like the operators
in `arith`. Only real inputs are supported (`np.real` and `np.conj` are the
identity there).

Conventions at points where a derivative does not exist:

- `np.abs`, `np.fabs`: abs'(0) = 0 (the rule is `g * abs_slope(x)`, np.sign's value). A
  second derivative through that slope at 0 is refused: abs(x) ** 2 would need a slope
  of +-1 there (JAX's convention), a softplus written as max(x, 0) + log1p(exp(-abs(x)))
  a slope of 0 for its first derivative, so no convention is right for both.
- `np.maximum`, `np.minimum`, `np.fmax`, `np.fmin` (and the builtins `max`, `min`, in
  arith): on a tie (x1 == x2) the gradient is split evenly, half to each argument; a
  second derivative through that share on a tie is refused (max(x, 0) ** 2 +
  min(x, 0) ** 2 is x ** 2, whose 2 no share gives): the share is `larger_share`, a
  primitive whose derivative is refused there. `fmax`/`fmin` send it all to the
  argument that is not NaN.
- `np.clip(a, a_min, a_max)`: the gradient goes to `a` where
  a_min <= a <= a_max (bounds inclusive); to `a_min` where a < a_min; to `a_max`
  where a > a_max. When a_min > a_max NumPy returns a_max, and so does the rule.
  Inclusive bounds mean that two clips meeting at a bound each pass a slope of 1 there:
  np.clip(x, 0, 5) + np.clip(x, -5, 0) (which is x) has slope 2 at x = 0, not 1. A
  second derivative across a bound is refused (the slopes are `at_least`, made of
  `larger_share`), where the squares of those clips would give 4 for 2.
- `np.where(c, x, y)`: the cotangent of x is `np.where(c, g, 0.0)`, never
  `g * c`, so a NaN or inf in the untaken branch's gradient cannot leak.
- `np.power(x1, x2)` with respect to x2 where x1 <= 0: 0 (the log is not taken);
  with respect to x1 where x2 == 0: 0, also at x1 == 0 (not 0 * inf).
- `np.hypot` at the origin: 0 (a cone: its second derivative is refused there). `np.sinc'(0) = 0` (the true value), and near 0 a series, so that
  its second derivative is right there too.
- `np.select` follows the choice taken, like `np.where`; `np.nan_to_num` passes
  the gradient of finite entries, and that of a NaN or inf entry to its
  replacement (`nan`, `posinf`, `neginf`) when that is a variable.

Piecewise constant or bool valued ufuncs (sign, floor, ceil, rint, round,
trunc, fix, floor_divide, comparisons, logical ops, isnan...) have a zero
derivative (`defnondiff`). `np.heaviside(x1, x2)` is x2 where x1 == 0: its
derivative with respect to x2 is that mask, and 0 with respect to x1.
`np.divmod(x1, x2)` is the pair (floor_divide, mod): the quotient's derivative is 0,
the remainder's is mod's. `np.ldexp(x1, x2)` is differentiated in x1 (x2 is an
integer exponent).
"""
from __future__ import annotations

import math

import numpy as np

from adjoint.rules.registry import (defjvp, deflinear, defnondiff, defunary, defvjp, lookup,
                                    primitive)
from adjoint.runtime import abs_slope, larger_share, ones_at_zeros, unbroadcast, zero_outside, \
    zero_to_zero

_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_PI = math.pi
_DEG = math.pi / 180.0

# `np.abs is np.absolute`, `np.divide is np.true_divide`, `np.conj is np.conjugate`:
# each object is declared once, under the first name listed.
_DIFFERENTIABLE = [
    "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "cbrt", "square",
    "reciprocal", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "arcsinh", "arccosh", "arctanh", "deg2rad", "rad2deg", "radians", "degrees", "abs",
    "absolute", "fabs", "negative", "positive", "add", "subtract", "multiply", "divide",
    "true_divide", "power", "mod", "remainder", "fmod", "maximum", "minimum", "fmax", "fmin",
    "arctan2", "hypot", "logaddexp", "logaddexp2", "clip", "where", "sinc", "real", "conj",
    "conjugate", "heaviside", "ldexp", "divmod",
]
_NONDIFF = [
    "sign", "floor", "ceil", "rint", "round", "around", "trunc", "fix", "floor_divide",
    "isnan", "isinf", "isfinite", "signbit", "greater", "greater_equal", "less",
    "less_equal", "equal", "not_equal", "logical_and", "logical_or", "logical_not",
    "logical_xor", "imag",
]
for _name in _DIFFERENTIABLE + _NONDIFF:
    _fn = getattr(np, _name, None)
    if _fn is not None and lookup(_fn) is None:
        primitive(_fn, "np." + _name)
defnondiff(*[getattr(np, _n) for _n in _NONDIFF if hasattr(np, _n)])


# ------------------------------------------------------------------ unary

@defunary(np.exp)
def exp_vjp(g, ans, x):
    return g * ans


@defunary(np.exp2)
def exp2_vjp(g, ans, x):
    return g * ans * _LN2


@defunary(np.expm1)
def expm1_vjp(g, ans, x):
    return g * (ans + 1.0)


@defunary(np.log)
def log_vjp(g, ans, x):
    return g / x


@defunary(np.log2)
def log2_vjp(g, ans, x):
    return g / (x * _LN2)


@defunary(np.log10)
def log10_vjp(g, ans, x):
    return g / (x * _LN10)


@defunary(np.log1p)
def log1p_vjp(g, ans, x):
    return g / (1.0 + x)


@defunary(np.sqrt)
def sqrt_vjp(g, ans, x):
    return g * 0.5 / ans


@defunary(np.cbrt)
def cbrt_vjp(g, ans, x):
    return g / (3.0 * ans * ans)


@defunary(np.square)
def square_vjp(g, ans, x):
    return g * 2.0 * x


@defunary(np.reciprocal)
def reciprocal_vjp(g, ans, x):
    return -g * ans * ans


@defunary(np.sin)
def sin_vjp(g, ans, x):
    return g * np.cos(x)


@defunary(np.cos)
def cos_vjp(g, ans, x):
    return -g * np.sin(x)


@defunary(np.tan)
def tan_vjp(g, ans, x):
    return g * (1.0 + ans * ans)


@defunary(np.arcsin)
def arcsin_vjp(g, ans, x):
    return g / np.sqrt(1.0 - x * x)


@defunary(np.arccos)
def arccos_vjp(g, ans, x):
    return -g / np.sqrt(1.0 - x * x)


@defunary(np.arctan)
def arctan_vjp(g, ans, x):
    return g / (1.0 + x * x)


@defunary(np.sinh)
def sinh_vjp(g, ans, x):
    return g * np.cosh(x)


@defunary(np.cosh)
def cosh_vjp(g, ans, x):
    return g * np.sinh(x)


@defunary(np.tanh)
def tanh_vjp(g, ans, x):
    return g * (1.0 - ans * ans)


@defunary(np.arcsinh)
def arcsinh_vjp(g, ans, x):
    return g / np.sqrt(x * x + 1.0)


@defunary(np.arccosh)
def arccosh_vjp(g, ans, x):
    return g / np.sqrt(x * x - 1.0)


@defunary(np.arctanh)
def arctanh_vjp(g, ans, x):
    return g / (1.0 - x * x)


@defunary(np.deg2rad)
def deg2rad_vjp(g, ans, x):
    return g * _DEG


@defunary(np.radians)
def radians_vjp(g, ans, x):
    return g * _DEG


@defunary(np.rad2deg)
def rad2deg_vjp(g, ans, x):
    return g / _DEG


@defunary(np.degrees)
def degrees_vjp(g, ans, x):
    return g / _DEG


@defunary(np.abs)
def abs_vjp(g, ans, x):
    return g * abs_slope(x)


@defunary(np.fabs)
def fabs_vjp(g, ans, x):
    return g * abs_slope(x)


@defunary(np.negative)
def negative_vjp(g, ans, x):
    return -g


@defunary(np.positive)
def positive_vjp(g, ans, x):
    return g


@defunary(np.sinc)
def sinc_vjp(g, ans, x):
    # d/dx sin(pi x)/(pi x) = (cos(pi x) - sinc(x)) / x, which cancels near 0: there its
    # Taylor series, -pi^2 x / 3 + pi^4 x^3 / 30 - pi^6 x^5 / 840 (exact to 1e-13 for
    # |x| < 0.01), whose own derivative is sinc's second derivative
    near = np.abs(x) < 0.01
    series = x * (-_PI ** 2 / 3 + x * x * (_PI ** 4 / 30 - x * x * _PI ** 6 / 840))
    return g * np.where(near, series, (np.cos(_PI * x) - ans) / (x + near))


@defunary(np.real)
def real_vjp(g, ans, val):
    return g


@defunary(np.conj)
def conj_vjp(g, ans, x):
    return np.conj(g)


# ------------------------------------------------------------------ binary

@defvjp(np.add)
def add_vjp(g, ans, x1, x2):
    return unbroadcast(g, x1), unbroadcast(g, x2)


@defjvp(np.add)
def add_jvp(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot + x2_dot


@defvjp(np.subtract)
def subtract_vjp(g, ans, x1, x2):
    return unbroadcast(g, x1), unbroadcast(-g, x2)


@defjvp(np.subtract)
def subtract_jvp(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot - x2_dot


@defvjp(np.multiply)
def multiply_vjp(g, ans, x1, x2):
    return unbroadcast(g * x2, x1), unbroadcast(x1 * g, x2)


@defjvp(np.multiply)
def multiply_jvp(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot * x2 + x1 * x2_dot


@defvjp(np.divide)
def divide_vjp(g, ans, x1, x2):
    return unbroadcast(g / x2, x1), unbroadcast(-g * ans / x2, x2)


@defjvp(np.divide)
def divide_jvp(ans, x1, x2, x1_dot, x2_dot):
    return (x1_dot - ans * x2_dot) / x2


primitive(np.copysign, "np.copysign")
primitive(np.float_power, "np.float_power")


@defvjp(np.copysign)
def copysign_vjp(g, ans, x1, x2):
    # |x1| with x2's sign: x2 only chooses a sign (no derivative); at x1 == 0, 0
    # (abs_slope: a second derivative at x1 == 0, abs's kink, is refused)
    return (unbroadcast(g * abs_slope(x1) * np.where(np.signbit(x2), -1.0, 1.0), x1),
            unbroadcast(np.zeros_like(g), x2))


@defjvp(np.copysign)
def copysign_jvp(ans, x1, x2, x1_dot, x2_dot=None):
    return x1_dot * abs_slope(x1) * np.where(np.signbit(x2), -1.0, 1.0)


@defvjp(np.power)
def power_vjp(g, ans, x1, x2):
    return (unbroadcast(g * x2 * np.power(x1, x2 - 1 + 2 * zero_to_zero(x1, x2)), x1),
            unbroadcast(g * ans * np.log(np.where(x1 > 0, x1, 1.0)), x2))


@defjvp(np.power)
def power_jvp(ans, x1, x2, x1_dot, x2_dot):
    return (x1_dot * x2 * np.power(x1, x2 - 1 + 2 * zero_to_zero(x1, x2))
            + x2_dot * ans * np.log(np.where(x1 > 0, x1, 1.0)))


# float_power is power computed in float64: the same rules
defvjp(np.float_power)(power_vjp)
defjvp(np.float_power)(power_jvp)


@defvjp(np.mod)
def mod_vjp(g, ans, x1, x2):
    return unbroadcast(g, x1), unbroadcast(-g * np.floor_divide(x1, x2), x2)


@defjvp(np.mod)
def mod_jvp(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot - x2_dot * np.floor_divide(x1, x2)


@defvjp(np.divmod)
def divmod_vjp(g, ans, x1, x2):
    # (floor_divide, mod): the quotient is piecewise constant, the remainder is mod
    return unbroadcast(g[1], x1), unbroadcast(-g[1] * ans[0], x2)


@defjvp(np.divmod)
def divmod_jvp(ans, x1, x2, x1_dot, x2_dot):
    dot = (0.0 * ans[0], x1_dot - x2_dot * ans[0])
    return dot  # one tuple (a template's `return a, b` would be two outputs)


@defvjp(np.ldexp)
def ldexp_vjp(g, ans, x1, x2):
    # x1 * 2 ** x2 with x2 an integer exponent: linear in x1
    return unbroadcast(g * np.ldexp(1.0, x2), x1), None


@defjvp(np.ldexp)
def ldexp_jvp(ans, x1, x2, x1_dot):
    return np.ldexp(x1_dot, x2)


@defvjp(np.fmod)
def fmod_vjp(g, ans, x1, x2):
    return unbroadcast(g, x1), unbroadcast(-g * np.trunc(x1 / x2), x2)


@defjvp(np.fmod)
def fmod_jvp(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot - x2_dot * np.trunc(x1 / x2)


@defvjp(np.maximum)
def maximum_vjp(g, ans, x1, x2):
    w = larger_share(x1, x2)  # the share of x1: 1, 0, or 1/2 on a tie
    return unbroadcast(g * w, x1), unbroadcast(g * (1.0 - w), x2)


@defjvp(np.maximum)
def maximum_jvp(ans, x1, x2, x1_dot, x2_dot):
    w = larger_share(x1, x2)
    return x1_dot * w + x2_dot * (1.0 - w)


@defvjp(np.minimum)
def minimum_vjp(g, ans, x1, x2):
    w = larger_share(x2, x1)
    return unbroadcast(g * w, x1), unbroadcast(g * (1.0 - w), x2)


@defjvp(np.minimum)
def minimum_jvp(ans, x1, x2, x1_dot, x2_dot):
    w = larger_share(x2, x1)
    return x1_dot * w + x2_dot * (1.0 - w)


@defvjp(np.fmax)
def fmax_vjp(g, ans, x1, x2):
    w = np.where(np.isnan(x2), 1.0, np.where(np.isnan(x1), 0.0, larger_share(x1, x2)))
    return unbroadcast(g * w, x1), unbroadcast(g * (1.0 - w), x2)


@defjvp(np.fmax)
def fmax_jvp(ans, x1, x2, x1_dot, x2_dot):
    w = np.where(np.isnan(x2), 1.0, np.where(np.isnan(x1), 0.0, larger_share(x1, x2)))
    return x1_dot * w + x2_dot * (1.0 - w)


@defvjp(np.fmin)
def fmin_vjp(g, ans, x1, x2):
    w = np.where(np.isnan(x2), 1.0, np.where(np.isnan(x1), 0.0, larger_share(x2, x1)))
    return unbroadcast(g * w, x1), unbroadcast(g * (1.0 - w), x2)


@defjvp(np.fmin)
def fmin_jvp(ans, x1, x2, x1_dot, x2_dot):
    w = np.where(np.isnan(x2), 1.0, np.where(np.isnan(x1), 0.0, larger_share(x2, x1)))
    return x1_dot * w + x2_dot * (1.0 - w)


@defvjp(np.arctan2)
def arctan2_vjp(g, ans, x1, x2):
    r2 = x1 * x1 + x2 * x2
    return unbroadcast(g * x2 / r2, x1), unbroadcast(-g * x1 / r2, x2)


@defjvp(np.arctan2)
def arctan2_jvp(ans, x1, x2, x1_dot, x2_dot):
    return (x1_dot * x2 - x2_dot * x1) / (x1 * x1 + x2 * x2)


@defvjp(np.hypot)
def hypot_vjp(g, ans, x1, x2):
    r = ones_at_zeros(ans)  # 1.0 at the origin, where x1 = x2 = 0: gradient 0
    return unbroadcast(g * x1 / r, x1), unbroadcast(g * x2 / r, x2)


@defjvp(np.hypot)
def hypot_jvp(ans, x1, x2, x1_dot, x2_dot):
    return (x1_dot * x1 + x2_dot * x2) / ones_at_zeros(ans)


@defvjp(np.heaviside)
def heaviside_vjp(g, ans, x1, x2):
    # piecewise constant in x1; equal to x2 where x1 == 0
    return np.zeros_like(x1, dtype=float), unbroadcast(g * (x1 == 0), x2)


@defjvp(np.heaviside)
def heaviside_jvp(ans, x1, x2, x1_dot=None, x2_dot=None):
    if x2_dot is None:
        return np.zeros_like(ans, dtype=float)
    return np.where(x1 == 0, x2_dot, 0.0)  # ans's shape: x1's and x2's broadcast


@defvjp(np.logaddexp)
def logaddexp_vjp(g, ans, x1, x2):
    # the weights exp(x - ans) = sigmoid(+-(x2 - x1)): smooth to every order (a form
    # with |x2 - x1| has a kink, and its third derivative at x1 = x2 was wrong)
    return unbroadcast(g * np.exp(x1 - ans), x1), unbroadcast(g * np.exp(x2 - ans), x2)


@defjvp(np.logaddexp)
def logaddexp_jvp(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot * np.exp(x1 - ans) + x2_dot * np.exp(x2 - ans)


@defvjp(np.logaddexp2)
def logaddexp2_vjp(g, ans, x1, x2):
    return unbroadcast(g * np.exp2(x1 - ans), x1), unbroadcast(g * np.exp2(x2 - ans), x2)


@defjvp(np.logaddexp2)
def logaddexp2_jvp(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot * np.exp2(x1 - ans) + x2_dot * np.exp2(x2 - ans)


# ------------------------------------------------------------ clip, where

def at_least(x, edge):
    """1.0 where x >= edge, else 0.0 (np.clip's inclusive bound): larger_share with its
    tie's half made whole, so that its derivative, larger_share's, is refused on the tie."""
    return larger_share(x, edge) + 0.5 * (x == edge)


def _through(g, slope):
    """g where the slope (0 or 1) is 1, else 0, never inf * 0; times the slope, so that
    the slope's derivative comes along."""
    return np.where(slope > 0.0, g * slope, 0.0)


@defvjp(np.clip)
def clip_vjp(g, ans, a, a_min=None, a_max=None):
    # clip(a, lo, hi) == minimum(maximum(a, lo), hi); bounds inclusive for `a`. The slopes
    # go through at_least: a second derivative across a bound is refused, where two
    # clips meeting at it (each passing a slope of 1 there) would give 2 for 1.
    # (Every branch returns three values: `a_min is None` is decided at run time
    # when a_min is a variable.)
    if a_min is None and a_max is None:  # NumPy 2: no bounds, a copy
        return g, None, None
    if a_min is None:
        below = at_least(a_max, a)
        return (unbroadcast(_through(g, below), a), None,
                unbroadcast(_through(g, 1.0 - below), a_max))
    if a_max is None:
        above = at_least(a, a_min)
        return (unbroadcast(_through(g, above), a),
                unbroadcast(_through(g, 1.0 - above), a_min), None)
    above = at_least(a, a_min)
    below = at_least(a_max, a)
    ordered = a_min <= a_max  # (else NumPy returns a_max)
    return (unbroadcast(_through(g, above * below), a),
            unbroadcast(_through(g, (1.0 - above) * ordered), a_min),
            unbroadcast(_through(g, np.where(ordered, 1.0 - below, 1.0)), a_max))


@defjvp(np.clip)
def clip_jvp(ans, a, a_min=None, a_max=None, a_dot=None, a_min_dot=None, a_max_dot=None):
    if a_min is None and a_max is None:
        return a_dot
    if a_min is None:
        below = at_least(a_max, a)
        return _through(a_dot, below) + _through(a_max_dot, 1.0 - below)
    if a_max is None:
        above = at_least(a, a_min)
        return _through(a_dot, above) + _through(a_min_dot, 1.0 - above)
    above = at_least(a, a_min)
    below = at_least(a_max, a)
    ordered = a_min <= a_max
    return (_through(a_dot, above * below) + _through(a_min_dot, (1.0 - above) * ordered)
            + _through(a_max_dot, np.where(ordered, 1.0 - below, 1.0)))


@deflinear(np.where, 'x', 'y')
def where_vjp(g, ans, condition, x=None, y=None):
    # np.where(c, g, 0.0), not g * c: an inf or NaN in g where c is False must not leak
    return (None, unbroadcast(np.where(condition, g, 0.0), x),
            unbroadcast(np.where(condition, 0.0, g), y))


primitive(zero_outside, "zero_outside")


@deflinear(zero_outside, 'c')
def zero_outside_vjp(g, ans, cond, c, keep=True):
    # linear in c: the same mask, on g, which has c's shape
    return None, zero_outside(cond, g, keep)


# ------------------------------------------------------------ select, nan_to_num

def select_index(condlist):
    """For np.select: which choice each entry takes, the first condition that holds
    (len(condlist) where none does: the default)."""
    which = np.full(np.broadcast(*condlist).shape, len(condlist))
    for k in range(len(condlist) - 1, -1, -1):
        which = np.where(condlist[k], k, which)
    return which


def unselect(x, condlist, choicelist):
    """The cotangent of np.select's choicelist: a list, entry k the part of `x` where
    choice k was taken, summed to choice k's shape."""
    which = select_index(condlist)
    return [unbroadcast(np.where(which == k, x, 0.0), c) for k, c in enumerate(choicelist)]


def select_parts(parts, condlist, choicelist):
    """The transpose of `unselect`: each part where its choice is taken (np.select)."""
    which = select_index(condlist)
    out = 0.0
    for k, p in enumerate(parts):
        out = out + np.where(which == k, p, 0.0)
    return np.broadcast_to(out, np.broadcast(which, *choicelist).shape) * 1.0


primitive(select_index, "select_index", nondiff=True)
defnondiff(select_index)


@defvjp(np.select)
def select_vjp(g, ans, condlist, choicelist, default=0):
    return (None, unselect(g, condlist, choicelist),
            unbroadcast(np.where(select_index(condlist) == len(condlist), g, 0.0), default))


@defjvp(np.select)
def select_jvp(ans, condlist, choicelist, default=0, choicelist_dot=None, default_dot=0.0):
    return np.select(condlist, choicelist_dot, default_dot)


@defvjp(unselect)
def unselect_vjp(g, ans, x, condlist, choicelist):
    return select_parts(g, condlist, choicelist)


@defjvp(unselect)
def unselect_jvp(ans, x, condlist, choicelist, x_dot):
    return unselect(x_dot, condlist, choicelist)


@defvjp(select_parts)
def select_parts_vjp(g, ans, parts, condlist, choicelist):
    return unselect(g, condlist, choicelist)


@defjvp(select_parts)
def select_parts_jvp(ans, parts, condlist, choicelist, parts_dot):
    return select_parts(parts_dot, condlist, choicelist)


@defvjp(np.nan_to_num)
def nan_to_num_vjp(g, ans, x, copy=True, nan=0.0, posinf=None, neginf=None):
    # a finite entry passes its gradient; a NaN or inf one takes its replacement's
    gx = np.where(np.isfinite(x), g, 0.0)
    gnan = np.sum(np.where(np.isnan(x), g, 0.0))
    if posinf is None and neginf is None:
        return gx, None, gnan, None, None
    if neginf is None:
        return gx, None, gnan, np.sum(np.where(np.isinf(x) & (x > 0.0), g, 0.0)), None
    if posinf is None:
        return gx, None, gnan, None, np.sum(np.where(np.isinf(x) & (x < 0.0), g, 0.0))
    return (gx, None, gnan, np.sum(np.where(np.isinf(x) & (x > 0.0), g, 0.0)),
            np.sum(np.where(np.isinf(x) & (x < 0.0), g, 0.0)))


@defjvp(np.nan_to_num)
def nan_to_num_jvp(ans, x, copy=True, nan=0.0, posinf=None, neginf=None, x_dot=None,
                   nan_dot=0.0, posinf_dot=0.0, neginf_dot=0.0):
    return (np.where(np.isfinite(x), x_dot, 0.0) + np.where(np.isnan(x), nan_dot, 0.0)
            + np.where(np.isinf(x) & (x > 0.0), posinf_dot, 0.0)
            + np.where(np.isinf(x) & (x < 0.0), neginf_dot, 0.0))
