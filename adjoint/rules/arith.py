"""Python's arithmetic operators and numeric builtins.

Every binary rule undoes broadcasting with `unbroadcast`; the compiler drops
that call wherever it knows both shapes agree, so scalar code stays plain.
"""
from __future__ import annotations

import builtins
import operator

import numpy as np

from adjoint.rules.registry import deflinear, defjvp, defnondiff, defvjp, primitive
from adjoint.runtime import Cotangents, abs_slope, larger_share, unbroadcast, zero_to_zero


def unsum(ct, xs):
    """The cotangent of `xs` from `ct`, that of `sum(xs)`. The sum broadcasts its terms
    (sum([x * x, 2.0 * x[0]])), so each term's is `ct` summed down to its shape; terms of
    one shape get them stacked, as zeros_like stacks a sequence's, others one each."""
    if hasattr(xs, "shape"):  # an array: its rows, all of one shape
        return np.broadcast_to(ct, np.shape(xs))
    shapes = {np.shape(e) for e in xs}
    if len(shapes) <= 1:
        return np.broadcast_to(ct, (len(xs),) + (shapes.pop() if shapes else ()))
    return Cotangents(unbroadcast(ct, e) for e in xs)


primitive(operator.add, "add", "infix", "+", 10)
primitive(operator.sub, "sub", "infix", "-", 10)
primitive(operator.mul, "mul", "infix", "*", 11)
primitive(operator.truediv, "truediv", "infix", "/", 11)
primitive(operator.matmul, "matmul", "infix", "@", 11)
primitive(operator.pow, "pow", "infix", "**", 13)
primitive(operator.floordiv, "floordiv", "infix", "//", 11, nondiff=True)
primitive(operator.mod, "mod", "infix", "%", 11)
primitive(operator.neg, "neg", "prefix", "-", 12)
primitive(operator.pos, "pos", "prefix", "+", 12)
primitive(operator.and_, "bitand", "infix", "&", 8, nondiff=True)
primitive(operator.or_, "bitor", "infix", "|", 6, nondiff=True)
primitive(operator.xor, "bitxor", "infix", "^", 7, nondiff=True)
primitive(operator.lshift, "lshift", "infix", "<<", 9, nondiff=True)
primitive(operator.rshift, "rshift", "infix", ">>", 9, nondiff=True)
primitive(operator.invert, "invert", "prefix", "~", 12, nondiff=True)
primitive(operator.not_, "not_", "prefix", "not ", 4, nondiff=True)
for _fn, _sym in [(operator.lt, "<"), (operator.le, "<="), (operator.gt, ">"),
                  (operator.ge, ">="), (operator.eq, "=="), (operator.ne, "!="),
                  (operator.is_, "is"), (operator.is_not, "is not")]:
    primitive(_fn, _fn.__name__, "infix", f" {_sym} ".replace("  ", " "), 5, nondiff=True)

primitive(builtins.abs, "abs")
primitive(builtins.min, "min")
primitive(builtins.max, "max")
primitive(builtins.sum, "sum")
primitive(unsum, "unsum")
primitive(builtins.float, "float")
primitive(builtins.pow, "pow_")
primitive(builtins.len, "len", nondiff=True)
primitive(builtins.range, "range", nondiff=True)
primitive(builtins.int, "int", nondiff=True)
primitive(zero_to_zero, "zero_to_zero", nondiff=True)
primitive(builtins.round, "round", nondiff=True)
primitive(builtins.bool, "bool", nondiff=True)
primitive(builtins.isinstance, "isinstance", nondiff=True)


@defvjp(operator.add)
def add(g, ans, x, y):
    return unbroadcast(g, x), unbroadcast(g, y)


@defjvp(operator.add)
def add(ans, x, y, x_dot, y_dot):
    return x_dot + y_dot


@defvjp(operator.sub)
def sub(g, ans, x, y):
    return unbroadcast(g, x), unbroadcast(-g, y)


@defjvp(operator.sub)
def sub(ans, x, y, x_dot, y_dot):
    return x_dot - y_dot


@defvjp(operator.mul)
def mul(g, ans, x, y):
    return unbroadcast(g * y, x), unbroadcast(g * x, y)


@defjvp(operator.mul)
def mul(ans, x, y, x_dot, y_dot):
    return x_dot * y + x * y_dot


@defvjp(operator.truediv)
def truediv(g, ans, x, y):
    return unbroadcast(g / y, x), unbroadcast(-g * ans / y, y)


@defjvp(operator.truediv)
def truediv(ans, x, y, x_dot, y_dot):
    return (x_dot - ans * y_dot) / y


# d(x ** y)/dx = y * x ** (y - 1), which is 0 * inf at x = 0, y = 0: the exponent
# is moved to 1 there (see runtime.zero_to_zero), so the slope is 0 (the derivative of
# a constant). With a constant y the correction folds away at compile time.
@defvjp(operator.pow)
def pow(g, ans, x, y):
    return (unbroadcast(g * y * x ** (y - 1 + 2 * zero_to_zero(x, y)), x),
            unbroadcast(g * ans * np.log(np.where(x > 0, x, 1.0)), y))


