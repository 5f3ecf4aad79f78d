"""Constructs adjoint used to refuse although their gradient is well defined, and the
refusals that remain where Python's semantics cannot be followed (an in-place update
that another name of the same array or list would see). Accepted programs: the value
is the function's own, the gradient matches central finite differences and, where
one exists, a hand-derived formula. Refused programs: a located UnsupportedError at
the offending line, with a hint."""
import inspect

import numpy as np
import pytest

import adjoint
from adjoint import UnsupportedError
from adjoint.testing import numeric_grad


def check(f, *args, wrt=0):
    value, g = adjoint.value_and_grad(f, wrt=wrt)(*args)
    assert np.allclose(value, f(*args), rtol=1e-13, atol=0), (value, f(*args))
    want = numeric_grad(f, args, wrt)
    pairs = zip(g, want) if isinstance(wrt, tuple) else [(g, want)]
    for a, b in pairs:
        assert np.shape(a) == np.shape(b)
        assert np.allclose(a, b, rtol=1e-6, atol=1e-8), (a, b)
    return value, g


def refused(f, *args, at: str, says: str):
    """`f` is refused at the line of `f`'s source that contains `at`."""
    lines, first = inspect.getsourcelines(f)
    line = first + next(i for i, text in enumerate(lines) if at in text)
    with pytest.raises(UnsupportedError) as info:
        adjoint.grad(f)(*args)
    text = str(info.value)
    assert f"{__file__}:{line}:" in text, text
    assert says in text, text
    assert "hint:" in text, text


# ------------------------------------------------- `z = x; z += y` on numbers


def float_alias(x, y):
    z = x
    z += y
    z *= x
    return z + x * y


def int_alias(x, n):
    k = n
    k += 1
    return x ** k + x * n


def alias_in_loop(x):
    s = x
    for i in range(3):
        r = s
        s += x * i
        s *= r
    return s + r


def alias_in_loop_without_trips(x, y, n):
    s = y
    i = 0
    while i < n and abs(s) < 0.35:
        z = s
        z += x * y
        s = 0.5 * z
        i += 1
    return s * x + y


def test_a_number_under_two_names_is_rebound():
    _, (gx, gy) = check(float_alias, 1.5, 0.5, wrt=(0, 1))
    # f = (x + y) x + x y
    assert (gx, gy) == pytest.approx((2 * 1.5 + 2 * 0.5, 2 * 1.5))
    _, g = check(int_alias, 1.3, 2)
    assert g == pytest.approx(3 * 1.3 ** 2 + 2)
    check(alias_in_loop, 0.7)
    check(alias_in_loop_without_trips, 0.7, 0.4, 5, wrt=(0, 1))  # the loop runs no trip
    check(alias_in_loop_without_trips, 0.1, 0.1, 5, wrt=(0, 1))


def array_alias_read_later(x):
    a = np.array([1.0, 2.0]) * x
    b = a
    b += 1.0
    return np.sum(a * b)


def array_alias_not_read_later(x):
    a = np.array([1.0, 2.0]) * x
    b = a
    b += 1.0
    return np.sum(b * b)


def list_alias_in_loop(x):
    xs = [x]
    ys = xs
    for i in range(3):
        ys += [x * i]
    return xs[-1] + ys[-1] * len(xs)


def test_an_array_updated_under_another_name_is_refused_only_if_that_name_is_read():
    refused(array_alias_read_later, 1.5, at="b += 1.0", says="in place")
    _, g = check(array_alias_not_read_later, 1.5)
    assert g == pytest.approx(2 * (1.5 + 1) + 2 * 2 * (3.0 + 1))
    # ys += [...] extends the list xs names too (it was silently wrong: 4.5 for 15.0)
    refused(list_alias_in_loop, 1.5, at="ys += [x * i]", says="shares")


# ------------------------------------------------------------ max and min


def max_of_three(x, y, z):
    return max(x, y, z) * min(x, y, z)


def max_of_list(x, y):
    xs = [x, y * 2.0, x * y]
    return max(xs) * min(xs)


def max_of_array(a):
    return max(a) + 2.0 * min(a)


def max_of_ints(x, n):
    s = 0.0
    for i in range(min(n, 4, len(x))):
        s = s + x[i] * max(1, n, 2)
    return s


def max_of_elements(a):
    return max(a[0], a[1], a[2])


def max_with_a_repeat(x, y):
    return max(x, y, x)


@pytest.mark.parametrize("args", [(1.0, 2.0, 0.5), (0.3, -1.0, 0.7), (-0.2, -0.1, -0.3)])
def test_max_and_min_of_three(args):
    _, g = check(max_of_three, *args, wrt=(0, 1, 2))
    hi, lo = int(np.argmax(args)), int(np.argmin(args))
    want = np.zeros(3)
    want[hi] += args[lo]
    want[lo] += args[hi]
    assert np.allclose(g, want)


