"""Recursion whose depth the call fixes (issue 15): an int the recursion counts down, and
now the length of a list, tuple or array argument that it splits or shortens. f is
lowered per tuple of those values with `len` folded, so the recursion unrolls; a call
with another length uses (or makes) another compiled derivative. Every gradient is
checked against central differences in float64 on several depths with one compiled
object, and against a formula by hand where one is short. A depth that floats decide
stays a located refusal."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import adjoint
from adjoint import UnsupportedError
from adjoint.testing import check_program, numeric_grad

EPS = 1e-6


def tree_sum(xs):
    """Depth from the length of a list or array argument: halves it."""
    if len(xs) == 1:
        return xs[0] ** 2
    h = len(xs) // 2
    return tree_sum(xs[:h]) + np.sin(tree_sum(xs[h:]))


def fact_like(x, n):
    """Depth from an int that changes from call to call."""
    if n <= 0:
        return x
    return x * fact_like(np.tanh(x), n - 1)


def bisect_root(a, b, c):
    """Depth from float values: a data-dependent stopping test."""
    m = 0.5 * (a + b)
    if b - a < 1e-3:
        return m * c
    if m * m > 2.0:
        return bisect_root(a, m, c)
    return bisect_root(m, b, c)


def fact_of_length(x, xs):
    """The depth is an int made from a list's length inside f."""
    return fact_like(x, len(xs)) * xs[-1]


def horner(c, x):
    """Recursion that shortens a list by one: c[0] + x (c[1] + x (c[2] + ...))."""
    if len(c) == 1:
        return c[0]
    return c[0] + x * horner(c[1:], x)


def shortened(xs):
    """The length changes in f before the recursion: pop, append, a write."""
    xs.pop()
    xs.append(xs[0] * 2.0)
    xs[1] = np.cos(xs[1])
    return tree_sum(xs)


def by_display(x):
    """A list display made in f: its length is its number of elements."""
    return tree_sum([x, 2.0 * x, np.exp(x), x * x, 0.5])


def tree_of_array(x, w):
    """A 2-d array argument, split along its first axis (its rows); w a float."""
    return w * np.sum(tree_sum(x))


def two_depths(x, n, xs):
    """Two depths: an int counted down, then a list shortened to empty."""
    if n > 0:
        return np.sin(two_depths(x, n - 1, xs))
    if len(xs) == 0:
        return x
    return xs[0] * two_depths(x, 0, xs[1:])


def tree_sum_by_hand(xs):
    """The gradient of tree_sum, by the chain rule on its halves."""
    xs = np.asarray(xs, dtype=float)
    if len(xs) == 1:
        return 2.0 * xs
    h = len(xs) // 2
    right = np.cos(tree_sum(xs[h:])) * tree_sum_by_hand(xs[h:])
    return np.concatenate([tree_sum_by_hand(xs[:h]), right])


def diff_of_grad(g, args, wrt, v):
    """Central differences of the gradient `g` along v (args[wrt] moved by t v)."""
    def moved(t):
        a = list(args)
        a[wrt] = args[wrt] + t * v
        return g(*a)
    return (np.asarray(moved(EPS)) - np.asarray(moved(-EPS))) / (2 * EPS)


