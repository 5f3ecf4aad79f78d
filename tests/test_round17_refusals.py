"""Round 17's over-refusals (adversarial report, section REFUSED), each now right: the
gradient against central differences and value_and_grad, vjp and jvp against it
(adjoint.testing.check_program), against the formula by hand where it is short, and
the hvp against central differences of the gradient."""
import functools

import numpy as np
import pytest

import adjoint
from adjoint import UnsupportedError
from adjoint.testing import check_program

X = np.array([0.3, -1.2, 0.7])
W = np.array([[0.5, -0.3, 0.2], [0.1, 0.8, -0.6], [0.4, 0.0, 0.9]])


def _axpy(a, t, b):
    """a + t * b, entry by entry where a and b are dicts, lists or tuples."""
    if isinstance(a, dict):
        return {k: _axpy(a[k], t, b[k]) for k in a}
    if isinstance(a, (list, tuple)):
        return type(a)(_axpy(e, t, f) for e, f in zip(a, b))
    return a + t * b


def numeric_hvp(f, args, v, wrt=(0, 1), eps=1e-5):
    """Central differences of the gradient along v (one direction per argument in wrt,
    dicts entry by entry)."""
    g = adjoint.grad(f, wrt=wrt)
    plus, minus = list(args), list(args)
    for i, d in zip(wrt, v):
        plus[i], minus[i] = _axpy(args[i], eps, d), _axpy(args[i], -eps, d)
    return tuple(_scaled(_axpy(a, -1.0, b), 1.0 / (2 * eps))
                 for a, b in zip(g(*plus), g(*minus)))


def _scaled(a, s):
    if isinstance(a, dict):
        return {k: _scaled(e, s) for k, e in a.items()}
    if isinstance(a, (list, tuple)):
        return type(a)(_scaled(e, s) for e in a)
    return a * s


def hvp_matches_differences(f, args, v):
    """hvp over the first two arguments against central differences of the gradient
    (over both: see test_hvp_over_the_dict_alone for the dict alone)."""
    got = adjoint.hvp(f, wrt=(0, 1))(*args, v)
    for a, b in zip(got, numeric_hvp(f, args, v)):
        assert_close(a, b, rtol=1e-6, atol=1e-8)


def assert_close(a, b, **kw):
    if isinstance(a, dict):
        assert list(a) == list(b), (list(a), list(b))
        for k in a:
            assert_close(a[k], b[k], **kw)
    else:
        np.testing.assert_allclose(a, b, **kw)


# ------------------------------------------------- `**` of a dict parameter in a display

def with_input(d, x):
    q = {**d, 'x': x}
    return np.sum(np.tanh(q['W'] @ q['x'])) * q['s']


def copied(d, x):
    q = {**d}
    q['W'] = q['W'] * 2.0
    return np.sum(np.sin(q['W'] @ x)) + np.sum(d['W'] ** 2)


def updated(d, x):
    # entries before `**d` (d's own win where it has them, in their first place), two
    # `**`, and entries after: the keys in Python's order
    q = {'x': x, 'W': x[0], **d, 's': d['s'] * 3.0, **{'b': x * 2.0}}
    s = 0.0
    for i, k in enumerate(q):
        s = s + (i + 1) * np.sum(np.sin(q[k]))
    return s + np.sum(q['W'] @ q['x']) * q['s']


def two_parameters(d, e):
    q = {**d, **e}
    return np.sum(q['a'] * q['b'] ** 2) + np.sum(q['c'])


P = {'W': W, 's': 0.7}
V = {'W': np.linspace(-1.0, 1.0, 9).reshape(3, 3), 's': 0.4}


def test_double_star_of_a_dict_parameter_then_an_entry():
    gd, gx = check_program(with_input, P, X)
    t = np.tanh(W @ X)
    assert np.allclose(gd['W'], np.outer(1 - t ** 2, X) * 0.7)
    assert np.isclose(gd['s'], np.sum(t)) and np.allclose(gx, W.T @ (1 - t ** 2) * 0.7)
    hvp_matches_differences(with_input, (P, X), (V, X * 0.5))


