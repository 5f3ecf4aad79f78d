"""The Python that numeric code uses (issue 15): comprehensions and generator
expressions (lowered to loops), lambdas, nested functions and closures,
functools.partial, bound methods whose `self` attributes are read as constants,
`*args` at call sites, print and assert. Each gradient is checked by
adjoint.testing.check_program (central differences, translation validation, and
jvp against vjp) and, where one is short, against the formula by hand; each
refusal is a located UnsupportedError with a hint."""
import functools
import inspect
import math
import typing

import numpy as np
import pytest

import adjoint
from adjoint import UnsupportedError
from adjoint.testing import check_program

X = np.array([0.5, -1.0, 2.0])


def refused(f, *args, at: str, says: str):
    """`adjoint.grad(f)(*args)` is refused at the line of f's source containing `at`."""
    lines, first = inspect.getsourcelines(f)
    line = first + next(i for i, text in enumerate(lines) if at in text)
    with pytest.raises(UnsupportedError) as info:
        adjoint.grad(f)(*args)
    text = str(info.value)
    assert f"{__file__}:{line}:" in text, text
    assert says in text, text
    assert "hint:" in text, text


# ------------------------------------------------------------- comprehensions

def filtered_list(x, n):
    ys = [x * i for i in range(n) if i % 2 == 0]
    return sum(ys)


def test_list_comprehension_with_a_filter_reads_as_a_loop():
    (g,) = check_program(filtered_list, 0.7, 5)
    assert g == 0 + 2 + 4
    source = adjoint.source(filtered_list, args=(0.7, 5))
    assert "ys = []" in source and "for i in " in source and "ys.append(x * i)" in source


def weighted(x):
    return sum(np.sin(v) * w for v, w in zip(x, [1.0, 2.0, 3.0]))


def test_sum_of_a_generator_is_a_loop_that_adds():
    (g,) = check_program(weighted, X)
    assert np.allclose(g, np.cos(X) * [1.0, 2.0, 3.0])
    assert "for " in adjoint.source(weighted, args=(X,))


def pairs(x):
    return sum(x[i] * x[j] for i in range(3) for j in range(i, 3) if j != 1)


def test_nested_generators_and_filters():
    (g,) = check_program(pairs, X)
    # terms: x0x0, x0x2, x1x2, x2x2
    a, b, c = X
    assert np.allclose(g, [2 * a + c, c, a + b + 2 * c])


def extremes(x):
    return max(v * v for v in x) + min([v for v in x]) + math.fsum(v for v in x)


def test_max_min_and_fsum_of_comprehensions():
    (g,) = check_program(extremes, X)
    assert np.allclose(g, [1.0, 2.0, 5.0])  # max: 2*x2; min: x1; fsum: ones


def shadowed(x):
    i = 5.0
    ys = [x * i for i in range(3)]
    return np.sum(ys[2]) + np.sum(x) * i  # `i` is still 5.0 here (Python 3 scoping)


def decayed_loss(params, x, label):
    out = np.tanh(x @ params["W1"] + params["b1"]) @ params["W2"]
    loss = np.sum(out ** 2)
    if label.lower().startswith("train"):  # a str's methods decide; no gradient crosses
        loss = loss + 0.1 * sum(np.sum(v ** 2) for k, v in params.items() if k.startswith("W"))
    return loss


def test_str_methods_of_keys_and_labels():
    """Weight decay over the keys that start with 'W', in a branch a label picks
    (round 21: `.startswith()` was refused)."""
    rng = np.random.default_rng(3)
    params = {"W1": rng.normal(size=(3, 4)), "b1": rng.normal(size=4),
              "W2": rng.normal(size=(4, 2))}
    x = rng.normal(size=(5, 3))
    g_train = check_program(decayed_loss, params, x, "Train", wrt=0)[0]
    g_test = adjoint.grad(decayed_loss)(params, x, "test")
    # the decay's part of the gradient is 0.2 W on the weights, nothing on the bias
    np.testing.assert_allclose(g_train["W1"] - g_test["W1"], 0.2 * params["W1"], rtol=1e-9)
    np.testing.assert_allclose(g_train["b1"], g_test["b1"], rtol=1e-12)
    assert "str.startswith(" in adjoint.source(decayed_loss, args=(params, x, "Train"))


def mapped(x, w):
    sines = list(map(np.sin, x))
    big = list(filter(lambda v: v > -0.5, sines))
    return sum(map(lambda a, b: a * b, big, w)) + max(map(abs, x)) + sum(filter(None, x))


def test_map_and_filter_read_as_comprehensions():
    """`map` and `filter` taken at once by list, sum, max, ...: the comprehensions they
    stand for (round 21: "a function or module cannot be a value here")."""
    x, w = np.array([0.3, -1.2, 0.8, -0.1]), np.array([1.0, 2.0, 3.0])
    gx, gw = check_program(mapped, x, w)
    kept = np.sin(x) > -0.5  # sin(-1.2) is dropped: w pairs with the others in order
    want = np.zeros(4)
    want[kept] = np.cos(x[kept]) * w
    want[1] += np.sign(x[1])  # max(abs(x)) is |x[1]|
    want += 1.0  # every x is nonzero: filter(None, x) keeps them all
    np.testing.assert_allclose(gx, want, rtol=1e-9)
    np.testing.assert_allclose(gw, np.sin(x[kept]), rtol=1e-9)


