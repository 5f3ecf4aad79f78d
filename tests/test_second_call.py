"""A gradient compiled on one call and run on a call whose data takes another path.

The code is specialised on what observing the first call saw, and keyed on the
arguments' kinds only. Whatever that call saw but the next one may not (the kind an
`if` gave on the side the data chose, the empty list a filter left) must not be
folded into the code (adversarial round 8, K1 and A2; round 9, P1, P1b and S1: wrong
numbers on the second call, and on every call after it through the disk cache). Each program here is
compiled on `first`, then checked on `second`, and again in the other order.
"""
import numpy as np
import pytest

import adjoint
from adjoint.testing import numeric_grad


def scale_by_path(x):
    s = 1.0 if np.all(x > 0) else np.abs(x)  # a number on one path, an array on the other
    return np.sum(x ** 2 / s)


def divide_by_path(x):
    if x[0] > 0:
        s = 2.0
    else:
        s = x ** 2 + 1
    return np.sum(x / s)


def slice_by_path(x):
    v = x[0] ** 2 if x[1] > 0 else x[:2] ** 2
    return np.sum(v * x[2])


def max_by_path(x):
    X = np.outer(x, x)
    m = X.max(1, keepdims=True) if x[0] > 0 else X.max()
    return np.sum(np.exp(X - m))


def hinge_list(w):
    viol = []
    for i in range(w.shape[0]):
        if w[i] < 1.0:
            viol.append((1.0 - w[i]) ** 2)
    return sum(viol) + 0.1 * np.sum(w ** 2)


def hinge_comprehension(w):
    return sum([(1.0 - w[i]) ** 2 for i in range(3) if w[i] < 1.0]) + 0.1 * np.sum(w ** 2)


def while_maybe_none(x):
    s = 0.0
    k = 0
    while k < 3 and x[k] > 0:  # no trip when x[0] <= 0: s stays a float
        s = s + x * x[k]
        k += 1
    return np.sum(s * x)


def range_by_value(x):
    s = 2.0
    for i in range(int(x[0])):  # a trip count the data decides (no trip, or two)
        s = x * s
    return np.sum(x ** 2 * s)


def while_one_trip(x):
    s = 1.0
    i = 0
    while x[i] > 0:  # one trip observed: s only seen as the float it came in as
        s = s * x[:2]
        i += 1
    return np.sum(s * x[2:])


def mean_of_prefix(x):
    return np.mean(x[:int(x[0])] ** 2)  # a size the data decides: not folded as 1/n


def mean_to_peak(x):
    k = np.argmax(x)
    return np.mean(x[:k + 1] ** 2) * x[0]


POSITIVE = np.array([0.5, 0.7, 1.2, 0.4])
MIXED = np.array([-0.5, -0.7, 1.2, 0.4])
CASES = [
    (scale_by_path, POSITIVE, MIXED),
    (divide_by_path, POSITIVE, MIXED),
    (slice_by_path, POSITIVE, MIXED),
    (max_by_path, POSITIVE, MIXED),
    (hinge_list, np.array([1.5, 2.5, 3.0]), np.array([0.2, 2.5, 0.5])),
    (hinge_comprehension, np.array([1.5, 2.5, 3.0]), np.array([0.2, 2.5, 0.5])),
    (while_maybe_none, POSITIVE, MIXED),
    (range_by_value, POSITIVE, np.array([2.5, -0.7, 1.2, 0.4])),
    (while_one_trip, np.array([0.5, -0.7, 1.2, 0.4]), np.array([0.5, 0.7, -1.2, 0.4])),
    (mean_of_prefix, np.array([1.5, 0.7, 1.2, 2.4]), np.array([2.5, -0.7, 1.2, 0.4])),
    (mean_to_peak, np.array([2.5, 0.7, 1.2, 0.4]), np.array([0.5, 0.7, 2.2, 0.4])),
]


@pytest.mark.parametrize("f, first, second", CASES, ids=[c[0].__name__ for c in CASES])
@pytest.mark.parametrize("order", ["as_listed", "reversed"])
def test_a_gradient_is_right_on_the_path_its_first_call_did_not_take(tmp_path, f, first,
                                                                     second, order):
    calls = (first, second) if order == "as_listed" else (second, first)
    g = adjoint.value_and_grad(f, cache_dir=tmp_path)
    for x in calls:
        value, dx = g(x)
        assert np.isclose(value, f(x))
        np.testing.assert_allclose(dx, numeric_grad(f, (x,)), rtol=1e-6, atol=1e-8)
    # a new gradient object finds the first call's module in the cache
    value, dx = adjoint.value_and_grad(f, cache_dir=tmp_path)(calls[1])
    np.testing.assert_allclose(dx, numeric_grad(f, (calls[1],)), rtol=1e-6, atol=1e-8)


def repeat_by_counts(x, counts):
    return np.mean(np.repeat(x, counts) ** 2)  # an int array's values size the result


def test_an_int_arrays_values_are_data(tmp_path):
    x = np.array([0.5, -0.7, 1.2, 0.4])
    g = adjoint.grad(repeat_by_counts, cache_dir=tmp_path)
    for counts in (np.array([1, 1, 1, 1]), np.array([2, 0, 1, 3])):
        want = numeric_grad(lambda v: repeat_by_counts(v, counts), (x,))
        np.testing.assert_allclose(g(x, counts), want, rtol=1e-6, atol=1e-8)


LOOPS = [c for c in CASES if c[0] in (range_by_value, while_one_trip, while_maybe_none)]


@pytest.mark.parametrize("f, first, second", LOOPS, ids=[c[0].__name__ for c in LOOPS])
def test_an_hvp_is_right_on_a_trip_count_its_first_call_did_not_run(tmp_path, f, first, second):
    """Forward over reverse reads the gradient's tapes: what they held on the first
    call's trips is no fact for another call's either."""
    h = adjoint.hvp(f, cache_dir=tmp_path)
    g = adjoint.grad(f)
    v = np.array([0.3, -0.2, 0.5, 0.1])
    for x in (first, second):
        eps = 1e-6
        want = (g(x + eps * v) - g(x - eps * v)) / (2 * eps)
        np.testing.assert_allclose(h(x, v), want, rtol=1e-5, atol=1e-6)
