"""NumPy functions that were refused as 'no derivative rule' (issue 15): np.delete,
np.insert, np.ldexp, np.divmod, np.linalg.cond, np.linalg.tensorinv,
np.linalg.tensorsolve, np.polyfit and np.i0, through compiled programs.

tests/rules/test_registry.py checks the templates on their own (CASES); here each is
called as a user writes it, differentiated by the compiler, checked with
check_program (central differences, forward against reverse, the forward value) and
against a hand formula.
"""
from __future__ import annotations

import numpy as np
import pytest

import adjoint
from adjoint.errors import NonDifferentiableError
from adjoint.testing import check_program

R = np.random.default_rng(2215)
X6 = R.normal(size=6)
X34 = R.normal(size=(3, 4))
P6 = R.uniform(0.5, 2.0, 6)
A3 = np.eye(3) * 2.0 + 0.4 * R.uniform(-1, 1, (3, 3))
A6 = np.eye(6) * 2.0 + 0.3 * R.uniform(-1, 1, (6, 6))
T236 = np.reshape(A6, (2, 3, 6))
XS = np.linspace(-1.0, 2.0, 7)


def deleted(x):
    return np.sum(np.delete(x, [0, 2], axis=1) ** 2) + np.sum(np.delete(x, 5) ** 3)


def inserted(x, v):
    return np.sum(np.sin(np.insert(x, [1, 1, 3], v))) + np.sum(np.insert(x, 2, 2.0 * v[0]) ** 2)


def ldexped(x):
    return np.sum(np.ldexp(x, np.array([1, -2, 3, 0, 2, 1])) ** 2)


def divmodded(x, y):
    q, r = np.divmod(x, y)
    return np.sum(r * r) + np.sum(np.divmod(x, 0.7)[1])


def conditioned(a):
    return np.linalg.cond(a) + np.linalg.cond(a @ a.T, -2)


def tensor_inverse(t):
    return np.sum(np.linalg.tensorinv(t, ind=2) ** 2)


def tensor_solved(t, b):
    return np.sum(np.sin(np.linalg.tensorsolve(t, b)))


def fitted(x, y):
    p = np.polyfit(x, y, 2)
    return np.sum(p * p) + p[0]


@pytest.mark.parametrize("f, args", [
    (deleted, (X34,)), (inserted, (X6, X6[:3])), (ldexped, (X6,)), (divmodded, (X6, P6)),
    (conditioned, (A3,)), (conditioned, (X34,)), (tensor_inverse, (T236,)),
    (tensor_solved, (T236, X6.reshape(2, 3))), (fitted, (XS, np.cos(XS)))])
def test_against_finite_differences(f, args):
    check_program(f, *args)


def test_by_hand():
    x = X6
    # sum(delete(x, 1)^2): 2 x, 0 at the deleted entry
    want = 2.0 * x
    want[1] = 0.0
    np.testing.assert_allclose(adjoint.grad(lambda x: np.sum(np.delete(x, 1) ** 2))(x), want)
    # sum(insert(x, [1, 3], v) * w): w's entries at the inserted positions, 1, 4
    w = np.arange(8.0)
    got = adjoint.grad(lambda v: np.sum(np.insert(x, [1, 3], v) * w))(np.array([0.5, 0.7]))
    np.testing.assert_allclose(got, [1.0, 4.0])
    # ldexp(x, e) = x 2^e
    e = np.array([1, -2, 3, 0, 2, 1])
    np.testing.assert_allclose(adjoint.grad(lambda x: np.sum(np.ldexp(x, e)))(x), 2.0 ** e)
    # the remainder x - y floor(x / y): -floor(x / y) in y
    np.testing.assert_allclose(adjoint.grad(lambda y: np.sum(np.divmod(x, y)[1]))(P6),
                               -np.floor(x / P6))