def test_the_loop_variable_does_not_leak():
    assert shadowed(X) == pytest.approx(np.sum(X) * 7.0)
    (g,) = check_program(shadowed, X)
    assert np.allclose(g, 7.0)


def inside_a_loop(x):
    s = 0.0
    for k in range(3):
        s = s + sum(v * k for v in x if v > 0)
    return s


def test_comprehension_inside_a_loop():
    (g,) = check_program(inside_a_loop, X)
    assert np.allclose(g, [3.0, 0.0, 3.0])


def listed(x):
    ys = list(v * 2.0 for v in x)
    total = 0.0
    for v in (y * y for y in ys):
        total = total + v
    return ys[0] * ys[1] + total


def test_list_of_a_generator_and_a_loop_over_one():
    (g,) = check_program(listed, X)
    assert np.allclose(g, [4 * X[1] + 8 * X[0], 4 * X[0] + 8 * X[1], 8 * X[2]])


def data_loss(w, xs):
    return sum((np.dot(w, xi) - 1.0) ** 2 for xi in xs)


def test_comprehension_over_a_list_argument():
    xs = [X * 2.0, X + 1.0]
    gw, gxs = check_program(data_loss, X, xs)
    want = sum(2 * (np.dot(X, xi) - 1.0) * xi for xi in xs)
    assert np.allclose(gw, want)
    assert isinstance(gxs, list) and len(gxs) == 2


def to_array(x):
    return np.sum(np.stack(v * 2.0 for v in x))


def as_set(x):
    return sum({v for v in x})


def test_generators_and_sets_elsewhere_are_refused():
    refused(to_array, X, at="np.stack(v", says="generator expression")
    refused(as_set, X, at="{v for", says="set comprehensions")


# ------------------------------------------------- lambdas, nested defs, closures

def nested(x):
    sq = lambda u, p=2.0: u ** p  # noqa: E731
    s = 0.3

    def g(u, *, k=1.0):
        return np.sum(sq(u) * s * k)
    return g(x, k=2.0)


def test_lambda_and_nested_def_with_defaults_and_keyword_only():
    (g,) = check_program(nested, X)
    assert np.allclose(g, 2 * X * 0.3 * 2.0)


def function_default(x):
    g = lambda u, act=np.sin: act(u) * 2.0  # noqa: E731
    return np.sum(g(x))


def test_a_function_as_a_default_value():
    (g,) = check_program(function_default, X)
    assert np.allclose(g, 2 * np.cos(X))


def late(x):
    s = 1.0
    g = lambda t: t * s  # noqa: E731
    s = 2.0  # closures bind late: g sees 2.0
    return np.sum(g(x))


def test_closures_read_the_variable_when_called():
    (g,) = check_program(late, X)
    assert np.allclose(g, 2.0)


def adder(x):
    def outer(a):
        def inner(b):
            return a * b
        return inner
    return np.sum(outer(x)(x))


def test_a_closure_returned_by_a_nested_function():
    (g,) = check_program(adder, X)
    assert np.allclose(g, 2 * X)


def apply_twice(fn, u):
    return fn(u) + fn(2.0 * u)


def passes_a_lambda(x):
    w = x * 2.0
    return np.sum(apply_twice(lambda t: t * w, x))


def test_a_lambda_passed_to_a_helper():
    (g,) = check_program(passes_a_lambda, X)
    assert np.allclose(g, 12 * X)  # 2x*x + 2x*2x


def scaled_norm(a, u):
    return a * np.sum(u ** 2)


def partial_inside(x):
    f = functools.partial(scaled_norm, 3.0)
    return f(x)


SCALED = functools.partial(scaled_norm, 0.5)


def partial_outside(x):
    return SCALED(u=x)


SOFTPLUS_LOSS = lambda w, c=2.0: np.sum(np.log1p(np.exp(c * w)))  # noqa: E731


def test_a_lambda_assigned_at_module_level_is_differentiated_under_its_name():
    (g,) = check_program(SOFTPLUS_LOSS, X)
    assert np.allclose(g, 2.0 / (1.0 + np.exp(-2.0 * X)))
    assert "def SOFTPLUS_LOSS_grad(w" in adjoint.source(SOFTPLUS_LOSS, args=(X,))
    v = np.array([1.0, 0.5, -2.0])
    s = 1.0 / (1.0 + np.exp(-2.0 * X))
    np.testing.assert_allclose(adjoint.hvp(SOFTPLUS_LOSS)(X, v), 4.0 * s * (1 - s) * v)
    (g,) = check_program(lambda u: np.sum(u * u), X)  # unnamed: called `anonymous`
    assert np.allclose(g, 2 * X)


def test_functools_partial():
    (g,) = check_program(partial_inside, X)
    assert np.allclose(g, 6 * X)
    (g,) = check_program(partial_outside, X)
    assert np.allclose(g, X)


