"""Round 16's wrong derivative rules, end to end through adjoint.grad / jvp / vjp.

Each test holds the adversary's smallest program against a hand formula or central
differences in float64. The classes are also in the systematic nets:
tests/rules/test_registry.py CASES (the inner-product identity on every rule) and
tests/test_numpy_suite.py (the same cases compiled, each input alone too).
"""
from __future__ import annotations

import numpy as np
import pytest

import adjoint


def central(f, x, h=1e-6):
    """The gradient of scalar f at array x by central differences."""
    x = np.asarray(x, dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


# ---------------------------------------------------------------- S1/C2: np.take's mode

def take_clip(x):
    return np.sum(np.take(x, [-1, 1], mode="clip") * np.array([1.0, 2.0]))


def take_wrap(x):
    return np.sum(np.take(x, [0, 4, -4], mode="wrap") * np.array([1.0, 2.0, 3.0]))


def take_clip_axis(X):
    return np.sum(np.take(X, [-1, 0, 7], axis=1, mode="clip") * np.array([1.0, 2.0, 4.0]))


def test_take_sends_the_cotangent_where_mode_reads():
    x = np.array([0.5, -1.0, 2.0])
    # clip: -1 reads x[0]; wrap: 4 reads x[1], -4 reads x[2]
    np.testing.assert_array_equal(adjoint.grad(take_clip)(x), [1.0, 2.0, 0.0])
    np.testing.assert_array_equal(adjoint.grad(take_wrap)(x), [1.0, 2.0, 3.0])
    X = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(adjoint.grad(take_clip_axis)(X), [[3.0, 0.0, 4.0]] * 2)
    _, pullback = adjoint.vjp(take_wrap, x)
    np.testing.assert_array_equal(pullback(1.0), [1.0, 2.0, 3.0])


# ---------------------------------------------------------------- C1: np.average's JVP

def average(a, w):
    return np.average(a, weights=w)


def test_average_jvp_with_constant_weights():
    a, w = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, 0.5])
    u = np.array([0.3, -0.2, 1.0])
    _, t = adjoint.jvp(average, wrt=0)(a, w, u)
    np.testing.assert_allclose(t, w @ u / w.sum(), rtol=1e-14)
    _, t = adjoint.jvp(average, wrt=1)(a, w, u)
    np.testing.assert_allclose(t, (a - np.average(a, weights=w)) @ u / w.sum(), rtol=1e-14)


# ---------------------------------------------------------------- S5: std of constant data

def std(x):
    return np.std(x)


def std_of_full(a):
    return np.std(np.full(6, a))


def batch_norm(x):
    return np.sum((x - x.mean(0)) / (x.std(0) + 1e-3) * np.arange(6.0).reshape(3, 2))


@pytest.mark.parametrize("value", [1.0, 0.1, 0.7, -3.3])
def test_std_of_constant_data_is_zero(value):
    x = np.full(3, value)
    np.testing.assert_array_equal(adjoint.grad(std)(x), np.zeros(3))  # central: 0
    assert adjoint.grad(std_of_full)(value) == 0.0  # identically 0 as a function of a
    _, t = adjoint.jvp(std)(x, np.array([1.0, -2.0, 0.5]))
    assert t == 0.0


