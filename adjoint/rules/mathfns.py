"""The `math` module: scalar functions of Python floats.

The templates call `math.*` themselves, so the derivative of scalar code is
scalar code too (plain Python floats, no NumPy arrays).

Conventions where a derivative does not exist:

- `math.fabs'(0) = 0` (the sign of 0).
- `math.hypot` at the origin: gradient 0 (its smallest subgradient), not NaN.
- `math.pow(x, y)` with respect to `y` where `x <= 0`: 0 (the log of x is not
  taken), as `operator.pow` does; with respect to `x` where `y == 0`: 0, also
  at x == 0.
- `math.log(x, base)` is covered with and without `base`; `math.hypot` with two
  arguments only.

`floor`, `ceil`, `trunc` (integer valued) and `isnan`, `isinf`, `isfinite`
(bool valued) have a zero derivative.
"""
from __future__ import annotations

import math

from adjoint.rules.registry import defjvp, defnondiff, defvjp, primitive

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_DEG = math.pi / 180.0

for _name in ["sin", "cos", "tan", "exp", "log", "log1p", "expm1", "log2", "log10", "sqrt",
              "pow", "tanh", "sinh", "cosh", "asin", "acos", "atan", "atan2", "asinh", "acosh",
              "atanh", "hypot", "erf", "fabs", "degrees", "radians", "floor", "ceil", "trunc",
              "isnan", "isinf", "isfinite"]:
    primitive(getattr(math, _name), "math." + _name)

defnondiff(math.floor, math.ceil, math.trunc, math.isnan, math.isinf, math.isfinite)


@defvjp(math.sin)
def sin(g, ans, x):
    return g * math.cos(x)


@defjvp(math.sin)
def sin(ans, x, x_dot):
    return x_dot * math.cos(x)


@defvjp(math.cos)
def cos(g, ans, x):
    return -g * math.sin(x)


@defjvp(math.cos)
def cos(ans, x, x_dot):
    return -x_dot * math.sin(x)


@defvjp(math.tan)
def tan(g, ans, x):
    return g * (1.0 + ans * ans)


@defjvp(math.tan)
def tan(ans, x, x_dot):
    return x_dot * (1.0 + ans * ans)


@defvjp(math.exp)
def exp(g, ans, x):
    return g * ans


@defjvp(math.exp)
def exp(ans, x, x_dot):
    return x_dot * ans


@defvjp(math.log)
def log(g, ans, x, base=None):
    if base is None:
        return g / x, None
    return g / (x * math.log(base)), -g * ans / (base * math.log(base))


@defjvp(math.log)
def log(ans, x, base=None, x_dot=None, base_dot=None):
    if base is None:
        return x_dot / x
    return x_dot / (x * math.log(base)) - base_dot * ans / (base * math.log(base))


@defvjp(math.log1p)
def log1p(g, ans, x):
    return g / (1.0 + x)


@defjvp(math.log1p)
def log1p(ans, x, x_dot):
    return x_dot / (1.0 + x)


@defvjp(math.expm1)
def expm1(g, ans, x):
    return g * (ans + 1.0)


@defjvp(math.expm1)
def expm1(ans, x, x_dot):
    return x_dot * (ans + 1.0)


@defvjp(math.log2)
def log2(g, ans, x):
    return g / (x * _LN2)


@defjvp(math.log2)
def log2(ans, x, x_dot):
    return x_dot / (x * _LN2)


@defvjp(math.log10)
def log10(g, ans, x):
    return g / (x * _LN10)


@defjvp(math.log10)
def log10(ans, x, x_dot):
    return x_dot / (x * _LN10)


@defvjp(math.sqrt)
def sqrt(g, ans, x):
    return g * 0.5 / ans


@defjvp(math.sqrt)
def sqrt(ans, x, x_dot):
    return x_dot * 0.5 / ans


@defvjp(math.pow)
def pow_(g, ans, x, y):
    return g * y * math.pow(x, y - 1.0 + 2.0 * (y == 0.0)), g * ans * math.log(x if x > 0.0 else 1.0)


