"""The NumPy functions of issue 15's coverage list, through compiled programs.

tests/rules/test_registry.py checks each rule's templates on their own (central
differences, the JVP/VJP pairing, every axis/keepdims variant); here each
function is called in a small program that the compiler differentiates, the
gradient is compared with a formula derived by hand where one is short, and
with central differences (check_program: grad, value_and_grad, vjp, jvp), and a
few go through hvp (the rules' own derivatives).
"""
from __future__ import annotations

import numpy as np
import pytest

import adjoint
from adjoint.errors import AdjointError
from adjoint.testing import check_program

R = np.random.default_rng(15)
X5 = R.normal(size=5)
X6 = R.normal(size=6)
X34 = R.normal(size=(3, 4))


# ---------------------------------------------------------------- statistics

def median_of(x):
    return np.median(x)


def median_rows(x):
    return np.sum(np.median(x, axis=1) ** 2)


def quantile_program(x, q):
    return np.sum(np.quantile(x, q, axis=0) ** 2 * np.arange(4.0)) + np.percentile(x, 30.0) ** 2


def average_program(x, w):
    return np.sum(np.average(x, axis=1, weights=w) ** 2) + np.average(x)


def cov_program(x, w):
    return np.sum(np.cov(x) ** 2) + np.sum(np.cov(x, aweights=w, ddof=0) * np.eye(3))


def corrcoef_program(x, y):
    return np.sum(np.corrcoef(x) ** 3) + np.corrcoef(x[0], y)[0, 1]


def test_median_of_an_odd_vector_is_one_hot():
    g = adjoint.grad(median_of)(X5)
    want = np.zeros(5)
    want[np.argsort(X5)[2]] = 1.0
    np.testing.assert_array_equal(g, want)
    # even length: the mean of the two middle entries
    g = adjoint.grad(median_of)(X6)
    want = np.zeros(6)
    want[np.argsort(X6)[2:4]] = 0.5
    np.testing.assert_allclose(g, want, rtol=1e-15)


def test_median_ties_share_the_gradient_evenly():
    np.testing.assert_allclose(adjoint.grad(median_of)(np.array([1.0, 2.0, 2.0])),
                               [0.0, 0.5, 0.5])
    np.testing.assert_allclose(adjoint.grad(median_of)(np.array([3.0, 3.0, 3.0, 3.0])),
                               [0.25] * 4)


def test_quantile_in_q_is_the_slope_of_the_sorted_entries():
    s = np.sort(X5)
    # q (n - 1) = 1.2: between s[1] and s[2]
    got = adjoint.grad(lambda_quantile, wrt=1)(X5, 0.3)
    assert abs(got - 4 * (s[2] - s[1])) < 1e-12
    # q (n - 1) = 2, a kink: the mean of the slopes on either side
    got = adjoint.grad(lambda_quantile, wrt=1)(X5, 0.5)
    assert abs(got - 4 * 0.5 * (s[3] - s[1])) < 1e-12


def lambda_quantile(x, q):
    return np.quantile(x, q)


def test_average_and_cov_hand_formulas():
    x, w = X34, R.uniform(0.5, 2.0, size=4)
    gx, gw = adjoint.grad(weighted_mean, wrt=(0, 1))(x[0], w)
    np.testing.assert_allclose(gx, w / w.sum(), rtol=1e-12)
    np.testing.assert_allclose(gw, (x[0] - np.average(x[0], weights=w)) / w.sum(), rtol=1e-12)
    # d sum(cov(x)) / dx = 2 * (sum over variables of the centred rows) / (n - 1)
    xc = x - x.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(adjoint.grad(cov_sum)(x),
                               2.0 * np.broadcast_to(xc.sum(axis=0), x.shape) / 3.0,
                               rtol=1e-12, atol=1e-12)


def weighted_mean(x, w):
    return np.average(x, weights=w)


def cov_sum(x):
    return np.sum(np.cov(x))


