"""Rules at their special points, where a convention stands in for a derivative.

A convention (0 at a point where a formula divides by zero) is right only where
the true derivative is that number. Round 10's coverage audit found three that
were not: a matrix function of eigh's or svd's vectors at a repeated eigenvalue
(the identity, where training often starts), sinc's second derivative near 0,
and the second derivative of `np.linalg.norm(w) ** 2` at w = 0. Each must now be right,
or a located error, or a visible NaN; never a plausible number.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import adjoint
from adjoint.errors import NonDifferentiableError
from adjoint.testing import numeric_grad

C = np.random.default_rng(1).normal(size=(3, 3))


def sqrtm_eigh(a):
    w, v = np.linalg.eigh(a)
    return np.sum((v @ np.diag(np.sqrt(w)) @ v.T) * C)


def expm_eigh(a):
    w, v = np.linalg.eigh(a)
    return np.sum(((v * np.exp(w)) @ v.T) * C)


def polar_svd(a):
    u, s, vt = np.linalg.svd(a)
    return np.sum((u @ vt) * C)


def sqrtm_eig(a):
    w, v = np.linalg.eig(a + a.T)
    return np.sum((v @ np.diag(np.sqrt(w)) @ np.linalg.inv(v)) * C)


def eigenvalues_only(a):
    return np.sum(np.linalg.eigh(a)[0] ** 2) + np.sum(np.linalg.svd(a, compute_uv=False) ** 3)


TIED = [np.eye(3), 2.0 * np.eye(3), np.diag([1.0, 1.0, 2.0])]


@pytest.mark.parametrize("f", [sqrtm_eigh, expm_eigh, polar_svd, sqrtm_eig])
@pytest.mark.parametrize("a", TIED, ids=["I", "2I", "diag112"])
def test_a_function_of_the_vectors_at_a_tie_is_refused_where_it_is_written(f, a):
    # the convention (F_ij = 0 at w_i == w_j) left out a part that is not zero there
    if f is sqrtm_eig:
        a = a / 2.0
    with pytest.raises(NonDifferentiableError, match="repeated") as e:
        adjoint.grad(f)(a.copy())
    lines, first = inspect.getsourcelines(f)
    assert e.value.loc.line == first + 1  # the line that factorises


@pytest.mark.parametrize("f", [sqrtm_eigh, expm_eigh, polar_svd, sqrtm_eig])
def test_the_same_functions_off_the_tie_are_right(f):
    a = np.diag([1.0, 1.5, 2.0]) + 0.1 * (C + C.T)
    got = adjoint.grad(f)(a.copy())
    np.testing.assert_allclose(got, numeric_grad(f, (a,)), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("a", TIED, ids=["I", "2I", "diag112"])
def test_a_function_of_the_values_alone_is_right_at_a_tie_and_its_hvp_is_visibly_undefined(a):
    got = adjoint.grad(eigenvalues_only)(a.copy())
    np.testing.assert_allclose(got, numeric_grad(eigenvalues_only, (a,)), rtol=1e-5, atol=1e-6)
    # the second derivative needs the vectors' tangent, which a tie does not have
    hv = adjoint.hvp(eigenvalues_only)(a.copy(), C)
    assert np.isnan(hv).any()


def sinc_sum(x):
    return np.sum(np.sinc(x))


@pytest.mark.parametrize("x", [0.0, 1e-9, 1e-4, 0.009, 0.011, 0.3])
def test_sinc_s_second_derivative_near_zero(x):
    # (cos(pi x) - sinc(x)) / x cancels near 0; the rule takes its series there
    p = np.pi * x
    want = (-np.pi ** 2 / 3 + np.pi ** 4 * x ** 2 / 10) if x < 1e-3 else (
        (-p * p * np.sin(p) - 2 * p * np.cos(p) + 2 * np.sin(p)) / (p ** 3) * np.pi ** 2)
    got = adjoint.hvp(sinc_sum)(np.array([x]), np.array([1.0]))[0]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    d = adjoint.grad(sinc_sum)(np.array([x]))[0]
    first = (np.cos(p) - np.sinc(x)) / x if x > 1e-3 else \
        -np.pi ** 2 * x / 3 + np.pi ** 4 * x ** 3 / 30
    np.testing.assert_allclose(d, first, rtol=1e-9, atol=1e-15)


def weight_decay(w, x):
    return np.sum(np.tanh(w * x)) + 0.5 * np.linalg.norm(w) ** 2 + \
        np.sum(np.linalg.norm(np.outer(w, x), axis=1, ord=None) ** 2)


def test_a_squared_norm_is_smooth_at_zero():
    # norm's gradient at 0 is the convention 0, so the chain rule through norm(w) ** 2
    # gave an hvp of 0 at w = 0 (zero-initialised weights): it is the sum of squares
    w, x, d = np.zeros(3), np.array([1.0, 2.0, 3.0]), np.array([0.3, -0.2, 1.0])
    want = d * (1.0 + 2.0 * np.sum(x * x))  # tanh''(0) = 0
    np.testing.assert_allclose(adjoint.hvp(weight_decay)(w, x, d), want, rtol=1e-12)
    w = np.array([0.3, -0.5, 1.0])
    np.testing.assert_allclose(adjoint.grad(weight_decay)(w, x),
                               numeric_grad(weight_decay, (w, x)), rtol=1e-6)


def squared_spreads(x, y):
    return np.std(x) ** 2 + np.sum(np.std(y, axis=0, ddof=1) ** 2) + \
        np.hypot(x[0], x[1]) ** 2


def test_a_squared_deviation_and_a_squared_hypot_are_smooth_where_they_vanish():
    # round 16's S10: the same chain rule through std's and hypot's convention at 0
    # gave hvp 0 at a constant x; std ** 2 is the variance, hypot ** 2 a sum of squares
    x, y, d, e = np.zeros(3), np.ones((4, 2)), np.array([1.0, -2.0, 0.5]), np.ones((4, 2))
    e[0, 1] = -1.0
    got_x = adjoint.hvp(squared_spreads, wrt=0)(x, y, d)
    want_x = 2.0 * (d - np.mean(d)) / 3 + 2.0 * np.array([d[0], d[1], 0.0])
    np.testing.assert_allclose(got_x, want_x, rtol=1e-12)
    got_y = adjoint.hvp(squared_spreads, wrt=1)(x, y, e)
    np.testing.assert_allclose(got_y, 2.0 * (e - np.mean(e, axis=0)) / 3, rtol=1e-12)
    x, y = np.array([0.3, -0.5, 1.0]), np.arange(8.0).reshape(4, 2) ** 1.5
    for i in (0, 1):
        np.testing.assert_allclose(adjoint.grad(squared_spreads, wrt=i)(x, y),
                                   numeric_grad(squared_spreads, (x, y), i), rtol=1e-6)


def nan_reductions(a):
    # the reductions read `a` itself: an op before them would make the missing entry's
    # cotangent 0 * NaN there (NaN, as in JAX)
    return 2.0 * np.nansum(a) + np.sum(np.nanmean(a, axis=1) ** 2)


def test_nansum_and_nanmean_pass_nothing_to_a_missing_entry():
    a = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.5]])
    b = a.copy()
    b[1, 2] = np.nan  # a missing entry: left out of the sum and of the mean's count
    got = adjoint.grad(nan_reductions)(b)
    rows = np.array([np.mean(a[0]), np.mean(a[1, :2])])
    want = 2.0 + 2.0 * rows[:, None] / np.array([[3.0], [2.0]]) + 0.0 * a
    want[1, 2] = 0.0
    np.testing.assert_allclose(got, want, rtol=1e-12)
    value, dot = adjoint.jvp(nan_reductions)(b, np.ones_like(b))
    assert value == pytest.approx(nan_reductions(b), rel=1e-14)
    assert dot == pytest.approx(np.sum(want), rel=1e-12)