def star_call(x):
    args = (x, x * 2.0)
    return np.sum(scaled_norm(*args[:1], x)) + np.sum(scaled_norm(*args))


def test_star_args_of_a_known_tuple():
    check_program(star_call, X)  # args[:1] of a display: its elements are known here

    def star_ok(x):
        args = (x, x * 2.0)
        return np.sum(scaled_norm(*args))
    (g,) = check_program(star_ok, X)
    assert np.allclose(g, np.sum(4 * X ** 2) + np.sum(X) * 8 * X)


def make_loss(d):
    def loss(w):
        return np.sum((d * w - 1.0) ** 2)
    return loss


FACTORY_LOSS = make_loss(np.array([1.0, 2.0, 3.0]))


def test_a_closure_over_an_array_made_by_a_factory():
    (g,) = check_program(FACTORY_LOSS, X)
    d = np.array([1.0, 2.0, 3.0])
    assert np.allclose(g, 2 * (d * X - 1.0) * d)


def writes_closure(x):
    W = x * 1.0

    def g(u):
        W[0] = u
        return u
    g(3.0)
    return np.sum(W)


def recursive_lambda(x):
    def g(u, n):
        return u if n == 0 else g(u * u, n - 1)
    return g(x, 2)


def test_nested_functions_that_write_or_recurse_are_refused():
    refused(writes_closure, X, at="W[0] = u", says="writes in place into `W`")
    refused(recursive_lambda, 0.5, at="g(u * u", says="recursive call of `g`")


# ----------------------------------------------------------------- methods

class Model:
    def __init__(self, W, scale):
        self.W = W
        self.scale = scale

    def loss(self, x):
        return self.scale * np.sum(np.tanh(self.W @ x) ** 2)

    def total(self, x):
        return self.loss(x) + self.penalty(x)

    def penalty(self, x):
        return np.sum(x ** 2)

    @property
    def size(self):
        return self.W.shape[0]

    def uses_property(self, x):
        return self.size * np.sum(x)


class Losses:
    scale = 2.0

    @staticmethod
    def softplus(z):
        return np.log1p(np.exp(z))

    @classmethod
    def logistic(cls, w, X):
        return cls.scale * np.sum(cls.softplus(X @ w))


def classmethod_loss(w, X):
    return Losses.logistic(w, X)


def test_a_classmethod_reads_cls_as_its_class():
    """`Losses.logistic(w, X)`, a classmethod calling a staticmethod through `cls` and
    reading a class attribute (round 21: refused as a function without a rule). The class
    attribute is guarded like a global: changed, the gradient is compiled again."""
    w, X = np.array([0.1, -0.2, 0.3]), np.random.default_rng(0).normal(size=(5, 3))
    sigmoid = 1.0 / (1.0 + np.exp(-(X @ w)))
    (g,) = check_program(classmethod_loss, w, X, wrt=0)
    np.testing.assert_allclose(g, 2.0 * X.T @ sigmoid, rtol=1e-10)
    grad = adjoint.grad(classmethod_loss)
    Losses.scale = 3.0
    try:
        np.testing.assert_allclose(grad(w, X), 3.0 * X.T @ sigmoid, rtol=1e-10)
    finally:
        Losses.scale = 2.0


def test_a_bound_method_reads_self_as_constants():
    W = np.array([[1.0, 2.0], [0.5, -1.0]])
    m = Model(W, 0.5)
    x = np.array([0.3, -0.2])
    (g,) = check_program(m.loss, x)
    t = np.tanh(W @ x)
    assert np.allclose(g, 0.5 * 2 * (t * (1 - t ** 2)) @ W)
    (g2,) = check_program(m.total, x)
    assert np.allclose(g2, g + 2 * x)
    assert "self_W" in adjoint.source(m.loss, args=(x,))


def test_a_method_is_recompiled_when_self_changes():
    m = Model(np.array([[1.0, 2.0], [0.5, -1.0]]), 0.5)
    x = np.array([0.3, -0.2])
    grad = adjoint.grad(m.loss)
    first = grad(x)
    m.scale = 2.0  # a number folded into the code: the guard sees the new object
    assert np.allclose(grad(x), 4 * first)
    m.W = m.W * 2.0  # a new array
    assert np.allclose(grad(x), check_program(m.loss, x)[0])
    m.W[0, 0] = 5.0  # the same array, written: read when called, never folded
    assert np.allclose(grad(x), check_program(m.loss, x)[0])


def test_a_property_is_its_getter_inlined():
    # (round 12: refused before) the getter reads self.W, guarded as self's attribute
    m = Model(np.eye(2), 1.0)
    grad = adjoint.grad(m.uses_property)
    assert np.allclose(grad(np.ones(2)), 2.0)
    m.W = np.eye(3)
    assert np.allclose(grad(np.ones(2)), 3.0)


# ---------------------------------------------------------- print and assert

def chatty(x):
    print(f"x is {x}")
    assert isinstance(x, np.ndarray)
    return np.sum(x * x)


def test_print_and_assert_do_not_block_compilation(capsys):
    assert np.allclose(adjoint.grad(chatty)(X), 2 * X)
    capsys.readouterr()


