"""Third derivatives through the decompositions whose results are tuples (eigh, svd, qr,
eig, slogdet, lstsq) and cholesky, on closed forms.

Round 24's F2: grad(grad(grad(f))) of det(A + tB) written as w[0] * w[1] of eigh (s[0] *
s[1] of svd, r[0, 0] * r[1, 1] of qr) was -0.0029 (+0.012) where det(A + tB) is a
quadratic in t. The rules were right: the third transform's two tangents of the tuple's
zero cotangent were copies of one container that shared its arrays, and each added
into them in place (runtime.private_entries). The closed forms: det(A + tB) of an n x n
matrix has third derivative 6 det(B) for n = 3 and 0 for n = 2; the directional
derivative D det(X)[B], written with a decomposition's values and vectors, has
<Hessian . B, B> = D^3 det(X)[B, B, B] = 6 det(B), which checks the HVP path.
"""
import warnings

import numpy as np
import pytest

import adjoint

A2 = np.array([[2.0, 0.3], [0.3, 1.0]])
B2 = np.array([[0.5, 0.2], [0.2, -0.3]])
A3 = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, 0.2], [0.1, 0.2, 0.5]])
B3 = np.array([[0.5, 0.2, -0.1], [0.2, -0.3, 0.4], [-0.1, 0.4, 0.2]])
N3 = np.array([[3.0, 0.4, 0.2], [0.1, 1.5, 0.3], [0.2, 0.1, 0.7]])  # real spectrum
C = np.array([[1.0, 0.5], [0.2, 1.5], [0.3, -0.4]])
D = 0.3 * C[::-1]
b = np.array([1.0, -2.0, 0.5])
T = 0.1


def third(f, t=T):
    return adjoint.grad(adjoint.grad(adjoint.grad(f)))(t)


def second(f, t=T):
    return adjoint.grad(adjoint.grad(f))(t)


def third_by_differences(f, t=T, h=1e-4):
    """Central differences of the second derivative (orders 1 and 2 are checked against
    differences of f in test_higher; here they are the reference)."""
    g2 = adjoint.grad(adjoint.grad(f))
    return (g2(t + h) - g2(t - h)) / (2 * h)


# ---------------------------------------------------------------- det(A + tB), 2 x 2

def eigh_det2(t):
    w, v = np.linalg.eigh(A2 + t * B2)
    return w[0] * w[1]


def svd_det2(t):
    u, s, vt = np.linalg.svd(A2 + t * B2)
    return s[0] * s[1]


def qr_det2(t):
    q, r = np.linalg.qr(A2 + t * B2)
    return r[0, 0] * r[1, 1]


def eig_det2(t):
    w, v = np.linalg.eig(A2 + t * B2)
    return w[0] * w[1]


def cholesky_det2(t):
    el = np.linalg.cholesky(A2 + t * B2)
    return (el[0, 0] * el[1, 1]) ** 2


def slogdet_det2(t):
    sign, logdet = np.linalg.slogdet(A2 + t * B2)
    return sign * np.exp(logdet)


# ---------------------------------------------------------------- det(A + tB), 3 x 3

def eigh_det3(t):
    w, v = np.linalg.eigh(A3 + t * B3)
    return w[0] * w[1] * w[2]


def svd_det3(t):
    u, s, vt = np.linalg.svd(A3 + t * B3)
    return s[0] * s[1] * s[2]


def qr_det3(t):
    q, r = np.linalg.qr(A3 + t * B3)
    return r[0, 0] * r[1, 1] * r[2, 2]


def eig_det3(t):
    w, v = np.linalg.eig(N3 + t * B3)
    return w[0] * w[1] * w[2]


def cholesky_det3(t):
    el = np.linalg.cholesky(A3 + t * B3)
    return (el[0, 0] * el[1, 1] * el[2, 2]) ** 2


DETS = [(eigh_det2, A2, B2), (svd_det2, A2, B2), (qr_det2, A2, B2), (eig_det2, A2, B2),
        (cholesky_det2, A2, B2), (slogdet_det2, A2, B2), (eigh_det3, A3, B3),
        (svd_det3, A3, B3), (qr_det3, A3, B3), (eig_det3, N3, B3), (cholesky_det3, A3, B3)]


@pytest.mark.parametrize("f,a,d", DETS, ids=[c[0].__name__ for c in DETS])
def test_third_derivative_of_a_determinant_written_with_a_decomposition(f, a, d):
    # f(t) = sign * det(a + t d), sign = +-1 constant near T (svd's |det|, qr's signs on
    # R's diagonal); det(a + t d) = det a + t c1 + t^2 c2 + t^3 det d (the last for 3 x 3)
    sign = np.sign(f(T) / np.linalg.det(a + T * d))
    n = len(a)
    want3 = 6.0 * np.linalg.det(d) if n == 3 else 0.0
    # the second derivative, by the same polynomial: c2 = (p(1) + p(-1)) / 2 - p(0) for
    # n = 2; for n = 3 twice c2 plus 6 t det d, with c2 from p(1) + p(-1) = 2 (p(0) + c2)
    p = [np.linalg.det(a + s * d) for s in (-1.0, 0.0, 1.0)]
    c2 = (p[0] + p[2]) / 2 - p[1]
    want2 = 2 * c2 + 6 * T * np.linalg.det(d) * (n == 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)  # eig: NumPy 2.5
        assert np.isclose(second(f), sign * want2, rtol=1e-9, atol=1e-12)
        assert np.isclose(third(f), sign * want3, rtol=1e-8, atol=1e-10)