def test_cond_of_a_diagonal_by_hand():
    # cond(diag(d)) = max |d| / min |d|: d/dd = (1 / d_min) at the max, -(max / min^2) at the min
    d = np.array([3.0, 0.5, 1.5])
    got = adjoint.grad(lambda d: np.linalg.cond(np.diag(d)))(d)
    np.testing.assert_allclose(got, [1.0 / 0.5, -3.0 / 0.25, 0.0], atol=1e-12)


def test_polyfit_line_by_hand():
    # the slope of a line fit is sum((x - mx) y) / sum((x - mx)^2): d/dy_i = (x_i - mx) / Sxx
    y = np.cos(XS)
    got = adjoint.grad(lambda y: np.polyfit(XS, y, 1)[0])(y)
    c = XS - XS.mean()
    np.testing.assert_allclose(got, c / np.sum(c * c), rtol=1e-10, atol=1e-15)


def test_tensorsolve_is_solve_reshaped():
    b = X6.reshape(2, 3)
    ga, gb = adjoint.grad(lambda a, b: np.sum(np.linalg.tensorsolve(a, b)), wrt=(0, 1))(T236, b)
    a2 = A6
    y = np.linalg.solve(a2.T, np.ones(6))
    np.testing.assert_allclose(gb, y.reshape(2, 3), rtol=1e-12)
    np.testing.assert_allclose(ga, -np.outer(y, np.linalg.solve(a2, b.ravel())).reshape(2, 3, 6),
                               rtol=1e-12)


@pytest.mark.filterwarnings("ignore:Polyfit may be poorly conditioned")
@pytest.mark.parametrize("f, args, match", [
    (lambda a: np.linalg.cond(a, "fro"), (A3,), "2-norm"),
    (lambda a: np.linalg.cond(a), (np.eye(3),), "repeated"),
    (lambda y: np.sum(np.polyfit(XS, y, 2, w=np.ones(7))), (XS,), "w="),
    (lambda y: np.sum(np.polyfit(np.ones(4), y, 2)), (XS[:4],), "distinct"),
])
def test_refusals_when_the_gradient_runs(f, args, match):
    with pytest.raises(NonDifferentiableError, match=match):
        adjoint.grad(f)(*args)


def test_i0_by_hand():
    # I0' = I1 (the rule is registered with scipy.special's, which computes I1)
    special = pytest.importorskip("scipy.special")
    check_program(lambda x: np.sum(np.i0(x) ** 2), X6)
    np.testing.assert_allclose(adjoint.grad(lambda x: np.sum(np.i0(x)))(X6), special.i1(X6),
                               rtol=1e-12)


def masked_reductions(x):
    keep = x > 0.0
    return np.prod(x, where=keep, initial=2.0) + np.sum(np.mean(x, axis=1, where=keep) ** 2) \
        + np.sum(np.prod(x, axis=0, where=keep))


def vecdot_axes(a, b):
    return np.sum(np.vecdot(a, b, axes=[(0,), (1,), ()]) ** 2) + np.sum(np.vecdot(a, a, axis=0))


@pytest.mark.parametrize("f, args", [(masked_reductions, (X34 + 0.3,)),
                                     (vecdot_axes, (X34, X34.T.copy()))])
def test_keywords_against_finite_differences(f, args):
    if f is vecdot_axes and not hasattr(np, "vecdot"):
        pytest.skip("np.vecdot is NumPy 2's")
    check_program(f, *args)


def test_keywords_by_hand():
    x = np.array([0.3, -1.2, 2.0, 0.7])
    # prod(x, where=x > 0, initial=c) = c * 0.3 * 2.0 * 0.7: d/dx_i = c * the other kept ones
    got = adjoint.grad(lambda x, c: np.prod(x, where=x > 0.0, initial=c), wrt=(0, 1))(x, 2.0)
    np.testing.assert_allclose(got[0], [2.8, 0.0, 0.42, 1.2])
    np.testing.assert_allclose(got[1], 0.42)
    # mean(x, where=x > 0): 1/3 to each kept entry
    got = adjoint.grad(lambda x: np.mean(x, where=x > 0.0))(x)
    np.testing.assert_allclose(got, [1 / 3, 0.0, 1 / 3, 1 / 3])
