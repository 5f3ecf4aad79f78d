"""Linear algebra: dot, matmul, outer, inner, vdot, trace, transpose, and
`np.linalg.solve`, `inv`, `det`.

`np.dot` and `np.inner` are covered for every number of dimensions; `np.matmul` (like the `@` operator) for every combination, batched
and broadcast. `solve`, `inv` and `det` accept stacks of matrices; `solve`
follows NumPy 2: `b` is a vector exactly when it is 1-d. The rules of `inv`
and `det` assume a nonsingular matrix (det's rule uses the inverse).

Not covered: `np.einsum`, `np.tensordot`, `np.kron` (a gradient that reaches
one raises NonDifferentiableError at its line).
"""
from __future__ import annotations

import numpy as np

from adjoint.errors import NonDifferentiableError
from adjoint.rules.registry import defjvp, defnondiff, defvjp, primitive
from adjoint.runtime import expand_to, unbroadcast


def unsupported(message):
    """Raise: a derivative rule reached a case it does not cover (no rule uses it now;
    kept for users' templates)."""
    raise NonDifferentiableError(message)


def inverse_permutation(axes, ndim):
    """The axes that undo `np.transpose(x, axes)` for an x of `ndim` dimensions."""
    axes = [int(a) % ndim for a in axes]
    inverse = [0] * ndim
    for i, a in enumerate(axes):
        inverse[a] = i
    return tuple(inverse)


def trace_mask(a, offset=0, axis1=0, axis2=1):
    """A 0/1 array of `a`'s shape marking the diagonal that `np.trace` sums."""
    shape = np.shape(a)
    nd = len(shape)
    ax1, ax2 = axis1 % nd, axis2 % nd
    eye = np.eye(shape[ax1], shape[ax2], offset)
    if ax1 > ax2:
        eye = eye.T
    dims = [1] * nd
    dims[ax1], dims[ax2] = shape[ax1], shape[ax2]
    return np.broadcast_to(eye.reshape(dims), shape)


for _fn, _name in [(np.dot, "np.dot"), (np.matmul, "np.matmul"), (np.outer, "np.outer"),
                   (np.inner, "np.inner"), (np.vdot, "np.vdot"), (np.trace, "np.trace"),
                   (np.transpose, "np.transpose"), (np.linalg.solve, "np.linalg.solve"),
                   (np.linalg.inv, "np.linalg.inv"), (np.linalg.det, "np.linalg.det")]:
    primitive(_fn, _name)
primitive(unsupported, "unsupported", nondiff=True, pure=False)
primitive(inverse_permutation, "inverse_permutation", nondiff=True)
primitive(trace_mask, "trace_mask", nondiff=True)
defnondiff(unsupported, inverse_permutation, trace_mask)


# ------------------------------------------------------------------ products

@defvjp(np.dot)
def dot(g, ans, a, b, out=None):
    if np.ndim(a) == 0 or np.ndim(b) == 0:  # a scalar factor: plain multiplication
        return unbroadcast(g * b, a), unbroadcast(a * g, b)
    if np.ndim(a) == 1 and np.ndim(b) == 1:
        return g * b, g * a
    if np.ndim(a) == 2 and np.ndim(b) == 2:
        return np.dot(g, b.T), np.dot(a.T, g)
    if np.ndim(a) == 1 and np.ndim(b) == 2:
        return np.dot(b, g), np.outer(a, g)
    if np.ndim(a) == 2 and np.ndim(b) == 1:
        return np.outer(g, b), np.dot(g, a)
    # N-d: a's last axis against b's second-to-last (b's only, for a 1-d b); as matrix
    # products over the flattened batch axes, so the rule calls only registered primitives
    k = np.shape(a)[-1]
    p = int(np.prod(np.shape(a)[:-1]))
    if np.ndim(b) == 1:  # (..., k) . (k) -> (...)
        return g[..., None] * b, np.reshape(np.reshape(a, (p, k)).T @ np.ravel(g), (k,))
    m = np.shape(b)[-1]
    qm = int(np.prod(np.shape(b)[:-2])) * m
    g2 = np.reshape(g, (p, qm))
    ga = g2 @ np.reshape(np.moveaxis(b, -2, 0), (k, qm)).T
    gb = np.reshape(np.reshape(a, (p, k)).T @ g2, (k,) + np.shape(b)[:-2] + (m,))
    return np.reshape(ga, np.shape(a)), np.moveaxis(gb, 0, -2)


@defjvp(np.dot)
def dot(ans, a, b, out=None, a_dot=None, b_dot=None):
    return np.dot(a_dot, b) + np.dot(a, b_dot)


@defvjp(np.matmul)
def matmul(g, ans, x1, x2):
    if np.ndim(x1) == 2 and np.ndim(x2) == 2:
        return g @ x2.T, x1.T @ g
    if np.ndim(x1) == 1 and np.ndim(x2) == 2:
        return x2 @ g, np.outer(x1, g)
    if np.ndim(x1) == 2 and np.ndim(x2) == 1:
        return np.outer(g, x2), g @ x1
    if np.ndim(x1) == 1 and np.ndim(x2) == 1:
        return g * x2, g * x1
    if np.ndim(x1) == 1:  # (k) @ (..., k, m) -> (..., m)
        return (unbroadcast(np.sum(g[..., None, :] * x2, axis=-1), x1),
                unbroadcast(x1[:, None] * g[..., None, :], x2))
    if np.ndim(x2) == 1:  # (..., n, k) @ (k) -> (..., n)
        return (unbroadcast(g[..., None] * x2, x1),
                unbroadcast(np.sum(g[..., None] * x1, axis=-2), x2))
    return (unbroadcast(g @ np.swapaxes(x2, -1, -2), x1),
            unbroadcast(np.swapaxes(x1, -1, -2) @ g, x2))


