"""Early exits from loops: break, continue, return, a loop's else, while True, and the
loop variable after the loop. Each program is checked three ways: the value that
value_and_grad computes is the function's own, the gradient matches central finite
differences, and, where one exists, a formula derived by hand."""
import math

import numpy as np
import pytest

import adjoint
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


# ---------------------------------------------------------------- break


def fixed_point(x):
    lam = 0.0
    for it in range(10):
        new = lam * 0.5 + x
        if abs(new - lam) < 1e-3:
            lam = new
            break
        lam = new
    return lam


def test_assignment_on_the_break_branch_is_kept():
    value, g = check(fixed_point, 1.0)
    # lam = x (1 + 1/2 + ... + 1/2^k) is linear in x: the gradient is lam / x
    assert value == pytest.approx(1.998046875, abs=1e-12)
    assert g == pytest.approx(value / 1.0, rel=1e-12)


def fixed_point_while(x):
    lam = 0.0
    it = 0
    while it < 50:
        new = math.cos(lam) * 0.5 + x
        it = it + 1
        if abs(new - lam) < 1e-12:
            lam = new
            break
        lam = new
    return lam


def test_while_fixed_point_matches_the_implicit_derivative():
    x = 0.7
    value, g = check(fixed_point_while, x)
    # at lam = cos(lam) / 2 + x: dlam/dx = 1 / (1 + sin(lam) / 2)
    assert value == pytest.approx(math.cos(value) * 0.5 + x, abs=1e-11)
    assert g == pytest.approx(1.0 / (1.0 + math.sin(value) / 2), rel=1e-9)


def power_iteration(A):
    v = np.ones(A.shape[0]) / np.sqrt(A.shape[0])
    lam = 0.0
    it = 0
    while it < 200:
        w = A @ v
        new = v @ w
        v = w / np.linalg.norm(w)
        it = it + 1
        if abs(new - lam) < 1e-13:
            lam = new
            break
        lam = new
    return lam


def test_power_iteration_gradient_is_the_outer_product_of_the_eigenvector():
    A = np.array([[2.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 1.5]])
    value, g = check(power_iteration, A)
    w, V = np.linalg.eigh(A)
    assert value == pytest.approx(w[-1], rel=1e-12)
    assert np.abs(g).sum() > 0.5  # it was all zeros
    assert np.allclose(g, np.outer(V[:, -1], V[:, -1]), atol=1e-5)


def placements_for(x, n):
    s = 0.0
    t = 1.0
    for i in range(n):
        s = s + x * i  # before the breaking if
        if s > 3.0:
            t = t * s  # inside, before the break
            s = s * 0.5
            break
        t = t + s * x  # after
    return s * t + t


def placements_while(x, n):
    s = 0.0
    t = 1.0
    i = 0
    while i < n:
        s = s + x * i
        i = i + 1
        if s > 3.0:
            t = t * s
            s = s * 0.5
            break
        t = t + s * x
    return s * t + t + i


def break_in_elif(x):
    s = x
    for i in range(8):
        if s < -5.0:
            s = s * 2.0
        elif s > 5.0:
            s = s - x
            break
        else:
            s = s * 1.7 + x
    return s


def nested_break(x):
    total = 0.0
    for i in range(4):
        acc = x * (i + 1)
        for j in range(5):
            acc = acc * 1.3
            if acc > 4.0:
                acc = acc - x
                break
            total = total + acc * 0.1
        total = total + acc
        if total > 20.0:
            total = total * x
            break
    return total


def while_true(x):
    s = x
    while True:
        s = s * 1.5 + 0.1
        if s > 4.0:
            s = s - x
            break
        s = s + x * 0.1
    return s


def over_list(x):
    xs = [x, 2.0 * x, x * x, 3.0]
    s = 0.0
    for v in xs:
        if v > 2.5:
            s = s + v * 0.5
            break
        s = s + v
    return s * v


def over_array(x):
    s = 0.0
    for v in x:
        s = s + v * v
        if s > 1.0:
            s = s * v
            break
    return s


