"""Checking gradients against central finite differences (float64).

`check_grad(f, *args, wrt=0)` raises AssertionError with the largest error when
adjoint's gradient and the numerical one disagree; users call it in their own
tests, and adjoint's test-suite calls it on every program it differentiates.
"""
from __future__ import annotations

import numpy as np


def numeric_grad(f, args, wrt=0, eps: float = 1e-6):
    """Central differences of scalar `f` with respect to args[wrt] (an int or tuple)."""
    items = wrt if isinstance(wrt, tuple) else (wrt,)
    grads = []
    for i in items:
        x = args[i]
        if isinstance(x, np.ndarray):
            g = np.zeros(x.shape)
            flat = g.reshape(-1)
            for k in range(x.size):
                up, down = x.astype(float).copy(), x.astype(float).copy()
                up.reshape(-1)[k] += eps
                down.reshape(-1)[k] -= eps
                flat[k] = (_call(f, args, i, up) - _call(f, args, i, down)) / (2 * eps)
            grads.append(g)
        else:
            grads.append((_call(f, args, i, x + eps) - _call(f, args, i, x - eps)) / (2 * eps))
    return grads[0] if not isinstance(wrt, tuple) else tuple(grads)


def _call(f, args, i, value) -> float:
    # fresh copies: a function that updates an argument in place must not change the
    # arguments of the next evaluation
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    args[i] = value
    return float(np.sum(f(*args)))


def check_grad(f, *args, wrt=0, rtol: float = 1e-5, atol: float = 1e-7, eps: float = 1e-6):
    """Assert that `adjoint.grad(f, wrt)(*args)` matches finite differences; returns it."""
    from adjoint.api import grad
    got = grad(f, wrt)(*args)
    want = numeric_grad(f, args, wrt, eps)
    pairs = zip(got, want) if isinstance(wrt, tuple) else [(got, want)]
    for k, (a, b) in enumerate(pairs):
        if np.shape(a) != np.shape(b):
            raise AssertionError(f"gradient {k}: shape {np.shape(a)} != {np.shape(b)}")
        if not np.allclose(a, b, rtol=rtol, atol=atol):
            err = np.max(np.abs(np.asarray(a) - np.asarray(b)))
            raise AssertionError(f"gradient {k} differs from finite differences by {err:.3g}:\n"
                                 f"adjoint: {a}\nnumeric: {b}")
    return got