# ------------------------------------ values and vectors mixed: against differences

def eigh_mixed(t):
    w, v = np.linalg.eigh(A3 + t * B3)
    return w[0] * w[2] + v[0, 0] ** 2


def svd_tall_mixed(t):
    u, s, vt = np.linalg.svd(C + t * D, full_matrices=False)
    return s[0] * s[1] + u[0, 0] * vt[1, 1]


def svd_square_vectors(t):
    u, s, vt = np.linalg.svd(A3 + t * B3)
    return np.sum(u[:, 0] * vt[0]) * s[1] + u[1, 2] ** 2


def qr_tall_mixed(t):
    q, r = np.linalg.qr(C + t * D)
    return r[0, 0] * r[1, 1] + q[0, 1] * q[2, 0]


def eig_mixed(t):
    w, v = np.linalg.eig(N3 + t * B3)
    return w[0] * w[2] + v[0, 0] * v[1, 1]


def polar(t):
    u, s, vt = np.linalg.svd(A3 + t * B3)
    return np.sum((u @ vt) * B3) * s[0]


def lstsq_mixed(t):
    x, res, rank, s = np.linalg.lstsq(C + t * D, b, rcond=None)
    return x[0] * x[1] + res[0] * s[0]


def qr_solve(t):
    q, r = np.linalg.qr(C + t * D)
    x = np.linalg.solve(r, q.T @ b)
    return np.sum(x * x) * r[0, 1]


MIXED = [eigh_mixed, svd_tall_mixed, svd_square_vectors, qr_tall_mixed, eig_mixed, polar,
         lstsq_mixed, qr_solve]


@pytest.mark.parametrize("f", MIXED, ids=[f.__name__ for f in MIXED])
def test_third_derivative_mixing_values_and_vectors_matches_differences(f):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        for t in (-0.3, T):
            want = third_by_differences(f, t)
            assert np.isclose(third(f, t), want, rtol=1e-5, atol=1e-7), t


# ------------------------------------------ HVP of D det(X)[B], read from the vectors

def eigh_det_along(x):
    # D det(X)[B3] = sum_i w_i' prod_{j != i} w_j, w_i' = v_i^T B3 v_i
    w, v = np.linalg.eigh(x)
    wd = np.sum(v * (B3 @ v), axis=0)
    return wd[0] * w[1] * w[2] + w[0] * wd[1] * w[2] + w[0] * w[1] * wd[2]


def svd_det_along(x):
    # D |det X|[B3] = sum_i s_i' prod_{j != i} s_j, s_i' = u_i^T B3 v_i
    u, s, vt = np.linalg.svd(x)
    sd = np.sum(u * (B3 @ vt.T), axis=0)
    return sd[0] * s[1] * s[2] + s[0] * sd[1] * s[2] + s[0] * s[1] * sd[2]


def qr_det_along(x):
    # D det(X)[B3] = det X tr(X^-1 B3), X^-1 = R^-1 Q^T; prod(diag R) = +-det X
    q, r = np.linalg.qr(x)
    return r[0, 0] * r[1, 1] * r[2, 2] * np.trace(np.linalg.solve(r, q.T @ B3))


ALONG = [(eigh_det_along, lambda x: np.linalg.eigh(x)[0].prod() / np.linalg.det(x)),
         (svd_det_along, lambda x: np.linalg.svd(x)[1].prod() / np.linalg.det(x)),
         (qr_det_along, lambda x: np.diag(np.linalg.qr(x)[1]).prod() / np.linalg.det(x))]


@pytest.mark.parametrize("f,sign", ALONG, ids=[c[0].__name__ for c in ALONG])
def test_hvp_of_a_determinants_directional_derivative(f, sign):
    # <H(f)(A3) . B3, B3> = D^3 det(A3)[B3, B3, B3] = 6 det(B3), times f's sign
    x = A3 + T * B3
    want = np.sign(sign(x)) * 6.0 * np.linalg.det(B3)
    assert np.isclose(np.sum(adjoint.hvp(f)(x, B3) * B3), want, rtol=1e-8, atol=1e-10)
    # and the gradient's differences along B3, entry by entry
    g, h = adjoint.grad(f), 1e-5
    np.testing.assert_allclose(adjoint.hvp(f)(x, B3), (g(x + h * B3) - g(x - h * B3)) / (2 * h),
                               rtol=1e-5, atol=1e-7)
