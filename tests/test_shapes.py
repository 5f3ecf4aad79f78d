"""Kinds and shapes the specialised gradient is built on (analysis/shapes.py), and the
analyses that read them: a matrix product's shape is a contraction, not a broadcast;
a max whose value a loop carries is no log-sum-exp shift. Gradients against central
finite differences in float64."""
import math
from collections import namedtuple

import numpy as np
import pytest

import adjoint
from adjoint.analysis.shapes import Kind, Observed, kind_of, matmul_shape
from adjoint.ir.core import Call, Const, Value
from adjoint.rules import registry


def _fd(f, args, wrt=0, h=1e-6):
    args = list(args)
    x = np.asarray(args[wrt], dtype=float)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        up, dn = list(args), list(args)
        up[wrt], dn[wrt] = x + e, x - e
        g[i] = (f(*up) - f(*dn)) / (2 * h)
    return g


def _close(got, f, args, wrt=0, tol=1e-6):
    want = _fd(f, args, wrt)
    assert np.shape(got) == np.shape(args[wrt])
    assert np.allclose(got, want, rtol=tol, atol=tol), (got, want)


# ------------------------------------------------------------------ matmul shapes

@pytest.mark.parametrize("a, b", [
    ((6,), (6, 6)), ((6, 6), (6,)), ((6,), (6,)), ((3, 4), (4, 5)), ((4,), (4, 2)),
    ((2, 3, 4), (4, 5)), ((4,), (2, 4, 5)), ((2, 1, 3, 4), (5, 4, 2)), ((2, 3, 4), (4,)),
    ((3,), (4,)), ((3, 4), (3, 4)), ((2, 3, 4), (3, 4, 5)), ((), (3,)), ((3,), ())])
def test_matmul_shape_is_numpys(a, b):
    try:
        want = np.shape(np.zeros(a) @ np.zeros(b))
    except ValueError:
        want = None
    assert matmul_shape(a, b) == want


def test_inferred_matmul_kind_is_a_contraction():
    """A product no run reached (a branch not taken) gets its kind from its operands:
    W @ x of a (6, 6) and a (6,) is (6,), not their broadcast (6, 6)."""
    matmul = registry.lookup(__import__("operator").matmul).prim
    facts = Observed()
    W, x, y, r, s = Value("W"), Value("x"), Value("y"), Value("r"), Value("s")
    facts.kinds = {W: Kind("ndarray", (6, 4), "f"), x: Kind("ndarray", (4,), "f"),
                   y: Kind("ndarray", (4,), "c")}
    assert facts._infer_call(Call(matmul, (W, x), r)) == Kind("ndarray", (6,), "f")
    assert facts._infer_call(Call(matmul, (x, y), s)) == Kind("complex", ())
    assert facts._infer_call(Call(matmul, (x, Const(2.0)), s)) is None
    floor = registry.lookup(math.floor).prim
    assert facts._infer_call(Call(floor, (Const(2.5),), s)) is None  # an int, not a float


def test_a_namedtuple_is_a_tuple():
    Pair = namedtuple("Pair", "a b")
    k = kind_of(Pair(1.0, 2.0))
    assert k.type == "tuple" and k.floating


def branch_product(b, x, W, t):
    z = 0.5 * b
    if t > 0:
        z = (W @ x) + b  # not run by the first call: its kinds are inferred
    return np.sum(np.sin(z))


@pytest.mark.parametrize("n, m", [(6, 6), (4, 3)])
def test_untaken_branch_with_a_matrix_product(n, m):
    """The gradient made for t < 0 serves t > 0 (same kinds): its branch must be right.
    With W @ x inferred as (n, m) the cotangent of b was summed over an axis."""
    r = np.random.default_rng(n + m)
    b, x, W = r.normal(size=n), r.normal(size=m), r.normal(size=(n, m))
    g = adjoint.grad(branch_product)
    for t in (-1.0, 1.0):
        got = g(b, x, W, t)
        want = np.cos(W @ x + b) if t > 0 else 0.5 * np.cos(0.5 * b)
        assert np.allclose(got, want, atol=1e-12)
        _close(got, branch_product, (b, x, W, t))


# ------------------------------------------------------------------ loops carrying a max

def max_for(x, n):
    m = np.max(x)
    for k in range(n):
        m *= 0.9
    return m


def max_while(x, n):
    m = np.max(x)
    k = 0
    while k < n:
        m = m * 0.9 + 0.01 * m ** 2
        k += 1
    return m


def max_nested(x, n):
    m = np.max(x)
    for i in range(n):
        for j in range(n):
            m = m * 0.9 + np.sum(x) * 0.01
    return m


def max_if(x, t):
    m = np.max(x)
    if t > 0:
        m = m * 2.0
    return m


def lse_in_loop(x, n):
    s = 0.0
    for i in range(n):
        m = np.max(x)
        s = s + m + np.log(np.sum(np.exp(x - m)))
        x = x * 1.1
    return s


def lse_then_loop(x, n):
    m = np.max(x)
    lse = m + np.log(np.sum(np.exp(x - m)))
    for i in range(n):
        lse = lse * 0.5 + m  # m escapes the pattern: its derivative is not zero
    return lse


X = np.array([1.0, 3.0, 2.0, 2.5])


@pytest.mark.parametrize("f, n", [(max_for, 3), (max_for, 0), (max_while, 3), (max_nested, 2),
                                  (max_if, 1.0), (max_if, -1.0), (lse_in_loop, 3),
                                  (lse_then_loop, 2)])
def test_max_carried_by_a_region(f, n):
    """A region (loop inits, an if) reading the max's value: the log-sum-exp analysis
    met a For among the max's users and stopped with AttributeError."""
    got = adjoint.grad(f)(X, n)
    _close(got, f, (X, n))


def test_max_for_formula():
    assert np.allclose(adjoint.grad(max_for)(X, 3), [0.0, 0.9 ** 3, 0.0, 0.0], atol=1e-15)
