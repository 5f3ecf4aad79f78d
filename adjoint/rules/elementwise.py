"""NumPy's elementwise functions (ufuncs), plus `np.clip`, `np.where` and `np.sinc`.

Every binary rule undoes broadcasting with `unbroadcast`, like the operators
in `arith`. Only real inputs are supported (`np.real` and `np.conj` are the
identity there).

Conventions at points where a derivative does not exist:

- `np.abs`, `np.fabs`: abs'(0) = 0 (the rule is `g * np.sign(x)`).
- `np.maximum`, `np.minimum`, `np.fmax`, `np.fmin`: on a tie (x1 == x2) the
  gradient is split evenly, half to each argument. `fmax`/`fmin` send it all to
  the argument that is not NaN.
- `np.clip(a, a_min, a_max)`: the gradient goes to `a` where
  a_min <= a <= a_max (bounds inclusive); to `a_min` where a < a_min; to `a_max`
  where a > a_max. When a_min > a_max NumPy returns a_max, and so does the rule.
- `np.where(c, x, y)`: the cotangent of x is `np.where(c, g, 0.0)`, never
  `g * c`, so a NaN or inf in the untaken branch's gradient cannot leak.
- `np.power(x1, x2)` with respect to x2 where x1 <= 0: 0 (the log is not taken);
  with respect to x1 where x2 == 0: 0, also at x1 == 0 (not 0 * inf).
- `np.hypot` at the origin: 0. `np.sinc'(0) = 0` (the true value).

Piecewise constant or bool valued ufuncs (sign, floor, ceil, rint, round,
trunc, fix, floor_divide, comparisons, logical ops, isnan...) have a zero
derivative (`defnondiff`).
"""
from __future__ import annotations

import math

import numpy as np

from adjoint.rules.registry import defjvp, defnondiff, defvjp, lookup, primitive
from adjoint.runtime import unbroadcast

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
    "conjugate",
]
_NONDIFF = [
    "sign", "floor", "ceil", "rint", "round", "around", "trunc", "fix", "floor_divide",
    "isnan", "isinf", "isfinite", "signbit", "heaviside", "greater", "greater_equal", "less",
    "less_equal", "equal", "not_equal", "logical_and", "logical_or", "logical_not",
    "logical_xor", "imag",
]
for _name in _DIFFERENTIABLE + _NONDIFF:
    _fn = getattr(np, _name, None)
    if _fn is not None and lookup(_fn) is None:
        primitive(_fn, "np." + _name)
defnondiff(*[getattr(np, _n) for _n in _NONDIFF if hasattr(np, _n)])


# ------------------------------------------------------------------ unary

@defvjp(np.exp)
def exp(g, ans, x):
    return g * ans


@defjvp(np.exp)
def exp(ans, x, x_dot):
    return x_dot * ans


@defvjp(np.exp2)
def exp2(g, ans, x):
    return g * ans * _LN2


@defjvp(np.exp2)
def exp2(ans, x, x_dot):
    return x_dot * ans * _LN2


@defvjp(np.expm1)
def expm1(g, ans, x):
    return g * (ans + 1.0)


@defjvp(np.expm1)
def expm1(ans, x, x_dot):
    return x_dot * (ans + 1.0)


@defvjp(np.log)
def log(g, ans, x):
    return g / x


@defjvp(np.log)
def log(ans, x, x_dot):
    return x_dot / x


@defvjp(np.log2)
def log2(g, ans, x):
    return g / (x * _LN2)


@defjvp(np.log2)
def log2(ans, x, x_dot):
    return x_dot / (x * _LN2)


@defvjp(np.log10)
def log10(g, ans, x):
    return g / (x * _LN10)


@defjvp(np.log10)
def log10(ans, x, x_dot):
    return x_dot / (x * _LN10)


@defvjp(np.log1p)
def log1p(g, ans, x):
    return g / (1.0 + x)


@defjvp(np.log1p)
def log1p(ans, x, x_dot):
    return x_dot / (1.0 + x)


@defvjp(np.sqrt)
def sqrt(g, ans, x):
    return g * 0.5 / ans


@defjvp(np.sqrt)
def sqrt(ans, x, x_dot):
    return x_dot * 0.5 / ans


@defvjp(np.cbrt)
def cbrt(g, ans, x):
    return g / (3.0 * ans * ans)


@defjvp(np.cbrt)
def cbrt(ans, x, x_dot):
    return x_dot / (3.0 * ans * ans)


@defvjp(np.square)
def square(g, ans, x):
    return g * 2.0 * x


@defjvp(np.square)
def square(ans, x, x_dot):
    return x_dot * 2.0 * x


