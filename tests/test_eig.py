"""np.linalg.eig's rule on either dtype NumPy gives a real spectrum.

NumPy up to 2.4 returns a real spectrum's eigenvalues and vectors as float
arrays; NumPy 2.5 returns them complex, with imaginary parts that are exactly 0.
The rule decides by those values: a real spectrum is differentiated (the matrix's
cotangent is real, the tangents have the dtype eig returned), a complex one is
refused. The complex-typed case is built here from the real one, so both run on
any NumPy; on NumPy 2.5 the compiled programs below meet it for real.
"""
from __future__ import annotations

import numpy as np
import pytest

import adjoint
from adjoint import AdjointError
from adjoint.errors import NonDifferentiableError
from adjoint.rules import linalg

# non-symmetric, real and well separated eigenvalues, no zero entry (balancing can
# flip an eigenvector's sign where an entry below the diagonal is exactly 0)
A = np.array([[2.0, 0.4, 0.1], [0.3, -1.0, 0.2], [0.05, 0.5, 0.5]])
ROTATION = np.array([[0.1, -1.0], [1.0, 0.1]])  # eigenvalues 0.1 +- 1j
EPS = 1e-6
R = np.random.default_rng(7)
G = (R.normal(size=3), R.normal(size=(3, 3)))  # a cotangent of (w, v)
DA = R.normal(size=(3, 3))  # a direction for A


def real_eig(a):
    w, v = np.linalg.eig(a)
    assert not np.any(np.imag(w)) and not np.any(np.imag(v))
    return np.real(w), np.real(v)


def as_complex(ans):
    """eig's result as NumPy 2.5 gives it for a real spectrum."""
    return tuple(np.asarray(x, dtype=complex) for x in ans)


def fd_of_eig(a, da):
    """Central differences of (w, v) along da."""
    plus, minus = real_eig(a + EPS * da), real_eig(a - EPS * da)
    return tuple((p - m) / (2 * EPS) for p, m in zip(plus, minus))


def test_is_complex_reads_the_imaginary_parts_not_the_dtype():
    assert not linalg.is_complex(np.array([1.0, 2.0]))
    assert not linalg.is_complex(np.array([1.0, -2.0], dtype=complex))
    assert linalg.is_complex(np.array([1.0, 2.0 + 1e-300j]))
    assert linalg.is_complex(np.linalg.eig(ROTATION)[0])


@pytest.mark.parametrize("typed", [lambda ans: ans, as_complex], ids=["float", "complex"])
def test_vjp_is_real_and_matches_finite_differences(typed):
    ans = typed(real_eig(A))
    cot = linalg.eig_vjp(G, ans, A)
    assert cot.dtype == np.float64 and cot.shape == A.shape
    dw, dv = fd_of_eig(A, DA)
    np.testing.assert_allclose(np.sum(cot * DA), G[0] @ dw + np.sum(G[1] * dv), rtol=1e-7)


def test_vjp_of_the_eigenvalues_sum_is_the_identity():
    # sum(w) = trace(A): its gradient is I, whatever dtype w has
    for ans in (real_eig(A), as_complex(real_eig(A))):
        cot = linalg.eig_vjp((np.ones(3), np.zeros((3, 3))), ans, A)
        np.testing.assert_allclose(cot, np.eye(3), atol=1e-12)


@pytest.mark.parametrize("typed", [lambda ans: ans, as_complex], ids=["float", "complex"])
def test_jvp_has_eigs_dtype_and_matches_finite_differences(typed):
    ans = typed(real_eig(A))
    dw, dv = linalg.eig_jvp(ans, A, DA)
    assert dw.dtype == ans[0].dtype and dv.dtype == ans[1].dtype
    assert not np.any(np.imag(dw)) and not np.any(np.imag(dv))
    want_w, want_v = fd_of_eig(A, DA)
    np.testing.assert_allclose(np.real(dw), want_w, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.real(dv), want_v, rtol=1e-6, atol=1e-9)


def test_a_complex_spectrum_is_refused_by_both_rules():
    ans = np.linalg.eig(ROTATION)
    with pytest.raises(NonDifferentiableError, match="real spectrum only"):
        linalg.eig_vjp((np.ones(2), np.zeros((2, 2))), ans, ROTATION)
    with pytest.raises(NonDifferentiableError, match="real spectrum only"):
        linalg.eig_jvp(ans, ROTATION, np.eye(2))


def eig_of(a):
    return np.linalg.eig(a)


def test_compiled_eig_returns_what_numpy_does_and_its_derivatives():
    """The whole result: no element is picked, so no complex value is differentiated
    in the program itself, on any NumPy; the rule sees eig's own dtype."""
    want = np.linalg.eig(A)
    out, pullback = adjoint.vjp(eig_of, A)
    for got, ref in zip(out, want):
        assert got.dtype == ref.dtype
        np.testing.assert_array_equal(got, ref)
    cot = pullback(G)
    assert cot.dtype == np.float64
    dw, dv = fd_of_eig(A, DA)
    np.testing.assert_allclose(np.sum(cot * DA), G[0] @ dw + np.sum(G[1] * dv), rtol=1e-7)

    val, (tw, tv) = adjoint.jvp(eig_of)(A, DA)
    assert tw.dtype == want[0].dtype and tv.dtype == want[1].dtype
    np.testing.assert_allclose(np.real(tw), dw, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.real(tv), dv, rtol=1e-6, atol=1e-9)


def test_compiled_eig_of_a_complex_spectrum_is_refused():
    _, pullback = adjoint.vjp(eig_of, ROTATION)
    with pytest.raises(AdjointError, match="real spectrum only"):
        pullback((np.ones(2), np.zeros((2, 2))))
    with pytest.raises(AdjointError, match="real spectrum only"):
        adjoint.jvp(eig_of)(ROTATION, np.eye(2))