@pytest.mark.parametrize("f, args", [
    (median_of, (X6,)), (median_rows, (X34,)), (quantile_program, (X34, np.array([0.2, 0.7]))),
    (average_program, (X34, R.uniform(0.5, 2.0, size=4))),
    (cov_program, (R.normal(size=(3, 6)), R.uniform(0.5, 2.0, size=6))),
    (corrcoef_program, (R.normal(size=(3, 6)), R.normal(size=6))),
])
def test_statistics_programs(f, args):
    check_program(f, *args)


# ---------------------------------------------------------------- signals

GRID = np.array([0, 1, 2, 4])  # int knots: never active


def conv_program(a, v):
    return np.sum(np.convolve(a, v, "same") ** 2) + np.sum(np.correlate(a, v) ** 2)


def conv_sum(a, v):
    return np.sum(np.convolve(a, v))


def interp_program(x, xp, fp):
    return np.sum(np.interp(x, xp, fp, left=fp[1]) ** 2) + np.sum(np.interp(x, GRID, fp * fp))


def interp_at(x, fp):
    return np.interp(x, GRID, fp)


def poly_program(p, x):
    return np.sum(np.polyval(p, x) ** 2) + np.polyval([1.0, p[0], 2.0], x[0])


def test_signal_hand_formulas():
    a, v = X5, X34[0]
    ga, gv = adjoint.grad(conv_sum, wrt=(0, 1))(a, v)  # sum(a * v) = sum(a) sum(v)
    np.testing.assert_allclose(ga, np.full(5, v.sum()), rtol=1e-12)
    np.testing.assert_allclose(gv, np.full(4, a.sum()), rtol=1e-12)
    fp = np.array([1.0, 3.0, 2.0, 6.0])  # slopes 2, -1, 2
    gx, gfp = adjoint.grad(interp_at, wrt=(0, 1))(1.5, fp)
    assert gx == -1.0
    np.testing.assert_allclose(gfp, [0.0, 0.5, 0.5, 0.0], rtol=1e-15)
    gx, gfp = adjoint.grad(interp_at, wrt=(0, 1))(1.0, fp)  # a knot: the mean slope
    assert gx == 0.5
    np.testing.assert_array_equal(gfp, [0.0, 1.0, 0.0, 0.0])
    assert adjoint.grad(interp_at)(0.0, fp) == 1.0  # the first knot: half its slope
    assert adjoint.grad(interp_at)(5.0, fp) == 0.0  # past the end: flat
    p, x = np.array([2.0, -1.0, 3.0]), np.array([0.5, 2.0])
    gp, gx = adjoint.grad(poly_sum, wrt=(0, 1))(p, x)
    np.testing.assert_allclose(gp, [x @ x, x.sum(), 2.0], rtol=1e-15)
    np.testing.assert_allclose(gx, 4.0 * x - 1.0, rtol=1e-15)


def poly_sum(p, x):
    return np.sum(np.polyval(p, x))


@pytest.mark.parametrize("f, args", [
    (conv_program, (X5, X34[0, :3])), (conv_program, (X34[0, :2], X6)),
    (interp_program, (np.array([-0.5, 0.3, 1.7, 2.5, 4.5]), np.array([0.0, 1.0, 2.5, 3.0]),
                      X34[1])),
    (poly_program, (X34[2], X5)),
])
def test_signal_programs(f, args):
    check_program(f, *args)


def interp_period(x, fp):
    return np.sum(np.interp(x, GRID, fp, period=5.0))


def grid_program(x, y):
    gx, gy = np.meshgrid(x, y)
    hx, hy, hz = np.meshgrid(x, y, x[:2], indexing="ij", sparse=True)
    return np.sum(gx * gy ** 2) + np.sum(np.sin(hx * hy + hz))


def grid_sum(x, y):
    gx, gy = np.meshgrid(x, y)
    return np.sum(gx) + 2.0 * np.sum(gy)


def test_meshgrid_sums_each_grid_back_along_its_input():
    gx, gy = adjoint.grad(grid_sum, wrt=(0, 1))(X5, X34[0])
    np.testing.assert_array_equal(gx, np.full(5, 4.0))  # each x repeats down 4 rows
    np.testing.assert_array_equal(gy, np.full(4, 10.0))
    check_program(grid_program, X5, X34[0])