def fstring_value(x):
    label = f"x is {x}"
    return np.sum(x) * len(label)


def test_an_fstring_used_as_a_value_is_a_string():
    # (round 12: f-strings are values, dict keys above all; its length is a count)
    g = adjoint.grad(fstring_value)(X)
    assert np.allclose(g, len(f"x is {X}"))


# ------------------------------------- in-place updates of list elements (W3)

def aliased_slots(x):
    a = x * 1.0
    L = [a, a]
    L[0] += 1.0  # Python: the array a changes in place, so L[1] does too
    return np.sum(L[1] ** 2)


def element_of_list_written(x):
    a = x * 1.0
    L = [a, 2.0]
    L[0][1] = 5.0  # writes into a
    return np.sum(a * x)


def numbers_in_a_list(x):
    acc = [0.0, 1.0]
    for v in x:
        acc[0] += v
        acc[1] *= v
    return acc[0] * 2.0 + acc[1]


def test_list_element_updates_are_right_or_refused():
    refused(aliased_slots, X, at="L[0] += 1.0", says="in place")
    refused(element_of_list_written, X, at="L[0][1] = 5.0", says="element of a list")
    (g,) = check_program(numbers_in_a_list, X)
    assert np.allclose(g, 2.0 + np.prod(X) / X)


# ------------------------------- isinstance, defaults, keyword-only parameters

def by_type(x):
    if isinstance(x, (int, float)):
        return x * 2.0
    if isinstance(x, np.ndarray):
        return np.sum(x) * 3.0
    return x * 4.0


def test_isinstance_checks():
    assert check_program(by_type, 0.7) == (2.0,)
    (g,) = check_program(by_type, X)
    assert np.allclose(g, 3.0)


def array_default(x, w=np.array([1.0, 2.0, 3.0])):
    return np.sum(w * x ** 2)


def keyword_only_helper(u, *, p=2.0, w=np.array([1.0, 2.0, 3.0])):
    return np.sum(w * u ** p)


def calls_keyword_only(x):
    return keyword_only_helper(x, p=3.0) + keyword_only_helper(*[x])


def test_array_defaults_and_keyword_only_parameters_of_helpers():
    w = np.array([1.0, 2.0, 3.0])
    (g,) = check_program(array_default, X)
    assert np.allclose(g, 2 * w * X)
    assert np.allclose(adjoint.hvp(array_default)(X, np.ones(3)), 2 * w)
    (g,) = check_program(calls_keyword_only, X)
    assert np.allclose(g, 3 * w * X ** 2 + 2 * w * X)


def outer_products(x):
    M = [[x[i] * x[j] for j in range(3)] for i in range(3)]
    return np.sum(np.array(M) ** 2)


def test_a_list_of_lists_from_nested_comprehensions():
    (g,) = check_program(outer_products, X)
    assert np.allclose(g, 4 * X * np.sum(X ** 2))


class Layer:
    def __init__(self, W, b):
        self.W, self.b = W, b

    def __call__(self, x):
        return np.tanh(self.W @ x + self.b)


class Net:
    def __init__(self):
        self.l1 = Layer(np.array([[1.0, 0.5], [-0.3, 0.8]]), np.array([0.1, -0.2]))
        self.l2 = Layer(np.array([[0.7, -1.0]]), np.array([0.05]))

    def loss(self, x):
        return np.sum(self.l2(self.l1(x)) ** 2)


NET = Net()


def uses_a_module_level_model(x):
    return NET.loss(x) + np.sum(NET.l1.W) * np.sum(x)


def test_objects_held_by_self_and_module_level_models():
    x = np.array([0.3, -0.4])
    (g,) = check_program(NET.loss, x)
    l1, l2 = NET.l1, NET.l2
    h = np.tanh(l1.W @ x + l1.b)
    y = np.tanh(l2.W @ h + l2.b)
    dh = ((2 * y * (1 - y ** 2)) @ l2.W) * (1 - h ** 2)
    assert np.allclose(g, dh @ l1.W)
    (g2,) = check_program(uses_a_module_level_model, x)
    assert np.allclose(g2, g + np.sum(l1.W))
    assert "self_l1_W @ x" in adjoint.source(NET.loss, args=(x,))


def any_all_and_start(x):
    total = sum([v * v for v in x], 1.0)
    if any(v > 1.5 for v in x) and all([v > -2.0 for v in x]):
        return total
    return np.sum(x)


def test_any_all_and_sum_with_a_start():
    (g,) = check_program(any_all_and_start, X)
    assert np.allclose(g, 2 * X)
    (g,) = check_program(any_all_and_start, X - 3.0)
    assert np.allclose(g, 1.0)


# ------------------------------------------------------------------ try

def log_det(A):
    try:
        L = np.linalg.cholesky(A)
    except np.linalg.LinAlgError:
        raise ValueError("not positive definite")
    else:
        d = np.diag(L)
    finally:
        pass
    return 2.0 * np.sum(np.log(d))


def guarded_sqrt(x):
    try:
        y = math.sqrt(x)
    except ValueError:
        y = 0.0
    return y * 2.0


