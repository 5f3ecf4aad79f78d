"""More of the Python that numeric code uses (issue 15): keyword-only parameters and
functools.partial at the API's top level, math.fsum of a list, tuple(), list() and
dict() calls, and sets of constants. Each gradient is checked by
adjoint.testing.check_program (central differences in float64, value_and_grad's
value against f, jvp against vjp), against the formula by hand where one is short,
and hvp against central differences of the gradient; each refusal is located."""
import functools
import inspect
import math
import os
from pathlib import Path

import numpy as np
import pytest

import adjoint
from adjoint import UnsupportedError
from adjoint.testing import check_program

X = np.array([0.5, -1.0, 2.0])
V = np.array([0.3, 0.7, -0.2])
GOLDEN = Path(__file__).parent / "golden" / "partial_ridge_grad.py"


def ridge(w, data, y, lam):  # the golden's program: keep it first (lines are quoted)
    return np.sum((data @ w - y) ** 2) + lam * np.sum(w ** 2)


def test_partial_bound_loss_golden():
    """The gradient of a partial reads the bound `lam` as a number, as a closure's:
    regenerate with ADJOINT_UPDATE_GOLDEN=1 after an intended change."""
    rng = np.random.default_rng(0)
    args = (rng.normal(size=3), rng.normal(size=(5, 3)), rng.normal(size=5))
    p = functools.partial(ridge, lam=0.1)
    text = adjoint.source(p, args=args)
    body = text.split("\n", 1)[1]
    if os.environ.get("ADJOINT_UPDATE_GOLDEN"):
        GOLDEN.write_text(text.split("\n", 1)[0].split(" from ")[0] +
                          " from tests/test_constructs_more.py:ridge.\n" + body)
    assert body == GOLDEN.read_text().split("\n", 1)[1]
    check_program(p, *args, wrt=0)


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


def numeric_hvp(f, x, v, eps=1e-5):
    g = adjoint.grad(f)
    return (g(x + eps * v) - g(x - eps * v)) / (2 * eps)


def numeric_grad(f, x, eps=1e-6):
    out = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = eps
        out[i] = (f(x + e) - f(x - e)) / (2 * eps)
    return out


# ------------------------------------------------------ keyword-only parameters

def keyword_only(x, *, s=2.0, p=3.0):
    return np.sum(np.sin(x) * s) + np.sum(x ** p)


def test_keyword_only_parameters():
    g = adjoint.grad(keyword_only)
    assert np.allclose(g(X), 2 * np.cos(X) + 3 * X ** 2)
    assert np.allclose(g(X, s=3.0), 3 * np.cos(X) + 3 * X ** 2)
    assert np.allclose(numeric_grad(lambda x: keyword_only(x, s=3.0), X), g(X, s=3.0))
    value, dx = adjoint.value_and_grad(keyword_only)(X, s=0.5)
    assert np.isclose(value, keyword_only(X, s=0.5))
    ds = adjoint.grad(keyword_only, wrt="s")(X, s=0.5)
    assert np.isclose(ds, np.sum(np.sin(X)))
    value, dot = adjoint.jvp(keyword_only)(X, V, s=1.5)
    assert np.isclose(dot, numeric_grad(lambda x: keyword_only(x, s=1.5), X) @ V)
    check_program(keyword_only, X)


def test_keyword_only_parameters_in_second_derivatives():
    """hvp, hessian and grad of grad place keyword-only arguments as grad does."""
    hv = adjoint.hvp(keyword_only)(X, V, s=3.0)
    assert np.allclose(hv, numeric_hvp(lambda x: keyword_only(x, s=3.0), X, V), atol=1e-6)
    assert np.allclose(adjoint.hvp(keyword_only)(X, V), (-2 * np.sin(X) + 6 * X) * V)
    assert np.allclose(adjoint.hessian(keyword_only)(X, s=1.0), np.diag(-np.sin(X) + 6 * X))

    def cubic(x, *, s=2.0):
        return s * x ** 3

    assert np.isclose(adjoint.grad(adjoint.grad(cubic))(1.5), 2.0 * 6 * 1.5)
    assert np.isclose(adjoint.grad(adjoint.grad(cubic))(1.5, s=1.0), 6 * 1.5)