def test_double_star_alone_is_a_copy():
    gd, gx = check_program(copied, {'W': W}, X)
    c = np.cos(2.0 * W @ X)
    assert np.allclose(gd['W'], 2.0 * np.outer(c, X) + 2.0 * W)
    hvp_matches_differences(copied, ({'W': W}, X), ({'W': V['W']}, X * 0.5))


def test_double_star_between_entries_keeps_pythons_key_order():
    check_program(updated, P, X)
    d = {'s': 0.7, 'W': W, 'b': X}  # d's 'b' is overwritten by the last `**`
    check_program(updated, d, X)
    hvp_matches_differences(updated, (P, X), (V, X * 0.5))


def test_double_star_of_two_parameters():
    d, e = {'a': X, 'b': X * 2.0}, {'c': X ** 2}
    gd, ge = check_program(two_parameters, d, e, wrt=(0, 1))
    assert np.allclose(gd['a'], 4.0 * X ** 2) and np.allclose(gd['b'], 4.0 * X ** 2)
    assert np.allclose(ge['c'], 1.0)


def test_double_star_overwriting_a_parameters_entry():
    """The overwritten entry's gradient is a zero of its own kind (it was the scalar 0.0,
    refused as the gradient of an array: structure.dict_setitem_vjp)."""
    d, e = {'a': X, 'b': X * 2.0}, {'b': X - 1.0, 'c': X ** 2}
    gd, ge = check_program(two_parameters, d, e, wrt=(0, 1))
    assert np.allclose(gd['b'], 0.0) and np.allclose(gd['a'], (X - 1.0) ** 2)


def test_hvp_over_the_dict_alone():
    got = adjoint.hvp(with_input)(P, X, V)
    want = numeric_hvp(with_input, (P, X), (V,), wrt=(0,))[0]
    assert_close(got, want, rtol=1e-6, atol=1e-8)


def not_a_dict(d, x):
    q = {**d, 'x': x}
    return np.sum(q['x'])


def test_double_star_of_a_list_is_refused_when_it_runs():
    with pytest.raises(UnsupportedError, match="not known here to be a dict"):
        adjoint.grad(not_a_dict, wrt=1)([('a', 1.0)], X)


# ------------------------- a comprehension in one branch, the parameter in the other

def _halved_or_same(q, lr):
    return {k: q[k] * 0.5 for k in q} if lr > 0 else q


def cubes(p, lr):
    q = _halved_or_same(p, lr)
    s = 0.0
    for k in q:
        s = s + np.sum(q[k] ** 3)
    return s


def written_in_a_branch(x, c):
    z = x * 1.0
    if c > 0:
        w = x * 3.0
        w[1] = 2.0
    else:
        w = z
    return np.sum(w * x) + np.sum(z ** 2)


def test_a_dict_made_in_one_branch_is_not_the_other_branchs():
    """The comprehension writes its own new dict: no alias of p, which the other branch
    yields (views.py joined both branches' values through the if's result)."""
    p = {'a': np.array([0.3, -1.2]), 'b': np.array([0.7, 2.0])}
    for lr, scale in ((0.1, 0.125), (-0.1, 1.0)):
        (g,) = check_program(cubes, p, lr, wrt=0)
        for k in p:
            assert np.allclose(g[k], 3 * scale * p[k] ** 2)
        v = {'a': np.ones(2), 'b': np.array([0.5, -1.0])}
        hv = adjoint.hvp(cubes)(p, lr, v)
        for k in p:
            assert np.allclose(hv[k], 6 * scale * p[k] * v[k])


def test_an_array_written_in_one_branch_is_not_the_other_branchs():
    for c in (1.0, -1.0):
        (g,) = check_program(written_in_a_branch, X, c, wrt=0)
        want = 2 * X + (np.array([6 * X[0], 2.0, 6 * X[2]]) if c > 0 else 2 * X)
        assert np.allclose(g, want)


def written_through_the_if(x, c):
    z = x * 1.0
    if c > 0:
        w = x * 3.0
    else:
        w = z
    w[1] = 2.0
    return np.sum(w * x) + np.sum(z)


