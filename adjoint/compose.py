"""Derivatives composed from the public transforms: Jacobians from VJPs or JVPs, and
gradients through an optimisation by the implicit function theorem."""
from __future__ import annotations

import inspect

import numpy as np

from adjoint.api import grad, jvp, vjp
from adjoint.higher import HVP, Derivative
from adjoint.errors import AdjointError, NonDifferentiableError


def _leaves(out) -> list:
    """The arrays (and numbers) of an output, in order: a tuple, list or dict is walked."""
    if isinstance(out, dict):
        return [leaf for v in out.values() for leaf in _leaves(v)]
    if isinstance(out, (tuple, list)):
        return [leaf for v in out for leaf in _leaves(v)]
    return [out]


def _rebuild(out, leaves):
    """`out`'s structure (tuple, list, dict) holding the next values of `leaves`."""
    if isinstance(out, dict):
        return {k: _rebuild(v, leaves) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return type(out)(_rebuild(v, leaves) for v in out)
    return next(leaves)


def _basis(out, j, k):
    """A cotangent (or tangent) shaped like `out`: 1 at entry k of leaf j, 0 elsewhere."""
    ys = [np.asarray(y, dtype=float) for y in _leaves(out)]
    units = []
    for i, y in enumerate(ys):
        e = np.zeros(y.size)
        if i == j:
            e[k] = 1.0
        units.append(e.reshape(y.shape) if y.ndim else float(e[0]) if y.size else 0.0)
    return _rebuild(out, iter(units))


def jacobian(f, wrt=0):
    """The Jacobian d f(args) / d args[wrt], of shape out.shape + x.shape: by VJPs when
    the output has fewer entries than the input, else by JVPs. An output that is a tuple,
    list or dict of arrays gives the same structure of Jacobians, one per array (as
    JAX's jacrev). Keyword arguments at call time are passed to f, not differentiated."""
    def run(*args, **kwargs):
        try:  # x, wherever it was given: by position, by keyword, or its default
            bound = inspect.signature(f).bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{getattr(f, '__name__', 'f')}(): {e}") from None
        bound.apply_defaults()
        x_value = bound.arguments[wrt] if isinstance(wrt, str) else bound.args[wrt]
        x = np.asarray(x_value, dtype=float)
        out, pullback = vjp(f, *args, wrt=wrt, **kwargs)
        ys = [np.asarray(y, dtype=float) for y in _leaves(out)]
        if sum(y.size for y in ys) <= x.size:
            jac = []
            for j, y in enumerate(ys):
                rows = [np.asarray(pullback(_basis(out, j, k)), dtype=float)
                        for k in range(y.size)]
                jac.append(np.stack(rows).reshape(y.shape + x.shape) if rows
                           else np.zeros(y.shape + x.shape))
        else:
            forward_mode = jvp(f, wrt)
            cols = []
            for k in range(x.size):
                e = np.zeros(x.size)
                e[k] = 1.0
                dot = forward_mode(*args, e.reshape(x.shape) if x.ndim else 1.0, **kwargs)[1]
                cols.append([np.asarray(d, dtype=float) for d in _leaves(dot)])
            jac = [np.moveaxis(np.stack([c[j] for c in cols]), 0, -1).reshape(y.shape + x.shape)
                   if cols else np.zeros(y.shape + x.shape) for j, y in enumerate(ys)]
        if len(jac) == 1 and not isinstance(out, (tuple, list, dict)):
            return jac[0]
        return _rebuild(out, iter(jac))
    return run


def conjugate_gradient(matvec, b, tol: float = 1e-10, maxiter: int | None = None):
    """Solve A u = b for symmetric positive definite A given as `matvec`, to a residual of
    `tol` relative to b. A that is not positive definite along a search direction, or
    no convergence in `maxiter` steps (checked with the true residual b - A u), is an
    AdjointError: an iterate that did not converge is not an answer."""
    b = np.asarray(b, dtype=float)
    u = np.zeros_like(b)
    r = b.copy()
    p = r.copy()
    rr = float(np.sum(r * r))
    target = tol * max(1.0, float(np.sqrt(np.sum(b * b))))
    steps = maxiter or 10 * b.size + 10
    for _ in range(steps):
        if np.sqrt(rr) <= target:
            break
        Ap = np.asarray(matvec(p), dtype=float)
        curvature = float(np.sum(p * Ap))
        if not curvature > 0.0:
            raise NonDifferentiableError(
                f"the Hessian is not positive definite (p^T H p = {curvature:.3g} along a "
                f"search direction): the point is not a strict minimum, and the implicit "
                f"gradient does not exist there", None,
                "check that theta* minimises inner, or regularise it (+ eps * |theta|^2)")
        alpha = rr / curvature
        u += alpha * p
        r -= alpha * Ap
        rr, rr_old = float(np.sum(r * r)), rr
        p = r + (rr / rr_old) * p
    residual = float(np.sqrt(np.sum((b - np.asarray(matvec(u), dtype=float)) ** 2)))
    if residual > target:
        raise AdjointError(
            f"conjugate gradient did not converge in {steps} steps: the residual is "
            f"{residual:.3g}, the tolerance {target:.3g}", None,
            "pass a larger maxiter, or a looser tol; an ill-conditioned Hessian needs many steps")
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
