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


# Round 10a: ints, keys and picks the data decides through control flow (A1, A2, K3),
# set routines (A3) and a module's mutable containers (B1). Each is right on the call
# that compiles and was wrong on the next: the size, trip count or kind it saw was folded.

def size_by_if(x):
    k = 2 if x[0] > 0 else 3  # constants on both sides; the data picks one
    return np.mean(x[:k] ** 2)


def size_by_bool(x):
    return np.mean(x[:2 + (x[0] > 0)] ** 2) + np.mean(x[:1 + int(x[1] > 0)])


SIZES = {True: 2, False: 3}


def size_from_table(x):
    return np.mean(x[:SIZES[bool(x[0] > 0)]] ** 2)


def size_by_where(x):
    return np.mean(np.zeros(np.where(x[0] > 0, 2, 3)) + x[:np.where(x[0] > 0, 2, 3)] ** 2)


def _first_or_second(v):
    if v > 0:
        return 2
    return 3


def size_from_helper(x):
    return np.sum(np.tile(x, _first_or_second(x[0]) - 1) ** 2) / np.diag(
        np.outer(x, x), _first_or_second(x[1])).size


def size_by_counting(x):
    n = 0
    for v in x:
        if v > 0.5:
            n = n + 1
    return np.mean(x[:n + 1] ** 2)


def size_by_while(x):
    i = 0
    while x[i] > 0:  # the first index where the data drops below 0
        i += 1
    return np.mean(x[:i] ** 2)


def size_by_break(x):
    n = len(x)
    for i in range(len(x)):
        if x[i] < 0:
            n = i
            break
    return np.mean(np.stack([x[j:j + 2] for j in range(n)]) ** 2)


def size_by_early_return(x):
    for i in range(len(x)):
        if x[i] < 0:
            return np.mean(x[:i] ** 2)
    return np.mean(x ** 2)


def trips_by_if(x):
    s = 2.0
    for _ in range(0 if x[0] < 1 else 2):  # P1 through an if: no trip, or two
        s = x[:4] * s
    return np.sum(x[:4] ** 2 * s)


def trips_by_bool(x):
    s = 1.0
    for _ in range(1 + 2 * int(x[0] > 1)):
        s = s * x[:2]
    return np.sum(s * x[2:4])


def size_by_dict(x):
    d = {"a": x[0]}
    if x[1] > 0.5:
        d["b"] = x[1]
    e = {i: x[i] for i in range(len(x)) if x[i] > 0.5}
    return np.mean(np.array(list(d.values())) ** 2) + np.mean(x[:len(e) + 1])


def pick_by_bool(x):
    t = (x[1] * x, 0)  # an array or an int, as the data picks
    d = {"a": 1.0, "b": x[1] * x}
    return np.sum(t[int(x[0] > 0)] * x) + np.sum(d["a" if x[0] > 0 else "b"] * x)


def pick_in_loop(x):
    L = [x * x[1], x[2] * 1.0]
    s = 0.0
    for i in range(2):
        if x[i] > 0:  # L[i] read on the trips the data lets through
            s = s + L[i] + np.mean(x[:i + 1] ** 2)
    return np.sum(s * x)


def pick_by_argmax(x):
    L = [x[1] * x, x[2] * 1.0]
    return np.sum(L[np.argmax(x[:2])] * x)


UP = np.array([0.8, 0.9, -0.3, 0.6, 0.7, 0.2])
DOWN = np.array([-0.8, 0.2, 0.7, -0.4, -0.6, 0.1])
FLOWS = np.array([0.8, 0.2, 0.7, -0.4, -0.6, 0.1])
CONTROL = [
    (size_by_if, UP, DOWN),
    (size_by_bool, UP, DOWN),
    (size_from_table, UP, DOWN),
    (size_by_where, UP, DOWN),
    (size_from_helper, UP, DOWN),
    (size_by_counting, UP, FLOWS),
    (size_by_while, UP, FLOWS),
    (size_by_break, UP, FLOWS),
    (size_by_early_return, UP, FLOWS),
    (trips_by_if, np.array([0.5, 0.7, 0.2, 0.4, 0.1, 0.3]),
     np.array([2.5, -0.7, 1.2, 0.4, 0.1, 0.3])),
    (trips_by_bool, np.array([0.5, 0.7, 0.2, 0.4]), np.array([2.5, -0.7, 1.2, 0.4])),
    (size_by_dict, UP, FLOWS),
    (pick_by_bool, np.array([0.9, 0.3, 0.2, 0.4]), np.array([-0.5, 0.8, 0.7, -0.4])),
    (pick_in_loop, np.array([-0.5, 0.8, 0.7, -0.4]), np.array([0.9, 0.3, 0.2, 0.4])),
    (pick_by_argmax, np.array([0.9, 0.3, 0.2, 0.4]), np.array([-0.5, 0.8, 0.7, -0.4])),
]