def enumerate_break(x):
    s = 0.0
    for k, a in enumerate(x):
        s = s + a * k
        if s > 1.0:
            break
    return s * a + k


def zip_break(x, w):
    s = 0.0
    for a, b in zip(x, w):
        if a * b > 0.35:
            s = s * a
            break
        s = s + a * b
    return s + a


def zip3_break(x, w, v):
    s = 0.0
    for a, b, c in zip(x, w, v):
        s = s + a * b * c
        if s > 0.5:
            break
    return s * a


def find_first(x):
    for i in range(10):
        v = x * i
        if v > 2.0:
            found = v * x  # bound on the break branch only
            break
    return found


def checkpointed_break(x, n):
    s = x
    for t in adjoint.checkpointed(range(n), snapshots=2):
        s = s * 1.1
        if s > 2.0:
            break
    return s


def test_breaking_loops_over_enumerate_and_zip():
    W = np.array([1.0, 0.2, 0.5, 2.0])
    check(enumerate_break, V)
    check(enumerate_break, V * 0.1)  # no break
    check(zip_break, V, W, wrt=(0, 1))
    check(zip_break, V * 0.1, W, wrt=(0, 1))
    _, (gx, gw, gv) = check(zip3_break, V, W, V[:3], wrt=(0, 1, 2))
    assert gx.shape == (4,) and gv.shape == (3,)


def test_a_name_bound_only_on_the_break_branch():
    _, g = check(find_first, 0.7)
    assert g == pytest.approx(2 * 0.7 * 3)  # found = 3 x^2 (the first i with 0.7 i > 2)


def test_a_checkpointed_loop_that_breaks_is_refused_at_the_loop():
    with pytest.raises(adjoint.UnsupportedError) as info:
        adjoint.grad(checkpointed_break)(1.5, 10)
    assert "test_control.py" in str(info.value) and "checkpointed" in str(info.value)


# ------------------------------------------------------- continue, return


def continues(x):
    s = 0.0
    for i in range(6):
        s = s + x
        if i % 2 == 0:
            s = s * 1.1
            continue
        s = s * x
    return s


def continue_and_break(x):
    s = 0.0
    i = 0
    while i < 20:
        i = i + 1
        s = s + x
        if i % 3 == 0:
            s = s * 0.9
            continue
        if s > 4.0:
            s = s * s
            break
        s = s + 0.5 * x
    return s


def return_in_loop(x):
    s = x
    for i in range(10):
        s = s * 1.5
        if s > 3.0:
            t = s * x
            return t + s
        s = s + 0.1
    return s * 2.0


def return_in_nested(x):
    s = x
    for i in range(5):
        for j in range(5):
            s = s * 1.2 + x
            if s > 10.0:
                s = s - 1.0
                return s * x
        s = s * 0.5
    return s


def return_in_while(x):
    s = x
    k = 0
    while k < 10:
        k = k + 1
        s = s * 1.5
        if s > 3.0:
            s = s + x
            return s * k
    return -s


# ------------------------------------------------------------- loop else


def for_else(x):
    s = x
    for i in range(6):
        s = s * 1.3
        if s > 2.0:
            s = s - x
            break
    else:
        s = s * x
    return s


def for_else_without_break(x):
    s = x
    for i in range(3):
        s = s * x + 1.0
    else:
        s = s * 2.0
    return s + i


def while_else(x):
    s = x
    k = 0
    while k < 5:
        k = k + 1
        s = s * 1.2
        if s > 3.0:
            break
    else:
        s = -s * x
    return s * k


def else_returns(x):
    s = x
    for i in range(4):
        s = s * x
        if s > 5.0:
            break
    else:
        return s * 10.0
    return s + 1.0


def return_skips_else(x):
    s = x
    for i in range(4):
        s = s * 1.5
        if s > 3.0:
            return s * x
    else:
        s = s + x
    return s * 2.0


