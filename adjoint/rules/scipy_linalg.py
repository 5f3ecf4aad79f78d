"""`scipy.linalg`: `solve_triangular`, `cho_factor` with `cho_solve`, and `expm`
(imported only when SciPy is installed; see `adjoint.rules`).

- `solve_triangular(a, b, trans, lower, unit_diagonal)` reads one triangle of a
  (without its diagonal when unit_diagonal=True): so does its rule; the other
  entries get no gradient. a is a matrix, b a vector or a matrix of columns.
- `cho_factor(a, lower)` returns (c, lower): c holds the Cholesky factor in one
  triangle and, in the other, a's own entries (LAPACK leaves them there), so
  c's tangent there is a's. The factor's derivative is `np.linalg.cholesky`'s.
  `cho_solve((c, lower), b)` reads c's factor triangle only, and is
  differentiable in c (that triangle) and in b.
- `expm(a)`: the Fréchet derivative L(a, e) is the upper right block of
  expm([[a, e], [0, a]]) (Higham, Functions of Matrices, 2008, eq. 3.16; Mathias
  1996), and the VJP is L(a^T, g). Written with expm itself, so a second
  derivative goes through the same rule.
"""
from __future__ import annotations

import numpy as np
from scipy import linalg

from adjoint.rules.linalg import _mT, cholesky_jvp, cholesky_vjp
from adjoint.rules.located import unsupported
from adjoint.rules.registry import defjvp, defvjp, may_raise, primitive

for _name in ["solve_triangular", "cho_factor", "cho_solve", "expm"]:
    primitive(getattr(linalg, _name), "scipy.linalg." + _name)
may_raise(linalg.solve_triangular, linalg.cho_factor, linalg.cho_solve)


# ------------------------------------------------------------------ helpers

def _transposed(trans):
    """solve_triangular's trans: 0 / 'N' solves a x = b, 1 / 'T' and 2 / 'C' (a real
    matrix: the same) a^T x = b."""
    return trans in (1, 2, "T", "C")


def _columns(x):
    """A vector as one column; a matrix as it is."""
    if np.ndim(x) == 1:
        return np.reshape(x, (-1, 1))
    return x


def _triangle(m, lower, strict):
    """The triangle solve_triangular reads, the diagonal left out when `strict`."""
    if lower:
        if strict:
            return np.tril(m, -1)
        return np.tril(m)
    if strict:
        return np.triu(m, 1)
    return np.triu(m)


def _matrix_only(a, b):
    """Refuse stacks of matrices (SciPy batches them; the rules are written for one)."""
    if np.ndim(a) != 2 or np.ndim(b) > 2:
        return unsupported("scipy.linalg's solve rules take one matrix a and a vector or "
                           "matrix b", "loop over the stack")
    return None


def _factor_of(c, lower):
    """(the lower factor L with a = L L^T, read from c's triangle)."""
    if lower:
        return np.tril(c)
    return _mT(np.triu(c))


# ------------------------------------------------------------------ solve_triangular

@defvjp(linalg.solve_triangular)
def solve_triangular_vjp(g, ans, a, b, trans=0, lower=False, unit_diagonal=False,
                         overwrite_b=False, check_finite=True):
    # x = op(T)^-1 b: b's cotangent is op(T)^-T g, T's is -(that) x^T (of op(T))
    _ = _matrix_only(a, b)
    t = _transposed(trans)
    gb = linalg.solve_triangular(a, g, trans=1 - int(t), lower=lower,
                                 unit_diagonal=unit_diagonal)
    outer = -(_columns(gb) @ _mT(_columns(ans)))
    if t:
        outer = _mT(outer)
    return _triangle(outer, lower, unit_diagonal), gb


@defjvp(linalg.solve_triangular)
def solve_triangular_jvp(ans, a, b, trans=0, lower=False, unit_diagonal=False,
                         overwrite_b=False, check_finite=True, a_dot=None, b_dot=None):
    _ = _matrix_only(a, b)
    da = _triangle(a_dot, lower, unit_diagonal)
    if _transposed(trans):
        da = _mT(da)
    rhs = b_dot - np.reshape(da @ _columns(ans), np.shape(ans))
    return linalg.solve_triangular(a, rhs, trans=trans, lower=lower,
                                   unit_diagonal=unit_diagonal)