@pytest.mark.parametrize("f, first, second", CONTROL, ids=[c[0].__name__ for c in CONTROL])
@pytest.mark.parametrize("order", ["as_listed", "reversed"])
def test_what_the_data_decides_through_control_flow_is_not_folded(tmp_path, f, first, second,
                                                                 order):
    test_a_gradient_is_right_on_the_path_its_first_call_did_not_take(tmp_path, f, first,
                                                                     second, order)


def _hvp_fd(f, x, v, eps=1e-3):
    def grad(y):
        return numeric_grad(f, (y,), eps=1e-4)
    return (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)


MODES = [c for c in CONTROL if c[0] in (size_by_if, size_by_while, trips_by_if, size_by_dict,
                                        pick_by_bool, pick_in_loop)]


@pytest.mark.parametrize("f, first, second", MODES, ids=[c[0].__name__ for c in MODES])
def test_every_reverse_mode_is_right_on_the_second_call(tmp_path, f, first, second):
    """hvp, vjp, jacobian, checkpointing, numba and an emitted file (`adjoint emit
    --args`) are specialised on the first call as grad is."""
    v = np.linspace(0.3, -0.4, first.size)
    h = adjoint.hvp(f, cache_dir=tmp_path)
    ck = adjoint.grad(f, checkpoint=1, cache_dir=tmp_path)
    nb = adjoint.grad(f, backend="numba", cache_dir=tmp_path)
    J = adjoint.jacobian(f)
    namespace = {"np": np}
    exec(compile(adjoint.source(f, args=(first,)), "emitted.py", "exec"), namespace)
    emitted = namespace[f.__name__ + "_grad"]
    for x in (first, second):
        want = numeric_grad(f, (x,))
        for g in (ck, nb, J, emitted, lambda x: adjoint.vjp(f, x)[1](1.0)):
            np.testing.assert_allclose(np.ravel(g(x)), want, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(h(x, v), _hvp_fd(f, x, v), rtol=1e-4, atol=1e-5)


def keep_the_rest(x, drop):
    keep = np.setdiff1d(np.arange(x.shape[0]), drop)  # how many: the values of drop
    common = np.intersect1d(np.arange(3), drop)
    both = np.union1d(np.array([0]), drop)
    either = np.setxor1d(np.array([0, 1]), drop)
    roots = np.roots(np.array([drop[0] * 1.0, 1.0, -2.0]))  # leading zeros trimmed
    return (np.mean(x[keep] ** 2) + np.mean(x[common]) + np.mean(x[both] ** 2) +
            np.mean(x[either] ** 3) + np.mean(x[:roots.shape[0]] ** 2))


def test_set_routines_size_by_values(tmp_path):
    x = np.array([0.8, 0.9, -0.3, 0.6, 0.7, 0.2])
    for calls in (([1, 4], [0, 0]), ([0, 0], [1, 4])):
        g = adjoint.grad(keep_the_rest, cache_dir=tmp_path)
        for drop in calls:
            drop = np.array(drop)
            want = numeric_grad(lambda v: keep_the_rest(v, drop), (x,))
            np.testing.assert_allclose(g(x, drop), want, rtol=1e-6, atol=1e-8)


CFG = {"k": 3, "inner": {"n": 2}}


def size_from_module_dict(x):
    return np.mean(x[:CFG["k"]] ** 2) + np.mean(x[:CFG["inner"]["n"]])


def _sized_by_cell(k):
    def f(x):
        return np.mean(x[:k[0]] ** 2) + np.sum(np.zeros(len(k)) + x[0])
    return f


def test_an_int_in_a_modules_or_closures_list_or_dict_is_read_each_call(tmp_path):
    """The slots of a list or dict f reads from outside may change between calls (a
    config): the ints in them are not folded (guards see the container, not its slots)."""
    x = np.array([0.8, 0.9, -0.3, 0.6, 0.7, 0.2])
    cell = [3]
    by_cell = _sized_by_cell(cell)
    grads = [(f, adjoint.grad(f, cache_dir=tmp_path)) for f in (size_from_module_dict, by_cell)]
    try:
        for k, n in ((3, 2), (2, 4)):
            CFG["k"], CFG["inner"]["n"], cell[0] = k, n, k
            if k == 2:
                cell.append(0)
            for f, g in grads:
                want = numeric_grad(f, (x,))
                np.testing.assert_allclose(g(x), want, rtol=1e-6, atol=1e-8)
                np.testing.assert_allclose(adjoint.grad(f, cache_dir=tmp_path)(x), want,
                                           rtol=1e-6, atol=1e-8)
    finally:
        CFG["k"], CFG["inner"]["n"] = 3, 2