def unused_in_try(A, x):
    try:
        L = np.linalg.cholesky(A)
        ok = 1.0
    except np.linalg.LinAlgError:
        ok = 0.0
    return ok * x


def test_try_runs_the_body_and_a_failure_propagates():
    A = np.array([[2.0, 0.3], [0.3, 1.0]])
    (g,) = check_program(log_det, A)
    inv = np.linalg.inv(A)  # d log det / dA, on the lower triangle cholesky reads
    assert np.allclose(g, np.tril(2 * inv - np.diag(np.diag(inv))))
    (g,) = check_program(guarded_sqrt, 0.7)
    assert g == pytest.approx(1 / math.sqrt(0.7))
    # f takes its handler here; the gradient runs the body only: refused, never the
    # handler's 0.0
    with pytest.raises(adjoint.UnsupportedError, match=r"raised ValueError \(math domain"):
        adjoint.grad(guarded_sqrt)(-0.7)
    refused(unused_in_try, A, 0.7, at="L = np.linalg", says="not used after")


# ------------------------------------------- found by the adversarial tester (round 3)

def generator_twice(x):
    g = (v * v for v in x)
    return sum(g) + sum(g)  # Python: the second sum is 0


def print_pop(x):
    L = [x * x, x * 2.0]
    print(L.pop())  # the list is shorter afterwards, printed or not
    return sum(L)


def asserted(x):
    assert np.all(x > 0.0), "x must be positive"
    return np.sum(np.log(x))


def checked_inputs(x, scale):
    if x.ndim != 1:
        raise ValueError("x must be a vector")
    if scale <= 0.0:
        raise ValueError
    if (n := x.shape[0]) < 2:
        raise TypeError(f"need two entries, got {n}")
    return np.sum(np.log(x)) * scale


def walrus_elif(x):
    k = x[0] * 10.0
    if k < -1.0:
        s = x * 0.5
    elif (c := k * k) > 4.0:
        s = x * c
    else:
        s = x * 2.0
    return np.sum(s ** 2)


def log_in_try(x):
    try:
        r = math.log(x)  # the gradient needs 1/x, not log(x): it was dropped
    except ValueError:
        r = x * x
    return r + x


def repeated_alias(x):
    L = [x * 1.0] * 2  # L[0] is L[1]
    L[0] += x * x  # an array's += is in place: L[1] changes too
    return np.sum(L[1])


def loop_alias(x):
    a = x * 1.0
    L = [a, a * 2.0]
    for i in range(2):
        L[i] *= 3.0  # L[0] is a
    return np.sum(a)


SCATTER = np.array([0, 2, 2, 1])


def scatter_add(x, v):
    out = np.zeros(3)
    np.add.at(out, SCATTER, v * x)  # repeated indices add up
    return np.sum(np.sin(out) * v[:3])


def fills_diagonal(x):
    A = np.outer(x, x)
    np.fill_diagonal(A, 0.0)
    return np.sum(A)


def sorts_in_place(x):
    L = [3.0, x]
    L.sort()
    return L[0]


def pure_statement(x):
    np.sin(x)
    return x


def test_calls_as_statements_are_writes_or_refused_by_name():
    # round 10: each was refused as "an expression statement has no effect"
    v = np.array([0.5, -1.2, 0.3, 2.0])
    (gx, gv) = check_program(scatter_add, 0.7, v)
    out = np.zeros(3)
    np.add.at(out, SCATTER, v * 0.7)
    w = np.cos(out) * v[:3]
    assert gx == pytest.approx(np.sum(w[SCATTER] * v), rel=1e-12)
    refused(fills_diagonal, X, at="np.fill_diagonal", says="`fill_diagonal` writes into")
    refused(sorts_in_place, 0.5, at="L.sort()", says="`.sort()`")
    refused(pure_statement, 0.5, at="np.sin(x)", says="has no effect")


def test_side_effects_that_python_has_are_kept_or_refused():
    refused(generator_twice, X, at="(v * v", says="consumed once")
    (g,) = check_program(print_pop, 0.7)
    assert g == pytest.approx(1.4)
    (g,) = check_program(asserted, X * X + 0.5)
    assert "assert np.all(x > 0.0), 'x must be positive'" in adjoint.source(
        asserted, args=(X * X,))
    with pytest.raises(AssertionError, match="positive"):
        adjoint.grad(asserted)(X)
    (g, _) = check_program(checked_inputs, X * X + 0.5, 2.0)
    assert np.allclose(g, 2.0 / (X * X + 0.5), rtol=1e-12)
    text = adjoint.source(checked_inputs, args=(X * X + 0.5, 2.0))
    assert "    if np.ndim(x) != 1:\n        raise ValueError('x must be a vector')" in text
    with pytest.raises(ValueError):  # the check runs in the forward sweep, as f's does
        adjoint.grad(checked_inputs)(X * X + 0.5, -1.0)
    with pytest.raises(TypeError):
        adjoint.grad(checked_inputs)(np.ones(1), 1.0)
    for x in (np.array([-0.5, 0.3]), np.array([0.5, 0.3]), np.array([0.05, 0.3])):
        (g,) = check_program(walrus_elif, x)
    g = adjoint.grad(log_in_try)
    assert g(0.5) == pytest.approx(3.0)
    with pytest.raises(adjoint.UnsupportedError, match="handler catches"):
        g(-0.5)  # f takes its handler here; the gradient, compiled at 0.5, cannot
    refused(repeated_alias, X, at="L[0] +=", says="another slot")
    refused(loop_alias, X, at="L[i] *=", says="`a` may also refer to it")