# ------------------------------------------------------------------ cho_factor, cho_solve

# c's other triangle (strictly): SciPy before 1.18 leaves a's entries there, whose
# derivative in a is a's; 1.18 writes zeros, whose derivative is 0. Asked of SciPy once.
KEEPS_A = bool(linalg.cho_factor(np.array([[2.0, 1.0], [1.0, 2.0]]))[0][1, 0] == 1.0)


@defvjp(linalg.cho_factor)
def cho_factor_vjp(g, ans, a, lower=False, overwrite_a=False, check_finite=True):
    # c = the factor in one triangle, a itself (or zeros: KEEPS_A) in the other
    gc = g[0]
    if lower:
        factor, rest = np.tril(gc), np.triu(gc, 1)
        return cholesky_vjp(factor, np.tril(ans[0]), a, False) + rest * KEEPS_A
    factor, rest = np.triu(gc), np.tril(gc, -1)
    return cholesky_vjp(factor, np.triu(ans[0]), a, True) + rest * KEEPS_A


@defjvp(linalg.cho_factor)
def cho_factor_jvp(ans, a, lower=False, overwrite_a=False, check_finite=True, a_dot=None):
    if lower:
        dot = (cholesky_jvp(np.tril(ans[0]), a, False, a_dot) + np.triu(a_dot, 1) * KEEPS_A,
               ans[1] * 0.0)
    else:
        dot = (cholesky_jvp(np.triu(ans[0]), a, True, a_dot) + np.tril(a_dot, -1) * KEEPS_A,
               ans[1] * 0.0)
    return dot  # one tuple (a template's `return a, b` would be two outputs)


@defvjp(linalg.cho_solve)
def cho_solve_vjp(g, ans, c_and_lower, b, overwrite_b=False, check_finite=True):
    # x = A^-1 b with A = L L^T: b's cotangent is A^-1 g; A's is -(that) x^T, and
    # L's (A's symmetrised, times L), read back into c's factor triangle
    c, lower = c_and_lower[0], c_and_lower[1]
    _ = _matrix_only(c, b)
    gb = linalg.cho_solve((c, lower), g)
    ga = -(_columns(gb) @ _mT(_columns(ans)))
    gl = (ga + _mT(ga)) @ _factor_of(c, lower)
    if lower:
        gc = np.tril(gl)
    else:
        gc = np.triu(_mT(gl))
    return [gc, 0.0], gb


@defjvp(linalg.cho_solve)
def cho_solve_jvp(ans, c_and_lower, b, overwrite_b=False, check_finite=True,
                  c_and_lower_dot=None, b_dot=None):
    c, lower = c_and_lower[0], c_and_lower[1]
    _ = _matrix_only(c, b)
    if c_and_lower_dot is None:  # (a constant pair, called as plain Python)
        return linalg.cho_solve((c, lower), b_dot)
    el = _factor_of(c, lower)
    dl = _factor_of(c_and_lower_dot[0], lower)
    da = dl @ _mT(el) + el @ _mT(dl)
    return linalg.cho_solve((c, lower), b_dot - np.reshape(da @ _columns(ans), np.shape(ans)))


# ------------------------------------------------------------------ expm

def _frechet(a, e):
    """The Fréchet derivative of expm at a in the direction e: the upper right block of
    expm([[a, e], [0, a]]) (Higham 2008, eq. 3.16)."""
    n = np.shape(a)[-1]
    top = np.concatenate((a, e), axis=-1)
    bottom = np.concatenate((0.0 * a, a), axis=-1)
    return linalg.expm(np.concatenate((top, bottom), axis=-2))[..., :n, n:]


@defvjp(linalg.expm)
def expm_vjp(g, ans, A):
    return _frechet(_mT(A), g)  # L(a, .)'s adjoint is L(a^T, .)


@defjvp(linalg.expm)
def expm_jvp(ans, A, A_dot):
    return _frechet(A, A_dot)