@defjvp(math.pow)
def pow_(ans, x, y, x_dot, y_dot):
    return x_dot * y * math.pow(x, y - 1.0 + 2.0 * (y == 0.0)) + y_dot * ans * math.log(x if x > 0.0 else 1.0)


@defvjp(math.tanh)
def tanh(g, ans, x):
    return g * (1.0 - ans * ans)


@defjvp(math.tanh)
def tanh(ans, x, x_dot):
    return x_dot * (1.0 - ans * ans)


@defvjp(math.sinh)
def sinh(g, ans, x):
    return g * math.cosh(x)


@defjvp(math.sinh)
def sinh(ans, x, x_dot):
    return x_dot * math.cosh(x)


@defvjp(math.cosh)
def cosh(g, ans, x):
    return g * math.sinh(x)


@defjvp(math.cosh)
def cosh(ans, x, x_dot):
    return x_dot * math.sinh(x)


@defvjp(math.asin)
def asin(g, ans, x):
    return g / math.sqrt(1.0 - x * x)


@defjvp(math.asin)
def asin(ans, x, x_dot):
    return x_dot / math.sqrt(1.0 - x * x)


@defvjp(math.acos)
def acos(g, ans, x):
    return -g / math.sqrt(1.0 - x * x)


@defjvp(math.acos)
def acos(ans, x, x_dot):
    return -x_dot / math.sqrt(1.0 - x * x)


@defvjp(math.atan)
def atan(g, ans, x):
    return g / (1.0 + x * x)


@defjvp(math.atan)
def atan(ans, x, x_dot):
    return x_dot / (1.0 + x * x)


@defvjp(math.atan2)
def atan2(g, ans, y, x):
    return g * x / (x * x + y * y), -g * y / (x * x + y * y)


@defjvp(math.atan2)
def atan2(ans, y, x, y_dot, x_dot):
    return (y_dot * x - x_dot * y) / (x * x + y * y)


@defvjp(math.asinh)
def asinh(g, ans, x):
    return g / math.sqrt(x * x + 1.0)


@defjvp(math.asinh)
def asinh(ans, x, x_dot):
    return x_dot / math.sqrt(x * x + 1.0)


@defvjp(math.acosh)
def acosh(g, ans, x):
    return g / math.sqrt(x * x - 1.0)


@defjvp(math.acosh)
def acosh(ans, x, x_dot):
    return x_dot / math.sqrt(x * x - 1.0)


@defvjp(math.atanh)
def atanh(g, ans, x):
    return g / (1.0 - x * x)


@defjvp(math.atanh)
def atanh(ans, x, x_dot):
    return x_dot / (1.0 - x * x)


@defvjp(math.hypot)
def hypot(g, ans, x, y):
    # `ans + (ans == 0.0)` is ans, or 1.0 at the origin where x = y = 0: gradient 0
    return g * x / (ans + (ans == 0.0)), g * y / (ans + (ans == 0.0))


@defjvp(math.hypot)
def hypot(ans, x, y, x_dot, y_dot):
    return (x_dot * x + y_dot * y) / (ans + (ans == 0.0))


@defvjp(math.erf)
def erf(g, ans, x):
    return g * _TWO_OVER_SQRT_PI * math.exp(-x * x)


@defjvp(math.erf)
def erf(ans, x, x_dot):
    return x_dot * _TWO_OVER_SQRT_PI * math.exp(-x * x)


@defvjp(math.fabs)
def fabs(g, ans, x):
    return g * (float(x > 0.0) - float(x < 0.0))  # float: np.bool_ cannot subtract


@defjvp(math.fabs)
def fabs(ans, x, x_dot):
    return x_dot * (float(x > 0.0) - float(x < 0.0))


@defvjp(math.degrees)
def degrees(g, ans, x):
    return g / _DEG


@defjvp(math.degrees)
def degrees(ans, x, x_dot):
    return x_dot / _DEG


@defvjp(math.radians)
def radians(g, ans, x):
    return g * _DEG


@defjvp(math.radians)
def radians(ans, x, x_dot):
    return x_dot * _DEG
