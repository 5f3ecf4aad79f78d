"""scipy.linalg through compiled programs (issue 15): solve_triangular, cho_factor
with cho_solve, expm.

tests/rules/test_registry.py checks each rule's templates on their own (CASES);
here each function is called in a small program the compiler differentiates, with
check_program (central differences, forward against reverse, the forward value),
against a hand formula where one is short, and twice (hvp) for expm. cho_solve's
first input is the (c, lower) pair, which the registry's harness does not perturb:
its derivative in c is checked here against central differences of cho_solve.
"""
from __future__ import annotations

import numpy as np
import pytest

sl = pytest.importorskip("scipy.linalg")

import adjoint  # noqa: E402
from adjoint.rules import registry  # noqa: E402
from adjoint.testing import check_program  # noqa: E402

R = np.random.default_rng(22)
A3 = np.eye(3) * 2.0 + 0.4 * R.uniform(-1, 1, (3, 3))
B = R.normal(size=(3, 3))
SPD3 = B @ B.T + 3.0 * np.eye(3)
V3 = R.normal(size=3)
M32 = R.normal(size=(3, 2))
E3 = 0.5 * R.normal(size=(3, 3))


def tri_lower(a, b):
    return np.sum(sl.solve_triangular(a, b, lower=True) ** 2)


def tri_upper_trans(a, b):
    return np.sum(np.sin(sl.solve_triangular(a, b, trans="T")))


def tri_unit(a, b):
    return np.sum(sl.solve_triangular(a, b, lower=True, unit_diagonal=True, trans=1) ** 2)


def cho_lower(a, b):
    return np.sum(sl.cho_solve(sl.cho_factor(a, lower=True), b) ** 2)


def cho_upper(a, b):
    c_and_lower = sl.cho_factor(a)
    return np.sum(np.cos(sl.cho_solve(c_and_lower, b)))


def cho_factor_itself(a):
    c, lower = sl.cho_factor(a)
    return np.sum(c * c)  # the factor's triangle and a's entries in the other


def expm_sum(a):
    return np.sum(sl.expm(a) ** 2)


@pytest.mark.parametrize("f, args", [
    (tri_lower, (A3, V3)), (tri_lower, (A3, M32)), (tri_upper_trans, (A3, V3)),
    (tri_upper_trans, (A3, M32)), (tri_unit, (A3, M32)),
    (cho_lower, (SPD3, V3)), (cho_lower, (SPD3, M32)), (cho_upper, (SPD3, V3)),
    (cho_upper, (SPD3, M32)), (cho_factor_itself, (SPD3,)), (expm_sum, (E3,))])
def test_against_finite_differences(f, args):
    check_program(f, *args)


def test_solve_triangular_by_hand():
    # x = L^-1 b; d sum(x) / db = L^-T 1, d / dL = -tril(L^-T 1 x^T)
    el = np.tril(A3)
    x = np.linalg.solve(el, V3)
    gb = np.linalg.solve(el.T, np.ones(3))
    ga, gv = adjoint.grad(lambda a, b: np.sum(sl.solve_triangular(a, b, lower=True)),
                          wrt=(0, 1))(A3, V3)
    np.testing.assert_allclose(gv, gb, rtol=1e-12)
    np.testing.assert_allclose(ga, np.tril(-np.outer(gb, x)), rtol=1e-12)


def sum_cho(a, b):
    return np.sum(sl.cho_solve(sl.cho_factor(a, lower=True), b))


def test_cho_solve_by_hand():
    # the same as solve with the symmetric matrix: d sum(A^-1 b) / dA = -(A^-1 1) x^T,
    # read from the lower triangle (the upper one's share folded onto it)
    ga, gb = adjoint.grad(sum_cho, wrt=(0, 1))(SPD3, V3)
    x = np.linalg.solve(SPD3, V3)
    y = np.linalg.solve(SPD3, np.ones(3))
    full = -np.outer(y, x)
    np.testing.assert_allclose(gb, y, rtol=1e-12)
    np.testing.assert_allclose(ga, np.tril(full + full.T) - np.diag(np.diag(full)),
                               rtol=1e-10, atol=1e-14)


def test_cho_solve_in_c_against_finite_differences():
    e = registry.lookup(sl.cho_solve)
    for lower in (True, False):
        c = sl.cho_factor(SPD3, lower=lower)[0]
        g, u = R.normal(size=(3, 2)), R.normal(size=(3, 3))
        ans = sl.cho_solve((c, lower), M32)
        gc = e.vjp(g, ans, (c, lower), M32)[0][0]
        h = 1e-6
        fd = (sl.cho_solve((c + h * u, lower), M32) - sl.cho_solve((c - h * u, lower), M32)) / (2 * h)
        np.testing.assert_allclose(np.sum(gc * u), np.sum(g * fd), rtol=1e-7)
        dot = e.jvp(ans, (c, lower), M32, c_and_lower_dot=(u, 0.0), b_dot=0.0 * M32)
        np.testing.assert_allclose(dot, fd, rtol=1e-6, atol=1e-9)


def test_expm_of_a_diagonal_by_hand():
    # expm(diag(d)) = diag(exp(d)): d/dd sum(expm(diag(d))) = exp(d)
    d = np.array([0.3, -0.5, 1.1])
    got = adjoint.grad(lambda d: np.sum(sl.expm(np.diag(d))))(d)
    np.testing.assert_allclose(got, np.exp(d), rtol=1e-12)


def test_expm_hvp_against_finite_differences():
    v = R.normal(size=(3, 3))
    got = adjoint.hvp(expm_sum)(E3, v)
    h = 1e-5
    g = adjoint.grad(expm_sum)
    np.testing.assert_allclose(got, (g(E3 + h * v) - g(E3 - h * v)) / (2 * h), rtol=1e-6,
                               atol=1e-8)


def test_a_stack_of_matrices_is_refused_when_the_gradient_runs():
    from adjoint.errors import NonDifferentiableError
    a = np.stack([A3, A3])
    try:
        sl.solve_triangular(a, np.ones((2, 3, 2)), lower=True)
    except ValueError:  # SciPy before 1.16 takes one matrix: there f itself fails
        pytest.skip("this SciPy takes one matrix a, not a stack")
    with pytest.raises(NonDifferentiableError, match="one matrix a"):
        adjoint.grad(lambda a: np.sum(sl.solve_triangular(a, np.ones((2, 3, 2)), lower=True)))(a)
