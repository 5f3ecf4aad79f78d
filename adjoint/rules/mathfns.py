"""The `math` module: scalar functions of Python floats.

The templates call `math.*` themselves, so the derivative of scalar code is
scalar code too (plain Python floats, no NumPy arrays).

Conventions where a derivative does not exist:

- `math.fabs'(0) = 0` (the sign of 0); its second derivative there is refused, as abs's.
- `math.hypot` at the origin: gradient 0 (its smallest subgradient), not NaN.
- `math.pow(x, y)` with respect to `y` where `x <= 0`: 0 (the log of x is not
  taken), as `operator.pow` does; with respect to `x` where `y == 0`: 0, also
  at x == 0.
- `math.log(x, base)` is covered with and without `base`; `math.hypot` with two
  arguments only.
- `math.gamma` and `math.lgamma` (log |gamma|) differentiate through `polygamma`,
  written here (the standard library has no digamma): gamma' = gamma * psi and
  lgamma' = psi, at every x where gamma is finite, negative x included.

`floor`, `ceil`, `trunc` (integer valued) and `isnan`, `isinf`, `isfinite`
(bool valued) have a zero derivative.
"""
from __future__ import annotations

import math

from adjoint.rules.registry import defjvp, defnondiff, defunary, defvjp, primitive
from adjoint.runtime import abs_slope, zero_to_zero

_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_LN2 = math.log(2.0)
_LN10 = math.log(10.0)
_DEG = math.pi / 180.0

for _name in ["sin", "cos", "tan", "exp", "log", "log1p", "expm1", "log2", "log10", "sqrt",
              "pow", "tanh", "sinh", "cosh", "asin", "acos", "atan", "atan2", "asinh", "acosh",
              "atanh", "hypot", "erf", "erfc", "gamma", "lgamma", "fabs", "degrees", "radians",
              "floor", "ceil", "trunc",
              "isnan", "isinf", "isfinite"]:
    primitive(getattr(math, _name), "math." + _name)

defnondiff(math.floor, math.ceil, math.trunc, math.isnan, math.isinf, math.isfinite)

# B_2k / (2k)! for the asymptotic series of polygamma (B_2 .. B_20)
_BERNOULLI = [1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730, 7 / 6, -3617 / 510,
              43867 / 798, -174611 / 330]


def polygamma(n, x):
    """psi^(n)(x), the (n+1)-th derivative of log gamma, for an int n >= 0 and a float x
    not a pole (0, -1, -2, ...): the recurrence psi^(n)(x) = psi^(n)(x + 1) -
    (-1)^n n! / x^(n+1) moves x above 10 + n, where the asymptotic series is exact to
    about 1e-15 (relative)."""
    n, x = int(n), float(x)
    fact = math.factorial(n)
    sign = -1.0 if n % 2 else 1.0  # (-1)^n
    shift = 0.0
    while x < 10.0 + n:
        shift += sign * fact / x ** (n + 1)
        x += 1.0
    if n == 0:
        series = math.log(x) - 0.5 / x
        for k, b in enumerate(_BERNOULLI, 1):
            series -= b / (2 * k * x ** (2 * k))
    else:
        series = math.factorial(n - 1) / x ** n + fact / (2.0 * x ** (n + 1))
        for k, b in enumerate(_BERNOULLI, 1):
            series += b * math.factorial(2 * k + n - 1) / (math.factorial(2 * k) * x ** (2 * k + n))
        series *= -sign  # (-1)^(n+1)
    return series - shift


primitive(polygamma, "polygamma")


@defunary(math.sin)
def sin_vjp(g, ans, x):
    return g * math.cos(x)


@defunary(math.cos)
def cos_vjp(g, ans, x):
    return -g * math.sin(x)


@defunary(math.tan)
def tan_vjp(g, ans, x):
    return g * (1.0 + ans * ans)


@defunary(math.exp)
def exp_vjp(g, ans, x):
    return g * ans


@defvjp(math.log)
def log_vjp(g, ans, x, base=None):
    if base is None:
        return g / x, None
    return g / (x * math.log(base)), -g * ans / (base * math.log(base))