def test_an_unused_factorisation_still_fails_where_f_fails():
    def f(A, x):
        L = np.linalg.cholesky(A)  # noqa: F841 (unused: a check that A is definite)
        return x * 2.0
    g = adjoint.grad(f, wrt=1)
    assert g(np.eye(2), 0.5) == 2.0
    with pytest.raises(np.linalg.LinAlgError):
        g(-np.eye(2), 0.5)


_EXEC = {"np": np}
exec("def made_by_exec(u):\n    return u * u\n", _EXEC)
MADE_BY_EXEC = _EXEC["made_by_exec"]


def calls_a_helper_without_source(x):
    return np.sum(MADE_BY_EXEC(x))


def test_a_helper_without_a_source_file_is_refused_at_its_call():
    lines, first = inspect.getsourcelines(calls_a_helper_without_source)
    with pytest.raises(adjoint.SourceError) as info:
        adjoint.grad(calls_a_helper_without_source)(X)
    assert info.value.loc.line == first + 1 and "no source file" in str(info.value)


# ------------------------------ `a += x` that NumPy refuses to cast back (round 4 W6)

def int_array_plus_float(x):
    a = np.arange(3)
    a += x * 2.0  # NumPy: UFuncTypeError, int64 cannot hold the float64 result
    return np.sum(a * x)


def int_slice_plus_float(x):
    a = np.arange(3)
    a[:2] += x[:2]
    return np.sum(a * x)


def int_array_plus_int(x):
    a = np.arange(3)
    a += 2  # stays int64: no derivative through a
    return np.sum(a * x)


def slice_plus_a_wider_value(x):
    z = x * 1.0
    z[1:] += np.reshape(x[:2], (1, 2))  # NumPy: the result (1, 2) cannot go into (2,)
    return np.sum(z)


def test_in_place_updates_that_numpy_refuses_are_refused():
    refused(slice_plus_a_wider_value, X, at="z[1:] +=", says="shape")
    for f in (int_array_plus_float, int_slice_plus_float):
        with pytest.raises(Exception):
            f(X)  # f itself fails
    refused(int_array_plus_float, X, at="a += x * 2.0", says="same_kind")
    refused(int_slice_plus_float, X, at="a[:2] += x[:2]", says="same_kind")
    (g,) = check_program(int_array_plus_int, X)
    assert np.allclose(g, np.arange(3) + 2)


# ------------------------- a loop that makes its carried dict afresh on each trip

def sgd_steps(W, b, X):
    p = {'W': W, 'b': b}
    for step in range(3):
        g = {'W': p['W'] * 0.1, 'b': p['b'] * 0.2}
        p = {k: p[k] - 0.1 * g[k] for k in p.keys()}
    return np.sum(np.tanh(X @ p['W'] + p['b']) ** 2)


def carried_array_and_view(x):
    a = x * 1.0
    v = a[0:2]
    s = 0.0
    for i in range(2):
        a[0] = a[1] * x[0]  # from the second trip on, v views this a
        s = s + np.sum(v)
        b = a * 2.0
        a, v = b, b[0:2]
    return s


def test_a_dict_made_afresh_each_trip_is_not_an_alias_of_the_last():
    rng = np.random.default_rng(3)
    W, b, X = rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=(4, 3))
    check_program(sgd_steps, W, b, X, wrt=(0, 1))
    # two carries yielding one object (an array and its view) stay one object
    refused(carried_array_and_view, X, at="a[0] = a[1] * x[0]", says="shares")


# ------------------------------------------- dict membership and copies (round 4 K2, K3)

def optional_entry(x, p):
    s = np.sum(p['a'] * x)
    if 'e' in p:
        s = s + p['e'] * 3.0
    if 'z' not in p:
        s = s * 2.0
    return s


def copied_dict(x):
    d = {'a': x * 1.0}
    e = d.copy()
    e['a'] = np.sin(x)
    return np.sum(d['a'] * 2.0 + e['a'])


def test_dict_membership_and_copies():
    p = {'a': np.array([1.0, 2.0, -1.0]), 'e': 0.5}
    (g,) = check_program(optional_entry, X, p, wrt=0)
    assert np.allclose(g, 2.0 * p['a'])
    (g,) = check_program(copied_dict, X)
    assert np.allclose(g, 2.0 + np.cos(X))


# ---------------------------------- round 5: hvp through a copy that folds to a view (W9)

def flipped_copy_written(x):
    y = np.flip(x) * 1.0  # the copy folds away in the hvp pipeline: np.flip is a view
    y[0] += x[0]
    return np.sum(y ** 2 * x)


