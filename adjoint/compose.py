"""Derivatives composed from the public transforms: Jacobians from VJPs or JVPs, and
gradients through an optimisation by the implicit function theorem."""
from __future__ import annotations

import numpy as np

from adjoint.api import grad, jvp, vjp
from adjoint.higher import HVP, Derivative


def jacobian(f, wrt: int = 0):
    """The Jacobian d f(args) / d args[wrt], of shape out.shape + x.shape: by VJPs when
    the output has fewer entries than the input, else by JVPs."""
    def run(*args):
        x = np.asarray(args[wrt], dtype=float)
        out, pullback = vjp(f, *args, wrt=wrt)
        y = np.asarray(out, dtype=float)
        if y.size <= x.size:
            rows = []
            for k in range(y.size):
                e = np.zeros(y.size)
                e[k] = 1.0
                rows.append(np.asarray(pullback(e.reshape(y.shape) if y.ndim else 1.0)))
            return np.stack(rows).reshape(y.shape + x.shape)
        forward_mode = jvp(f, wrt)
        cols = []
        for k in range(x.size):
            e = np.zeros(x.size)
            e[k] = 1.0
            cols.append(np.asarray(forward_mode(*args, e.reshape(x.shape) if x.ndim else 1.0)[1]))
        return np.moveaxis(np.stack(cols), 0, -1).reshape(y.shape + x.shape)
    return run


def conjugate_gradient(matvec, b, tol: float = 1e-10, maxiter: int | None = None):
    """Solve A u = b for symmetric positive definite A given as `matvec`."""
    b = np.asarray(b, dtype=float)
    u = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = float(np.sum(r * r))
    for _ in range(maxiter or 10 * b.size + 10):
        if np.sqrt(rr) <= tol * max(1.0, float(np.sqrt(np.sum(b * b)))):
            break
        Ap = np.asarray(matvec(p), dtype=float)
        alpha = rr / float(np.sum(p * Ap))
        u += alpha * p
        r -= alpha * Ap
        rr, rr_old = float(np.sum(r * r)), rr
        p = r + (rr / rr_old) * p
    return u


def implicit_grad(inner, outer, wrt: int = 1, tol: float = 1e-10, maxiter: int | None = None):
    """The gradient of `outer(theta*)` with respect to `args[wrt]`, where theta* minimises
    `inner(theta, *args)` (the implicit function theorem):

        d outer / d p = - (d/dp grad_theta inner(theta*, p))^T  H^{-1}  grad outer(theta*)

    with H the Hessian of inner in theta. H^{-1} g is found by conjugate gradient on
    Hessian-vector products (forward over reverse), never forming H. Returns a function
    `(theta_star, *args, outer_args=()) -> gradient`.
    """
    H = HVP(inner, 0)
    outer_grad = None

    def run(theta, *args, outer_args=()):
        nonlocal outer_grad
        outer_grad = outer_grad or grad(outer, 0)
        g = outer_grad(theta, *outer_args)
        u = conjugate_gradient(lambda v: H(theta, *args, v.reshape(np.shape(theta))),
                               np.ravel(g), tol, maxiter).reshape(np.shape(theta))
        p = args[wrt - 1]
        last = ("dir", wrt) if isinstance(p, float) else ("grad", wrt)
        mixed = _mixed.setdefault((inner, wrt, last[0]), Derivative(
            inner, (("grad", 0), ("dot", None), last), name="mixed"))
        return -mixed(theta, *args, u)

    return run


_mixed: dict = {}