@defjvp(math.log)
def log_jvp(ans, x, base=None, x_dot=None, base_dot=None):
    if base is None:
        return x_dot / x
    return x_dot / (x * math.log(base)) - base_dot * ans / (base * math.log(base))


@defunary(math.log1p)
def log1p_vjp(g, ans, x):
    return g / (1.0 + x)


@defunary(math.expm1)
def expm1_vjp(g, ans, x):
    return g * (ans + 1.0)


@defunary(math.log2)
def log2_vjp(g, ans, x):
    return g / (x * _LN2)


@defunary(math.log10)
def log10_vjp(g, ans, x):
    return g / (x * _LN10)


@defunary(math.sqrt)
def sqrt_vjp(g, ans, x):
    return g * 0.5 / ans


@defvjp(math.pow)
def pow_vjp(g, ans, x, y):
    return g * y * math.pow(x, y - 1.0 + 2.0 * zero_to_zero(x, y)), g * ans * math.log(x if x > 0.0 else 1.0)


@defjvp(math.pow)
def pow_jvp(ans, x, y, x_dot, y_dot):
    return x_dot * y * math.pow(x, y - 1.0 + 2.0 * zero_to_zero(x, y)) + y_dot * ans * math.log(x if x > 0.0 else 1.0)


@defunary(math.tanh)
def tanh_vjp(g, ans, x):
    return g * (1.0 - ans * ans)


@defunary(math.sinh)
def sinh_vjp(g, ans, x):
    return g * math.cosh(x)


@defunary(math.cosh)
def cosh_vjp(g, ans, x):
    return g * math.sinh(x)


@defunary(math.asin)
def asin_vjp(g, ans, x):
    return g / math.sqrt(1.0 - x * x)


@defunary(math.acos)
def acos_vjp(g, ans, x):
    return -g / math.sqrt(1.0 - x * x)


@defunary(math.atan)
def atan_vjp(g, ans, x):
    return g / (1.0 + x * x)


@defvjp(math.atan2)
def atan2_vjp(g, ans, y, x):
    return g * x / (x * x + y * y), -g * y / (x * x + y * y)


@defjvp(math.atan2)
def atan2_jvp(ans, y, x, y_dot, x_dot):
    return (y_dot * x - x_dot * y) / (x * x + y * y)


@defunary(math.asinh)
def asinh_vjp(g, ans, x):
    return g / math.sqrt(x * x + 1.0)


@defunary(math.acosh)
def acosh_vjp(g, ans, x):
    return g / math.sqrt(x * x - 1.0)


@defunary(math.atanh)
def atanh_vjp(g, ans, x):
    return g / (1.0 - x * x)


@defvjp(math.hypot)
def hypot_vjp(g, ans, x, y):
    # `ans + (ans == 0.0)` is ans, or 1.0 at the origin where x = y = 0: gradient 0
    return g * x / (ans + (ans == 0.0)), g * y / (ans + (ans == 0.0))


@defjvp(math.hypot)
def hypot_jvp(ans, x, y, x_dot, y_dot):
    return (x_dot * x + y_dot * y) / (ans + (ans == 0.0))


@defunary(math.erf)
def erf_vjp(g, ans, x):
    return g * _TWO_OVER_SQRT_PI * math.exp(-x * x)


@defunary(math.fabs)
def fabs_vjp(g, ans, x):
    # abs's slope (a second derivative at 0, its kink, is refused), as a Python float
    return g * float(abs_slope(x))


@defunary(math.degrees)
def degrees_vjp(g, ans, x):
    return g / _DEG


@defunary(math.radians)
def radians_vjp(g, ans, x):
    return g * _DEG


@defunary(math.erfc)
def erfc_vjp(g, ans, x):
    return -g * _TWO_OVER_SQRT_PI * math.exp(-x * x)


@defunary(math.gamma)
def gamma_vjp(g, ans, x):
    return g * ans * polygamma(0, x)


@defunary(math.lgamma)
def lgamma_vjp(g, ans, x):
    return g * polygamma(0, x)


@defvjp(polygamma)
def polygamma_vjp(g, ans, n, x):
    return None, g * polygamma(n + 1, x)


@defjvp(polygamma)
def polygamma_jvp(ans, n, x, x_dot):
    return x_dot * polygamma(n + 1, x)