def inner_else_continues_outer(x):
    s = 0.0
    for i in range(5):
        for j in range(3):
            s = s + x * j
            if s > 2.0:
                break
        else:
            s = s * 1.1
            continue
        s = s * x
        break
    return s


def inner_else_returns(x):
    s = x
    for i in range(5):
        for j in range(3):
            s = s * 1.2
            if s > 6.0:
                break
        else:
            return s * x
        s = s - x
    return s


# ------------------------------------------------ the loop variable after


def loop_variable_after(x, n):
    s = x
    for i in range(n):
        s = s * 1.1
    return s * i


def loop_variable_after_break(x):
    s = x
    for i in range(10):
        s = s * 1.4
        if s > 3.0:
            break
    return s * i


def loop_variables_after_zip(x, w):
    s = 0.0
    for a, b in zip(x, w):
        s = s + a * b
    return s * a + b


def loop_variable_kept_when_no_trip(x, n):
    i = 2
    s = x
    for i in range(n):
        s = s * x
    return s * i


V = np.array([0.3, 0.5, 0.9, 0.2])

CASES = [
    (placements_for, (0.7, 6)), (placements_for, (0.1, 6)), (placements_for, (0.1, 2)),
    (placements_while, (0.7, 6)), (placements_while, (0.1, 6)), (placements_while, (0.1, 2)),
    (break_in_elif, (0.8,)), (break_in_elif, (-3.0,)),
    (nested_break, (0.9,)), (nested_break, (0.3,)),
    (while_true, (0.5,)), (while_true, (3.0,)),
    (over_list, (0.8,)), (over_list, (1.6,)), (over_array, (V,)), (over_array, (V * 0.1,)),
    (continues, (0.8,)), (continue_and_break, (0.6,)), (continue_and_break, (0.1,)),
    (return_in_loop, (1.1,)), (return_in_loop, (0.1,)),
    (return_in_nested, (0.4,)), (return_in_nested, (0.01,)),
    (return_in_while, (0.5,)), (return_in_while, (0.001,)),
    (for_else, (0.9,)), (for_else, (0.1,)), (for_else_without_break, (0.7,)),
    (while_else, (0.8,)), (while_else, (0.3,)),
    (else_returns, (1.2,)), (else_returns, (2.0,)),
    (return_skips_else, (1.1,)), (return_skips_else, (0.2,)),
    (inner_else_continues_outer, (0.3,)), (inner_else_continues_outer, (0.1,)),
    (inner_else_continues_outer, (0.02,)),
    (inner_else_returns, (1.0,)), (inner_else_returns, (4.0,)), (inner_else_returns, (0.5,)),
    (loop_variable_after, (0.5, 5)), (loop_variable_after_break, (0.5,)),
    (loop_variable_kept_when_no_trip, (0.7, 0)), (loop_variable_kept_when_no_trip, (0.7, 3)),
]


@pytest.mark.parametrize("f, args", CASES, ids=[f"{f.__name__}-{a[0]!r:.6}" if np.ndim(a[0])
                                                 == 0 else f.__name__ for f, a in CASES])
def test_value_and_gradient(f, args):
    check(f, *args)


def test_loop_variables_of_zip_after_the_loop():
    x, w = np.array([0.3, 0.5, 0.7]), np.array([1.0, 2.0, -1.0])
    _, (gx, gw) = check(loop_variables_after_zip, x, w, wrt=(0, 1))
    s = x @ w  # f = s * x[-1] + w[-1]
    assert np.allclose(gx, w * x[-1] + np.array([0, 0, s]))
    assert np.allclose(gw, x * x[-1] + np.array([0, 0, 1.0]))


def test_a_branch_of_the_break_taken_or_not_gives_the_hand_derivative():
    # placements_for(x, 2): no break; s = x, t = 1 + 0 + x * x; f = s * t + t
    _, g = check(placements_for, 0.1, 2)
    x = 0.1
    assert g == pytest.approx((1 + x * x) + x * 2 * x + 2 * x, rel=1e-12)
