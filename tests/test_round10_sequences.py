"""Round 10: list/tuple `+` and `*` on a path the first call did not take (K2), builtin
sum of terms of different shapes (C-B), np.append in a loop (O2), `L += (v,)` (L2)."""
import numpy as np
import pytest

import adjoint


def fd(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        g[i] = (f(x + e) - f(x - e)) / (2 * h)
    return g


def concat(x):
    if x[0] > 0:
        return x[1]
    M = [x[1]] + [x[2]]
    return M[0] * M[1]


def iadd(x):
    if x[0] > 0:
        return x[1]
    L = [x[1]]
    L += [x[2]]
    return L[0] * L[1]


def repeat(x):
    if x[0] > 0:
        return x[1]
    return np.sum(np.array([x[1]] * 3) ** 2)


def tupacc(x):
    if x[0] > 0:
        return x[1]
    t = ()
    for i in range(3):
        t = t + (x[i + 1],)
    return t[0] * t[2] + t[1]


def meanpad(x):
    if x[0] > 0:
        return x[1]
    return np.mean(np.array([x[1] * x[1]] + [0.0]))


P, Q = np.array([0.9, 0.3, 0.2, 0.4]), np.array([-0.5, 0.3, 0.7, -0.4])


@pytest.mark.parametrize("f", [concat, iadd, repeat, tupacc, meanpad])
@pytest.mark.parametrize("first, then", [(P, Q), (Q, P)])
def test_sequence_ops_on_the_path_not_taken_first(f, first, then):
    g = adjoint.grad(f)
    g(first)
    np.testing.assert_allclose(g(then), fd(f, then), rtol=1e-6, atol=1e-8)


def test_concat_by_hand():
    g = adjoint.grad(concat)
    g(P)
    np.testing.assert_allclose(g(Q), [0.0, 0.7, 0.3, 0.0])


def sum_mixed(x):
    return np.sum(sum([x * x, 2.0 * x[0]]))


def sum_comp(x):
    L = [x[i] * x if x[i] > 0 else x[i] * 2.0 for i in range(3)]
    return np.sum(sum(L) * x)


@pytest.mark.parametrize("f", [sum_mixed, sum_comp])
def test_builtin_sum_of_terms_of_different_shapes(f):
    x = np.array([0.5, -0.3, 0.7, 0.4])
    np.testing.assert_allclose(adjoint.grad(f)(x), fd(f, x), rtol=1e-6, atol=1e-8)


def test_builtin_sum_by_hand():
    x = np.array([0.9, 0.3, 0.2, 0.4])
    want = 2 * x
    want[0] += 2.0 * x.size
    np.testing.assert_allclose(adjoint.grad(sum_mixed)(x), want)


def appended(x):
    s = np.zeros(0)
    for i in range(3):
        s = np.append(s, x[i] * x[i])
    return np.sum(s * s)


def test_np_append_in_a_loop():
    x = np.array([0.5, 0.3, 0.2])
    np.testing.assert_allclose(adjoint.grad(appended)(x), 4 * x ** 3)


def iadd_tuple(a, b):
    L = [a]
    L += (b * 2.0,)
    return L[0] * L[1]


def test_list_plus_equals_a_tuple_extends_it():
    assert adjoint.grad(iadd_tuple, wrt=(0, 1))(0.6, 0.7) == pytest.approx((1.4, 1.2))


def walk_weighted(xs, y):
    s = np.sum(y)
    for x in xs:
        s = s + np.sum(x * y)
    return s


def test_gradient_of_an_empty_list_is_an_empty_list():
    """adjoint.grad gives a list argument's gradient as a list, an empty one's too (the
    generated code's is a stacked array, or the number 0.0 for an empty walk)."""
    y = np.array([0.5, -2.0])
    g = adjoint.grad(walk_weighted, wrt=(0, 1))
    assert g([], y)[0] == [] and g((), y)[0] == ()
    got = g([y * 3.0, y], y)
    assert isinstance(got[0], list) and len(got[0]) == 2
    np.testing.assert_allclose(got[0], [y, y])
    np.testing.assert_allclose(got[1], 1.0 + y * 3.0 + y)