@defjvp(np.matmul)
def matmul(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot @ x2 + x1 @ x2_dot


@defvjp(np.outer)
def outer(g, ans, a, b, out=None):
    # np.outer flattens its inputs
    return (np.reshape(np.dot(g, np.ravel(b)), np.shape(a)),
            np.reshape(np.dot(np.ravel(a), g), np.shape(b)))


@defjvp(np.outer)
def outer(ans, a, b, out=None, a_dot=None, b_dot=None):
    return np.outer(a_dot, b) + np.outer(a, b_dot)


@defvjp(np.inner)
def inner(g, ans, a, b):
    if np.ndim(a) == 0 or np.ndim(b) == 0:
        return unbroadcast(g * b, a), unbroadcast(a * g, b)
    if np.ndim(a) == 1 and np.ndim(b) == 1:
        return g * b, g * a
    if np.ndim(a) == 2 and np.ndim(b) == 2:  # a @ b.T
        return np.dot(g, b), np.dot(g.T, a)
    if np.ndim(a) == 1 and np.ndim(b) == 2:  # b @ a
        return np.dot(g, b), np.outer(g, a)
    if np.ndim(a) == 2 and np.ndim(b) == 1:  # a @ b
        return np.outer(g, b), np.dot(g, a)
    # N-d: the last axes contract, (A..., k) inner (B..., k) -> (A..., B...)
    k = np.shape(a)[-1]
    p, q = int(np.prod(np.shape(a)[:-1])), int(np.prod(np.shape(b)[:-1]))
    g2 = np.reshape(g, (p, q))
    return (np.reshape(g2 @ np.reshape(b, (q, k)), np.shape(a)),
            np.reshape(g2.T @ np.reshape(a, (p, k)), np.shape(b)))


@defjvp(np.inner)
def inner(ans, a, b, a_dot, b_dot):
    return np.inner(a_dot, b) + np.inner(a, b_dot)


@defvjp(np.vdot)
def vdot(g, ans, a, b):
    # np.vdot flattens its inputs (real inputs: no conjugation)
    return np.reshape(g * np.ravel(b), np.shape(a)), np.reshape(g * np.ravel(a), np.shape(b))


@defjvp(np.vdot)
def vdot(ans, a, b, a_dot, b_dot):
    return np.vdot(a_dot, b) + np.vdot(a, b_dot)


# ------------------------------------------------------------------ trace, transpose

@defvjp(np.trace)
def trace(g, ans, a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return expand_to(g, a, (axis1, axis2), False) * trace_mask(a, offset, axis1, axis2)


@defjvp(np.trace)
def trace(ans, a, offset=0, axis1=0, axis2=1, dtype=None, out=None, a_dot=None):
    return np.trace(a_dot, offset, axis1, axis2)


@defvjp(np.transpose)
def transpose(g, ans, a, axes=None):
    if axes is None:
        return np.transpose(g)
    return np.transpose(g, inverse_permutation(axes, np.ndim(a)))


@defjvp(np.transpose)
def transpose(ans, a, axes=None, a_dot=None):
    return np.transpose(a_dot, axes)


# ------------------------------------------------------------------ solve, inv, det

@defvjp(np.linalg.solve)
def solve(g, ans, a, b):
    if np.ndim(a) == 2 and np.ndim(b) == 1:
        gb = np.linalg.solve(a.T, g)
        return -np.outer(gb, ans), gb
    if np.ndim(b) == 1:  # stacked matrices, one right-hand side vector broadcast to all
        gb = np.linalg.solve(np.swapaxes(a, -1, -2), g[..., None])[..., 0]
        return unbroadcast(-(gb[..., :, None] * ans[..., None, :]), a), unbroadcast(gb, b)
    gb = np.linalg.solve(np.swapaxes(a, -1, -2), g)
    return unbroadcast(-(gb @ np.swapaxes(ans, -1, -2)), a), unbroadcast(gb, b)


@defjvp(np.linalg.solve)
def solve(ans, a, b, a_dot, b_dot):
    if np.ndim(a) == 2 and np.ndim(b) == 1:
        return np.linalg.solve(a, b_dot - a_dot @ ans)
    if np.ndim(b) == 1:
        return np.linalg.solve(a, (b_dot - (a_dot @ ans[..., None])[..., 0])[..., None])[..., 0]
    return np.linalg.solve(a, b_dot - a_dot @ ans)


@defvjp(np.linalg.inv)
def inv(g, ans, a):
    if np.ndim(a) == 2:
        return -(ans.T @ g @ ans.T)
    return -(np.swapaxes(ans, -1, -2) @ g @ np.swapaxes(ans, -1, -2))


@defjvp(np.linalg.inv)
def inv(ans, a, a_dot):
    return -(ans @ a_dot @ ans)


@defvjp(np.linalg.det)
def det(g, ans, a):
    if np.ndim(a) == 2:
        return g * ans * np.linalg.inv(a).T
    return (g * ans)[..., None, None] * np.swapaxes(np.linalg.inv(a), -1, -2)


@defjvp(np.linalg.det)
def det(ans, a, a_dot):
    if np.ndim(a) == 2:
        return ans * np.trace(np.linalg.solve(a, a_dot))
    return ans * np.trace(np.linalg.solve(a, a_dot), 0, -2, -1)