def test_a_write_through_the_ifs_value_is_still_refused():
    """w may be z: the write changes z, read afterwards."""
    with pytest.raises(UnsupportedError, match="shares the array's memory"):
        adjoint.grad(written_through_the_if)(X, -1.0)


# ---------------------------------------------- np.diff(x, prepend=..., append=...)

def diff_with_ends(x):
    return np.sum(np.diff(x, prepend=0.5) ** 2) + np.sum(np.diff(x, append=x[0]) ** 3)


def diff_of_matrix_with_ends(A, x):
    # an array end, a number broadcast along axis 0, n=2, and an end on axis 1
    return np.sum(np.diff(A, 2, 0, prepend=A[:1] * 2.0, append=x[0]) ** 2) + \
        np.sum(np.diff(A, axis=1, prepend=x[:2, None]) ** 3)


def test_diff_with_prepend_and_append():
    (g,) = check_program(diff_with_ends, X)
    d1 = np.diff(X, prepend=0.5)
    d2 = np.diff(X, append=X[0])
    want = 2 * (d1 - np.append(d1[1:], 0.0))  # d/dx_i of (x_i - x_{i-1})^2 terms
    want += 3 * (np.append(0.0, d2[:-1] ** 2) - d2 ** 2)
    want[0] += 3 * d2[-1] ** 2  # x[0] is the appended end too
    assert np.allclose(g, want)
    v = np.array([0.5, -1.0, 2.0])
    got = adjoint.hvp(diff_with_ends)(X, v)
    step = 1e-5
    grad = adjoint.grad(diff_with_ends)
    np.testing.assert_allclose(got, (grad(X + step * v) - grad(X - step * v)) / (2 * step),
                               rtol=1e-6, atol=1e-8)