def test_a_hessian_through_a_flipped_copy_leaves_the_argument_alone():
    x = np.array([0.5, -1.0, 2.0])
    before = x.copy()
    H = adjoint.hessian(flipped_copy_written)(x)
    assert np.array_equal(x, before)
    eps, want = 1e-5, np.zeros((3, 3))
    g = adjoint.grad(flipped_copy_written)
    for i in range(3):
        e = np.zeros(3)
        e[i] = eps
        want[:, i] = (g(x + e) - g(x - e)) / (2 * eps)
    assert np.allclose(H, want, atol=1e-6) and np.allclose(H, H.T, atol=1e-8)


HISTORY = []


def appends_to_a_global(x):
    HISTORY.append(x * 2.0)
    return np.sum(HISTORY[-1])


def appends_inside_a_dict(x):
    log = {'h': []}
    log['h'].append(x * 2.0)
    return np.sum(log['h'][-1])


def test_appends_that_outlive_the_call_or_hide_in_a_container_are_refused():
    refused(appends_to_a_global, X, at="HISTORY.append", says="made outside")
    refused(appends_inside_a_dict, X, at="log['h'].append", says="held by a dict")


# ------------------------------------------------------- recursion of constant depth

def _tree(x, depth):
    if depth == 0:
        return np.tanh(x)
    return _tree(x * 0.5, depth - 1) + _tree(x * 2.0, depth - 1)


def tree_recursion(x):
    return np.sum(_tree(x, 3))


def _countdown(x, n):
    if n <= 0:
        return x
    return _countdown(np.sin(x) * x, n - 1)


def data_depth_recursion(x):
    return np.sum(_countdown(x, int(x[0] > 0) + 2))  # the depth depends on x


def test_a_recursive_helper_of_constant_depth_unrolls():
    (g,) = check_program(tree_recursion, X)
    leaves = [s for s in (0.125, 0.5, 2.0, 8.0) for _ in range({0.125: 1, 0.5: 3, 2.0: 3,
                                                                 8.0: 1}[s])]
    assert np.allclose(g, sum(s * (1 - np.tanh(s * X) ** 2) for s in leaves))
    with pytest.raises(UnsupportedError, match="constant arguments do not fix") as e:
        adjoint.grad(data_depth_recursion)(X)
    assert e.value.loc.line == inspect.getsourcelines(_countdown)[1] + 3


def power(x, n):
    if n == 0:
        return 1.0
    return x * power(x, n - 1)


def halvings(x, n):
    """Recursion on a float: no int fixes its depth."""
    if x < 1.0:
        return x
    return halvings(x * 0.5, n) * 2.0


def test_a_recursive_function_is_differentiated_at_the_depth_its_ints_fix():
    # lowered once per int argument, as constants: the recursion unrolls to that depth
    x = 1.3
    assert adjoint.grad(power)(x, 4) == pytest.approx(4 * x ** 3)
    assert adjoint.grad(power)(x, 2) == pytest.approx(2 * x)  # another depth, other code
    assert adjoint.grad(power)(x, n=5) == pytest.approx(5 * x ** 4)
    assert adjoint.value_and_grad(power)(x, 3) == pytest.approx((x ** 3, 3 * x ** 2))
    assert adjoint.jvp(power)(x, 3, 2.0) == pytest.approx((x ** 3, 6 * x ** 2))
    out, pullback = adjoint.vjp(power, np.array([1.0, 2.0]), 3)
    np.testing.assert_allclose(pullback(np.ones(2)), 3 * np.array([1.0, 2.0]) ** 2)
    check_program(power, x, 3, wrt=0)
    with pytest.raises(UnsupportedError, match="constant arguments do not fix"):
        adjoint.grad(halvings)(3.0, 2)
    text = adjoint.source(power, args=(x, 3))
    code = [line for line in text.split("def power_grad")[1].splitlines()
            if not line.strip().startswith("#")]
    assert "n == 3" in text and not any("power(" in line for line in code)
    namespace = {}
    exec(text, namespace)
    assert namespace["power_grad"](x, 3) == pytest.approx(3 * x ** 2)


def items(A):
    return A.item(1, 0) ** 2 + A.item(3) * A.item(0)


def module_default(x, np=np):
    return np.sum(x * x)


def test_item_with_an_index_and_a_module_default():
    # round 7: x.item(i) was lowered as float(x, i) (a TypeError), and `np=np` as a
    # parameter made np.sum a call on a value
    A = np.array([[0.5, 2.0], [3.0, 1.0]])
    (g,) = check_program(items, A)
    np.testing.assert_allclose(g, [[1.0, 0.0], [6.0, 0.5]])
    refused(module_default, X, at="np=np", says="defaults to the module `numpy`")


class Scaled(typing.NamedTuple):
    w: np.ndarray
    b: float

    @property
    def doubled(self):
        return self.w * 2.0


def reads_a_property(p, x):
    return np.sum(p.doubled * x) + p.b


def test_a_property_of_a_record_parameter_is_refused_at_its_read():
    # round 7, K7n: p.doubled was read as a field; its cotangent had no slot (KeyError)
    refused(reads_a_property, Scaled(X.copy(), 0.5), X, at="p.doubled",
            says="not one of its fields")