@defvjp(np.reciprocal)
def reciprocal(g, ans, x):
    return -g * ans * ans


@defjvp(np.reciprocal)
def reciprocal(ans, x, x_dot):
    return -x_dot * ans * ans


@defvjp(np.sin)
def sin(g, ans, x):
    return g * np.cos(x)


@defjvp(np.sin)
def sin(ans, x, x_dot):
    return x_dot * np.cos(x)


@defvjp(np.cos)
def cos(g, ans, x):
    return -g * np.sin(x)


@defjvp(np.cos)
def cos(ans, x, x_dot):
    return -x_dot * np.sin(x)


@defvjp(np.tan)
def tan(g, ans, x):
    return g * (1.0 + ans * ans)


@defjvp(np.tan)
def tan(ans, x, x_dot):
    return x_dot * (1.0 + ans * ans)


@defvjp(np.arcsin)
def arcsin(g, ans, x):
    return g / np.sqrt(1.0 - x * x)


@defjvp(np.arcsin)
def arcsin(ans, x, x_dot):
    return x_dot / np.sqrt(1.0 - x * x)


@defvjp(np.arccos)
def arccos(g, ans, x):
    return -g / np.sqrt(1.0 - x * x)


@defjvp(np.arccos)
def arccos(ans, x, x_dot):
    return -x_dot / np.sqrt(1.0 - x * x)


@defvjp(np.arctan)
def arctan(g, ans, x):
    return g / (1.0 + x * x)


@defjvp(np.arctan)
def arctan(ans, x, x_dot):
    return x_dot / (1.0 + x * x)


@defvjp(np.sinh)
def sinh(g, ans, x):
    return g * np.cosh(x)


@defjvp(np.sinh)
def sinh(ans, x, x_dot):
    return x_dot * np.cosh(x)


@defvjp(np.cosh)
def cosh(g, ans, x):
    return g * np.sinh(x)


@defjvp(np.cosh)
def cosh(ans, x, x_dot):
    return x_dot * np.sinh(x)


@defvjp(np.tanh)
def tanh(g, ans, x):
    return g * (1.0 - ans * ans)


@defjvp(np.tanh)
def tanh(ans, x, x_dot):
    return x_dot * (1.0 - ans * ans)


@defvjp(np.arcsinh)
def arcsinh(g, ans, x):
    return g / np.sqrt(x * x + 1.0)


@defjvp(np.arcsinh)
def arcsinh(ans, x, x_dot):
    return x_dot / np.sqrt(x * x + 1.0)


@defvjp(np.arccosh)
def arccosh(g, ans, x):
    return g / np.sqrt(x * x - 1.0)


@defjvp(np.arccosh)
def arccosh(ans, x, x_dot):
    return x_dot / np.sqrt(x * x - 1.0)


@defvjp(np.arctanh)
def arctanh(g, ans, x):
    return g / (1.0 - x * x)


@defjvp(np.arctanh)
def arctanh(ans, x, x_dot):
    return x_dot / (1.0 - x * x)


@defvjp(np.deg2rad)
def deg2rad(g, ans, x):
    return g * _DEG


@defjvp(np.deg2rad)
def deg2rad(ans, x, x_dot):
    return x_dot * _DEG


@defvjp(np.radians)
def radians(g, ans, x):
    return g * _DEG


@defjvp(np.radians)
def radians(ans, x, x_dot):
    return x_dot * _DEG


@defvjp(np.rad2deg)
def rad2deg(g, ans, x):
    return g / _DEG


@defjvp(np.rad2deg)
def rad2deg(ans, x, x_dot):
    return x_dot / _DEG


@defvjp(np.degrees)
def degrees(g, ans, x):
    return g / _DEG


@defjvp(np.degrees)
def degrees(ans, x, x_dot):
    return x_dot / _DEG


@defvjp(np.abs)
def abs_(g, ans, x):
    return g * np.sign(x)


@defjvp(np.abs)
def abs_(ans, x, x_dot):
    return x_dot * np.sign(x)


@defvjp(np.fabs)
def fabs(g, ans, x):
    return g * np.sign(x)


@defjvp(np.fabs)
def fabs(ans, x, x_dot):
    return x_dot * np.sign(x)


@defvjp(np.negative)
def negative(g, ans, x):
    return -g


@defjvp(np.negative)
def negative(ans, x, x_dot):
    return -x_dot


@defvjp(np.positive)
def positive(g, ans, x):
    return g


@defjvp(np.positive)
def positive(ans, x, x_dot):
    return x_dot


@defvjp(np.sinc)
def sinc(g, ans, x):
    # d/dx sin(pi x)/(pi x) = (cos(pi x) - sinc(x)) / x, and 0 at x = 0
    return g * np.where(x == 0.0, 0.0, (np.cos(_PI * x) - ans) / (x + (x == 0.0)))