def test_a_tree_sum_over_an_array_at_several_lengths_with_one_compiled_grad():
    g = adjoint.grad(tree_sum)
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 3, 8, 5):  # 5 again: the derivative made for it
        x = rng.normal(size=n)
        got = g(x)
        np.testing.assert_allclose(got, numeric_grad(tree_sum, (x,)), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(got, tree_sum_by_hand(x), rtol=1e-12, atol=1e-14)
    a, b = 0.3, -1.2  # length 2 by hand: a^2 + sin(b^2)
    np.testing.assert_allclose(g(np.array([a, b])), [2 * a, 2 * b * np.cos(b * b)],
                               rtol=1e-14)


def test_a_tree_sum_over_a_list_and_a_tuple_gives_their_gradient_kinds():
    g = adjoint.grad(tree_sum)
    for xs in ([0.4, -0.3, 1.1], [0.2, 0.9, -0.5, 0.7, 1.3, -0.1, 0.6], [1.5]):
        got = g(list(xs))
        assert isinstance(got, list) and len(got) == len(xs)
        np.testing.assert_allclose(got, tree_sum_by_hand(xs), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got, numeric_grad(tree_sum, (list(xs),)), rtol=1e-6,
                                   atol=1e-8)
    got = g((0.4, -0.3, 1.1, 0.8))
    assert isinstance(got, tuple)
    np.testing.assert_allclose(got, tree_sum_by_hand([0.4, -0.3, 1.1, 0.8]), rtol=1e-12)


def test_value_and_grad_vjp_and_check_program_of_a_length_recursion():
    x = np.array([0.4, -0.3, 1.1, 0.8, -0.6])
    value, dx = adjoint.value_and_grad(tree_sum)(x)
    assert value == pytest.approx(tree_sum(x), rel=1e-14)
    np.testing.assert_allclose(dx, tree_sum_by_hand(x), rtol=1e-12)
    out, pullback = adjoint.vjp(tree_sum, x)
    np.testing.assert_allclose(pullback(2.0), 2.0 * tree_sum_by_hand(x), rtol=1e-12)
    for n in (2, 3, 6):
        check_program(tree_sum, x[:n])
        check_program(horner, list(x[:n]), 0.7)
    check_program(shortened, [0.4, -0.3, 1.1, 0.8])
    check_program(by_display, 0.35)
    check_program(tree_of_array, np.array([[0.4, 0.1], [-0.3, 0.2], [1.1, 0.5]]), 0.9)


def test_jvp_hvp_and_grad_of_grad_of_a_length_recursion_at_several_lengths():
    rng = np.random.default_rng(1)
    j, h, gg = adjoint.jvp(tree_sum), adjoint.hvp(tree_sum), adjoint.hessian(tree_sum)
    g = adjoint.grad(tree_sum)
    for n in (3, 1, 4, 6):
        x, v = rng.normal(size=n), rng.normal(size=n)
        value, slope = j(x, v)
        assert value == pytest.approx(tree_sum(x), rel=1e-14)
        assert slope == pytest.approx(tree_sum_by_hand(x) @ v, rel=1e-10, abs=1e-12)
        want = diff_of_grad(g, (x,), 0, v)  # H v from the gradient
        np.testing.assert_allclose(h(x, v), want, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(gg(x) @ v, want, rtol=1e-6, atol=1e-8)


def test_an_int_depth_changes_on_each_call_of_one_grad():
    g, j, h = adjoint.grad(fact_like), adjoint.jvp(fact_like), adjoint.hvp(fact_like)
    x = 0.55
    for n in (0, 3, 1, 6, 3):
        want = numeric_grad(fact_like, (x, n))
        assert g(x, n) == pytest.approx(want, rel=1e-7)
        assert j(x, n, 1.5)[1] == pytest.approx(1.5 * want, rel=1e-7)
        assert h(x, n, 1.0) == pytest.approx(diff_of_grad(g, (x, n), 0, 1.0), rel=1e-6)
    assert g(x, 1) == pytest.approx(np.tanh(x) + x * (1 - np.tanh(x) ** 2), rel=1e-14)


def test_a_depth_from_the_length_of_a_list_inside_f():
    g = adjoint.grad(fact_of_length, wrt=(0, 1))
    for xs in ([0.5], [0.5, 2.0, -1.0], [0.1, 0.2]):
        dx, dxs = g(0.7, list(xs))
        want_x, want_xs = numeric_grad(fact_of_length, (0.7, list(xs)), wrt=(0, 1))
        assert dx == pytest.approx(want_x, rel=1e-7)
        np.testing.assert_allclose(dxs, want_xs, rtol=1e-7, atol=1e-9)
        assert dxs[-1] == pytest.approx(fact_like(0.7, len(xs)), rel=1e-14)  # by hand


def test_an_emitted_length_recursion_checks_the_length_on_entry():
    x = np.array([0.4, -0.3, 1.1])
    text = adjoint.source(tree_sum, args=(x,))
    assert "x.shape == (3,)" in text.replace("xs.shape", "x.shape")
    namespace = {}
    exec(text, namespace)
    np.testing.assert_allclose(namespace["tree_sum_grad"](x), tree_sum_by_hand(x),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="generated for"):
        namespace["tree_sum_grad"](np.array([0.4, -0.3, 1.1, 0.2]))
    text = adjoint.source(tree_sum, args=([0.4, -0.3],))
    namespace = {}
    exec(text, namespace)
    np.testing.assert_allclose(namespace["tree_sum_grad"]([0.4, -0.3]),
                               tree_sum_by_hand([0.4, -0.3]), rtol=1e-12)
    with pytest.raises(ValueError, match="generated for"):
        namespace["tree_sum_grad"]([0.4, -0.3, 0.5])


def test_an_int_and_a_length_together_key_one_grad():
    g = adjoint.grad(two_depths, wrt=(0, 2))
    x = 0.8
    for n, xs in ((2, [1.5, -0.5]), (1, [1.5, -0.5, 2.0]), (2, [0.3]), (0, [0.7]),
                  (2, [1.5, -0.5])):
        dx, dxs = g(x, n, list(xs))
        want_x, want_xs = numeric_grad(two_depths, (x, n, list(xs)), wrt=(0, 2))
        assert dx == pytest.approx(want_x, rel=1e-7)
        np.testing.assert_allclose(dxs, want_xs, rtol=1e-7, atol=1e-9)
    a = 0.3  # by hand, n = 2 and xs = [a]: sin(sin(a x))
    want = np.cos(np.sin(a * x)) * np.cos(a * x) * a
    assert g(x, 2, [a])[0] == pytest.approx(want, rel=1e-14)


def test_a_depth_that_floats_decide_is_refused_at_its_line():
    first = inspect.getsourcelines(bisect_root)[1]
    calls = [(adjoint.grad, ()), (adjoint.value_and_grad, ()), (adjoint.jvp, (1.0,)),
             (adjoint.hvp, (1.0,))]  # jvp's tangent, hvp's vector
    for make, extra in calls:
        with pytest.raises(UnsupportedError, match="constant arguments do not fix") as e:
            make(bisect_root, wrt=2)(1.0, 2.0, 3.0, *extra)
        assert e.value.loc.filename == __file__
        assert e.value.loc.line == first + 6 and e.value.loc.col == 15
        assert "lengths of its list" in str(e.value) and "floats decide" in str(e.value)
    with pytest.raises(UnsupportedError, match="constant arguments do not fix"):
        adjoint.source(bisect_root, args=(1.0, 2.0, 3.0))


def data_stop(xs):
    """Stops early on the data, and at the latest when one entry is left."""
    if len(xs) == 1 or xs[0] > 1.0:
        return np.sum(xs ** 2)
    return data_stop(xs[1:]) * xs[0]


def test_a_data_test_before_the_length_runs_each_way_in_the_unrolled_code():
    # unrolled to the depth the length allows; the data test is a branch at each level
    g = adjoint.grad(data_stop)
    for x in ([0.5, 2.0, 1.0, 0.3], [0.5, 0.2, 0.4, 0.3], [1.5, 0.2], [0.9]):
        x = np.array(x)
        np.testing.assert_allclose(g(x), numeric_grad(data_stop, (x,)), rtol=1e-7,
                                   atol=1e-9)
    a, b = 0.5, 2.0  # stops at b: a (b^2 + c^2 + ...) by hand
    np.testing.assert_allclose(g(np.array([a, b, 1.0])), [b * b + 1.0, 2 * a * b, 2 * a])


def weighted_tree(xs, w):
    if len(xs) == 1:
        return w * xs[0] ** 2
    h = len(xs) // 2
    return weighted_tree(xs[:h], w) + np.sin(weighted_tree(xs[h:], w))


class Tree:
    def __init__(self, s):
        self.s = s

    def product(self, xs):
        if len(xs) == 1:
            return self.s * xs[0] ** 2
        h = len(xs) // 2
        return self.product(xs[:h]) * self.product(xs[h:])


def test_a_length_recursion_through_a_partial_a_method_and_a_lambda():
    import functools
    for f in (functools.partial(weighted_tree, w=2.0), Tree(1.5).product,
              lambda v: weighted_tree(v, 0.5)):
        g = adjoint.grad(f)
        for n in (5, 2):
            x = np.linspace(0.2, 1.0, n)
            np.testing.assert_allclose(g(x), numeric_grad(f, (x,)), rtol=1e-7, atol=1e-9)
    x = np.array([0.4, 0.9])  # by hand: 1.5^2 a^2 b^2
    np.testing.assert_allclose(adjoint.grad(Tree(1.5).product)(x),
                               [2.25 * 2 * 0.4 * 0.81, 2.25 * 0.16 * 2 * 0.9], rtol=1e-14)


def halve(x):
    """The depth from x.shape[0] and np.shape(x)[0], as array code reads a length."""
    n = x.shape[0]
    if n == 1:
        return np.sin(x[0])
    return halve(x[: n // 2]) * halve(x[n // 2:]) + np.shape(x)[0] * 0.1


def rows(A):
    """Recursion over the rows of a matrix."""
    if A.shape[0] == 1:
        return np.sum(A[0] ** 2)
    return np.tanh(rows(A[1:])) * np.sum(A[0])


def test_a_depth_read_from_an_arrays_shape():
    g, h = adjoint.grad(halve), adjoint.grad(rows)
    for n in (1, 4, 7):
        x = np.linspace(0.2, 1.0, n)
        np.testing.assert_allclose(g(x), numeric_grad(halve, (x,)), rtol=1e-7, atol=1e-9)
        A = np.linspace(-0.9, 0.8, 2 * n).reshape(n, 2)
        np.testing.assert_allclose(h(A), numeric_grad(rows, (A,)), rtol=1e-7, atol=1e-9)
    a, b = 0.3, 1.1  # by hand: sin(a) sin(b) + 0.2
    np.testing.assert_allclose(g(np.array([a, b])), [np.cos(a) * np.sin(b),
                                                     np.sin(a) * np.cos(b)], rtol=1e-14)


def test_every_emitted_mode_of_a_recursion_checks_its_depth_on_entry():
    # forward mode wrote no check: its text read as generic (the same text as the
    # generic emission, which was lowered for the same depth), so fact_like_jvp(x, 5,
    # x_dot) ran the code unrolled for n == 2, and tree_sum_jvp any length with 3's
    x = 0.55
    for mode, name in (("forward", "fact_like_jvp"), ("reverse", "fact_like_grad"),
                       ("vjp", "fact_like_fwd")):
        namespace = {}
        exec(adjoint.source(fact_like, mode=mode, args=(x, 2)), namespace)
        with pytest.raises(ValueError, match="n == 2"):
            namespace[name](x, 5, 1.0) if mode == "forward" else namespace[name](x, 5)
    namespace = {}
    exec(adjoint.source(fact_like, mode="forward", args=(x, 2)), namespace)
    value, slope = namespace["fact_like_jvp"](x, 2, 1.0)
    assert value == pytest.approx(fact_like(x, 2), rel=1e-14)
    assert slope == pytest.approx(numeric_grad(fact_like, (x, 2)), rel=1e-7)
    xs = np.array([0.4, -0.3, 1.1])
    namespace = {}
    exec(adjoint.source(tree_sum, mode="forward", args=(xs,)), namespace)
    v = np.array([1.0, 0.5, -2.0])
    assert namespace["tree_sum_jvp"](xs, v)[1] == pytest.approx(tree_sum_by_hand(xs) @ v,
                                                                rel=1e-12)
    with pytest.raises(ValueError, match=r"shape == \(3,\)"):
        namespace["tree_sum_jvp"](np.append(xs, 0.2), np.append(v, 1.0))


def test_a_depth_past_the_unrolling_limits_is_refused_saying_so():
    # 256 calls in all: tree_sum of 200 entries makes 399; 20 levels: fact_like at 21
    for f, args in ((tree_sum, (np.linspace(0.0, 1.0, 200),)), (fact_like, (0.5, 21))):
        with pytest.raises(UnsupportedError, match=r"deeper than 20 levels \(256 calls") as e:
            adjoint.grad(f)(*args)
        assert e.value.loc.filename == __file__ and "as a loop" in e.value.hint
    assert adjoint.grad(fact_like)(0.5, 20) == pytest.approx(
        numeric_grad(fact_like, (0.5, 20)), rel=1e-6, abs=1e-12)


def popping(xs):
    """A helper that pops from the caller's list on the way down (as Python does)."""
    if len(xs) == 1:
        return xs[0]
    y = xs.pop()
    return y * np.sin(popping(xs))


def after_popping(xs):
    return popping(xs) + len(xs) * xs[0]  # xs is one entry long afterwards


def test_lists_jvp_hvp_and_a_helper_that_pops_from_the_callers_list():
    xs, v = [0.3, 0.6, 0.9], [1.0, -1.0, 0.5]
    g = adjoint.grad(tree_sum)
    value, slope = adjoint.jvp(tree_sum)(list(xs), list(v))
    assert value == pytest.approx(tree_sum(xs), rel=1e-14)
    assert slope == pytest.approx(np.dot(tree_sum_by_hand(xs), v), rel=1e-12)
    want = diff_of_grad(lambda a: np.asarray(g(list(a))), (np.array(xs),), 0, np.array(v))
    np.testing.assert_allclose(adjoint.hvp(tree_sum)(list(xs), list(v)), want, rtol=1e-6)
    for n in (1, 4, 2):
        ys = list(np.linspace(0.3, 1.2, n))
        np.testing.assert_allclose(adjoint.grad(after_popping)(list(ys)),
                                   numeric_grad(after_popping, (list(ys),)), rtol=1e-7,
                                   atol=1e-9)
