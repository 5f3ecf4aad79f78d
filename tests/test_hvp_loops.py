"""HVPs of loops that carry a vector state (RNN-like): each against central differences
of two gradients, and against the same HVP with the passes off (ADJOINT_OPT=0's
`limited(0)`), whose plain code must be right too."""
import numpy as np
import pytest

import adjoint
from adjoint.passes import pipeline

R = np.random.default_rng(24)
G = R.normal(size=(5, 5)) * 0.3  # a module-level matrix: read, not a parameter


def rnn(W, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + xs[t])
    return np.sum(h * h)


def rnn_rows(W, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(h @ W + xs[t])  # the vector on the left: V @ W, not V @ W.T
    return np.sum(np.sin(h))


def rectangular(A, B, xs, h0):
    h = h0  # (3,) -> A (5, 3) -> (5,) -> B (3, 5) -> (3,)
    for t in range(xs.shape[0]):
        z = np.tanh(A @ h)
        h = np.tanh(B @ z + xs[t]) * 0.5 + h * 0.5
    return np.sum(h ** 3)


def with_global(W, xs, h0):
    h = h0
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + G @ h * 0.1 + xs[t])
    return np.sum(h)


def two_states(W, U, xs, h0):
    h, c = h0, h0 * 0.5
    for t in range(xs.shape[0]):
        c = np.tanh(U @ h) * 0.5 + c * 0.5
        h = np.tanh(W @ c + xs[t])
    return np.sum(h * c)


def scalar_and_vector(W, xs, h0):
    h, s = h0, 0.0
    for t in range(xs.shape[0]):
        h = np.tanh(W @ h + xs[t])
        s = s + np.sum(h) ** 2
    return s


def args_for(f, steps=7):
    n = 5
    W, U = R.normal(size=(n, n)) * 0.4, R.normal(size=(n, n)) * 0.4
    xs, h0 = R.normal(size=(steps, n)), R.normal(size=n)
    if f is rectangular:
        return (R.normal(size=(5, 3)) * 0.5, R.normal(size=(3, 5)) * 0.5,
                R.normal(size=(steps, 3)), R.normal(size=3))
    if f is two_states:
        return (W, U, xs, h0)
    return (W, xs, h0)


CASES = [(f, wrt) for f in (rnn, rnn_rows, with_global, scalar_and_vector)
         for wrt in (0, 2)] + [(rnn, 1), (rectangular, 0), (rectangular, 1), (rectangular, 3),
                               (two_states, 0), (two_states, 1), (two_states, 3)]
# With no pass at all, the HVP along xs was wrong: the plain code taped h_dot, then
# doubled it in place (`h_dot += h_dot`, the tangent of `h_bar = 2 h`), changing the taped
# entry (found by the HVP speed work of round 24; naming._foreign_buffers now counts a
# taped value as one the code must not write)


def central(f, wrt, args, v, eps=1e-6):
    g = adjoint.grad(f, wrt)
    up, down = list(args), list(args)
    up[wrt], down[wrt] = args[wrt] + eps * v, args[wrt] - eps * v
    return (g(*up) - g(*down)) / (2 * eps)


@pytest.mark.parametrize("f,wrt", CASES, ids=[f"{f.__name__}-{w}" for f, w in CASES])
def test_hvp_matches_central_differences_of_the_gradient(f, wrt):
    args = args_for(f)
    v = R.normal(size=np.shape(args[wrt]))
    got = adjoint.hvp(f, wrt)(*args, v)
    np.testing.assert_allclose(got, central(f, wrt, args, v), rtol=1e-5, atol=1e-7)
    with pipeline.limited(0):  # no pass at all: the plain forward over reverse
        plain = adjoint.hvp(f, wrt)(*args, v)
    np.testing.assert_allclose(got, plain, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("steps", [0, 1, 2])
def test_a_loop_of_zero_one_or_two_steps(steps):
    args = args_for(rnn, steps)
    v = R.normal(size=args[0].shape)
    got = adjoint.hvp(rnn, 0)(*args, v)
    np.testing.assert_allclose(got, central(rnn, 0, args, v), rtol=1e-5, atol=1e-8)


def test_a_state_updated_in_place():
    """A buffer written in place: every entry of a list of it would be its last value."""
    def inplace(W, xs, h0):
        h = h0.copy()
        for t in range(xs.shape[0]):
            h[:] = np.tanh(W @ h + xs[t])
        return np.sum(h * h)

    args = args_for(rnn)
    v = R.normal(size=args[0].shape)
    try:
        got = adjoint.hvp(inplace, 0)(*args, v)
    except adjoint.AdjointError:
        return  # refused, located: not wrong
    np.testing.assert_allclose(got, central(inplace, 0, args, v), rtol=1e-5, atol=1e-7)
