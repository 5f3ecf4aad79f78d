"""Array methods that are NumPy functions (`x.take(i)` is `np.take(x, i)`): each is
lowered to the function, whose rule differentiates it (round 19's R2 refused them).
Each program is checked against central differences, and its value against f's."""
from __future__ import annotations

import numpy as np
import pytest

import adjoint
from adjoint.testing import numeric_grad

X = np.array([[0.7, -1.3, 0.4], [1.1, -0.6, 0.9], [0.2, 1.5, -0.8]])


def take(x):
    return np.sum(np.sin(x.take([3, 0, 7])))


def take_axis(x):
    return np.sum(x.take([2, 0], axis=1) ** 2)


def cumprod(x):
    return np.sum(x.cumprod(axis=0))


def diagonal(x):
    return np.sum(np.exp(x.diagonal(1)))


def trace(x):
    return x.trace() * np.sum(x)


def rounded(x):
    return np.sum(x * x.round(1))  # round: a step function, its derivative 0


def swapaxes(x):
    return np.sum(x.swapaxes(0, 1) @ np.arange(3.0))


def repeat(x):
    return np.sum(np.tanh(x.repeat(2, axis=0)))


def argsort(x):
    return np.sum(x[0][x[0].argsort()] * np.arange(3.0))


def nonzero(x):
    return np.sum(x[(x > 0).nonzero()] ** 2)


def conjugate(x):
    return np.sum(x.conjugate() * x)


PROGRAMS = [take, take_axis, cumprod, diagonal, trace, rounded, swapaxes, repeat, argsort,
            nonzero, conjugate]


@pytest.mark.parametrize("f", PROGRAMS, ids=[f.__name__ for f in PROGRAMS])
def test_array_method(tmp_path, f):
    value, g = adjoint.value_and_grad(f, cache_dir=tmp_path)(X)
    assert value == pytest.approx(f(X), rel=1e-12)
    np.testing.assert_allclose(g, numeric_grad(f, (X,)), rtol=1e-6, atol=1e-8)