class Decorated:
    def __init__(self, w):
        self.w = w

    @adjoint.adjoint
    def loss(self, x):
        return np.sum(self.w * x ** 2)


def test_adjoint_on_a_method_keeps_self():
    # round 7, K7p: obj.loss.grad() differentiated the function without `self`
    model = Decorated(np.array([1.0, 2.0, 3.0]))
    assert model.loss(X) == pytest.approx(np.sum(model.w * X ** 2))
    np.testing.assert_allclose(model.loss.grad()(X), 2 * model.w * X)
    value, g = model.loss.value_and_grad()(X)
    np.testing.assert_allclose(g, 2 * model.w * X)
    assert "def loss_grad(x" in model.loss.source(args=(X,))


# -- a test that guards the comparison after it (round 18's C1) ------------------------

def running_minimum(x, n):
    best = None
    for i in range(n):
        v = np.sum((x - i * 0.3) ** 2)
        if best is None or v < best:  # `v < None` would raise: Python never runs it
            best = v
    return best


def running_maximum_kept_apart(x, n):
    m = None
    total = 0.0
    for i in range(n):
        v = np.sin(x[i % len(x)] * (i + 1))
        if not (m is not None and v <= m):
            m = v
        total = total + m
    return total


def optional_weight(x, w):
    if w is not None and w > 0:
        return np.sum(x) * w
    return np.sum(x ** 2)


def typed_scale(x, s):
    if isinstance(s, float) and s > 1.0:
        return np.sum(np.tanh(x * s))
    return np.sum(np.tanh(x))


@pytest.mark.parametrize("f,args", [
    (running_minimum, (np.array([0.7, -1.3, 0.4]), 3)),
    (running_minimum, (np.array([0.7, -1.3, 0.4]), 1)),
    (running_maximum_kept_apart, (np.array([0.7, -1.3, 0.4]), 5)),
    (optional_weight, (np.array([0.7, -1.3]), None)),
    (optional_weight, (np.array([0.7, -1.3]), 2.0)),
    (typed_scale, (np.array([0.7, -1.3]), None)),
    (typed_scale, (np.array([0.7, -1.3]), 1.5)),
], ids=lambda a: a.__name__ if callable(a) else None)
def test_a_none_or_type_test_guards_the_comparison_after_it(f, args):
    check_program(f, *args, wrt=0)
    x = args[0]
    v = np.ones_like(x)
    g = adjoint.grad(f, wrt=0)
    want = (g(x + 1e-6 * v, *args[1:]) - g(x - 1e-6 * v, *args[1:])) / 2e-6
    np.testing.assert_allclose(adjoint.hvp(f, wrt=0)(*args, v), want, rtol=1e-5, atol=1e-6)


# -- a loop over a dict that can exit early (round 18's S3 and C5) ------------------------

INT_MAP = {0: 2, 2: 1, 1: 0}


def walk_int_keys_until(x):
    s = 0.0
    for src in INT_MAP:  # keys 0, 2, 1: read by position they were INT_MAP[0], ...
        s = s + x[src] * x[INT_MAP[src]] ** 2
        if s > -10.0:
            break
    return s


def walk_keys_until(x, p):
    s = 0.0
    for k in p:
        s = s + np.sum(p[k] * x)
        if k == 'b':
            break
    return s


def walk_items_returning(x, p):
    for k, v in p.items():
        if np.sum(v) > 100.0:
            return np.sum(x)
    return np.sum(x * x)


def walk_values_until(x, p):
    s = 0.0
    for v in p.values():
        s = s + np.sum(v * x ** 2)
        if s > 1e3:
            break
    return s


def walk_a_copy_enumerated(x, p):
    s = 0.0
    for i, k in enumerate(dict(p)):
        s = s + (i + 1.0) * np.sum(p[k] * np.sin(x))
        if i == 1:
            break
    else:
        s = s * 2.0
    return s


@pytest.mark.parametrize("f,args", [
    (walk_int_keys_until, ()),
    (walk_keys_until, ({'a': np.array([1.0, 2.0, 0.5]), 'b': np.array([-1.0, 0.3, 2.0]),
                        'c': np.array([4.0, 4.0, 4.0])},)),
    (walk_items_returning, ({'a': np.array([1.0, 2.0, 0.5]), 'b': np.array([-1.0, 0.3, 2.0])},)),
    (walk_values_until, ({'a': np.array([1.0, 2.0, 0.5]), 'b': np.array([-1.0, 0.3, 2.0])},)),
    (walk_a_copy_enumerated, ({'a': np.array([1.0, 2.0, 0.5]), 'b': np.array([-1.0, 0.3, 2.0]),
                               'c': np.array([4.0, 4.0, 4.0])},)),
], ids=lambda a: a.__name__ if callable(a) else None)
def test_a_loop_over_a_dict_that_exits_early_walks_its_keys(f, args):
    # a loop that can break or return is rewritten as a walk by index (normalize.py):
    # `_seq[_k]` of the dict itself read d[0], d[1], ... (wrong numbers for int keys,
    # KeyError for str keys); the walk is over its keys, as `for` reads them
    check_program(f, np.array([0.7, -1.3, 0.4]), *args, wrt=0)
