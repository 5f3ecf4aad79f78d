"""The reverse of loops, on the shapes that once gave silently wrong gradients.

Each program is checked three ways by `adjoint.testing.check_program` (finite
differences, the forward sweeps' values, and JVP against VJP); the comment above
each says what was wrong."""
import math

import numpy as np
import pytest

import adjoint
from adjoint.testing import check_program


# a reduction loop whose reverse pops a value it cannot recompute (factorial(i)) must
# run backwards: it ran forwards, popping the last entry first
def taylor_exp(x, n):
    s = 0.0
    for i in range(n):
        s += x ** i / math.factorial(i)
    return s


def taylor_vector(x, n):
    s = np.zeros_like(x)
    for i in range(n):
        s = s + np.sin(x) ** i / math.factorial(i)
    return np.sum(s)


# a tape that crosses an `if` keeps two values an entry, of which the reverse reads one:
# it was unpacked as `a = _tape.pop()`, binding the whole tuple
def cyclic_writes(x, y, n):
    a = x * 2.0
    if y >= 0.5:
        for k in range(n):
            a[k % len(a)] = np.cos(x[1] * y)
    return np.sum(a * a)


# an array a loop computes, then written in place after it: the tape held the array
# itself, so the reverse read the written values
def written_after_loop(x):
    for k in range(1):
        s = np.tanh(x)
    s[1:] += 0.4
    return np.sum(np.tanh(s))


def written_after_loop_twice(x):
    for k in range(3):
        s = np.sin(x) * k
        t = s * s
    s[0] = 2.0
    return np.sum(np.tanh(s) * t)


# a write through an alias the loop body makes: the loop did not carry the old name
def alias_in_body(x):
    a = x * 1.0
    for k in range(2):
        b = a
        b[1:] -= 0.2 * x[1:]
    return np.sum(a * a)


def alias_chain_in_body(x):
    a = x * 1.0
    for k in range(2):
        b = a
        c = b
        c[0] += x[1] * x[2]
    return np.sum(a * a)


# a list of (W, b) pairs: its cotangent was a list whose `+=` concatenated
def layers_net(layers, x):
    h = x
    for W, b in layers:
        h = np.tanh(h @ W + b)
    return np.sum(h)


def pair_of_arrays(t):
    a, b = t
    return np.sum(a * b * b)


# a scalar read from an array written in one branch was recomputed in the branch's
# reverse before the write-back that restores the array: VerifyError (used before defined)
def sin_sum(z):
    return np.sum(np.sin(z) * np.arange(1.0, 4.0))


def fresh_written_in_a_branch(x, v):
    z = np.zeros(3)
    if x > 0.2:
        z[1] -= x
    else:
        z[2] += x * v[1]
    return sin_sum(z) * v[0]


X = np.array([0.3, 0.7, 1.1])
RNG = np.random.default_rng(0)
LAYERS = [(RNG.normal(size=(3, 3)), RNG.normal(size=3)),
          (RNG.normal(size=(3, 2)), RNG.normal(size=2))]

CASES = [
    (taylor_exp, (0.1, 12), 0),
    (taylor_vector, (X, 6), 0),
    (cyclic_writes, (X, 0.8, 5), 0),
    (cyclic_writes, (X, 0.2, 5), 0),
    (written_after_loop, (X,), 0),
    (written_after_loop_twice, (X,), 0),
    (alias_in_body, (X,), 0),
    (alias_chain_in_body, (X,), 0),
    (fresh_written_in_a_branch, (0.7, X), (0, 1)),
    (fresh_written_in_a_branch, (0.1, X), (0, 1)),
]


@pytest.mark.parametrize("f, args, wrt", CASES, ids=lambda c: getattr(c, "__name__", ""))
def test_loop_gradient(f, args, wrt):
    check_program(f, *args, wrt=wrt)


def test_taylor_exp_is_exp():
    assert adjoint.grad(taylor_exp)(0.1, 12) == pytest.approx(math.exp(0.1), rel=1e-10)


def test_a_list_of_pairs_gets_a_list_of_pairs():
    g = adjoint.grad(layers_net)(LAYERS, X)
    assert type(g) is list and all(type(p) is tuple and len(p) == 2 for p in g)
    h = 1e-6
    for k, (i, j) in enumerate([(0, 0), (1, 1)]):
        for leaf in (0, 1):
            def moved(d):
                layers = [tuple(np.array(a, copy=True) for a in p) for p in LAYERS]
                layers[k][leaf][(i, j)[:layers[k][leaf].ndim]] += d
                return layers_net(layers, X)
            want = (moved(h) - moved(-h)) / (2 * h)
            assert g[k][leaf][(i, j)[:g[k][leaf].ndim]] == pytest.approx(want, rel=1e-6)


def test_a_tuple_of_equal_arrays_is_not_stacked():
    a, b = np.array([1.0, 2.0]), np.array([0.5, -1.5])
    g = adjoint.grad(pair_of_arrays)((a, b))
    assert type(g) is tuple and len(g) == 2
    np.testing.assert_allclose(g[0], b * b)
    np.testing.assert_allclose(g[1], 2 * a * b)