def star_kwargs(x, **options):
    return np.sum(x)


def test_star_kwargs_in_the_signature_is_refused():  # (*rest: tests/test_varargs.py)
    refused(star_kwargs, X, at="def star_kwargs", says="**options")


# ------------------------------------------------------------- functools.partial

def loss(w, a, b=1.0):
    return np.sum(np.tanh(w * a)) * b + np.sum(w ** 2) * a


def test_partial_by_keyword_and_by_position():
    p = functools.partial(loss, a=2.0)
    want = numeric_grad(p, X)
    assert np.allclose(adjoint.grad(p)(X), want)
    value, g = adjoint.value_and_grad(p)(X)
    assert np.isclose(value, p(X)) and np.allclose(g, want)
    _, dot = adjoint.jvp(p)(X, V)
    assert np.isclose(dot, want @ V)
    check_program(p, X)
    assert np.allclose(adjoint.hvp(p)(X, V), numeric_hvp(p, X, V), atol=1e-6)
    assert np.allclose(adjoint.hvp(p)(X, V, b=0.5),
                       numeric_hvp(functools.partial(p, b=0.5), X, V), atol=1e-6)
    # positional: binds w; the gradient is taken with respect to a (and b by name)
    q = functools.partial(loss, X)
    assert np.isclose(adjoint.grad(q)(0.7), numeric_grad(lambda a: q(a[0]), np.array([0.7]))[0])
    assert np.isclose(adjoint.grad(q, wrt="b")(0.7, 2.0), np.sum(np.tanh(X * 0.7)))


def test_nested_partial():
    p = functools.partial(functools.partial(loss, a=1.5), b=-2.0)
    assert np.allclose(adjoint.grad(p)(X), numeric_grad(p, X))
    assert np.allclose(adjoint.hvp(p)(X, V), numeric_hvp(p, X, V), atol=1e-6)


def scale_by(m, x):
    return np.sum(np.sin(x) * m)


def test_partial_bound_array_is_read_when_called():
    """An array a partial binds is an input, not differentiated: the gradient reads it
    when it is called (an update in place shows), and a new array bound by keyword, or
    one of another shape, makes the code again."""
    m = np.ones(3)
    g = adjoint.grad(functools.partial(scale_by, m))
    assert np.allclose(g(X), np.cos(X))
    m[:] = [1.0, 2.0, 3.0]
    assert np.allclose(g(X), m * np.cos(X))
    p = functools.partial(scale_by, m=m)
    gk = adjoint.grad(p, wrt="x")
    assert np.allclose(gk(x=X), m * np.cos(X))
    p.keywords["m"] = np.full(3, -4.0)
    assert np.allclose(gk(x=X), -4.0 * np.cos(X))
    p.keywords["m"] = 0.5  # a float now: folded into the code, which is made again
    assert np.allclose(gk(x=X), 0.5 * np.cos(X))


class Scaled:
    def __init__(self, w):
        self.w = w

    def loss(self, x, a):
        return np.sum(np.sin(self.w * x)) * a


def test_partial_of_a_bound_method_and_of_a_lambda():
    model = Scaled(np.array([2.0, 1.0, -1.0]))
    p = functools.partial(model.loss, a=3.0)
    assert np.allclose(adjoint.grad(p)(X), 3.0 * model.w * np.cos(model.w * X))
    cube = functools.partial(lambda x, k: np.sum(x ** k), k=3)
    assert np.allclose(adjoint.grad(cube)(X), 3 * X ** 2)
    out, pullback = adjoint.vjp(cube, X)
    assert np.isclose(out, np.sum(X ** 3)) and np.allclose(pullback(2.0), 6 * X ** 2)


def test_partial_bound_keyword_cannot_be_passed_again():
    g = adjoint.grad(functools.partial(loss, a=2.0))
    with pytest.raises(TypeError, match="bound by the functools.partial"):
        g(X, a=3.0)


# ---------------------------------------------------------------------- math.fsum

def fsum_list(x):
    return math.fsum([x[0] * x[1], x[2] ** 2, np.sin(x[0])])


def fsum_of_array(x):
    ys = np.exp(x)
    return math.fsum(ys) * 2.0