@defjvp(np.sinc)
def sinc(ans, x, x_dot):
    return x_dot * np.where(x == 0.0, 0.0, (np.cos(_PI * x) - ans) / (x + (x == 0.0)))


@defvjp(np.real)
def real(g, ans, val):
    return g


@defjvp(np.real)
def real(ans, val, val_dot):
    return val_dot


@defvjp(np.conj)
def conj(g, ans, x):
    return np.conj(g)


@defjvp(np.conj)
def conj(ans, x, x_dot):
    return np.conj(x_dot)


# ------------------------------------------------------------------ binary

@defvjp(np.add)
def add(g, ans, x1, x2):
    return unbroadcast(g, x1), unbroadcast(g, x2)


@defjvp(np.add)
def add(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot + x2_dot


@defvjp(np.subtract)
def subtract(g, ans, x1, x2):
    return unbroadcast(g, x1), unbroadcast(-g, x2)


@defjvp(np.subtract)
def subtract(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot - x2_dot


@defvjp(np.multiply)
def multiply(g, ans, x1, x2):
    return unbroadcast(g * x2, x1), unbroadcast(x1 * g, x2)


@defjvp(np.multiply)
def multiply(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot * x2 + x1 * x2_dot


@defvjp(np.divide)
def divide(g, ans, x1, x2):
    return unbroadcast(g / x2, x1), unbroadcast(-g * ans / x2, x2)


@defjvp(np.divide)
def divide(ans, x1, x2, x1_dot, x2_dot):
    return (x1_dot - ans * x2_dot) / x2


@defvjp(np.power)
def power(g, ans, x1, x2):
    return (unbroadcast(g * x2 * np.power(x1, x2 - 1 + 2 * (x2 == 0)), x1),
            unbroadcast(g * ans * np.log(np.where(x1 > 0, x1, 1.0)), x2))


@defjvp(np.power)
def power(ans, x1, x2, x1_dot, x2_dot):
    return (x1_dot * x2 * np.power(x1, x2 - 1 + 2 * (x2 == 0))
            + x2_dot * ans * np.log(np.where(x1 > 0, x1, 1.0)))


@defvjp(np.mod)
def mod(g, ans, x1, x2):
    return unbroadcast(g, x1), unbroadcast(-g * np.floor_divide(x1, x2), x2)


@defjvp(np.mod)
def mod(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot - x2_dot * np.floor_divide(x1, x2)


@defvjp(np.fmod)
def fmod(g, ans, x1, x2):
    return unbroadcast(g, x1), unbroadcast(-g * np.trunc(x1 / x2), x2)


@defjvp(np.fmod)
def fmod(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot - x2_dot * np.trunc(x1 / x2)


@defvjp(np.maximum)
def maximum(g, ans, x1, x2):
    w = (x1 > x2) + 0.5 * (x1 == x2)  # the share of x1: 1, 0, or 1/2 on a tie
    return unbroadcast(g * w, x1), unbroadcast(g * (1.0 - w), x2)


@defjvp(np.maximum)
def maximum(ans, x1, x2, x1_dot, x2_dot):
    w = (x1 > x2) + 0.5 * (x1 == x2)
    return x1_dot * w + x2_dot * (1.0 - w)


@defvjp(np.minimum)
def minimum(g, ans, x1, x2):
    w = (x1 < x2) + 0.5 * (x1 == x2)
    return unbroadcast(g * w, x1), unbroadcast(g * (1.0 - w), x2)


@defjvp(np.minimum)
def minimum(ans, x1, x2, x1_dot, x2_dot):
    w = (x1 < x2) + 0.5 * (x1 == x2)
    return x1_dot * w + x2_dot * (1.0 - w)


@defvjp(np.fmax)
def fmax(g, ans, x1, x2):
    w = np.where(np.isnan(x2), 1.0, np.where(np.isnan(x1), 0.0, (x1 > x2) + 0.5 * (x1 == x2)))
    return unbroadcast(g * w, x1), unbroadcast(g * (1.0 - w), x2)


@defjvp(np.fmax)
def fmax(ans, x1, x2, x1_dot, x2_dot):
    w = np.where(np.isnan(x2), 1.0, np.where(np.isnan(x1), 0.0, (x1 > x2) + 0.5 * (x1 == x2)))
    return x1_dot * w + x2_dot * (1.0 - w)


@defvjp(np.fmin)
def fmin(g, ans, x1, x2):
    w = np.where(np.isnan(x2), 1.0, np.where(np.isnan(x1), 0.0, (x1 < x2) + 0.5 * (x1 == x2)))
    return unbroadcast(g * w, x1), unbroadcast(g * (1.0 - w), x2)


@defjvp(np.fmin)
def fmin(ans, x1, x2, x1_dot, x2_dot):
    w = np.where(np.isnan(x2), 1.0, np.where(np.isnan(x1), 0.0, (x1 < x2) + 0.5 * (x1 == x2)))
    return x1_dot * w + x2_dot * (1.0 - w)


@defvjp(np.arctan2)
def arctan2(g, ans, x1, x2):
    r2 = x1 * x1 + x2 * x2
    return unbroadcast(g * x2 / r2, x1), unbroadcast(-g * x1 / r2, x2)


@defjvp(np.arctan2)
def arctan2(ans, x1, x2, x1_dot, x2_dot):
    return (x1_dot * x2 - x2_dot * x1) / (x1 * x1 + x2 * x2)


@defvjp(np.hypot)
def hypot(g, ans, x1, x2):
    r = ans + (ans == 0.0)  # 1.0 at the origin, where x1 = x2 = 0: gradient 0
    return unbroadcast(g * x1 / r, x1), unbroadcast(g * x2 / r, x2)


@defjvp(np.hypot)
def hypot(ans, x1, x2, x1_dot, x2_dot):
    return (x1_dot * x1 + x2_dot * x2) / (ans + (ans == 0.0))


@defvjp(np.logaddexp)
def logaddexp(g, ans, x1, x2):
    # the weights exp(x - ans) = sigmoid(+-d), written without ans so that a gradient
    # that does not return the value never computes it; no exponent is positive
    d = x2 - x1
    shared = g / (1.0 + np.exp(-np.abs(d)))
    return (unbroadcast(shared * np.exp(np.minimum(-d, 0.0)), x1),
            unbroadcast(shared * np.exp(np.minimum(d, 0.0)), x2))


@defjvp(np.logaddexp)
def logaddexp(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot * np.exp(x1 - ans) + x2_dot * np.exp(x2 - ans)


@defvjp(np.logaddexp2)
def logaddexp2(g, ans, x1, x2):
    return unbroadcast(g * np.exp2(x1 - ans), x1), unbroadcast(g * np.exp2(x2 - ans), x2)


@defjvp(np.logaddexp2)
def logaddexp2(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot * np.exp2(x1 - ans) + x2_dot * np.exp2(x2 - ans)


# ------------------------------------------------------------ clip, where

@defvjp(np.clip)
def clip(g, ans, a, a_min=None, a_max=None):
    # clip(a, lo, hi) == minimum(maximum(a, lo), hi); bounds inclusive for `a`.
    # (Every branch returns three values: `a_min is None` is decided at run time
    # when a_min is a variable.)
    if a_min is None and a_max is None:  # NumPy 2: no bounds, a copy
        return g, None, None
    if a_min is None:
        return (unbroadcast(np.where(a <= a_max, g, 0.0), a), None,
                unbroadcast(np.where(a > a_max, g, 0.0), a_max))
    if a_max is None:
        return (unbroadcast(np.where(a >= a_min, g, 0.0), a),
                unbroadcast(np.where(a < a_min, g, 0.0), a_min), None)
    return (unbroadcast(np.where((a >= a_min) & (a <= a_max), g, 0.0), a),
            unbroadcast(np.where((a < a_min) & (a_min <= a_max), g, 0.0), a_min),
            unbroadcast(np.where((a > a_max) | (a_min > a_max), g, 0.0), a_max))


@defjvp(np.clip)
def clip(ans, a, a_min=None, a_max=None, a_dot=None, a_min_dot=None, a_max_dot=None):
    if a_min is None and a_max is None:
        return a_dot
    if a_min is None:
        return np.where(a <= a_max, a_dot, 0.0) + np.where(a > a_max, a_max_dot, 0.0)
    if a_max is None:
        return np.where(a >= a_min, a_dot, 0.0) + np.where(a < a_min, a_min_dot, 0.0)
    return (np.where((a >= a_min) & (a <= a_max), a_dot, 0.0)
            + np.where((a < a_min) & (a_min <= a_max), a_min_dot, 0.0)
            + np.where((a > a_max) | (a_min > a_max), a_max_dot, 0.0))


@defvjp(np.where)
def where(g, ans, condition, x=None, y=None):
    # np.where(c, g, 0.0), not g * c: an inf or NaN in g where c is False must not leak
    return (None, unbroadcast(np.where(condition, g, 0.0), x),
            unbroadcast(np.where(condition, 0.0, g), y))


@defjvp(np.where)
def where(ans, condition, x=None, y=None, x_dot=None, y_dot=None):
    return np.where(condition, x_dot, y_dot)