# ---------------------------------------------------------------- linear algebra

A3 = np.array([[2.0, 0.4, 0.1], [0.3, -1.0, 0.2], [0.05, 0.5, 0.5]])  # a real spectrum


def power_trace(a):
    return np.trace(np.linalg.matrix_power(a, 2))


def power_program(a):
    return np.sum(np.linalg.matrix_power(a, 3) ** 2) + np.sum(np.linalg.matrix_power(a, -2))


def multi_dot_program(a, b, c):
    return np.sum(np.linalg.multi_dot([a, b, c]) ** 2) + np.linalg.multi_dot([c[:, 0], a.T, a[0]])


def lstsq_solution(a, b):
    return np.sum(np.linalg.lstsq(a, b)[0])


def lstsq_program(a, b):
    x, res, rank, s = np.linalg.lstsq(a, b)
    return np.sum(x ** 2) + np.sum(res) + np.sum(s ** 3)


def eigvals_sum(a):
    return np.sum(np.linalg.eigvals(a))


def eigvals_program(a):
    return np.sum(np.linalg.eigvals(a) ** 3) + np.prod(np.linalg.eigvals(a * a))


def test_linalg_hand_formulas():
    np.testing.assert_allclose(adjoint.grad(power_trace)(A3), 2.0 * A3.T, rtol=1e-12)
    a, b = R.normal(size=(5, 3)), R.normal(size=5)
    ga, gb = adjoint.grad(lstsq_solution, wrt=(0, 1))(a, b)
    np.testing.assert_allclose(gb, np.linalg.pinv(a).T @ np.ones(3), rtol=1e-10)
    np.testing.assert_allclose(adjoint.grad(eigvals_sum)(A3), np.eye(3), atol=1e-12)  # trace


@pytest.mark.parametrize("f, args", [
    (power_program, (A3,)), (multi_dot_program, (X34[:, :3], A3, X34[:, 1:])),
    (lstsq_program, (R.normal(size=(5, 3)), R.normal(size=(5, 2)))),
    (lstsq_program, (R.normal(size=(2, 4)), R.normal(size=2))),
    (eigvals_program, (A3,)),
])
def test_linalg_programs(f, args):
    check_program(f, *args)


def norm_in_p(x, p):
    return np.linalg.norm(x, p)


def test_a_vector_norm_is_differentiated_in_its_order():
    # it was a silent 0: the rule had no cotangent for ord
    x = np.array([1.0, -2.0, 3.0])
    n = np.linalg.norm(x, 3.0)
    r = np.abs(x) / n
    want = n / 3.0 * np.sum(r ** 3 * np.log(r))
    assert abs(adjoint.grad(norm_in_p, wrt=1)(x, 3.0) - want) < 1e-12
    assert abs(adjoint.jvp(norm_in_p, wrt=1)(x, 3.0, 1.0)[1] - want) < 1e-12
    check_program(norm_in_p, x, 1.5)


# ---------------------------------------------------------------- refusals

def quantile_weighted(x, w):
    return np.quantile(x, 0.5, method="inverted_cdf", weights=w)


def average_returned(x):
    return np.average(x, returned=True)[0]


@pytest.mark.parametrize("f, args, words", [
    (quantile_weighted, (X5, np.ones(5)), "weights="),
    (average_returned, (X5,), "returned=True"),
    (interp_period, (X5, X34[0]), "period="),
    (eigvals_sum, (np.array([[0.1, -1.0], [1.0, 0.1]]),), "complex"),
    (lstsq_solution, (np.ones((4, 2)), np.ones(4)), "rank-deficient"),
])
def test_refusals_name_the_function_and_line(f, args, words):
    with pytest.raises(AdjointError) as e:
        adjoint.grad(f)(*args)
    assert words in str(e.value)
    assert e.value.loc is not None and e.value.loc.func == f.__name__