def test_max_and_min_of_a_list_and_an_array():
    check(max_of_list, 1.5, 0.5, wrt=(0, 1))
    check(max_of_list, 0.4, 0.9, wrt=(0, 1))
    _, g = check(max_of_array, np.array([1.0, 3.0, 2.0]))
    assert np.allclose(g, [2.0, 1.0, 0.0])
    _, g = check(max_of_ints, np.arange(5.0), 3)
    assert np.allclose(g, [3.0, 3.0, 3.0, 0.0, 0.0])


def test_ties_split_evenly():
    # the documented convention (docs/rules.md), as for two-argument max and np.max
    g = adjoint.grad(max_of_array)(np.array([2.0, 2.0, 2.0]))
    assert np.allclose(g, [1.0, 1.0, 1.0])  # a third of max's and of min's each
    g = adjoint.grad(max_of_elements)(np.array([2.0, 2.0, 1.0]))
    assert np.allclose(g, [0.5, 0.5, 0.0])
    g = adjoint.grad(max_with_a_repeat, wrt=(0, 1))(1.0, 1.0)
    assert np.allclose(g, (2 / 3, 1 / 3))
    _, g = check(max_with_a_repeat, 2.0, 1.0, wrt=(0, 1))
    assert np.allclose(g, (1.0, 0.0))


def max_with_key(xs):
    return max(xs, key=abs)


def max_with_a_default(xs):
    return max(xs, key=abs, default=0.0)


def test_max_with_a_key_differentiates_and_with_a_default_is_refused():
    # key= chooses on the forward values (issue 15; tests/test_coverage23.py)
    _, g = check(max_with_key, [1.0, -2.0])
    assert g == [0.0, 1.0]
    refused(max_with_a_default, [1.0, -2.0], at="default=0.0", says="default=")


# -------------------------------------------------------------- list.pop


def pops(x):
    xs = [x, x * 2.0, x * x]
    a = xs.pop()
    b = xs.pop(0)
    return a * b + xs[0] * len(xs)


def stack(x):
    st = [x]
    s = 0.0
    for i in range(4):
        st.append(st[-1] * 1.5 + x)
    while len(st) > 1:
        v = st.pop()
        s = s + v * v
    return s + st[0]


def pop_seen_by_alias(x):
    xs = [x, 2.0]
    ys = xs
    ys.pop()
    return xs[0] * len(xs) + x


def pop_statement_in_loop(x):
    xs = [x, x * 3.0, x * x, 1.0]
    for i in range(2):
        xs.pop(-1)
    return xs[-1] * len(xs)


def test_list_pop():
    _, g = check(pops, 1.5)
    assert g == pytest.approx(3 * 1.5 ** 2 + 2.0)  # f = x^2 x + 2x
    check(stack, 0.7)
    _, g = check(pop_seen_by_alias, 1.5)
    assert g == pytest.approx(2.0)
    _, g = check(pop_statement_in_loop, 0.8)
    assert g == pytest.approx(6.0)


def pop_of_array(x):
    a = np.array([x, 2.0])
    return a.pop()


def pop_of_tuple(x):
    t = (x, 2.0)
    return t.pop()


def pop_at(x):
    xs = [x, 2.0, 3.0]
    return xs.pop(1)


def pop_of_held_list(x):
    xs = [x, 2.0]
    held = [xs, 3.0]
    xs.pop()
    return held[1] * len(held[0])


def test_pop_refusals():
    refused(pop_of_array, 1.5, at="a.pop()", says="only a list's pop")
    refused(pop_of_tuple, 1.5, at="t.pop()", says="only a list's pop")
    refused(pop_at, 1.5, at="xs.pop(1)", says="pop(0)")
    refused(pop_of_held_list, 1.5, at="xs.pop()", says="`held`")


# ---------------------------------- writes into a value a list or tuple holds


def append_to_held_list(x):
    xs = [x]
    held = [xs, 1.0]
    xs.append(x * 2.0)
    return held[0][-1]


def write_into_tuple_member(x):
    xs = [x]
    t = (xs, 2.0)
    xs[0] = x * 3.0
    return t[0][0]


def write_into_row(x):
    rows = [[x, 1.0], [2.0, x]]
    r = rows[0]
    r[1] = x * x
    return rows[0][1] + r[0]


def arrays_in_a_list(x):
    h0 = np.array([x, 1.0])
    hs = [h0]
    for i in range(3):
        hs.append(hs[-1] * x)
    return np.sum(hs[-1]) + np.sum(h0)


def test_writes_that_a_holding_list_would_see_are_refused():
    # each gave the value from before the write, silently
    refused(append_to_held_list, 1.5, at="xs.append(", says="`held`")
    refused(write_into_tuple_member, 1.5, at="xs[0] = x * 3.0", says="in place")
    refused(write_into_row, 1.5, at="r[1] = x * x", says="`rows`")
    # appending to a list changes nothing it holds
    _, g = check(arrays_in_a_list, 1.5)
    assert g == pytest.approx(4 * 1.5 ** 3 + 3 * 1.5 ** 2 + 1)
