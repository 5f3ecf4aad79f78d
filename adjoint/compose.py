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
        values = [_rebuild(v, leaves) for v in out]
        # a namedtuple takes its fields one by one (type(out)(generator) put the generator
        # in its first field and the defaults in the others)
        return out._make(values) if hasattr(out, "_fields") else type(out)(values)
    return next(leaves)


def _float_dtype(v) -> np.dtype:
    """The dtype a derivative of or by `v` has: its own when it is a float (float32 stays
    float32, as in JAX), else float64."""
    dtype = np.asarray(v).dtype
    return dtype if dtype.kind == "f" else np.dtype(float)


def _basis(out, j, k):
    """A cotangent (or tangent) shaped like `out`: 1 at entry k of leaf j, 0 elsewhere."""
    ys = [np.asarray(y, dtype=_float_dtype(y)) for y in _leaves(out)]
    units = []
    for i, y in enumerate(ys):
        e = np.zeros(y.size, y.dtype)
        if i == j:
            e[k] = 1.0
        units.append(e.reshape(y.shape) if y.ndim else float(e[0]) if y.size else 0.0)
    return _rebuild(out, iter(units))


def jacobian(f, wrt=0):
    """The Jacobian d f(args) / d args[wrt], of shape out.shape + x.shape: by VJPs when
    the output has fewer entries than the input, else by JVPs. An output that is a tuple,
    list or dict of arrays gives the same structure of Jacobians, one per array (as
    JAX's jacrev). Keyword arguments at call time are passed to f, not differentiated.
    A tuple `wrt` gives a tuple of Jacobians, one per argument named (as JAX's argnums)."""
    if isinstance(wrt, tuple):
        each = [jacobian(f, w) for w in wrt]
        return lambda *args, **kwargs: tuple(j(*args, **kwargs) for j in each)

    def run(*args, **kwargs):
        try:  # x, wherever it was given: by position, by keyword, or its default
            bound = inspect.signature(f).bind(*args, **kwargs)
        except TypeError as e:
            raise TypeError(f"{getattr(f, '__name__', 'f')}(): {e}") from None
        bound.apply_defaults()
        x_value = bound.arguments[wrt] if isinstance(wrt, str) else bound.args[wrt]
        if isinstance(x_value, dict):
            return _dict_jacobian(f, wrt, x_value, args, kwargs)
        try:
            dtype = _float_dtype(x_value)
            x = np.asarray(x_value, dtype=dtype)
        except (TypeError, ValueError):
            raise AdjointError(f"the Jacobian with respect to `{_name(f, wrt)}` "
                               f"({type(x_value).__name__}) has no array form", _loc(f),
                               "pass an array, or a dict of arrays (one Jacobian per "
                               "entry)") from None
        out, pullback = vjp(f, *args, wrt=wrt, **kwargs)
        ys = [np.asarray(y, dtype=float) for y in _leaves(out)]
        if sum(y.size for y in ys) <= x.size:
            jac = []
            for j, y in enumerate(ys):
                rows = [np.asarray(pullback(_basis(out, j, k)), dtype=dtype)
                        for k in range(y.size)]
                jac.append(np.stack(rows).reshape(y.shape + x.shape) if rows
                           else np.zeros(y.shape + x.shape, dtype))
        else:
            forward_mode = jvp(f, wrt)
            cols = []
            for k in range(x.size):
                e = np.zeros(x.size, dtype)
                e[k] = 1.0
                dot = forward_mode(*args, e.reshape(x.shape) if x.ndim else dtype.type(1.0),
                                   **kwargs)[1]
                cols.append([np.asarray(d, dtype=_float_dtype(d)) for d in _leaves(dot)])
            jac = [np.moveaxis(np.stack([c[j] for c in cols]), 0, -1).reshape(y.shape + x.shape)
                   if cols else np.zeros(y.shape + x.shape, dtype) for j, y in enumerate(ys)]
        if len(jac) == 1 and not isinstance(out, (tuple, list, dict)):
            return jac[0]
        return _rebuild(out, iter(jac))
    return run


def _name(f, wrt) -> str:
    if isinstance(wrt, str):
        return wrt
    names = list(inspect.signature(f).parameters)
    return names[wrt] if -len(names) <= wrt < len(names) else str(wrt)


def _loc(f):
    """f's def line, where an error about its arguments points."""
    from adjoint.frontend.source import parse_function
    parsed = parse_function(f)
    return parsed.loc(parsed.node)


def _floating(v) -> bool:
    return isinstance(v, (float, np.floating)) or \
        isinstance(v, np.ndarray) and v.dtype.kind == "f"


def _dict_jacobian(f, wrt, p, args, kwargs):
    """The Jacobian with respect to a dict of parameters: for each output array, a dict of
    the same keys, entry `k` of shape out.shape + p[k].shape (as JAX's jacrev). Entries
    that are not floats (an int, a string setting) are constants and have none."""
    keys = [k for k, v in p.items() if _floating(v)]
    nested = next((k for k, v in p.items() if isinstance(v, (dict, list, tuple))), None)
    if nested is not None:
        raise AdjointError(f"the Jacobian with respect to `{_name(f, wrt)}`, whose entry "
                           f"{nested!r} is a {type(p[nested]).__name__}, has no array form",
                           _loc(f), "pass a dict of arrays and floats (one level)")
    shapes = {k: np.shape(p[k]) for k in keys}
    out, pullback = vjp(f, *args, wrt=wrt, **kwargs)
    ys = [np.asarray(y, dtype=float) for y in _leaves(out)]
    if sum(y.size for y in ys) <= sum(int(np.prod(s)) for s in shapes.values()):
        jac = []
        for j, y in enumerate(ys):
            cts = [pullback(_basis(out, j, i)) for i in range(y.size)]
            jac.append({k: np.stack([np.asarray(ct[k], dtype=float) for ct in cts]).reshape(
                y.shape + shapes[k]) if cts else np.zeros(y.shape + shapes[k]) for k in keys})
    else:
        forward_mode = jvp(f, wrt)
        jac = [{} for _ in ys]
        for k in keys:
            cols = []
            for i in range(int(np.prod(shapes[k]))):
                tangent = {name: np.zeros(np.shape(v)) if _floating(v) else None
                           for name, v in p.items()}
                e = np.zeros(int(np.prod(shapes[k])))
                e[i] = 1.0
                tangent[k] = e.reshape(shapes[k]) if shapes[k] else 1.0
                dot = forward_mode(*args, tangent, **kwargs)[1]
                cols.append([np.asarray(d, dtype=float) for d in _leaves(dot)])
            for j, y in enumerate(ys):
                jac[j][k] = np.moveaxis(np.stack([c[j] for c in cols]), 0, -1).reshape(
                    y.shape + shapes[k]) if cols else np.zeros(y.shape + shapes[k])
    if len(jac) == 1 and not isinstance(out, (tuple, list, dict)):
        return jac[0]
    return _rebuild(out, iter(jac))


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