@defjvp(operator.pow)
def pow(ans, x, y, x_dot, y_dot):
    return x_dot * y * x ** (y - 1 + 2 * zero_to_zero(x, y)) + y_dot * ans * np.log(np.where(x > 0, x, 1.0))


@defvjp(builtins.pow)
def pow_(g, ans, x, y):
    return g * y * x ** (y - 1 + 2 * zero_to_zero(x, y)), g * ans * np.log(np.where(x > 0, x, 1.0))


@defjvp(builtins.pow)
def pow_(ans, x, y, x_dot, y_dot):
    return x_dot * y * x ** (y - 1 + 2 * zero_to_zero(x, y)) + y_dot * ans * np.log(np.where(x > 0, x, 1.0))


@defvjp(operator.mod)
def mod(g, ans, x, y):
    return unbroadcast(g, x), unbroadcast(-g * np.floor_divide(x, y), y)


@defjvp(operator.mod)
def mod(ans, x, y, x_dot, y_dot):
    return x_dot - y_dot * np.floor_divide(x, y)


@defvjp(operator.matmul)
def matmul(g, ans, x, y):
    if np.ndim(x) == 2 and np.ndim(y) == 2:
        return g @ y.T, x.T @ g
    if np.ndim(x) == 1 and np.ndim(y) == 2:
        return y @ g, np.outer(x, g)
    if np.ndim(x) == 2 and np.ndim(y) == 1:
        return np.outer(g, y), g @ x
    if np.ndim(x) == 1 and np.ndim(y) == 1:
        return g * y, g * x
    if np.ndim(x) == 1:  # (k) @ (..., k, m) -> (..., m)
        return (unbroadcast(np.sum(g[..., None, :] * y, axis=-1), x),
                unbroadcast(x[:, None] * g[..., None, :], y))
    if np.ndim(y) == 1:  # (..., n, k) @ (k) -> (..., n)
        return (unbroadcast(g[..., None] * y, x),
                unbroadcast(np.sum(g[..., None] * x, axis=-2), y))
    return (unbroadcast(g @ np.swapaxes(y, -1, -2), x),
            unbroadcast(np.swapaxes(x, -1, -2) @ g, y))


@defjvp(operator.matmul)
def matmul(ans, x, y, x_dot, y_dot):
    return x_dot @ y + x @ y_dot


@defvjp(operator.neg)
def neg(g, ans, x):
    return -g


@defjvp(operator.neg)
def neg(ans, x, x_dot):
    return -x_dot


@defvjp(operator.pos)
def pos(g, ans, x):
    return g


@defjvp(operator.pos)
def pos(ans, x, x_dot):
    return x_dot


@defvjp(builtins.abs)
def abs_(g, ans, x):
    return g * abs_slope(x)


@defjvp(builtins.abs)
def abs_(ans, x, x_dot):
    return x_dot * abs_slope(x)


@defvjp(builtins.float)
def float_(g, ans, x):
    return g


@defjvp(builtins.float)
def float_(ans, x, x_dot):
    return float(x_dot)


@defvjp(builtins.min)
def min_(g, ans, x, y):
    # a tie splits the gradient evenly, as np.minimum and np.min do: one convention
    # for all of them, though Python's min returns its first argument
    w = larger_share(y, x)  # the share of x: 1, 0, or 1/2 on a tie (its derivative: refused)
    return g * w, g * (1.0 - w)


@defjvp(builtins.min)
def min_(ans, x, y, x_dot, y_dot):
    w = larger_share(y, x)
    return x_dot * w + y_dot * (1.0 - w)


@defvjp(builtins.max)
def max_(g, ans, x, y):
    w = larger_share(x, y)  # ties split evenly, as for min
    return g * w, g * (1.0 - w)


@defjvp(builtins.max)
def max_(ans, x, y, x_dot, y_dot):
    w = larger_share(x, y)
    return x_dot * w + y_dot * (1.0 - w)


@defvjp(builtins.sum)
def sum_(g, ans, xs):
    return unsum(g, xs)


@deflinear(unsum)  # linear in ct: each term's cotangent, broadcast back and added up
def unsum_vjp(g, ans, ct, xs):
    return np.broadcast_to(sum(g), np.shape(ct))


@defjvp(builtins.sum)
def sum_(ans, xs, xs_dot):
    return sum(xs_dot)


defnondiff(operator.floordiv, operator.lt, operator.le, operator.gt, operator.ge, operator.eq,
           operator.ne, operator.is_, operator.is_not, operator.not_, builtins.len,
           builtins.range, builtins.int, builtins.round, builtins.bool, builtins.isinstance)