def test_batch_norm_with_a_constant_column():
    x = np.stack([np.full(3, 0.1), np.array([0.5, -1.0, 2.0])], 1)
    g = adjoint.grad(batch_norm)(x)
    # the constant column: its std has a kink there (central differences 0), so the
    # gradient is the centring's alone, (w - mean(w)) / 1e-3 for its weights w = 0, 2, 4
    np.testing.assert_allclose(g[:, 0], [-2000.0, 0.0, 2000.0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(g[:, 1], central(batch_norm, x)[:, 1], rtol=1e-6)


# ---------------------------------------------------------------- S3: hermitian=True

WEIGHTS = np.arange(9.0).reshape(3, 3)
A3 = np.array([[2.0, 0.3, -0.5], [0.1, 1.0, 0.4], [0.7, -0.2, -1.5]])  # not symmetric


def svd_values_hermitian(A):
    return np.sum(np.linalg.svd(A, hermitian=True, compute_uv=False) * np.array([1.0, 2.0, 3.0]))


def svd_vectors_hermitian(A):
    u, s, vt = np.linalg.svd(A, hermitian=True)
    return np.sum(u * WEIGHTS) + np.sum(s ** 2) + np.sum(vt[0] * vt[1] * s)


def pinv_hermitian(A):
    return np.sum(np.linalg.pinv(A, hermitian=True) * WEIGHTS)


@pytest.mark.parametrize("f", [svd_values_hermitian, svd_vectors_hermitian, pinv_hermitian])
def test_hermitian_reads_the_lower_triangle(f):
    g = adjoint.grad(f)(A3)
    np.testing.assert_allclose(g, central(f, A3), rtol=1e-6, atol=1e-8)
    assert np.all(np.triu(g, 1) == 0.0)  # NumPy never reads the upper triangle
    u = np.random.default_rng(3).normal(size=(3, 3))
    _, t = adjoint.jvp(f)(A3, u)
    np.testing.assert_allclose(t, np.sum(g * u), rtol=1e-10)


# ---------------------------------------------------------------- S7: pinv's cutoff

def _with_singular_values(s):
    rng = np.random.default_rng(21)
    U, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    V, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    return U[:, :3] @ np.diag(s) @ V.T


def pinv_cut(A):
    return np.sum(np.linalg.pinv(A, rcond=0.1) * np.arange(12.0).reshape(3, 4))


def pinv_cut_rtol(A):
    return np.sum(np.linalg.pinv(A, rtol=0.1) * np.arange(12.0).reshape(3, 4))


def pinv_cut_hermitian(A):
    return np.sum(np.linalg.pinv(A, rcond=0.1, hermitian=True) * WEIGHTS)


@pytest.mark.parametrize("f", [pinv_cut, pinv_cut_rtol])
def test_pinv_whose_cutoff_drops_a_singular_value(f):
    A = _with_singular_values([3.0, 1.0, 0.2])  # 0.2 < 0.1 * 3: dropped
    g = adjoint.grad(f)(A)
    np.testing.assert_allclose(g[0], [0.6359363, 2.9380548, -1.8150177], rtol=1e-6)  # FD
    np.testing.assert_allclose(g, central(f, A), rtol=1e-6, atol=1e-8)
    u = np.random.default_rng(4).normal(size=(4, 3))
    _, t = adjoint.jvp(f)(A, u)
    np.testing.assert_allclose(t, np.sum(g * u), rtol=1e-10)


def test_pinv_hermitian_whose_cutoff_drops_an_eigenvalue():
    q = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]
    A = (q * [3.0, -1.0, 0.2]) @ q.T + np.triu(np.ones((3, 3)), 1)  # upper part: unread
    g = adjoint.grad(pinv_cut_hermitian)(A)
    np.testing.assert_allclose(g, central(pinv_cut_hermitian, A), rtol=1e-6, atol=1e-8)
    assert np.all(np.triu(g, 1) == 0.0)


def test_pinv_whose_cutoff_keeps_every_singular_value():
    A = _with_singular_values([3.0, 1.0, 0.4])  # 0.4 > 0.1 * 3: kept
    np.testing.assert_allclose(adjoint.grad(pinv_cut)(A), central(pinv_cut, A), rtol=1e-6)


# ---------------------------------------------------------------- S6: select masks like where

def select_log(x):
    return np.sum(np.select([x > 0], [np.log(x)], 0.0))


def where_log(x):
    return np.sum(np.where(x > 0, np.log(x), 0.0))


def test_select_masks_the_untaken_choice_like_where():
    """Round 16's S6: np.select's choices reached log's rule as 0, and 0 / x is NaN at
    x = 0; the reverse sweep masks each choice's cotangent where another was taken."""
    x = np.array([-1.0, 0.0, 4.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(adjoint.grad(where_log)(x), [0.0, 0.0, 0.25])
        np.testing.assert_array_equal(adjoint.grad(select_log)(x), [0.0, 0.0, 0.25])


# ---------------------------------------------------------------- S9: det's hvp near singular

def det_of(A):
    return np.linalg.det(A)


def test_det_hvp_at_a_matrix_singular_but_for_rounding():
    """Row 3 = row 1 + row 2, det -2.7e-17: det(a) inv(a)^T is right to first order, but
    its derivative cancels terms of 1e16 (the hvp was O(1) wrong); such a matrix takes
    the cofactor path, exact to second order."""
    A = np.array([[0.3, 0.7, 0.1], [0.2, 0.6, 0.9], [0.5, 1.3, 1.0]])
    V = np.array([[0.3, -0.1, 0.2], [0.5, 0.4, -0.6], [-0.2, 0.1, 0.7]])
    grad, step = adjoint.grad(det_of), 1e-6
    want = (grad(A + step * V) - grad(A - step * V)) / (2 * step)
    np.testing.assert_allclose(adjoint.hvp(det_of)(A, V), want, atol=1e-8)
