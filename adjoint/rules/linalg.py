"""Linear algebra: dot, matmul, outer, inner, vdot, einsum, tensordot, kron,
cross, trace, transpose, tril, triu, NumPy 2's matrix_transpose, vecdot, matvec and
vecmat (real operands; both spellings, np. and np.linalg., where NumPy has two),
and `np.linalg.solve`, `inv`, `det`,
`slogdet`, `eigh`, `svd`, `qr`, `cholesky`, `pinv`, `eig`, `eigvals`, `lstsq`,
`matrix_power` and `multi_dot`.

`np.vecdot` takes `axis=` or the ufunc's `axes=` (one core axis per operand);
`np.dot` and `np.inner` are covered for every number of dimensions;
`np.matmul` (like the `@` operator) for every combination, batched and
broadcast. `solve`, `inv`, `det` and the decompositions accept stacks of
matrices; `solve` follows NumPy 2: `b` is a vector exactly when it is 1-d.
The rules of `inv` and `solve` assume a nonsingular matrix. `det`'s gradient is the
cofactor matrix, at a singular matrix too (from the minors' determinants there: its
derivatives are exact, for matrices up to about 56 x 56). `slogdet` of a singular
matrix (log|det| = -inf) has no derivative: NonDifferentiableError when the
gradient runs.

The decompositions, where a derivative does not exist:
- `eigh` reads one triangle (UPLO), and so does its rule: the other triangle
  gets no gradient. At a repeated eigenvalue (equal up to 1e-10 of the
  largest) the eigenvectors are not unique: a gradient that reads them raises
  NonDifferentiableError when it runs (`untied`), a function of the
  eigenvalues alone is differentiated, and the vectors' tangent is NaN.
- `svd`: likewise at a repeated singular value; with full_matrices=True on a
  non-square matrix, u's extra columns (vt's extra rows) are not unique: a
  cotangent that reaches them raises NonDifferentiableError when the gradient
  runs, their tangent is NaN. The tall and wide corrections divide by the
  singular values (full rank assumed).
- `qr`: mode 'reduced' (or 'complete' of a square matrix) with at least as
  many rows as columns, R nonsingular; other modes raise NonDifferentiableError.

- `cholesky` reads one triangle (the lower, or the upper with upper=True), and
  so does its rule; so do `svd` and `pinv` with hermitian=True (the lower).
  `pinv` assumes the rank does not change near the matrix; with a cutoff
  (rcond or rtol) it inverts the matrix's truncation to the singular values
  above the cutoff, and its rule is the truncation's derivative (which exists
  where no singular value equals the cutoff). That rule reads svd's vectors: its
  own derivative (an hvp through pinv with a cutoff) is NaN where singular values
  repeat, on either side of the cutoff (a rank-deficient matrix's zeros too), as
  svd's vectors' tangent is.
- `eig`: a real spectrum (eigenvalues and vectors whose imaginary parts are
  all 0: NumPy 2.5 returns them complex even then, earlier NumPy real; a
  complex spectrum makes the rule raise NonDifferentiableError when the
  gradient runs). Tangents have the dtype of eig's results. Eigenvectors keep
  NumPy's unit norm and LAPACK's sign, which can jump (an exact 0 below the
  diagonal that balancing isolates flips a vector as it crosses 0: no
  derivative there); a repeated eigenvalue is treated as for eigh.

- `eigvals`: as `eig` (a real spectrum; complex values are refused where they
  are made).
- `lstsq`: a full-rank matrix (a rank-deficient one raises NonDifferentiableError
  when the gradient runs): the solution as pinv(a) b, the residuals (a tall
  matrix) and the singular values are all differentiated; the rank is an integer.

`np.linalg.matrix_power` takes any integer power (a negative one through the
inverse); `np.linalg.multi_dot` any number of operands, the first and last may
be 1-d.

`np.einsum` takes one to four operands, subscripts explicit or implicit, with
`...` and repeated letters (a diagonal); five or more are refused at the call's
line. `np.cross` is for 3-vectors (NumPy 2 deprecates 2-vectors).
"""
from __future__ import annotations

import sys

import numpy as np

from adjoint.errors import NonDifferentiableError
from adjoint.rules.registry import (defbilinear, defjvp, deflinear, defnondiff, defvjp, may_raise,
                                    primitive)
from adjoint.rules.located import generated_from, no_derivative_in, unsupported
from adjoint.runtime import expand_to, unbroadcast


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
primitive(no_derivative_in, "no_derivative_in")
may_raise(no_derivative_in)
primitive(inverse_permutation, "inverse_permutation", nondiff=True)
primitive(trace_mask, "trace_mask", nondiff=True)
defnondiff(unsupported, inverse_permutation, trace_mask)


@deflinear(no_derivative_in)
def no_derivative_in_vjp(g, ans, t, x, message, hint=""):
    return no_derivative_in(g, x, message, hint)


# ------------------------------------------------------------------ products

@defbilinear(np.dot, "a", "b")
def dot_vjp(g, ans, a, b, out=None):
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


@defvjp(np.matmul)
def matmul_vjp(g, ans, x1, x2):
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
def matmul_jvp(ans, x1, x2, x1_dot, x2_dot):
    return x1_dot @ x2 + x1 @ x2_dot


@defbilinear(np.outer, "a", "b")
def outer_vjp(g, ans, a, b, out=None):
    # np.outer flattens its inputs
    return (np.reshape(np.dot(g, np.ravel(b)), np.shape(a)),
            np.reshape(np.dot(np.ravel(a), g), np.shape(b)))


@defbilinear(np.inner, "a", "b")
def inner_vjp(g, ans, a, b):
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


@defbilinear(np.vdot, "a", "b")
def vdot_vjp(g, ans, a, b):
    # np.vdot flattens its inputs (real inputs: no conjugation)
    return np.reshape(g * np.ravel(b), np.shape(a)), np.reshape(g * np.ravel(a), np.shape(b))


# ------------------------------------------------------------------ trace, transpose