def test_diff_with_ends_along_an_axis():
    A = np.arange(6.0).reshape(2, 3) * 0.3 - 0.5
    x = np.array([0.3, -1.2, 0.7, 2.0])
    check_program(diff_of_matrix_with_ends, A, x)
    hv = adjoint.hvp(diff_of_matrix_with_ends, wrt=(0, 1))(A, x, (A * 0.5, x - 1.0))
    for a, b in zip(hv, numeric_hvp(diff_of_matrix_with_ends, (A, x), (A * 0.5, x - 1.0))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


# ------------------------------- [*L], zip(*pairs), sorted(p.keys()) bound to a name

def starred_lists(L, x):
    M = [*L]
    N = [x * 2.0, *L, *[x, x * 3.0], np.sin(x)]
    M[0] = M[0] * 2.0  # M is a new list: L[0] is unchanged
    return sum(np.sum(a ** 2) for a in M) + np.sum(N[1] * N[-2]) + np.sum(L[0] * N[0])


def test_starred_in_a_list_display():
    L = [X, X * 2.0]
    gL, gx = check_program(starred_lists, L, X)
    # sum (2 L0)^2 + L1^2 + L0 * 3x + L0 * 2x
    assert np.allclose(gL[0], 8.0 * X + 5.0 * X) and np.allclose(gL[1], 2.0 * L[1])
    assert np.allclose(gx, 5.0 * L[0])
    (gL,) = check_program(starred_lists, [X], X, wrt=0)  # another length
    assert np.allclose(gL[0], 8.0 * X + 5.0 * X)


def zipped_columns(P, x):
    s = 0.0
    for i, (W, b) in enumerate(zip(*P)):
        s = s + (i + 1) * np.sum(np.sin(W * b + x))
    return s + sum(np.sum(a * b * x) for a, b in zip(*P))


def test_zip_of_a_parameters_sequences():
    P = ([X, X * 2.0, X - 1.0], [X + 1.0, X - 1.0])  # the shortest decides, as zip does
    gP, gx = check_program(zipped_columns, P, X)
    assert np.allclose(gP[0][2], 0.0)
    c = [np.cos(P[0][i] * P[1][i] + X) for i in range(2)]
    assert np.allclose(gP[0][1], 2 * c[1] * P[1][1] + P[1][1] * X)
    hv = adjoint.hvp(zipped_columns, wrt=(0, 1))(P, X, (P, X))
    want = numeric_hvp(zipped_columns, (P, X), (P, X))
    for a, b in zip(hv[0][0] + hv[0][1] + [hv[1]], want[0][0] + want[0][1] + [want[1]]):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


def test_zip_of_more_sequences_than_a_trip_unpacks_is_refused():
    with pytest.raises(ValueError, match="unpacked into 2 names"):
        adjoint.grad(zipped_columns)(([X], [X], [X]), X)


def sorted_keys_bound(p, x):
    ks = sorted(p.keys())
    s = 0.0
    for k in ks:
        s = s * 2.0 + np.sum(p[k] * x)
    return s * len(list(p.keys()))


def test_sorted_keys_bound_to_a_name():
    p = {'b': X * 2.0, 'a': X - 1.0}
    gp, gx = check_program(sorted_keys_bound, p, X)
    assert list(gp) == ['b', 'a']
    assert np.allclose(gp['a'], 4.0 * X) and np.allclose(gp['b'], 2.0 * X)
    assert np.allclose(gx, 2.0 * (2.0 * p['a'] + p['b']))


def test_keys_of_a_list_is_refused():
    with pytest.raises(UnsupportedError, match="not known here to be a dict"):
        adjoint.grad(sorted_keys_bound, wrt=1)([X], X)


def views_as_values(p, x):
    vs = list(p.values())
    s = 0.0
    for i, (k, v) in enumerate(sorted(p.items(), reverse=True)):
        s = s * 2.0 + (i + 1) * np.sum(v * x)
    for v, w in zip(p.values(), reversed(vs)):
        s = s + np.sum(v * w)
    return s


def test_items_and_values_as_values():
    """d.items(), d.values() and sorted(d.items()) outside a for loop's header: the
    lists a loop over d makes (round 17: `.items()` inside enumerate was refused)."""
    p = {'b': X * 2.0, 'a': X - 1.0}
    gp, gx = check_program(views_as_values, p, X)
    assert np.allclose(gp['b'], 2.0 * X + 2.0 * p['a'])
    assert np.allclose(gp['a'], 2.0 * X + 2.0 * p['b'])
    assert np.allclose(gx, 2.0 * p['b'] + 2.0 * p['a'])


# -------------------------------------- functools.reduce over zip, enumerate, .values()

def reduced(p, Ws, x):
    h = functools.reduce(lambda h, iW: np.tanh(iW[1] * h) * (iW[0] + 1), enumerate(Ws), x)
    s = functools.reduce(lambda s, ab: s + np.sum(ab[0] * ab[1]), zip(Ws, Ws[1:]), 0.0)
    return np.sum(h * functools.reduce(lambda a, b: a * b, p.values())) + s


def test_reduce_over_zip_enumerate_and_values():
    p = {'b': X * 2.0, 'a': X - 1.0}
    for Ws in ([X, X * 0.5], [X, -X, X * 0.3], [X]):
        gp, gW, gx = check_program(reduced, p, Ws, X)
        h = X
        for i, W in enumerate(Ws):
            h = np.tanh(W * h) * (i + 1)
        assert np.allclose(gp['b'], h * p['a']) and np.allclose(gp['a'], h * p['b'])


# ------------------------- a module's (W, act) pairs walked reversed or through a slice

PAIRS = ((np.array([[0.5, -0.3], [0.2, 0.8]]), np.tanh),
         (np.array([[1.0, 0.4], [-0.7, 0.9]]), np.sin))


def pairs_walked(x):
    h = x
    for W, act in reversed(PAIRS):
        h = act(h @ W)
    for k, (W, act) in enumerate(PAIRS[1:]):
        h = h + (k + 1) * act(W @ h)
    return np.sum(h)


def test_pairs_of_functions_reversed_and_sliced():
    x = np.array([0.3, -1.2])
    (g,) = check_program(pairs_walked, x)
    (W0, _), (W1, _) = PAIRS
    a = x @ W1
    b = np.sin(a) @ W0
    h = np.tanh(b)
    c = W1 @ h
    # d/dx of sum(h + sin(W1 h))
    dh = 1.0 + W1.T @ np.cos(c)
    db = dh * (1 - h ** 2)
    da = (W0 @ db) * np.cos(a)
    assert np.allclose(g, W1 @ da)
