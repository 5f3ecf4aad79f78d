"""The NumPy and math functions that autograd covers, through compiled programs.

tests/rules/test_registry.py checks each rule's templates on their own; here each
function is called in a small program that the compiler differentiates, and the
gradient is compared with a formula derived by hand where one is short, and with
central differences (check_program: grad, value_and_grad, vjp, jvp) everywhere.
A few programs also go through hvp (the rules' own derivatives). The refusals
are checked too: each raises an AdjointError that names the function.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import adjoint
from adjoint.errors import AdjointError, NonDifferentiableError
from adjoint.rules.mathfns import polygamma
from adjoint.testing import check_program

EULER = 0.5772156649015329
R = np.random.default_rng(11)
X34 = R.normal(size=(3, 4))
X5 = R.normal(size=5)
W5 = R.normal(size=5)
SPD = X34[:, :3] @ X34[:, :3].T + 3.0 * np.eye(3)
EIG = np.array([[2.0, 0.4, 0.1], [0.3, -1.0, 0.2], [0.05, 0.5, 0.5]])  # no zero: see eig_cubed


# ---------------------------------------------------------------- programs

def lgamma_at(x):
    return math.lgamma(x) + math.gamma(x) + math.erfc(x)


def sort_weighted(x, w):
    return np.sum(w * np.sort(x))


def partition_weighted(x, w):
    return np.sum(w * np.partition(x, 2))


def sort_rows(x):
    return np.sum(np.sort(x, axis=0) ** 2 * np.arange(4.0))


def einsum_matmul(a, b, c):
    return np.sum(np.einsum("ij,jk->ik", a, b) * c)


def einsum_ellipsis(a, b):
    return np.sum(np.einsum("...ij,...j->...i", a, b) ** 2)


def einsum_chain(a, b):
    return np.sum(np.einsum("ij,jk,kl,lm->im", a, b, a, b * b) ** 2)


def einsum_trace(a):
    return np.einsum("ii", a) * np.einsum("ij,ij", a, a)


def tensordot_pair(a, b):
    return np.sum(np.tensordot(a, b, axes=([1, 0], [0, 2])) ** 2)


def kron_sum(a, b):
    return np.sum(np.kron(a, b))


def cross_dot(a, b, c):
    return np.dot(c, np.cross(a, b))


def diag_program(x):
    m = np.diag(x[0]) + np.outer(x[1], x[2])
    return np.sum(np.diagonal(m, 1) ** 2) + np.trace(m) * np.sum(np.diag(m, -1))


def rot_pad(x):
    y = np.pad(np.rot90(x), ((1, 0), (2, 1)))
    return np.sum(y * np.arange(y.size).reshape(y.shape)) + np.sum(np.pad(x, 1, "reflect") ** 2)


def splits(x):
    a, b = np.split(x, 2, axis=1)
    c, d, e = np.array_split(x[0], 3)
    return np.sum(a * b) + np.sum(c) * np.sum(e) - np.sum(d ** 2)


def hv_splits(x):
    top, bottom = np.vsplit(x, [1])
    left, right = np.hsplit(x, 2)
    return np.sum(top) * np.sum(bottom ** 2) + np.sum(left * right)


def diff_program(x, w):
    return np.sum(w[:4] * np.diff(x)) + np.sum(np.diff(x, 2) ** 2)


def gradient_program(x, h):
    return np.sum(np.gradient(x, h) ** 2) + np.sum(np.gradient(x * x, edge_order=2))


def select_program(x):
    return np.sum(np.select([x > 0.5, x < -0.5], [x ** 2, np.sin(x)], 0.25 * x))


def nan_to_num_program(x, nan):
    return np.sum(np.nan_to_num(x, True, nan, 1.0, -1.0) ** 2)


def append_program(x, y):
    return np.sum(np.append(x, y) ** 2 * np.arange(x.size + y.size))


def cholesky_logdet(a):
    return 2.0 * np.sum(np.log(np.diagonal(np.linalg.cholesky(a))))


def pinv_program(a):
    return np.sum(np.linalg.pinv(a) ** 2)


def eig_sum(a):
    w, v = np.linalg.eig(a)
    return np.sum(w)


def eig_program(a):
    w, v = np.linalg.eig(a)
    return np.sum(w ** 2) + np.sum(v[:, 0] * np.arange(3.0))


# ---------------------------------------------------------------- hand-derived values

def test_polygamma_at_known_values():
    assert abs(polygamma(0, 1.0) + EULER) < 1e-14
    assert abs(polygamma(1, 1.0) - math.pi ** 2 / 6) < 1e-14
    assert abs(polygamma(2, 1.0) + 2 * 1.2020569031595942) < 1e-13  # -2 zeta(3)
    assert abs(polygamma(0, 0.5) - (-EULER - 2 * math.log(2.0))) < 1e-14
    x = -2.3  # the reflection formula holds for negative x too
    assert abs(polygamma(0, 1 - x) - polygamma(0, x) - math.pi / math.tan(math.pi * x)) < 1e-12


def test_gamma_family_formulas():
    # d/dx [lgamma + gamma + erfc] at 1: psi(1) + gamma(1) psi(1) - 2 / sqrt(pi) e^-1
    want = -EULER - EULER - 2.0 / math.sqrt(math.pi) * math.exp(-1.0)
    got = adjoint.grad(lgamma_at)(1.0)
    assert type(got) is float and abs(got - want) < 1e-12
    for x in (0.3, 2.5, -1.5, 7.0):
        check_program(lgamma_at, x)
    # second order: d2/dx2 lgamma(x) = trigamma
    assert abs(adjoint.hvp(lgamma_only)(2.0, 1.0) - polygamma(1, 2.0)) < 1e-10


def lgamma_only(x):
    return math.lgamma(x)


def test_sort_and_partition_route_through_the_permutation():
    g = adjoint.grad(sort_weighted)(X5, W5)
    want = np.empty(5)
    want[np.argsort(X5)] = W5  # entry i of x lands at its rank
    np.testing.assert_allclose(g, want, rtol=1e-12)
    check_program(sort_weighted, X5, W5)
    check_program(partition_weighted, X5, W5)
    check_program(sort_rows, X34)
    # sorting a column keeps its sum of squares: f = sum_ij j x_ij^2, H v = 2 j v
    v = R.normal(size=(3, 4))
    np.testing.assert_allclose(adjoint.hvp(sort_rows)(X34, v), 2.0 * v * np.arange(4.0),
                               rtol=1e-10)


def test_einsum_and_tensordot():
    a, b, c = X34[:, :3], X34[:3, :], R.normal(size=(3, 4))
    ga, gb, gc = adjoint.grad(einsum_matmul, wrt=(0, 1, 2))(a, b, c)
    np.testing.assert_allclose(ga, c @ b.T, rtol=1e-12)
    np.testing.assert_allclose(gb, a.T @ c, rtol=1e-12)
    np.testing.assert_allclose(gc, a @ b, rtol=1e-12)
    check_program(einsum_matmul, a, b, c)
    check_program(einsum_ellipsis, R.normal(size=(2, 3, 4)), R.normal(size=(4,)))
    m = R.normal(size=(3, 3))
    np.testing.assert_allclose(adjoint.grad(einsum_trace)(m),
                               np.eye(3) * np.sum(m * m) + 2 * np.trace(m) * m, rtol=1e-12)
    check_program(einsum_trace, m)
    # f = tr(m) <m, m>: H v = I 2 <m, v> + 2 tr(v) m + 2 tr(m) v
    v = R.normal(size=(3, 3))
    np.testing.assert_allclose(adjoint.hvp(einsum_trace)(m, v), np.eye(3) * 2 * np.sum(m * v)
                               + 2 * np.trace(v) * m + 2 * np.trace(m) * v, rtol=1e-10)
    check_program(einsum_chain, R.normal(size=(2, 3)), R.normal(size=(3, 2)))
    check_program(tensordot_pair, R.normal(size=(3, 2)), R.normal(size=(2, 4, 3)))


def test_kron_and_cross():
    a, b = R.normal(size=(2, 2)), R.normal(size=(3,))
    ga, gb = adjoint.grad(kron_sum, wrt=(0, 1))(a, b)
    np.testing.assert_allclose(ga, np.full((2, 2), np.sum(b)), rtol=1e-12)
    np.testing.assert_allclose(gb, np.full(3, np.sum(a)), rtol=1e-12)
    check_program(kron_sum, a, R.normal(size=(2, 3)))
    u, v, w = R.normal(size=(3, 3))
    gu, gv = adjoint.grad(cross_dot, wrt=(0, 1))(u, v, w)
    np.testing.assert_allclose(gu, np.cross(v, w), rtol=1e-12)  # w . (u x v) = u . (v x w)
    np.testing.assert_allclose(gv, np.cross(w, u), rtol=1e-12)
    check_program(cross_dot, u, v, w)


def test_layout_functions():
    check_program(diag_program, R.normal(size=(3, 3)))
    check_program(rot_pad, X34)
    check_program(splits, R.normal(size=(3, 4)))
    check_program(hv_splits, R.normal(size=(3, 4)))
    check_program(append_program, X5, R.normal(size=(2, 2)))
    x, w = R.normal(size=5), R.normal(size=5)
    g = adjoint.grad(diff_program)(x, w)
    want = np.concatenate(([0.0], w[:4])) - np.concatenate((w[:4], [0.0]))  # D^T w
    d2 = np.diff(x, 2)
    want += 2 * (np.concatenate((d2, [0, 0])) - 2 * np.concatenate(([0], d2, [0]))
                 + np.concatenate(([0, 0], d2)))
    np.testing.assert_allclose(g, want, rtol=1e-12)
    check_program(diff_program, x, w)
    check_program(gradient_program, X5, 0.7)
    check_program(select_program, np.array([0.9, -0.1, -0.8, 0.2, 0.6]))


def test_nan_to_num_passes_the_finite_entries_only():
    x = np.array([0.5, np.inf, -2.0, np.nan, -np.inf])
    g, gn = adjoint.grad(nan_to_num_program, wrt=(0, 1))(x, 3.0)
    np.testing.assert_array_equal(g, [2 * 0.5, 0.0, 2 * -2.0, 0.0, 0.0])
    assert gn == 2 * 3.0  # the one NaN became `nan`
    check_program(nan_to_num_program, np.array([0.5, -1.5, 2.0]), 3.0)


def test_linalg_decompositions():
    g = adjoint.grad(cholesky_logdet)(SPD)
    inv = np.linalg.inv(SPD)  # d logdet = inv(A), read from the lower triangle
    np.testing.assert_allclose(g, np.tril(2 * inv) - np.diag(np.diag(inv)), rtol=1e-10)
    check_program(cholesky_logdet, SPD)
    check_program(pinv_program, X34[:, :3] + np.eye(3, 3))
    check_program(pinv_program, X34.T)
    np.testing.assert_allclose(adjoint.grad(eig_sum)(EIG), np.eye(3), atol=1e-12)  # trace
    check_program(eig_program, EIG)


def cholesky_cubed(a):
    return np.sum(np.linalg.cholesky(a) ** 3)


def eig_cubed(a):
    # (an eigenvector's sign is LAPACK's choice: with an exact 0 below the diagonal,
    # which balancing isolates, it flips as that entry crosses 0 and v jumps there)
    w, v = np.linalg.eig(a)
    return np.sum(w ** 3) + np.sum(v ** 3)


def pad_and_gradient(x):
    return np.sum(np.pad(x, 2, "reflect") ** 3) + np.sum(np.gradient(x * x, 0.5) ** 2)


def stats_cubed(x):
    return np.sum(np.cov(x) ** 3) + np.sum(np.corrcoef(x) ** 3) + np.median(x) ** 3


def signals_cubed(x):
    return np.sum(np.convolve(x[0], x[1], "same") ** 3) + np.sum(np.polyval(x[2], x[0]) ** 3) \
        + np.sum(np.interp(x[1], np.array([-1.0, 0.0, 2.0]), x[2, :3] ** 2, x[0, 0]) ** 3)


def linalg_cubed(a):
    return np.sum(np.linalg.matrix_power(a, 3) ** 3) + np.sum(np.linalg.eigvals(a) ** 3) \
        + np.sum(np.linalg.lstsq(a[:, :2], a[:, 2])[0] ** 3) \
        + np.sum(np.linalg.multi_dot([a, a.T, a]) ** 2)


def products_cubed(a):
    return np.sum(np.kron(a, a * a) ** 2) + np.sum(np.tensordot(a, a, 1) ** 3)


@pytest.mark.parametrize("f, x", [
    (cholesky_cubed, SPD), (pinv_program, X34[:, :3] + 2 * np.eye(3)), (eig_cubed, EIG),
    (pad_and_gradient, X5), (products_cubed, EIG), (select_program, X5),
    (stats_cubed, X34[:, :3]), (signals_cubed, X34),
    (linalg_cubed, EIG),
])
def test_second_order_through_the_new_rules(f, x):
    """hvp runs each rule's own templates' rules: against differences of the gradient."""
    v = np.random.default_rng(3).normal(size=np.shape(x))
    grad = adjoint.grad(f)
    eps = 1e-5
    want = (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(adjoint.hvp(f)(x, v), want, rtol=1e-6,
                               atol=1e-6 * np.max(np.abs(want)))


# ---------------------------------------------------------------- the rules that were there

def scans_3d(x):
    return np.sum(np.cumsum(x, axis=-2) * np.cumprod(x, axis=-1)) + np.sum(np.cumsum(x) ** 2)


def moves_3d(x):
    y = np.rollaxis(np.flip(np.roll(x, (1, -1), (0, -1)), axis=(-1, 0)), 2, 1)
    y = np.rollaxis(y, 1, 3)
    z = np.repeat(np.tile(x, (2, 1, 1)), [1, 0, 2], axis=1)
    return np.sum(y * x) + np.sum(z ** 2 * np.arange(z.shape[-1]))


def triangles_3d(x):
    return np.sum(np.tril(x, -1) ** 2) + np.sum(np.triu(x, 1) * x[::-1])


def index_grids(x):
    return np.sum(np.r_[x[0], 2.0 * x[1], 1.5] ** 2) + np.sum(np.c_[x[0], x[1] * x[0]] ** 3)


def products_nd(a, b):
    return np.sum(np.dot(a, b) ** 2) + np.sum(np.inner(a, a) ** 2) * np.sum(np.inner(b[0].T, a))


@pytest.mark.parametrize("f, args", [
    (scans_3d, (R.uniform(0.5, 1.5, size=(2, 3, 4)),)),
    (moves_3d, (R.normal(size=(2, 3, 4)),)),
    (triangles_3d, (R.normal(size=(2, 3, 3)),)),
    (index_grids, (R.normal(size=(2, 3)),)),
    (products_nd, (R.normal(size=(2, 3, 4)), R.normal(size=(3, 4, 2)))),
])
def test_the_rules_autograd_also_has_on_axes_and_3d_inputs(f, args):
    check_program(f, *args)


# ---------------------------------------------------------------- refusals

def pad_mean(x):
    return np.sum(np.pad(x, 1, mode="mean") ** 2)


def eig_complex(x):
    w, v = np.linalg.eig(x)
    return np.sum(np.real(w))


def einsum_five(x):
    return np.sum(np.einsum("ij,jk,kl,lm,mn->in", x, x, x, x, x))


def einsum_interleaved(x):
    return np.sum(np.einsum(x, [0, 1], [1]))


def gradient_coordinates(x):
    return np.sum(np.gradient(x, np.array([0.0, 0.5, 2.0, 3.0])) ** 2)


def cross_2d(a, b):
    return np.sum(np.cross(a, b))


@pytest.mark.parametrize("f, x, words", [
    (pad_mean, X5, "mode mean"),
    (eig_complex, np.array([[0.1, -1.0], [1.0, 0.1]]), "complex eigenvalues"),
    (einsum_five, np.eye(2), "np.einsum"),
    (gradient_coordinates, R.normal(size=4), "coordinate arrays"),
    (einsum_interleaved, np.eye(2), "axes-list form"),
])
def test_refusals_name_the_function(f, x, words):
    with pytest.raises(AdjointError) as e:
        adjoint.grad(f)(x)
    assert words in str(e.value)


def test_einsum_with_five_operands_is_refused_at_its_line():
    with pytest.raises(NonDifferentiableError) as e:
        adjoint.grad(einsum_five)(np.eye(2))
    assert e.value.loc is not None and e.value.loc.func == "einsum_five"


# ---------------------------------------------------------------- keyword operands

def clip_low(x, lo):
    return np.sum(np.clip(x, a_min=lo, a_max=1.0))


def pad_value(x, c):
    return np.sum(np.pad(x, 1, constant_values=c))


def nan_value(x, c):
    return np.sum(np.nan_to_num(x, nan=c))


@pytest.mark.parametrize("f, args, want", [
    (clip_low, (np.array([-1.0, 0.5, 2.0]), 0.0), 1.0),
    (pad_value, (np.ones(3), 0.5), 2.0),
    (nan_value, (np.array([1.0, np.nan]), 0.5), 1.0),
])
def test_a_keyword_operand_gets_its_cotangent(f, args, want):
    # (it got none: reverse mode routed cotangents to positional operands only)
    assert adjoint.grad(f, wrt=1)(*args) == want
    assert adjoint.jvp(f, wrt=1)(*args, 1.0)[1] == want
