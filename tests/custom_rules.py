"""A user module with its own primitive and derivative rules (for tests/test_check.py)."""
import numpy as np

import adjoint


def softplus(x):
    return np.log1p(np.exp(x))


@adjoint.defvjp(softplus)
def softplus_vjp(g, ans, x):
    return g / (1.0 + np.exp(-x))


@adjoint.defjvp(softplus)
def softplus_jvp(ans, x, x_dot):
    return x_dot / (1.0 + np.exp(-x))


def wrong(x):
    return np.sin(x)


@adjoint.defvjp(wrong)
def wrong_vjp(g, ans, x):
    return -g * np.cos(x)  # the sign is wrong on purpose


def loss(x):
    return np.sum(softplus(x) ** 2)


def broken(x):
    y = x * 2.0
    z = wrong(y)
    return np.sum(z * z)


def frozen(x, w):
    return np.sum(adjoint.stop_gradient(w * x) * x)
