"""Array methods that are NumPy functions (`x.take(i)` is `np.take(x, i)`): each is
lowered to the function, whose rule differentiates it (round 19's R2 refused them).
Each program is checked against central differences, and its value against f's."""
from __future__ import annotations

import collections
import dataclasses

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


# ------------------------------------------ fields named like an array's attributes

Gamma = collections.namedtuple("Gamma", ["shape", "rate"])


@dataclasses.dataclass
class Scaled:
    T: float  # a temperature
    size: float
    imag: float = 0.5


def gamma_nll(p, x):
    return -np.sum(p.shape * np.log(p.rate) + (p.shape - 1.0) * np.log(x) - p.rate * x)


def gamma_nll_built(theta, x):
    return gamma_nll(Gamma(np.exp(theta[0]), np.exp(theta[1])), x)


def scaled_energy(p, x):
    return np.sum(np.exp(-x / p.T)) * p.size + p.imag * x.shape[0] + np.sum(x.T * x.real)


def test_fields_named_shape_or_size_are_fields():
    """`p.shape` of a namedtuple or a dataclass with a field `shape` is that field, with its
    gradient (round 20's S3: it was read as np.shape(p), a constant: d/d shape was 0)."""
    x = np.array([0.5, 1.2, 2.0, 0.8])
    g = adjoint.grad(gamma_nll)(Gamma(2.0, 1.5), x)
    want = numeric_grad(lambda a, b: gamma_nll(Gamma(a, b), x), (2.0, 1.5), wrt=(0, 1))
    np.testing.assert_allclose([g.shape, g.rate], want, rtol=1e-6)
    theta = np.array([0.3, -0.2])
    np.testing.assert_allclose(adjoint.grad(gamma_nll_built)(theta, x),
                               numeric_grad(gamma_nll_built, (theta, x)), rtol=1e-6)
    p = Scaled(1.3, 0.7)
    g = adjoint.grad(scaled_energy)(p, x)
    want = numeric_grad(lambda t, s, i: scaled_energy(Scaled(t, s, i), x), (1.3, 0.7, 0.5),
                        wrt=(0, 1, 2))
    np.testing.assert_allclose([g.T, g.size, g.imag], want, rtol=1e-6)


Sized = collections.namedtuple("Sized", ["size", "T"])


def size_of_each(x):
    total = 0.0
    for s in (Sized(x[0], x[1]), x):  # a namedtuple, then the array
        total = total + np.sum(s.size) * x[3]
    return total


def test_a_field_on_one_trip_an_attribute_on_the_next_is_refused():
    """`s.size` where s is a namedtuple on one trip and an array on the next: the field on
    one, np.size on the other, which one resolution cannot be (round 21's S2: read as
    np.size throughout, d/d x[0] was dropped). Refused at the read."""
    with pytest.raises(adjoint.UnsupportedError, match=r"`\.size` of a value seen both") as e:
        adjoint.grad(size_of_each)(np.array([0.5, -0.3, 0.8, 1.2]))
    assert e.value.loc.line == size_of_each.__code__.co_firstlineno + 3


def log_weighted(p, x):
    return np.sum(p.shape * np.log(x)) * p.rate


def test_a_field_named_shape_may_hold_an_array():
    """The kind of a namedtuple whose field `shape` holds an array (round 21's C1:
    np.shape(p) returned the field, and the compile cache's key could not hash it)."""
    x = np.array([0.5, 1.2, 2.0])
    p = Gamma(np.array([1.5, 2.0, 0.7]), 1.3)
    g = adjoint.grad(log_weighted)(p, x)
    np.testing.assert_allclose(g.shape, np.log(x) * 1.3, rtol=1e-12)
    np.testing.assert_allclose(g.rate, np.sum(p.shape * np.log(x)), rtol=1e-12)


def _generic(f, tmp_path):
    """f's gradient as generated without example arguments, imported from a file."""
    import importlib.util
    path = tmp_path / f"{f.__name__}_generic.py"
    path.write_text(adjoint.source(f))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    module.Gamma = Gamma  # (a test module's class: the file says it is set on it)
    spec.loader.exec_module(module)
    return getattr(module, f"{f.__name__}_grad")


def test_generic_code_reads_fields_named_shape_or_refuses_the_argument(tmp_path):
    """Without example arguments `p.shape` is the field where f builds p, and a record
    argument with such a field is refused when the gradient is called (round 21's S4: the
    generated file read np.shape(p), d/d shape came back 0.0)."""
    x, theta = np.array([0.5, 1.2, 2.0, 0.8]), np.array([0.3, -0.2])
    np.testing.assert_allclose(_generic(gamma_nll_built, tmp_path)(theta, x),
                               numeric_grad(gamma_nll_built, (theta, x)), rtol=1e-6)
    with pytest.raises(ValueError, match="reading `shape` as an array's attribute"):
        _generic(gamma_nll, tmp_path)(Gamma(2.0, 1.5), x)
    with pytest.raises(ValueError, match="reading"):  # held in a list, too
        _generic(listed, tmp_path)([Gamma(2.0, 1.5)], x)


def listed(ps, x):
    return gamma_nll(ps[0], x)
