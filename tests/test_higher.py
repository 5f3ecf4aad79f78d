"""Higher order: grad of grad, third derivatives, HVPs through loops, Hessians,
Jacobians, and the nested-VJP identity (a VJP of a VJP is a JVP)."""
import math

import numpy as np
import pytest

import adjoint
from adjoint.higher import Derivative
from adjoint.testing import numeric_grad
from tests import programs as P

R = np.random.default_rng(11)


def cubic_sin(x):
    return x ** 3 * math.sin(x)


def scalar_loop(x):
    y = x
    for i in range(5):
        y = math.sin(y) * 1.1 + 0.1 * x * y
    return y


def branchy(x):
    if x > 0.5:
        return math.exp(x) * x
    return x ** 4 - 2.0 * x


@pytest.mark.parametrize("f,x", [(cubic_sin, 0.7), (scalar_loop, 0.4), (branchy, 0.9),
                                 (branchy, 0.1), (P.newton_sqrt, 2.0)])
def test_second_and_third_derivatives_match_finite_differences_of_lower_orders(f, x):
    g = adjoint.grad(f)
    gg = adjoint.grad(g)
    ggg = adjoint.grad(gg)
    assert np.isclose(gg(x), numeric_grad(g, (x,)), rtol=1e-5, atol=1e-7)
    assert np.isclose(ggg(x), numeric_grad(gg, (x,)), rtol=1e-4, atol=1e-6)


def test_mixed_second_derivative():
    f = P.scalar_math
    d_dy_of_d_dx = adjoint.grad(adjoint.grad(f, wrt=0), wrt=1)
    want = numeric_grad(lambda x, y: adjoint.grad(f, 0)(x, y), (0.7, 0.3), wrt=1)
    assert np.isclose(d_dy_of_d_dx(0.7, 0.3), want, rtol=1e-5)


HVP_CASES = [
    (P.rnn, 0, (R.normal(size=(4, 4)) * 0.5, R.normal(size=(4, 3)), R.normal(size=(5, 3)),
                R.normal(size=4))),
    (P.product, 0, (R.normal(size=5),)),
    (P.fill, 0, (R.normal(size=5),)),
    (P.inside, 0, (R.random(5) + 0.5,)),
    (P.mlp, 0, (R.normal(size=(4, 5)), R.normal(size=5), R.normal(size=(5, 3)), R.normal(size=3),
                R.normal(size=(6, 4)), np.eye(3)[R.integers(0, 3, 6)])),
    (P.softmax_xent, 0, (R.normal(size=(4, 3)), R.normal(size=(6, 4)),
                         np.eye(3)[R.integers(0, 3, 6)])),
    (P.branch_in_loop, 0, (R.normal(size=6),)),
    (P.breaks, 0, (np.array([0.5, 1.0, 0.9, 1.2, 0.3]),)),
]


@pytest.mark.parametrize("f,wrt,args", HVP_CASES, ids=[c[0].__name__ for c in HVP_CASES])
def test_hvp_matches_finite_differences_of_the_gradient(f, wrt, args):
    v = R.normal(size=np.shape(args[wrt]))
    got = adjoint.hvp(f, wrt)(*args, v)
    g, eps = adjoint.grad(f, wrt), 1e-6

    def moved(t):
        a = list(args)
        a[wrt] = args[wrt] + t * v
        return g(*a)
    np.testing.assert_allclose(got, (moved(eps) - moved(-eps)) / (2 * eps), rtol=1e-5, atol=1e-6)


def test_hessian_and_jacobian():
    x = R.normal(size=3)
    np.testing.assert_allclose(adjoint.hessian(P.sum_squares)(x), 2 * np.eye(3))
    A = R.normal(size=(4, 3))

    def vector(x, A):
        return np.tanh(A @ x)

    def wide(A, x):
        return np.tanh(A @ x)

    want = (1 - np.tanh(A @ x) ** 2)[:, None] * A
    np.testing.assert_allclose(adjoint.jacobian(vector)(x, A), want, rtol=1e-12)
    J = adjoint.jacobian(wide)(A, x)  # 4 outputs, 12 inputs: by VJPs
    assert J.shape == (4, 4, 3)
    np.testing.assert_allclose(J[:, 1, :], np.diag(1 - np.tanh(A @ x) ** 2)[:, 1:2] * x)


def tanh_map(x, u):
    return np.tanh(x * 2.0) * np.sum(x)


def softmax_map(x, u):
    e = np.exp(x - np.max(x))
    return e / np.sum(e)


@pytest.mark.parametrize("f", [tanh_map, softmax_map])
def test_a_vjp_of_a_vjp_is_a_jvp(f):
    """For g(x, u) = J(x)^T u, the gradient of <g, w> with respect to u is J(x) w."""
    x, u, w = R.normal(size=4), R.normal(size=4), R.normal(size=4)
    nested = Derivative(f, (("vjp", 0), ("dot", None), ("grad", 2)))
    got = nested(x, u, np.ones(4), w)  # parameters: x, u, the cotangent, then w
    _, jw = adjoint.jvp(f, 0)(x, u, w)
    np.testing.assert_allclose(got, jw, rtol=1e-10)


def test_hvp_costs_a_small_constant_times_the_gradient_in_operations():
    """Structural, not timed: the HVP module holds one forward and one backward loop
    per primal loop, not one gradient per input entry."""
    src_args = HVP_CASES[0][2]
    h = adjoint.hvp(P.rnn, 0)
    h(*src_args, np.ones((4, 4)))
    fn = next(iter(h.compiled.values()))
    import inspect
    text = inspect.getsource(fn)
    assert sum(line.lstrip().startswith("for ") for line in text.splitlines()) == 2


def ridge_train(theta, X, y, lam):
    r = X @ theta - y
    return np.sum(r * r) + lam * np.sum(theta * theta)


def ridge_dev(theta, Xd, yd):
    r = Xd @ theta - yd
    return np.sum(r * r)


def test_implicit_gradient_of_a_ridge_hyperparameter_matches_the_closed_form():
    X, y = R.normal(size=(20, 5)), R.normal(size=20)
    Xd, yd = R.normal(size=(10, 5)), R.normal(size=10)
    lam = 0.7

    def theta_star(lam):
        return np.linalg.solve(X.T @ X + lam * np.eye(5), X.T @ y)

    got = adjoint.implicit_grad(ridge_train, ridge_dev, wrt=3)(
        theta_star(lam), X, y, lam, outer_args=(Xd, yd))

    def dev_of(lam):
        return ridge_dev(theta_star(lam), Xd, yd)
    want = (dev_of(lam + 1e-6) - dev_of(lam - 1e-6)) / 2e-6
    assert np.isclose(got, want, rtol=1e-6)


def cube_sum(x):
    return np.sum(x ** 3)


def test_jvp_of_a_gradient_is_forward_over_reverse():
    x, v = np.array([1.0, 2.0]), np.array([1.0, 0.0])
    g, hv = adjoint.jvp(adjoint.grad(cube_sum))(x, v)
    np.testing.assert_allclose(g, 3 * x ** 2)
    np.testing.assert_allclose(hv, 6 * x * v)


df = adjoint.grad(cube_sum)


def calls_a_derivative(x, v):
    return np.sum(df(x) * v)


def test_a_derivative_called_inside_a_differentiated_function_is_rejected():
    with pytest.raises(adjoint.UnsupportedError) as e:
        adjoint.grad(calls_a_derivative)(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    assert "hvp" in str(e.value) and "test_higher.py" in str(e.value)