@deflinear(np.trace)
def trace_vjp(g, ans, a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    return expand_to(g, a, (axis1, axis2), False) * trace_mask(a, offset, axis1, axis2)


@deflinear(np.transpose)
def transpose_vjp(g, ans, a, axes=None):
    if axes is None:
        return np.transpose(g)
    return np.transpose(g, inverse_permutation(axes, np.ndim(a)))


if hasattr(np, "matrix_transpose"):  # NumPy >= 2.0 (both spellings)
    primitive(np.matrix_transpose, "np.matrix_transpose")
    primitive(np.linalg.matrix_transpose, "np.linalg.matrix_transpose")

    @deflinear(np.linalg.matrix_transpose)
    @deflinear(np.matrix_transpose)
    def matrix_transpose_vjp(g, ans, x):
        return np.swapaxes(g, -1, -2)


# ------------------------------------------------------------------ the array API's products

if hasattr(np, "vecdot"):  # NumPy >= 2.0 (both spellings)
    primitive(np.vecdot, "np.vecdot")
    primitive(np.linalg.vecdot, "np.linalg.vecdot")

    @defbilinear(np.linalg.vecdot, "x1", "x2")
    def vecdot_vjp(g, ans, x1, x2, axis=-1):
        # the sum of x1 * x2 over each operand's own `axis`, the other axes broadcast
        # (real operands: no conjugate)
        bars = _vecdot_bars(g, x1, x2, axis, axis)
        return bars[0], bars[1]

    def _vecdot_bars(g, x1, x2, axis1, axis2):
        """The cotangents of the sums of x1 * x2 over x1's axis1 and x2's axis2."""
        a, b = np.moveaxis(x1, axis1, -1), np.moveaxis(x2, axis2, -1)
        g1 = np.expand_dims(g, -1)
        return (np.moveaxis(unbroadcast(g1 * b, a), -1, axis1),
                np.moveaxis(unbroadcast(g1 * a, b), -1, axis2))

    def _core_axes(axis, axes):
        """The axis each operand of the ufunc np.vecdot sums over: axes=[(i,), (j,), ()]
        (or [i, j]), else axis= (for both), else the last."""
        if axes is not None:
            return np.ravel(axes[0])[0], np.ravel(axes[1])[0]
        if axis is not None:
            return axis, axis
        return -1, -1

    @defvjp(np.vecdot)
    def ufunc_vecdot_vjp(g, ans, x1, x2, axis=None, axes=None):
        core = _core_axes(axis, axes)
        bars = _vecdot_bars(g, x1, x2, core[0], core[1])
        return bars[0], bars[1]

    @defjvp(np.vecdot)
    def ufunc_vecdot_jvp(ans, x1, x2, axis=None, axes=None, x1_dot=None, x2_dot=None):
        core = _core_axes(axis, axes)
        a, b = np.moveaxis(x1, core[0], -1), np.moveaxis(x2, core[1], -1)
        return np.vecdot(np.moveaxis(x1_dot, core[0], -1), b) + \
            np.vecdot(a, np.moveaxis(x2_dot, core[1], -1))

if hasattr(np, "matvec"):  # NumPy >= 2.2
    primitive(np.matvec, "np.matvec")
    primitive(np.vecmat, "np.vecmat")

    @defbilinear(np.matvec, "x1", "x2")
    def matvec_vjp(g, ans, x1, x2):
        # (..., m, n) times (..., n) -> (..., m), the stacks broadcast
        return (unbroadcast(g[..., :, None] * x2[..., None, :], x1),
                unbroadcast(np.sum(g[..., :, None] * x1, axis=-2), x2))

    @defbilinear(np.vecmat, "x1", "x2")
    def vecmat_vjp(g, ans, x1, x2):
        # (..., n) times (..., n, m) -> (..., m), the stacks broadcast (real x1: no conjugate)
        return (unbroadcast(np.sum(x2 * g[..., None, :], axis=-1), x1),
                unbroadcast(x1[..., :, None] * g[..., None, :], x2))


# ------------------------------------------------------------------ solve, inv, det

@defvjp(np.linalg.solve)
def solve_vjp(g, ans, a, b):
    if np.ndim(a) == 2 and np.ndim(b) == 1:
        gb = np.linalg.solve(a.T, g)
        return -np.outer(gb, ans), gb
    if np.ndim(b) == 1:  # stacked matrices, one right-hand side vector broadcast to all
        gb = np.linalg.solve(np.swapaxes(a, -1, -2), g[..., None])[..., 0]
        return unbroadcast(-(gb[..., :, None] * ans[..., None, :]), a), unbroadcast(gb, b)
    gb = np.linalg.solve(np.swapaxes(a, -1, -2), g)
    return unbroadcast(-(gb @ np.swapaxes(ans, -1, -2)), a), unbroadcast(gb, b)


@defjvp(np.linalg.solve)
def solve_jvp(ans, a, b, a_dot, b_dot):
    if np.ndim(a) == 2 and np.ndim(b) == 1:
        return np.linalg.solve(a, b_dot - a_dot @ ans)
    if np.ndim(b) == 1:
        return np.linalg.solve(a, (b_dot - (a_dot @ ans[..., None])[..., 0])[..., None])[..., 0]
    return np.linalg.solve(a, b_dot - a_dot @ ans)


@defvjp(np.linalg.inv)
def inv_vjp(g, ans, a):
    if np.ndim(a) == 2:
        return -(ans.T @ g @ ans.T)
    return -(np.swapaxes(ans, -1, -2) @ g @ np.swapaxes(ans, -1, -2))


@defjvp(np.linalg.inv)
def inv_jvp(ans, a, a_dot):
    return -(ans @ a_dot @ ans)


def _nonsingular(a):
    """Every matrix of `a` is well conditioned: det(a) inv(a)^T is its cofactor matrix,
    and the derivative of that product too. (At a matrix singular in exact arithmetic
    whose LU pivots rounding leaves at 1e-17, the product is right but its derivative, a
    second derivative of det, cancels terms of 1e16: round 16's S9.) The condition
    number is checked where NumPy's slogdet sign is not 0, which it is exactly when a
    pivot is."""
    return bool(np.all(np.linalg.slogdet(a)[0] != 0.0) and np.all(np.linalg.cond(a) < 1e8))


primitive(_nonsingular, "nonsingular", nondiff=True)  # (its value decides; no derivative)
defnondiff(_nonsingular)


def _cofactors(a):
    """C[..., i, j] = (-1)^(i+j) det(a without row i and column j): det's gradient at any
    matrix, a singular one too, where det(a) inv(a)^T is 0 * inf. A polynomial in a made
    of dets of the minors, so its derivative (det's second) is exact: the minors go
    through det's rule in turn. It holds n^4 numbers: a singular matrix too large for
    that is refused when the gradient runs."""
    n = np.shape(a)[-1]
    if np.size(a) * n * n > 10_000_000:
        _ = unsupported("the gradient of np.linalg.det at a singular matrix is its cofactor "
                        "matrix, made of n * n minors: too many at this size",
                        "a matrix up to about 56 x 56 (fewer in a stack) has one")
    k = np.arange(n - 1)
    others = k[None, :] + (k[None, :] >= np.arange(n)[:, None])  # row i: 0..n-1 but i
    minors = a[..., others[:, None, :, None], others[None, :, None, :]]
    sign = 1.0 - 2.0 * ((np.arange(n)[:, None] + np.arange(n)[None, :]) % 2)
    return sign * np.linalg.det(minors)


@defvjp(np.linalg.det)
def det_vjp(g, ans, a):
    if _nonsingular(a):  # the cofactor matrix is det(a) inv(a)^T
        if np.ndim(a) == 2:
            return g * ans * np.linalg.inv(a).T
        return (g * ans)[..., None, None] * np.swapaxes(np.linalg.inv(a), -1, -2)
    c = _cofactors(a)
    if np.ndim(a) == 2:
        return g * c
    return g[..., None, None] * c


@defjvp(np.linalg.det)
def det_jvp(ans, a, a_dot):
    # tr(adj(a) a_dot) = sum(cofactors * a_dot)
    if _nonsingular(a):
        if np.ndim(a) == 2:
            return ans * np.trace(np.linalg.solve(a, a_dot))
        return ans * np.trace(np.linalg.solve(a, a_dot), 0, -2, -1)
    return np.sum(_cofactors(a) * a_dot, axis=(-2, -1))


# ------------------------------------------------------------------ decompositions
# Their results are tuples (namedtuples): the cotangent `g` and the tangent hold one
# entry per output, a zero where that output does not reach the result. The rules
# below are written with registered primitives only (and plain helpers, inlined),
# so a gradient of a gradient goes through them again.

for _fn, _name in [(np.linalg.slogdet, "np.linalg.slogdet"), (np.linalg.eigh, "np.linalg.eigh"),
                   (np.linalg.svd, "np.linalg.svd"), (np.linalg.qr, "np.linalg.qr"),
                   (np.tril, "np.tril"), (np.triu, "np.triu")]:
    primitive(_fn, _name)


def _mT(x):
    return np.swapaxes(x, -1, -2)


def _close(w):
    """1 where two eigen- (or singular) values are equal up to rounding, the diagonal
    included, else 0."""
    d = w[..., None, :] - w[..., :, None]
    scale = np.max(np.abs(w), axis=-1, keepdims=True)[..., None]
    return np.where(np.abs(d) <= 1e-10 * scale, 1.0, 0.0)


def _ties(w):
    """1 where two different values are equal up to rounding: their vectors are not
    unique there (any rotation within the tied block is as good)."""
    return _close(w) - np.eye(np.shape(w)[-1])


def _inverse_gaps(w):
    """F[..., i, j] = 1 / (w[j] - w[i]) off the diagonal, 0 on it and at ties."""
    d = w[..., None, :] - w[..., :, None]
    gap = np.where(_close(w) == 0.0, d, 0.0)
    return np.where(gap == 0.0, 0.0, 1.0 / np.where(gap == 0.0, 1.0, gap))


def untied(w, what):
    """Raise where the gradient reads eigen- (or singular) vectors at a repeated value:
    they are not unique there. A function of the vectors may still be smooth there (a
    matrix square root V diag(sqrt(w)) V^T at the identity), but its derivative then
    depends on that function, which the rule cannot see; and the vectors' cotangent
    may even be exactly 0 there (V D V^-1 with D = sI). So the reverse sweep calls this
    whenever the vectors' cotangent is not zero by construction (rules read it from
    VECTOR_SLOTS); a function of the values alone is differentiable at a tie."""
    if np.any(_ties(w) != 0.0):
        raise NonDifferentiableError(
            f"{what} at a repeated {'singular value' if 'svd' in what else 'eigenvalue'}: "
            "the vectors are not unique there, and the gradient reads them",
            generated_from(sys._getframe(1)),
            "a function of the values alone (eigvalsh, svd with compute_uv=False) is "
            "differentiable there; or move off the tie")


# ops whose vectors are not unique at a repeated value: (the values' position in the
# result, the vectors' positions), for the reverse sweep's call of `untied`
VECTOR_SLOTS = {"np.linalg.eigh": (0, (1,)), "np.linalg.eig": (0, (1,)),
                "np.linalg.svd": (1, (0, 2))}
primitive(untied, "untied", nondiff=True, pure=False)
defnondiff(untied)


def _undefined_at_ties(w, p):
    """NaN where a tangent `p` mixes tied vectors (their tangent does not exist), else
    0: added to a vectors' tangent, so that what reads it is visibly undefined."""
    return np.where(_ties(w) * p != 0.0, np.nan, 0.0)


def _read_triangle(m, upper):
    """The tangent of the matrix eigh reads: one triangle, mirrored (NumPy's eigh
    reads only the lower triangle, or the upper one with UPLO='U')."""
    if upper:
        return np.triu(m) + _mT(np.triu(m, 1))
    return np.tril(m) + _mT(np.tril(m, -1))


def _to_triangle(s, upper):
    """The cotangent of a symmetric matrix read from one triangle: the off-diagonal
    entries count twice, the other triangle not at all."""
    m = s + _mT(s)
    half = 0.5 * m * np.eye(np.shape(s)[-1])
    if upper:
        return np.triu(m) - half
    return np.tril(m) - half


@defvjp(np.linalg.slogdet)
def slogdet_vjp(g, ans, a):
    # the sign is piecewise constant: only log|det| carries a derivative
    if np.any(ans[0] == 0.0):  # log|det| = -inf: cofactors / det has no value (0 / 0 too)
        _ = unsupported("np.linalg.slogdet of a singular matrix: log|det| is -inf there "
                        "and has no derivative",
                        "np.linalg.det has one there (the cofactor matrix)")
    if np.ndim(a) == 2:
        return g[1] * np.linalg.inv(a).T
    return g[1][..., None, None] * _mT(np.linalg.inv(a))


@defjvp(np.linalg.slogdet)
def slogdet_jvp(ans, a, a_dot):
    if np.any(ans[0] == 0.0):  # log|det| = -inf: cofactors / det has no value (0 / 0 too)
        _ = unsupported("np.linalg.slogdet of a singular matrix: log|det| is -inf there "
                        "and has no derivative",
                        "np.linalg.det has one there (the cofactor matrix)")
    dot = (ans[0] * 0.0, np.trace(np.linalg.solve(a, a_dot), 0, -2, -1))
    return dot  # one tuple (a template's `return a, b` would be two outputs)


@defvjp(np.linalg.eigh)
def eigh_vjp(g, ans, a, UPLO="L"):
    w, v = ans[0], ans[1]
    x = _mT(v) @ g[1]
    inner = g[0][..., None] * np.eye(np.shape(w)[-1]) + _inverse_gaps(w) * x
    return _to_triangle(v @ inner @ _mT(v), UPLO == "U")


primitive(np.linalg.eigvalsh, "np.linalg.eigvalsh")


@defvjp(np.linalg.eigvalsh)
def eigvalsh_vjp(g, ans, a, UPLO="L"):
    # d w_i = v_i^T dA v_i: smooth at a repeated eigenvalue too, for a function of w alone
    v = np.linalg.eigh(a, UPLO)[1]
    return _to_triangle(v @ (g[..., :, None] * _mT(v)), UPLO == "U")


@defjvp(np.linalg.eigvalsh)
def eigvalsh_jvp(ans, a, UPLO="L", a_dot=None):
    v = np.linalg.eigh(a, UPLO)[1]
    p = _mT(v) @ _read_triangle(a_dot, UPLO == "U") @ v
    return np.sum(p * np.eye(np.shape(ans)[-1]), -1)


@defjvp(np.linalg.eigh)
def eigh_jvp(ans, a, UPLO="L", a_dot=None):
    w, v = ans[0], ans[1]
    p = _mT(v) @ _read_triangle(a_dot, UPLO == "U") @ v
    dot = (np.sum(p * np.eye(np.shape(w)[-1]), -1),
           v @ (_inverse_gaps(w) * p + _undefined_at_ties(w, p)))
    return dot


def _svd_parts(a, ans, compute_uv):
    """(u, s, vt) of the reduced SVD, k = min(m, n) columns of u and rows of vt."""
    if not compute_uv:
        return np.linalg.svd(a, full_matrices=False)
    k = np.shape(ans[1])[-1]
    return ans[0][..., :k], ans[1], ans[2][..., :k, :]


@defvjp(np.linalg.svd)
def svd_vjp(g, ans, a, full_matrices=True, compute_uv=True, hermitian=False):
    if hermitian:  # NumPy reads the lower triangle only (it calls eigh): so does the rule
        return _to_triangle(_svd_bar(g, ans, _read_triangle(a, False), full_matrices,
                                     compute_uv), False)
    return _svd_bar(g, ans, a, full_matrices, compute_uv)


def _svd_bar(g, ans, a, full_matrices, compute_uv):
    """The cotangent of `a` from g, that of (u, s, vt) = svd(a) (of s, without uv)."""
    u, s, vt = _svd_parts(a, ans, compute_uv)
    if not compute_uv:
        return (u * g[..., None, :]) @ vt
    m, n, k = np.shape(a)[-2], np.shape(a)[-1], np.shape(s)[-1]
    if full_matrices and m != n:
        # u's extra columns (vt's extra rows) are not unique: no derivative to pass on
        if np.any(g[0][..., k:] != 0.0) or np.any(g[2][..., k:, :] != 0.0):
            _ = unsupported("np.linalg.svd with full_matrices=True: the extra columns of u "
                            "(rows of vt) of a non-square matrix have no derivative; pass "
                            "full_matrices=False")
    gu, gvt = g[0][..., :k], g[2][..., :k, :]
    v, gv = _mT(vt), _mT(gvt)
    f = _inverse_gaps(s * s)
    j = f * (_mT(u) @ gu)
    kk = f * (vt @ gv)
    core = (j + _mT(j)) * s[..., None, :] + s[..., :, None] * (kk + _mT(kk))
    ga = u @ (core + g[1][..., :, None] * np.eye(k)) @ vt
    if m > k:  # tall: u does not span the column space of a
        ga = ga + ((gu - u @ (_mT(u) @ gu)) / s[..., None, :]) @ vt
    if n > k:  # wide: v does not span the row space
        ga = ga + u @ _mT((gv - v @ (vt @ gv)) / s[..., None, :])
    return ga


@defjvp(np.linalg.svd)
def svd_jvp(ans, a, full_matrices=True, compute_uv=True, hermitian=False, a_dot=None):
    if hermitian:  # NumPy reads the lower triangle only (it calls eigh): so does the rule
        a, a_dot = _read_triangle(a, False), _read_triangle(a_dot, False)
    u, s, vt = _svd_parts(a, ans, compute_uv)
    p = _mT(u) @ a_dot @ _mT(vt)
    ds = np.sum(p * np.eye(np.shape(s)[-1]), -1)
    if not compute_uv:
        return ds
    f = _inverse_gaps(s * s)
    v = _mT(vt)
    nan = _undefined_at_ties(s * s, p + _mT(p))
    du = u @ (f * (p * s[..., None, :] + s[..., :, None] * _mT(p)) + nan)
    dv = v @ (f * (s[..., :, None] * p + _mT(p) * s[..., None, :]) + nan)
    m, n = np.shape(a)[-2], np.shape(a)[-1]
    if m > np.shape(s)[-1]:
        r = a_dot @ v
        du = du + (r - u @ (_mT(u) @ r)) / s[..., None, :]
    if n > np.shape(s)[-1]:
        r = _mT(a_dot) @ u
        dv = dv + (r - v @ (vt @ r)) / s[..., None, :]
    if full_matrices and m != n:
        # u's extra columns (vt's extra rows) are not unique: their tangent is NaN,
        # harmless unless something reads them
        k = np.shape(s)[-1]
        du = np.concatenate((du, ans[0][..., k:] * np.nan), -1)
        dv = np.concatenate((dv, _mT(ans[2][..., k:, :]) * np.nan), -1)
    dot = (du, ds, _mT(dv))
    return dot


def _copyltu(m):
    return np.tril(m) + _mT(np.tril(m, -1))


@defvjp(np.linalg.qr)
def qr_vjp(g, ans, a, mode="reduced"):
    if (mode != "reduced" and mode != "complete") or np.shape(a)[-2] < np.shape(a)[-1] or (
            mode == "complete" and np.shape(a)[-2] != np.shape(a)[-1]):
        _ = unsupported("np.linalg.qr has a derivative rule for mode='reduced' of a matrix "
                    "with at least as many rows as columns")
    q, r = ans[0], ans[1]
    gq, gr = g[0], g[1]
    m = r @ _mT(gr) - _mT(gq) @ q
    return _mT(np.linalg.solve(r, _mT(gq + q @ _copyltu(m))))


@defjvp(np.linalg.qr)
def qr_jvp(ans, a, mode="reduced", a_dot=None):
    if (mode != "reduced" and mode != "complete") or np.shape(a)[-2] < np.shape(a)[-1] or (
            mode == "complete" and np.shape(a)[-2] != np.shape(a)[-1]):
        _ = unsupported("np.linalg.qr has a derivative rule for mode='reduced' of a matrix "
                    "with at least as many rows as columns")
    q, r = ans[0], ans[1]
    x = _mT(np.linalg.solve(_mT(r), _mT(a_dot)))  # a_dot @ inv(r)
    c = _mT(q) @ x
    omega = np.tril(c, -1) - _mT(np.tril(c, -1))
    dot = (x - q @ (c - omega), (c - omega) @ r)
    return dot


@deflinear(np.tril)
def tril_vjp(g, ans, m, k=0):
    return np.tril(g, k)


@deflinear(np.triu)
def triu_vjp(g, ans, m, k=0):
    return np.triu(g, k)


# ------------------------------------------------------------------ einsum, tensordot, kron, cross

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def einsum_explicit(subscripts, shapes):
    """`subscripts` of np.einsum for operands of `shapes`, as (inputs, output): one
    string of letters per operand, `...` spelled as letters (right-aligned, as NumPy
    broadcasts it), the implicit output (letters seen once, sorted) made explicit."""
    text = subscripts.replace(" ", "")
    lhs, arrow, out = text.partition("->")
    inputs = lhs.split(",")
    if len(inputs) != len(shapes):
        raise ValueError(f"np.einsum: {len(inputs)} subscripts for {len(shapes)} operands")
    spare = [c for c in _LETTERS if c not in text]
    n_ell = max([len(s) - (len(i) - 3) for i, s in zip(inputs, shapes) if "..." in i] + [0])
    ell = "".join(spare[:n_ell])
    inputs = [i.replace("...", ell[n_ell - (len(s) - (len(i) - 3)):]) if "..." in i else i
              for i, s in zip(inputs, shapes)]
    if not arrow:
        once = sorted(c for c in set("".join(inputs)) if c not in ell
                      and "".join(inputs).count(c) == 1)
        out = ell + "".join(once) if "..." in lhs else "".join(once)
    return inputs, out.replace("...", ell)


def einsum_plan(subscripts, shapes, k):
    """How the cotangent of operand k of np.einsum(subscripts, *operands) is computed:
    (spec, raw, full). np.einsum(spec, ...) with the output's cotangent in place of
    operand k gives it over the letters `raw` (operand k's letters that the output or
    another operand also has); `einsum_expand` makes it operand k's (`full`): summed
    letters broadcast back, a repeated letter's diagonal, a broadcast length-1 axis."""
    inputs, out = einsum_explicit(subscripts, shapes)
    full = inputs[k]
    others = out + "".join(s for j, s in enumerate(inputs) if j != k)
    raw = "".join(c for i, c in enumerate(full) if c in others and c not in full[:i])
    spec = ",".join(out if j == k else s for j, s in enumerate(inputs)) + "->" + raw
    return spec, raw, full


def einsum_expand(x, plan, like):
    """The cotangent `x` of operand `like` over the letters plan[1], made like's own
    (plan[2]): broadcast over the letters it lacks, a repeated letter on the diagonal,
    summed where like has a length-1 axis that the others broadcast."""
    spec, raw, full = plan
    shape = np.shape(like)
    size = dict(zip(full, shape))
    x = np.asarray(x)
    for i, c in enumerate(raw):
        if size[c] == 1 and x.shape[i] != 1:
            x = np.sum(x, axis=i, keepdims=True)
    ops, subs, out = [x], [raw], ""
    spare = iter(c for c in _LETTERS if c not in full)
    for i, c in enumerate(full):
        if c in full[:i]:  # a repeated letter: an axis of its own, on the diagonal
            d = next(spare)
            ops.append(np.eye(size[c]))
            subs.append(c + d)
            out += d
        else:
            out += c
            if c not in raw:
                ops.append(np.ones(size[c]))
                subs.append(c)
    total = np.einsum(",".join(subs) + "->" + out, *ops)
    return float(total) if isinstance(like, float) else total


def einsum_contract(plan):
    """The einsum that undoes `einsum_expand` (its transpose): full -> raw."""
    return plan[2] + "->" + plan[1]


def tensordot_plan(ndim_a, ndim_b, axes=2):
    """For np.tensordot(a, b, axes): the contractions and transposes that give the
    cotangents, (ga_axes, a_perm, gb_axes, b_perm):
    a_bar = transpose(tensordot(g, b, ga_axes), a_perm), and likewise b_bar."""
    if isinstance(axes, (int, np.integer)):
        a_axes, b_axes = list(range(ndim_a - axes, ndim_a)), list(range(axes))
    else:
        a_axes, b_axes = axes
        a_axes = [a_axes] if isinstance(a_axes, (int, np.integer)) else list(a_axes)
        b_axes = [b_axes] if isinstance(b_axes, (int, np.integer)) else list(b_axes)
    a_axes = [int(i) % ndim_a for i in a_axes]
    b_axes = [int(i) % ndim_b for i in b_axes]
    a_free = [i for i in range(ndim_a) if i not in a_axes]
    b_free = [i for i in range(ndim_b) if i not in b_axes]
    na = len(a_free)
    ga_axes = (list(range(na, na + len(b_free))), b_free)
    gb_axes = (a_free, list(range(na)))
    # tensordot leaves the uncontracted axes in their own order: g's b-free axes against
    # b leave b's contracted axes ascending, each standing for the a axis it pairs with
    a_order = a_free + [i for _, i in sorted(zip(b_axes, a_axes))]
    b_order = [j for _, j in sorted(zip(a_axes, b_axes))] + b_free
    return (ga_axes, inverse_permutation(a_order, ndim_a), gb_axes,
            inverse_permutation(b_order, ndim_b))


def kron_plan(shape_a, shape_b):
    """For np.kron(a, b): (the result split into (a_i, b_i) axis pairs, a's and b's
    shapes padded to one ndim, the einsum specs giving a_bar and b_bar from the split
    cotangent and the other operand)."""
    nd = max(len(shape_a), len(shape_b))
    sa = (1,) * (nd - len(shape_a)) + tuple(shape_a)
    sb = (1,) * (nd - len(shape_b)) + tuple(shape_b)
    pairs = tuple(n for ab in zip(sa, sb) for n in ab)
    la, lb = _LETTERS[:nd], _LETTERS[nd:2 * nd]
    g = "".join(x + y for x, y in zip(la, lb))
    return pairs, sa, sb, f"{g},{lb}->{la}", f"{g},{la}->{lb}"


def is_text(x):
    """Whether np.einsum's first argument is its subscripts string (not an operand of
    the interleaved operand, axes-list form)."""
    return isinstance(x, str)


def cross_axes(axisa=-1, axisb=-1, axisc=-1, axis=None):
    """np.cross's (axisa, axisb, axisc): `axis` overrides all three."""
    if axis is not None:
        return axis, axis, axis
    return axisa, axisb, axisc


for _fn, _name in [(einsum_explicit, "einsum_explicit"), (einsum_plan, "einsum_plan"),
                   (einsum_contract, "einsum_contract"), (tensordot_plan, "tensordot_plan"),
                   (kron_plan, "kron_plan"), (cross_axes, "cross_axes"), (is_text, "is_text")]:
    primitive(_fn, _name, nondiff=True)
defnondiff(einsum_explicit, einsum_plan, einsum_contract, tensordot_plan, kron_plan, cross_axes,
           is_text)


@defvjp(np.einsum)
def einsum_vjp(g, ans, subscripts, a, b=None, c=None, d=None, *, optimize=False):
    # operand k's cotangent: the einsum with g in its place, by plan k, then expanded
    # to the operand (up to four operands, every branch returning five values;
    # optimize= by keyword only, so that a fifth operand is refused at its line)
    if not is_text(subscripts):
        _ = unsupported("np.einsum has a derivative rule for subscripts written as a "
                        "string, not for the operand, axes-list form")
    if b is None:
        p = einsum_plan(subscripts, (np.shape(a),), 0)
        return None, einsum_expand(np.einsum(p[0], g), p, a), None, None, None
    if c is None:
        s = (np.shape(a), np.shape(b))
        p, q = einsum_plan(subscripts, s, 0), einsum_plan(subscripts, s, 1)
        return (None, einsum_expand(np.einsum(p[0], g, b), p, a),
                einsum_expand(np.einsum(q[0], a, g), q, b), None, None)
    if d is None:
        s = (np.shape(a), np.shape(b), np.shape(c))
        p, q = einsum_plan(subscripts, s, 0), einsum_plan(subscripts, s, 1)
        r = einsum_plan(subscripts, s, 2)
        return (None, einsum_expand(np.einsum(p[0], g, b, c), p, a),
                einsum_expand(np.einsum(q[0], a, g, c), q, b),
                einsum_expand(np.einsum(r[0], a, b, g), r, c), None)
    s = (np.shape(a), np.shape(b), np.shape(c), np.shape(d))
    p, q = einsum_plan(subscripts, s, 0), einsum_plan(subscripts, s, 1)
    r, t = einsum_plan(subscripts, s, 2), einsum_plan(subscripts, s, 3)
    return (None, einsum_expand(np.einsum(p[0], g, b, c, d), p, a),
            einsum_expand(np.einsum(q[0], a, g, c, d), q, b),
            einsum_expand(np.einsum(r[0], a, b, g, d), r, c),
            einsum_expand(np.einsum(t[0], a, b, c, g), t, d))


@defjvp(np.einsum)
def einsum_jvp(ans, subscripts, a, b=None, c=None, d=None, *, optimize=False, a_dot=None,
               b_dot=None, c_dot=None, d_dot=None):
    if not is_text(subscripts):
        _ = unsupported("np.einsum has a derivative rule for subscripts written as a "
                        "string, not for the operand, axes-list form")
    if b is None:
        return np.einsum(subscripts, a_dot)
    if c is None:
        return np.einsum(subscripts, a_dot, b) + np.einsum(subscripts, a, b_dot)
    if d is None:
        return (np.einsum(subscripts, a_dot, b, c) + np.einsum(subscripts, a, b_dot, c)
                + np.einsum(subscripts, a, b, c_dot))
    return (np.einsum(subscripts, a_dot, b, c, d) + np.einsum(subscripts, a, b_dot, c, d)
            + np.einsum(subscripts, a, b, c_dot, d) + np.einsum(subscripts, a, b, c, d_dot))


@deflinear(einsum_expand)
def einsum_expand_vjp(g, ans, x, plan, like):
    return np.broadcast_to(np.einsum(einsum_contract(plan), g), np.shape(x))


@defbilinear(np.tensordot, "a", "b")
def tensordot_vjp(g, ans, a, b, axes=2):
    p = tensordot_plan(np.ndim(a), np.ndim(b), axes)
    return (np.transpose(np.tensordot(g, b, p[0]), p[1]),
            np.transpose(np.tensordot(a, g, p[2]), p[3]))


@defbilinear(np.kron, "a", "b")
def kron_vjp(g, ans, a, b):
    p = kron_plan(np.shape(a), np.shape(b))
    split = np.reshape(g, p[0])
    return (np.reshape(np.einsum(p[3], split, np.reshape(b, p[2])), np.shape(a)),
            np.reshape(np.einsum(p[4], split, np.reshape(a, p[1])), np.shape(b)))


@defbilinear(np.cross, "a", "b")
def cross_vjp(g, ans, a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    ax = cross_axes(axisa, axisb, axisc, axis)
    if np.shape(a)[ax[0]] != 3 or np.shape(b)[ax[1]] != 3:
        _ = unsupported("np.cross has a derivative rule for 3-vectors only (NumPy 2 "
                        "deprecates 2-vectors)")
    # (a x b) . g = (b x g) . a = (g x a) . b
    return (unbroadcast(np.cross(b, g, axisa=ax[1], axisb=ax[2], axisc=ax[0]), a),
            unbroadcast(np.cross(g, a, axisa=ax[2], axisb=ax[0], axisc=ax[1]), b))


# ------------------------------------------------------------------ cholesky, pinv, eig

def is_complex(x):
    """Whether `x` holds a number with a nonzero imaginary part (np.linalg.eig of a
    matrix with a complex spectrum returns them). Decided by the values, not the
    dtype: NumPy 2.5 returns eig's values and vectors complex even for a real
    spectrum, with imaginary parts that are exactly 0 (LAPACK's real eigenvalues)."""
    return bool(np.iscomplexobj(x) and np.any(np.imag(x) != 0))


primitive(is_complex, "is_complex", nondiff=True)
defnondiff(is_complex)


def _lower_half(x):
    """The lower triangle with its diagonal halved (Murray's Phi)."""
    return np.tril(x) - 0.5 * x * np.eye(np.shape(x)[-1])


@defvjp(np.linalg.cholesky)
def cholesky_vjp(g, ans, a, upper=False):
    # a = L L^T read from one triangle; with upper=True the result is U = L^T
    if upper:
        el, gl = _mT(ans), _mT(g)
    else:
        el, gl = ans, g
    x = np.linalg.solve(_mT(el), _lower_half(_mT(el) @ gl))  # L^-T Phi(L^T G)
    s = _mT(np.linalg.solve(_mT(el), _mT(x)))  # ... L^-1
    return _to_triangle(0.5 * (s + _mT(s)), upper)


@defjvp(np.linalg.cholesky)
def cholesky_jvp(ans, a, upper=False, a_dot=None):
    if upper:
        el = _mT(ans)
    else:
        el = ans
    y = np.linalg.solve(el, _read_triangle(a_dot, upper))  # L^-1 dA
    dl = el @ _lower_half(_mT(np.linalg.solve(el, _mT(y))))  # L Phi(L^-1 dA L^-T)
    if upper:
        return _mT(dl)
    return dl


def _truncation(a, rcond):
    """What pinv(a, rcond) inverts, a's truncation a_k to its singular values above
    rcond times the largest: (u, s, v, kept pairs, m, u_k, v_k, a_k) of the thin SVD,
    with m[j, i] = 1 / (s_i^2 - s_j^2) for i kept and j dropped, else 0."""
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    kept = s > np.asarray(rcond)[..., None] * np.max(s, axis=-1, keepdims=True)
    both = kept[..., :, None] & kept[..., None, :]
    cross = ~kept[..., :, None] & kept[..., None, :]
    gaps = s[..., None, :] ** 2 - s[..., :, None] ** 2  # nonzero across the cutoff
    m = np.where(cross, 1.0 / np.where(cross, gaps, 1.0), 0.0)
    uk, vk = u * kept[..., None, :], _mT(vt) * kept[..., None, :]
    return u, s, _mT(vt), both, m, uk, vk, (uk * s[..., None, :]) @ _mT(vk)


def _truncated_pinv_dot(a, x, a_dot, rcond):
    """The tangent of x = pinv(a, rcond): the constant-rank formula at a's truncation a_k
    along the truncation's tangent. That tangent keeps the kept pairs' block of
    p = u^T a_dot v, rotates kept into dropped pairs (the terms over s_i^2 - s_j^2)
    and into the complements of u's and v's spans."""
    u, s, v, both, m, uk, vk, ak = _truncation(a, rcond)
    p = _mT(u) @ a_dot @ v
    si, sj = s[..., None, :], s[..., :, None]
    c = m * (p * si + sj * _mT(p)) * si
    e = m * (sj * p + _mT(p) * si) * si
    dak = (u @ (both * p + c + _mT(e)) @ _mT(v)
           + uk @ (_mT(uk) @ a_dot - (_mT(uk) @ a_dot @ v) @ _mT(v))
           + (a_dot @ vk - u @ (_mT(u) @ a_dot @ vk)) @ _mT(vk))
    xt, dt = _mT(x), _mT(dak)
    left = np.eye(np.shape(a)[-2]) - ak @ x
    right = np.eye(np.shape(a)[-1]) - x @ ak
    return -(x @ dak @ x) + x @ xt @ dt @ left + right @ dt @ xt @ x


def _truncated_pinv_bar(g, x, a, rcond):
    """The cotangent of a from g, that of x = pinv(a, rcond): _truncated_pinv_dot
    transposed."""
    u, s, v, both, m, uk, vk, ak = _truncation(a, rcond)
    gk = _pinv_bar(g, x, ak)  # the truncation's cotangent
    h = _mT(u) @ gk @ v
    si, sj = s[..., None, :], s[..., :, None]
    hm, htm = m * h, m * _mT(h)
    pbar = both * h + (hm * si + htm * sj) * si + _mT((hm * sj + htm * si) * si)
    return (u @ pbar @ _mT(v) + uk @ (_mT(uk) @ gk - (_mT(uk) @ gk @ v) @ _mT(v))
            + (gk @ vk - u @ (_mT(u) @ gk @ vk)) @ _mT(vk))


@defvjp(np.linalg.pinv)
def pinv_vjp(g, ans, a, rcond=None, hermitian=False, *, rtol=None):
    # constant rank: dX = -X dA X + X X^T dA^T (I - A X) + (I - X A) dA^T X^T X; NumPy's
    # default cutoff (1e-15) drops values at rounding level only, where that formula is
    # the truncation's too. A cutoff given may drop more: the truncation's derivative.
    sym = a
    if hermitian:  # NumPy reads the lower triangle only (it calls eigh): so does the rule
        sym = _read_triangle(a, False)
    if rcond is None and rtol is None:
        ga = _pinv_bar(g, ans, sym)
    elif rcond is None:
        ga = _truncated_pinv_bar(g, ans, sym, rtol)
    else:
        ga = _truncated_pinv_bar(g, ans, sym, rcond)
    if hermitian:
        return _to_triangle(ga, False)
    return ga


@defjvp(np.linalg.pinv)
def pinv_jvp(ans, a, rcond=None, hermitian=False, *, rtol=None, a_dot=None):
    if hermitian:  # NumPy reads the lower triangle only (it calls eigh): so does the rule
        a, a_dot = _read_triangle(a, False), _read_triangle(a_dot, False)
    if rcond is not None:
        return _truncated_pinv_dot(a, ans, a_dot, rcond)
    if rtol is not None:
        return _truncated_pinv_dot(a, ans, a_dot, rtol)
    x, xt, dt = ans, _mT(ans), _mT(a_dot)
    left = np.eye(np.shape(a)[-2]) - a @ x
    right = np.eye(np.shape(a)[-1]) - x @ a
    return -(x @ a_dot @ x) + x @ xt @ dt @ left + right @ dt @ xt @ x


def _unit_columns(v, d):
    """The tangent (or cotangent) d of eigenvectors that NumPy keeps at unit norm: its
    part along each vector removed."""
    return d - v * np.sum(v * d, axis=-2, keepdims=True)


@defvjp(np.linalg.eig)
def eig_vjp(g, ans, a):
    w, v = ans[0], ans[1]
    if is_complex(w):
        _ = unsupported("np.linalg.eig has a derivative rule for a real spectrum only; this "
                        "matrix has complex eigenvalues")
    x = _mT(v) @ _unit_columns(v, g[1])
    m = g[0][..., None] * np.eye(np.shape(w)[-1]) + _inverse_gaps(w) * x
    # V^-T M V^T. A is real and so is the Jacobian of a real spectrum, whatever dtype
    # NumPy gives w and v (complex on 2.5): A's cotangent is the real part, Re(J^T g)
    return np.real(np.linalg.solve(_mT(v), m @ _mT(v)))


@defjvp(np.linalg.eig)
def eig_jvp(ans, a, a_dot):
    w, v = ans[0], ans[1]
    if is_complex(w):
        _ = unsupported("np.linalg.eig has a derivative rule for a real spectrum only; this "
                        "matrix has complex eigenvalues")
    # computed with w and v as NumPy returns them, so the tangents have their dtype
    # (complex on NumPy 2.5, with imaginary parts 0)
    p = np.linalg.solve(v, a_dot @ v)  # V^-1 dA V
    dot = (np.sum(p * np.eye(np.shape(w)[-1]), -1),
           _unit_columns(v, v @ (_inverse_gaps(w) * p + _undefined_at_ties(w, p))))
    return dot


# a singular or indefinite matrix raises LinAlgError: kept even when the value is unused
may_raise(*(getattr(np.linalg, n) for n in ("cholesky", "inv", "solve", "eigh", "eig", "svd",
                                           "qr", "pinv", "lstsq", "matrix_power", "eigvals",
                                           "eigvalsh") if hasattr(np.linalg, n)))


# ------------------------------------------------------------------ matrix_power, multi_dot

primitive(np.linalg.matrix_power, "np.linalg.matrix_power")
primitive(np.linalg.multi_dot, "np.linalg.multi_dot")


def _power_sum(a, d, n):
    """The sum over k < n of a^k d a^(n - 1 - k): the derivative of a^n along d."""
    total = 0.0 * d
    for k in range(n):
        total = total + np.linalg.matrix_power(a, k) @ d @ np.linalg.matrix_power(a, n - 1 - k)
    return total


@defvjp(np.linalg.matrix_power)
def matrix_power_vjp(g, ans, a, n):
    if n >= 0:
        return _power_sum(_mT(a), g, n)
    b = np.linalg.inv(a)  # a^n = b^-n, and d b = -b d a b
    return -(_mT(b) @ _power_sum(_mT(b), g, -n) @ _mT(b))


@defjvp(np.linalg.matrix_power)
def matrix_power_jvp(ans, a, n, a_dot):
    if n >= 0:
        return _power_sum(a, a_dot, n)
    b = np.linalg.inv(a)
    return _power_sum(b, -(b @ a_dot @ b), -n)


def _as_matrix(x, i, n):
    """multi_dot's operand i of n as a matrix: a 1-d first one is a row, a 1-d last
    one a column."""
    if np.ndim(x) == 1:
        if i == 0:
            return np.reshape(x, (1, -1))
        return np.reshape(x, (-1, 1))
    return x


def _chain(mats, start, stop, size):
    """mats[start] @ ... @ mats[stop - 1]; the identity of `size` when empty."""
    out = np.eye(size)
    for j in range(start, stop):
        out = out @ mats[j]
    return out


@defvjp(np.linalg.multi_dot)
def multi_dot_vjp(g, ans, arrays, *, out=None):
    # operand i's cotangent: (what is left of it)^T g (what is right of it)^T
    n = len(arrays)
    mats = []
    for i in range(n):
        mats.append(_as_matrix(arrays[i], i, n))
    rows, cols = np.shape(mats[0])[0], np.shape(mats[n - 1])[1]
    gm = np.reshape(g, (rows, cols))
    bars = []
    for i in range(n):
        left = _chain(mats, 0, i, rows)
        right = _chain(mats, i + 1, n, np.shape(mats[i])[1])
        bars.append(np.reshape(_mT(left) @ gm @ _mT(right), np.shape(arrays[i])))
    return bars


@defjvp(np.linalg.multi_dot)
def multi_dot_jvp(ans, arrays, *, out=None, arrays_dot=None):
    n = len(arrays)
    mats = []
    dots = []
    for i in range(n):
        mats.append(_as_matrix(arrays[i], i, n))
        dots.append(_as_matrix(arrays_dot[i], i, n))
    rows = np.shape(mats[0])[0]
    total = 0.0
    for i in range(n):
        left = _chain(mats, 0, i, rows)
        right = _chain(mats, i + 1, n, np.shape(mats[i])[1])
        total = total + left @ dots[i] @ right
    return np.reshape(total, np.shape(ans))


# ------------------------------------------------------------------ lstsq, eigvals

primitive(np.linalg.lstsq, "np.linalg.lstsq")
primitive(np.linalg.eigvals, "np.linalg.eigvals")


def _pinv_bar(g, x, a):
    """The cotangent of a from g, that of x = pinv(a) (the rank constant near a)."""
    xt, gt = _mT(x), _mT(g)
    left = np.eye(np.shape(a)[-2]) - a @ x
    right = np.eye(np.shape(a)[-1]) - x @ a
    return -(xt @ g @ xt) + left @ gt @ x @ xt + xt @ x @ gt @ right


def _full_rank(a, rank):
    if rank < min(np.shape(a)[0], np.shape(a)[1]):
        return unsupported("np.linalg.lstsq of a rank-deficient matrix has no derivative "
                           "rule (its solution jumps where the rank changes)",
                           "regularise: solve (a^T a + lam I) x = a^T b")
    return None


@defvjp(np.linalg.lstsq)
def lstsq_vjp(g, ans, a, b, rcond=None):
    # x = pinv(a) b; residuals |b - a x|^2 (a tall, full rank) move with r = b - a x
    # alone (a^T r = 0); the singular values s as svd's do. rank is an integer.
    _ = _full_rank(a, ans[2])
    m, n = np.shape(a)
    pinv = np.linalg.pinv(a)
    x2 = np.reshape(ans[0], (n, -1))
    gx = np.reshape(g[0], (n, -1))
    gb = _mT(pinv) @ gx
    ga = _pinv_bar(gx @ _mT(np.reshape(b, (m, -1))), pinv, a)
    if np.size(ans[1]) > 0:
        r = np.reshape(b, (m, -1)) - a @ x2
        gr = 2.0 * r * g[1]
        gb = gb + gr
        ga = ga - gr @ _mT(x2)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    ga = ga + (u * g[3]) @ vt
    return ga, np.reshape(gb, np.shape(b))


@defjvp(np.linalg.lstsq)
def lstsq_jvp(ans, a, b, rcond=None, a_dot=None, b_dot=None):
    _ = _full_rank(a, ans[2])
    m, n = np.shape(a)
    x, xt = np.linalg.pinv(a), _mT(np.linalg.pinv(a))
    dt = _mT(a_dot)
    dx = (-(x @ a_dot @ x) + x @ xt @ dt @ (np.eye(m) - a @ x)
          + (np.eye(n) - x @ a) @ dt @ xt @ x)
    b2 = np.reshape(b, (m, -1))
    x2 = np.reshape(ans[0], (n, -1))
    dsol = dx @ b2 + x @ np.reshape(b_dot, (m, -1))
    dres = 0.0 * ans[1]
    if np.size(ans[1]) > 0:
        r = b2 - a @ x2
        dres = 2.0 * np.sum(r * (np.reshape(b_dot, (m, -1)) - a_dot @ x2), axis=0)
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    ds = np.sum((_mT(u) @ a_dot @ _mT(vt)) * np.eye(np.shape(s)[0]), -1)
    dot = (np.reshape(dsol, np.shape(ans[0])), dres, 0.0 * ans[2], ds)
    return dot


def eig_order(w, values):
    """The permutation p with values[..., p] == w up to rounding: which of
    np.linalg.eig's eigenvalues `values` is each of np.linalg.eigvals's `w` (LAPACK
    computes them along two paths, and need not list them in one order). Both sorted,
    the k-th of one is the k-th of the other: a one-to-one match also where a value
    repeats (2 I), where the nearest value would pick one eigenvector twice."""
    by_w = np.argsort(np.asarray(w), axis=-1)
    by_values = np.argsort(np.asarray(values), axis=-1)
    return np.take_along_axis(by_values, np.argsort(by_w, axis=-1), axis=-1)


primitive(eig_order, "eig_order", nondiff=True)
defnondiff(eig_order)


def _eigvals_vectors(a, w):
    """The eigenvectors of a, in the order of eigvals's w: real spectra only."""
    if is_complex(w):
        _ = unsupported("np.linalg.eigvals has a derivative rule for a real spectrum only; "
                        "this matrix has complex eigenvalues")
    both = np.linalg.eig(a)
    return np.take_along_axis(both[1], eig_order(w, both[0])[..., None, :], -1)


@defvjp(np.linalg.eigvals)
def eigvals_vjp(g, ans, a):
    v = _eigvals_vectors(a, ans)
    # V^-T diag(g) V^T, its real part (NumPy 2.5 returns v complex even for a real spectrum)
    return np.real(np.linalg.solve(_mT(v), g[..., :, None] * _mT(v)))


@defjvp(np.linalg.eigvals)
def eigvals_jvp(ans, a, a_dot):
    v = _eigvals_vectors(a, ans)
    p = np.linalg.solve(v, a_dot @ v)  # V^-1 dA V: its diagonal
    return np.sum(p * np.eye(np.shape(ans)[-1]), -1)


# ------------------------------------------------------------------ cond, tensorinv, tensorsolve

for _fn, _name in [(np.linalg.cond, "np.linalg.cond"), (np.linalg.tensorinv, "np.linalg.tensorinv"),
                   (np.linalg.tensorsolve, "np.linalg.tensorsolve"), (np.polyfit, "np.polyfit")]:
    primitive(_fn, _name)
may_raise(np.linalg.tensorinv, np.linalg.tensorsolve)


def _cond_parts(a, p):
    """(u, s, vt, the position of the singular value in cond's numerator, that of the
    one in its denominator) for the 2-norm condition numbers; other p are refused."""
    if p not in (None, 2, -2):
        _ = unsupported("np.linalg.cond has a derivative rule for the 2-norm (p=None, 2 or "
                        "-2)", "write it as np.linalg.norm(a, p) * "
                        "np.linalg.norm(np.linalg.inv(a), p)")
    u, s, vt = np.linalg.svd(a, full_matrices=False)
    top, bottom = 0, np.shape(s)[-1] - 1
    if np.any(_ties(s[..., :2]) != 0.0) or np.any(_ties(s[..., bottom - 1:]) != 0.0):
        _ = unsupported("np.linalg.cond where the largest or the smallest singular value is "
                        "repeated: it has no derivative there")
    if p == -2:
        return u, s, vt, bottom, top
    return u, s, vt, top, bottom


def _singular_bar(u, vt, i, scale):
    """scale times d s_i / da = u_i v_i^T (scale: one number per matrix of the stack)."""
    return scale[..., None, None] * (u[..., :, i][..., :, None] * vt[..., i, :][..., None, :])


@defvjp(np.linalg.cond)
def cond_vjp(g, ans, x, p=None):
    # cond = s_num / s_den: d cond = (d s_num - cond d s_den) / s_den, d s_i = u_i^T dx v_i
    parts = _cond_parts(x, p)
    u, s, vt, num, den = parts[0], parts[1], parts[2], parts[3], parts[4]
    w = g / s[..., den]
    return _singular_bar(u, vt, num, w) - _singular_bar(u, vt, den, w * ans)


@defjvp(np.linalg.cond)
def cond_jvp(ans, x, p=None, x_dot=None):
    parts = _cond_parts(x, p)
    u, s, vt, num, den = parts[0], parts[1], parts[2], parts[3], parts[4]
    ds = np.sum((_mT(u) @ x_dot) * vt, axis=-1)  # d s_i = u_i^T dx v_i, for every i
    return (ds[..., num] - ans * ds[..., den]) / s[..., den]


@defvjp(np.linalg.tensorinv)
def tensorinv_vjp(g, ans, a, ind=2):
    # tensorinv is inv of a read as a (rows, rows) matrix, its result read back
    rows = int(np.prod(np.shape(a)[:ind]))
    x = np.reshape(ans, (rows, rows))
    return np.reshape(-(x.T @ np.reshape(g, (rows, rows)) @ x.T), np.shape(a))


@defjvp(np.linalg.tensorinv)
def tensorinv_jvp(ans, a, ind=2, a_dot=None):
    rows = int(np.prod(np.shape(a)[:ind]))
    x = np.reshape(ans, (rows, rows))
    return np.reshape(-(x @ np.reshape(a_dot, (rows, rows)) @ x), np.shape(ans))


def _no_axes(axes):
    if axes is not None:
        return unsupported("np.linalg.tensorsolve with axes= has no derivative rule",
                           "move the axes with np.moveaxis first")
    return None


@defvjp(np.linalg.tensorsolve)
def tensorsolve_vjp(g, ans, a, b, axes=None):
    # a read as a (b.size, x.size) matrix: solve's rule, reshaped
    _ = _no_axes(axes)
    a2 = np.reshape(a, (np.size(b), np.size(ans)))
    gb = np.linalg.solve(a2.T, np.ravel(g))
    return np.reshape(-np.outer(gb, np.ravel(ans)), np.shape(a)), np.reshape(gb, np.shape(b))


@defjvp(np.linalg.tensorsolve)
def tensorsolve_jvp(ans, a, b, axes=None, a_dot=None, b_dot=None):
    _ = _no_axes(axes)
    a2 = np.reshape(a, (np.size(b), np.size(ans)))
    rhs = np.ravel(b_dot) - np.reshape(a_dot, np.shape(a2)) @ np.ravel(ans)
    return np.reshape(np.linalg.solve(a2, rhs), np.shape(ans))


# ------------------------------------------------------------------ polyfit

def _polyfit_parts(x, y, deg, full, w, cov):
    """(V, pinv(V), dV/dx column by column) of the least squares fit p = pinv(V) y,
    V = np.vander(x, deg + 1); with full=, w= or cov= refused, and a rank-deficient V."""
    if full or cov or w is not None:
        _ = unsupported("np.polyfit has a derivative rule without full=, w= and cov=",
                        "for weights, fit np.vander(x, deg + 1) * w[:, None] to y * w with "
                        "np.linalg.lstsq")
    v = np.vander(x, deg + 1)
    s = np.linalg.svd(v, compute_uv=False)
    if np.shape(x)[0] < deg + 1 or s[-1] <= 1e-13 * s[0]:
        _ = unsupported("np.polyfit with fewer distinct x than coefficients (a singular "
                        "Vandermonde matrix): the fit is not unique and has no derivative")
    slope = np.concatenate((np.vander(x, deg) * (deg - np.arange(deg)),
                            np.zeros((np.shape(x)[0], 1))), axis=1)  # d x^(deg - j) / dx
    return v, np.linalg.pinv(v), slope


@defvjp(np.polyfit)
def polyfit_vjp(g, ans, x, y, deg, rcond=None, full=False, w=None, cov=False):
    # p = pinv(V) y: y's cotangent is pinv(V)^T g; V's is r s^T - gy p^T with the
    # residual r = y - V p and s = (V^T V)^-1 g (least squares, V full rank)
    parts = _polyfit_parts(x, y, deg, full, w, cov)
    v, pv, slope = parts[0], parts[1], parts[2]
    k = deg + 1
    p2, g2 = np.reshape(ans, (k, -1)), np.reshape(g, (k, -1))
    gy = pv.T @ g2
    r = np.reshape(y, np.shape(gy)) - v @ p2
    gv = r @ (pv @ gy).T - gy @ p2.T
    return np.sum(gv * slope, axis=1), np.reshape(gy, np.shape(y))


@defjvp(np.polyfit)
def polyfit_jvp(ans, x, y, deg, rcond=None, full=False, w=None, cov=False, x_dot=None,
                y_dot=None):
    parts = _polyfit_parts(x, y, deg, full, w, cov)
    v, pv, slope = parts[0], parts[1], parts[2]
    k = deg + 1
    p2 = np.reshape(ans, (k, -1))
    dv = slope * np.reshape(x_dot, (-1, 1))
    r = np.reshape(y, (np.shape(v)[0], -1)) - v @ p2
    dp = pv @ (np.reshape(y_dot, np.shape(r)) - dv @ p2) + pv @ (pv.T @ (dv.T @ r))
    return np.reshape(dp, np.shape(ans))