def test_fsum_of_a_list_and_an_array():
    (g,) = check_program(fsum_list, X)
    assert np.allclose(g, [X[1] + np.cos(X[0]), X[0], 2 * X[2]])
    (g,) = check_program(fsum_of_array, X)
    assert np.allclose(g, 2 * np.exp(X))


# ---------------------------------------------------- tuple(), list(), dict()

def tuple_of_generator(x):
    t = tuple(x[i] * x[(i + 1) % 3] for i in range(3) if i != 1)
    return t[0] + 2.0 * t[1] + len(t)


def tuple_and_list_of_displays(x):
    xs = [x[0], x[1] ** 2]
    t = tuple(xs)
    ys = list((t[1], x[2]))
    return t[0] * ys[0] + ys[1]


def tuple_as_index(x):
    m = np.outer(x, x)
    return m[tuple(i for i in (1, 2))] + m[tuple([0, 0])]


def test_tuple_and_list_calls():
    (g,) = check_program(tuple_of_generator, X)
    assert np.allclose(g, [X[1] + 2 * X[2], X[0], 2 * X[0]])
    check_program(tuple_and_list_of_displays, X)
    (g,) = check_program(tuple_as_index, X)
    assert np.allclose(g, [2 * X[0], X[2], X[1]])


def list_of_array_and_zip(x):
    rows = list(x)
    pairs = list(zip(rows, [x[2], x[0], x[1]]))
    return sum(a * b for a, b in pairs) + rows[0]


def test_list_of_an_array_and_of_zip():
    (g,) = check_program(list_of_array_and_zip, X)
    assert np.allclose(g, [X[2] + X[1] + 1, X[0] + X[2], X[1] + X[0]])


def list_of_views(x):
    d = {"a": x[0], "b": x[1] ** 2}
    s = sum(list(d.values())) + sum(tuple(range(3)))
    for i, v in list(enumerate(x)):
        s = s + i * v
    return s + len(set([1, 2, 2]))


def test_list_of_dict_values_and_enumerate():
    (g,) = check_program(list_of_views, X)
    assert np.allclose(g, [1.0, 2 * X[1] + 1, 2.0])


def tuple_of_array(x):
    t = tuple(x)  # <- refused
    return t[0]


def test_tuple_of_unknown_length_is_refused():
    refused(tuple_of_array, X, at="tuple(x)", says="known only when the function runs")


def dict_calls(x):
    d = dict(w=x[0], b=x[1])
    e = dict(zip(["w", "b"], [x[2], x[0]]))
    f = dict([("u", x[1])], v=x[2])
    c = dict(d)
    c["w"] = c["w"] * 3.0  # the copy changes, d does not
    return d["w"] * e["w"] + e["b"] * f["u"] + c["w"] * f["v"] + d["w"]


def test_dict_calls():
    (g,) = check_program(dict_calls, X)
    assert np.allclose(g, [X[2] + X[1] + 3 * X[2] + 1, X[0], X[0] + 3 * X[0]])


def dict_of_list(x, ks):
    return dict(ks)["a"] * x[0]  # <- refused


def test_dict_of_unknown_value_is_refused():
    refused(dict_of_list, X, [("a", 1.0)], at="dict(ks)", says="not known here to be a dict")


# ------------------------------------------------------------ sets of constants

def set_loops(x):
    s = sum(x[i] ** 2 for i in {0, 2})
    for k in {k for k in range(3) if k != 1}:
        s = s + x[k] * x[1]
    for i in range(3):
        if i in {1, 2}:
            s = s + np.sin(x[i])
    return s


def test_sets_of_constants():
    (g,) = check_program(set_loops, X)
    want = [2 * X[0] + X[1], X[0] + X[2] + np.cos(X[1]), 2 * X[2] + X[1] + np.cos(X[2])]
    assert np.allclose(g, want)


def set_of_active(x):
    return sum(v for v in {x[0], x[1]})  # <- refused


def test_a_set_of_active_values_is_refused():
    refused(set_of_active, X, at="{x[0]", says="sets and set comprehensions")
    with pytest.raises(UnsupportedError, match="unordered"):
        adjoint.grad(set_of_active)(X)
